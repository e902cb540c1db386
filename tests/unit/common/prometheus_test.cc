#include "common/prometheus.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace sipwake::prometheus
