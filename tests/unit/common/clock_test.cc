#include "common/clock.h"

#include <gtest/gtest.h>

#include <vector>

namespace sipwake {
namespace {

TEST(FakeTimerServiceTest, FiresInOrderAndHonoursCancel) {
  FakeTimerService timers;
  std::vector<int> fired;
  timers.schedule(milliseconds(500), [&] { fired.push_back(2); });
  auto id = timers.schedule(milliseconds(100), [&] { fired.push_back(1); });
  timers.schedule(milliseconds(50), [&] { fired.push_back(0); });
  timers.cancel(id);
  timers.advance(milliseconds(400));
  EXPECT_EQ(fired, std::vector<int>({0}));
  timers.advance(milliseconds(100));
  EXPECT_EQ(fired, std::vector<int>({0, 2}));
  EXPECT_EQ(timers.pending(), 0u);
}

TEST(FakeTimerServiceTest, TimerScheduledFromCallbackRunsWhenDue) {
  FakeTimerService timers;
  int n = 0;
  timers.schedule(milliseconds(10), [&] {
    ++n;
    timers.schedule(milliseconds(10), [&] { ++n; });
  });
  timers.advance(milliseconds(15));
  EXPECT_EQ(n, 1);
  timers.advance(milliseconds(5));
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace sipwake
