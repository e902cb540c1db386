// The digest-authentication decision the registrar and the proxy call for each request.
//
// Answers (see AuthResult):
//  * TrustedPeer   - source address is a configured PBX/trunk: no authentication.
//  * Authenticated - a valid response from a known user with a fresh, unreplayed nonce.
//  * Challenge     - 401 WWW-Authenticate (registrar) or 407 Proxy-Authenticate (proxy), one
//                    header value per offered algorithm, SHA-256 first (RFC 7616 §3.7, RFC 8760).
//                    MD5 alone (when configured at all) for a client the MD5-only policy names:
//                    its User-Agent starts with one of md5_only_user_agents, or it sent none and
//                    md5_only_without_user_agent is set (see AuthConfig).
//                    An unknown user and a wrong password get the same fresh challenge after the
//                    same hashing work (a dummy HA1 stands in for the missing user), so neither the
//                    answer nor its timing tells whether a user exists. stale=true when the digest
//                    was right but the nonce expired, was replayed, or came from another secret.
//  * BadRequest    - 400: credentials for our realm that do not parse, or whose uri the
//                    configured UriCheck refuses (RFC 2617 §3.2.2.5). The reason names the bad
//                    parameter.
//  * Forbidden     - 403: authenticated, but not the owner of the AOR the caller required.
//  * RateLimited   - 403 "Too Many Failed Attempts" with Retry-After. Not 429: in SIP, 429 is
//                    "Provide Referrer Identity" (RFC 3892), and 503 would make RFC 3263 clients
//                    fail over to (or blacklist) the whole server. The answer is not checked
//                    (no hashing), so it tells a guesser nothing. Given
//                    - while the source is blocked (RateLimiter, auth.rate_limited), to requests
//                      with credentials, unless they name a user who authenticated from that
//                      source before and has not failed from it since (the real user behind a
//                      NAT address someone else guesses from: auth.known_source_checks).
//                      Requests without credentials get their Challenge;
//                    - while the user is delayed (UserLimiter, auth.user_delayed), to sources
//                      that are failing for that user, and to sources that have been guessing
//                      (a wrong or refused answer for any user) unless known for the user; a
//                      source that has not been guessing is checked (auth.fresh_source_checks).
// Failures counted against the source (RateLimiter) and the user named (UserLimiter, also an
// unknown one), auth.failures: wrong digest (wrong password or unknown user), malformed
// credentials (source only). Not failures: a stale/replayed nonce with a correct digest, and a
// uri the UriCheck refuses (a client or an SBC writing another URI there is an interop problem,
// not a password guess; counted in auth.uri_check.rejected). A success makes the source known
// for the user (after the nonce check: a replayed response proves nothing about its sender).
// With AuthConfig::log_failures every failure and refusal logs one warning,
//   auth failure: source=IP user="NAME" realm="REALM" reason=REASON
// REASON: wrong_password, unknown_user, malformed_credentials, not_aor_owner, source_blocked,
// user_delayed.
//
// The digest uri (UriCheck, counters auth.uri_check.*, see sip_credentials.h):
//  * kEquivalent - accepts the Request-URI (§19.1.4 equivalence: "same"), the Request-URI's host
//                  with another port/parameters ("other_port"), or a URI naming this server
//                  ("server"); anything else is "rejected".
//  * kStrict     - only "same"; everything else is "rejected".
//  * kOff        - accepts any uri; one that is not "same" is counted "unchecked".
// The response hash always covers the uri the client sent.
//
// Thread: authenticate() may be called concurrently from any number of event loops. The
// CredentialLookup must be safe to call the same way.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "auth/digest.h"
#include "auth/nonce.h"
#include "auth/rate_limiter.h"
#include "auth/sip_credentials.h"
#include "auth/trusted_peers.h"
#include "auth/user_limiter.h"
#include "common/clock.h"
#include "common/stats.h"

namespace sipwake::auth {

// Stored credentials of one user: HA1 for each algorithm that was provisioned (empty if not).
struct UserHa1 {
  HexDigest md5;     // H_MD5(user:realm:password)
  HexDigest sha256;  // H_SHA256(user:realm:password)
};

// Finds the HA1s of `user` in `realm`; nullopt when there is no such user. Implemented by the
// user store; must be thread-safe. Called once per request carrying credentials for our realm.
using CredentialLookup =
    std::function<std::optional<UserHa1>(std::string_view user, std::string_view realm)>;

enum class UriCheck : std::uint8_t { kEquivalent, kStrict, kOff };

struct AuthConfig {
  // Offered in challenges in this order and the only ones accepted.
  std::vector<DigestAlgorithm> algorithms = {DigestAlgorithm::kSha256, DigestAlgorithm::kMd5};
  NonceConfig nonce;
  RateLimiterConfig rate_limit;  // failures per source address
  UserLimiterConfig user_limit;  // failures per user: an exponential delay
  // One warning per failed or refused answer in the fail2ban format of docs/security.md.
  bool log_failures = false;
  bool allow_no_qop = true;  // accept RFC 2069 responses (no qop, no nc); see nonce.h
  // Clients that fail on any SHA-256 challenge, even beside an MD5 one (baresip 1.0 / libre),
  // or that only read the first challenge and only know MD5 (sipp 3.6, which sends no
  // User-Agent) are challenged with MD5 alone. Prefixes of the User-Agent value, compared
  // case-insensitively. Everyone else gets `algorithms` in order.
  std::vector<std::string> md5_only_user_agents = {"baresip"};
  bool md5_only_without_user_agent = true;
  UriCheck uri_check = UriCheck::kEquivalent;
  // Names this server, for UriCheck::kEquivalent; empty: no uri counts as naming the server.
  // Must be thread-safe; may be set before what it reads exists (it is called per request only).
  LocalHostCheck is_local_host;
  std::string secret;  // nonce secret; empty: random per process (RAND_bytes)
};

// The AOR a REGISTER is for (the To URI): user part still %-escaped as in the message.
struct AorRef {
  std::string_view user;
  std::string_view host;
};

struct AuthRequest {
  std::string_view method;       // e.g. "REGISTER"
  std::string_view request_uri;  // Request-URI text as in the request line
  // Values of every Authorization (registrar) or Proxy-Authorization (proxy) header.
  std::span<const std::string_view> credentials;
  std::string_view realm;      // our realm for this request (the domain)
  std::string_view source_ip;  // address text of the transport source
  bool is_proxy = false;       // false: 401/WWW-Authenticate, true: 407/Proxy-Authenticate
  TimePoint now{};
  std::optional<AorRef> must_own;              // when set, the authenticated user must own this AOR
  std::optional<std::string_view> user_agent;  // the User-Agent value; nullopt when absent
};

struct Authenticated {
  std::string user;
  DigestAlgorithm algorithm = DigestAlgorithm::kSha256;
};
struct TrustedPeer {};
struct Challenge {
  int status = 401;
  std::string_view header_name;  // "WWW-Authenticate" or "Proxy-Authenticate"
  std::vector<std::string> values;
  bool stale = false;
};
struct Forbidden {
  std::string reason;
};
struct RateLimited {
  int status = 403;
  std::string_view reason = "Too Many Failed Attempts";
  seconds retry_after{0};  // for a Retry-After header; at least 1
};
struct BadRequest {
  std::string reason;
};

using AuthResult =
    std::variant<Authenticated, TrustedPeer, Challenge, Forbidden, RateLimited, BadRequest>;

// RFC 3261 §19.1.4 rules: the user part compares case-sensitively after %-decoding, the host
// case-insensitively. True when `user`@`realm` is the AOR (`aor.user` escaped, `aor.host`).
bool ownsAor(std::string_view user, std::string_view realm, const AorRef& aor);

class Authenticator {
 public:
  // REQUIRES: config.algorithms non-empty; config.secret empty or >= 16 bytes.
  // Aborts if the CSPRNG cannot produce a secret (nothing can be authenticated safely).
  Authenticator(AuthConfig config, CredentialLookup lookup, TrustedPeers trusted);
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  AuthResult authenticate(const AuthRequest& req);

  // A fresh challenge without looking at any credentials (e.g. for a request the caller knows
  // must be challenged). Counts auth.challenges.
  Challenge challenge(std::string_view realm, bool is_proxy, bool stale, TimePoint now);

  NonceManager& nonces() { return nonces_; }
  RateLimiter& rateLimiter() { return limiter_; }
  UserLimiter& userLimiter() { return users_; }

 private:
  struct Counters {
    Counter& challenges;
    Counter& success;
    Counter& failures;
    Counter& stale;
    Counter& rate_limited;
    Counter& user_delayed;
    Counter& user_delays;
    Counter& known_source_checks;
    Counter& fresh_source_checks;
    Counter& md5_only;
    Counter& uri_same;
    Counter& uri_other_port;
    Counter& uri_server;
    Counter& uri_unchecked;
    Counter& uri_rejected;
  };

  // True when the credentials' uri passes config_.uri_check; counts the outcome.
  bool uriAccepted(std::string_view digest_uri, std::string_view request_uri);

  bool algorithmEnabled(DigestAlgorithm a) const;
  // True when the MD5-only policy applies to this request (and MD5 is enabled).
  bool md5Only(const AuthRequest& req) const;
  // challenge() with the algorithms this request's client is offered.
  Challenge challengeFor(const AuthRequest& req, bool stale);
  Challenge makeChallenge(std::string_view realm, bool is_proxy, bool stale, TimePoint now,
                          bool md5_only);
  // A wrong answer: counted against the source and (when `user` is not empty) the user.
  AuthResult fail(const AuthRequest& req, const SourceKey& source, std::string_view user,
                  std::string_view reason, AuthResult answer);
  // An answer refused unchecked (a limiter's block or delay with `left` to run).
  AuthResult refuse(const AuthRequest& req, std::string_view user, std::string_view reason,
                    Duration left);
  void logFailure(const AuthRequest& req, std::string_view user, std::string_view reason) const;

  AuthConfig config_;
  CredentialLookup lookup_;
  TrustedPeers trusted_;
  NonceManager nonces_;
  RateLimiter limiter_;
  UserLimiter users_;
  UserHa1 dummy_;  // stands in for unknown users so they cost the same hashing
  Counters stats_;
};

}  // namespace sipwake::auth
