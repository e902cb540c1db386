// Edge mode, "own" credential model: the contact key mapping, the upstream REGISTER throttle,
// the un-REGISTER of a removed device, and the proxy's two edge paths (a request to a device's
// upstream contact goes to its AOR; a request for an edge-domain user unknown here goes upstream).
#include "routing/edge.h"

#include <gtest/gtest.h>

#include "location/push_binding_store.h"
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
  EdgeSchedule s{seconds(3600), seconds(1800), seconds(30)};
  const TimePoint t0{};
  EXPECT_TRUE(s.due(t0, std::nullopt, std::nullopt));         // never registered
  EXPECT_FALSE(s.due(t0 + seconds(1799), t0, std::nullopt));  // a phone refresh: nothing
  EXPECT_TRUE(s.due(t0 + seconds(1800), t0, std::nullopt));
  EXPECT_FALSE(s.due(t0 + seconds(29), t0, t0));  // failed: retried after the back-off
  EXPECT_TRUE(s.due(t0 + seconds(30), t0, t0));
}

class EdgeTest : public ProxyTest {
 protected:
  const transport::Address kPbx = addr(10, 0, 0, 9, 5080);

  void SetUp() override {
    ProxyTest::SetUp();
    push_store_ = location::makeMemoryPushBindingStore();
    EdgeConfig config;
    config.upstream_uri = "sip:10.0.0.9:5080";
    config.domains = {"example.com"};
    config.upstream_expires = seconds(3600);
    config.refresh_before = seconds(1800);
    config.reconcile_interval = seconds(5);
    EdgeUpstream::Deps deps;
    deps.layer = layer_.get();
    deps.transport = &transport_;
    deps.post = [](std::function<void()> fn) { fn(); };
    deps.push_store = push_store_.get();
    deps.locations = &store_;
    deps.wall_clock = [] { return kNow; };
    edge_ = std::make_unique<EdgeUpstream>(config, std::move(deps));
    edge_->start();
  }
  void TearDown() override {
    proxy_.reset();
    layer_.reset();  // before the edge object its transactions report to
    edge_.reset();
  }

  // bob@example.com's phone registers (or refreshes) at sipwake: the registrar's hook.
  location::Binding bobRegisters() {
    location::Binding b;
    b.contact_uri = "sip:bob@10.0.0.2:5060";
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
    for (sip::Message& m : requestsTo(kPbx, "REGISTER")) {
      if (!out.empty() && out.back().cseq()->number == m.cseq()->number) continue;
      out.push_back(std::move(m));
    }
    return out;
  }
  void pbxAnswers(int code) {
    auto regs = upstreamRegisters();
    ASSERT_FALSE(regs.empty());
    deliver(sip::makeResponseTo(regs.back(), code, "OK", "pbx"), Ua{kPbx});
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

  std::unique_ptr<location::PushBindingStore> push_store_;
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
