// Wake-and-wait (issue 4 part 4) over the real Proxy and TransactionLayer, a fake clock and
// transport, an in-memory push binding store and a FakePushSender with scripted outcomes. The
// woken device's REGISTER is simulated the way the registrar reports it: the binding is written
// to the location store, then WakeHub::onRegistered runs.
#include "routing/wake.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>

#include "auth/authenticator.h"
#include "../location/push_test_util.h"
#include "location/purr_store.h"
#include "push/push_params.h"
#include "registrar/registrar.h"
#include "routing_test_util.h"

namespace sipwake::routing::testing {
namespace {

struct SentPush {
  std::string device_key;
  push::CallEvent event;
  push::PushKind kind;
};

// Records every push; answers from `script` (front first), else ok. Answers inline, like a
// sender whose reply arrives at once (the wake layer must post it to its loop anyway).
class FakePushSender final : public push::PushSender {
 public:
  void send(const push::PushTarget& target, const push::CallEvent& event, push::PushKind kind,
            Done done) override {
    pushes.push_back(SentPush{target.device_key, event, kind});
    push::PushOutcome out;
    if (!script.empty()) {
      out = script.front();
      script.pop_front();
    }
    done(out);
  }
  std::size_t count(push::PushKind kind) const {
    std::size_t n = 0;
    for (const auto& p : pushes) n += p.kind == kind ? 1 : 0;
    return n;
  }
  std::vector<SentPush> pushes;
  std::deque<push::PushOutcome> script;
};

push::PushOutcome outcome(push::PushOutcome::Kind kind, std::string reason, int status) {
  push::PushOutcome o;
  o.kind = kind;
  o.reason = std::move(reason);
  o.provider_status = status;
  return o;
}

struct Device {
  std::string contact;  // as registered, with push params
  std::string instance;
  push::PushBinding binding;
  Ua ua;
};

class WakeTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    configure({});
  }

  // `authenticator` / `trusted`: the proxy's (nullptr: every request counts as authenticated).
  void configure(WakeConfig config, WakeLimitsConfig limits = {},
                 auth::Authenticator* authenticator = nullptr,
                 const auth::TrustedPeers* trusted = nullptr) {
    proxy_.reset();
    wake_.reset();
    limits_ = std::make_unique<WakeLimits>(limits);
    WakeAndWait::Deps deps;
    deps.inner = &locations_;
    deps.push_store = push_store_;
    deps.purrs = purrs_.get();
    deps.sender = &sender_;
    deps.hub = &hub_;
    deps.limits = limits_.get();
    deps.loop = 0;
    deps.post = [this](std::function<void()> fn) { queue_.push_back(std::move(fn)); };
    deps.timers = &timers_;
    deps.wall_clock = [] { return kNow; };
    deps.message_store = message_store_;
    wake_ = std::make_unique<WakeAndWait>(std::move(config), std::move(deps));
    build({}, wake_.get(), authenticator, trusted);
    wake_->setProxy(proxy_.get());
  }

  void TearDown() override {
    proxy_.reset();
    wake_.reset();
    limits_.reset();
  }

  // Runs what was posted to "the loop" until nothing is left.
  void drain() {
    for (int guard = 0; guard < 100 && !queue_.empty(); ++guard) {
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      fn();
    }
  }

  // A device of `aor` with push params; `apns`: an iOS VoIP token, else FCM.
  Device device(char token_char, const Ua& ua, bool apns = false, std::string instance = "") {
    Device d;
    d.ua = ua;
    d.instance = std::move(instance);
    std::string token =
        apns ? std::string(64, token_char) : "e-3akVQA_Gk:APA91b" + std::string(140, token_char);
    std::vector<push::RawParam> raw = {
        {"pn-provider", apns ? "apns" : "fcm"},
        {"pn-param", apns ? "ABCD123456.com.example.phone.voip" : "proj"},
        {"pn-prid", token}};
    auto parsed = push::parsePushParams(raw);
    EXPECT_TRUE(parsed.isOk());
    d.binding = *parsed.value();
    d.contact = "sip:bob@" + ua.address.toString() +
                ";pn-provider=" + std::string(apns ? "apns" : "fcm") + ";pn-prid=" + token;
    return d;
  }

  location::Binding sipBinding(const Device& d) {
    location::Binding b;
    b.aor = "sip:bob@example.com";
    b.contact_uri = d.contact;
    b.instance_id = d.instance;
    b.expires_at = kNow + std::chrono::seconds(3600);
    b.received.protocol = d.ua.protocol == transport::Protocol::kUdp   ? "udp"
                          : d.ua.protocol == transport::Protocol::kTcp ? "tcp"
                                                                       : "tls";
    b.received.source_ip = d.ua.address.ip();
    b.received.source_port = d.ua.address.port;
    b.received.flow_id = d.ua.flow;
    b.push = d.binding;
    b.call_id = "reg-" + d.contact;
    b.cseq = 1;
    return b;
  }

  // The state a REGISTER with push params followed by the app's background un-REGISTER leaves:
  // a push binding, no SIP contact.
  void sleeping(const Device& d) {
    location::Binding b = sipBinding(d);
    location::PushRecord r;
    r.device_key = d.binding.deviceKey();
    r.aor = "sip:bob@example.com";
    r.identity =
        d.instance.empty() ? "c:" + registrar::stripPushUriParams(d.contact) : "i:" + d.instance;
    r.binding_key = location::bindingKey(b);
    r.binding = d.binding;
    r.registered_at = kNow;
    r.expires_at = kNow + std::chrono::hours(24 * 30);
    ASSERT_TRUE(location::testing::upsertPush(*push_store_, r).isOk());
  }

  // The device's REGISTER got its 200 OK.
  void wakes(const Device& d) {
    location::Binding b = sipBinding(d);
    location::RegistrationChange c;
    c.aor = b.aor;
    c.call_id = b.call_id;
    c.cseq = ++reg_cseq_;
    c.now = kNow;
    c.upserts.push_back(b);
    store_.applyRegistration(
        std::move(c), [](std::function<void()> f) { f(); },
        [](Result<std::vector<location::Binding>> r) { ASSERT_TRUE(r.isOk()); });
    transport::ReceivedMessage reg{parse(request("REGISTER", "sip:example.com", "", d.ua, "r")),
                                   d.ua.protocol,
                                   d.ua.address,
                                   transport_.localAddressFor(d.ua.protocol, false).value(),
                                   0,
                                   timers_.now()};
    hub_.onRegistered("sip:bob@example.com", b, reg);
    drain();
  }

  // The device's REGISTER was taken by another node sharing the store: its binding (with that
  // node's route in front of its Path) is in the store, and the store's "registered" event
  // reaches the hub. Returns how many bindings the hub released.
  std::size_t wakesElsewhere(const Device& d, const std::string& node_route) {
    location::Binding b = sipBinding(d);
    b.path = {node_route};
    location::RegistrationChange c;
    c.aor = b.aor;
    c.call_id = b.call_id;
    c.cseq = ++reg_cseq_;
    c.now = kNow;
    c.upserts.push_back(b);
    store_.applyRegistration(
        std::move(c), [](std::function<void()> f) { f(); },
        [](Result<std::vector<location::Binding>> r) { ASSERT_TRUE(r.isOk()); });
    std::size_t n =
        hub_.onRegisteredElsewhere(store_, "sip:bob@example.com", {d.binding.deviceKey()}, kNow);
    drain();
    return n;
  }

  static WakeConfig onlySleepingDevices() {
    WakeConfig c;
    c.push_connected_devices = false;
    return c;
  }

  static std::string branchOf(const sip::Message& m) {
    auto via = m.topVia();
    return via ? std::string(via->branch()) : std::string();
  }

  // A push-bound device with a live contact at bob_ is called: the INVITE goes there at once
  // and the device is pushed (RFC 8599 §5.6.2).
  Device calledWhileConnected(std::string instance = "") {
    Device d = device('a', bob_, false, std::move(instance));
    sleeping(d);
    wakes(d);
    invite();
    EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
    EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);
    return d;
  }

  void invite() {
    deliver(request("INVITE", "sip:bob@example.com"), alice_);
    drain();
  }

  bool has(const std::vector<int>& codes, int code) {
    return std::find(codes.begin(), codes.end(), code) != codes.end();
  }

  location::LocationStore* push_store_ = &store_;  // push bindings live with the SIP ones
  std::unique_ptr<location::PurrStore> purrs_ = location::makeMemoryPurrStore();
  FakePushSender sender_;
  WakeHub hub_;
  std::deque<std::function<void()>> queue_;
  std::unique_ptr<WakeLimits> limits_;  // before wake_: its slots go with the parked calls
  location::MessageStore* message_store_ = nullptr;  // given to the next configure()
  std::unique_ptr<WakeAndWait> wake_;
  std::uint32_t reg_cseq_ = 0;
};

TEST_F(WakeTest, SleepingDeviceIsPushedThenGetsTheInviteOnceAndAnswers) {
  Device d = device('a', bob_);
  sleeping(d);
  invite();
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 180}));  // at once
  ASSERT_EQ(sender_.pushes.size(), 1u);
  EXPECT_EQ(sender_.pushes[0].kind, push::PushKind::kCall);
  EXPECT_EQ(sender_.pushes[0].event.callee_aor, "sip:bob@example.com");
  EXPECT_EQ(sender_.pushes[0].event.call_id, "call-1");
  EXPECT_TRUE(requestsTo(bob_.address, "INVITE").empty());

  wakes(d);
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  // Push params never reach the phone.
  EXPECT_EQ(std::string(invites[0].requestUriText()), "sip:bob@" + bob_.address.toString());

  wakes(d);  // a second REGISTER (refresh, or the 401 dance done again) does not fork again
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);

  answer(bob_, "INVITE", 200, "OK");
  EXPECT_TRUE(has(codesTo(alice_.address), 200));
  EXPECT_EQ(sender_.count(push::PushKind::kCancel), 0u);  // the answering device is not told
  EXPECT_EQ(wake_->parkedCount(), 0u);
}

// Cross-node source: the phone woke and registered at another node; the INVITE parked here goes
// to the contact with that node's route in front (once, however many events), as after a local
// REGISTER.
TEST_F(WakeTest, AnotherNodesRegistrationReleasesTheParkedInviteThroughThatNode) {
  Device d = device('a', bob_);
  sleeping(d);
  EXPECT_EQ(hub_.onRegisteredElsewhere(store_, "sip:bob@example.com", {d.binding.deviceKey()},
                                       kNow),
            0u);  // nobody waits
  invite();
  ASSERT_EQ(sender_.count(push::PushKind::kCall), 1u);
  const transport::Address node_b = addr(10, 9, 9, 9, 5070);
  EXPECT_EQ(wakesElsewhere(d, "sip:nrx.t1-2-3.000abc@10.9.9.9:5070;lr"), 1u);
  auto invites = requestsTo(node_b, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_TRUE(requestsTo(bob_.address, "INVITE").empty());
  const sip::HeaderField* route = invites[0].find(sip::HeaderId::kRoute);
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->value, "<sip:nrx.t1-2-3.000abc@10.9.9.9:5070;lr>");
  EXPECT_EQ(std::string(invites[0].requestUriText()), "sip:bob@" + bob_.address.toString());

  wakesElsewhere(d, "sip:nrx.t1-2-3.000abc@10.9.9.9:5070;lr");  // a refresh: no second fork
  wakes(d);  // nor the same device registering here too
  EXPECT_EQ(requestsTo(node_b, "INVITE").size() + requestsTo(bob_.address, "INVITE").size(), 1u);
}

// The sender counts each push (push.sent / push.failed); the wake layer, which only hands pushes
// to it, counts none of them again.
TEST_F(WakeTest, PushOutcomesAreNotCountedAgainByTheWakeLayer) {
  auto total = [] {
    std::uint64_t n = 0;
    for (const auto& [name, v] : Stats::global().snapshot()) {
      if (name.starts_with("push.sent.") || name.starts_with("push.failed.")) n += v;
    }
    return n;
  };
  const std::uint64_t before = total();
  Device d = device('a', bob_);
  sleeping(d);
  sender_.script.push_back(outcome(push::PushOutcome::Kind::kTransient, "ServiceUnavailable", 503));
  invite();
  timers_.advance(std::chrono::seconds(2));  // the retry after the transient failure
  ASSERT_EQ(sender_.count(push::PushKind::kCall), 2u);
  EXPECT_EQ(total(), before);  // the fake sender counts nothing, so nor does anyone else
}

TEST_F(WakeTest, ParkedGaugeAndEveryWakeStageIsMeasuredOnce) {
  auto count = [](const std::string& stage) {
    auto h = Stats::global().histogramSnapshot("wake.latency." + stage);
    return h ? h->count : 0;
  };
  const char* stages[] = {"push_sent", "provider_answered", "registered", "request_out", "total"};
  std::map<std::string, std::uint64_t> before;
  for (const char* st : stages) before[st] = count(st);
  Gauge& parked = Stats::global().gauge("wake.parked_requests");
  const std::int64_t parked_before = parked.value();
  Device d = device('a', bob_);
  sleeping(d);
  invite();
  EXPECT_EQ(parked.value() - parked_before, 1);
  wakes(d);
  wakes(d);  // a second REGISTER measures nothing again
  answer(bob_, "INVITE", 200, "OK");
  EXPECT_EQ(parked.value(), parked_before);
  for (const char* st : stages) EXPECT_EQ(count(st) - before[st], 1u) << st;
}

std::string toTagOf(const sip::Message& m) {
  auto to = m.to();
  return to ? std::string(to->tag()) : std::string();
}

// Issue 4: "the caller gets a provisional response at once" — ringback while the phone wakes.
TEST_F(WakeTest, ParkedInviteGivesTheCallerOneRingingWithAProxyTagNotOnePerPush) {
  sleeping(device('a', bob_));
  sleeping(device('b', bob2_));
  sender_.script.push_back(outcome(push::PushOutcome::Kind::kTransient, "ServiceUnavailable", 503));
  invite();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);
  timers_.advance(seconds(1));  // the transient failure is retried: still one 180
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 3u);
  std::vector<sip::Message> ringing;
  for (sip::Message& m : sentTo(alice_.address)) {
    if (m.isResponse() && m.statusCode() == 180) ringing.push_back(std::move(m));
  }
  ASSERT_EQ(ringing.size(), 1u);
  const std::string tag = toTagOf(ringing[0]);
  EXPECT_FALSE(tag.empty());
  timers_.advance(seconds(30));  // nobody wakes: our 480 carries the To-tag of our 180
  drain();
  auto sent = sentTo(alice_.address);
  const sip::Message& last = sent.back();
  ASSERT_EQ(last.statusCode(), 480);
  EXPECT_EQ(toTagOf(last), tag);
}

TEST_F(WakeTest, NoProxyProvisionalWhenTheInviteOnlyForksToLiveContacts) {
  configure(onlySleepingDevices());
  Device awake = device('a', bob_);
  sleeping(awake);
  wakes(awake);  // a push binding, but connected: no push (opted out of RFC 8599 §5.6.2)
  invite();
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  EXPECT_TRUE(sender_.pushes.empty());
  EXPECT_EQ(codesTo(alice_.address), std::vector<int>{100});
  answer(bob_, "INVITE", 180, "Ringing");  // the phone's own 180 is forwarded, with its tag
  auto codes = codesTo(alice_.address);
  EXPECT_EQ(codes, (std::vector<int>{100, 180}));
  EXPECT_EQ(toTagOf(sentTo(alice_.address).back()), "bt");
}

TEST_F(WakeTest, ParkedProvisionalIsConfigurable) {
  WakeConfig c;
  c.parked_provisional = 183;
  configure(c);
  sleeping(device('a', bob_));
  invite();
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 183}));

  c.parked_provisional = 0;  // none
  configure(c);
  deliver(request("INVITE", "sip:bob@example.com", "", alice_, "call-2", 1, "", "z9hG4bKa2"),
          alice_);
  drain();
  std::vector<int> second;
  for (sip::Message& m : sentTo(alice_.address)) {
    if (m.isResponse() && m.callId() == "call-2") second.push_back(m.statusCode());
  }
  EXPECT_EQ(second, std::vector<int>{100});
}

TEST_F(WakeTest, MessageForASleepingDeviceGetsNoProvisional) {
  sleeping(device('a', bob_));
  deliver(request("MESSAGE", "sip:bob@example.com"), alice_);
  drain();
  EXPECT_TRUE(codesTo(alice_.address).empty());
}

// Ring timeout: it bounds the wait for sleeping devices, not branches that already ring.
TEST_F(WakeTest, RingTimeoutLeavesTheWokenDevicesRingingBranchAlone) {
  Device d = device('a', bob_);
  sleeping(d);
  invite();
  timers_.advance(seconds(20));
  wakes(d);
  answer(bob_, "INVITE", 180, "Ringing");
  timers_.advance(seconds(15));  // the ring timeout (30 s) passes while it rings
  drain();
  EXPECT_TRUE(requestsTo(bob_.address, "CANCEL").empty());
  for (int code : codesTo(alice_.address)) EXPECT_LT(code, 200);
  EXPECT_EQ(sender_.count(push::PushKind::kMissedCall), 0u);
  answer(bob_, "INVITE", 200, "OK");
  drain();
  EXPECT_EQ(codesTo(alice_.address).back(), 200);
  EXPECT_EQ(wake_->parkedCount(), 0u);
}

TEST_F(WakeTest, RingTimeoutLeavesLiveContactsRingingAndALateDeviceStillGetsTheCall) {
  configure(onlySleepingDevices());
  Device awake = device('a', bob_);
  Device asleep = device('b', bob2_);
  sleeping(awake);
  wakes(awake);
  sleeping(asleep);
  invite();
  answer(bob_, "INVITE", 180, "Ringing");
  timers_.advance(seconds(31));
  drain();
  EXPECT_TRUE(requestsTo(bob_.address, "CANCEL").empty());
  for (int code : codesTo(alice_.address)) EXPECT_LT(code, 200);
  // Past the ring timeout, while the call still rings on the live contact: offered once.
  wakes(asleep);
  wakes(asleep);
  EXPECT_EQ(requestsTo(bob2_.address, "INVITE").size(), 1u);
  answer(bob2_, "INVITE", 180, "Ringing", "b2");
  // Timer C (180 s) is restarted by each provisional: both ring on past 200 s.
  timers_.advance(seconds(100));
  answer(bob_, "INVITE", 180, "Ringing");
  answer(bob2_, "INVITE", 180, "Ringing", "b2");
  timers_.advance(seconds(100));
  drain();
  EXPECT_TRUE(requestsTo(bob_.address, "CANCEL").empty());
  EXPECT_EQ(wake_->parkedCount(), 1u);
  answer(bob2_, "INVITE", 200, "OK", "b2");
  drain();
  EXPECT_EQ(codesTo(alice_.address).back(), 200);
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 1u);
  EXPECT_EQ(sender_.count(push::PushKind::kCancel), 0u);  // the device that answered
  EXPECT_EQ(wake_->parkedCount(), 0u);
}

TEST_F(WakeTest, RingTimeoutWithNothingRingingGives480AtOnce) {
  configure(onlySleepingDevices());
  Device awake = device('a', bob_);
  sleeping(awake);
  wakes(awake);
  sleeping(device('b', bob2_));
  invite();
  answer(bob_, "INVITE", 486, "Busy Here");  // the live contact declined before the timeout
  EXPECT_EQ(codesTo(alice_.address).back(), 180);
  timers_.advance(seconds(31));
  drain();
  EXPECT_EQ(codesTo(alice_.address).back(), 486);
}

// push_connected_devices (the default): one INVITE per device, whichever binding it ends up on.
TEST_F(WakeTest, ConnectedDeviceWhoseOldBranchRangIsNotForkedAgain) {
  Device d = calledWhileConnected("<urn:uuid:00000000-0000-0000-0000-0000000000c1>");
  answer(bob_, "INVITE", 180, "Ringing");
  Device rereg = d;  // the pushed app registers again over a new socket
  rereg.ua = Ua{addr(10, 0, 0, 2, 6000)};
  rereg.contact = "sip:bob@" + rereg.ua.address.toString();
  wakes(rereg);
  EXPECT_TRUE(requestsTo(rereg.ua.address, "INVITE").empty());
  EXPECT_TRUE(requestsTo(bob_.address, "CANCEL").empty());
  answer(bob_, "INVITE", 200, "OK");
  drain();
  EXPECT_EQ(codesTo(alice_.address).back(), 200);
  EXPECT_EQ(sender_.count(push::PushKind::kCancel), 0u);  // it answered: no "elsewhere"
}

TEST_F(WakeTest, ConnectedDeviceThatDeclinedOnItsOldContactIsNotForkedAgain) {
  Device d = device('a', bob_);
  Device other = device('b', bob2_);
  sleeping(d);
  wakes(d);
  sleeping(other);  // keeps the call waiting after bob's decline
  invite();
  answer(bob_, "INVITE", 603, "Decline");
  Device rereg = d;
  rereg.ua = Ua{addr(10, 0, 0, 2, 6000)};
  rereg.contact = "sip:bob@" + rereg.ua.address.toString() + ";pn-provider=fcm";
  wakes(rereg);  // the user saw the call and said no: not offered again
  EXPECT_TRUE(requestsTo(rereg.ua.address, "INVITE").empty());
}

TEST_F(WakeTest, ConnectedDeviceWhoseOldBranchIsSilentMovesToTheNewBinding) {
  Device d = calledWhileConnected();  // no +sip.instance: matched by its push token
  Device rereg = d;
  rereg.ua = Ua{addr(10, 0, 0, 2, 6000)};
  rereg.contact = "sip:bob@" + rereg.ua.address.toString() + ";pn-provider=fcm";
  wakes(rereg);
  ASSERT_EQ(requestsTo(rereg.ua.address, "INVITE").size(), 1u);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  wakes(rereg);  // a refresh: still one INVITE
  EXPECT_EQ(requestsTo(rereg.ua.address, "INVITE").size(), 1u);
  // The old branch is CANCELled (sent once it answers at all, §9.1); its 487 does not count.
  answer(bob_, "INVITE", 100, "Trying");
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 1u);
  answer(bob_, "INVITE", 487, "Request Terminated");
  answer(rereg.ua, "INVITE", 486, "Busy Here", "b2");
  drain();
  EXPECT_EQ(codesTo(alice_.address).back(), 486);
}

// The killed app, started by the push, registers again from the old branch's address (linphone
// reuses its UDP port): the old branch's INVITE is the INVITE to the woken app. It is sent again
// at once, and no second INVITE (another branch: a phantom second call) reaches the device.
TEST_F(WakeTest, ConnectedDeviceReRegisteringFromTheSameAddressTakesOverItsOldBranch) {
  Device d = calledWhileConnected("<urn:uuid:00000000-0000-0000-0000-0000000000c2>");
  wakes(d);
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 2u);  // without waiting for Timer A
  EXPECT_EQ(branchOf(invites[1]), branchOf(invites[0]));
  answer(bob_, "INVITE", 180, "Ringing");
  answer(bob_, "INVITE", 200, "OK");
  drain();
  EXPECT_EQ(codesTo(alice_.address).back(), 200);
  EXPECT_TRUE(requestsTo(bob_.address, "CANCEL").empty());
  for (const sip::Message& m : requestsTo(bob_.address, "INVITE")) {
    EXPECT_EQ(branchOf(m), branchOf(invites[0]));
  }
  EXPECT_EQ(sender_.count(push::PushKind::kCancel), 0u);  // it answered: no "elsewhere" push
  // A refresh during the call: nothing more.
  wakes(d);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 2u);
}

// Registered again from another address: the old branch's INVITE retransmissions stop at once,
// so none can reach an app that later shows up there.
TEST_F(WakeTest, ConnectedDeviceReRegisteringElsewhereStopsTheOldBranchAtOnce) {
  Device d = calledWhileConnected();
  Device rereg = d;
  rereg.ua = Ua{addr(10, 0, 0, 2, 6000)};
  rereg.contact = "sip:bob@" + rereg.ua.address.toString() + ";pn-provider=fcm";
  wakes(rereg);
  ASSERT_EQ(requestsTo(rereg.ua.address, "INVITE").size(), 1u);
  timers_.advance(seconds(10));
  drain();
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);      // no Timer A any more
  EXPECT_GT(requestsTo(rereg.ua.address, "INVITE").size(), 1u);  // the new branch's runs
  answer(rereg.ua, "INVITE", 200, "OK", "b2");
  drain();
  EXPECT_EQ(codesTo(alice_.address).back(), 200);
}

// Over TCP/TLS only the same connection is the same destination: a device that registers again
// over the connection its INVITE was written to already has it; over a new connection it gets
// a new branch (the old one is CANCELled once it answers at all).
TEST_F(WakeTest, ConnectedTcpDeviceKeepsItsBranchOnlyOnTheSameConnection) {
  Device d = device('a', Ua{addr(10, 0, 0, 2, 40000), transport::Protocol::kTcp, 7});
  sleeping(d);
  wakes(d);
  invite();
  ASSERT_EQ(requestsTo(d.ua.address, "INVITE").size(), 1u);
  wakes(d);  // woken by the push, it registers again on the same connection
  EXPECT_EQ(requestsTo(d.ua.address, "INVITE").size(), 1u);  // reliable: nothing sent again
  EXPECT_TRUE(requestsTo(d.ua.address, "CANCEL").empty());

  Device other = device('b', Ua{addr(10, 0, 0, 3, 40000), transport::Protocol::kTcp, 8});
  sleeping(other);
  wakes(other);
  deliver(request("INVITE", "sip:bob@example.com", "", alice_, "call-2", 1, "", "z9hG4bKa2"),
          alice_);
  drain();
  Device moved = other;  // the same device, registered again over a new connection
  moved.ua = Ua{addr(10, 0, 0, 3, 40001), transport::Protocol::kTcp, 9};
  wakes(moved);
  EXPECT_EQ(requestsTo(moved.ua.address, "INVITE").size(), 1u);
}

TEST_F(WakeTest, MatchesTheWokenDeviceByInstanceToo) {
  Device d = device('a', bob_, false, "<urn:uuid:00000000-0000-0000-0000-0000000000b1>");
  sleeping(d);
  invite();
  Device moved = d;  // new token after reinstall? same instance: still the device we pushed
  moved.binding.message_token = "e-3akVQA_Gk:APA91b" + std::string(140, 'z');
  wakes(moved);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
}

TEST_F(WakeTest, NoDeviceWithinTheRingTimeoutGives480AndAMissedCallPush) {
  sleeping(device('a', bob_));
  invite();
  timers_.advance(seconds(31));
  drain();
  EXPECT_TRUE(has(codesTo(alice_.address), 480));
  EXPECT_EQ(sender_.count(push::PushKind::kMissedCall), 1u);
  EXPECT_EQ(wake_->parkedCount(), 0u);
}

TEST_F(WakeTest, CallerCancelGives487AndAMissedCallPush) {
  sleeping(device('a', bob_));
  invite();
  deliver(request("CANCEL", "sip:bob@example.com"), alice_);
  drain();
  EXPECT_TRUE(has(codesTo(alice_.address), 487));
  ASSERT_EQ(sender_.count(push::PushKind::kMissedCall), 1u);
  EXPECT_EQ(sender_.pushes.back().event.kind, push::CallEventKind::kMissed);
  EXPECT_EQ(sender_.pushes.back().event.call_uuid, sender_.pushes.front().event.call_uuid);
}

TEST_F(WakeTest, CallerCancelAfterForkCancelsTheWokenBranch) {
  Device d = device('a', bob_);
  sleeping(d);
  invite();
  wakes(d);
  answer(bob_, "INVITE", 180, "Ringing");
  deliver(request("CANCEL", "sip:bob@example.com"), alice_);
  drain();
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 1u);
  EXPECT_EQ(sender_.count(push::PushKind::kMissedCall), 1u);  // at once, not after the 487
  answer(bob_, "INVITE", 487, "Request Terminated");
  drain();
  EXPECT_TRUE(has(codesTo(alice_.address), 487));
  EXPECT_EQ(sender_.count(push::PushKind::kMissedCall), 1u);
}

TEST_F(WakeTest, TwoDevicesOneAnswersTheOtherIsCancelledAndToldAnsweredElsewhere) {
  Device d1 = device('a', bob_);
  Device d2 = device('b', bob2_);
  sleeping(d1);
  sleeping(d2);
  invite();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);
  wakes(d1);
  wakes(d2);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  EXPECT_EQ(requestsTo(bob2_.address, "INVITE").size(), 1u);
  answer(bob2_, "INVITE", 180, "Ringing", "b2");
  answer(bob_, "INVITE", 200, "OK");
  drain();
  EXPECT_TRUE(has(codesTo(alice_.address), 200));
  EXPECT_EQ(requestsTo(bob2_.address, "CANCEL").size(), 1u);
  ASSERT_EQ(sender_.count(push::PushKind::kCancel), 1u);
  const SentPush& cancel = sender_.pushes.back();
  EXPECT_EQ(cancel.device_key, d2.binding.deviceKey());
  EXPECT_EQ(cancel.event.kind, push::CallEventKind::kAnsweredElsewhere);
}

TEST_F(WakeTest, LiveContactIsForkedAtOnceAndSleepingOneIsPushed) {
  configure(onlySleepingDevices());
  Device awake = device('a', bob_);
  Device asleep = device('b', bob2_);
  sleeping(awake);
  wakes(awake);  // registered and connected: no push needed
  sleeping(asleep);
  invite();
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  ASSERT_EQ(sender_.pushes.size(), 1u);
  EXPECT_EQ(sender_.pushes[0].device_key, asleep.binding.deviceKey());
}

// RFC 8599 §5.6.2: every request to a push-bound device is pushed, also when its contact looks
// alive (an app the OS killed leaves such a contact behind).
TEST_F(WakeTest, ConnectedDevicesArePushedByDefault) {
  Device awake = device('a', bob_);
  sleeping(awake);
  wakes(awake);
  invite();
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);
}

TEST_F(WakeTest, TransientFailureIsRetriedWithinTheRingWindow) {
  Device d = device('a', bob_);
  sleeping(d);
  sender_.script.push_back(outcome(push::PushOutcome::Kind::kTransient, "ServiceUnavailable", 503));
  invite();
  EXPECT_EQ(sender_.pushes.size(), 1u);
  timers_.advance(seconds(1));
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);
  wakes(d);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
}

TEST_F(WakeTest, DeadTokenRemovesThePushBindingAndEndsTheWait) {
  sleeping(device('a', bob_));
  sender_.script.push_back(outcome(push::PushOutcome::Kind::kRemoveBinding, "Unregistered", 410));
  invite();
  EXPECT_EQ(push_store_->pushSize(), 0u);
  EXPECT_TRUE(has(codesTo(alice_.address), 480));  // no need to wait for the ring timeout
}

TEST_F(WakeTest, DeadTokenTimestampBeforeTheRegistrationKeepsTheBinding) {
  sleeping(device('a', bob_));
  auto o = outcome(push::PushOutcome::Kind::kRemoveBinding, "Unregistered", 410);
  o.invalid_since = kNow - std::chrono::seconds(60);  // re-registered since
  sender_.script.push_back(o);
  invite();
  EXPECT_EQ(push_store_->pushSize(), 1u);
}

TEST_F(WakeTest, IosDeviceRegisteringAfterTheCallEndedGetsTheCancelAgainNotAnInvite) {
  Device d = device('c', bob_, /*apns=*/true);
  ASSERT_TRUE(d.binding.callsUseVoip());
  sleeping(d);
  invite();
  deliver(request("CANCEL", "sip:bob@example.com"), alice_);
  drain();
  EXPECT_TRUE(has(codesTo(alice_.address), 487));
  wakes(d);
  EXPECT_TRUE(requestsTo(bob_.address, "INVITE").empty());
  ASSERT_EQ(sender_.count(push::PushKind::kCancel), 1u);
  EXPECT_EQ(sender_.pushes.back().event.kind, push::CallEventKind::kCancel);
  wakes(d);  // once
  EXPECT_EQ(sender_.count(push::PushKind::kCancel), 1u);
  // Never a VoIP push for anything but the call: the sender gets PushKind::kCancel.
}

TEST_F(WakeTest, MessageForASleepingDeviceSendsAnAlertPush) {
  Device d = device('a', bob_);
  sleeping(d);
  deliver(request("MESSAGE", "sip:bob@example.com"), alice_);
  drain();
  ASSERT_EQ(sender_.pushes.size(), 1u);
  EXPECT_EQ(sender_.pushes[0].kind, push::PushKind::kMessage);
  wakes(d);
  EXPECT_EQ(requestsTo(bob_.address, "MESSAGE").size(), 1u);
}

// Re-push (routing/repush.h): a push the provider accepted and that woke nobody is sent again.
class WakeRepushTest : public WakeTest {
 protected:
  // Runs the fake clock to `t` since the INVITE, a second at a time (pushes answered between).
  void runUntil(Duration t) {
    while (elapsed_ < t) {
      timers_.advance(milliseconds(500));
      elapsed_ += milliseconds(500);
      drain();
    }
  }
  Duration elapsed_{};
};

TEST_F(WakeRepushTest, AcceptedPushThatWokeNobodyIsRepushedWithTheSameCallUuid) {
  Device d = device('a', bob_);
  sleeping(d);
  invite();
  ASSERT_EQ(sender_.count(push::PushKind::kCall), 1u);
  runUntil(milliseconds(4500));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);  // the FCM interval is 5 s
  runUntil(seconds(5));
  ASSERT_EQ(sender_.count(push::PushKind::kCall), 2u);
  EXPECT_EQ(sender_.pushes[1].device_key, d.binding.deviceKey());
  EXPECT_EQ(sender_.pushes[1].event.call_uuid, sender_.pushes[0].event.call_uuid);
  EXPECT_EQ(Stats::global().counter("push.repushed.fcm").value() > 0, true);
  wakes(d);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  runUntil(seconds(29));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);  // none once it registered
}

TEST_F(WakeRepushTest, NoRepushWhenTheDeviceRegistersInTime) {
  Device d = device('a', bob_);
  sleeping(d);
  invite();
  runUntil(seconds(2));
  wakes(d);
  runUntil(seconds(29));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);
}

TEST_F(WakeRepushTest, RepushesAreBoundedInNumber) {
  sleeping(device('a', bob_));
  invite();
  runUntil(seconds(31));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 3u);  // the push and max_repushes = 2
  EXPECT_TRUE(has(codesTo(alice_.address), 480));
}

TEST_F(WakeRepushTest, RepushesStayInTheRingWindow) {
  WakeConfig c;
  c.ring_timeout = seconds(12);
  c.repush.max_repushes = 10;
  configure(c);
  sleeping(device('a', bob_));
  invite();
  runUntil(seconds(13));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);  // at 5 s; at 10 s too late to register
}

TEST_F(WakeRepushTest, ConnectedDeviceRingingOnItsOldContactIsNotRepushed) {
  calledWhileConnected();
  answer(bob_, "INVITE", 180, "Ringing");
  runUntil(seconds(29));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);
}

TEST_F(WakeRepushTest, ConnectedDeviceSilentOnItsOldContactIsRepushed) {
  calledWhileConnected();
  runUntil(seconds(6));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);
}

TEST_F(WakeRepushTest, NoRepushAfterTheCallerCancelled) {
  sleeping(device('a', bob_));
  invite();
  deliver(request("CANCEL", "sip:bob@example.com"), alice_);
  drain();
  runUntil(seconds(29));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);
}

TEST_F(WakeRepushTest, RefusedRepushHonoursRetryAfterAndKeepsWaitingForTheDevice) {
  Device d = device('a', bob_);
  sleeping(d);
  sender_.script.push_back(outcome(push::PushOutcome::Kind::kOk, "", 200));
  auto quota = outcome(push::PushOutcome::Kind::kTransient, "QUOTA_EXCEEDED", 429);
  quota.retry_after = std::chrono::seconds(60);  // beyond the ring window: not retried
  sender_.script.push_back(quota);
  invite();
  runUntil(seconds(8));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);
  EXPECT_FALSE(has(codesTo(alice_.address), 480));  // the first push may still wake it
  wakes(d);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  runUntil(seconds(29));
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);
}

// A MESSAGE with a text body, as `request` builds it.
std::string withTextBody(std::string message, const std::string& body,
                         const std::string& type = "text/plain") {
  const std::string empty = "Content-Length: 0\r\n\r\n";
  message.replace(message.find(empty), empty.size(),
                  "Content-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\n\r\n" + body);
  return message;
}

// RFC 3994: "is typing" is a passing state of a conversation in progress: no phone is woken (nor
// a message kept) for it.
TEST_F(WakeTest, IsComposingIndicationWakesNobody) {
  sleeping(device('a', bob_));
  deliver(withTextBody(request("MESSAGE", "sip:bob@example.com"), "<isComposing/>",
                       "application/im-iscomposing+xml"),
          alice_);
  drain();
  EXPECT_TRUE(sender_.pushes.empty());
  EXPECT_TRUE(has(codesTo(alice_.address), 480));
}

TEST_F(WakeTest, MessagePushCarriesTheMessageEventAndNoPreviewByDefault) {
  sleeping(device('a', bob_));
  deliver(withTextBody(request("MESSAGE", "sip:bob@example.com"), "secret text"), alice_);
  drain();
  ASSERT_EQ(sender_.pushes.size(), 1u);
  EXPECT_EQ(sender_.pushes[0].event.kind, push::CallEventKind::kMessage);
  EXPECT_EQ(sender_.pushes[0].event.caller_uri, "sip:alice@example.com");
  EXPECT_EQ(sender_.pushes[0].event.preview, "");
}

TEST_F(WakeTest, MessagePreviewWhenTheOperatorAllowsIt) {
  WakeConfig c;
  c.message_preview = true;
  configure(c);
  sleeping(device('a', bob_));
  deliver(withTextBody(request("MESSAGE", "sip:bob@example.com"), "see you at 8"), alice_);
  drain();
  ASSERT_EQ(sender_.pushes.size(), 1u);
  EXPECT_EQ(sender_.pushes[0].event.preview, "see you at 8");
}

TEST_F(WakeTest, MessageNobodyTakesIsStoredAndAnswered202ThenTheUsersBoundAnswers486) {
  auto store = location::makeMemoryMessageStore({1, 10});
  message_store_ = store.get();
  configure({});
  Device d = device('a', bob_);
  sleeping(d);
  deliver(withTextBody(request("MESSAGE", "sip:bob@example.com"), "first"), alice_);
  drain();
  timers_.advance(seconds(25));  // the MESSAGE wait (non_invite_timeout)
  drain();
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{202}));
  std::vector<location::StoredMessage> kept = store->pendingFor(d.binding.deviceKey(), kNow);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].body, "first");
  EXPECT_EQ(kept[0].content_type, "text/plain");
  EXPECT_EQ(kept[0].from, "<sip:alice@example.com>;tag=fa");
  EXPECT_EQ(kept[0].call_id, "call-1");
  EXPECT_GT(kept[0].expires_at, kNow + seconds(3600));

  deliver(withTextBody(request("MESSAGE", "sip:bob@example.com", "", alice_, "call-2", 1, "",
                               "z9hG4bKa2"),
                       "second"),
          alice_);
  drain();
  timers_.advance(seconds(25));
  drain();
  ASSERT_EQ(sentTo(alice_.address).size(), 2u);
  EXPECT_EQ(sentTo(alice_.address).back().statusCode(), 486);
  EXPECT_EQ(sentTo(alice_.address).back().reasonPhrase(), "Busy Here - Message Store Full");
  EXPECT_EQ(store->size(), 1u);
  wakes(d);  // the store delivers it (MessageDelivery), not these requests
  EXPECT_TRUE(requestsTo(bob_.address, "MESSAGE").empty());
  message_store_ = nullptr;
}

// An app the OS killed leaves a UDP contact that looks alive and answers nothing: the MESSAGE
// sent there has no answer until its Timer F (32 s), the sender's own Timer F. The 202 goes at
// the end of the wait all the same, before the sender gives up, and that branch is retransmitted
// no more.
TEST_F(WakeTest, MessageKeptFor202AtTheEndOfTheWaitThoughTheKilledAppsContactIsSilent) {
  auto store = location::makeMemoryMessageStore({});
  message_store_ = store.get();
  configure({});
  Device d = device('a', bob_);
  sleeping(d);
  wakes(d);  // then killed: its contact stays
  deliver(withTextBody(request("MESSAGE", "sip:bob@example.com"), "kept"), alice_);
  drain();
  ASSERT_EQ(requestsTo(bob_.address, "MESSAGE").size(), 1u);
  ASSERT_EQ(sender_.count(push::PushKind::kMessage), 1u);
  timers_.advance(seconds(25));  // the MESSAGE wait
  drain();
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{202}));
  std::vector<location::StoredMessage> kept = store->pendingFor(d.binding.deviceKey(), kNow);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].body, "kept");
  // No more retransmissions to the old contact: the app started again on its port (linphone
  // reuses it) gets the kept copy, not a second one. Nothing more to the sender at Timer F.
  const std::size_t sent = requestsTo(bob_.address, "MESSAGE").size();
  timers_.advance(seconds(10));
  drain();
  EXPECT_EQ(requestsTo(bob_.address, "MESSAGE").size(), sent);
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{202}));
  message_store_ = nullptr;
}

TEST_F(WakeTest, MessageOverThePushBudgetIsKeptAtOnceWithoutAPush) {
  auto store = location::makeMemoryMessageStore({});
  message_store_ = store.get();
  WakeLimitsConfig limits;
  limits.device = {1, 1};
  configure({}, limits);
  Device d = device('a', bob_);
  sleeping(d);
  deliver(withTextBody(request("MESSAGE", "sip:bob@example.com"), "pushed"), alice_);
  drain();
  ASSERT_EQ(sender_.pushes.size(), 1u);
  deliver(withTextBody(request("MESSAGE", "sip:bob@example.com", "", alice_, "call-2", 1, "",
                               "z9hG4bKa2"),
                       "over budget"),
          alice_);
  drain();
  EXPECT_EQ(sender_.pushes.size(), 1u);  // no second push
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{202}));
  std::vector<location::StoredMessage> kept = store->pendingFor(d.binding.deviceKey(), kNow);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].body, "over budget");
  message_store_ = nullptr;
}

TEST_F(WakeTest, NoPushBindingMeansPlain480) {
  invite();
  EXPECT_TRUE(has(codesTo(alice_.address), 480));
  EXPECT_TRUE(sender_.pushes.empty());
}

// ---------------------------------------------------------------------------------------------
// Push flood protection (routing/wake_limits.h, docs/security.md "Push flood").

// The proxy authenticates (strangers are told apart) and trusts `kPbx`.
// RFC 8599 §6: a mid-dialog request to a device's PURR, along our Record-Route.
class PurrWakeTest : public WakeTest {
 protected:
  std::string purrOf(const Device& d) {
    auto p = purrs_->issue(d.binding.deviceKey(), "sip:bob@example.com", kNow);
    EXPECT_TRUE(p.isOk());
    return p.isOk() ? *p : std::string();
  }
  // alice's re-INVITE (CSeq 2) in the dialog of call-1, to bob's dialog Contact with `purr`.
  void reInvite(const std::string& purr) {
    deliver(request("INVITE", "sip:bob@" + bob_.address.toString() + ";pn-purr=" + purr,
                    signedRoute("call-1"), alice_, "call-1", 2, "bt", "z9hG4bKre1"),
            alice_);
    drain();
  }
};

TEST_F(PurrWakeTest, ReInviteToASleepingDeviceWakesItAndGoesToItsNewBinding) {
  Device d = device('a', bob_, true);
  sleeping(d);
  const std::string purr = purrOf(d);
  // The call itself pushed the device once (same Call-ID): the re-INVITE still pushes.
  invite();
  const std::size_t call_pushes = sender_.count(push::PushKind::kCall);
  const std::size_t before = sentTo(alice_.address).size();
  reInvite(purr);
  EXPECT_EQ(sender_.count(push::PushKind::kCall), call_pushes + 1);
  // The call it already has: same Call-ID and call_uuid.
  EXPECT_EQ(sender_.pushes.back().event.call_id, "call-1");
  EXPECT_EQ(sender_.pushes.back().event.callee_aor, "sip:bob@example.com");
  EXPECT_EQ(sender_.pushes.back().event.call_uuid, sender_.pushes.front().event.call_uuid);
  // Held: only 100 Trying to alice (no 180 inside a dialog), nothing to bob yet.
  std::vector<int> codes;
  for (std::size_t i = before; i < sentTo(alice_.address).size(); ++i) {
    codes.push_back(sentTo(alice_.address)[i].statusCode());
  }
  EXPECT_EQ(codes, std::vector<int>{100});
  auto is_reinvite = [](const sip::Message& m) { return m.cseq().isOk() && m.cseq()->number == 2; };
  auto invites = requestsTo(bob_.address, "INVITE");
  EXPECT_TRUE(std::none_of(invites.begin(), invites.end(), is_reinvite));

  wakes(d);
  invites = requestsTo(bob_.address, "INVITE");
  ASSERT_TRUE(is_reinvite(invites.back()));
  // To its new registration, without push params, in the dialog (To-tag kept).
  EXPECT_EQ(std::string(invites.back().requestUriText()), "sip:bob@" + bob_.address.toString());
  EXPECT_EQ(toTagOf(invites.back()), "bt");
  answer(bob_, "INVITE", 200, "OK");
  EXPECT_EQ(sentTo(alice_.address).back().statusCode(), 200);
  EXPECT_EQ(sentTo(alice_.address).back().cseq()->number, 2u);
}

TEST_F(PurrWakeTest, UnknownOrForgedPurrGets404UnknownPushResource) {
  Device d = device('a', bob_, true);
  sleeping(d);
  for (const std::string& purr : {std::string(32, 'f'), std::string("not-a-purr")}) {
    reInvite(purr);
    auto to_alice = sentTo(alice_.address);
    ASSERT_FALSE(to_alice.empty());
    EXPECT_EQ(to_alice.back().statusCode(), 404) << purr;
    EXPECT_EQ(std::string(to_alice.back().reasonPhrase()), "Not Found - Unknown Push Resource");
  }
  EXPECT_TRUE(sender_.pushes.empty());
}

TEST_F(PurrWakeTest, PurrOfARemovedPushBindingGets404) {
  Device d = device('a', bob_, true);
  sleeping(d);
  const std::string purr = purrOf(d);
  ASSERT_TRUE(location::testing::removePushDevice(*push_store_, d.binding.deviceKey()).isOk());
  reInvite(purr);
  EXPECT_EQ(sentTo(alice_.address).back().statusCode(), 404);
  EXPECT_TRUE(sender_.pushes.empty());
}

TEST_F(PurrWakeTest, AwakeDeviceGetsTheRequestAtItsDialogTargetWithoutAPush) {
  Device d = device('a', bob_, true);
  sleeping(d);
  wakes(d);  // a live SIP binding
  const std::string purr = purrOf(d);
  reInvite(purr);
  EXPECT_TRUE(sender_.pushes.empty());
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_EQ(std::string(invites[0].requestUriText()),
            "sip:bob@" + bob_.address.toString() + ";pn-purr=" + purr);
}

// The phone's PURR reaches the caller in a dialog we record-route; its token never does.
TEST_F(PurrWakeTest, PurrStaysInTheContactOfARecordRoutedDialogOtherPushParamsGo) {
  Device d = device('a', bob_, true);
  sleeping(d);
  wakes(d);
  invite();
  answer(bob_, "INVITE", 200, "OK", "bt",
         "Contact: <sip:bob@" + bob_.address.toString() + ";pn-provider=apns;pn-prid=" +
             std::string(64, 'a') + ";pn-purr=" + std::string(32, 'c') + ">");
  auto to_alice = sentTo(alice_.address);
  const sip::Message& ok = to_alice.back();
  ASSERT_EQ(ok.statusCode(), 200);
  const std::string contact(ok.find(sip::HeaderId::kContact)->value);
  EXPECT_NE(contact.find(";pn-purr=" + std::string(32, 'c')), std::string::npos) << contact;
  EXPECT_EQ(contact.find("pn-prid"), std::string::npos) << contact;
  EXPECT_EQ(contact.find("pn-provider"), std::string::npos) << contact;
}

class WakeFloodTest : public WakeTest {
 protected:
  void SetUp() override {
    WakeTest::SetUp();
    auto authenticator_peers = auth::TrustedPeers::parse({});
    authenticator_ = std::make_unique<auth::Authenticator>(
        auth::AuthConfig{},
        [](std::string_view, std::string_view) { return std::optional<auth::UserHa1>(); },
        std::move(*authenticator_peers));
    auto peers = auth::TrustedPeers::parse({kPbx.address.ip()});
    ASSERT_TRUE(peers.isOk());
    trusted_ = std::move(*peers);
    limited({});
  }
  void TearDown() override {
    WakeTest::TearDown();
    authenticator_.reset();
  }

  // Re-pushes of an admitted call are not taken from the budgets: off here, so that the call
  // pushes counted are the admitted ones.
  void limited(WakeLimitsConfig limits) {
    WakeConfig c;
    c.repush.max_repushes = 0;
    configure(c, limits, authenticator_.get(), &trusted_);
  }

  // An INVITE for bob from another domain's user (not authenticated, not a trusted peer).
  std::string strangerInvite(const std::string& call_id, const std::string& branch,
                             const Ua& ua = kAlice) {
    std::string text = request("INVITE", "sip:bob@example.com", "", ua, call_id, 1, "", branch);
    const std::string from = "From: <sip:alice@example.com>";
    text.replace(text.find(from), from.size(), "From: <sip:mallory@evil.example>");
    return text;
  }
  // The final response to the INVITE with `call_id` and `branch` sent to `ua`.
  std::optional<sip::Message> finalFor(const Ua& ua, const std::string& call_id,
                                       const std::string& branch) {
    for (sip::Message& m : sentTo(ua.address)) {
      if (m.isResponse() && m.statusCode() >= 200 && m.callId() == call_id && branchOf(m) == branch)
        return std::move(m);
    }
    return std::nullopt;
  }
  static std::string retryAfter(const sip::Message& m) {
    const sip::HeaderField* h = m.find("Retry-After");
    return h != nullptr ? std::string(h->value) : std::string();
  }

  static inline const Ua kPbx{addr(10, 0, 0, 9, 5060)};
  std::unique_ptr<auth::Authenticator> authenticator_;
  auth::TrustedPeers trusted_;
};

// Issue 11, table row 1: the same Call-ID with new branches pushed once per copy.
TEST_F(WakeFloodTest, CopiesOfACallWithNewBranchesPushOnceAndMissOnce) {
  Device d = device('a', bob_);
  sleeping(d);
  for (int i = 0; i < 3; ++i) {
    deliver(strangerInvite("flood-1", "z9hG4bKcopy" + std::to_string(i)), alice_);
    drain();
  }
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);
  EXPECT_EQ(wake_->parkedCount(), 3u);  // every copy waits for the device
  timers_.advance(seconds(31));         // nobody wakes: every copy ends with 480
  drain();
  for (int i = 0; i < 3; ++i) {
    auto final = finalFor(alice_, "flood-1", "z9hG4bKcopy" + std::to_string(i));
    ASSERT_TRUE(final.has_value()) << i;
    EXPECT_EQ(final->statusCode(), 480);
  }
  EXPECT_EQ(sender_.count(push::PushKind::kMissedCall), 1u);
  EXPECT_EQ(wake_->parkedCount(), 0u);
  EXPECT_EQ(limits_->parked(), 0u);
}

TEST_F(WakeFloodTest, ACopyWaitsForTheDeviceTheFirstCopyWoke) {
  Device d = device('a', bob_);
  sleeping(d);
  deliver(strangerInvite("call-x", "z9hG4bKfirst"), alice_);
  deliver(strangerInvite("call-x", "z9hG4bKsecond"), alice_);
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);
  wakes(d);  // both copies reach the woken phone (it answers the merged one itself)
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 2u);
}

TEST_F(WakeFloodTest, DeviceBudgetBoundsCallPushesThen480WithRetryAfter) {
  WakeLimitsConfig c;
  c.device = {6, 3};
  limited(c);
  sleeping(device('a', bob_));
  for (int i = 0; i < 10; ++i) {
    deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "call-" + std::to_string(i), 1, "",
                    "z9hG4bKb" + std::to_string(i)),
            kPbx);
    drain();
  }
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 3u);
  auto refused = finalFor(kPbx, "call-3", "z9hG4bKb3");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->statusCode(), 480);
  EXPECT_EQ(refused->reasonPhrase(), "Temporarily Unavailable - Push Limit Reached");
  EXPECT_EQ(retryAfter(*refused), "10");  // one push per 10 s at 6 a minute
  timers_.advance(seconds(10));
  drain();
  deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "call-later", 1, "", "z9hG4bKl"),
          kPbx);
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 4u);
}

TEST_F(WakeFloodTest, AorBudgetCoversAllItsDevices) {
  WakeLimitsConfig c;
  c.aor = {20, 3};
  limited(c);
  sleeping(device('a', bob_));
  sleeping(device('b', bob2_));
  for (int i = 0; i < 3; ++i) {
    deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "call-" + std::to_string(i), 1, "",
                    "z9hG4bKa" + std::to_string(i)),
            kPbx);
    drain();
  }
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 3u);  // 2 + 1, then nothing
  auto refused = finalFor(kPbx, "call-2", "z9hG4bKa2");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->statusCode(), 480);
}

// A stranger's flood spends the strangers' budget only: the user's own callers still wake the
// phone afterwards.
TEST_F(WakeFloodTest, StrangerFloodLeavesTheDeviceBudgetToTrustedCallers) {
  sleeping(device('a', bob_));
  for (int i = 0; i < 20; ++i) {
    deliver(strangerInvite("evil-" + std::to_string(i), "z9hG4bKe" + std::to_string(i)), alice_);
    drain();
  }
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 3u);  // stranger burst
  auto refused = finalFor(alice_, "evil-5", "z9hG4bKe5");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->statusCode(), 480);
  EXPECT_EQ(retryAfter(*refused), "30");  // strangers: 2 a minute
  deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "friend", 1, "", "z9hG4bKf"), kPbx);
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 4u);
  ASSERT_FALSE(sender_.pushes.empty());
  EXPECT_EQ(sender_.pushes.back().event.call_id, "friend");
}

TEST_F(WakeFloodTest, WakeForAuthenticatedOrTrustedTurnsStrangersPushesOff) {
  WakeLimitsConfig c;
  c.wake_for = WakeFor::kAuthenticated;
  limited(c);
  sleeping(device('a', bob_));
  deliver(strangerInvite("evil", "z9hG4bKe"), alice_);
  drain();
  EXPECT_TRUE(sender_.pushes.empty());
  auto final = finalFor(alice_, "evil", "z9hG4bKe");
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(final->statusCode(), 480);  // as for a user with no push binding
  EXPECT_EQ(final->reasonPhrase(), "Temporarily Unavailable");
  deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "pbx", 1, "", "z9hG4bKp"), kPbx);
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);

  c.wake_for = WakeFor::kTrusted;
  limited(c);
  deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "pbx-2", 1, "", "z9hG4bKq"), kPbx);
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);
  // Authenticated users (here: a proxy that authenticates nobody) may not push either.
  configure({}, c);
  deliver(request("INVITE", "sip:bob@example.com", "", alice_, "user", 1, "", "z9hG4bKu"), alice_);
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 2u);
}

TEST_F(WakeFloodTest, ParkedBoundsPerAorPerSourceAndInTotalGive503WithRetryAfter) {
  sleeping(device('a', bob_));
  // Per AOR: strangers hold at most half of max_parked_per_aor (8).
  for (int i = 0; i < 5; ++i) {
    deliver(strangerInvite("same", "z9hG4bKs" + std::to_string(i)), alice_);
    drain();
  }
  EXPECT_EQ(wake_->parkedCount(), 4u);
  auto refused = finalFor(alice_, "same", "z9hG4bKs4");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->statusCode(), 503);
  EXPECT_EQ(refused->reasonPhrase(), "Service Unavailable - Too Many Parked Requests For User");
  EXPECT_EQ(retryAfter(*refused), "30");
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);

  WakeLimitsConfig c;
  c.max_parked_per_source = 2;
  limited(c);
  for (int i = 0; i < 3; ++i) {
    deliver(strangerInvite("src", "z9hG4bKt" + std::to_string(i), bob2_), bob2_);
    drain();
  }
  refused = finalFor(bob2_, "src", "z9hG4bKt2");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->reasonPhrase(), "Service Unavailable - Too Many Parked Requests From Source");

  c = {};
  c.max_parked = 2;  // trusted peers skip the per-source bound, not the total
  limited(c);
  for (int i = 0; i < 3; ++i) {
    deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "pbx", 1, "",
                    "z9hG4bKp" + std::to_string(i)),
            kPbx);
    drain();
  }
  refused = finalFor(kPbx, "pbx", "z9hG4bKp2");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->reasonPhrase(), "Service Unavailable - Too Many Parked Requests");
  timers_.advance(seconds(31));  // the parked ones end: their slots are free again
  drain();
  EXPECT_EQ(limits_->parked(), 0u);
  deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "pbx", 1, "", "z9hG4bKp9"), kPbx);
  drain();
  EXPECT_EQ(wake_->parkedCount(), 1u);
}

TEST_F(WakeFloodTest, LiveContactStillGetsTheRequestWhenThePushIsOverBudget) {
  WakeLimitsConfig c;
  c.device = {6, 1};
  limited(c);
  Device d = device('a', bob_);
  sleeping(d);
  wakes(d);  // connected: pushed too by default (RFC 8599 §5.6.2)
  deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "c1", 1, "", "z9hG4bK1"), kPbx);
  deliver(request("INVITE", "sip:bob@example.com", "", kPbx, "c2", 1, "", "z9hG4bK2"), kPbx);
  drain();
  EXPECT_EQ(sender_.count(push::PushKind::kCall), 1u);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 2u);
}

TEST(WakeLimitsTest, TrustedPeersAreNotBoundPerSourceOthersAreUntilTheirSlotsGo) {
  WakeLimitsConfig c;
  c.max_parked_per_source = 1;
  c.max_parked_per_aor = 100;
  WakeLimits limits(c);
  const std::vector<std::string> keys = {"dev"};
  WakeLimits::Request r;
  r.aor = "sip:bob@example.com";
  r.source_ip = "10.0.0.9";
  r.trust = RequestOrigin::Trust::kTrusted;
  r.call_id = "a";
  WakeLimits::Admission a = limits.admit(r, keys);
  r.call_id = "b";
  WakeLimits::Admission b = limits.admit(r, keys);
  EXPECT_TRUE(a.slot.held() && b.slot.held());
  r.trust = RequestOrigin::Trust::kAuthenticated;
  r.call_id = "c";
  WakeLimits::Admission first = limits.admit(r, keys);
  EXPECT_TRUE(first.slot.held());
  r.call_id = "d";
  WakeLimits::Admission second = limits.admit(r, keys);
  EXPECT_FALSE(second.slot.held());
  EXPECT_EQ(second.status, 503);
  EXPECT_EQ(second.devices, std::vector<WakeLimits::Verdict>{WakeLimits::Verdict::kSkip});
  first.slot = WakeLimits::Slot();  // that call ended
  WakeLimits::Admission again = limits.admit(r, keys);
  EXPECT_TRUE(again.slot.held());
  EXPECT_EQ(limits.parked(), 3u);
}

TEST(WakeLimitsTest, ACallIdIsRememberedForTenMinutes) {
  WakeLimits limits({});
  const std::vector<std::string> keys = {"dev"};
  WakeLimits::Request r;
  r.aor = "sip:bob@example.com";
  r.call_id = "same";
  r.trust = RequestOrigin::Trust::kAuthenticated;
  EXPECT_EQ(limits.admit(r, keys).devices[0], WakeLimits::Verdict::kPush);
  r.now += std::chrono::minutes(9);
  EXPECT_EQ(limits.admit(r, keys).devices[0], WakeLimits::Verdict::kWait);
  EXPECT_TRUE(limits.firstCancel("dev", "same", r.now));
  EXPECT_FALSE(limits.firstCancel("dev", "same", r.now));
  r.now += std::chrono::minutes(2);  // forgotten: a replay now costs budget like a new call
  EXPECT_EQ(limits.admit(r, keys).devices[0], WakeLimits::Verdict::kPush);
}

// The whole path with the real Registrar on a second transaction layer (as if on another loop):
// REGISTER with push params, background un-REGISTER, INVITE → push → REGISTER → INVITE out.
class RegistrarTu final : public transaction::TransactionUser {
 public:
  void onRequest(transaction::ServerTransaction& tx, transport::ReceivedMessage&& r) override {
    registrar->handle(tx, std::move(r));
  }
  void onAck(transport::ReceivedMessage&&) override {}
  void onStrayResponse(transport::ReceivedMessage&&) override {}
  void onCancel(transaction::ServerTransaction&, transport::ReceivedMessage&&) override {}
  void onTransportError(transaction::ServerTransaction&, const Status&) override {}
  registrar::Registrar* registrar = nullptr;
};

class WakeWithRegistrarTest : public WakeTest {
 protected:
  void SetUp() override {
    WakeTest::SetUp();
    reg_layer_ = std::make_unique<transaction::TransactionLayer>(timers_, transport_, reg_tu_);
    auto peers = auth::TrustedPeers::parse({});
    authenticator_ = std::make_unique<auth::Authenticator>(
        auth::AuthConfig{},
        [](std::string_view, std::string_view) { return std::optional<auth::UserHa1>(); },
        std::move(*peers));
    registrar::RegistrarConfig rc;
    rc.require_auth = false;
    registrar_ = std::make_unique<registrar::Registrar>(
        rc,
        registrar::Services{store_, *authenticator_,
                            [](std::string_view host) { return host == "example.com"; }},
        *reg_layer_, [](std::function<void()> fn) { fn(); }, [] { return kNow; });
    registrar::PushCaptureConfig pc;
    pc.enabled = true;
    registrar_->setPushCapture(pc);
    registrar_->setObserver(&hub_);
    reg_tu_.registrar = registrar_.get();
  }
  void TearDown() override {
    WakeTest::TearDown();
    registrar_.reset();
    reg_layer_.reset();
  }

  int registerBob(const std::string& contact_params, int expires) {
    const int n = ++n_;
    std::string text =
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP " +
        bob_.address.toString() + ";branch=z9hG4bKr" + std::to_string(n) +
        "\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=r1\r\n"
        "To: <sip:bob@example.com>\r\nCall-ID: bob-reg\r\nCSeq: " +
        std::to_string(n) + " REGISTER\r\nContact: <sip:bob@" + bob_.address.toString() +
        contact_params + ">;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-0000000000b0>\"" +
        "\r\nExpires: " + std::to_string(expires) + "\r\nContent-Length: 0\r\n\r\n";
    std::size_t before = transport_.sent.size();
    transport::ReceivedMessage rm{parse(text),
                                  bob_.protocol,
                                  bob_.address,
                                  transport_.localAddressFor(bob_.protocol, false).value(),
                                  0,
                                  timers_.now()};
    reg_layer_->receive(std::move(rm));
    drain();
    for (std::size_t i = before; i < transport_.sent.size(); ++i) {
      sip::Message m = parse(transport_.sent[i].bytes);
      if (m.isResponse() && transport_.sent[i].target.remote == bob_.address) return m.statusCode();
    }
    return 0;
  }

  RegistrarTu reg_tu_;
  std::unique_ptr<transaction::TransactionLayer> reg_layer_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<registrar::Registrar> registrar_;
  int n_ = 0;
};

TEST_F(WakeWithRegistrarTest, BackgroundedPhoneIsWokenAndGetsTheCall) {
  const std::string push =
      ";pn-provider=fcm;pn-param=proj;pn-prid=e-3akVQA_Gk:APA91b" + std::string(140, 'q');
  ASSERT_EQ(registerBob(push, 3600), 200);
  ASSERT_EQ(registerBob(push, 0), 200);  // the app goes to the background
  ASSERT_TRUE(store_.lookup("sip:bob@example.com", kNow).empty());

  invite();
  ASSERT_EQ(sender_.count(push::PushKind::kCall), 1u);
  EXPECT_TRUE(requestsTo(bob_.address, "INVITE").empty());

  ASSERT_EQ(registerBob(push, 3600), 200);  // woken by the push
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_EQ(std::string(invites[0].requestUriText()).find("pn-"), std::string::npos);
  ASSERT_EQ(registerBob(push, 3600), 200);  // a refresh: no second fork
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  answer(bob_, "INVITE", 200, "OK");
  EXPECT_TRUE(has(codesTo(alice_.address), 200));
}

}  // namespace
}  // namespace sipwake::routing::testing
