// Push flood protection for wake-and-wait (docs/security.md, "Push flood"). Whoever can make
// sipwake push can wake, drain and annoy a phone and spend the operator's standing with APNs/FCM,
// so every wake push is admitted here first:
//
//   - one call push per device per Call-ID: a copy of a call (same Call-ID, new branch: a
//     retransmission, an upstream fork, a replay) waits for the device the first copy woke and
//     never pushes it again; one missed-call / cancel push per device per call;
//   - token buckets of wake pushes (call and message) per device and per AOR, and a tighter
//     bucket per device for requests from strangers (neither authenticated nor a trusted peer),
//     taken on top of the device bucket, so a stranger's flood leaves most of the device's
//     budget to the user's own callers;
//   - `wake_for`: whose requests may push at all;
//   - bounds on parked requests: per source IP (trusted peers exempt), per AOR (strangers may
//     hold at most half of those, rounded up), and in total. A request that would park beyond
//     them is not parked (503 when it has nowhere else to go).
//
// Limits are per process: one WakeLimits is shared by the WakeAndWait of every loop.
// Thread: every method is thread-safe (one mutex; a few map look-ups per wake request).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/stats.h"
#include "common/token_bucket.h"
#include "routing/target_resolver.h"

namespace sipwake::routing {

enum class WakeFor : std::uint8_t {
  kAnyone,         // every request may push (strangers within their own budget)
  kAuthenticated,  // authenticated users and trusted peers
  kTrusted,        // trusted peers only
};

// A token bucket: `burst` pushes at once, refilled at `per_minute`.
struct PushRate {
  std::uint32_t per_minute = 6;
  std::uint32_t burst = 6;
  TokenRate tokens() const {
    return {static_cast<double>(burst), static_cast<double>(per_minute) / 60.0};
  }
};

struct WakeLimitsConfig {
  WakeFor wake_for = WakeFor::kAnyone;
  PushRate device{6, 6};    // wake pushes per device, any source
  PushRate aor{20, 20};     // wake pushes per AOR (all its devices), any source
  PushRate stranger{2, 3};  // wake pushes per device for strangers' requests (also take `device`)
  std::uint32_t max_parked = 4096;
  std::uint32_t max_parked_per_source = 32;
  std::uint32_t max_parked_per_aor = 8;
  std::uint32_t parked_retry_after_s = 30;  // Retry-After of the 503 (the ring timeout)
};

class WakeLimits {
 public:
  // How long a device remembers the Call-IDs it was pushed for, and how many.
  static constexpr Duration kCallMemory = std::chrono::minutes(10);
  static constexpr std::size_t kCallsPerDevice = 64;

  explicit WakeLimits(WakeLimitsConfig config);
  WakeLimits(const WakeLimits&) = delete;
  WakeLimits& operator=(const WakeLimits&) = delete;

  // A parked request's share of the parked bounds; released when destroyed.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&& other) noexcept;
    ~Slot();
    bool held() const { return owner_ != nullptr; }

   private:
    friend class WakeLimits;
    WakeLimits* owner_ = nullptr;
    std::string source_;  // empty: not counted per source (trusted peer)
    std::string aor_;
    bool stranger_ = false;
  };

  enum class Verdict : std::uint8_t {
    kPush,  // push it (its budget is taken)
    kWait,  // already pushed for this Call-ID: wait for it to register, no push
    kSkip,  // leave it out: no push, not waited for
  };

  struct Request {
    std::string_view aor;
    std::string_view call_id;
    RequestOrigin::Trust trust = RequestOrigin::Trust::kStranger;
    std::string_view source_ip;
    TimePoint now{};
  };

  struct Admission {
    std::vector<Verdict> devices;  // one per device key given, in order
    Slot slot;                     // held iff some device is kPush or kWait
    // Every device kSkip because of a limit: what to answer a request with no live contact
    // (480 push budget, 503 parked bound); 0: no limit was hit (plain "not push-bound").
    int status = 0;
    std::string reason;
    std::uint32_t retry_after_s = 0;
  };

  // Decides, for a request that would push the devices `device_keys` (push binding device keys)
  // of `request.aor`, which ones are pushed, and takes their budget and a parked slot.
  Admission admit(const Request& request, const std::vector<std::string>& device_keys);

  // True the first time per device and Call-ID (within kCallMemory): send the missed-call /
  // answered-elsewhere push; false: one was sent already (counted).
  bool firstCancel(std::string_view device_key, std::string_view call_id, TimePoint now);

  std::size_t parked() const;

  // A reload: later admissions use `config`. Budgets already spent and parked slots held stay
  // counted (a lowered bound refuses new requests until enough slots are released).
  void reconfigure(WakeLimitsConfig config);

 private:
  struct CallMark {
    std::uint64_t call = 0;  // hash of the Call-ID
    TimePoint at{};
    bool cancel_sent = false;
  };
  struct DeviceState {
    TokenBucket all;
    TokenBucket stranger;
    std::deque<CallMark> calls;
  };
  struct Parked {
    std::uint32_t all = 0;
    std::uint32_t strangers = 0;
  };

  void release(Slot& slot);
  void sweep(TimePoint now);  // REQUIRES: mu_ held
  static void prune(DeviceState& d, TimePoint now);

  WakeLimitsConfig config_;  // guarded by mu_
  mutable std::mutex mu_;
  std::unordered_map<std::string, DeviceState> devices_;
  std::unordered_map<std::string, TokenBucket> aors_;
  std::unordered_map<std::string, std::uint32_t> parked_by_source_;
  std::unordered_map<std::string, Parked> parked_by_aor_;
  std::size_t parked_ = 0;
  TimePoint last_sweep_{};

  Counter& not_for_origin_;    // requests that may not push (wake_for)
  Counter& same_call_;         // device pushes left out: already pushed for this Call-ID
  Counter& device_budget_;     // device pushes refused by the device bucket
  Counter& aor_budget_;        // ... by the AOR bucket
  Counter& stranger_budget_;   // ... by the strangers' bucket
  Counter& parked_source_;     // requests not parked: per-source bound
  Counter& parked_aor_;        // ... per-AOR bound
  Counter& parked_total_;      // ... total bound
  Counter& duplicate_cancel_;  // missed-call / cancel pushes collapsed
};

}  // namespace sipwake::routing
