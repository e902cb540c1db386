// Failed-authentication limiter per source address: `max_failures` failures within `window` of
// the first one block that source for `block`. IPv6 sources are grouped by prefix (default /64,
// what one subscriber line usually gets), so rotating addresses inside it does not help.
// Memory is bounded: at most `capacity` sources are tracked; the least recently failing one is
// forgotten first, and sources idle for longer than window and block are dropped as we go.
// Thread: sharded, one mutex per shard; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>

#include "auth/lru_table.h"
#include "common/clock.h"

namespace sipwake::auth {

// A source address as the limiters count it: an IPv4 address, or an IPv6 address cut to
// `ipv6_prefix` bits (::ffff:a.b.c.d is the IPv4 address). Text that is not an address is hashed
// (it should not come from the transport) so distinct junk stays apart.
struct SourceKey {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  friend bool operator==(const SourceKey&, const SourceKey&) = default;
};
struct SourceKeyHash {
  std::size_t operator()(const SourceKey& k) const {
    return static_cast<std::size_t>((k.hi * 0x9E3779B97F4A7C15ull) ^
                                    (k.lo * 0xC2B2AE3D27D4EB4Full));
  }
};
// REQUIRES: 1 <= ipv6_prefix <= 128.
SourceKey sourceKeyOf(std::string_view ip, int ipv6_prefix);

struct RateLimiterConfig {
  std::uint32_t max_failures = 10;  // 0 disables the limiter
  Duration window = seconds(60);
  Duration block = seconds(60);
  std::size_t capacity = 1u << 16;  // sources tracked, all shards together
  int ipv6_prefix = 64;             // 1..128
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimiterConfig config);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Time left on the block of `ip` at `now`, or nullopt when not blocked.
  std::optional<Duration> blockedFor(std::string_view ip, TimePoint now);
  // Counts one failure for `ip`; true when this failure starts a block.
  bool recordFailure(std::string_view ip, TimePoint now);
  std::size_t tracked() const;
  const RateLimiterConfig& config() const { return config_; }

 private:
  static constexpr std::size_t kShards = 16;
  using Key = SourceKey;
  using KeyHash = SourceKeyHash;
  struct Entry {
    TimePoint window_start{};
    TimePoint blocked_until{};
    std::uint32_t failures = 0;
  };
  struct alignas(64) Shard {
    std::mutex mu;
    LruTable<Key, Entry, KeyHash> entries;  // least recently failed first
  };

  Key keyOf(std::string_view ip) const { return sourceKeyOf(ip, config_.ipv6_prefix); }
  Shard& shardOf(const Key& k) { return shards_[KeyHash{}(k) >> 60 & (kShards - 1)]; }
  bool idle(const Entry& e, TimePoint now) const;

  RateLimiterConfig config_;
  std::size_t per_shard_capacity_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace sipwake::auth
