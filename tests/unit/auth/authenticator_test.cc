#include "auth/authenticator.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace sipwake::auth {
namespace {

const std::string kSecret = "authenticator-test-secret-0123456789";
constexpr std::string_view kRealm = "example.com";
constexpr std::string_view kUri = "sip:example.com";
const TimePoint kT0 = TimePoint{} + std::chrono::hours(5);

std::string paramOf(std::string_view challenge, std::string_view name) {
  std::string key = std::string(name) + "=\"";
  std::size_t p = challenge.find(key);
  if (p == std::string_view::npos) return {};
  p += key.size();
  return std::string(challenge.substr(p, challenge.find('"', p) - p));
}

struct ClientCall {
  std::string user = "alice";
  std::string password = "wonderland";
  DigestAlgorithm algorithm = DigestAlgorithm::kSha256;
  std::string nonce;
  std::string realm = std::string(kRealm);
  std::string uri = std::string(kUri);
  std::string method = "REGISTER";
  std::uint32_t nc = 1;
  bool qop = true;
};

std::string authorization(const ClientCall& c) {
  HexDigest ha1 = computeHa1(c.algorithm, c.user, c.realm, c.password);
  char nc_text[9];
  std::snprintf(nc_text, sizeof(nc_text), "%08x", c.nc);
  ResponseInputs in;
  in.algorithm = c.algorithm;
  in.ha1 = ha1.view();
  in.nonce = c.nonce;
  in.nc_text = nc_text;
  in.cnonce = "cn0nce";
  in.qop = c.qop ? Qop::kAuth : Qop::kNone;
  in.method = c.method;
  in.uri = c.uri;
  HexDigest resp = computeResponse(in);
  std::string h = "Digest username=\"" + c.user + "\", realm=\"" + c.realm + "\", nonce=\"" +
                  c.nonce + "\", uri=\"" + c.uri + "\", response=\"" + std::string(resp.view()) +
                  "\", algorithm=" + std::string(algorithmName(c.algorithm));
  if (c.qop) h += ", qop=auth, nc=" + std::string(nc_text) + ", cnonce=\"cn0nce\"";
  return h;
}

// One REGISTER from `ip` at `now` carrying the credentials `c` describes.
AuthResult registerAs(Authenticator& a, const ClientCall& c, std::string_view ip, TimePoint now) {
  std::string header = authorization(c);
  std::string_view view = header;
  AuthRequest r;
  r.method = "REGISTER";
  r.request_uri = kUri;
  r.credentials = std::span<const std::string_view>(&view, 1);
  r.realm = kRealm;
  r.source_ip = ip;
  r.now = now;
  return a.authenticate(r);
}

// alice / wonderland in kRealm, both algorithms provisioned.
CredentialLookup aliceLookup() {
  return [](std::string_view user, std::string_view realm) -> std::optional<UserHa1> {
    if (user != "alice" || realm != kRealm) return std::nullopt;
    return UserHa1{computeHa1(DigestAlgorithm::kMd5, "alice", kRealm, "wonderland"),
                   computeHa1(DigestAlgorithm::kSha256, "alice", kRealm, "wonderland")};
  };
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  AuthenticatorTest() : auth_(makeConfig(), aliceLookup(), TrustedPeers()) {}

  static AuthConfig makeConfig() {
    AuthConfig c;
    c.secret = kSecret;
    c.rate_limit.max_failures = 5;
    return c;
  }

  AuthResult run(std::vector<std::string> headers, TimePoint now = kT0,
                 std::string_view ip = "192.0.2.10", bool proxy = false,
                 std::optional<AorRef> aor = std::nullopt) {
    views_.assign(headers.begin(), headers.end());
    storage_ = std::move(headers);
    views_.assign(storage_.begin(), storage_.end());
    AuthRequest r;
    r.method = "REGISTER";
    r.request_uri = kUri;
    r.credentials = views_;
    r.realm = kRealm;
    r.source_ip = ip;
    r.is_proxy = proxy;
    r.now = now;
    r.must_own = aor;
    r.user_agent = user_agent_;
    return auth_.authenticate(r);
  }

  std::string freshNonce(TimePoint now = kT0) {
    AuthResult r = run({}, now);
    const Challenge* c = std::get_if<Challenge>(&r);
    return c ? paramOf(c->values.front(), "nonce") : std::string();
  }

  Authenticator auth_;
  std::optional<std::string_view> user_agent_ = "unit-test/1.0";
  std::vector<std::string> storage_;
  std::vector<std::string_view> views_;
};

TEST_F(AuthenticatorTest, NoCredentialsGivesChallengeSha256First) {
  AuthResult r = run({});
  const Challenge* c = std::get_if<Challenge>(&r);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status, 401);
  EXPECT_EQ(c->header_name, "WWW-Authenticate");
  EXPECT_FALSE(c->stale);
  ASSERT_EQ(c->values.size(), 2u);
  EXPECT_NE(c->values[0].find("algorithm=SHA-256"), std::string::npos);
  EXPECT_NE(c->values[1].find("algorithm=MD5"), std::string::npos);
  EXPECT_NE(c->values[0].find("qop=\"auth\""), std::string::npos);
  EXPECT_EQ(paramOf(c->values[0], "realm"), kRealm);
  EXPECT_EQ(paramOf(c->values[0], "nonce"), paramOf(c->values[1], "nonce"));
  EXPECT_EQ(paramOf(c->values[0], "opaque"), auth_.nonces().opaque());
  EXPECT_EQ(c->values[0].find("stale"), std::string::npos);
}

std::vector<std::string> algorithmsOffered(const AuthResult& r) {
  std::vector<std::string> out;
  if (const Challenge* c = std::get_if<Challenge>(&r)) {
    for (const std::string& v : c->values) {
      std::size_t p = v.find("algorithm=");
      out.push_back(p == std::string::npos ? "" : v.substr(p + 10, v.find(',', p) - p - 10));
    }
  }
  return out;
}

TEST_F(AuthenticatorTest, Md5OnlyForBaresipAndClientsWithoutUserAgent) {
  using V = std::vector<std::string>;
  const std::uint64_t md5_only = Stats::global().counter("auth.md5_only_challenges").value();
  EXPECT_EQ(algorithmsOffered(run({})), (V{"SHA-256", "MD5"}));
  user_agent_ = "baresip v1.0.0 (x86_64/linux)";
  EXPECT_EQ(algorithmsOffered(run({})), (V{"MD5"}));
  user_agent_ = "BareSIP/2.0";
  EXPECT_EQ(algorithmsOffered(run({})), (V{"MD5"}));
  user_agent_ = "Linphonec/5.1.65 (belle-sip/5.1.64)";
  EXPECT_EQ(algorithmsOffered(run({})), (V{"SHA-256", "MD5"}));
  user_agent_ = "my baresip fork";  // a prefix, not a substring
  EXPECT_EQ(algorithmsOffered(run({})), (V{"SHA-256", "MD5"}));
  user_agent_ = std::nullopt;  // sipp 3.6 sends none
  EXPECT_EQ(algorithmsOffered(run({})), (V{"MD5"}));
  EXPECT_EQ(Stats::global().counter("auth.md5_only_challenges").value() - md5_only, 3u);

  // The client then answers MD5 and is authenticated as usual.
  ClientCall call;
  call.algorithm = DigestAlgorithm::kMd5;
  call.nonce = freshNonce();
  EXPECT_TRUE(std::holds_alternative<Authenticated>(run({authorization(call)})));
}

TEST(AuthenticatorMd5Only, PolicyOffOrMd5NotConfigured) {
  using V = std::vector<std::string>;
  AuthRequest r;
  r.method = "REGISTER";
  r.request_uri = kUri;
  r.realm = kRealm;
  r.source_ip = "192.0.2.1";
  r.now = kT0;
  r.user_agent = "baresip v1.0.0";
  AuthConfig off;
  off.secret = kSecret;
  off.md5_only_user_agents.clear();
  off.md5_only_without_user_agent = false;
  Authenticator a(off, aliceLookup(), TrustedPeers());
  EXPECT_EQ(algorithmsOffered(a.authenticate(r)), (V{"SHA-256", "MD5"}));
  r.user_agent = std::nullopt;
  EXPECT_EQ(algorithmsOffered(a.authenticate(r)), (V{"SHA-256", "MD5"}));
  // Without MD5 in `algorithms` the policy cannot apply: SHA-256 is all there is.
  AuthConfig sha_only;
  sha_only.secret = kSecret;
  sha_only.algorithms = {DigestAlgorithm::kSha256};
  Authenticator b(sha_only, aliceLookup(), TrustedPeers());
  EXPECT_EQ(algorithmsOffered(b.authenticate(r)), (V{"SHA-256"}));
}

TEST_F(AuthenticatorTest, ProxyGets407) {
  AuthResult r = run({}, kT0, "192.0.2.10", /*proxy=*/true);
  const Challenge* c = std::get_if<Challenge>(&r);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status, 407);
  EXPECT_EQ(c->header_name, "Proxy-Authenticate");
}

TEST_F(AuthenticatorTest, ValidSha256AndMd5Authenticate) {
  for (DigestAlgorithm a : {DigestAlgorithm::kSha256, DigestAlgorithm::kMd5}) {
    ClientCall call;
    call.algorithm = a;
    call.nonce = freshNonce();
    AuthResult r = run({authorization(call)});
    const Authenticated* ok = std::get_if<Authenticated>(&r);
    ASSERT_NE(ok, nullptr) << algorithmName(a);
    EXPECT_EQ(ok->user, "alice");
    EXPECT_EQ(ok->algorithm, a);
  }
}

TEST_F(AuthenticatorTest, Rfc2069NoQopAcceptedOnce) {
  ClientCall call;
  call.algorithm = DigestAlgorithm::kMd5;
  call.qop = false;
  call.nonce = freshNonce();
  EXPECT_TRUE(std::holds_alternative<Authenticated>(run({authorization(call)})));
  AuthResult again = run({authorization(call)});
  const Challenge* c = std::get_if<Challenge>(&again);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->stale);
}

TEST_F(AuthenticatorTest, NcReplayGetsStaleChallenge) {
  ClientCall call;
  call.nonce = freshNonce();
  EXPECT_TRUE(std::holds_alternative<Authenticated>(run({authorization(call)})));
  AuthResult replay = run({authorization(call)});
  const Challenge* c = std::get_if<Challenge>(&replay);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->stale);
  EXPECT_NE(c->values[0].find("stale=true"), std::string::npos);
  call.nc = 2;
  EXPECT_TRUE(std::holds_alternative<Authenticated>(run({authorization(call)})));
}

TEST_F(AuthenticatorTest, ExpiredNonceGetsStaleChallenge) {
  ClientCall call;
  call.nonce = freshNonce(kT0);
  AuthResult r = run({authorization(call)}, kT0 + seconds(301));
  const Challenge* c = std::get_if<Challenge>(&r);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->stale);
  // The new nonce works.
  call.nonce = paramOf(c->values[0], "nonce");
  EXPECT_TRUE(
      std::holds_alternative<Authenticated>(run({authorization(call)}, kT0 + seconds(302))));
}

TEST_F(AuthenticatorTest, ForgedNonceWithWrongPasswordIsPlainChallenge) {
  ClientCall call;
  call.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";  // not ours
  call.password = "guess";
  AuthResult r = run({authorization(call)});
  const Challenge* c = std::get_if<Challenge>(&r);
  ASSERT_NE(c, nullptr);
  EXPECT_FALSE(c->stale);
}

TEST_F(AuthenticatorTest, ForeignNonceWithRightPasswordIsStale) {
  // E.g. a nonce from before a restart with a new random secret: the client knows the password.
  ClientCall call;
  call.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
  AuthResult r = run({authorization(call)});
  const Challenge* c = std::get_if<Challenge>(&r);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->stale);
}

TEST_F(AuthenticatorTest, UnknownUserAndWrongPasswordLookTheSame) {
  ClientCall wrong;
  wrong.password = "nope";
  wrong.nonce = freshNonce();
  ClientCall unknown;
  unknown.user = "mallory";
  unknown.nonce = wrong.nonce;
  AuthResult a = run({authorization(wrong)});
  AuthResult b = run({authorization(unknown)});
  const Challenge* ca = std::get_if<Challenge>(&a);
  const Challenge* cb = std::get_if<Challenge>(&b);
  ASSERT_NE(ca, nullptr);
  ASSERT_NE(cb, nullptr);
  EXPECT_EQ(ca->status, cb->status);
  EXPECT_EQ(ca->stale, cb->stale);
  EXPECT_FALSE(ca->stale);
  ASSERT_EQ(ca->values.size(), cb->values.size());
  // Identical apart from the nonce, which is fresh in every challenge.
  for (std::size_t i = 0; i < ca->values.size(); ++i) {
    std::string x = ca->values[i];
    std::string y = cb->values[i];
    x.replace(x.find(paramOf(x, "nonce")), paramOf(x, "nonce").size(), "N");
    y.replace(y.find(paramOf(y, "nonce")), paramOf(y, "nonce").size(), "N");
    EXPECT_EQ(x, y);
  }
}

TEST_F(AuthenticatorTest, ProvisionedWithoutThatAlgorithmLooksUnknown) {
  Authenticator md5_only(
      makeConfig(),
      [](std::string_view, std::string_view) {
        UserHa1 u;
        u.md5 = computeHa1(DigestAlgorithm::kMd5, "alice", kRealm, "wonderland");
        return std::optional<UserHa1>(u);
      },
      TrustedPeers());
  ClientCall call;
  call.nonce = md5_only.nonces().generate(kRealm, kT0);
  std::string h = authorization(call);
  std::vector<std::string_view> v{h};
  AuthRequest r{"REGISTER", kUri, v, kRealm, "192.0.2.1", false, kT0, std::nullopt, "phone/1"};
  AuthResult res = md5_only.authenticate(r);
  ASSERT_TRUE(std::holds_alternative<Challenge>(res));
  EXPECT_FALSE(std::get<Challenge>(res).stale);
}

TEST_F(AuthenticatorTest, CredentialsForOtherRealmsIgnored) {
  ClientCall other;
  other.realm = "pbx.example.net";
  other.nonce = "whatever";
  ClientCall ours;
  ours.nonce = freshNonce();
  EXPECT_TRUE(std::holds_alternative<Challenge>(run({authorization(other)})));
  EXPECT_TRUE(std::holds_alternative<Authenticated>(
      run({"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", authorization(other), authorization(ours)})));
}

TEST_F(AuthenticatorTest, MalformedCredentialsAre400NamingTheParam) {
  AuthResult r =
      run({"Digest username=\"alice\", realm=\"example.com\", uri=\"sip:example.com\", "
           "response=\"00\""});
  const BadRequest* b = std::get_if<BadRequest>(&r);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b->reason.find("'nonce'"), std::string::npos) << b->reason;
}

TEST_F(AuthenticatorTest, UriMismatchIs400) {
  ClientCall call;
  call.nonce = freshNonce();
  call.uri = "sip:evil.example.com";
  AuthResult r = run({authorization(call)});
  const BadRequest* b = std::get_if<BadRequest>(&r);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b->reason.find("uri"), std::string::npos);
}

// sipp's stock [authentication]: REGISTER sip:example.com with uri="sip:<server ip>:<port>".
class UriCheckTest : public ::testing::TestWithParam<UriCheck> {
 protected:
  UriCheckTest() : auth_(config(GetParam()), aliceLookup(), TrustedPeers()) {}

  static AuthConfig config(UriCheck mode) {
    AuthConfig c;
    c.secret = kSecret;
    c.rate_limit.max_failures = 2;
    c.uri_check = mode;
    c.is_local_host = [](std::string_view host) { return host == "192.0.2.5"; };
    return c;
  }

  // One authenticated REGISTER whose credentials carry `uri`.
  AuthResult registerWithUri(const std::string& uri) {
    ClientCall call;
    call.nonce = auth_.nonces().generate(kRealm, kT0);
    call.uri = uri;
    return registerAs(auth_, call, "192.0.2.10", kT0);
  }

  Authenticator auth_;
};

std::uint64_t counterValue(const char* name) { return Stats::global().counter(name).value(); }

TEST_P(UriCheckTest, EachUriFormPerMode) {
  const UriCheck mode = GetParam();
  struct Case {
    std::string uri;
    const char* counter;  // when accepted (kStrict: only "same" is)
    bool lenient_only;
  };
  const Case cases[] = {
      {"sip:EXAMPLE.com", "auth.uri_check.same", false},
      {"sip:example.com:5060", "auth.uri_check.other_port", true},
      {"sip:example.com;transport=udp", "auth.uri_check.other_port", true},
      {"sip:192.0.2.5:5060", "auth.uri_check.server", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.uri);
    const bool accepted = !(c.lenient_only && mode == UriCheck::kStrict);
    const char* counter = !accepted                                  ? "auth.uri_check.rejected"
                          : mode == UriCheck::kOff && c.lenient_only ? "auth.uri_check.unchecked"
                                                                     : c.counter;
    const std::uint64_t before = counterValue(counter);
    AuthResult r = registerWithUri(c.uri);
    if (accepted) {
      EXPECT_TRUE(std::holds_alternative<Authenticated>(r));
    } else {
      const BadRequest* b = std::get_if<BadRequest>(&r);
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(b->reason, "Authorization uri does not match the Request-URI");
    }
    EXPECT_EQ(counterValue(counter) - before, 1u) << counter;
  }
}

TEST_P(UriCheckTest, ForeignUriRejectedUnlessOffAndNeverAFailure) {
  const std::uint64_t failures = counterValue("auth.failures");
  const std::uint64_t rejected = counterValue("auth.uri_check.rejected");
  // More mismatches than max_failures: the source is never blocked for them.
  for (int i = 0; i < 4; ++i) {
    AuthResult r = registerWithUri("sip:evil.example.org");
    if (GetParam() == UriCheck::kOff) {
      EXPECT_TRUE(std::holds_alternative<Authenticated>(r));
    } else {
      EXPECT_TRUE(std::holds_alternative<BadRequest>(r));
    }
  }
  EXPECT_EQ(counterValue("auth.failures"), failures);
  EXPECT_EQ(counterValue("auth.uri_check.rejected") - rejected,
            GetParam() == UriCheck::kOff ? 0u : 4u);
  EXPECT_TRUE(std::holds_alternative<Authenticated>(registerWithUri(std::string(kUri))));
}

INSTANTIATE_TEST_SUITE_P(Modes, UriCheckTest,
                         ::testing::Values(UriCheck::kEquivalent, UriCheck::kStrict,
                                           UriCheck::kOff));

TEST_F(AuthenticatorTest, UnofferedAlgorithmRechallenged) {
  ClientCall call;
  call.algorithm = DigestAlgorithm::kMd5Sess;
  call.nonce = freshNonce();
  AuthResult r = run({authorization(call)});
  ASSERT_TRUE(std::holds_alternative<Challenge>(r));
}

TEST_F(AuthenticatorTest, AorOwnership) {
  ClientCall call;
  call.nonce = freshNonce();
  EXPECT_TRUE(std::holds_alternative<Authenticated>(
      run({authorization(call)}, kT0, "192.0.2.10", false, AorRef{"al%69ce", "EXAMPLE.com"})));
  call.nc = 2;
  AuthResult r = run({authorization(call)}, kT0, "192.0.2.10", false, AorRef{"bob", "example.com"});
  ASSERT_TRUE(std::holds_alternative<Forbidden>(r));
}

TEST(OwnsAor, CaseRules) {
  EXPECT_TRUE(ownsAor("alice", "example.com", {"alice", "Example.COM"}));
  EXPECT_FALSE(
      ownsAor("alice", "example.com", {"Alice", "example.com"}));  // user is case-sensitive
  EXPECT_TRUE(ownsAor("a b", "example.com", {"a%20b", "example.com"}));
  EXPECT_TRUE(ownsAor("alice", "example.com", {"%61lice", "example.com"}));
  EXPECT_FALSE(ownsAor("alice", "example.com", {"alice", "example.org"}));
  EXPECT_FALSE(ownsAor("alice", "example.com", {"alicex", "example.com"}));
  EXPECT_FALSE(ownsAor("alice", "example.com", {"alic", "example.com"}));
  EXPECT_FALSE(ownsAor("alice", "example.com", {"alic%6", "example.com"}));
  EXPECT_FALSE(ownsAor("alice", "example.com", {"", "example.com"}));
}

TEST_F(AuthenticatorTest, FailuresAreRateLimitedPerSource) {
  ClientCall call;
  call.password = "bad";
  for (int i = 0; i < 5; ++i) {
    call.nonce = freshNonce();
    EXPECT_TRUE(std::holds_alternative<Challenge>(run({authorization(call)})));
  }
  // Blocked now, even with the right password; another source is not.
  ClientCall good;
  good.nonce = auth_.nonces().generate(kRealm, kT0);
  AuthResult r = run({authorization(good)}, kT0 + seconds(1));
  const RateLimited* rl = std::get_if<RateLimited>(&r);
  ASSERT_NE(rl, nullptr);
  EXPECT_EQ(rl->status, 403);
  EXPECT_EQ(rl->retry_after, seconds(59));
  EXPECT_TRUE(std::holds_alternative<Authenticated>(
      run({authorization(good)}, kT0 + seconds(1), "192.0.2.99")));
}

// Guessing alice's password from 20 addresses: five wrong answers delay her; after that each
// address that has not been guessing gets one checked answer, so the right password from a
// guessing address is refused unchecked. Alice's own phone, which authenticated before, still
// gets in, and so does alice from an address that never guessed (her phone on a new network).
TEST_F(AuthenticatorTest, SpreadGuessingDelaysTheUserButNotHerKnownSource) {
  ClientCall good;
  good.nonce = freshNonce();
  ASSERT_TRUE(
      std::holds_alternative<Authenticated>(run({authorization(good)}, kT0, "198.51.100.7")));
  const std::uint64_t delayed_before = Stats::global().counter("auth.user_delayed").value();
  int checked = 0;
  for (int i = 0; i < 150; ++i) {
    ClientCall guess;
    guess.password = "guess" + std::to_string(i);
    guess.nonce = freshNonce();
    const std::string ip = "203.0.113." + std::to_string(2 + i % 20);
    AuthResult r = run({authorization(guess)}, kT0 + seconds(1), ip);
    if (std::holds_alternative<Challenge>(r)) ++checked;
  }
  EXPECT_EQ(checked, 20);  // one per address: max_failures, then each new address once
  EXPECT_EQ(Stats::global().counter("auth.user_delayed").value() - delayed_before, 130u);
  good.nonce = freshNonce();
  AuthResult right = run({authorization(good)}, kT0 + seconds(2), "203.0.113.9");
  const RateLimited* rl = std::get_if<RateLimited>(&right);
  ASSERT_NE(rl, nullptr);
  EXPECT_EQ(rl->retry_after, seconds(3599));  // each later failure doubled it, up to an hour
  good.nonce = freshNonce();
  EXPECT_TRUE(std::holds_alternative<Authenticated>(
      run({authorization(good)}, kT0 + seconds(2), "198.51.100.7")));
  good.nonce = freshNonce();
  EXPECT_TRUE(std::holds_alternative<Authenticated>(
      run({authorization(good)}, kT0 + seconds(2), "198.51.100.200")));
}

// An unknown user name is delayed like a known one: the answers do not tell them apart.
TEST_F(AuthenticatorTest, UnknownUserDelayedLikeAKnownOne) {
  int first_address = 50;
  for (const char* user : {"alice", "nobody"}) {
    int checked = 0;
    for (int i = 0; i < 10; ++i) {  // three addresses taking turns
      ClientCall guess;
      guess.user = user;
      guess.password = "guess";
      guess.nonce = freshNonce();
      AuthResult r =
          run({authorization(guess)}, kT0, "203.0.113." + std::to_string(first_address + i % 3));
      if (std::holds_alternative<Challenge>(r)) ++checked;
    }
    EXPECT_EQ(checked, 5) << user;  // max_failures, then every address has been guessing
    first_address += 3;
  }
}

// Someone guesses alice's password from a NAT address until it is blocked; bob, who registered
// from the same address before, still authenticates; carol, new there, waits for the block.
TEST_F(AuthenticatorTest, BlockedSourceStillAdmitsAUserKnownThere) {
  auto lookup = [](std::string_view user, std::string_view realm) -> std::optional<UserHa1> {
    if (realm != kRealm || user == "mallory") return std::nullopt;
    return UserHa1{computeHa1(DigestAlgorithm::kMd5, user, kRealm, "pw-" + std::string(user)),
                   computeHa1(DigestAlgorithm::kSha256, user, kRealm, "pw-" + std::string(user))};
  };
  Authenticator a(makeConfig(), lookup, TrustedPeers());
  auto ask = [&](const std::string& user, const std::string& password, TimePoint now) {
    ClientCall c;
    c.user = user;
    c.password = password;
    c.nonce = a.nonces().generate(kRealm, now);
    return registerAs(a, c, "192.0.2.10", now);
  };
  ASSERT_TRUE(std::holds_alternative<Authenticated>(ask("bob", "pw-bob", kT0)));
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(std::holds_alternative<Challenge>(ask("alice", "x", kT0)));
  const std::uint64_t known_before = Stats::global().counter("auth.known_source_checks").value();
  EXPECT_TRUE(std::holds_alternative<RateLimited>(ask("alice", "pw-alice", kT0 + seconds(1))));
  EXPECT_TRUE(std::holds_alternative<Authenticated>(ask("bob", "pw-bob", kT0 + seconds(1))));
  EXPECT_TRUE(std::holds_alternative<RateLimited>(ask("carol", "pw-carol", kT0 + seconds(1))));
  EXPECT_EQ(Stats::global().counter("auth.known_source_checks").value() - known_before, 1u);
  // A wrong answer for bob from there: no longer known, refused like everyone else.
  EXPECT_TRUE(std::holds_alternative<Challenge>(ask("bob", "x", kT0 + seconds(2))));
  EXPECT_TRUE(std::holds_alternative<RateLimited>(ask("bob", "pw-bob", kT0 + seconds(3))));
}

// A replayed response (right digest, used nonce) does not make its sender a known source.
TEST_F(AuthenticatorTest, ReplayDoesNotMakeASourceKnown) {
  ClientCall good;
  good.nonce = freshNonce();
  const std::string header = authorization(good);
  ASSERT_TRUE(std::holds_alternative<Authenticated>(run({header}, kT0, "198.51.100.7")));
  AuthResult replay = run({header}, kT0, "203.0.113.66");
  ASSERT_TRUE(std::holds_alternative<Challenge>(replay));
  EXPECT_TRUE(std::get<Challenge>(replay).stale);
  EXPECT_FALSE(auth_.userLimiter().knownSource("alice", kRealm, sourceKeyOf("203.0.113.66", 64)));
  EXPECT_TRUE(auth_.userLimiter().knownSource("alice", kRealm, sourceKeyOf("198.51.100.7", 64)));
}

TEST(AuthenticatorTrusted, TrustedPeerSkipsAuth) {
  auto peers = TrustedPeers::parse({"10.0.0.0/8"});
  ASSERT_TRUE(peers.isOk());
  AuthConfig cfg;
  cfg.secret = kSecret;
  Authenticator a(
      cfg, [](std::string_view, std::string_view) { return std::optional<UserHa1>(); },
      std::move(peers).value());
  AuthRequest r;
  r.method = "INVITE";
  r.request_uri = "sip:bob@example.com";
  r.realm = kRealm;
  r.source_ip = "10.1.2.3";
  r.is_proxy = true;
  r.now = kT0;
  EXPECT_TRUE(std::holds_alternative<TrustedPeer>(a.authenticate(r)));
  r.source_ip = "192.0.2.1";
  EXPECT_TRUE(std::holds_alternative<Challenge>(a.authenticate(r)));
}

TEST_F(AuthenticatorTest, StatsCounted) {
  auto value = [](const char* name) { return Stats::global().counter(name).value(); };
  std::uint64_t challenges = value("auth.challenges");
  std::uint64_t success = value("auth.success");
  std::uint64_t failures = value("auth.failures");
  std::uint64_t stale = value("auth.stale");
  ClientCall call;
  call.nonce = freshNonce();
  (void)run({authorization(call)});
  (void)run({authorization(call)});  // replay -> stale
  call.password = "x";
  call.nc = 9;
  (void)run({authorization(call)});
  EXPECT_EQ(value("auth.challenges") - challenges, 3u);
  EXPECT_EQ(value("auth.success") - success, 1u);
  EXPECT_EQ(value("auth.stale") - stale, 1u);
  EXPECT_EQ(value("auth.failures") - failures, 1u);
}

}  // namespace
}  // namespace sipwake::auth
