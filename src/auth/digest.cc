#include "auth/digest.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>

#include "auth/hash_internal.h"

namespace sipwake::auth {
namespace {

char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) return false;
  }
  return true;
}

bool isHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
unsigned hexValue(char c) {
  if (c <= '9') return static_cast<unsigned>(c - '0');
  return static_cast<unsigned>(asciiLower(c) - 'a' + 10);
}

// LWS after unfolding; CR/LF are accepted too so that values with folding still parse.
bool isLws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// RFC 3261 §25.1 token characters.
bool isTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '-':
    case '.':
    case '!':
    case '%':
    case '*':
    case '_':
    case '+':
    case '`':
    case '\'':
    case '~':
      return true;
    default:
      return false;
  }
}

internal::Md mdOf(DigestAlgorithm a) {
  return baseAlgorithm(a) == DigestAlgorithm::kMd5 ? internal::Md::kMd5 : internal::Md::kSha256;
}

HexDigest hashHex(DigestAlgorithm a, std::initializer_list<std::string_view> parts) {
  unsigned char raw[internal::kMaxDigestBytes];
  std::size_t n = internal::hashRaw(mdOf(a), parts, raw);
  HexDigest d;
  internal::toLowerHex(raw, n, d.hex.data());
  d.size = static_cast<std::uint8_t>(2 * n);
  return d;
}

enum ParamBit : std::uint32_t {
  kUsername = 1u << 0,
  kRealm = 1u << 1,
  kNonce = 1u << 2,
  kUri = 1u << 3,
  kResponse = 1u << 4,
  kAlgorithm = 1u << 5,
  kCnonce = 1u << 6,
  kOpaque = 1u << 7,
  kQop = 1u << 8,
  kNc = 1u << 9,
  kUserhash = 1u << 10,
};

struct KnownParam {
  std::string_view name;
  ParamBit bit;
};
constexpr KnownParam kKnownParams[] = {
    {"username", kUsername}, {"realm", kRealm},
    {"nonce", kNonce},       {"uri", kUri},
    {"response", kResponse}, {"algorithm", kAlgorithm},
    {"cnonce", kCnonce},     {"opaque", kOpaque},
    {"qop", kQop},           {"nc", kNc},
    {"userhash", kUserhash},
};

Status paramError(std::string_view prefix, std::string_view what, std::string_view param) {
  std::string m(prefix);
  m.append(": ");
  m.append(what);
  m.append(" '");
  m.append(param);
  m.append("'");
  return invalidArgument(std::move(m));
}

Status paramError(std::string_view what, std::string_view param) {
  return paramError("Digest credentials", what, param);
}

// The auth-param list of a Digest credentials or challenge value (RFC 7235 §2.1 with RFC 3261's
// LWS): "Digest" then name=value pairs, quoted or token, separated by commas (empty elements
// allowed). Quoted values with escapes are unescaped into `storage` (sized for the whole input
// once). `prefix` starts every error message ("Digest credentials", "Digest challenge").
class ParamScanner {
 public:
  ParamScanner(std::string_view text, std::string_view prefix, std::unique_ptr<char[]>& storage)
      : s_(text), prefix_(prefix), storage_(storage) {}

  // Checks the "Digest" scheme and the LWS after it.
  Status scheme() {
    skipLws();
    std::size_t start = pos_;
    while (pos_ < s_.size() && isTokenChar(s_[pos_])) ++pos_;
    if (!iequals(s_.substr(start, pos_ - start), "Digest")) {
      return invalidArgument(std::string(prefix_) + ": auth-scheme is not Digest");
    }
    if (pos_ >= s_.size() || !isLws(s_[pos_])) {
      return invalidArgument(std::string(prefix_) + ": no parameters after 'Digest'");
    }
    return Status::ok();
  }

  // The next name=value pair; false at the end of the list.
  Result<bool> next(std::string_view& name, std::string_view& value) {
    // #rule: empty list elements are allowed ("a=1,,b=2").
    skipLws();
    while (pos_ < s_.size() && s_[pos_] == ',') {
      ++pos_;
      skipLws();
    }
    if (pos_ >= s_.size()) return false;
    std::size_t name_start = pos_;
    while (pos_ < s_.size() && isTokenChar(s_[pos_])) ++pos_;
    name = s_.substr(name_start, pos_ - name_start);
    if (name.empty()) {
      return invalidArgument(std::string(prefix_) + ": expected a parameter name at offset " +
                             std::to_string(pos_));
    }
    skipLws();
    if (pos_ >= s_.size() || s_[pos_] != '=') return error("missing '=' after", name);
    ++pos_;
    skipLws();
    if (pos_ < s_.size() && s_[pos_] == '"') {
      Status st = quotedString(name, value);
      if (!st) return st;
    } else {
      std::size_t vs = pos_;
      while (pos_ < s_.size() && !isLws(s_[pos_]) && s_[pos_] != ',' && s_[pos_] != '"') {
        ++pos_;
      }
      value = s_.substr(vs, pos_ - vs);
      if (value.empty()) return error("empty value for", name);
    }
    skipLws();
    if (pos_ < s_.size() && s_[pos_] != ',') return error("unexpected text after", name);
    return true;
  }

  // Calls fn(name, value) for every pair until the end or the first error (the scanner's or
  // fn's).
  template <typename Fn>
  Status each(Fn&& fn) {
    for (;;) {
      std::string_view name;
      std::string_view value;
      Result<bool> more = next(name, value);
      if (!more) return more.status();
      if (!*more) return Status::ok();
      if (Status st = fn(name, value); !st) return st;
    }
  }

  Status error(std::string_view what, std::string_view param) const {
    return paramError(prefix_, what, param);
  }

 private:
  void skipLws() {
    while (pos_ < s_.size() && isLws(s_[pos_])) ++pos_;
  }

  // At an opening quote. Without escapes the value is a view of the input; with escapes it is
  // copied, unescaped, into storage_.
  Status quotedString(std::string_view name, std::string_view& value) {
    ++pos_;
    std::size_t start = pos_;
    bool escaped = false;
    for (;;) {
      if (pos_ >= s_.size()) return error("unterminated quoted string in", name);
      char ch = s_[pos_];
      if (ch == '"') break;
      if (ch == '\\') {
        escaped = true;
        if (pos_ + 1 >= s_.size()) return error("unterminated quoted string in", name);
        char next = s_[pos_ + 1];
        if (next == '\r' || next == '\n') return error("bad escape in", name);
        pos_ += 2;
        continue;
      }
      if (static_cast<unsigned char>(ch) < 0x20 && ch != '\t' && ch != '\r' && ch != '\n') {
        return error("control character in", name);
      }
      if (ch == 0x7F) return error("control character in", name);
      ++pos_;
    }
    std::string_view raw = s_.substr(start, pos_ - start);
    ++pos_;  // closing quote
    if (!escaped) {
      value = raw;
      return Status::ok();
    }
    if (!storage_) storage_ = std::make_unique<char[]>(s_.size());
    char* out = storage_.get() + storage_used_;
    std::size_t n = 0;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\') ++i;
      out[n++] = raw[i];
    }
    storage_used_ += n;
    value = std::string_view(out, n);
    return Status::ok();
  }

  std::string_view s_;
  std::string_view prefix_;
  std::unique_ptr<char[]>& storage_;
  std::size_t pos_ = 0;
  std::size_t storage_used_ = 0;
};

class CredentialsParser {
 public:
  explicit CredentialsParser(std::string_view text) : s_(text) {}

  Result<DigestCredentials> parse() {
    DigestCredentials c;
    ParamScanner scan(s_, "Digest credentials", c.unescaped_storage_);
    if (Status st = scan.scheme(); !st) return st;
    std::uint32_t seen = 0;
    std::string_view algorithm_text;
    std::string_view qop_text;
    Status scanned = scan.each([&](std::string_view name, std::string_view value) -> Status {
      ParamBit bit{};
      bool known = false;
      for (const KnownParam& kp : kKnownParams) {
        if (iequals(name, kp.name)) {
          bit = kp.bit;
          known = true;
          break;
        }
      }
      if (!known) return Status::ok();  // auth-param extension: ignored
      if (seen & bit) return paramError("duplicate parameter", name);
      seen |= bit;
      switch (bit) {
        case kUsername:
          c.username = value;
          break;
        case kRealm:
          c.realm = value;
          break;
        case kNonce:
          c.nonce = value;
          break;
        case kUri:
          c.uri = value;
          break;
        case kResponse:
          c.response = value;
          break;
        case kAlgorithm:
          algorithm_text = value;
          break;
        case kCnonce:
          c.cnonce = value;
          break;
        case kOpaque:
          c.opaque = value;
          c.has_opaque = true;
          break;
        case kQop:
          qop_text = value;
          break;
        case kNc:
          c.nc_text = value;
          break;
        case kUserhash:
          if (iequals(value, "true")) {
            return invalidArgument("Digest credentials: userhash=true is not supported");
          }
          if (!iequals(value, "false")) return paramError("bad value for", name);
          break;
      }
      return Status::ok();
    });
    if (!scanned) return scanned;

    static constexpr std::pair<ParamBit, std::string_view> kRequired[] = {
        {kUsername, "username"}, {kRealm, "realm"},       {kNonce, "nonce"},
        {kUri, "uri"},           {kResponse, "response"},
    };
    for (const auto& [bit, name] : kRequired) {
      if (!(seen & bit)) return paramError("missing parameter", name);
    }
    if (c.username.empty()) return paramError("empty value for", "username");
    if (c.nonce.empty()) return paramError("empty value for", "nonce");
    if (c.uri.empty()) return paramError("empty value for", "uri");

    if (seen & kAlgorithm) {
      std::optional<DigestAlgorithm> a = parseAlgorithm(algorithm_text);
      if (!a) return paramError("unsupported algorithm", algorithm_text);
      c.algorithm = *a;
    }
    if (seen & kQop) {
      if (!iequals(qop_text, "auth")) return paramError("unsupported qop", qop_text);
      c.qop = Qop::kAuth;
      if (!(seen & kCnonce)) return paramError("missing parameter (qop given)", "cnonce");
      if (!(seen & kNc)) return paramError("missing parameter (qop given)", "nc");
      if (c.cnonce.empty()) return paramError("empty value for", "cnonce");
      if (c.nc_text.size() != 8) return paramError("must be 8 hex digits:", "nc");
      std::uint32_t nc = 0;
      for (char ch : c.nc_text) {
        if (!isHex(ch)) return paramError("must be 8 hex digits:", "nc");
        nc = (nc << 4) | hexValue(ch);
      }
      if (nc == 0) return paramError("must be at least 1:", "nc");
      c.nc = nc;
    } else {
      // RFC 2617 §3.2.2: cnonce and nc MUST NOT be sent without qop.
      if (seen & kCnonce) return paramError("given without qop:", "cnonce");
      if (seen & kNc) return paramError("given without qop:", "nc");
    }
    if (c.response.size() != hexLength(c.algorithm)) {
      return paramError("wrong length for the algorithm:", "response");
    }
    for (char ch : c.response) {
      if (!isHex(ch)) return paramError("not hexadecimal:", "response");
    }
    return c;
  }

 private:
  std::string_view s_;
};

void appendQuoted(std::string& out, std::string_view v) {
  out.push_back('"');
  for (char ch : v) {
    if (ch == '"' || ch == '\\') out.push_back('\\');
    out.push_back(ch);
  }
  out.push_back('"');
}

}  // namespace

std::string_view algorithmName(DigestAlgorithm a) {
  switch (a) {
    case DigestAlgorithm::kMd5:
      return "MD5";
    case DigestAlgorithm::kMd5Sess:
      return "MD5-sess";
    case DigestAlgorithm::kSha256:
      return "SHA-256";
    case DigestAlgorithm::kSha256Sess:
      return "SHA-256-sess";
  }
  return "MD5";
}

std::optional<DigestAlgorithm> parseAlgorithm(std::string_view token) {
  for (DigestAlgorithm a : {DigestAlgorithm::kMd5, DigestAlgorithm::kMd5Sess,
                            DigestAlgorithm::kSha256, DigestAlgorithm::kSha256Sess}) {
    if (iequals(token, algorithmName(a))) return a;
  }
  return std::nullopt;
}

DigestAlgorithm baseAlgorithm(DigestAlgorithm a) {
  return (a == DigestAlgorithm::kMd5 || a == DigestAlgorithm::kMd5Sess) ? DigestAlgorithm::kMd5
                                                                        : DigestAlgorithm::kSha256;
}

std::size_t hexLength(DigestAlgorithm a) {
  return baseAlgorithm(a) == DigestAlgorithm::kMd5 ? 32 : 64;
}

std::optional<HexDigest> HexDigest::fromHex(std::string_view text) {
  if (text.size() != 32 && text.size() != 64) return std::nullopt;
  HexDigest d;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!isHex(text[i])) return std::nullopt;
    d.hex[i] = asciiLower(text[i]);
  }
  d.size = static_cast<std::uint8_t>(text.size());
  return d;
}

std::string_view authScheme(std::string_view v) {
  std::size_t i = 0;
  while (i < v.size() && isLws(v[i])) ++i;
  std::size_t start = i;
  while (i < v.size() && isTokenChar(v[i])) ++i;
  return v.substr(start, i - start);
}

Result<DigestCredentials> parseDigestCredentials(std::string_view header_value) {
  return CredentialsParser(header_value).parse();
}

HexDigest computeHa1(DigestAlgorithm a, std::string_view user, std::string_view realm,
                     std::string_view password) {
  return hashHex(baseAlgorithm(a), {user, ":", realm, ":", password});
}

HexDigest computeResponse(const ResponseInputs& in) {
  const bool sess =
      in.algorithm == DigestAlgorithm::kMd5Sess || in.algorithm == DigestAlgorithm::kSha256Sess;
  HexDigest session_ha1;
  std::string_view ha1 = in.ha1;
  if (sess) {
    session_ha1 = hashHex(in.algorithm, {in.ha1, ":", in.nonce, ":", in.cnonce});
    ha1 = session_ha1.view();
  }
  HexDigest ha2 = hashHex(in.algorithm, {in.method, ":", in.uri});
  if (in.qop == Qop::kAuth) {
    return hashHex(in.algorithm,
                   {ha1, ":", in.nonce, ":", in.nc_text, ":", in.cnonce, ":auth:", ha2.view()});
  }
  return hashHex(in.algorithm, {ha1, ":", in.nonce, ":", ha2.view()});
}

ResponseInputs responseInputs(const DigestCredentials& c, std::string_view method,
                              std::string_view ha1) {
  ResponseInputs in;
  in.algorithm = c.algorithm;
  in.ha1 = ha1;
  in.nonce = c.nonce;
  in.nc_text = c.nc_text;
  in.cnonce = c.cnonce;
  in.qop = c.qop;
  in.method = method;
  in.uri = c.uri;
  return in;
}

bool constantTimeHexEquals(std::string_view expected_lower, std::string_view given) {
  if (expected_lower.size() != given.size() || given.size() > 64) return false;
  char lowered[64];
  for (std::size_t i = 0; i < given.size(); ++i) {
    // For hex digits, setting bit 0x20 lower-cases A-F and leaves 0-9 alone; it is
    // branch-free so timing does not depend on the characters.
    lowered[i] = static_cast<char>(given[i] | 0x20);
  }
  return CRYPTO_memcmp(expected_lower.data(), lowered, given.size()) == 0;
}

bool verifyResponse(const DigestCredentials& c, std::string_view method, std::string_view ha1) {
  HexDigest expected = computeResponse(responseInputs(c, method, ha1));
  return constantTimeHexEquals(expected.view(), c.response);
}

std::string buildChallenge(const ChallengeParams& p) {
  std::string out;
  out.reserve(64 + p.realm.size() + p.nonce.size() + p.opaque.size());
  out.append("Digest realm=");
  appendQuoted(out, p.realm);
  out.append(", nonce=");
  appendQuoted(out, p.nonce);
  if (!p.opaque.empty()) {
    out.append(", opaque=");
    appendQuoted(out, p.opaque);
  }
  out.append(", algorithm=");
  out.append(algorithmName(p.algorithm));
  if (p.qop_auth) out.append(", qop=\"auth\"");
  if (p.stale) out.append(", stale=true");
  return out;
}

Result<DigestChallenge> parseDigestChallenge(std::string_view header_value) {
  std::unique_ptr<char[]> storage;
  ParamScanner scan(header_value, "Digest challenge", storage);
  if (Status st = scan.scheme(); !st) return st;
  DigestChallenge c;
  bool has_realm = false;
  bool has_nonce = false;
  Status scanned = scan.each([&](std::string_view name, std::string_view value) {
    if (iequals(name, "realm")) {
      c.realm = value;
      has_realm = true;
    } else if (iequals(name, "nonce")) {
      c.nonce = value;
      has_nonce = true;
    } else if (iequals(name, "opaque")) {
      c.opaque = value;
      c.has_opaque = true;
    } else if (iequals(name, "algorithm")) {
      c.algorithm_text = value;
      c.algorithm = parseAlgorithm(value);
    } else if (iequals(name, "qop")) {
      // A quoted list of options ("auth,auth-int"); only "auth" is one we answer.
      c.qop_given = true;
      std::size_t i = 0;
      while (i < value.size()) {
        std::size_t comma = value.find(',', i);
        if (comma == std::string_view::npos) comma = value.size();
        std::string_view option = value.substr(i, comma - i);
        while (!option.empty() && isLws(option.front())) option.remove_prefix(1);
        while (!option.empty() && isLws(option.back())) option.remove_suffix(1);
        if (iequals(option, "auth")) c.qop_auth = true;
        i = comma + 1;
      }
    } else if (iequals(name, "stale")) {
      c.stale = iequals(value, "true");
    }
    // domain, charset, userhash and extensions: nothing a SIP client acts on here.
    return Status::ok();
  });
  if (!scanned) return scanned;
  if (!has_realm) return scan.error("missing parameter", "realm");
  if (!has_nonce || c.nonce.empty()) return scan.error("missing parameter", "nonce");
  return c;
}

bool canAnswer(const DigestChallenge& c) {
  return (c.algorithm == DigestAlgorithm::kMd5 || c.algorithm == DigestAlgorithm::kSha256) &&
         (!c.qop_given || c.qop_auth);
}

std::string buildCredentials(const DigestChallenge& c, const ClientAnswer& a) {
  SIPWAKE_CHECK(canAnswer(c));
  SIPWAKE_CHECK(a.nc >= 1);
  static constexpr char kHex[] = "0123456789abcdef";
  char nc_text[8];
  for (int i = 0; i < 8; ++i) nc_text[i] = kHex[(a.nc >> (28 - 4 * i)) & 0xf];
  ResponseInputs in;
  in.algorithm = *c.algorithm;
  in.ha1 = a.ha1;
  in.nonce = c.nonce;
  in.nc_text = std::string_view(nc_text, 8);
  in.cnonce = a.cnonce;
  in.qop = c.qop_auth ? Qop::kAuth : Qop::kNone;
  in.method = a.method;
  in.uri = a.uri;
  HexDigest response = computeResponse(in);
  std::string out = "Digest username=";
  appendQuoted(out, a.username);
  out.append(", realm=");
  appendQuoted(out, c.realm);
  out.append(", nonce=");
  appendQuoted(out, c.nonce);
  out.append(", uri=");
  appendQuoted(out, a.uri);
  out.append(", response=\"");
  out.append(response.view());
  out.append("\", algorithm=");
  out.append(algorithmName(*c.algorithm));
  if (in.qop == Qop::kAuth) {
    out.append(", qop=auth, nc=");
    out.append(in.nc_text);
    out.append(", cnonce=");
    appendQuoted(out, a.cnonce);
  }
  if (c.has_opaque) {
    out.append(", opaque=");
    appendQuoted(out, c.opaque);
  }
  return out;
}

Result<std::string> randomCnonce() {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return Status(StatusCode::kUnavailable, "CSPRNG not seeded: no cnonce");
  }
  std::string out(2 * sizeof raw, '\0');
  internal::toLowerHex(raw, sizeof raw, out.data());
  return out;
}

}  // namespace sipwake::auth
