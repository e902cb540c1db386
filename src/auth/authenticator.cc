#include "auth/authenticator.h"

#include <openssl/rand.h>

#include <algorithm>

#include "auth/hash_internal.h"
#include "common/log.h"

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

int hexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = asciiLower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string secretOrRandom(const std::string& configured) {
  if (!configured.empty()) return configured;
  Result<std::string> r = NonceManager::randomSecret(32);
  SIPWAKE_CHECK(r.isOk());
  return std::move(r).value();
}

HexDigest randomHex(std::size_t bytes) {
  unsigned char raw[32];
  SIPWAKE_CHECK(bytes <= sizeof(raw) && RAND_bytes(raw, static_cast<int>(bytes)) == 1);
  HexDigest d;
  internal::toLowerHex(raw, bytes, d.hex.data());
  d.size = static_cast<std::uint8_t>(2 * bytes);
  return d;
}

}  // namespace

bool ownsAor(std::string_view user, std::string_view realm, const AorRef& aor) {
  if (!iequals(realm, aor.host) || user.empty()) return false;
  std::size_t u = 0;
  for (std::size_t i = 0; i < aor.user.size(); ++i) {
    char ch = aor.user[i];
    if (ch == '%') {
      if (i + 2 >= aor.user.size()) return false;
      int hi = hexNibble(aor.user[i + 1]);
      int lo = hexNibble(aor.user[i + 2]);
      if (hi < 0 || lo < 0) return false;
      ch = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (u >= user.size() || user[u] != ch) return false;
    ++u;
  }
  return u == user.size();
}

Authenticator::Authenticator(AuthConfig config, CredentialLookup lookup, TrustedPeers trusted)
    : config_(std::move(config)),
      lookup_(std::move(lookup)),
      trusted_(std::move(trusted)),
      nonces_(secretOrRandom(config_.secret), config_.nonce),
      limiter_(config_.rate_limit),
      users_(config_.user_limit),
      dummy_{randomHex(16), randomHex(32)},
      stats_{Stats::global().counter("auth.challenges"),
             Stats::global().counter("auth.success"),
             Stats::global().counter("auth.failures"),
             Stats::global().counter("auth.stale"),
             Stats::global().counter("auth.rate_limited"),
             Stats::global().counter("auth.user_delayed"),
             Stats::global().counter("auth.user_delays"),
             Stats::global().counter("auth.known_source_checks"),
             Stats::global().counter("auth.fresh_source_checks"),
             Stats::global().counter("auth.md5_only_challenges"),
             Stats::global().counter("auth.uri_check.same"),
             Stats::global().counter("auth.uri_check.other_port"),
             Stats::global().counter("auth.uri_check.server"),
             Stats::global().counter("auth.uri_check.unchecked"),
             Stats::global().counter("auth.uri_check.rejected")} {
  SIPWAKE_CHECK(!config_.algorithms.empty());
  SIPWAKE_CHECK(lookup_ != nullptr);
}

bool Authenticator::algorithmEnabled(DigestAlgorithm a) const {
  for (DigestAlgorithm x : config_.algorithms) {
    if (x == a) return true;
  }
  return false;
}

bool Authenticator::md5Only(const AuthRequest& req) const {
  if (!algorithmEnabled(DigestAlgorithm::kMd5)) return false;
  if (!req.user_agent) return config_.md5_only_without_user_agent;
  for (const std::string& prefix : config_.md5_only_user_agents) {
    if (req.user_agent->size() >= prefix.size() &&
        iequals(req.user_agent->substr(0, prefix.size()), prefix)) {
      return true;
    }
  }
  return false;
}

Challenge Authenticator::challenge(std::string_view realm, bool is_proxy, bool stale,
                                   TimePoint now) {
  return makeChallenge(realm, is_proxy, stale, now, false);
}

Challenge Authenticator::challengeFor(const AuthRequest& req, bool stale) {
  return makeChallenge(req.realm, req.is_proxy, stale, req.now, md5Only(req));
}

Challenge Authenticator::makeChallenge(std::string_view realm, bool is_proxy, bool stale,
                                       TimePoint now, bool md5_only) {
  stats_.challenges.inc();
  if (md5_only) stats_.md5_only.inc();
  Challenge c;
  c.status = is_proxy ? 407 : 401;
  c.header_name = is_proxy ? "Proxy-Authenticate" : "WWW-Authenticate";
  c.stale = stale;
  std::string nonce = nonces_.generate(realm, now);
  c.values.reserve(config_.algorithms.size());
  for (DigestAlgorithm a : config_.algorithms) {
    if (md5_only && a != DigestAlgorithm::kMd5) continue;
    ChallengeParams p;
    p.realm = realm;
    p.nonce = nonce;
    p.opaque = nonces_.opaque();
    p.algorithm = a;
    p.stale = stale;
    c.values.push_back(buildChallenge(p));
  }
  return c;
}

bool Authenticator::uriAccepted(std::string_view digest_uri, std::string_view request_uri) {
  const DigestUriMatch m = matchDigestUri(digest_uri, request_uri, config_.is_local_host);
  if (m == DigestUriMatch::kSame) {
    stats_.uri_same.inc();
    return true;
  }
  switch (config_.uri_check) {
    case UriCheck::kOff:
      stats_.uri_unchecked.inc();
      return true;
    case UriCheck::kStrict:
      break;
    case UriCheck::kEquivalent:
      if (m == DigestUriMatch::kOtherPort) {
        stats_.uri_other_port.inc();
        return true;
      }
      if (m == DigestUriMatch::kThisServer) {
        stats_.uri_server.inc();
        return true;
      }
      break;
  }
  stats_.uri_rejected.inc();
  return false;
}

void Authenticator::logFailure(const AuthRequest& req, std::string_view user,
                               std::string_view reason) const {
  if (!config_.log_failures) return;
  // The fixed format docs/security.md documents for fail2ban: the source comes first, so
  // nothing a client writes in the user name can stand in for it.
  SW_LOG_WARN("auth failure: source={} user=\"{}\" realm=\"{}\" reason={}", req.source_ip, user,
              req.realm, reason);
}

AuthResult Authenticator::fail(const AuthRequest& req, const SourceKey& source,
                               std::string_view user, std::string_view reason, AuthResult answer) {
  stats_.failures.inc();
  limiter_.recordFailure(req.source_ip, req.now);
  if (!user.empty() && users_.recordFailure(user, req.realm, source, req.now)) {
    stats_.user_delays.inc();
  }
  logFailure(req, user, reason);
  return answer;
}

AuthResult Authenticator::refuse(const AuthRequest& req, std::string_view user,
                                 std::string_view reason, Duration left) {
  logFailure(req, user, reason);
  RateLimited r;
  r.retry_after = std::max(seconds(1), std::chrono::ceil<seconds>(left));
  return r;
}

AuthResult Authenticator::authenticate(const AuthRequest& req) {
  if (!trusted_.empty() && trusted_.contains(req.source_ip)) return TrustedPeer{};
  const std::optional<Duration> source_block = limiter_.blockedFor(req.source_ip, req.now);
  const SourceKey source = sourceKeyOf(req.source_ip, limiter_.config().ipv6_prefix);

  // RFC 3261 §22.3: use the credentials for our realm; others belong to other proxies.
  std::optional<DigestCredentials> chosen;
  Status first_error;
  for (std::string_view v : req.credentials) {
    if (!iequals(authScheme(v), "Digest")) continue;
    Result<DigestCredentials> parsed = parseDigestCredentials(v);
    if (!parsed.isOk()) {
      if (first_error.isOk()) first_error = parsed.status();
      continue;
    }
    if (parsed->realm != req.realm) continue;
    chosen.emplace(std::move(parsed).value());
    break;
  }
  if (!chosen) {
    // No credentials: a challenge even while the source is blocked, so that a user known there
    // can answer it (below).
    if (first_error.isOk()) return challengeFor(req, false);
    if (source_block) {
      stats_.rate_limited.inc();
      return refuse(req, {}, "source_blocked", *source_block);
    }
    return fail(req, source, {}, "malformed_credentials", BadRequest{first_error.message()});
  }
  const DigestCredentials& c = *chosen;
  // A blocked source is refused unchecked, except for a user who authenticated from it before
  // (the real user behind a NAT address that someone else guesses from).
  bool passed_as_known = false;
  if (source_block) {
    if (!users_.knownSource(c.username, req.realm, source)) {
      stats_.rate_limited.inc();
      return refuse(req, c.username, "source_blocked", *source_block);
    }
    passed_as_known = true;
  }
  if (!algorithmEnabled(c.algorithm) || (c.qop == Qop::kNone && !config_.allow_no_qop)) {
    // Not an attack signal: the client picked something we do not offer; offer again.
    return challengeFor(req, false);
  }
  if (!uriAccepted(c.uri, req.request_uri)) {
    // Not counted as a failure: no password was tried (see the header).
    return BadRequest{req.is_proxy ? "Proxy-Authorization uri does not match the Request-URI"
                                   : "Authorization uri does not match the Request-URI"};
  }

  const UserLimiter::Admission admission = users_.admit(c.username, req.realm, source, req.now);
  if (!admission.check) {
    stats_.user_delayed.inc();
    return refuse(req, c.username, "user_delayed", admission.retry_after);
  }
  if (passed_as_known || admission.known_source) stats_.known_source_checks.inc();
  if (admission.fresh_check) stats_.fresh_source_checks.inc();

  NonceCheck nonce = nonces_.check(c.nonce, req.realm, req.now);
  // Same work whatever the user store says: unknown users are checked against a dummy HA1.
  std::optional<UserHa1> stored = lookup_(c.username, req.realm);
  const bool md5 = baseAlgorithm(c.algorithm) == DigestAlgorithm::kMd5;
  const HexDigest* ha1 = md5 ? &dummy_.md5 : &dummy_.sha256;
  bool known = false;
  if (stored) {
    const HexDigest& h = md5 ? stored->md5 : stored->sha256;
    if (h.size == hexLength(c.algorithm)) {
      ha1 = &h;
      known = true;
    }
  }
  const bool digest_ok = verifyResponse(c, req.method, ha1->view());
  if (!digest_ok || !known) {
    return fail(req, source, c.username, known ? "wrong_password" : "unknown_user",
                challengeFor(req, false));
  }

  // The client knows the password; a nonce problem only needs a new nonce (stale=true).
  if (nonce.status != NonceStatus::kValid ||
      nonces_.recordUse(nonce, c.qop, c.nc, req.now) == NonceUse::kReplay) {
    stats_.stale.inc();
    return challengeFor(req, true);
  }
  // Only now: a replayed response proves nothing about its sender.
  users_.recordSuccess(c.username, req.realm, source);
  if (req.must_own && !ownsAor(c.username, req.realm, *req.must_own)) {
    stats_.failures.inc();
    logFailure(req, c.username, "not_aor_owner");
    return Forbidden{"Authenticated user does not own the AOR in To"};
  }
  stats_.success.inc();
  return Authenticated{std::string(c.username), c.algorithm};
}

}  // namespace sipwake::auth
