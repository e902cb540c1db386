#include "transport/event_loop.h"

#include <algorithm>

#include "common/status.h"

namespace sipwake::transport {

namespace {
thread_local EventLoop* t_current_loop = nullptr;
}  // namespace

// ---------------------------------------------------------------------------------------------
// AsioTimerService

AsioTimerService::AsioTimerService(asio::io_context& io) : timer_(io) {}

AsioTimerService::~AsioTimerService() { clear(); }

void AsioTimerService::clear() {
  callbacks_.clear();
  heap_.clear();
  armed_for_.reset();
  ++generation_;
  timer_.cancel();
}

TimerService::TimerId AsioTimerService::schedule(Duration delay, std::function<void()> fn) {
  TimerId id = ++next_id_;
  TimePoint deadline = Clock::now() + delay;
  TimePoint fire_at = deadline;
  if (delay >= kCoalesceMinDelay) {
    const auto grain = std::chrono::duration_cast<Clock::duration>(kCoalesceGrain).count();
    const auto t = deadline.time_since_epoch().count();
    const auto rem = t % grain;
    if (rem != 0) fire_at = TimePoint(Clock::duration(t - rem + (t < 0 ? 0 : grain)));
  }
  callbacks_.emplace(id, std::move(fn));
  heap_.push_back(Entry{fire_at, deadline, id});
  std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
  if (!armed_for_ || fire_at < *armed_for_) arm();
  return id;
}

void AsioTimerService::cancel(TimerId id) {
  callbacks_.erase(id);
  compactIfNeeded();
}

void AsioTimerService::compactIfNeeded() {
  // Cancelled entries stay in the heap until they surface; rebuild when they dominate so memory
  // stays bounded by the live timer count.
  if (heap_.size() > 1024 && heap_.size() > 4 * callbacks_.size()) {
    std::erase_if(heap_, [this](const Entry& e) { return !callbacks_.contains(e.id); });
    std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
  }
}

void AsioTimerService::arm() {
  // Drop cancelled entries at the top so we don't wake up for nothing.
  while (!heap_.empty() && !callbacks_.contains(heap_.front().id)) {
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
  }
  if (heap_.empty()) {
    armed_for_.reset();
    return;
  }
  TimePoint deadline = heap_.front().fire_at;
  if (armed_for_ && *armed_for_ == deadline) return;
  armed_for_ = deadline;
  std::uint64_t gen = ++generation_;
  timer_.expires_at(deadline);  // cancels any previous wait (its handler sees a stale generation)
  timer_.async_wait([this, gen](const asio::error_code& ec) {
    if (ec == asio::error::operation_aborted) return;
    onTimer(gen);
  });
}

void AsioTimerService::onTimer(std::uint64_t generation) {
  if (generation != generation_) return;
  armed_for_.reset();
  TimePoint now = Clock::now();
  while (!heap_.empty() && heap_.front().fire_at <= now) {
    Entry e = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
    heap_.pop_back();
    auto it = callbacks_.find(e.id);
    if (it == callbacks_.end()) continue;  // cancelled
    std::function<void()> fn = std::move(it->second);
    callbacks_.erase(it);
    fn();  // may schedule/cancel; the heap is consistent here
  }
  arm();
}

// ---------------------------------------------------------------------------------------------
// EventLoop

EventLoop::EventLoop(std::size_t index)
    : index_(index), io_(1), timers_(std::make_unique<AsioTimerService>(io_)) {}

EventLoop::~EventLoop() {
  stop();
  timers_.reset();
}

EventLoop* EventLoop::current() { return t_current_loop; }

void EventLoop::start() {
  SIPWAKE_CHECK(!thread_.joinable());
  io_.restart();
  work_.emplace(asio::make_work_guard(io_));
  thread_ = std::thread([this] {
    t_current_loop = this;
    io_.run();
    t_current_loop = nullptr;
  });
}

void EventLoop::stop() {
  if (!thread_.joinable()) return;
  SIPWAKE_CHECK(current() != this);
  work_.reset();
  io_.stop();
  thread_.join();
}

// ---------------------------------------------------------------------------------------------
// LoopPool

LoopPool::LoopPool(std::size_t workers) {
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());
  // FlowIds carry the owning loop index in 8 bits (see TransportLayer).
  workers = std::min<std::size_t>(workers, 255);
  loops_.reserve(workers);
  for (std::size_t i = 0; i < workers; ++i) loops_.push_back(std::make_unique<EventLoop>(i));
}

LoopPool::~LoopPool() { stop(); }

void LoopPool::start() {
  for (auto& l : loops_) {
    if (!l->running()) l->start();
  }
}

void LoopPool::stop() {
  for (auto& l : loops_) l->stop();
}

void appendBranchCookie(std::string& out) {
  out.append("z9hG4bK");
  EventLoop* loop = EventLoop::current();
  if (loop == nullptr || loop->index() > 0xfff) return;
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t i = loop->index();
  out.push_back('w');
  out.push_back(kHex[(i >> 8) & 0xf]);
  out.push_back(kHex[(i >> 4) & 0xf]);
  out.push_back(kHex[i & 0xf]);
}

std::optional<std::size_t> loopOfBranch(std::string_view branch) {
  static constexpr std::string_view kPrefix = "z9hG4bKw";
  if (branch.size() < kPrefix.size() + 3 || branch.substr(0, kPrefix.size()) != kPrefix) {
    return std::nullopt;
  }
  std::size_t i = 0;
  for (char c : branch.substr(kPrefix.size(), 3)) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    i = (i << 4) | static_cast<std::size_t>(d);
  }
  return i;
}

std::size_t LoopPool::indexForCallId(std::string_view call_id) const {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : call_id) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<std::size_t>(h % loops_.size());
}

}  // namespace sipwake::transport
