// Counters every component exposes. Lock-free increments; a registry snapshot for the admin/log side.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace sipwake {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// Process-wide registry of named counters. counter() is for set-up time (takes a lock);
// the returned reference is stable for the life of the process and is incremented lock-free.
class Stats {
 public:
  static Stats& global();
  Counter& counter(const std::string& name);
  std::vector<std::pair<std::string, std::uint64_t>> snapshot() const;

 private:
  mutable std::mutex mu_;
  std::deque<std::pair<std::string, Counter>> counters_;
};

// A counter of the registry resolved once, when constructed: a namespace-scope
// `const StatCounter kStored{"message.stored"};` exists (at 0) from start-up and is incremented
// lock-free, without the registry's lookup.
class StatCounter {
 public:
  explicit StatCounter(const std::string& name) : c_(&Stats::global().counter(name)) {}
  void inc(std::uint64_t n = 1) const { c_->inc(n); }
  std::uint64_t value() const { return c_->value(); }

 private:
  Counter* c_;
};

}  // namespace sipwake
