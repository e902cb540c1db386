// HTTP/SIP Digest authentication primitives (RFC 7616, compatible with RFC 2617 and RFC 2069
// clients): parsing Authorization / Proxy-Authorization values, building challenges, computing
// and verifying responses. Pure functions on string_views; no I/O, no shared state.
// Thread: every function here may be called concurrently from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sipwake::auth {

// The "-sess" variants are accepted when configured; nothing offers them by default.
enum class DigestAlgorithm : std::uint8_t { kMd5, kMd5Sess, kSha256, kSha256Sess };

// Canonical token as written in challenges ("MD5", "SHA-256", ...).
std::string_view algorithmName(DigestAlgorithm a);
// Case-insensitive; nullopt for anything we do not implement (e.g. SHA-512-256).
std::optional<DigestAlgorithm> parseAlgorithm(std::string_view token);
// The algorithm whose H() makes the stored HA1 ("MD5-sess" uses an MD5 HA1).
DigestAlgorithm baseAlgorithm(DigestAlgorithm a);
// Number of lower-hex characters of H() for `a`: 32 (MD5) or 64 (SHA-256).
std::size_t hexLength(DigestAlgorithm a);

// A lower-hex digest held inline (no allocation): 32 or 64 characters.
struct HexDigest {
  std::array<char, 64> hex{};
  std::uint8_t size = 0;

  std::string_view view() const { return {hex.data(), size}; }
  bool empty() const { return size == 0; }
  // Accepts 32 or 64 hex digits in either case and stores them lower-cased; nullopt otherwise.
  static std::optional<HexDigest> fromHex(std::string_view text);
  friend bool operator==(const HexDigest& a, const HexDigest& b) { return a.view() == b.view(); }
};

enum class Qop : std::uint8_t { kNone, kAuth };

// Parsed Digest credentials. Views point into the header value passed to the parser, except for
// quoted strings that contained escapes, whose unescaped text lives in storage owned by this
// object (stable across moves). Move-only.
// REQUIRES: the header value outlives this object.
struct DigestCredentials {
  std::string_view username;
  std::string_view realm;
  std::string_view nonce;
  std::string_view uri;
  std::string_view response;  // hex, length checked against `algorithm`; case as sent
  std::string_view cnonce;    // empty when qop is absent
  std::string_view opaque;
  std::string_view nc_text;  // the 8 hex digits as sent (they enter the hash verbatim)
  std::uint32_t nc = 0;      // 0 when qop is absent, else >= 1
  DigestAlgorithm algorithm = DigestAlgorithm::kMd5;  // RFC 2617: absent means MD5
  Qop qop = Qop::kNone;
  bool has_opaque = false;

  DigestCredentials() = default;
  DigestCredentials(DigestCredentials&&) = default;
  DigestCredentials& operator=(DigestCredentials&&) = default;
  DigestCredentials(const DigestCredentials&) = delete;
  DigestCredentials& operator=(const DigestCredentials&) = delete;

  std::unique_ptr<char[]> unescaped_storage_;  // only when some quoted value had a backslash
};

// The auth-scheme token at the start of a credentials value ("Digest", "Basic", ...), or empty.
std::string_view authScheme(std::string_view header_value);

// Parses one Authorization / Proxy-Authorization value ("Digest username=..., ...").
// Accepts quoted and token forms for every parameter (RFC 7616 forbids quoting algorithm, qop and
// nc, but RFC 2617-era SIP phones do it), quoted-pair escapes, empty list elements, folded LWS and
// unknown auth-params (ignored). Returns InvalidArgument naming the defect: scheme other than
// Digest, duplicate or missing parameter, bad nc / response / algorithm / qop, userhash=true,
// cnonce or nc without qop.
Result<DigestCredentials> parseDigestCredentials(std::string_view header_value);

// H(user ":" realm ":" password): what the user store keeps instead of the password.
HexDigest computeHa1(DigestAlgorithm a, std::string_view user, std::string_view realm,
                     std::string_view password);

// Everything the response hash covers. `ha1` is the stored HA1 for baseAlgorithm(algorithm);
// the -sess variants derive the session HA1 from it here.
struct ResponseInputs {
  DigestAlgorithm algorithm = DigestAlgorithm::kMd5;
  std::string_view ha1;
  std::string_view nonce;
  std::string_view nc_text;  // ignored when qop is kNone
  std::string_view cnonce;   // ignored when qop is kNone (except for -sess HA1)
  Qop qop = Qop::kNone;
  std::string_view method;
  std::string_view uri;
};

// qop=auth: H(HA1:nonce:nc:cnonce:auth:HA2); no qop (RFC 2069): H(HA1:nonce:HA2);
// HA2 = H(method:uri).
HexDigest computeResponse(const ResponseInputs& in);

// Inputs for `c` and `method`, with `ha1` (REQUIRES: outlives the returned value's use).
ResponseInputs responseInputs(const DigestCredentials& c, std::string_view method,
                              std::string_view ha1);

// True when c.response is the correct response for `method` and `ha1`. The comparison takes the
// same time wherever the first differing character is.
bool verifyResponse(const DigestCredentials& c, std::string_view method, std::string_view ha1);

// Equality of two hex strings (second may be upper-case) in time independent of the contents.
bool constantTimeHexEquals(std::string_view expected_lower, std::string_view given);

struct ChallengeParams {
  std::string_view realm;
  std::string_view nonce;
  std::string_view opaque;  // omitted when empty
  DigestAlgorithm algorithm = DigestAlgorithm::kSha256;
  bool qop_auth = true;  // qop="auth"; false only for RFC 2069 interop tests
  bool stale = false;
};

// `Digest realm="..", nonce="..", opaque="..", algorithm=SHA-256, qop="auth"[, stale=true]`
// (a header value: no header name, no CRLF). Quotes and backslashes in realm/opaque are escaped.
std::string buildChallenge(const ChallengeParams& p);

// The client side: one Digest challenge (a WWW-Authenticate / Proxy-Authenticate value) and the
// credentials that answer it from a stored HA1. Owns its text (kept to answer later requests
// with the same nonce).
struct DigestChallenge {
  std::string realm;
  std::string nonce;
  std::string opaque;
  bool has_opaque = false;
  std::string algorithm_text;  // as sent; empty when absent
  // RFC 2617: absent means MD5; nullopt for a token we do not implement (algorithm_text says it).
  std::optional<DigestAlgorithm> algorithm = DigestAlgorithm::kMd5;
  bool qop_given = false;  // a qop parameter was present
  bool qop_auth = false;   // "auth" is among its options
  bool stale = false;
};

// Parses one challenge value ("Digest realm=.., nonce=.., ..."). InvalidArgument (naming the
// defect) for another scheme, bad syntax, or no realm / nonce. Unknown parameters are ignored.
Result<DigestChallenge> parseDigestChallenge(std::string_view header_value);

// True when buildCredentials() can answer `c`: algorithm MD5 or SHA-256, and qop "auth" offered
// or no qop (RFC 2069). The -sess variants and auth-int-only challenges are not answered.
bool canAnswer(const DigestChallenge& c);

struct ClientAnswer {
  std::string_view username;
  std::string_view ha1;  // H(username:realm:password) for baseAlgorithm(*c.algorithm)
  std::string_view method;
  std::string_view uri;     // the digest-uri: the request's Request-URI
  std::string_view cnonce;  // fresh per nonce, from a CSPRNG; used when qop=auth
  std::uint32_t nc = 1;     // 1 for a nonce's first use, then +1 per request
};

// The Authorization / Proxy-Authorization value answering `c`: username, realm, nonce, uri,
// response, algorithm, and qop=auth, nc, cnonce when `c` offers qop "auth"; opaque echoed.
// REQUIRES: canAnswer(c), a.nc >= 1.
std::string buildCredentials(const DigestChallenge& c, const ClientAnswer& a);

// 32 lower-hex characters from OpenSSL's CSPRNG (RAND_bytes); Unavailable if it is not seeded.
Result<std::string> randomCnonce();

}  // namespace sipwake::auth
