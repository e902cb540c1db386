#include "common/stats.h"

#include <algorithm>

namespace sipwake {

Stats& Stats::global() {
  static Stats* s = new Stats();  // never destroyed: counters may be touched during shutdown
  return *s;
}

Counter& Stats::counter(const std::string& name) {
  std::lock_guard lock(mu_);
  for (auto& [n, c] : counters_) {
    if (n == name) return c;
  }
  counters_.emplace_back(std::piecewise_construct, std::forward_as_tuple(name),
                         std::forward_as_tuple());
  return counters_.back().second;
}

Gauge& Stats::gauge(const std::string& name) {
  std::lock_guard lock(mu_);
  for (auto& [n, g] : gauges_) {
    if (n == name) return g;
  }
  gauges_.emplace_back(std::piecewise_construct, std::forward_as_tuple(name),
                       std::forward_as_tuple());
  return gauges_.back().second;
}

Histogram& Stats::histogram(const std::string& name, std::initializer_list<std::int64_t> bounds) {
  std::lock_guard lock(mu_);
  for (auto& [n, h] : histograms_) {
    if (n == name) return h;
  }
  histograms_.emplace_back(std::piecewise_construct, std::forward_as_tuple(name),
                           std::forward_as_tuple(std::vector<std::int64_t>(bounds)));
  return histograms_.back().second;
}

Stats::GaugeFnHandle Stats::gaugeFn(const std::string& name, GaugeFn fn) {
  std::lock_guard lock(mu_);
  const std::uint64_t id = next_fn_++;
  fns_.push_back(Fn{id, name, std::move(fn)});
  return GaugeFnHandle(id);
}

void Stats::removeGaugeFn(std::uint64_t id) {
  std::lock_guard lock(mu_);
  std::erase_if(fns_, [id](const Fn& f) { return f.id == id; });
}

Stats::GaugeFnHandle& Stats::GaugeFnHandle::operator=(GaugeFnHandle&& o) noexcept {
  if (this != &o) {
    if (id_ != 0) Stats::global().removeGaugeFn(id_);
    id_ = std::exchange(o.id_, 0);
  }
  return *this;
}

Stats::GaugeFnHandle::~GaugeFnHandle() {
  if (id_ != 0) Stats::global().removeGaugeFn(id_);
}

Stats::Full Stats::full() const {
  Full out;
  out.counters = snapshot();
  std::lock_guard lock(mu_);
  for (const auto& [n, g] : gauges_) out.gauges.emplace_back(n, g.value());
  for (const Fn& f : fns_) {
    const std::int64_t v = f.fn();
    auto same = std::find_if(out.gauges.begin(), out.gauges.end(),
                             [&](const auto& g) { return g.first == f.name; });
    if (same != out.gauges.end()) {
      same->second += v;
    } else {
      out.gauges.emplace_back(f.name, v);
    }
  }
  for (const auto& [n, h] : histograms_) out.histograms.emplace_back(n, h.snapshot());
  return out;
}

std::optional<Histogram::Snapshot> Stats::histogramSnapshot(const std::string& name) const {
  std::lock_guard lock(mu_);
  for (const auto& [n, h] : histograms_) {
    if (n == name) return h.snapshot();
  }
  return std::nullopt;
}

Histogram::Histogram(std::vector<std::int64_t> bounds_ms)
    : bounds_(std::move(bounds_ms)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(std::int64_t ms) {
  std::size_t i = 0;
  while (i < bounds_.size() && ms > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(ms, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds_ms = bounds_;
  s.buckets.resize(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.buckets[i] = running;
  }
  // The count is the buckets' total, so that the exposition is consistent even while observe()
  // runs concurrently; the sum may be one observation ahead or behind.
  s.count = running;
  s.sum_ms = sum_.load(std::memory_order_relaxed);
  return s;
}

std::optional<double> percentile(const Histogram::Snapshot& h, double q) {
  if (h.count == 0 || h.buckets.empty()) return std::nullopt;
  const double rank = q * static_cast<double>(h.count);
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    if (static_cast<double>(h.buckets[i]) < rank) continue;
    if (i == h.bounds_ms.size()) {  // +Inf: the highest finite bound is all we know
      return h.bounds_ms.empty() ? 0.0 : static_cast<double>(h.bounds_ms.back());
    }
    const double lower = i == 0 ? 0.0 : static_cast<double>(h.bounds_ms[i - 1]);
    const double upper = static_cast<double>(h.bounds_ms[i]);
    const double below = i == 0 ? 0.0 : static_cast<double>(h.buckets[i - 1]);
    const double in_bucket = static_cast<double>(h.buckets[i]) - below;
    if (in_bucket <= 0) return upper;
    return lower + (upper - lower) * (rank - below) / in_bucket;
  }
  return static_cast<double>(h.bounds_ms.empty() ? 0 : h.bounds_ms.back());
}

std::vector<std::pair<std::string, std::uint64_t>> Stats::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  out.reserve(counters_.size());
  for (const auto& [n, c] : counters_) out.emplace_back(n, c.value());
  return out;
}

}  // namespace sipwake
