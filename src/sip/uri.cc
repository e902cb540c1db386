#include "sip/uri.h"

#include <algorithm>
#include <cstring>

#include "sip/chars.h"
#include "sip/parse_internal.h"

namespace sipwake::sip {

using detail::Cursor;
using detail::hexValue;
using detail::iequals;
using detail::is;

namespace {

Status bad(std::string message) { return invalidArgument(std::move(message)); }

bool hasBadEscape(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') continue;
    if (!(i + 2 < s.size()) || hexValue(s[i + 1]) < 0 || hexValue(s[i + 2]) < 0) return true;
    i += 2;
  }
  return false;
}

}  // namespace

Status detail::checkHost(std::string_view host) {
  if (host.empty()) return bad("missing host");
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad("unterminated IPv6 reference");
    if (!parseIpv6Address(host.substr(1, host.size() - 2))) return bad("invalid IPv6 reference");
    return Status::ok();
  }
  // Branch-free over the characters: the AND of their classes says whether all are host
  // characters, the OR whether any is a letter-like one.
  std::uint32_t all = ~0u;
  std::uint32_t any = 0;
  for (char c : host) {
    const std::uint32_t cls = detail::kCharTable[static_cast<unsigned char>(c)];
    all &= cls;
    any |= cls;
  }
  if (!(all & detail::kHost)) return bad("invalid character in host");
  // A host made only of digits and dots must be a valid IPv4 address (a toplabel starts
  // with a letter, RFC 3261 §25.1).
  if (!(any & detail::kHostName) && !isIpv4Address(host)) return bad("invalid IPv4 address");
  return Status::ok();
}

namespace {

// Advances over characters of `cls` and valid %HH escapes; returns where it stopped.
const char* scanEscaped(const char* p, const char* e, std::uint32_t cls) {
  while (p < e) {
    const char c = *p;
    if (is(c, cls)) {
      ++p;
    } else if (c == '%' && e - p >= 3 && hexValue(p[1]) >= 0 && hexValue(p[2]) >= 0) {
      p += 3;
    } else {
      break;
    }
  }
  return p;
}

// ";name[=value]" uri-parameters, up to '?' or the end. One pass per parameter.
Status parseUriParams(Cursor& c, std::vector<Param>* out) {
  constexpr std::uint32_t kParamChars = detail::kUnreserved | detail::kParamExtra;
  while (c.consume(';')) {
    Param p;
    const char* n = c.p;
    c.p = scanEscaped(c.p, c.e, kParamChars);
    p.name = c.since(n);
    if (p.name.empty())
      return bad(c.done() || c.at(';') || c.at('?') ? "empty URI parameter"
                                                    : "invalid character in URI parameter");
    if (c.consume('=')) {
      const char* v = c.p;
      c.p = scanEscaped(c.p, c.e, kParamChars);
      p.value = c.since(v);
      p.has_value = true;
      if (!c.done() && !c.at(';') && !c.at('?'))
        return bad("invalid character in URI parameter value");
    } else if (!c.done() && !c.at(';') && !c.at('?')) {
      return bad("invalid character in URI parameter");
    }
    if (out) detail::appendParam(*out, p);
  }
  return Status::ok();
}

// "?hname=hvalue&..." up to the end.
Status parseUriHeaders(Cursor& c, std::vector<Param>* out) {
  constexpr std::uint32_t kHnvChars = detail::kUnreserved | detail::kHnvExtra;
  if (!c.consume('?')) return Status::ok();
  while (true) {
    Param p;
    const char* n = c.p;
    c.p = scanEscaped(c.p, c.e, kHnvChars);
    p.name = c.since(n);
    if (p.name.empty()) return bad("invalid URI header name");
    if (!c.consume('='))
      return bad(c.done() || c.at('&') ? "URI header without '='" : "invalid URI header name");
    const char* v = c.p;
    c.p = scanEscaped(c.p, c.e, kHnvChars);
    p.value = c.since(v);
    p.has_value = true;
    if (!c.done() && !c.at('&')) return bad("invalid URI header value");
    if (out) detail::appendParam(*out, p);
    if (!c.consume('&')) break;
  }
  return Status::ok();
}

Status parseSipRest(std::string_view rest, Uri& u, bool collect) {
  const char* b = rest.data();
  const char* e = b + rest.size();
  const char* host_begin = b;
  if (const void* at_ptr = std::memchr(b, '@', rest.size())) {
    const char* at = static_cast<const char*>(at_ptr);
    const char* p = scanEscaped(b, at, detail::kUnreserved | detail::kUserExtra);
    u.user = std::string_view(b, static_cast<std::size_t>(p - b));
    if (p != at && *p != ':') return bad("invalid character or escape in user part");
    if (u.user.empty()) return bad("empty user part");
    if (p != at) {  // ":" password
      const char* pw = p + 1;
      p = scanEscaped(pw, at, detail::kUnreserved | detail::kPasswordExtra);
      if (p != at) return bad("invalid character or escape in password");
      u.password = std::string_view(pw, static_cast<std::size_t>(at - pw));
      u.has_password = true;
    }
    host_begin = at + 1;
  }
  Cursor c(std::string_view(host_begin, static_cast<std::size_t>(e - host_begin)));
  if (c.at('[')) {
    const void* close = std::memchr(c.p, ']', static_cast<std::size_t>(c.e - c.p));
    if (close == nullptr) return bad("unterminated IPv6 reference");
    c.p = static_cast<const char*>(close) + 1;
  } else {
    c.takeWhile(detail::kHost);
    if (c.at(':')) {
      // "sip:2001:db8::10" (RFC 5118 §4.2): a second ':' before any ';' or '?'.
      for (const char* q = c.p + 1; q < c.e && *q != ';' && *q != '?'; ++q) {
        if (*q == ':') return bad("IPv6 address not enclosed in []");
      }
    }
  }
  u.host = std::string_view(host_begin, static_cast<std::size_t>(c.p - host_begin));
  if (Status s = detail::checkHost(u.host); !s) return s;
  if (c.consume(':')) {
    std::uint64_t port = 0;
    if (!detail::parseUnsigned(c.takeWhile(detail::kDigit), 65535, &port)) {
      return bad("invalid port");
    }
    u.port = static_cast<std::uint16_t>(port);
    u.has_port = true;
  }
  if (!c.done() && c.peek() != ';' && c.peek() != '?') return bad("invalid character after host");
  if (Status s = parseUriParams(c, collect ? &u.params : nullptr); !s) return s;
  if (Status s = parseUriHeaders(c, collect ? &u.headers : nullptr); !s) return s;
  if (!c.done()) return bad("invalid character in URI");
  return Status::ok();
}

Status parseTelRest(std::string_view rest, Uri& u, bool collect) {
  Cursor c(rest);
  u.user = c.takeWhile(detail::kTel);
  if (u.user.empty()) return bad("empty telephone number");
  if (u.user.find('+', 1) != std::string_view::npos)
    return bad("misplaced '+' in telephone number");
  if (!c.done() && c.peek() != ';') return bad("invalid character in telephone number");
  if (Status s = parseUriParams(c, collect ? &u.params : nullptr); !s) return s;
  if (!c.done()) return bad("invalid character in tel URI");
  return Status::ok();
}

// Canonical form for comparison: escapes of unreserved characters decoded, other escapes
// kept with upper-case hex (RFC 3261 §19.1.4: only unreserved characters are equivalent to
// their escaped form).
std::string canonicalEscapes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
      const char v = static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
      if (is(v, detail::kUnreserved)) {
        out.push_back(v);
      } else {
        static constexpr char kHexDigits[] = "0123456789ABCDEF";
        out.push_back('%');
        out.push_back(kHexDigits[(static_cast<unsigned char>(v) >> 4) & 0xF]);
        out.push_back(kHexDigits[static_cast<unsigned char>(v) & 0xF]);
      }
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

bool escapedEqual(std::string_view a, std::string_view b, bool case_sensitive) {
  if (a == b) return true;
  const std::string ca = canonicalEscapes(a);
  const std::string cb = canonicalEscapes(b);
  return case_sensitive ? ca == cb : iequals(ca, cb);
}

bool hostEqual(std::string_view a, std::string_view b) {
  if (a.size() > 2 && b.size() > 2 && a.front() == '[' && b.front() == '[') {
    auto x = parseIpv6Address(a.substr(1, a.size() - 2));
    auto y = parseIpv6Address(b.substr(1, b.size() - 2));
    if (x && y) return *x == *y;
  }
  return iequals(a, b);
}

bool paramValueEqual(const Param& a, const Param& b) {
  return a.has_value == b.has_value && escapedEqual(a.value, b.value, /*case_sensitive=*/false);
}

// uri-parameter comparison of §19.1.4: user, ttl, method, maddr and transport must match when
// either side has them; any other parameter only when both have it.
bool paramsEquivalent(const std::vector<Param>& a, const std::vector<Param>& b) {
  static constexpr std::string_view kMustMatch[] = {"user", "ttl", "method", "maddr", "transport"};
  for (std::string_view name : kMustMatch) {
    const Param* pa = findParam(a, name);
    const Param* pb = findParam(b, name);
    if ((pa == nullptr) != (pb == nullptr)) return false;
    if (pa && !paramValueEqual(*pa, *pb)) return false;
  }
  for (const Param& pa : a) {
    const Param* pb = findParam(b, pa.name);
    if (pb && !paramValueEqual(pa, *pb)) return false;
  }
  return true;
}

bool headersEquivalent(const std::vector<Param>& a, const std::vector<Param>& b) {
  if (a.size() != b.size()) return false;
  for (const Param& ha : a) {
    const Param* hb = findParam(b, ha.name);
    if (!hb || !escapedEqual(ha.value, hb->value, /*case_sensitive=*/true)) return false;
  }
  return true;
}

std::string telDigits(std::string_view number) {
  std::string out;
  for (char c : number) {
    if (c == '-' || c == '.' || c == '(' || c == ')') continue;  // visual separators
    out.push_back(detail::toLower(c));
  }
  return out;
}

}  // namespace

const Param* findParam(const std::vector<Param>& params, std::string_view name) {
  for (const Param& p : params) {
    if (iequals(p.name, name)) return &p;
  }
  return nullptr;
}

std::string_view Uri::hostWithoutBrackets() const {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

bool isIpv4Address(std::string_view s) {
  int dots = 0;
  int digits = 0;
  unsigned octet = 0;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      octet = octet * 10 + static_cast<unsigned>(c - '0');
      if (++digits > 3 || octet > 255) return false;
    } else if (c == '.' && digits > 0 && dots < 3) {
      ++dots;
      digits = 0;
      octet = 0;
    } else {
      return false;
    }
  }
  return dots == 3 && digits > 0;
}

std::optional<std::array<std::uint8_t, 16>> parseIpv6Address(std::string_view s) {
  std::array<std::uint16_t, 8> g{};
  int n = 0;
  int gap = -1;
  std::size_t i = 0;
  const std::size_t len = s.size();
  if (len < 2) return std::nullopt;
  // RFC 5118 §4.10: RFC 3261's ABNF lets "::" be followed by ":" + IPv4address.
  auto tolerateThirdColon = [&](std::size_t pos) {
    if (pos < len && s[pos] == ':' && isIpv4Address(s.substr(pos + 1))) return pos + 1;
    return pos;
  };
  bool finished = false;
  if (s[0] == ':') {
    if (s[1] != ':') return std::nullopt;
    gap = 0;
    i = tolerateThirdColon(2);
    finished = (i == len);
  }
  while (!finished) {
    std::size_t j = i;
    while (j < len && hexValue(s[j]) >= 0) ++j;
    if (j < len && s[j] == '.') {  // embedded IPv4 address: must be the last 32 bits
      const std::string_view v4 = s.substr(i);
      if (n > 6 || !isIpv4Address(v4)) return std::nullopt;
      std::uint16_t octets[4] = {0, 0, 0, 0};
      int k = 0;
      for (char c : v4) {
        if (c == '.') {
          ++k;
        } else {
          octets[k] = static_cast<std::uint16_t>(octets[k] * 10 + (c - '0'));
        }
      }
      g[n++] = static_cast<std::uint16_t>((octets[0] << 8) | octets[1]);
      g[n++] = static_cast<std::uint16_t>((octets[2] << 8) | octets[3]);
      break;
    }
    if (j == i || j - i > 4 || n >= 8) return std::nullopt;
    std::uint16_t v = 0;
    for (std::size_t k = i; k < j; ++k) v = static_cast<std::uint16_t>(v * 16 + hexValue(s[k]));
    g[n++] = v;
    i = j;
    if (i == len) break;
    if (s[i] != ':') return std::nullopt;
    ++i;
    if (i < len && s[i] == ':') {
      if (gap >= 0) return std::nullopt;
      gap = n;
      i = tolerateThirdColon(i + 1);
      if (i == len) break;
    } else if (i == len) {
      return std::nullopt;  // a single trailing ':'
    }
  }
  if (gap < 0) {
    if (n != 8) return std::nullopt;
  } else {
    if (n > 7) return std::nullopt;
    const int tail = n - gap;
    for (int k = 0; k < tail; ++k) g[7 - k] = g[n - 1 - k];
    for (int k = gap; k < 8 - tail; ++k) g[k] = 0;
  }
  std::array<std::uint8_t, 16> bytes{};
  for (int k = 0; k < 8; ++k) {
    bytes[2 * k] = static_cast<std::uint8_t>(g[k] >> 8);
    bytes[2 * k + 1] = static_cast<std::uint8_t>(g[k] & 0xFF);
  }
  return bytes;
}

namespace detail {

Status parseUriInto(std::string_view text, Uri& u, bool collect) {
  resetForParse(u);
  u.text = text;
  // Fast path for the scheme nearly every URI has.
  if (text.size() >= 4 && (text[0] | 0x20) == 's' && (text[1] | 0x20) == 'i' &&
      (text[2] | 0x20) == 'p' && text[3] == ':') {
    u.scheme = Uri::Scheme::kSip;
    u.scheme_text = text.substr(0, 3);
    return parseSipRest(text.substr(4), u, collect);
  }
  Cursor c(text);
  const char* s = c.p;
  if (!is(c.peek(), kAlpha)) return bad("missing URI scheme");
  while (!c.done() &&
         (is(c.peek(), kAlpha | kDigit) || c.peek() == '+' || c.peek() == '-' || c.peek() == '.')) {
    ++c.p;
  }
  u.scheme_text = c.since(s);
  if (!c.consume(':')) return bad("missing URI scheme");
  const std::string_view rest = c.rest();
  if (iequals(u.scheme_text, "sip")) {
    u.scheme = Uri::Scheme::kSip;
    return parseSipRest(rest, u, collect);
  }
  if (iequals(u.scheme_text, "sips")) {
    u.scheme = Uri::Scheme::kSips;
    return parseSipRest(rest, u, collect);
  }
  if (iequals(u.scheme_text, "tel")) {
    u.scheme = Uri::Scheme::kTel;
    return parseTelRest(rest, u, collect);
  }
  u.scheme = Uri::Scheme::kOther;
  if (rest.empty()) return bad("empty URI after scheme");
  if (!allOf(rest, kUric)) return bad("invalid character in URI");
  if (hasBadEscape(rest)) return bad("invalid %-escape in URI");
  return Status::ok();
}

}  // namespace detail

Result<Uri> parseUri(std::string_view text) {
  Uri u;
  if (Status s = detail::parseUriInto(text, u, /*collect=*/true); !s) return s;
  return u;
}

bool uriEquivalent(const Uri& a, const Uri& b) {
  if (a.scheme != b.scheme) return false;
  switch (a.scheme) {
    case Uri::Scheme::kOther:
      return iequals(a.scheme_text, b.scheme_text) &&
             a.text.substr(a.scheme_text.size()) == b.text.substr(b.scheme_text.size());
    case Uri::Scheme::kTel:
      return telDigits(a.user) == telDigits(b.user) && a.params.size() == b.params.size() &&
             paramsEquivalent(a.params, b.params) && paramsEquivalent(b.params, a.params);
    case Uri::Scheme::kSip:
    case Uri::Scheme::kSips:
      break;
  }
  if (a.user.empty() != b.user.empty()) return false;
  if (!escapedEqual(a.user, b.user, /*case_sensitive=*/true)) return false;
  if (a.has_password != b.has_password) return false;
  if (!escapedEqual(a.password, b.password, /*case_sensitive=*/true)) return false;
  if (!hostEqual(a.host, b.host)) return false;
  if (a.has_port != b.has_port || a.port != b.port) return false;
  if (!paramsEquivalent(a.params, b.params)) return false;
  return headersEquivalent(a.headers, b.headers);
}

bool hostEquivalent(std::string_view a, std::string_view b) { return hostEqual(a, b); }

Result<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (!(i + 2 < s.size()) || hexValue(s[i + 1]) < 0 || hexValue(s[i + 2]) < 0) {
      return invalidArgument("invalid %-escape");
    }
    out.push_back(static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2])));
    i += 2;
  }
  return out;
}

std::string detail::eraseParamsFrom(std::string_view text,
                                    std::initializer_list<const std::vector<Param>*> lists,
                                    ParamFilter drop) {
  // [begin, end) of each ";name[=value]" to cut, in text order.
  std::vector<std::pair<std::size_t, std::size_t>> cuts;
  const char* base = text.data();
  for (const std::vector<Param>* list : lists) {
    for (const Param& p : *list) {
      if (!drop(p.name)) continue;
      if (p.name.data() < base || p.name.data() > base + text.size()) continue;
      const std::size_t name_at = static_cast<std::size_t>(p.name.data() - base);
      std::size_t begin = name_at;
      while (begin > 0 && isLws(text[begin - 1])) --begin;  // header params allow "; name"
      if (begin == 0 || text[begin - 1] != ';') continue;   // not the form we can cut safely
      const std::string_view last = p.has_value ? p.value : p.name;
      std::size_t end = static_cast<std::size_t>(last.data() + last.size() - base);
      if (end > text.size() || end < name_at) continue;
      --begin;                                              // the ';'
      while (begin > 0 && isLws(text[begin - 1])) --begin;  // and the LWS before it
      cuts.emplace_back(begin, end);
    }
  }
  if (cuts.empty()) return std::string(text);
  std::sort(cuts.begin(), cuts.end());
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  for (const auto& [begin, end] : cuts) {
    if (begin < at) continue;
    out.append(text.substr(at, begin - at));
    at = end;
  }
  out.append(text.substr(at));
  return out;
}

std::string eraseUriParams(std::string_view uri, ParamFilter drop) {
  auto parsed = parseUri(uri);
  if (!parsed) return std::string(uri);
  return detail::eraseParamsFrom(uri, {&parsed->params}, drop);
}

}  // namespace sipwake::sip
