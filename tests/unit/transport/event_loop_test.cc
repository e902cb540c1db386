#include "transport/event_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <set>
#include <string>

namespace sipwake::transport {
namespace {

// Runs `fn` on `loop` and waits (bounded) for its result.
template <typename Fn>
auto runOn(EventLoop& loop, Fn fn) -> decltype(fn()) {
  std::promise<decltype(fn())> p;
  auto f = p.get_future();
  loop.post([&] { p.set_value(fn()); });
  EXPECT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  return f.get();
}

TEST(LoopPoolTest, DefaultsToHardwareCores) {
  LoopPool pool;
  EXPECT_GE(pool.size(), 1u);
}

TEST(LoopPoolTest, PostRunsOnTheLoopWithCurrentSet) {
  LoopPool pool(2);
  pool.start();
  EXPECT_EQ(EventLoop::current(), nullptr);
  for (std::size_t i = 0; i < pool.size(); ++i) {
    EventLoop* seen = runOn(pool.at(i), [] { return EventLoop::current(); });
    EXPECT_EQ(seen, &pool.at(i));
    EXPECT_EQ(seen->index(), i);
  }
  pool.stop();
  pool.stop();  // idempotent
}

TEST(LoopPoolTest, CallIdMappingIsStableAndSpread) {
  LoopPool pool(2);
  std::set<std::size_t> used;
  for (int i = 0; i < 64; ++i) {
    std::string id = "call-" + std::to_string(i) + "@example.com";
    std::size_t idx = pool.indexForCallId(id);
    EXPECT_EQ(idx, pool.indexForCallId(id));
    EXPECT_EQ(&pool.forCallId(id), &pool.at(idx));
    used.insert(idx);
  }
  EXPECT_EQ(used.size(), 2u);
  // FNV-1a: the same on every run and every machine.
  LoopPool other(2);
  EXPECT_EQ(other.indexForCallId("abc"), pool.indexForCallId("abc"));
}

TEST(LoopPoolTest, StopWithPendingWorkDoesNotHang) {
  LoopPool pool(2);
  pool.start();
  std::atomic<int> ran{0};
  for (int i = 0; i < 1000; ++i) pool.at(i % 2).post([&] { ran++; });
  pool.stop();
  SUCCEED();
}

// Records the order in which timers ran; finish() ends the test's wait.
struct OrderProbe {
  std::string order;
  std::promise<std::string> done;
  void add(char c) { order += c; }
  void finish(char c) {
    order += c;
    done.set_value(order);
  }
};

// Schedules timers with `setup(timers, probe)` on a one-loop pool and returns the order they
// ran in, once one of them called probe.finish() ("timeout" after 5 s).
template <typename Setup>
std::string runTimers(Setup setup) {
  LoopPool pool(1);
  pool.start();
  EventLoop& loop = pool.at(0);
  OrderProbe probe;
  auto f = probe.done.get_future();
  runOn(loop, [&] {
    setup(loop.timers(), probe);
    return 0;
  });
  std::string out = "timeout";
  if (f.wait_for(std::chrono::seconds(5)) == std::future_status::ready) out = f.get();
  pool.stop();
  return out;
}

TEST(AsioTimerServiceTest, FiresInDeadlineOrder) {
  EXPECT_EQ(runTimers([](AsioTimerService& t, OrderProbe& p) {
              t.schedule(milliseconds(30), [&p] { p.finish('c'); });
              t.schedule(milliseconds(10), [&p] { p.add('a'); });
              t.schedule(milliseconds(20), [&p] { p.add('b'); });
            }),
            "abc");
}

TEST(AsioTimerServiceTest, CancelledTimerDoesNotFire) {
  LoopPool pool(1);
  pool.start();
  EventLoop& loop = pool.at(0);
  std::atomic<bool> cancelled_fired{false};
  std::promise<void> done;
  runOn(loop, [&] {
    auto& t = loop.timers();
    auto id = t.schedule(milliseconds(5), [&] { cancelled_fired = true; });
    EXPECT_NE(id, 0u);
    t.cancel(id);
    t.cancel(id);         // no-op
    t.cancel(id + 1000);  // unknown: no-op
    t.schedule(milliseconds(40), [&] { done.set_value(); });
    return 0;
  });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(cancelled_fired);
  EXPECT_EQ(runOn(loop, [&] { return loop.timers().pending(); }), 0u);
  pool.stop();
}

TEST(AsioTimerServiceTest, CallbackMaySchedule) {
  LoopPool pool(1);
  pool.start();
  EventLoop& loop = pool.at(0);
  std::promise<void> done;
  runOn(loop, [&] {
    loop.timers().schedule(milliseconds(1), [&] {
      loop.timers().schedule(milliseconds(1), [&] { done.set_value(); });
    });
    return 0;
  });
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  pool.stop();
}

TEST(AsioTimerServiceTest, CoalescedTimersNeverFireEarlyAndKeepDeadlineOrder) {
  // Both are long enough to be coalesced; scheduled later-deadline first. Whether or not they
  // share a grain, the earlier deadline runs first and neither runs before its deadline.
  bool early = false;
  EXPECT_EQ(runTimers([&early](AsioTimerService& t, OrderProbe& p) {
              const TimePoint b_deadline = Clock::now() + milliseconds(210);
              t.schedule(milliseconds(210), [&early, &p, b_deadline] {
                early = early || Clock::now() < b_deadline;
                p.finish('b');
              });
              const TimePoint a_deadline = Clock::now() + milliseconds(200);
              t.schedule(milliseconds(200), [&early, &p, a_deadline] {
                early = early || Clock::now() < a_deadline;
                p.add('a');
              });
            }),
            "ab");
  EXPECT_FALSE(early);
}

TEST(AsioTimerServiceTest, ZeroDelayTimerIsNotHeldBackByCoalescing) {
  // A "run soon" timer scheduled after a coalesced one still runs first.
  EXPECT_EQ(runTimers([](AsioTimerService& t, OrderProbe& p) {
              t.schedule(milliseconds(300), [&p] { p.finish('b'); });
              t.schedule(milliseconds(0), [&p] { p.add('a'); });
            }),
            "ab");
}

TEST(AsioTimerServiceTest, ManyCancelledTimersStayBounded) {
  LoopPool pool(1);
  pool.start();
  EventLoop& loop = pool.at(0);
  std::size_t pending = runOn(loop, [&] {
    auto& t = loop.timers();
    for (int i = 0; i < 10000; ++i) t.cancel(t.schedule(seconds(60), [] {}));
    return t.pending();
  });
  EXPECT_EQ(pending, 0u);
  pool.stop();
}

}  // namespace
}  // namespace sipwake::transport
