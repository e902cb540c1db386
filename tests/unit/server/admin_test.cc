// The admin API's pieces that need no listener: bearer token check, token truncation, the 401 /
// 403 answers and the status body, over in-memory stores.
#include "server/admin.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "location/memory_location_store.h"
#include "push/sender.h"
#include "routing/timeline.h"

namespace sipwake::server {
namespace {

routing::TimelineStep step(std::int64_t ms, std::string what, std::string text) {
  routing::TimelineStep s;
  s.ms = ms;
  s.what = std::move(what);
  s.text = std::move(text);
  return s;
}

TEST(AdminAuthTest, BearerTokenMustMatchExactly) {
  const std::string token = "0123456789abcdef";
  EXPECT_TRUE(bearerTokenMatches("Bearer 0123456789abcdef", token));
  EXPECT_TRUE(bearerTokenMatches("bearer 0123456789abcdef", token));  // scheme: any case
  EXPECT_FALSE(bearerTokenMatches("Bearer 0123456789abcdeF", token));
  EXPECT_FALSE(bearerTokenMatches("Bearer 0123456789abcde", token));
  EXPECT_FALSE(bearerTokenMatches("Bearer 0123456789abcdef0", token));
  EXPECT_FALSE(bearerTokenMatches("Basic 0123456789abcdef", token));
  EXPECT_FALSE(bearerTokenMatches("0123456789abcdef", token));
  EXPECT_FALSE(bearerTokenMatches("", token));
  EXPECT_FALSE(bearerTokenMatches("Bearer ", ""));  // no token configured: nothing matches
}

TEST(AdminAuthTest, TokensAreShownTruncated) {
  EXPECT_EQ(truncatedToken("abcdef0123456789wxyz"), "abcd…wxyz");
  EXPECT_EQ(truncatedToken("abcdefghijklm"), "abcd…jklm");  // 13 characters
  EXPECT_EQ(truncatedToken("abcdefghijkl"), "…kl");         // 12 characters
  EXPECT_EQ(truncatedToken("ab"), "…ab");
  EXPECT_EQ(truncatedToken("a"), "…a");
  EXPECT_EQ(truncatedToken(""), "");
}

TEST(AdminAuthTest, ContactsShowNoWholeToken) {
  EXPECT_EQ(redactedContact("<sip:a@10.0.0.1:5060;transport=tcp;pn-provider=fcm;"
                            "pn-param=proj;pn-prid=abcdef0123456789wxyz>;expires=60"),
            "<sip:a@10.0.0.1:5060;transport=tcp;pn-provider=fcm;pn-param=proj;"
            "pn-prid=abcd…wxyz>;expires=60");
  EXPECT_EQ(redactedContact("sip:a@h;PN-VOIP-TOK=0123456789abcdef;pn-im-tok=fedcba9876543210"),
            "sip:a@h;PN-VOIP-TOK=0123…cdef;pn-im-tok=fedc…3210");
  EXPECT_EQ(redactedContact("sip:a@h;push-token-id=0123456789abcdef?x=1"),
            "sip:a@h;push-token-id=0123…cdef?x=1");
  EXPECT_EQ(redactedContact("sip:a@h;pn-prid;lr"), "sip:a@h;pn-prid;lr");  // no value
  EXPECT_EQ(redactedContact("sip:a@h"), "sip:a@h");
  EXPECT_EQ(redactedContact(""), "");
}

class AdminApiTest : public ::testing::Test {
 protected:
  AdminApiTest() {
    (void)locations_->load(location::SysSeconds{});
  }

  AdminApi api(std::string token) {
    AdminDeps d;
    d.token = std::move(token);
    d.locations = locations_.get();
    d.push_store = locations_.get();
    d.sender = &sender_;
    d.timelines = &timelines_;
    d.parked = [] { return std::size_t{3}; };
    d.post = [](std::function<void()> fn) { fn(); };
    d.after = [](std::chrono::milliseconds, std::function<void()>) {};
    return AdminApi(std::move(d));
  }

  static http2::Response call(AdminApi& a, std::string method, std::string path,
                              std::optional<std::string> authorization = std::nullopt) {
    http2::Request r;
    r.method = std::move(method);
    r.path = std::move(path);
    if (authorization) r.headers.push_back({"authorization", *authorization});
    http2::Response got;
    a.handle(r, [&got](http2::Response resp) { got = std::move(resp); });
    return got;
  }
  static std::string headerOf(const http2::Response& r, const std::string& name) {
    for (const auto& h : r.headers) {
      if (h.name == name) return h.value;
    }
    return "";
  }

  std::unique_ptr<location::LocationStore> locations_ =
      std::make_unique<location::MemoryLocationStore>();
  push::NullPushSender sender_;
  routing::TimelineRecorder timelines_{10};
};

TEST_F(AdminApiTest, ApiNeedsTheBearerToken) {
  AdminApi a = api("0123456789abcdef");
  http2::Response r = call(a, "GET", "/api/status");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(headerOf(r, "www-authenticate"), "Bearer realm=\"sipwake-admin\"");
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "missing Authorization: Bearer token");
  r = call(a, "GET", "/api/status", "Bearer 0123456789abcdeX");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "wrong admin token");
  r = call(a, "GET", "/api/status", "Bearer 0123456789abcdef");
  ASSERT_EQ(r.status, 200) << r.body;
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["parked"], 3);
  EXPECT_EQ(body["bindings"], 0);
  EXPECT_TRUE(body["wake_latency_ms"].contains("p50"));
  // /metrics needs no token.
  EXPECT_EQ(call(a, "GET", "/metrics").status, 200);
  r = call(a, "POST", "/api/status", "Bearer 0123456789abcdef");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(headerOf(r, "allow"), "GET");
  EXPECT_EQ(call(a, "GET", "/api/nothing", "Bearer 0123456789abcdef").status, 404);
  EXPECT_EQ(call(a, "GET", "/api/bindings", "Bearer 0123456789abcdef").status, 400);
}

TEST_F(AdminApiTest, WithoutATokenFileTheApiIsDisabled) {
  AdminApi a = api("");
  http2::Response r = call(a, "GET", "/api/status", "Bearer ");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(nlohmann::json::parse(r.body)["error"], "admin API disabled: set [admin] token_file");
  EXPECT_EQ(call(a, "GET", "/metrics").status, 200);
}

TEST_F(AdminApiTest, TimelinesOfAUserNewestFirst) {
  for (int i = 0; i < 3; ++i) {
    routing::Timeline t;
    t.call_id = "c" + std::to_string(i);
    t.callee = i == 1 ? "sip:bob@example.com" : "sip:alice@example.com";
    t.steps.push_back(step(0, "INVITE parked", "INVITE in (0 live contacts)"));
    timelines_.record(t);
  }
  AdminApi a = api("0123456789abcdef");
  http2::Response r =
      call(a, "GET", "/api/timelines?aor=alice%40example.com", "Bearer 0123456789abcdef");
  ASSERT_EQ(r.status, 200) << r.body;
  auto list = nlohmann::json::parse(r.body)["timelines"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["call_id"], "c2");
  EXPECT_EQ(list[0]["callee"], "alice@example.com");
  EXPECT_EQ(list[0]["steps"][0]["what"], "INVITE parked");
  EXPECT_EQ(list[1]["call_id"], "c0");
  r = call(a, "GET", "/api/timelines?limit=0", "Bearer 0123456789abcdef");
  EXPECT_EQ(r.status, 400);
}

}  // namespace
}  // namespace sipwake::server
