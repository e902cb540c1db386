// Prometheus text exposition format 0.0.4 for the counters, gauges and histograms of Stats
// (served by the admin listener's GET /metrics). Pure functions, no I/O.
//
// A counter "registrar.requests" becomes the family sipwake_registrar_requests_total, a gauge
// "location.bindings" sipwake_location_bindings, a histogram of milliseconds "registrar.latency"
// sipwake_registrar_latency_seconds (buckets, sum in seconds). Names that embed a provider,
// reason, transport or stage become one family with labels, by the patterns of
// kLabelledCounters: "push.failed.fcm.UNREGISTERED" is
//   sipwake_push_failed_total{provider="fcm",reason="UNREGISTERED"}
// Every family has "# HELP" (the dotted name or pattern) and "# TYPE"; families are sorted by
// name, samples within a family by their labels.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/stats.h"

namespace sipwake::prometheus {

// Dotted counter-name patterns; a "{label}" segment matches one dot-free segment of a name with
// the same number of segments and becomes the label of that name. The family name is the pattern
// without its "{label}" segments.
inline constexpr std::string_view kLabelledCounters[] = {
    "push.sent.{provider}",
    "push.failed.{provider}.{reason}",
    "push.bindings_removed.{provider}",
    "push.repushed.{provider}",
    "push.oauth_token_failures.{provider}",
    "transport.{transport}.received",
    "transport.{transport}.sent",
    "wake.limit.{reason}",
    "transport.connections.{transport}",  // gauge
    "push.connections.{provider}",        // gauge
    "wake.latency.{stage}",               // histogram
};

// "registrar.requests" → "sipwake_registrar_requests_total": every character outside
// [a-zA-Z0-9_] becomes '_' (so dots become underscores).
std::string counterFamilyName(std::string_view dotted);
// A label value as the text format quotes it: backslash, double quote and newline escaped.
std::string escapeLabelValue(std::string_view value);
// The text of "# HELP" lines: backslash and newline escaped.
std::string escapeHelp(std::string_view text);

// The exposition of `counters` (Stats::snapshot()).
std::string renderCounters(const std::vector<std::pair<std::string, std::uint64_t>>& counters);

// The exposition of every counter, gauge and histogram of `stats` (Stats::full()).
std::string render(const Stats::Full& stats);

// Seconds as the text format writes them from milliseconds: 1 → "0.001", 30000 → "30".
std::string secondsText(std::int64_t ms);

// The media type of renderCounters()' output.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace sipwake::prometheus
