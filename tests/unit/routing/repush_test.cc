// RepushPolicy: when a device an accepted push did not wake is pushed again.
#include "routing/repush.h"

#include <gtest/gtest.h>

namespace sipwake::routing {
namespace {

const TimePoint kT0{};

TEST(RepushPolicyTest, AfterTheProvidersIntervalFromTheAcceptedAnswer) {
  RepushPolicy p;
  p.apns_interval = seconds(3);
  p.fcm_interval = seconds(4);
  p.webpush_interval = seconds(6);
  const TimePoint deadline = kT0 + seconds(30);
  EXPECT_EQ(p.next(push::Provider::kApns, 0, kT0 + milliseconds(80), deadline),
            kT0 + milliseconds(3080));
  EXPECT_EQ(p.next(push::Provider::kFcm, 0, kT0, deadline), kT0 + seconds(4));
  EXPECT_EQ(p.next(push::Provider::kWebpush, 1, kT0 + seconds(6), deadline), kT0 + seconds(12));
}

TEST(RepushPolicyTest, BoundedInNumber) {
  RepushPolicy p;
  p.max_repushes = 2;
  const TimePoint deadline = kT0 + seconds(300);
  EXPECT_TRUE(p.next(push::Provider::kFcm, 0, kT0, deadline));
  EXPECT_TRUE(p.next(push::Provider::kFcm, 1, kT0, deadline));
  EXPECT_FALSE(p.next(push::Provider::kFcm, 2, kT0, deadline));
  p.max_repushes = 0;
  EXPECT_FALSE(p.next(push::Provider::kFcm, 0, kT0, deadline));
}

TEST(RepushPolicyTest, OnlyWhileTheRingWindowLeavesTheDeviceAWholeInterval) {
  RepushPolicy p;
  p.fcm_interval = seconds(5);
  p.max_repushes = 10;
  const TimePoint deadline = kT0 + seconds(12);
  EXPECT_EQ(p.next(push::Provider::kFcm, 0, kT0, deadline), kT0 + seconds(5));
  EXPECT_EQ(p.next(push::Provider::kFcm, 1, kT0 + seconds(1), deadline), kT0 + seconds(6));
  EXPECT_FALSE(p.next(push::Provider::kFcm, 1, kT0 + seconds(5), deadline));  // 10 + 5 > 12
  EXPECT_FALSE(p.next(push::Provider::kFcm, 0, kT0 + seconds(20), deadline));
}

}  // namespace
}  // namespace sipwake::routing
