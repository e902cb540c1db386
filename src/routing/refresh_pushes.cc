#include "routing/refresh_pushes.h"

#include <algorithm>
#include <array>
#include <utility>

#include "common/log.h"
#include "location/binding.h"
#include "push/push_params.h"

namespace sipwake::routing {

namespace {

// A wall-clock step (NTP, an operator) is noticed within this long.
constexpr std::chrono::hours kMaxTimerDelay{1};

}  // namespace

std::optional<RefreshPlan> nextRefresh(const RefreshInputs& in, const RefreshConfig& config) {
  if (!in.can_refresh) return std::nullopt;
  std::array<location::SysSeconds, 2> deadlines{in.push_expires_at, in.push_expires_at};
  std::size_t n = 1;
  if (in.sip_expires_at && *in.sip_expires_at < in.push_expires_at) {
    deadlines[0] = *in.sip_expires_at;
    n = 2;
  }
  for (std::size_t i = 0; i < n; ++i) {
    const location::SysSeconds deadline = deadlines[i];
    const location::SysSeconds start = std::max(deadline - config.lead, in.registered_at);
    if (in.pushed_at && *in.pushed_at >= start) continue;  // this deadline had its push
    location::SysSeconds at = start;
    if (in.pushed_at) at = std::max(at, *in.pushed_at + config.min_interval);
    if (at >= deadline) continue;  // Apple's budget does not allow one in time
    return RefreshPlan{at, deadline};
  }
  return std::nullopt;
}

RefreshPushes::RefreshPushes(RefreshConfig config, Deps deps)
    : config_(config),
      deps_(std::move(deps)),
      alive_(std::make_shared<bool>(true)),
      sent_(Stats::global().counter("push.refresh_sent")),
      failed_(Stats::global().counter("push.refresh_failed")) {}

RefreshPushes::~RefreshPushes() {
  *alive_ = false;
  // The home loop has stopped (and its timer service may be gone): its timers never run again.
}

location::SysSeconds RefreshPushes::wallNow() const {
  if (deps_.wall_clock) return deps_.wall_clock();
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

void RefreshPushes::start() {
  std::size_t n = 0;
  for (const location::PushRecord& r : deps_.push_store->livePushRecords(wallNow())) {
    plan(r.device_key);
    ++n;
  }
  arm();
  SW_LOG_INFO(
      "push: registration refresh (RFC 8599 §5.5) for {} push devices, {} s before "
      "their bindings lapse",
      n, config_.lead.count());
}

void RefreshPushes::onRegistered(std::string_view /*aor*/, const location::Binding& binding,
                                 const transport::ReceivedMessage& /*request*/) {
  // Without push params: an opted-out device, found gone when its entry falls due.
  if (!binding.push) return;
  std::weak_ptr<bool> alive = alive_;
  deps_.post([this, alive, key = binding.push->deviceKey()] {
    if (alive.expired()) return;
    plan(key);
    arm();
  });
}

void RefreshPushes::plan(const std::string& key) {
  const location::SysSeconds now = wallNow();
  std::optional<location::SysSeconds> pushed_at;
  if (auto it = devices_.find(key); it != devices_.end()) {
    pushed_at = it->second.pushed_at;
    queue_.erase({it->second.due, key});
  }
  std::optional<RefreshPlan> next;
  std::optional<location::PushRecord> record = deps_.push_store->lookupPushDevice(key);
  std::optional<push::PushBinding> binding;
  if (record && record->expires_at > now) {
    binding = record->binding;
  }
  if (binding) {
    RefreshInputs in;
    in.registered_at = record->registered_at;
    in.push_expires_at = record->expires_at;
    in.pushed_at = pushed_at;
    in.can_refresh = binding->canWakeWithoutCall();
    for (const location::Binding& b : deps_.locations->lookup(record->aor, now)) {
      if (location::bindingKey(b) == record->binding_key) in.sip_expires_at = b.expires_at;
    }
    next = nextRefresh(in, config_);
    if (next && next->at <= now && !spend(now)) {
      // Over this second's budget: waits for the next second.
      Device& d = devices_[key];
      d.due = now + std::chrono::seconds(1);
      d.pushed_at = pushed_at;
      queue_.emplace(d.due, key);
      return;
    }
    if (next && next->at <= now) {
      SW_LOG_INFO("push: refresh push to device {} of {} (its binding lapses in {} s)", key,
                  record->aor, (next->deadline - now).count());
      send(*record, std::move(*binding));
      pushed_at = now;
      in.pushed_at = now;
      next = nextRefresh(in, config_);
    }
  }
  location::SysSeconds due;
  if (next) {
    due = next->at;
  } else if (pushed_at && *pushed_at + config_.min_interval > now) {
    due = *pushed_at + config_.min_interval;
  } else {
    devices_.erase(key);
    return;
  }
  Device& d = devices_[key];
  d.due = due;
  d.pushed_at = pushed_at;
  queue_.emplace(due, key);
}

bool RefreshPushes::spend(location::SysSeconds now) {
  if (now != budget_second_) {
    budget_second_ = now;
    budget_used_ = 0;
  }
  if (budget_used_ >= config_.rate) return false;
  ++budget_used_;
  return true;
}

void RefreshPushes::send(const location::PushRecord& record, push::PushBinding binding) {
  sent_.inc();
  push::PushTarget target;
  target.binding = std::move(binding);
  target.aor = record.aor;
  target.device_key = record.device_key;
  Counter& failed = failed_;
  deps_.sender->send(target, push::refreshEvent(target.aor), push::PushKind::kRefresh,
                     [&failed, key = target.device_key](push::PushOutcome outcome) {
                       if (outcome.kind == push::PushOutcome::Kind::kOk) return;
                       failed.inc();
                       SW_LOG_WARN("push: refresh push to device {} failed ({}: {})", key,
                                   push::pushOutcomeName(outcome.kind), outcome.reason);
                     });
}

void RefreshPushes::arm() {
  if (queue_.empty()) {
    if (timer_ != 0) deps_.timers->cancel(timer_);
    timer_ = 0;
    return;
  }
  const location::SysSeconds earliest = queue_.begin()->first;
  if (timer_ != 0 && timer_at_ == earliest) return;
  if (timer_ != 0) deps_.timers->cancel(timer_);
  const location::SysSeconds now = wallNow();
  const Duration delay =
      earliest > now ? std::min<Duration>(earliest - now, kMaxTimerDelay) : Duration::zero();
  timer_at_ = earliest;
  std::weak_ptr<bool> alive = alive_;
  timer_ = deps_.timers->schedule(delay, [this, alive] {
    if (alive.expired()) return;
    timer_ = 0;
    fire();
  });
}

void RefreshPushes::fire() {
  const location::SysSeconds now = wallNow();
  // plan() queues each device again strictly after `now` (a push moves it min_interval on).
  while (!queue_.empty() && queue_.begin()->first <= now) {
    const std::string key = queue_.begin()->second;
    plan(key);
  }
  arm();
}

}  // namespace sipwake::routing
