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

TEST(AsioTimerServiceTest, FiresInDeadlineOrder) {
  LoopPool pool(1);
  pool.start();
  EventLoop& loop = pool.at(0);
  std::promise<std::string> done;
  std::string order;
  runOn(loop, [&] {
    auto& t = loop.timers();
    t.schedule(milliseconds(30), [&] {
      order += "c";
      done.set_value(order);
    });
    t.schedule(milliseconds(10), [&] { order += "a"; });
    t.schedule(milliseconds(20), [&] { order += "b"; });
    return 0;
  });
  auto f = done.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(f.get(), "abc");
  pool.stop();
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
