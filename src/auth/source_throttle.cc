#include "auth/source_throttle.h"

#include <algorithm>
#include <chrono>

namespace sipwake::auth {

SourceThrottle::SourceThrottle(SourceThrottleConfig config)
    : config_(config),
      per_shard_capacity_(config.capacity / kShards > 0 ? config.capacity / kShards : 1),
      shards_(std::make_unique<Shard[]>(kShards)) {
  if (config_.burst == 0) config_.burst = 1;
  if (config_.ipv6_prefix < 1 || config_.ipv6_prefix > 128) config_.ipv6_prefix = 64;
  for (std::size_t i = 0; i < kShards; ++i) shards_[i].entries.setCapacity(per_shard_capacity_);
}

double SourceThrottle::refilled(const Entry& e, TimePoint now) const {
  const double elapsed = std::chrono::duration<double>(now - e.last).count();
  return std::min<double>(config_.burst, e.tokens + std::max(0.0, elapsed) * config_.rate);
}

std::optional<Duration> SourceThrottle::take(std::string_view ip, TimePoint now) {
  if (config_.rate == 0) return std::nullopt;
  const SourceKey k = sourceKeyOf(ip, config_.ipv6_prefix);
  Shard& sh = shards_[SourceKeyHash{}(k) >> 60 & (kShards - 1)];
  std::lock_guard lock(sh.mu);
  // A source whose bucket is full again is the same as an unknown one: forget it.
  sh.entries.dropIdle(k, [&](const Entry& e) { return refilled(e, now) >= config_.burst; });
  bool created = false;
  Entry& e = sh.entries.findOrCreate(k, &created);
  if (created) e.tokens = config_.burst;
  e.tokens = refilled(e, now);
  e.last = now;
  if (e.tokens >= 1) {
    e.tokens -= 1;
    return std::nullopt;
  }
  return std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>((1 - e.tokens) / config_.rate));
}

std::size_t SourceThrottle::tracked() const {
  return sumOverShards(shards_.get(), kShards, [](const Shard& s) { return s.entries.size(); });
}

}  // namespace sipwake::auth
