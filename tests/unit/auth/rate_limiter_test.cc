#include "auth/rate_limiter.h"

#include <gtest/gtest.h>

#include <string>

namespace sipwake::auth {
namespace {

const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);

RateLimiterConfig smallConfig() {
  RateLimiterConfig c;
  c.max_failures = 3;
  c.window = seconds(60);
  c.block = seconds(30);
  return c;
}

TEST(RateLimiter, BlocksAfterMaxFailuresInWindow) {
  RateLimiter r(smallConfig());
  EXPECT_FALSE(r.blockedFor("192.0.2.1", kT0).has_value());
  EXPECT_FALSE(r.recordFailure("192.0.2.1", kT0));
  EXPECT_FALSE(r.recordFailure("192.0.2.1", kT0 + seconds(1)));
  EXPECT_TRUE(r.recordFailure("192.0.2.1", kT0 + seconds(2)));
  auto left = r.blockedFor("192.0.2.1", kT0 + seconds(12));
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(*left, seconds(20));
  EXPECT_FALSE(r.blockedFor("192.0.2.2", kT0 + seconds(12)).has_value());  // others unaffected
  EXPECT_FALSE(r.blockedFor("192.0.2.1", kT0 + seconds(32)).has_value());  // block over
}

TEST(RateLimiter, WindowResets) {
  RateLimiter r(smallConfig());
  EXPECT_FALSE(r.recordFailure("192.0.2.1", kT0));
  EXPECT_FALSE(r.recordFailure("192.0.2.1", kT0 + seconds(1)));
  EXPECT_FALSE(r.recordFailure("192.0.2.1", kT0 + seconds(61)));  // new window
  EXPECT_FALSE(r.recordFailure("192.0.2.1", kT0 + seconds(62)));
  EXPECT_TRUE(r.recordFailure("192.0.2.1", kT0 + seconds(63)));
}

TEST(RateLimiter, Ipv6GroupedByPrefix) {
  RateLimiter r(smallConfig());
  EXPECT_FALSE(r.recordFailure("2001:db8:1:2::1", kT0));
  EXPECT_FALSE(r.recordFailure("2001:db8:1:2::2", kT0));
  EXPECT_TRUE(r.recordFailure("[2001:db8:1:2:ffff::3]", kT0));
  EXPECT_TRUE(r.blockedFor("2001:db8:1:2::99", kT0).has_value());
  EXPECT_FALSE(r.blockedFor("2001:db8:1:3::1", kT0).has_value());
  // ::ffff:a.b.c.d is the same source as a.b.c.d.
  EXPECT_FALSE(r.recordFailure("::ffff:192.0.2.9", kT0));
  EXPECT_FALSE(r.recordFailure("192.0.2.9", kT0));
  EXPECT_TRUE(r.recordFailure("192.0.2.9", kT0));
}

TEST(RateLimiter, DisabledWithZero) {
  RateLimiterConfig c = smallConfig();
  c.max_failures = 0;
  RateLimiter r(c);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(r.recordFailure("192.0.2.1", kT0));
  EXPECT_FALSE(r.blockedFor("192.0.2.1", kT0).has_value());
}

TEST(RateLimiter, MemoryIsBounded) {
  RateLimiterConfig c = smallConfig();
  c.capacity = 64;
  RateLimiter r(c);
  for (int i = 0; i < 5000; ++i) {
    std::string ip = "10." + std::to_string(i / 65536 % 256) + "." + std::to_string(i / 256 % 256) +
                     "." + std::to_string(i % 256);
    (void)r.recordFailure(ip, kT0);
  }
  EXPECT_LE(r.tracked(), 64u);
}

TEST(RateLimiter, IdleEntriesDropped) {
  RateLimiter r(smallConfig());
  for (int i = 0; i < 100; ++i) (void)r.recordFailure("10.0.0." + std::to_string(i), kT0);
  EXPECT_EQ(r.tracked(), 100u);
  for (int i = 0; i < 100; ++i) {
    (void)r.recordFailure("10.0.1." + std::to_string(i), kT0 + seconds(120));
  }
  // Shards that got a new failure dropped their idle entries (deterministic: keys are fixed).
  EXPECT_LT(r.tracked(), 200u);
  EXPECT_GE(r.tracked(), 100u);
}

}  // namespace
}  // namespace sipwake::auth
