// The figures GET /api/status shows, read from the Stats registry: the gauges, the push counters
// summed per provider, and wake-latency percentiles. One place that knows the metric names, so
// the admin API and /metrics cannot drift apart.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/stats.h"

namespace sipwake {

struct MetricsSummary {
  std::int64_t bindings = 0;       // location.bindings
  std::int64_t push_bindings = 0;  // location.push_bindings
  std::int64_t parked = 0;         // wake.parked_requests
  // transport.connections.{transport}: "udp", "tcp", "tls" (udp is always 0)
  std::map<std::string, std::int64_t> connections;
  struct Pushes {
    std::uint64_t sent = 0;    // push.sent.{provider}
    std::uint64_t failed = 0;  // push.failed.{provider}.*, every reason
  };
  std::map<std::string, Pushes> pushes;  // by provider ("apns", "fcm", "webhook", ...)
  struct Latency {
    std::optional<double> p50, p90, p99;  // milliseconds; nullopt when count is 0
    std::uint64_t count = 0;
  };
  Latency wake_latency_ms;  // wake.latency.total: request parked → forwarded to the woken device
};

// The summary of `stats` (Stats::global().full()).
MetricsSummary summarizeMetrics(const Stats::Full& stats);

}  // namespace sipwake
