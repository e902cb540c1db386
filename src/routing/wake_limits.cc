#include "routing/wake_limits.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <utility>

namespace sipwake::routing {
namespace {

constexpr Duration kSweepInterval = seconds(60);

Counter& statCounter(const char* name) { return Stats::global().counter(name); }

std::uint64_t callHash(std::string_view call_id) { return std::hash<std::string_view>{}(call_id); }

std::uint32_t wholeSeconds(Duration d) {
  const double s = std::chrono::duration<double>(d).count();
  return static_cast<std::uint32_t>(std::max(1.0, std::ceil(s)));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Slot

WakeLimits::Slot::Slot(Slot&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      source_(std::move(other.source_)),
      aor_(std::move(other.aor_)),
      stranger_(other.stranger_) {}

WakeLimits::Slot& WakeLimits::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->release(*this);
    owner_ = std::exchange(other.owner_, nullptr);
    source_ = std::move(other.source_);
    aor_ = std::move(other.aor_);
    stranger_ = other.stranger_;
  }
  return *this;
}

WakeLimits::Slot::~Slot() {
  if (owner_ != nullptr) owner_->release(*this);
}

void WakeLimits::prune(DeviceState& d, TimePoint now) {
  while (!d.calls.empty() && now - d.calls.front().at > kCallMemory) d.calls.pop_front();
}

// ---------------------------------------------------------------------------------------------
// WakeLimits

WakeLimits::WakeLimits(WakeLimitsConfig config)
    : config_(std::move(config)),
      not_for_origin_(statCounter("wake.limit.not_for_origin")),
      same_call_(statCounter("wake.limit.same_call")),
      device_budget_(statCounter("wake.limit.device_budget")),
      aor_budget_(statCounter("wake.limit.aor_budget")),
      stranger_budget_(statCounter("wake.limit.stranger_budget")),
      parked_source_(statCounter("wake.limit.parked_per_source")),
      parked_aor_(statCounter("wake.limit.parked_per_aor")),
      parked_total_(statCounter("wake.limit.parked_total")),
      duplicate_cancel_(statCounter("wake.limit.duplicate_cancel")) {}

void WakeLimits::reconfigure(WakeLimitsConfig config) {
  std::lock_guard lock(mu_);
  config_ = std::move(config);
}

WakeLimits::Admission WakeLimits::admit(const Request& request,
                                        const std::vector<std::string>& device_keys) {
  using Trust = RequestOrigin::Trust;
  Admission a;
  a.devices.assign(device_keys.size(), Verdict::kSkip);
  std::lock_guard lock(mu_);
  const bool allowed =
      config_.wake_for == WakeFor::kAnyone ||
      (config_.wake_for == WakeFor::kAuthenticated && request.trust != Trust::kStranger) ||
      request.trust == Trust::kTrusted;
  if (!allowed) {
    not_for_origin_.inc();
    return a;
  }
  const bool stranger = request.trust == Trust::kStranger;
  const TimePoint now = request.now;
  const std::uint64_t call = callHash(request.call_id);

  if (now - last_sweep_ >= kSweepInterval) sweep(now);
  TokenBucket& aor_bucket = aors_[std::string(request.aor)];
  const double aor_level = aor_bucket.level(config_.aor.tokens(), now);
  std::size_t pushes = 0;
  bool any = false;
  bool limited = false;
  Duration wait = Duration::max();
  for (std::size_t i = 0; i < device_keys.size(); ++i) {
    DeviceState& d = devices_[device_keys[i]];
    prune(d, now);
    const bool pushed_before = std::any_of(d.calls.begin(), d.calls.end(),
                                           [&](const CallMark& m) { return m.call == call; });
    if (pushed_before) {
      same_call_.inc();
      a.devices[i] = Verdict::kWait;
      any = true;
      continue;
    }
    const TokenBucket* empty = nullptr;
    const PushRate* rate = nullptr;
    if (stranger && d.stranger.level(config_.stranger.tokens(), now) < 1.0) {
      stranger_budget_.inc();
      empty = &d.stranger;
      rate = &config_.stranger;
    } else if (d.all.level(config_.device.tokens(), now) < 1.0) {
      device_budget_.inc();
      empty = &d.all;
      rate = &config_.device;
    } else if (aor_level - static_cast<double>(pushes) < 1.0) {
      aor_budget_.inc();
      empty = &aor_bucket;
      rate = &config_.aor;
    }
    if (empty != nullptr) {
      limited = true;
      wait = std::min(wait, empty->untilOne(rate->tokens(), now));
      continue;
    }
    a.devices[i] = Verdict::kPush;
    ++pushes;
    any = true;
  }
  if (!any) {
    if (limited) {
      a.status = 480;
      a.reason = "Temporarily Unavailable - Push Limit Reached";
      a.retry_after_s = wholeSeconds(wait);
    }
    return a;
  }

  // The parked bounds: checked before any budget is taken.
  const bool per_source = request.trust != Trust::kTrusted;
  const std::string aor(request.aor);
  const std::string source(request.source_ip);
  auto source_it = per_source ? parked_by_source_.find(source) : parked_by_source_.end();
  auto aor_it = parked_by_aor_.find(aor);
  const std::uint32_t from_source = source_it != parked_by_source_.end() ? source_it->second : 0;
  const Parked for_aor = aor_it != parked_by_aor_.end() ? aor_it->second : Parked{};
  const std::uint32_t stranger_share = (config_.max_parked_per_aor + 1) / 2;
  const char* refused = nullptr;
  if (parked_ >= config_.max_parked) {
    parked_total_.inc();
    refused = "Service Unavailable - Too Many Parked Requests";
  } else if (per_source && from_source >= config_.max_parked_per_source) {
    parked_source_.inc();
    refused = "Service Unavailable - Too Many Parked Requests From Source";
  } else if (for_aor.all >= config_.max_parked_per_aor ||
             (stranger && for_aor.strangers >= stranger_share)) {
    parked_aor_.inc();
    refused = "Service Unavailable - Too Many Parked Requests For User";
  }
  if (refused != nullptr) {
    a.devices.assign(device_keys.size(), Verdict::kSkip);
    a.status = 503;
    a.reason = refused;
    a.retry_after_s = std::max<std::uint32_t>(1, config_.parked_retry_after_s);
    return a;
  }

  for (std::size_t i = 0; i < device_keys.size(); ++i) {
    if (a.devices[i] != Verdict::kPush) continue;
    DeviceState& d = devices_[device_keys[i]];
    d.all.spend(config_.device.tokens(), now);
    if (stranger) d.stranger.spend(config_.stranger.tokens(), now);
    aor_bucket.spend(config_.aor.tokens(), now);
    d.calls.push_back(CallMark{call, now, false});
    while (d.calls.size() > kCallsPerDevice) d.calls.pop_front();
  }
  ++parked_;
  Parked& counted = parked_by_aor_[aor];
  ++counted.all;
  if (stranger) ++counted.strangers;
  if (per_source) ++parked_by_source_[source];
  a.slot.owner_ = this;
  a.slot.source_ = per_source ? source : std::string();
  a.slot.aor_ = aor;
  a.slot.stranger_ = stranger;
  return a;
}

void WakeLimits::release(Slot& slot) {
  std::lock_guard lock(mu_);
  if (parked_ > 0) --parked_;
  if (!slot.source_.empty()) {
    auto it = parked_by_source_.find(slot.source_);
    if (it != parked_by_source_.end() && --it->second == 0) parked_by_source_.erase(it);
  }
  auto it = parked_by_aor_.find(slot.aor_);
  if (it != parked_by_aor_.end()) {
    if (it->second.all > 0) --it->second.all;
    if (slot.stranger_ && it->second.strangers > 0) --it->second.strangers;
    if (it->second.all == 0) parked_by_aor_.erase(it);
  }
  slot.owner_ = nullptr;
}

bool WakeLimits::firstCancel(std::string_view device_key, std::string_view call_id, TimePoint now) {
  const std::uint64_t call = callHash(call_id);
  std::lock_guard lock(mu_);
  auto it = devices_.find(std::string(device_key));
  if (it == devices_.end()) return true;
  prune(it->second, now);
  for (CallMark& m : it->second.calls) {
    if (m.call != call) continue;
    if (m.cancel_sent) {
      duplicate_cancel_.inc();
      return false;
    }
    m.cancel_sent = true;
    return true;
  }
  return true;
}

std::size_t WakeLimits::parked() const {
  std::lock_guard lock(mu_);
  return parked_;
}

// Forgets devices and AORs whose buckets are full again and that remember no call: the maps
// hold only what was used within the last few minutes.
void WakeLimits::sweep(TimePoint now) {
  last_sweep_ = now;
  for (auto it = devices_.begin(); it != devices_.end();) {
    prune(it->second, now);
    const bool idle = it->second.calls.empty() &&
                      it->second.all.full(config_.device.tokens(), now) &&
                      it->second.stranger.full(config_.stranger.tokens(), now);
    it = idle ? devices_.erase(it) : std::next(it);
  }
  for (auto it = aors_.begin(); it != aors_.end();) {
    it = it->second.full(config_.aor.tokens(), now) ? aors_.erase(it) : std::next(it);
  }
}

}  // namespace sipwake::routing
