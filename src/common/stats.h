// Counters, gauges and histograms every component exposes. Lock-free updates (relaxed atomics, no
// allocation); a registry snapshot for the admin side (GET /metrics, /api/status).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
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

// A value that goes up and down (bindings held, calls parked, connections open).
class Gauge {
 public:
  void set(std::int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t n) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// A histogram of millisecond durations with fixed upper bounds (plus +Inf). observe() is a few
// relaxed atomic adds: no lock, no allocation.
class Histogram {
 public:
  struct Snapshot {
    std::vector<std::int64_t> bounds_ms;  // upper bounds, ascending; +Inf not listed
    std::vector<std::uint64_t> buckets;   // cumulative counts: bounds_ms.size() + 1 (last: +Inf)
    std::int64_t sum_ms = 0;
    std::uint64_t count = 0;
  };
  // REQUIRES: bounds ascending.
  explicit Histogram(std::vector<std::int64_t> bounds_ms);
  void observe(std::int64_t ms);
  Snapshot snapshot() const;

 private:
  std::vector<std::int64_t> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // not cumulative; bounds_.size() + 1
  std::atomic<std::int64_t> sum_{0};
  std::atomic<std::uint64_t> count_{0};
};

// The q-quantile (0 < q < 1) of a histogram by linear interpolation inside the bucket that
// holds it (as Prometheus' histogram_quantile does; the +Inf bucket answers its lower bound);
// nullopt when the histogram is empty.
std::optional<double> percentile(const Histogram::Snapshot& h, double q);

// The bounds of the latency histograms, in milliseconds.
inline constexpr std::initializer_list<std::int64_t> kLatencyBoundsMs = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 30000};

// Process-wide registry of named counters, gauges and histograms. counter() is for set-up time
// (takes a lock); the returned reference is stable for the life of the process and is incremented
// lock-free.
class Stats {
 public:
  struct Full {
    std::vector<std::pair<std::string, std::uint64_t>> counters;
    std::vector<std::pair<std::string, std::int64_t>> gauges;  // Gauge objects and gauge functions
    std::vector<std::pair<std::string, Histogram::Snapshot>> histograms;
  };
  // A gauge read at scrape time; it runs on the scraping thread, so it must only read atomics.
  using GaugeFn = std::function<std::int64_t()>;
  // Unregisters its gauge function when destroyed.
  class GaugeFnHandle {
   public:
    GaugeFnHandle() = default;
    GaugeFnHandle(GaugeFnHandle&& o) noexcept : id_(std::exchange(o.id_, 0)) {}
    GaugeFnHandle& operator=(GaugeFnHandle&& o) noexcept;
    ~GaugeFnHandle();

   private:
    friend class Stats;
    explicit GaugeFnHandle(std::uint64_t id) : id_(id) {}
    std::uint64_t id_ = 0;
  };

  static Stats& global();
  Counter& counter(const std::string& name);
  Gauge& gauge(const std::string& name);
  // The histogram `name`; one already registered under that name keeps its first bounds.
  Histogram& histogram(const std::string& name,
                       std::initializer_list<std::int64_t> bounds_ms = kLatencyBoundsMs);
  // Several functions may share a name: their values add up.
  [[nodiscard]] GaugeFnHandle gaugeFn(const std::string& name, GaugeFn fn);
  std::vector<std::pair<std::string, std::uint64_t>> snapshot() const;  // counters
  Full full() const;
  // The snapshot of histogram `name`; nullopt when none is registered.
  std::optional<Histogram::Snapshot> histogramSnapshot(const std::string& name) const;

 private:
  struct Fn {
    std::uint64_t id;
    std::string name;
    GaugeFn fn;
  };
  void removeGaugeFn(std::uint64_t id);

  mutable std::mutex mu_;
  std::deque<std::pair<std::string, Counter>> counters_;
  std::deque<std::pair<std::string, Gauge>> gauges_;
  std::deque<std::pair<std::string, Histogram>> histograms_;
  std::vector<Fn> fns_;
  std::uint64_t next_fn_ = 1;
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
