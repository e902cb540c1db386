// Push-parameter capture in the registrar (issue 4 parts 1 and 2): REGISTERs in every dialect
// produce a push binding and Feature-Caps; unserved providers get 555, malformed params a 400
// naming the param; push bindings outlive the SIP contact, are opted out of, move with their
// token, and survive a restart (SQLite).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/clock.h"
#include "fake_transport.h"
#include "location/memory_location_store.h"
#include "location/purr_store.h"
#include "registrar/registrar.h"
#include "sip/message.h"
#include "transaction/transaction_layer.h"

namespace sipwake::registrar {
namespace {

using transport::Address;

const location::SysSeconds kNow{std::chrono::seconds(1'700'000'000)};
const std::string kHex(64, 'a');
const std::string kFcm = "e-3akVQA_Gk:APA91b" + std::string(140, 'x');

class PushCaptureTest : public ::testing::Test, public transaction::TransactionUser {
 protected:
  PushCaptureTest() : layer_(timers_, transport_, *this) {}

  void SetUp() override {
    ASSERT_TRUE(memory_.load(kNow).isOk());
    make();
  }

  void make(bool enabled = true, push::ServesFn serves = {}) {
    auth::AuthConfig ac;
    auto peers = auth::TrustedPeers::parse({});
    authenticator_ = std::make_unique<auth::Authenticator>(
        ac, [](std::string_view, std::string_view) { return std::optional<auth::UserHa1>(); },
        std::move(*peers));
    RegistrarConfig rc;
    rc.require_auth = false;
    registrar_ = std::make_unique<Registrar>(
        rc,
        Services{memory_, *authenticator_,
                 [](std::string_view host) { return host == "example.com"; }},
        layer_, [](std::function<void()> fn) { fn(); }, [this] { return now_; });
    PushCaptureConfig pc;
    pc.enabled = enabled;
    pc.serves = std::move(serves);
    pc.ttl = std::chrono::hours(24 * 30);
    registrar_->setPushCapture(pc);
  }

  void onRequest(transaction::ServerTransaction& tx, transport::ReceivedMessage&& r) override {
    registrar_->handle(tx, std::move(r));
  }
  void onAck(transport::ReceivedMessage&&) override {}
  void onStrayResponse(transport::ReceivedMessage&&) override {}
  void onCancel(transaction::ServerTransaction&, transport::ReceivedMessage&&) override {}
  void onTransportError(transaction::ServerTransaction&, const Status&) override {}

  sip::Message reg(const std::string& contact, const std::string& aor = "sip:alice@example.com",
                   const std::string& call_id = "reg-1", const std::string& extra = "") {
    std::string text =
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK" +
        std::to_string(++branch_) + "\r\nMax-Forwards: 70\r\nFrom: <" + aor + ">;tag=f1\r\nTo: <" +
        aor + ">\r\nCall-ID: " + call_id + "\r\nCSeq: " + std::to_string(++cseq_) +
        " REGISTER\r\nContact: " + contact + "\r\n" + extra + "Content-Length: 0\r\n\r\n";
    auto parsed = sip::parseMessage(std::move(text), sip::ParseLimits{});
    EXPECT_EQ(parsed.kind, sip::ParseOutcome::Kind::kOk) << parsed.reason;
    transport::ReceivedMessage rm{std::move(*parsed.message),
                                  transport::Protocol::kUdp,
                                  *Address::parse("198.51.100.7", 40000),
                                  *Address::parse("192.0.2.1", 5060),
                                  0,
                                  timers_.now()};
    std::size_t before = transport_.sent.size();
    layer_.receive(std::move(rm));
    EXPECT_GT(transport_.sent.size(), before) << "no response";
    auto out = sip::parseMessage(transport_.sent.back().bytes, sip::ParseLimits{});
    return std::move(*out.message);
  }

  static std::vector<std::string> values(const sip::Message& m, std::string_view name) {
    std::vector<std::string> out;
    for (const auto& f : m.headers()) {
      if (f.name == name) out.emplace_back(f.value);
    }
    return out;
  }

  FakeTimerService timers_;
  sipwake::testing::FakeTransport transport_;
  transaction::TransactionLayer layer_;
  location::MemoryLocationStore memory_;
  location::LocationStore* push_store_ = &memory_;  // push bindings live with the SIP ones
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<Registrar> registrar_;
  location::SysSeconds now_ = kNow;
  int branch_ = 0;
  int cseq_ = 0;
};

TEST_F(PushCaptureTest, EveryDialectGivesAPushBindingAndFeatureCaps) {
  struct Case {
    std::string contact;
    std::string caps;
  };
  const std::vector<Case> cases = {
      {"<sip:a@198.51.100.7;pn-provider=apns;pn-param=ABCD123456.com.example.phone.voip;pn-prid=" +
           kHex + ">",
       "*;+sip.pns=\"apns\""},
      {"<sip:a@198.51.100.7>;push-token-type=firebase;push-token-app=hero;push-token-id=" + kFcm,
       "*;+sip.pns=\"fcm\""},
      {"<sip:a@198.51.100.7;app-id=com.example.phone;pn-voip-tok=" + kHex + ">",
       "*;+sip.pns=\"apns\""},
      {"<sip:a@198.51.100.7>;app-id=org.linphone.phone.prod;pn-type=apple;pn-tok=" + kHex,
       "*;+sip.pns=\"apns\""},
  };
  int n = 0;
  for (const Case& c : cases) {
    const std::string aor = "sip:u" + std::to_string(++n) + "@example.com";
    sip::Message r = reg(c.contact, aor, "reg-" + std::to_string(n));
    ASSERT_EQ(r.statusCode(), 200) << c.contact << " " << r.reasonPhrase();
    EXPECT_EQ(values(r, "Feature-Caps"), std::vector<std::string>{c.caps}) << c.contact;
    auto records = push_store_->lookupPush(aor, kNow);
    ASSERT_EQ(records.size(), 1u) << c.contact;
    EXPECT_EQ(records[0].expires_at, kNow + std::chrono::hours(24 * 30));
    auto bindings = memory_.lookup(aor, kNow);
    ASSERT_EQ(bindings.size(), 1u);
    EXPECT_TRUE(bindings[0].push.has_value());
  }
}

TEST_F(PushCaptureTest, PnsregFeatureTagGetsARefreshInterval) {
  sip::Message r =
      reg("<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">;+sip.pnsreg",
          "sip:alice@example.com", "reg-1", "Expires: 3600\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_EQ(values(r, "Feature-Caps"),
            std::vector<std::string>{"*;+sip.pns=\"fcm\";+sip.pnsreg=\"1800\""});
}

// RFC 8599 §6 / RFC 6809: the PURR rides in the provider's Feature-Caps as a quoted string,
// names the device's push binding, and stays the same on a refresh within the rotation period.
TEST_F(PushCaptureTest, PurrStoreAddsPnspurrToTheFeatureCaps) {
  auto purrs = location::makeMemoryPurrStore();
  registrar_->setPurrs(purrs.get());
  const std::string contact =
      "<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">;+sip.pnsreg";
  sip::Message r = reg(contact, "sip:alice@example.com", "reg-1", "Expires: 3600\r\n");
  ASSERT_EQ(r.statusCode(), 200);
  auto caps = values(r, "Feature-Caps");
  ASSERT_EQ(caps.size(), 1u);
  const std::string head = "*;+sip.pns=\"fcm\";+sip.pnsreg=\"1800\";+sip.pnspurr=\"";
  ASSERT_TRUE(caps[0].starts_with(head)) << caps[0];
  ASSERT_EQ(caps[0].size(), head.size() + 33) << caps[0];
  ASSERT_EQ(caps[0].back(), '"');
  const std::string purr = caps[0].substr(head.size(), 32);
  EXPECT_TRUE(location::isPurrShaped(purr)) << purr;
  auto found = purrs->use(purr, kNow);
  ASSERT_TRUE(found.has_value());
  auto records = push_store_->lookupPush("sip:alice@example.com", kNow);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(found->device_key, records[0].device_key);
  EXPECT_EQ(found->aor, "sip:alice@example.com");
  // A refresh a minute later: the same PURR.
  now_ = kNow + std::chrono::minutes(1);
  sip::Message again = reg(contact, "sip:alice@example.com", "reg-1", "Expires: 3600\r\n");
  ASSERT_EQ(again.statusCode(), 200);
  EXPECT_EQ(values(again, "Feature-Caps"), caps);
  // Without push params: no Feature-Caps, so no PURR.
  sip::Message plain = reg("<sip:b@198.51.100.7>", "sip:bob@example.com", "reg-2");
  ASSERT_EQ(plain.statusCode(), 200);
  EXPECT_TRUE(values(plain, "Feature-Caps").empty());
}

TEST_F(PushCaptureTest, UnservedProviderGets555AndNothingIsStored) {
  make(true, [](const push::PushBinding& b) { return b.provider == push::Provider::kApns; });
  sip::Message r = reg("<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">");
  EXPECT_EQ(r.statusCode(), 555);
  EXPECT_EQ(push_store_->pushSize(), 0u);
  EXPECT_TRUE(memory_.lookup("sip:alice@example.com", kNow).empty());
}

TEST_F(PushCaptureTest, MalformedParamsGet400NamingTheParam) {
  sip::Message r = reg("<sip:a@198.51.100.7;pn-provider=apns;pn-prid=" + kHex + ">");
  EXPECT_EQ(r.statusCode(), 400);
  EXPECT_NE(std::string(r.reasonPhrase()).find("pn-param"), std::string::npos) << r.reasonPhrase();
  EXPECT_EQ(std::string(r.reasonPhrase()).find(kHex), std::string::npos);
  EXPECT_EQ(push_store_->pushSize(), 0u);
}

TEST_F(PushCaptureTest, UnRegisterWithTokenKeepsThePushBinding) {
  const std::string c = "<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">";
  ASSERT_EQ(reg(c).statusCode(), 200);
  ASSERT_EQ(reg(c + ";expires=0").statusCode(), 200);
  EXPECT_TRUE(memory_.lookup("sip:alice@example.com", kNow).empty());
  EXPECT_EQ(push_store_->lookupPush("sip:alice@example.com", kNow).size(), 1u);
}

TEST_F(PushCaptureTest, RegisterWithoutPushParamsOptsOut) {
  ASSERT_EQ(
      reg("<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">").statusCode(),
      200);
  sip::Message r = reg("<sip:a@198.51.100.7>");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_TRUE(values(r, "Feature-Caps").empty());
  EXPECT_EQ(push_store_->pushSize(), 0u);
}

TEST_F(PushCaptureTest, InstanceRegisteringWithoutPushParamsOptsOut) {
  const std::string inst = ";+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\"";
  ASSERT_EQ(reg("<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">" + inst)
                .statusCode(),
            200);
  ASSERT_EQ(reg("<sip:a@203.0.113.9>" + inst).statusCode(), 200);
  EXPECT_EQ(push_store_->pushSize(), 0u);
}

TEST_F(PushCaptureTest, WildcardUnRegisterRemovesEveryPushBindingOfTheAor) {
  ASSERT_EQ(
      reg("<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">").statusCode(),
      200);
  ASSERT_EQ(reg("*", "sip:alice@example.com", "reg-1", "Expires: 0\r\n").statusCode(), 200);
  EXPECT_EQ(push_store_->pushSize(), 0u);
}

TEST_F(PushCaptureTest, TokenMovesToTheNewAorAndLeavesTheOldOne) {
  const std::string c = "<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">";
  ASSERT_EQ(reg(c, "sip:alice@example.com", "reg-a").statusCode(), 200);
  ASSERT_EQ(reg(c, "sip:bob@example.com", "reg-b").statusCode(), 200);
  EXPECT_TRUE(push_store_->lookupPush("sip:alice@example.com", kNow).empty());
  EXPECT_EQ(push_store_->lookupPush("sip:bob@example.com", kNow).size(), 1u);
}

TEST_F(PushCaptureTest, EachRegisterRenewsTheTtl) {
  const std::string c = "<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">";
  ASSERT_EQ(reg(c).statusCode(), 200);
  now_ = kNow + std::chrono::hours(24 * 20);
  ASSERT_EQ(reg(c).statusCode(), 200);
  auto records =
      push_store_->lookupPush("sip:alice@example.com", kNow + std::chrono::hours(24 * 40));
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].expires_at, now_ + std::chrono::hours(24 * 30));
  EXPECT_TRUE(push_store_->lookupPush("sip:alice@example.com", now_ + std::chrono::hours(24 * 31))
                  .empty());
}

TEST_F(PushCaptureTest, CaptureDisabledIgnoresPushParams) {
  make(false);
  sip::Message r = reg("<sip:a@198.51.100.7;pn-provider=fcm;pn-param=proj;pn-prid=" + kFcm + ">");
  ASSERT_EQ(r.statusCode(), 200);
  EXPECT_TRUE(values(r, "Feature-Caps").empty());
  EXPECT_EQ(push_store_->pushSize(), 0u);
}

TEST(StripPushUriParams, RemovesOnlyPushParams) {
  EXPECT_EQ(stripPushUriParams("sip:a@h:5060;transport=tcp;pn-provider=apns;pn-prid=abc;ob"),
            "sip:a@h:5060;transport=tcp;ob");
  EXPECT_EQ(stripPushUriParams("sip:a@h;app-id=x;pn-voip-tok=y"), "sip:a@h");
  EXPECT_EQ(stripPushUriParams("sip:a@h;lr"), "sip:a@h;lr");
}

}  // namespace
}  // namespace sipwake::registrar
