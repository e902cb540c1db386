// Registration refresh (RFC 8599 §5.5), [push] refresh = "wake": before a push device's SIP
// registration at sipwake lapses, and before its push binding's own TTL ends, the app is woken
// with a refresh push (push::PushKind::kRefresh) so that it REGISTERs again.
//
// The rules, per device (push::PushBinding::deviceKey()):
//   * A deadline is the expiry of the device's SIP binding (the one its push binding was
//     registered with, while it is live) or of its push binding. The refresh for a deadline is
//     due `lead` before it, never before the registration it belongs to.
//   * Once per deadline and registration: a push sent at or after that due time covers it until
//     the device registers again.
//   * Never two refresh pushes to one device closer than `min_interval` (Apple's budget for
//     background pushes: push::kMinRefreshPushInterval); a deadline the next allowed push cannot
//     reach in time gets none.
//   * At most `rate` refresh pushes a second in all; the others wait for the next seconds.
//   * None for a device whose push binding is gone (opted out: REGISTER without push params;
//     removed: token dead, moved) or that has only a VoIP token (!canWakeWithoutCall()).
//
// Scheduling: the stores keep no order by expiry, so this class keeps its own: every push device
// it has heard of (start(): every live push binding; onRegistered(): each push REGISTER) in a set
// ordered by due time, behind ONE timer armed for the earliest. When an entry falls due the
// device's push and SIP bindings are read again from the stores, so a renewal the class was not
// told about (an un-REGISTER renews the push TTL) moves the entry rather than causing a push.
//
// Counters: push.refresh_sent, push.refresh_failed (the provider refused or the binding has no
// non-VoIP token).
//
// Thread: lives on one loop (the home loop): start() and the timer run there; onRegistered() runs
// on any registrar loop and posts to it. Must be destroyed after the home loop stopped.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "common/clock.h"
#include "common/stats.h"
#include "location/location_store.h"
#include "location/location_store.h"
#include "push/sender.h"
#include "registrar/registrar.h"

namespace sipwake::routing {

struct RefreshConfig {
  std::chrono::seconds lead{600};  // how long before a deadline the refresh push is sent
  std::chrono::seconds min_interval = push::kMinRefreshPushInterval;
  // At most this many refresh pushes in one second (a start-up after an outage finds many due
  // at once); the rest wait for the next seconds.
  std::uint32_t rate = 100;
};

// What the schedule of one device depends on.
struct RefreshInputs {
  location::SysSeconds registered_at{};  // the push binding's last REGISTER
  location::SysSeconds push_expires_at{};
  std::optional<location::SysSeconds> sip_expires_at;  // its SIP binding, while live
  std::optional<location::SysSeconds> pushed_at;       // the last refresh push to the device
  bool can_refresh = true;                             // PushBinding::canWakeWithoutCall()
};

struct RefreshPlan {
  location::SysSeconds at{};        // when to send
  location::SysSeconds deadline{};  // the expiry it is for
};

// The next refresh push of a device (the rules above), or nullopt when it gets none.
std::optional<RefreshPlan> nextRefresh(const RefreshInputs& in, const RefreshConfig& config);

class RefreshPushes final : public registrar::RegistrationObserver {
 public:
  using WallClock = std::function<location::SysSeconds()>;
  struct Deps {
    TimerService* timers = nullptr;                          // the home loop's; required
    location::Executor post;                                 // runs on the home loop; required
    const location::LocationStore* push_store = nullptr;  // its push bindings  // required
    const location::LocationStore* locations = nullptr;      // required
    push::PushSender* sender = nullptr;                      // required
    WallClock wall_clock;                                    // empty: system clock
  };

  RefreshPushes(RefreshConfig config, Deps deps);
  ~RefreshPushes() override;
  RefreshPushes(const RefreshPushes&) = delete;
  RefreshPushes& operator=(const RefreshPushes&) = delete;

  // Home loop: schedules every live push binding.
  void start();

  // Any registrar loop: a push binding's device registered (bindings without push are ignored).
  void onRegistered(std::string_view aor, const location::Binding& binding,
                    const transport::ReceivedMessage& request) override;

  // Devices tracked: with a refresh scheduled, or pushed less than min_interval ago. Home loop.
  std::size_t tracked() const { return devices_.size(); }

 private:
  struct Device {
    location::SysSeconds due{};  // its entry in queue_
    // Kept (and the device tracked, queued at the end of min_interval) after a push even when
    // no refresh is due, so that a device registering again soon still waits out the interval.
    std::optional<location::SysSeconds> pushed_at;
  };

  location::SysSeconds wallNow() const;
  // Home loop: (re)plans `key` from the stores; sends its push when it is due now.
  void plan(const std::string& key);
  void queue(const std::string& key, Device& d, location::SysSeconds due);
  void arm();
  void fire();
  void send(const location::PushRecord& record, push::PushBinding binding);
  // Takes one push of this second's `rate`; false when it is spent.
  bool spend(location::SysSeconds now);

  RefreshConfig config_;
  Deps deps_;
  std::map<std::string, Device, std::less<>> devices_;
  std::set<std::pair<location::SysSeconds, std::string>> queue_;  // (due, device key)
  TimerService::TimerId timer_ = 0;
  location::SysSeconds timer_at_{};
  location::SysSeconds budget_second_{};  // the second `budget_used_` counts pushes of
  std::uint32_t budget_used_ = 0;
  std::shared_ptr<bool> alive_;
  Counter& sent_;
  Counter& failed_;
};

}  // namespace sipwake::routing
