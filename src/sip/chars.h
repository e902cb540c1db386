// Internal to src/sip: character classes of the RFC 3261 §25.1 grammar and a small cursor used
// by every parser in this folder. Table lookups only; no locale, no allocation.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace sipwake::sip::detail {

enum CharClass : std::uint32_t {
  kAlpha = 1u << 0,
  kDigit = 1u << 1,
  kHex = 1u << 2,
  kToken =
      1u << 3,  // token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
  kUnreserved = 1u << 4,     // alphanum / mark
  kUserExtra = 1u << 5,      // user-unreserved: & = + $ , ; ? /
  kPasswordExtra = 1u << 6,  // & = + $ ,
  kParamExtra = 1u << 7,     // param-unreserved: [ ] / : & + $
  kHnvExtra = 1u << 8,       // hnv-unreserved: [ ] / ? : + $
  kWord = 1u << 9,           // word (Call-ID)
  kHost = 1u << 10,          // hostname characters (alphanum - . _ ; "_" tolerated)
  kUric = 1u << 11,          // reserved / unreserved / "%" (absoluteURI of unknown schemes)
  kWsp = 1u << 12,           // SP HT
  kLws = 1u << 13,           // SP HT CR LF (a folded line inside a header value)
  kTel = 1u << 14,           // tel: number characters (digits, hex, * # + - . ( ))
  kGenValue = 1u << 15,      // header-parameter value outside quotes: token / host ("[" "]" ":")
  kQdText = 1u << 16,        // may stand unescaped in a quoted-string: qdtext minus LWS's CR/LF
  kHostName = 1u << 17,      // host characters that cannot appear in an IPv4 address
};

constexpr std::array<std::uint32_t, 256> makeCharTable() {
  std::array<std::uint32_t, 256> t{};
  auto add = [&t](std::string_view chars, std::uint32_t cls) {
    for (char c : chars) t[static_cast<unsigned char>(c)] |= cls;
  };
  for (int c = 'a'; c <= 'z'; ++c) t[c] |= kAlpha;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] |= kAlpha;
  for (int c = '0'; c <= '9'; ++c) t[c] |= kDigit | kHex;
  add("abcdefABCDEF", kHex);
  for (int c = 0; c < 256; ++c) {
    if (t[c] & (kAlpha | kDigit)) {
      t[c] |= kToken | kUnreserved | kWord | kHost | kUric | kGenValue;
    }
  }
  add("-.!%*_+`'~", kToken | kGenValue);
  add("-_.!~*'()", kUnreserved);
  add("&=+$,;?/", kUserExtra);
  add("&=+$,", kPasswordExtra);
  add("[]/:&+$", kParamExtra);
  add("[]/?:+$", kHnvExtra);
  add("-.!%*_+`'~()<>:\\\"/[]?{}", kWord);
  add("-._", kHost);
  for (int c = 0; c < 256; ++c) {
    if ((t[c] & kHost) && !(t[c] & kDigit) && c != '.') t[c] |= kHostName;
  }
  add(";/?:@&=+$,-_.!~*'()%[]#", kUric);
  add(" \t", kWsp | kLws);
  add("\r\n", kLws);
  add("0123456789abcdefABCDEF*#+-.()", kTel);
  add("[]:", kGenValue);
  for (int c = 0x20; c < 256; ++c) {
    if (c != '"' && c != '\\' && c != 0x7F) t[c] |= kQdText;  // includes UTF8-NONASCII
  }
  t['\t'] |= kQdText;
  return t;
}

inline constexpr std::array<std::uint32_t, 256> kCharTable = makeCharTable();

inline bool is(char c, std::uint32_t cls) {
  return (kCharTable[static_cast<unsigned char>(c)] & cls) != 0;
}
inline bool isDigit(char c) { return c >= '0' && c <= '9'; }
inline bool isLws(char c) { return is(c, kLws); }
constexpr char toLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
inline int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (toLower(a[i]) != toLower(b[i])) return false;
  }
  return true;
}

inline bool istartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// Trims SP, HT, CR and LF on both sides (a header value may contain folded lines).
inline std::string_view trimLws(std::string_view s) {
  std::size_t b = 0;
  std::size_t e = s.size();
  while (b < e && isLws(s[b])) ++b;
  while (e > b && isLws(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Every character of `s` is in class `cls` (and s is not empty).
inline bool allOf(std::string_view s, std::uint32_t cls) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is(c, cls)) return false;
  }
  return true;
}

// 1*DIGIT into a value no larger than `max`. False on empty, non-digit or overflow.
inline bool parseUnsigned(std::string_view s, std::uint64_t max, std::uint64_t* out) {
  if (s.empty()) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (!isDigit(c)) return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
    if (v > max) return false;
  }
  *out = v;
  return true;
}

// A cursor over a header value or URI. Never reads outside [p, e).
struct Cursor {
  const char* p;
  const char* e;

  explicit Cursor(std::string_view s) : p(s.data()), e(s.data() + s.size()) {}
  bool done() const { return p >= e; }
  char peek() const { return p < e ? *p : '\0'; }
  bool at(char c) const { return p < e && *p == c; }
  bool consume(char c) {
    if (p < e && *p == c) {
      ++p;
      return true;
    }
    return false;
  }
  // Skips LWS (SP, HT and folded line breaks); returns whether anything was skipped.
  bool skipLws() {
    const char* s = p;
    while (p < e && isLws(*p)) ++p;
    return p != s;
  }
  std::string_view takeWhile(std::uint32_t cls) {
    const char* s = p;
    // Four at a time first: one bounds check per four table lookups (the hottest loop).
    while (e - p >= 4 && is(p[0], cls) && is(p[1], cls) && is(p[2], cls) && is(p[3], cls)) p += 4;
    while (p < e && is(*p, cls)) ++p;
    return {s, static_cast<std::size_t>(p - s)};
  }
  std::string_view rest() const { return {p, static_cast<std::size_t>(e - p)}; }
  std::string_view since(const char* s) const { return {s, static_cast<std::size_t>(p - s)}; }
};

}  // namespace sipwake::sip::detail
