#include "common/prometheus.h"

#include <gtest/gtest.h>

#include <string>

#include "common/metrics_summary.h"

namespace sipwake::prometheus {
namespace {

TEST(PrometheusTest, FamilyNamesAreSanitisedAndPrefixed) {
  EXPECT_EQ(counterFamilyName("registrar.requests"), "sipwake_registrar_requests_total");
  EXPECT_EQ(counterFamilyName("auth.uri_check.other_port"),
            "sipwake_auth_uri_check_other_port_total");
  EXPECT_EQ(counterFamilyName("a-b c\"d"), "sipwake_a_b_c_d_total");
}

TEST(PrometheusTest, LabelValuesAndHelpAreEscaped) {
  EXPECT_EQ(escapeLabelValue(R"(a\b"c)"
                             "\nd"),
            R"(a\\b\"c\nd)");
  EXPECT_EQ(escapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");
}

TEST(PrometheusTest, PlainCountersHaveHelpTypeAndValue) {
  const std::string out = renderCounters({{"registrar.requests", 3}, {"auth.challenges", 0}});
  EXPECT_EQ(out,
            "# HELP sipwake_auth_challenges_total sipwake counter auth.challenges.\n"
            "# TYPE sipwake_auth_challenges_total counter\n"
            "sipwake_auth_challenges_total 0\n"
            "# HELP sipwake_registrar_requests_total sipwake counter registrar.requests.\n"
            "# TYPE sipwake_registrar_requests_total counter\n"
            "sipwake_registrar_requests_total 3\n");
}

TEST(PrometheusTest, DynamicPartsBecomeLabelsOfOneFamily) {
  const std::string out = renderCounters({{"push.failed.fcm.UNREGISTERED", 2},
                                          {"push.sent.apns", 5},
                                          {"push.failed.apns.BadDeviceToken", 1},
                                          {"transport.udp.received", 7},
                                          {"transport.tls.received", 1},
                                          {"push.sent.fcm", 4}});
  EXPECT_EQ(out,
            "# HELP sipwake_push_failed_total sipwake counter push.failed.{provider}.{reason}.\n"
            "# TYPE sipwake_push_failed_total counter\n"
            "sipwake_push_failed_total{provider=\"apns\",reason=\"BadDeviceToken\"} 1\n"
            "sipwake_push_failed_total{provider=\"fcm\",reason=\"UNREGISTERED\"} 2\n"
            "# HELP sipwake_push_sent_total sipwake counter push.sent.{provider}.\n"
            "# TYPE sipwake_push_sent_total counter\n"
            "sipwake_push_sent_total{provider=\"apns\"} 5\n"
            "sipwake_push_sent_total{provider=\"fcm\"} 4\n"
            "# HELP sipwake_transport_received_total sipwake counter "
            "transport.{transport}.received.\n"
            "# TYPE sipwake_transport_received_total counter\n"
            "sipwake_transport_received_total{transport=\"tls\"} 1\n"
            "sipwake_transport_received_total{transport=\"udp\"} 7\n");
}

TEST(PrometheusTest, OddLabelValuesAreQuotedAndNamesWithOtherShapesStayPlain) {
  // A reason with a quote (metric words never have one; the renderer must still be safe) and a
  // name with fewer segments than any pattern.
  const std::string out =
      renderCounters({{"push.failed.fcm.a\"b", 1}, {"push.failed", 2}, {"transport.x", 3}});
  EXPECT_NE(out.find("sipwake_push_failed_total{provider=\"fcm\",reason=\"a\\\"b\"} 1\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\nsipwake_push_failed_total 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nsipwake_transport_x_total 3\n"), std::string::npos) << out;
  // One HELP/TYPE per family even when plain and labelled samples share it.
  EXPECT_EQ(out.find("# TYPE sipwake_push_failed_total"),
            out.rfind("# TYPE sipwake_push_failed_total"));
}

TEST(PrometheusTest, WakeLimitReasonsAreOneFamily) {
  const std::string out =
      renderCounters({{"wake.limit.parked_total", 1}, {"wake.limit.same_call", 2}});
  EXPECT_NE(out.find("sipwake_wake_limit_total{reason=\"parked_total\"} 1\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("sipwake_wake_limit_total{reason=\"same_call\"} 2\n"), std::string::npos)
      << out;
}

TEST(PrometheusTest, EmptySnapshotRendersNothing) { EXPECT_EQ(renderCounters({}), ""); }

TEST(PrometheusTest, GaugesAndHistogramsHaveTheirTypesAndSeconds) {
  Histogram h({10, 100, 2500});
  h.observe(3);
  h.observe(10);
  h.observe(50);
  h.observe(9000);
  Stats::Full full;
  full.gauges = {{"location.bindings", 4}, {"transport.connections.tcp", 2}};
  full.histograms = {{"wake.latency.total", h.snapshot()}};
  const std::string out = render(full);
  EXPECT_NE(out.find("# TYPE sipwake_location_bindings gauge\nsipwake_location_bindings 4\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("sipwake_transport_connections{transport=\"tcp\"} 2\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("# TYPE sipwake_wake_latency_seconds histogram\n"
                     "sipwake_wake_latency_seconds_bucket{stage=\"total\",le=\"0.01\"} 2\n"
                     "sipwake_wake_latency_seconds_bucket{stage=\"total\",le=\"0.1\"} 3\n"
                     "sipwake_wake_latency_seconds_bucket{stage=\"total\",le=\"2.5\"} 3\n"
                     "sipwake_wake_latency_seconds_bucket{stage=\"total\",le=\"+Inf\"} 4\n"
                     "sipwake_wake_latency_seconds_sum{stage=\"total\"} 9.063\n"
                     "sipwake_wake_latency_seconds_count{stage=\"total\"} 4\n"),
            std::string::npos)
      << out;
}

TEST(PrometheusTest, SecondsText) {
  EXPECT_EQ(secondsText(0), "0");
  EXPECT_EQ(secondsText(1), "0.001");
  EXPECT_EQ(secondsText(250), "0.25");
  EXPECT_EQ(secondsText(30000), "30");
  EXPECT_EQ(secondsText(1500), "1.5");
}

TEST(StatsTest, PercentilesInterpolateInsideTheBucket) {
  Histogram h({100, 200, 400});
  EXPECT_FALSE(percentile(h.snapshot(), 0.5));
  for (int i = 0; i < 50; ++i) h.observe(50);   // (0, 100]
  for (int i = 0; i < 40; ++i) h.observe(150);  // (100, 200]
  for (int i = 0; i < 10; ++i) h.observe(300);  // (200, 400]
  const Histogram::Snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 100u);
  EXPECT_DOUBLE_EQ(*percentile(s, 0.5), 100.0);
  EXPECT_DOUBLE_EQ(*percentile(s, 0.9), 200.0);
  EXPECT_DOUBLE_EQ(*percentile(s, 0.95), 300.0);
  EXPECT_DOUBLE_EQ(*percentile(s, 0.25), 50.0);
  h.observe(100000);  // beyond the last bound: +Inf answers the last bound
  EXPECT_DOUBLE_EQ(*percentile(h.snapshot(), 0.999), 400.0);
}

TEST(StatsTest, GaugeFunctionsAddUpAndLeaveWithTheirHandle) {
  auto value = [] {
    for (const auto& [n, v] : Stats::global().full().gauges)
      if (n == "test.gauge_fn") return v;
    return std::int64_t{-1};
  };
  {
    Stats::GaugeFnHandle a = Stats::global().gaugeFn("test.gauge_fn", [] { return 2; });
    Stats::GaugeFnHandle b = Stats::global().gaugeFn("test.gauge_fn", [] { return 3; });
    EXPECT_EQ(value(), 5);
  }
  EXPECT_EQ(value(), -1);
}

TEST(StatsTest, SummaryForTheStatusApi) {
  Histogram total({100, 200});
  total.observe(50);
  total.observe(150);
  Stats::Full full;
  full.gauges = {{"location.bindings", 3},
                 {"location.push_bindings", 2},
                 {"wake.parked_requests", 1},
                 {"transport.connections.tcp", 4},
                 {"transport.connections.udp", 0}};
  full.counters = {{"push.sent.fcm", 5},
                   {"push.failed.fcm.UNREGISTERED", 1},
                   {"push.failed.fcm.other", 2},
                   {"push.sent.apns", 1},
                   {"registrar.ok", 9}};
  full.histograms = {{"wake.latency.total", total.snapshot()}};
  const MetricsSummary s = summarizeMetrics(full);
  EXPECT_EQ(s.bindings, 3);
  EXPECT_EQ(s.push_bindings, 2);
  EXPECT_EQ(s.parked, 1);
  EXPECT_EQ(s.connections.at("tcp"), 4);
  EXPECT_EQ(s.connections.at("udp"), 0);
  EXPECT_EQ(s.pushes.at("fcm").sent, 5u);
  EXPECT_EQ(s.pushes.at("fcm").failed, 3u);
  EXPECT_EQ(s.pushes.at("apns").failed, 0u);
  EXPECT_EQ(s.wake_latency_ms.count, 2u);
  EXPECT_DOUBLE_EQ(*s.wake_latency_ms.p50, 100.0);
  EXPECT_FALSE(summarizeMetrics({}).wake_latency_ms.p50);
}

}  // namespace
}  // namespace sipwake::prometheus
