#include "common/metrics_summary.h"

#include <string_view>

namespace sipwake {
namespace {

// The part of `name` after `prefix` up to the next dot (or the end); empty when no match.
std::string_view segmentAfter(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return {};
  name.remove_prefix(prefix.size());
  return name.substr(0, name.find('.'));
}

}  // namespace

MetricsSummary summarizeMetrics(const Stats::Full& stats) {
  MetricsSummary out;
  for (const auto& [name, v] : stats.gauges) {
    if (name == "location.bindings") {
      out.bindings += v;
    } else if (name == "location.push_bindings") {
      out.push_bindings += v;
    } else if (name == "wake.parked_requests") {
      out.parked += v;
    } else if (auto t = segmentAfter(name, "transport.connections."); !t.empty()) {
      out.connections[std::string(t)] += v;
    }
  }
  for (const auto& [name, v] : stats.counters) {
    if (auto p = segmentAfter(name, "push.sent."); !p.empty()) {
      out.pushes[std::string(p)].sent += v;
    } else if (auto f = segmentAfter(name, "push.failed."); !f.empty()) {
      out.pushes[std::string(f)].failed += v;
    }
  }
  for (const auto& [name, h] : stats.histograms) {
    if (name != "wake.latency.total") continue;
    out.wake_latency_ms.count = h.count;
    out.wake_latency_ms.p50 = percentile(h, 0.5);
    out.wake_latency_ms.p90 = percentile(h, 0.9);
    out.wake_latency_ms.p99 = percentile(h, 0.99);
  }
  return out;
}

}  // namespace sipwake
