// Event loops: one asio::io_context per thread, one thread per core. A message is handled on the
// loop that received it (see TransportLayer::dispatch for the few that are not): a transaction,
// its CANCEL/ACK and its forwarded branches live on one loop without locks, and the branches we
// generate name their loop (appendBranchCookie) so that their responses come back to it.
#pragma once

#include <asio.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.h"

namespace sipwake::transport {

class EventLoop;

// TimerService on one EventLoop: a binary min-heap of deadlines behind ONE asio::steady_timer
// (armed for the earliest deadline). schedule() is O(log n) and allocation-light; cancel() is
// O(1) (the heap entry is skipped lazily when it surfaces; the heap is compacted when cancelled
// entries dominate).
// Coalescing: a timer of kCoalesceMinDelay or more fires at its deadline rounded UP to the next
// multiple of kCoalesceGrain, so that the many SIP transaction timers (T1 = 500 ms retransmits,
// 32 s Timer J/H/F...) started within one grain share one wake-up of the loop instead of one
// each. Timers never fire early, and at most one grain late; shorter timers (and zero-delay
// "run soon" timers) fire at their exact deadline. Order: by firing time, then deadline, then
// scheduling order.
// Thread: every method must be called on the owning loop's thread; callbacks run there.
class AsioTimerService final : public TimerService {
 public:
  explicit AsioTimerService(asio::io_context& io);
  ~AsioTimerService() override;
  AsioTimerService(const AsioTimerService&) = delete;
  AsioTimerService& operator=(const AsioTimerService&) = delete;

  static constexpr Duration kCoalesceGrain = std::chrono::milliseconds(16);
  static constexpr Duration kCoalesceMinDelay = std::chrono::milliseconds(200);

  TimePoint now() const override { return Clock::now(); }
  TimerId schedule(Duration delay, std::function<void()> fn) override;
  void cancel(TimerId id) override;
  std::size_t pending() const { return callbacks_.size(); }
  // Drops every pending timer without running it (used at shutdown).
  void clear();

 private:
  struct Entry {
    TimePoint fire_at;   // deadline, or deadline rounded up to the grain (coalesced)
    TimePoint deadline;  // never fired before this
    TimerId id;
    bool operator>(const Entry& o) const {
      if (fire_at != o.fire_at) return fire_at > o.fire_at;
      return deadline != o.deadline ? deadline > o.deadline : id > o.id;
    }
  };
  void arm();
  void onTimer(std::uint64_t generation);
  void compactIfNeeded();

  asio::steady_timer timer_;
  std::vector<Entry> heap_;  // std::push_heap/pop_heap with greater<> => min-heap
  std::unordered_map<TimerId, std::function<void()>> callbacks_;
  TimerId next_id_ = 0;
  std::optional<TimePoint> armed_for_;
  std::uint64_t generation_ = 0;
};

// One io_context run by one thread.
// Thread: post() is thread-safe; timers() and io() objects are used on the loop's thread only.
class EventLoop {
 public:
  explicit EventLoop(std::size_t index);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  std::size_t index() const { return index_; }
  asio::io_context& io() { return io_; }
  AsioTimerService& timers() { return *timers_; }

  // Queues `fn` to run on this loop. Move-only callables are fine (asio::post).
  template <typename Fn>
  void post(Fn&& fn) {
    asio::post(io_, std::forward<Fn>(fn));
  }
  // Runs `fn` now if called on this loop, else posts it.
  template <typename Fn>
  void runOrPost(Fn&& fn) {
    if (current() == this) {
      fn();
    } else {
      post(std::forward<Fn>(fn));
    }
  }
  bool isCurrent() const { return current() == this; }

  // The loop whose thread is calling, or nullptr for a thread that is not a loop thread.
  static EventLoop* current();

  // Starts the thread. REQUIRES: not running.
  void start();
  // Stops the io_context and joins the thread; handlers still queued are destroyed unrun when
  // the loop is destroyed. REQUIRES: not called from this loop's own thread.
  void stop();
  bool running() const { return thread_.joinable(); }

 private:
  std::size_t index_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::unique_ptr<AsioTimerService> timers_;
  std::thread thread_;
};

// Appends the RFC 3261 magic cookie "z9hG4bK" and, on a loop thread, "w" + the loop's index in
// three hex digits: a branch built from it tells every loop which one owns the client
// transaction (loopOfBranch), so a response costs no cross-loop lookup.
void appendBranchCookie(std::string& out);
// The loop index a branch of ours names, or nullopt (not ours, or built off a loop thread).
std::optional<std::size_t> loopOfBranch(std::string_view branch);

// N event loops (N = configured workers; 0 means one per hardware core).
class LoopPool {
 public:
  explicit LoopPool(std::size_t workers = 0);
  ~LoopPool();
  LoopPool(const LoopPool&) = delete;
  LoopPool& operator=(const LoopPool&) = delete;

  void start();
  // Stops and joins every loop. Idempotent. REQUIRES: not called from a loop thread.
  void stop();

  std::size_t size() const { return loops_.size(); }
  EventLoop& at(std::size_t i) { return *loops_[i]; }
  // Stable (FNV-1a, same across runs) Call-ID → loop mapping, for requests that carry no
  // RFC 3261 branch (RFC 2543 clients: their transactions are matched on Call-ID and friends).
  // Thread-safe (no state).
  EventLoop& forCallId(std::string_view call_id) { return *loops_[indexForCallId(call_id)]; }
  std::size_t indexForCallId(std::string_view call_id) const;

 private:
  std::vector<std::unique_ptr<EventLoop>> loops_;
};

}  // namespace sipwake::transport
