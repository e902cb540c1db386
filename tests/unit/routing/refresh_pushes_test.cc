#include "routing/refresh_pushes.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "../location/push_test_util.h"
#include "location/memory_location_store.h"
#include "push/push_params.h"

namespace sipwake::routing {
namespace {

using location::SysSeconds;
using std::chrono::hours;
using std::chrono::minutes;

constexpr SysSeconds kT0{std::chrono::seconds(1'800'000'000)};

// --- the schedule itself ------------------------------------------------------------------

RefreshInputs inputs(std::chrono::seconds sip, std::chrono::seconds ttl) {
  RefreshInputs in;
  in.registered_at = kT0;
  in.sip_expires_at = kT0 + sip;
  in.push_expires_at = kT0 + ttl;
  return in;
}

TEST(NextRefresh, DueLeadBeforeTheSipBindingLapsesThenBeforeTheTtl) {
  RefreshConfig c;
  c.lead = std::chrono::seconds(600);
  RefreshInputs in = inputs(hours(1), hours(24 * 30));
  auto first = nextRefresh(in, c);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->at, kT0 + minutes(50));
  EXPECT_EQ(first->deadline, kT0 + hours(1));
  // Pushed then, the device did not register again: the next is for the push TTL only.
  in.pushed_at = first->at;
  auto second = nextRefresh(in, c);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->at, kT0 + hours(24 * 30) - minutes(10));
  in.pushed_at = second->at;
  EXPECT_FALSE(nextRefresh(in, c));  // once per deadline and registration
}

TEST(NextRefresh, WithoutLiveSipBindingOnlyTheTtl) {
  RefreshConfig c;
  c.lead = std::chrono::seconds(120);
  RefreshInputs in = inputs(hours(1), std::chrono::seconds(130));
  in.sip_expires_at.reset();
  auto p = nextRefresh(in, c);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->at, kT0 + std::chrono::seconds(10));
  EXPECT_EQ(p->deadline, kT0 + std::chrono::seconds(130));
}

TEST(NextRefresh, NeverBeforeItsRegistration) {
  RefreshConfig c;
  c.lead = std::chrono::seconds(600);
  auto p = nextRefresh(inputs(std::chrono::seconds(300), hours(24)), c);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->at, kT0);
}

TEST(NextRefresh, KeepsAppleSpacingAndSkipsADeadlineItCannotReach) {
  RefreshConfig c;
  c.lead = std::chrono::seconds(600);
  RefreshInputs in = inputs(std::chrono::seconds(600), hours(24));  // due at once
  in.pushed_at = kT0 - minutes(15);                                 // for the previous registration
  auto p = nextRefresh(in, c);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->at, kT0 + minutes(5));  // 20 minutes after the last push, before the deadline
  in.pushed_at = kT0 - minutes(2);     // the SIP deadline (+10 min) cannot get one in time
  p = nextRefresh(in, c);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->deadline, kT0 + hours(24));
  EXPECT_EQ(p->at, kT0 + hours(24) - std::chrono::seconds(600));
}

TEST(NextRefresh, VoipOnlyBindingGetsNone) {
  RefreshInputs in = inputs(hours(1), hours(24));
  in.can_refresh = false;
  EXPECT_FALSE(nextRefresh(in, RefreshConfig{}));
}

// --- the scheduler on a fake loop ----------------------------------------------------------

class RecordingSender final : public push::PushSender {
 public:
  void send(const push::PushTarget& target, const push::CallEvent& event, push::PushKind kind,
            Done done) override {
    EXPECT_EQ(kind, push::PushKind::kRefresh);
    EXPECT_EQ(event.kind, push::CallEventKind::kRefresh);
    sent.push_back(target.device_key);
    done(push::PushOutcome::ok());
  }
  std::vector<std::string> sent;
};

push::PushBinding fcmBinding(const std::string& token) {
  push::PushBinding b;
  b.provider = push::Provider::kFcm;
  b.message_token = token;
  b.project_id = "proj";
  return b;
}

push::PushBinding voipOnlyBinding(const std::string& token) {
  push::PushBinding b;
  b.provider = push::Provider::kApns;
  b.app_id = "com.example.app";
  b.voip_token = token;
  return b;
}

class RefreshPushesTest : public ::testing::Test {
 protected:
  SysSeconds wallNow() const {
    return kT0 + std::chrono::duration_cast<std::chrono::seconds>(timers_.now() - TimePoint{});
  }

  void makeScheduler(std::chrono::seconds lead, std::uint32_t rate = 100) {
    RefreshPushes::Deps d;
    d.timers = &timers_;
    d.post = [](std::function<void()> fn) { fn(); };
    d.push_store = push_store_;
    d.locations = &locations_;
    d.sender = &sender_;
    d.wall_clock = [this] { return wallNow(); };
    RefreshConfig c;
    c.lead = lead;
    c.rate = rate;
    refresh_ = std::make_unique<RefreshPushes>(c, std::move(d));
  }

  // What the registrar writes for one REGISTER of `aor`'s device with `pb` (nullopt: without push
  // params, an opt-out), then tells its observer.
  void registerDevice(const std::string& instance, const std::optional<push::PushBinding>& pb,
                      std::chrono::seconds expires, std::chrono::seconds ttl) {
    const SysSeconds now = wallNow();
    location::Binding b;
    b.contact_uri = "sip:alice@192.0.2.1:5060;transport=tcp";
    b.instance_id = instance;
    b.expires_at = now + expires;
    b.push = pb;
    location::RegistrationChange change;
    change.aor = kAor;
    change.call_id = "reg-" + instance;
    change.cseq = ++cseq_;
    change.now = now;
    change.upserts.push_back(b);
    location::Binding written;
    locations_.applyRegistration(
        change, [](std::function<void()> fn) { fn(); },
        [&](Result<std::vector<location::Binding>> r) {
          ASSERT_TRUE(r.isOk());
          for (const auto& x : *r) {
            if (x.instance_id == instance) written = x;
          }
        });
    if (pb) {
      location::PushRecord rec;
      rec.device_key = pb->deviceKey();
      rec.aor = kAor;
      rec.identity = instance;
      rec.binding_key = location::bindingKey(written);
      rec.binding = *pb;
      rec.registered_at = now;
      rec.expires_at = now + ttl;
      ASSERT_TRUE(location::testing::upsertPush(*push_store_, rec).isOk());
    } else {
      ASSERT_TRUE(location::testing::removePushIdentity(*push_store_, kAor, instance).isOk());
    }
    if (refresh_) {
      transport::ReceivedMessage request{
          sip::Message::makeRequest(sip::Method::kRegister, "REGISTER", "sip:example.com"),
          transport::Protocol::kTcp,
          {},
          {},
          0,
          {}};
      refresh_->onRegistered(kAor, written, request);
    }
  }

  static constexpr const char* kAor = "sip:alice@example.com";
  FakeTimerService timers_;
  location::MemoryLocationStore locations_;
  location::LocationStore* push_store_ = &locations_;
  RecordingSender sender_;
  std::unique_ptr<RefreshPushes> refresh_;
  std::uint32_t cseq_ = 0;
};

TEST_F(RefreshPushesTest, PushedLeadBeforeExpiryOncePerRegistration) {
  makeScheduler(std::chrono::seconds(600));
  const push::PushBinding pb = fcmBinding("tok-a");
  registerDevice("<urn:uuid:a>", pb, hours(1), hours(24 * 30));
  timers_.advance(minutes(50) - std::chrono::seconds(1));
  EXPECT_TRUE(sender_.sent.empty());
  timers_.advance(std::chrono::seconds(1));
  ASSERT_EQ(sender_.sent.size(), 1u);
  EXPECT_EQ(sender_.sent[0], pb.deviceKey());
  // The device does not register: its SIP binding lapses, no second push for it.
  timers_.advance(hours(2));
  EXPECT_EQ(sender_.sent.size(), 1u);
  // It registers again (woken): the next push is lead before the new expiry.
  registerDevice("<urn:uuid:a>", pb, hours(1), hours(24 * 30));
  timers_.advance(minutes(49));
  EXPECT_EQ(sender_.sent.size(), 1u);
  timers_.advance(minutes(1));
  EXPECT_EQ(sender_.sent.size(), 2u);
}

TEST_F(RefreshPushesTest, NeverCloserThanAppleAllows) {
  makeScheduler(std::chrono::seconds(120));
  const push::PushBinding pb = fcmBinding("tok-b");
  // 130 s registrations renewed every 2 minutes: each is due a refresh 10 s after its REGISTER,
  // but one device gets at most one push per 20 minutes.
  for (int i = 0; i < 30; ++i) {
    registerDevice("<urn:uuid:b>", pb, std::chrono::seconds(130), hours(24));
    timers_.advance(minutes(2));
  }
  // 60 minutes: pushes at +10 s, +20 min 10 s, +40 min 10 s.
  EXPECT_EQ(sender_.sent.size(), 3u);
}

TEST_F(RefreshPushesTest, NoneForAnOptedOutOrRemovedDevice) {
  makeScheduler(std::chrono::seconds(600));
  registerDevice("<urn:uuid:c>", fcmBinding("tok-c"), hours(1), hours(24));
  registerDevice("<urn:uuid:d>", fcmBinding("tok-d"), hours(1), hours(24));
  timers_.advance(minutes(5));
  registerDevice("<urn:uuid:c>", std::nullopt, hours(1), hours(24));         // opts out
  ASSERT_TRUE(
      location::testing::removePushDevice(*push_store_, fcmBinding("tok-d").deviceKey()).isOk());  // token dead
  timers_.advance(hours(48));
  EXPECT_TRUE(sender_.sent.empty());
  EXPECT_EQ(refresh_->tracked(), 0u);
}

TEST_F(RefreshPushesTest, VoipOnlyBindingIsNeverPushed) {
  makeScheduler(std::chrono::seconds(600));
  registerDevice("<urn:uuid:e>", voipOnlyBinding(std::string(64, 'e')), hours(1), hours(24));
  timers_.advance(hours(48));
  EXPECT_TRUE(sender_.sent.empty());
  EXPECT_EQ(refresh_->tracked(), 0u);
}

TEST_F(RefreshPushesTest, StartSchedulesBindingsAlreadyStored) {
  const push::PushBinding pb = fcmBinding("tok-f");
  registerDevice("<urn:uuid:f>", pb, hours(1), hours(24));  // before the scheduler exists
  makeScheduler(std::chrono::seconds(600));
  refresh_->start();
  EXPECT_EQ(refresh_->tracked(), 1u);
  EXPECT_EQ(timers_.pending(), 1u);  // one timer, not one per device
  timers_.advance(minutes(50));
  ASSERT_EQ(sender_.sent.size(), 1u);
  EXPECT_EQ(sender_.sent[0], pb.deviceKey());
}

// A start-up after an outage finds many refreshes due at once: `rate` a second, the rest after.
TEST_F(RefreshPushesTest, ManyDueAtOnceArePacedAtTheRate) {
  for (int i = 0; i < 25; ++i) {
    registerDevice("<urn:uuid:" + std::to_string(i) + ">", fcmBinding("tok-" + std::to_string(i)),
                   minutes(5), hours(24));  // due at once: lead 600 s > 5 min
  }
  makeScheduler(std::chrono::seconds(600), 10);
  refresh_->start();
  EXPECT_EQ(sender_.sent.size(), 10u);
  timers_.advance(std::chrono::seconds(1));
  EXPECT_EQ(sender_.sent.size(), 20u);
  timers_.advance(std::chrono::seconds(1));
  EXPECT_EQ(sender_.sent.size(), 25u);
  timers_.advance(minutes(10));
  EXPECT_EQ(sender_.sent.size(), 25u);  // once each
}

}  // namespace
}  // namespace sipwake::routing
