// A token bucket per source address: `rate` requests a second on average, bursts of `burst`.
// Used by the proxy for out-of-dialog requests from strangers (neither authenticated nor trusted)
// to our users, so a scanner probing users gets a trickle of answers, whatever they say.
// Sources are SourceKey (IPv6 per prefix, as RateLimiter). Memory is bounded: at most
// `capacity` sources are tracked, the least recently seen forgotten first (a forgotten source
// starts again with a full bucket), and sources whose bucket has refilled are dropped as we go.
// Thread: sharded, one mutex per shard; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "auth/lru_table.h"
#include "auth/rate_limiter.h"
#include "common/clock.h"
#include "common/token_bucket.h"

namespace sipwake::auth {

struct SourceThrottleConfig {
  std::uint32_t rate = 5;    // tokens a second; 0 disables the throttle
  std::uint32_t burst = 50;  // bucket size (at least 1)
  std::size_t capacity = 1u << 16;
  int ipv6_prefix = 64;  // 1..128
};

class SourceThrottle {
 public:
  explicit SourceThrottle(SourceThrottleConfig config);
  SourceThrottle(const SourceThrottle&) = delete;
  SourceThrottle& operator=(const SourceThrottle&) = delete;

  // Takes a token for `ip` at `now`: nullopt when there was one, else the time until the next.
  std::optional<Duration> take(std::string_view ip, TimePoint now);
  std::size_t tracked() const;
  const SourceThrottleConfig& config() const { return config_; }

 private:
  static constexpr std::size_t kShards = 16;
  struct alignas(64) Shard {
    std::mutex mu;
    LruTable<SourceKey, TokenBucket, SourceKeyHash> entries;  // least recently seen first
  };

  SourceThrottleConfig config_;
  TokenRate rate_;
  std::size_t per_shard_capacity_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace sipwake::auth
