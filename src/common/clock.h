// Time and timers behind seams, so that transaction timers run under a fake clock in tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <utility>

namespace sipwake {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;
using std::chrono::milliseconds;
using std::chrono::seconds;

// One-shot timers owned by one event loop.
// Thread: every method is called on the loop that owns the TimerService; callbacks run there too.
class TimerService {
 public:
  using TimerId = std::uint64_t;  // 0 is never a valid id
  virtual ~TimerService() = default;
  virtual TimePoint now() const = 0;
  // Runs `fn` once, `delay` from now, unless cancelled first.
  virtual TimerId schedule(Duration delay, std::function<void()> fn) = 0;
  // Cancelling an id that already fired or was cancelled is a no-op.
  virtual void cancel(TimerId id) = 0;
};

// Deterministic TimerService for tests: time moves only when advance() is called.
class FakeTimerService final : public TimerService {
 public:
  TimePoint now() const override { return now_; }
  TimerId schedule(Duration delay, std::function<void()> fn) override {
    TimerId id = ++next_id_;
    timers_.emplace(std::make_pair(now_ + delay, id), std::move(fn));
    return id;
  }
  void cancel(TimerId id) override {
    for (auto it = timers_.begin(); it != timers_.end(); ++it) {
      if (it->first.second == id) {
        timers_.erase(it);
        return;
      }
    }
  }
  // Moves time forward by `d`, firing every timer that falls due, in time order.
  void advance(Duration d) {
    TimePoint target = now_ + d;
    while (!timers_.empty() && timers_.begin()->first.first <= target) {
      auto node = timers_.extract(timers_.begin());
      now_ = node.key().first;
      node.mapped()();
    }
    now_ = target;
  }
  std::size_t pending() const { return timers_.size(); }

 private:
  TimePoint now_{};  // starts at the epoch of steady_clock; tests only look at differences
  TimerId next_id_ = 0;
  std::map<std::pair<TimePoint, TimerId>, std::function<void()>> timers_;
};

}  // namespace sipwake
