#include "auth/source_throttle.h"

namespace sipwake::auth {

SourceThrottle::SourceThrottle(SourceThrottleConfig config)
    : config_(config),
      per_shard_capacity_(config.capacity / kShards > 0 ? config.capacity / kShards : 1),
      shards_(std::make_unique<Shard[]>(kShards)) {
  if (config_.burst == 0) config_.burst = 1;
  if (config_.ipv6_prefix < 1 || config_.ipv6_prefix > 128) config_.ipv6_prefix = 64;
  rate_ = {static_cast<double>(config_.burst), static_cast<double>(config_.rate)};
  for (std::size_t i = 0; i < kShards; ++i) shards_[i].entries.setCapacity(per_shard_capacity_);
}

std::optional<Duration> SourceThrottle::take(std::string_view ip, TimePoint now) {
  if (config_.rate == 0) return std::nullopt;
  const SourceKey k = sourceKeyOf(ip, config_.ipv6_prefix);
  Shard& sh = shards_[SourceKeyHash{}(k) >> 60 & (kShards - 1)];
  std::lock_guard lock(sh.mu);
  // A source whose bucket is full again is the same as an unknown one: forget it.
  sh.entries.dropIdle(k, [&](const TokenBucket& b) { return b.full(rate_, now); });
  TokenBucket& b = sh.entries.findOrCreate(k);
  if (b.trySpend(rate_, now)) return std::nullopt;
  return b.untilOne(rate_, now);
}

std::size_t SourceThrottle::tracked() const {
  return sumOverShards(shards_.get(), kShards, [](const Shard& s) { return s.entries.size(); });
}

}  // namespace sipwake::auth
