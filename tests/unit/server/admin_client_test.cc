#include "server/admin_client.h"

#include <gtest/gtest.h>

#include <string>

#include "../free_port.h"

namespace sipwake::server {
namespace {

TEST(AdminUrlTest, ParsesHttpAndHttps) {
  auto ep = parseAdminUrl("http://127.0.0.1:9090");
  ASSERT_TRUE(ep.isOk()) << ep.status().message();
  EXPECT_FALSE(ep->tls);
  EXPECT_EQ(ep->host, "127.0.0.1");
  EXPECT_EQ(ep->port, 9090);
  EXPECT_EQ(ep->url(), "http://127.0.0.1:9090");
  ep = parseAdminUrl("https://[::1]:9443/");
  ASSERT_TRUE(ep.isOk()) << ep.status().message();
  EXPECT_TRUE(ep->tls);
  EXPECT_EQ(ep->host, "::1");
  EXPECT_EQ(ep->url(), "https://[::1]:9443");
}

TEST(AdminUrlTest, RefusesWithAReason) {
  for (const char* bad :
       {"127.0.0.1:9090", "http://127.0.0.1", "http://:80", "http://h:0", "http://h:65536",
        "http://h:9x", "http://h:90/metrics", "ftp://h:1", "http://[::1:90"}) {
    auto ep = parseAdminUrl(bad);
    ASSERT_FALSE(ep.isOk()) << bad;
    EXPECT_NE(ep.status().message().find(bad), std::string::npos) << ep.status().message();
  }
}

TEST(AdminUrlTest, QueryEscapeKeepsAorReadable) {
  EXPECT_EQ(queryEscape("alice@example.com"), "alice@example.com");
  EXPECT_EQ(queryEscape("a b&c=d/+%"), "a%20b%26c%3Dd%2F%2B%25");
}

TEST(AdminClientTest, NotRunningSaysSo) {
  // A port that was free a moment ago: nobody listens, so the connect is refused.
  AdminEndpoint ep;
  ep.host = "127.0.0.1";
  ep.port = testing_support::freeLoopbackPort();
  auto r = adminRequest(ep, "GET", "/api/status", {});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("connection refused (is sipwake running?)"),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find(ep.url()), std::string::npos);
}

TEST(AdminRenderTest, Status) {
  auto out = renderStatus(
      R"({"version":"1.2.3","uptime_s":42,"bindings":3,"push_bindings":2,"parked":1,
          "connections":{"tcp":2,"tls":1},"pushes":{"fcm":{"sent":5,"failed":1}},
          "wake_latency_ms":{"p50":120.5,"p90":null,"p99":null,"count":4}})");
  ASSERT_TRUE(out.isOk()) << out.status().message();
  EXPECT_NE(out->find("sipwake 1.2.3 up 42 s"), std::string::npos) << *out;
  EXPECT_NE(out->find("bindings 3  push bindings 2  parked 1"), std::string::npos) << *out;
  EXPECT_NE(out->find("tcp 2"), std::string::npos) << *out;
  EXPECT_NE(out->find("pushes fcm: sent 5 failed 1"), std::string::npos) << *out;
  EXPECT_NE(out->find("p50 120.5 p90 - p99 -"), std::string::npos) << *out;
  EXPECT_FALSE(renderStatus("[1]").isOk());
  EXPECT_FALSE(renderStatus("{\"bindings\":1}").isOk());
  EXPECT_FALSE(renderStatus("not json").isOk());
}

TEST(AdminRenderTest, TimelineShowsStepsWithOffsets) {
  auto out = renderTimelines(
      R"({"timelines":[{"call_id":"c1","caller":"sip:bob@x","callee":"alice@x",
          "start_ms":1765158000123,"outcome":"answered","steps":[
          {"ms":0,"what":"INVITE parked"},
          {"ms":3,"what":"push sent","device_key":"dk1","provider":"fcm"},
          {"ms":120,"what":"provider answered","status":200,"reason":""}]}]})");
  ASSERT_TRUE(out.isOk()) << out.status().message();
  EXPECT_NE(out->find("2025-12-08 01:40:00.123Z  call c1  sip:bob@x -> alice@x  outcome: answered"),
            std::string::npos)
      << *out;
  EXPECT_NE(out->find("+     3 ms  push sent  device_key=dk1  provider=fcm"), std::string::npos)
      << *out;
  EXPECT_NE(out->find("+   120 ms  provider answered  status=200\n"), std::string::npos) << *out;
  auto none = renderTimelines(R"({"timelines":[]})");
  ASSERT_TRUE(none.isOk());
  EXPECT_EQ(*none, "no wake-up recorded\n");
}

TEST(AdminRenderTest, BindingsPushTestDropReload) {
  auto b = renderBindings(
      R"({"aor":"alice@x","bindings":[{"contact":"<sip:a@1.2.3.4>","device_key":"dk",
          "expires_in":60,"transport":"tcp","source":"1.2.3.4:5","user_agent":"UA"}],
          "push_bindings":[{"device_key":"dk","provider":"apns","app":"com.x.voip",
          "token":"abcd…wxyz","voip_token":null,"expires_in":2592000}]})");
  ASSERT_TRUE(b.isOk()) << b.status().message();
  EXPECT_NE(b->find("alice@x: 1 binding, 1 push binding"), std::string::npos) << *b;
  EXPECT_NE(b->find("token abcd…wxyz  expires in 2592000 s"), std::string::npos) << *b;
  EXPECT_FALSE(renderBindings(R"({"aor":"a"})").isOk());

  auto p = renderPushTest(
      R"({"aor":"alice@x","results":[{"device_key":"dk","provider":"fcm","app":"a",
          "token":"abcd…wxyz","outcome":"rejected","status":404,"reason":"UNREGISTERED"}]})");
  ASSERT_TRUE(p.isOk()) << p.status().message();
  EXPECT_NE(p->find("token abcd…wxyz: rejected HTTP 404 UNREGISTERED"), std::string::npos) << *p;

  auto d = renderDropped(R"({"removed_bindings":2,"removed_push_bindings":1})");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(*d, "removed 2 binding(s) and 1 push binding(s)\n");

  auto r = renderReload(R"({"reloaded":["push","tls"],"restart_needed":["[[listen]]"]})");
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, "reloaded: push, tls\nchanged but kept until a restart: [[listen]]\n");
}

TEST(AdminRenderTest, ErrorsAreExplained) {
  http2::Response unauthorized;
  unauthorized.status = 401;
  EXPECT_EQ(describeAdminError(unauthorized),
            "the admin token was refused (check [admin] token_file)");
  http2::Response missing;
  missing.status = 404;
  missing.body = R"({"error":"no push binding for alice@example.com"})";
  EXPECT_EQ(describeAdminError(missing), "no push binding for alice@example.com (HTTP 404)");
  http2::Response odd;
  odd.status = 502;
  odd.body = "<html>";
  EXPECT_EQ(describeAdminError(odd), "the admin listener answered HTTP 502");
}

}  // namespace
}  // namespace sipwake::server
