#include "auth/source_throttle.h"

#include <gtest/gtest.h>

#include <string>

namespace sipwake::auth {
namespace {

const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);

TEST(SourceThrottle, BurstThenRate) {
  SourceThrottle t(SourceThrottleConfig{.rate = 5, .burst = 10});
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(t.take("192.0.2.1", kT0).has_value()) << i;
  std::optional<Duration> wait = t.take("192.0.2.1", kT0);
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(std::chrono::duration_cast<milliseconds>(*wait).count(), 200);
  EXPECT_FALSE(t.take("192.0.2.2", kT0).has_value());  // another source has its own bucket
  EXPECT_FALSE(t.take("192.0.2.1", kT0 + milliseconds(200)).has_value());
  EXPECT_TRUE(t.take("192.0.2.1", kT0 + milliseconds(200)).has_value());
  // 1000 requests over 10 s: the burst and 5 a second get through.
  int granted = 0;
  for (int i = 0; i < 1000; ++i) {
    if (!t.take("198.51.100.1", kT0 + milliseconds(10 * i))) ++granted;
  }
  EXPECT_GE(granted, 10 + 49);
  EXPECT_LE(granted, 10 + 50);
}

TEST(SourceThrottle, Ipv6PerPrefixAndZeroRateDisables) {
  SourceThrottle t(SourceThrottleConfig{.rate = 1, .burst = 1});
  EXPECT_FALSE(t.take("2001:db8:1:2::1", kT0).has_value());
  EXPECT_TRUE(t.take("2001:db8:1:2::99", kT0).has_value());  // same /64
  SourceThrottle off(SourceThrottleConfig{.rate = 0, .burst = 1});
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(off.take("192.0.2.1", kT0).has_value());
}

TEST(SourceThrottle, MemoryBounded) {
  SourceThrottle t(SourceThrottleConfig{.rate = 1, .burst = 2, .capacity = 64});
  for (int i = 0; i < 1000; ++i) {
    (void)t.take("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), kT0);
  }
  EXPECT_LE(t.tracked(), 64u);
}

}  // namespace
}  // namespace sipwake::auth
