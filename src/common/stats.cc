#include "common/stats.h"

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
  counters_.emplace_back(std::piecewise_construct, std::forward_as_tuple(name), std::forward_as_tuple());
  return counters_.back().second;
}

std::vector<std::pair<std::string, std::uint64_t>> Stats::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::uint64_t>> out;
  out.reserve(counters_.size());
  for (const auto& [n, c] : counters_) out.emplace_back(n, c.value());
  return out;
}

}  // namespace sipwake
