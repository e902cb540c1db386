// Edge mode, "own" credential model: the contact key mapping, the upstream REGISTER throttle,
// the un-REGISTER of a removed device, and the proxy's two edge paths (a request to a device's
// upstream contact goes to its AOR; a request for an edge-domain user unknown here goes upstream).
#include "routing/edge.h"

#include <gtest/gtest.h>

#include <set>

#include "../location/test_util.h"
#include "auth/digest.h"
#include "location/user_store.h"
#include "routing_test_util.h"

namespace sipwake::routing::testing {
namespace {

using std::chrono::seconds;

TEST(EdgeContactUserTest, PushDeviceKeysStayReadable) {
  EXPECT_EQ(edgeContactUser("apns:0a1b2c"), "edge-apns-0a1b2c");
  EXPECT_EQ(edgeContactUser("fcm:ff"), "edge-fcm-ff");
}

TEST(EdgeContactUserTest, OtherKeysAreHashedToUriSafeUsers) {
  const std::string a = edgeContactUser("c:sip:alice@10.0.0.1:5060;transport=tcp");
  const std::string b = edgeContactUser("i:<urn:uuid:1>\n1");
  EXPECT_EQ(a.size(), 5u + 1u + 16u);
  EXPECT_EQ(a.rfind("edge-h", 0), 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, edgeContactUser("c:sip:alice@10.0.0.1:5060;transport=tcp"));  // stable
  for (char c : a) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-') << a;
}

TEST(EdgeScheduleTest, RenewsOnlyWhenRefreshBeforeIsReached) {
  EdgeSchedule s{seconds(1800), seconds(30)};
  const TimePoint t0{};
  const seconds granted(3600);
  EXPECT_TRUE(s.due(t0, std::nullopt, granted, std::nullopt));         // never registered
  EXPECT_FALSE(s.due(t0 + seconds(1799), t0, granted, std::nullopt));  // a phone refresh: nothing
  EXPECT_TRUE(s.due(t0 + seconds(1800), t0, granted, std::nullopt));
  EXPECT_FALSE(s.due(t0 + seconds(29), t0, granted, t0));  // failed: retried after the back-off
  EXPECT_TRUE(s.due(t0 + seconds(30), t0, granted, t0));
}

TEST(EdgeScheduleTest, RenewsAtHalfTheGrantOrRefreshBeforeWhicheverIsSooner) {
  EXPECT_EQ((EdgeSchedule{seconds(1800), seconds(30)}.renewAfter(seconds(3600))), seconds(1800));
  EXPECT_EQ((EdgeSchedule{seconds(600), seconds(30)}.renewAfter(seconds(3600))), seconds(1800));
  EXPECT_EQ((EdgeSchedule{seconds(2400), seconds(30)}.renewAfter(seconds(3600))), seconds(1200));
  // The upstream granted less than refresh_before: half of it.
  EXPECT_EQ((EdgeSchedule{seconds(1800), seconds(30)}.renewAfter(seconds(120))), seconds(60));
}

TEST(EdgeGrantedExpiryTest, ContactParamThenExpiresHeaderThenAsked) {
  auto response = [](const std::string& headers) {
    return parse(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        "From: <sip:bob@example.com>;tag=1\r\nTo: <sip:bob@example.com>;tag=2\r\n"
        "Call-ID: c\r\nCSeq: 1 REGISTER\r\n" +
        headers + "Content-Length: 0\r\n\r\n");
  };
  const seconds asked(3600);
  EXPECT_EQ(grantedExpiry(response("Contact: <sip:other@10.0.0.3>;expires=50, "
                                   "<sip:edge-x@192.0.2.1:5060>;expires=120\r\nExpires: 900\r\n"),
                          "edge-x", asked),
            seconds(120));
  EXPECT_EQ(grantedExpiry(response("Contact: <sip:edge-x@192.0.2.1:5060>\r\nExpires: 900\r\n"),
                          "edge-x", asked),
            seconds(900));
  EXPECT_EQ(grantedExpiry(response(""), "edge-x", asked), asked);
  // Contacts listed, ours not among them: not granted.
  EXPECT_EQ(
      grantedExpiry(response("Contact: <sip:other@10.0.0.3>;expires=50\r\n"), "edge-x", asked),
      std::nullopt);
}

class EdgeTest : public ProxyTest {
 protected:
  const transport::Address kPbx = addr(10, 0, 0, 9, 5080);

  void SetUp() override {
    ProxyTest::SetUp();
    push_store_ = &store_;
    EdgeConfig config;
    config.upstream_uri = "sip:10.0.0.9:5080";
    config.domains = {"example.com"};
    config.upstream_expires = seconds(3600);
    config.refresh_before = seconds(1800);
    config.reconcile_interval = seconds(5);
    config.upstream_rate = 2;
    EdgeUpstream::Deps deps;
    deps.layer = layer_.get();
    deps.transport = &transport_;
    deps.post = [](std::function<void()> fn) { fn(); };
    deps.push_store = push_store_;
    deps.locations = &store_;
    deps.wall_clock = [] { return kNow; };
    auto users = location::UserStore::open(users_dir_.file("users.db"));
    ASSERT_TRUE(users.isOk()) << users.status().toString();
    users_ = std::move(users).value();
    deps.users = users_.get();
    edge_ = std::make_unique<EdgeUpstream>(config, std::move(deps));
    edge_->start();
  }
  void TearDown() override {
    proxy_.reset();
    layer_.reset();  // before the edge object its transactions report to
    edge_.reset();
  }

  // bob@example.com's phone registers (or refreshes) at sipwake: the registrar's hook.
  location::Binding bobRegisters(const std::string& contact = "sip:bob@10.0.0.2:5060") {
    location::Binding b;
    b.contact_uri = contact;
    b.expires_at = kNow + seconds(3600);
    b.received.protocol = "udp";
    b.received.source_ip = bob_.address.ip();
    b.received.source_port = bob_.address.port;
    EXPECT_TRUE(bobChanges(b, false));
    transport::ReceivedMessage m{parse(request("REGISTER", "sip:example.com")),
                                 bob_.protocol,
                                 bob_.address,
                                 bob_.address,
                                 0,
                                 timers_.now()};
    edge_->onRegistered("sip:bob@example.com", b, m);
    return b;
  }
  // Distinct REGISTERs (not their UDP retransmissions) sent to the PBX.
  // bob's phone's REGISTER as the store sees it: `b` added/refreshed, or removed.
  bool bobChanges(const location::Binding& b, bool removal) {
    location::RegistrationChange c;
    c.aor = "sip:bob@example.com";
    c.call_id = "bob-reg";
    c.cseq = ++bob_cseq_;
    c.now = kNow;
    (removal ? c.removals : c.upserts).push_back(b);
    bool stored = false;
    store_.applyRegistration(
        std::move(c), [](std::function<void()> f) { f(); },
        [&](Result<std::vector<location::Binding>> r) { stored = r.isOk(); });
    return stored;
  }
  std::vector<sip::Message> upstreamRegisters() {
    std::vector<sip::Message> out;
    std::set<std::string> seen;  // Call-ID + CSeq: one per REGISTER, not per retransmission
    for (sip::Message& m : requestsTo(kPbx, "REGISTER")) {
      if (!seen.insert(std::string(m.callId()) + " " + std::to_string(m.cseq()->number)).second) {
        continue;
      }
      out.push_back(std::move(m));
    }
    return out;
  }
  void pbxAnswers(int code, const std::vector<std::string>& headers = {}) {
    auto regs = upstreamRegisters();
    ASSERT_FALSE(regs.empty());
    pbxAnswers(regs.back(), code, headers);
  }
  void pbxAnswers(const sip::Message& reg, int code, const std::vector<std::string>& headers = {}) {
    sip::Message r = sip::makeResponseTo(reg, code, code == 200 ? "OK" : "Refused", "pbx");
    for (const std::string& h : headers) {
      auto colon = h.find(':');
      r.appendHeader(h.substr(0, colon), h.substr(colon + 2));
    }
    deliver(std::move(r), Ua{kPbx});
  }
  void buildWithEdge() {
    proxy_.reset();
    ProxyDeps deps;
    deps.unix_now = [this] { return unix_now_; };
    deps.layer = layer_.get();
    deps.transport = &transport_;
    deps.targets = &locations_;
    deps.is_local_host = [](std::string_view host) {
      return host == "example.com" || host == "192.0.2.1";
    };
    deps.edge = edge_.get();
    ProxyConfig config;
    config.route_keys.secret = kRouteSecret;
    proxy_ = std::make_unique<Proxy>(std::move(deps), std::move(config));
    tu_.proxy = proxy_.get();
  }

  // The credentials in an upstream REGISTER (`header`), parsed; fails the test when absent.
  static std::optional<auth::DigestCredentials> credentialsIn(const sip::Message& reg,
                                                              sip::HeaderId header) {
    for (const sip::HeaderField& h : reg.headers()) {
      if (h.removed || h.id != header) continue;
      auto c = auth::parseDigestCredentials(h.value);
      EXPECT_TRUE(c.isOk()) << c.status().toString();
      if (c) return std::move(*c);
    }
    ADD_FAILURE() << "no credentials in the upstream REGISTER";
    return std::nullopt;
  }
  static bool hasCredentials(const sip::Message& reg) {
    return reg.find(sip::HeaderId::kAuthorization) != nullptr ||
           reg.find(sip::HeaderId::kProxyAuthorization) != nullptr;
  }
  static std::string bobHa1(auth::DigestAlgorithm a) {
    return std::string(auth::computeHa1(a, "bob", "example.com", "bob-pw").view());
  }

  location::LocationStore* push_store_ = nullptr;
  location::testing::TempDir users_dir_;
  std::unique_ptr<location::UserStore> users_;
  std::unique_ptr<EdgeUpstream> edge_;
  std::uint32_t bob_cseq_ = 0;
};

TEST_F(EdgeTest, OneUpstreamRegisterPerDeviceWithinTheWindow) {
  bobRegisters();
  auto regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 1u);
  const sip::Message& r = regs[0];
  EXPECT_EQ(r.requestUriText(), "sip:example.com");
  const sip::HeaderField* contact = r.find(sip::HeaderId::kContact);
  ASSERT_NE(contact, nullptr);
  EXPECT_EQ(contact->value,
            "<sip:" + edgeContactUser("c:sip:bob@10.0.0.2:5060") + "@192.0.2.1:5060>");
  EXPECT_EQ(r.find(sip::HeaderId::kExpires)->value, "3600");
  // Retries while the first is on its way, then the phone's refreshes: nothing more upstream.
  bobRegisters();
  pbxAnswers(200);
  for (int i = 0; i < 5; ++i) {
    timers_.advance(seconds(300));
    bobRegisters();
  }
  EXPECT_EQ(upstreamRegisters().size(), 1u);
  // refresh_before the upstream binding lapses, sipwake renews it: same Call-ID, next CSeq.
  timers_.advance(seconds(300));
  bobRegisters();  // keeps the SIP binding alive in the store's wall clock (fixed kNow)
  timers_.advance(seconds(5));
  regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 2u);
  EXPECT_EQ(regs[1].callId(), regs[0].callId());
  EXPECT_EQ(regs[1].cseq()->number, regs[0].cseq()->number + 1);
}

TEST_F(EdgeTest, RemovedDeviceIsUnregisteredUpstream) {
  location::Binding b = bobRegisters();
  pbxAnswers(200);
  // The phone's REGISTER without push params removes its binding.
  ASSERT_TRUE(bobChanges(b, true));
  timers_.advance(seconds(5));
  auto regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 2u);
  EXPECT_EQ(regs[1].find(sip::HeaderId::kExpires)->value, "0");
  EXPECT_EQ(regs[1].callId(), regs[0].callId());
  EXPECT_FALSE(edge_->aorForContactUser(edgeContactUser("c:sip:bob@10.0.0.2:5060")));
}

TEST_F(EdgeTest, UpstreamChallengeIsRetriedAfterTheBackOff) {
  bobRegisters();
  pbxAnswers(401);
  bobRegisters();
  EXPECT_EQ(upstreamRegisters().size(), 1u);
  timers_.advance(seconds(30));
  EXPECT_EQ(upstreamRegisters().size(), 2u);
}

TEST_F(EdgeTest, UpstreamChallengeIsAnsweredFromTheUserStoreAndItsNonceReused) {
  ASSERT_TRUE(users_->add("bob", "example.com", "bob-pw").isOk());
  bobRegisters();
  pbxAnswers(401, {"WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n1\", "
                   "opaque=\"o1\", qop=\"auth\", algorithm=MD5"});
  auto regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 2u);
  EXPECT_FALSE(hasCredentials(regs[0]));
  EXPECT_EQ(regs[1].callId(), regs[0].callId());
  EXPECT_EQ(regs[1].cseq()->number, regs[0].cseq()->number + 1);
  auto c = credentialsIn(regs[1], sip::HeaderId::kAuthorization);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "bob");
  EXPECT_EQ(c->realm, "example.com");
  EXPECT_EQ(c->nonce, "n1");
  EXPECT_EQ(c->opaque, "o1");
  EXPECT_EQ(c->uri, "sip:example.com");
  EXPECT_EQ(c->nc_text, "00000001");
  EXPECT_EQ(c->cnonce.size(), 32u);
  EXPECT_TRUE(auth::verifyResponse(*c, "REGISTER", bobHa1(auth::DigestAlgorithm::kMd5)));
  const std::string cnonce(c->cnonce);
  pbxAnswers(200);
  EXPECT_EQ(edge_->upstreamReachable(), true);
  // The renewal answers the same nonce, nc + 1, without waiting for a challenge.
  timers_.advance(seconds(1800));
  bobRegisters();
  timers_.advance(seconds(5));
  regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 3u);
  c = credentialsIn(regs[2], sip::HeaderId::kAuthorization);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->nonce, "n1");
  EXPECT_EQ(c->nc_text, "00000002");
  EXPECT_EQ(c->cnonce, cnonce);
  EXPECT_TRUE(auth::verifyResponse(*c, "REGISTER", bobHa1(auth::DigestAlgorithm::kMd5)));
  // The nonce went stale: the new one is answered (SHA-256 now), nc back to 1.
  pbxAnswers(401, {"WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n2\", "
                   "qop=\"auth\", algorithm=SHA-256, stale=true"});
  regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 4u);
  c = credentialsIn(regs[3], sip::HeaderId::kAuthorization);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->nonce, "n2");
  EXPECT_EQ(c->nc_text, "00000001");
  EXPECT_EQ(c->algorithm, auth::DigestAlgorithm::kSha256);
  EXPECT_TRUE(auth::verifyResponse(*c, "REGISTER", bobHa1(auth::DigestAlgorithm::kSha256)));
}

TEST_F(EdgeTest, ProxyChallengeIsAnsweredWithProxyAuthorization) {
  ASSERT_TRUE(users_->add("bob", "example.com", "bob-pw").isOk());
  bobRegisters();
  pbxAnswers(407, {"Proxy-Authenticate: Digest realm=\"example.com\", nonce=\"p1\""});
  auto regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 2u);
  EXPECT_EQ(regs[1].find(sip::HeaderId::kAuthorization), nullptr);
  auto c = credentialsIn(regs[1], sip::HeaderId::kProxyAuthorization);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->qop, auth::Qop::kNone);  // RFC 2069 challenge: no cnonce / nc
  EXPECT_TRUE(auth::verifyResponse(*c, "REGISTER", bobHa1(auth::DigestAlgorithm::kMd5)));
}

TEST_F(EdgeTest, ChallengeToTheAnswerIsAFailureNotALoop) {
  ASSERT_TRUE(users_->add("bob", "example.com", "not-the-pbx-pw").isOk());
  Counter& failed = Stats::global().counter("edge.upstream_auth_failed");
  const std::uint64_t failed_before = failed.value();
  const std::string challenge =
      "WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n1\", qop=\"auth\"";
  bobRegisters();
  pbxAnswers(401, {challenge});
  ASSERT_EQ(upstreamRegisters().size(), 2u);
  pbxAnswers(401, {challenge});
  EXPECT_EQ(upstreamRegisters().size(), 2u);
  EXPECT_EQ(failed.value(), failed_before + 1);
  // Retried after the back-off like any failure: from scratch, without the refused nonce.
  timers_.advance(seconds(30));
  auto regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 3u);
  EXPECT_FALSE(hasCredentials(regs[2]));
}

TEST_F(EdgeTest, ChallengeForAnotherRealmOrAnUnknownUserIsNotAnswered) {
  Counter& failed = Stats::global().counter("edge.upstream_auth_failed");
  const std::uint64_t failed_before = failed.value();
  // bob is not in the user store.
  bobRegisters();
  pbxAnswers(401, {"WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n1\""});
  EXPECT_EQ(upstreamRegisters().size(), 1u);
  EXPECT_EQ(failed.value(), failed_before + 1);
  // bob is, but the PBX's realm is not his domain.
  ASSERT_TRUE(users_->add("bob", "example.com", "bob-pw").isOk());
  timers_.advance(seconds(30));
  ASSERT_EQ(upstreamRegisters().size(), 2u);
  pbxAnswers(401, {"WWW-Authenticate: Digest realm=\"pbx.example.net\", nonce=\"n1\""});
  EXPECT_EQ(upstreamRegisters().size(), 2u);
  // Nor an algorithm sipwake holds no HA1 for.
  timers_.advance(seconds(30));
  ASSERT_EQ(upstreamRegisters().size(), 3u);
  pbxAnswers(401, {"WWW-Authenticate: Digest realm=\"example.com\", nonce=\"n1\", "
                   "algorithm=SHA-512-256"});
  EXPECT_EQ(upstreamRegisters().size(), 3u);
  EXPECT_EQ(failed.value(), failed_before + 3);
}

TEST_F(EdgeTest, RenewsAtHalfOfWhatTheUpstreamGranted) {
  bobRegisters();
  const std::string user = edgeContactUser("c:sip:bob@10.0.0.2:5060");
  pbxAnswers(200, {"Contact: <sip:" + user + "@192.0.2.1:5060>;expires=120"});
  timers_.advance(seconds(55));
  EXPECT_EQ(upstreamRegisters().size(), 1u);
  timers_.advance(seconds(10));  // 60 s granted/2, at the next reconcile tick
  auto regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 2u);
  EXPECT_EQ(regs[1].callId(), regs[0].callId());
}

TEST_F(EdgeTest, IntervalTooBriefIsRetriedAtOnceWithMinExpires) {
  bobRegisters();
  pbxAnswers(423, {"Min-Expires: 7200"});
  auto regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 2u);
  EXPECT_EQ(regs[1].find(sip::HeaderId::kExpires)->value, "7200");
  EXPECT_EQ(regs[1].cseq()->number, regs[0].cseq()->number + 1);
  pbxAnswers(200);
  // Renewals keep asking for what the upstream accepts.
  timers_.advance(seconds(3600));
  regs = upstreamRegisters();
  ASSERT_EQ(regs.size(), 3u);
  EXPECT_EQ(regs[2].find(sip::HeaderId::kExpires)->value, "7200");
}

TEST_F(EdgeTest, UnreachableUpstreamIsProbedThenEveryDeviceReRegisteredPaced) {
  Counter& unreachable = Stats::global().counter("edge.upstream_unreachable");
  Counter& back = Stats::global().counter("edge.upstream_back");
  const std::uint64_t unreachable0 = unreachable.value();
  const std::uint64_t back0 = back.value();
  constexpr int kDevices = 6;
  for (int i = 0; i < kDevices; ++i) {
    bobRegisters("sip:bob@10.0.0." + std::to_string(10 + i) + ":5060");
  }
  EXPECT_EQ(upstreamRegisters().size(), 2u);  // upstream_rate: the rest follow, paced
  timers_.advance(seconds(2));
  for (const sip::Message& r : upstreamRegisters()) pbxAnswers(r, 200);
  ASSERT_EQ(upstreamRegisters().size(), std::size_t{kDevices});
  // A new device while the PBX stopped answering: its REGISTER times out (Timer F).
  bobRegisters("sip:bob@10.0.0.99:5060");
  timers_.advance(seconds(1));
  ASSERT_EQ(upstreamRegisters().size(), std::size_t{kDevices + 1});
  timers_.advance(seconds(33));
  EXPECT_FALSE(edge_->upstreamReachable());
  EXPECT_EQ(unreachable.value(), unreachable0 + 1);
  // Meanwhile one probe every retry_after_failure (30 s), not one REGISTER per device.
  for (int i = 0; i < 10; ++i) timers_.advance(seconds(5));
  const std::size_t sent_while_down = upstreamRegisters().size() - (kDevices + 1);
  EXPECT_GE(sent_while_down, 1u);
  EXPECT_LE(sent_while_down, 2u);
  EXPECT_EQ(unreachable.value(), unreachable0 + 1);  // once per state change
  // The PBX answers the probe: every device (8 here incl. the new one) is registered again at
  // once, no phone acting, within upstream_rate (2/s here).
  pbxAnswers(200);
  EXPECT_TRUE(edge_->upstreamReachable());
  EXPECT_EQ(back.value(), back0 + 1);
  const std::size_t at_recovery = upstreamRegisters().size();
  EXPECT_LE(at_recovery - (kDevices + 1 + sent_while_down), 2u);  // one second's burst
  timers_.advance(seconds(3));
  std::set<std::string> registered_again;
  auto regs = upstreamRegisters();
  for (std::size_t i = kDevices + 1 + sent_while_down; i < regs.size(); ++i) {
    registered_again.insert(std::string(regs[i].callId()));
    pbxAnswers(regs[i], 200);
  }
  EXPECT_EQ(registered_again.size(), std::size_t{kDevices});  // all but the probed one
  EXPECT_EQ(edge_->deviceCount(), std::size_t{kDevices + 1});
}

TEST_F(EdgeTest, RequestToAnUpstreamContactGoesToTheDevice) {
  bobRegisters();
  buildWithEdge();
  const std::string user = edgeContactUser("c:sip:bob@10.0.0.2:5060");
  ASSERT_EQ(edge_->aorForContactUser(user), "sip:bob@example.com");
  deliver(request("INVITE", "sip:" + user + "@192.0.2.1:5060", "", Ua{kPbx}), Ua{kPbx});
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_EQ(invites[0].requestUriText(), "sip:bob@10.0.0.2:5060");
}

TEST_F(EdgeTest, UnknownContactUserIsNotFound) {
  buildWithEdge();
  deliver(request("INVITE", "sip:edge-apns-00@192.0.2.1:5060", "", Ua{kPbx}), Ua{kPbx});
  EXPECT_TRUE(requestsTo(kPbx, "INVITE").empty());
  auto codes = codesTo(kPbx);
  ASSERT_FALSE(codes.empty());
  EXPECT_GE(codes.back(), 400);
}

TEST_F(EdgeTest, CallToAPbxUserGoesUpstream) {
  buildWithEdge();
  deliver(request("INVITE", "sip:carol@example.com"), alice_);
  auto invites = requestsTo(kPbx, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_EQ(invites[0].requestUriText(), "sip:carol@example.com");
  EXPECT_EQ(invites[0].find(sip::HeaderId::kRoute)->value, "<sip:10.0.0.9:5080;lr>");
}

TEST_F(EdgeTest, CallToAnotherDomainsUnknownUserIsUnchanged) {
  buildWithEdge();
  deliver(request("INVITE", "sip:nobody@192.0.2.1"), alice_);
  EXPECT_TRUE(requestsTo(kPbx, "INVITE").empty());
  auto codes = codesTo(alice_.address);
  ASSERT_FALSE(codes.empty());
  EXPECT_EQ(codes.back(), 404);
}

}  // namespace
}  // namespace sipwake::routing::testing
