// Failed-authentication limiter per user: an exponential delay, not a lock-out.
//
// After `max_failures` wrong answers for one user (user name + realm, whether or not such a
// user exists) within `max_delay`, the user is delayed for `delay`. While delayed, an answer
// for that user is checked only when it comes from
//  * a known source: one from which this user authenticated before and that has not failed
//    for this user since (up to kKnownSources per user, most recent first), or
//  * a source that has not been guessing: no wrong answer (for any user) and no refused answer
//    from it within `max_delay`. The real user on a new network (a phone woken on another
//    carrier's address) still gets in: a delay is not a lock-out, and a guesser cannot lock a
//    user out by guessing.
// Every other answer is refused unchecked (see Authenticator: 403 + Retry-After), so it tells
// the guesser nothing, and keeps its source a guesser. Each wrong answer once the user has been
// delayed (during the delay or after it ran out) doubles the delay, up to `max_delay`; a user
// without failures for `max_delay` after the last delay ended is forgotten. A spread attack from
// N addresses therefore gets max_failures guesses, then one per new address and, as each delay
// runs out, one more: with the defaults and 20 addresses at most ~30 in the first hour, then
// about 2 an hour (user_limiter_test.cc). An attacker with many thousands of addresses gets one
// guess per address per hour — what an operator should know (docs/security.md).
//
// A success from a source makes it known and no longer failing for that user; a failure makes
// it failing and no longer known. Sources are SourceKey (IPv6 per prefix, as RateLimiter).
// Memory is bounded: at most `capacity` users with failures and `capacity` users with known
// sources, each table forgetting its least recently used user first. The known-source table is
// written only by successes, so a guesser cannot evict it.
// Thread: sharded, one mutex per shard; every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "auth/lru_table.h"
#include "auth/rate_limiter.h"
#include "common/clock.h"

namespace sipwake::auth {

struct UserLimiterConfig {
  std::uint32_t max_failures = 5;  // 0 disables the limiter
  Duration delay = seconds(60);    // the first delay; doubled by each further failure
  Duration max_delay = seconds(3600);
  std::size_t capacity = 1u << 16;  // users tracked per table, all shards together
};

class UserLimiter {
 public:
  static constexpr std::size_t kKnownSources = 4;
  static constexpr std::size_t kFailingSources = 8;

  struct Admission {
    bool check = true;          // false: refuse without checking the answer
    bool known_source = false;  // checked because the source is known for this user
    bool fresh_check = false;   // checked because the source has not been guessing
    Duration retry_after{0};    // when refused: time left on the delay
  };

  explicit UserLimiter(UserLimiterConfig config);
  UserLimiter(const UserLimiter&) = delete;
  UserLimiter& operator=(const UserLimiter&) = delete;

  // Whether the answer `source` gives for `user`@`realm` at `now` is checked. A refusal marks
  // `source` as guessing.
  Admission admit(std::string_view user, std::string_view realm, const SourceKey& source,
                  TimePoint now);
  // True when `user`@`realm` authenticated from `source` before and has not failed from it since.
  bool knownSource(std::string_view user, std::string_view realm, const SourceKey& source);
  // Counts one wrong answer; true when it starts or lengthens a delay.
  bool recordFailure(std::string_view user, std::string_view realm, const SourceKey& source,
                     TimePoint now);
  void recordSuccess(std::string_view user, std::string_view realm, const SourceKey& source);

  struct Tracked {
    std::size_t failing = 0;  // users with failures
    std::size_t known = 0;    // users with known sources
  };
  Tracked tracked() const;
  const UserLimiterConfig& config() const { return config_; }

 private:
  static constexpr std::size_t kShards = 16;

  struct Failing {
    TimePoint first_failure{};  // start of the count towards the first delay
    TimePoint last_failure{};
    TimePoint delay_until{};
    Duration delay{0};  // length of the last delay; 0: never delayed
    std::uint32_t failures = 0;
    std::array<SourceKey, kFailingSources> sources{};  // ring, `count` valid
    std::uint8_t count = 0;
    std::uint8_t next = 0;
  };
  struct Known {
    std::array<SourceKey, kKnownSources> sources{};  // most recent first, `count` valid
    std::uint8_t count = 0;
  };
  struct alignas(64) Shard {
    std::mutex mu;
    LruTable<std::string, Failing> failing;
    LruTable<std::string, Known> known;
  };
  // Sources with a wrong or refused answer (for any user): when they last had one. Sharded by
  // source; locked after (never before) a user shard.
  struct alignas(64) GuesserShard {
    std::mutex mu;
    LruTable<SourceKey, TimePoint, SourceKeyHash> last_guess;
  };

  static std::string keyOf(std::string_view user, std::string_view realm);
  GuesserShard& guesserShardOf(const SourceKey& source);
  bool guessing(const SourceKey& source, TimePoint now);
  void markGuessing(const SourceKey& source, TimePoint now);
  Shard& shardOf(const std::string& key);
  bool idle(const Failing& f, TimePoint now) const;

  UserLimiterConfig config_;
  std::size_t per_shard_capacity_;
  std::unique_ptr<Shard[]> shards_;
  std::unique_ptr<GuesserShard[]> guessers_;
};

}  // namespace sipwake::auth
