#include "auth/rate_limiter.h"

#include "auth/trusted_peers.h"

namespace sipwake::auth {

RateLimiter::RateLimiter(RateLimiterConfig config)
    : config_(config),
      per_shard_capacity_(config.capacity / kShards > 0 ? config.capacity / kShards : 1),
      shards_(std::make_unique<Shard[]>(kShards)) {
  if (config_.ipv6_prefix < 1 || config_.ipv6_prefix > 128) config_.ipv6_prefix = 64;
  for (std::size_t i = 0; i < kShards; ++i) shards_[i].entries.setCapacity(per_shard_capacity_);
}

SourceKey sourceKeyOf(std::string_view ip, int ipv6_prefix) {
  internal::IpAddress a;
  SourceKey k;
  if (!internal::parseIp(ip, &a)) {
    // Not an address (should not come from the transport): FNV-1a keeps distinct junk apart.
    std::uint64_t h = 1469598103934665603ull;
    for (char c : ip) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    k.hi = ~std::uint64_t{0};
    k.lo = h;
    return k;
  }
  if (a.family == 4) {
    k.lo = 0xFFFF00000000ull | (std::uint64_t{a.bytes[0]} << 24) |
           (std::uint64_t{a.bytes[1]} << 16) | (std::uint64_t{a.bytes[2]} << 8) | a.bytes[3];
    return k;
  }
  bool mapped = true;
  for (int i = 0; i < 10; ++i) mapped = mapped && a.bytes[i] == 0;
  mapped = mapped && a.bytes[10] == 0xFF && a.bytes[11] == 0xFF;
  int prefix = mapped ? 128 : ipv6_prefix;  // ::ffff:a.b.c.d is the IPv4 source itself
  for (int i = 0; i < 16; ++i) {
    int keep = prefix - 8 * i;
    std::uint8_t b = a.bytes[i];
    if (keep < 8) b &= keep <= 0 ? 0 : static_cast<std::uint8_t>(0xFF << (8 - keep));
    if (i < 8) {
      k.hi = (k.hi << 8) | b;
    } else {
      k.lo = (k.lo << 8) | b;
    }
  }
  return k;
}

bool RateLimiter::idle(const Entry& e, TimePoint now) const {
  return now >= e.blocked_until && now - e.window_start >= config_.window;
}

std::optional<Duration> RateLimiter::blockedFor(std::string_view ip, TimePoint now) {
  if (config_.max_failures == 0) return std::nullopt;
  Key k = keyOf(ip);
  Shard& sh = shardOf(k);
  std::lock_guard lock(sh.mu);
  const Entry* e = sh.entries.peek(k);
  if (e == nullptr || now >= e->blocked_until) return std::nullopt;
  return e->blocked_until - now;
}

bool RateLimiter::recordFailure(std::string_view ip, TimePoint now) {
  if (config_.max_failures == 0) return false;
  Key k = keyOf(ip);
  Shard& sh = shardOf(k);
  std::lock_guard lock(sh.mu);
  sh.entries.dropIdle(k, [&](const Entry& idle_entry) { return idle(idle_entry, now); });
  bool created = false;
  Entry& e = sh.entries.findOrCreate(k, &created);
  if (created || now - e.window_start >= config_.window) {
    e.window_start = now;
    e.failures = 0;
  }
  if (++e.failures >= config_.max_failures) {
    e.blocked_until = now + config_.block;
    e.failures = 0;
    e.window_start = now;
    return true;
  }
  return false;
}

std::size_t RateLimiter::tracked() const {
  return sumOverShards(shards_.get(), kShards, [](const Shard& s) { return s.entries.size(); });
}

}  // namespace sipwake::auth
