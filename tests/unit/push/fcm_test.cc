#include "push/fcm.h"

#include <gtest/gtest.h>

#include "push/sender.h"
#include "test_util.h"

namespace sipwake::push::fcm {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kToken =
    "e-3akVQA_Gk:APA91bFgqY-ryZagFwxvoEa5rbaLSr-"
    "r985CLPVtNeYXpHYLcIoYesoPC7s56jZrRp4rlcdPg4WS3EZ4Dii"
    "mlXFmAegx6EglnC2Rf--xYv8_hGJnoJma4yUUXZhdKfw5wFY3kn-kTEMv17uKzHU9zkNVEEcU-SLRVw";
constexpr std::int64_t kNow = 1700000000;

PushBinding binding() {
  auto r = testing::parse(";pn-provider=fcm;pn-param=demo-project;pn-prid=" + std::string(kToken));
  EXPECT_TRUE(r.isOk());
  return *r.value();
}

CallEvent callEvent() {
  CallEvent ev;
  ev.call_id = "call-1@example.com";
  ev.call_uuid = deriveCallUuid(ev.call_id, "sip:bob@example.com");
  ev.caller_uri = "sip:alice@example.com";
  ev.caller_display_name = "Alice";
  ev.callee_aor = "sip:bob@example.com";
  ev.sent_at_ms = 1700000000123;
  return ev;
}

std::string errorBody(int code, std::string_view status, std::string_view error_code,
                      std::string_view message = "") {
  Json e = {{"code", code}, {"status", status}, {"message", message}};
  if (!error_code.empty()) {
    e["details"] = Json::array({{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"},
                                 {"errorCode", error_code}}});
  }
  return Json{{"error", e}}.dump();
}

TEST(FcmRequest, DataOnlyHighPriority) {
  RequestOptions o;
  o.access_token = "ya29.token";
  o.ttl = std::chrono::seconds(45);
  Result<PushRequest> r = buildRequest(binding(), callEvent(), o);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->authority, "fcm.googleapis.com");
  EXPECT_EQ(r->path, "/v1/projects/demo-project/messages:send");
  EXPECT_EQ(r->header("authorization"), "Bearer ya29.token");
  Json m = Json::parse(r->body)["message"];
  EXPECT_EQ(m["token"], kToken);
  EXPECT_EQ(m["android"], (Json{{"priority", "high"}, {"ttl", "45s"}}));
  EXPECT_FALSE(m.contains("notification"));  // data-only
  for (auto& [k, v] : m["data"].items()) EXPECT_TRUE(v.is_string()) << k;
  EXPECT_EQ(m["data"]["event"], "call");
  EXPECT_EQ(m["data"]["call_id"], "call-1@example.com");
  EXPECT_EQ(m["data"]["caller_name"], "Alice");
  EXPECT_EQ(m["data"]["sent_at"], "1700000000123");
  EXPECT_EQ(m["data"]["call_uuid"], callEvent().call_uuid);
}

TEST(FcmRequest, MessageCarriesEventPreviewAndPnMsgStr) {
  auto b = testing::parse(";pn-provider=fcm;pn-param=demo-project;pn-prid=" + std::string(kToken) +
                          ";pn-msg-str=IM_MSG");
  ASSERT_TRUE(b.isOk());
  CallEvent ev = callEvent();
  ev.kind = CallEventKind::kMessage;
  ev.preview = "hello";
  RequestOptions o;
  o.access_token = "ya29.token";
  Result<PushRequest> r = buildRequest(*b.value(), ev, o);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  Json data = Json::parse(r->body)["message"]["data"];
  EXPECT_EQ(data["event"], "message");
  EXPECT_EQ(data["caller_uri"], "sip:alice@example.com");
  EXPECT_EQ(data["preview"], "hello");
  EXPECT_EQ(data["loc_key"], "IM_MSG");
  EXPECT_FALSE(Json::parse(buildRequest(binding(), callEvent(), o)->body)["message"]["data"]
                   .contains("loc_key"));  // calls: no message loc-key
}

TEST(FcmRequest, RefreshIsDataOnlyHighPriorityWithShortTtl) {
  RequestOptions o;
  o.access_token = "ya29.token";
  o.ttl = kRefreshPushTtl;  // what Http2PushSender sets for PushKind::kRefresh
  Result<PushRequest> r = buildRequest(binding(), refreshEvent("sip:bob@example.com"), o);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  Json m = Json::parse(r->body)["message"];
  EXPECT_EQ(m["token"], kToken);
  EXPECT_EQ(m["android"], (Json{{"priority", "high"}, {"ttl", "60s"}}));
  EXPECT_FALSE(m.contains("notification"));
  EXPECT_EQ(m["data"]["event"], "refresh");
  EXPECT_EQ(m["data"]["callee_aor"], "sip:bob@example.com");
  EXPECT_EQ(m["data"]["call_id"], "");
  for (auto& [k, v] : m["data"].items()) EXPECT_TRUE(v.is_string()) << k;
}

TEST(FcmRequest, ProjectFromOptionsAndPreconditions) {
  RequestOptions o;
  o.access_token = "t";
  o.project_id = "configured";
  EXPECT_EQ(buildRequest(binding(), callEvent(), o)->path, "/v1/projects/configured/messages:send");
  PushBinding no_project = binding();
  no_project.project_id.clear();
  o.project_id.clear();
  EXPECT_EQ(buildRequest(no_project, callEvent(), o).status().code(),
            StatusCode::kFailedPrecondition);
  o.project_id = "p";
  o.access_token.clear();
  EXPECT_FALSE(buildRequest(binding(), callEvent(), o).isOk());
  o.access_token = "t";
  PushBinding apns = binding();
  apns.provider = Provider::kApns;
  EXPECT_FALSE(buildRequest(apns, callEvent(), o).isOk());
  o.collapse_key = "call";
  EXPECT_EQ(
      Json::parse(
          buildRequest(binding(), callEvent(), o)->body)["message"]["android"]["collapse_key"],
      "call");
}

TEST(FcmRequest, SizeBound) {
  RequestOptions o;
  o.access_token = "t";
  CallEvent ev = callEvent();
  ev.caller_display_name = std::string(100000, 'x');
  ev.caller_uri = std::string(100000, 'y');
  Result<PushRequest> r = buildRequest(binding(), ev, o);
  ASSERT_TRUE(r.isOk());
  EXPECT_LE(Json::parse(r->body)["message"]["data"].dump().size(), kMaxDataBytes);
}

TEST(FcmResponse, Success) {
  Response r = parseResponse(200, R"({"name":"projects/demo-project/messages/0:123"})", "", kNow);
  EXPECT_EQ(r.action, PushAction::kOk);
  EXPECT_EQ(r.message_name, "projects/demo-project/messages/0:123");
}

TEST(FcmResponse, EveryErrorCode) {
  struct Case {
    int status;
    std::string_view rpc_status;
    std::string_view code;
    PushAction action;
  };
  const Case cases[] = {
      {404, "NOT_FOUND", "UNREGISTERED", PushAction::kRemoveBinding},
      {400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", PushAction::kDrop},
      {429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", PushAction::kRetry},
      {503, "UNAVAILABLE", "UNAVAILABLE", PushAction::kRetry},
      {500, "INTERNAL", "INTERNAL", PushAction::kRetry},
      {401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", PushAction::kFatalConfig},
      {403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", PushAction::kFatalConfig},
      {403, "PERMISSION_DENIED", "", PushAction::kFatalConfig},
      {401, "UNAUTHENTICATED", "", PushAction::kRefreshToken},
      {400, "INVALID_ARGUMENT", "UNSPECIFIED_ERROR", PushAction::kDrop},
  };
  for (const Case& c : cases) {
    Response r = parseResponse(c.status, errorBody(c.status, c.rpc_status, c.code), "", kNow);
    EXPECT_EQ(r.action, c.action) << c.code << "/" << c.rpc_status;
    EXPECT_EQ(r.error_code, c.code);
    EXPECT_EQ(r.rpc_status, c.rpc_status);
  }
}

TEST(FcmResponse, InvalidArgumentAboutTheToken) {
  Response r =
      parseResponse(400,
                    errorBody(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                              "The registration token is not a valid FCM registration token"),
                    "", kNow);
  EXPECT_EQ(r.action, PushAction::kRemoveBinding);
  Json bad_request = {
      {"error",
       {{"code", 400},
        {"status", "INVALID_ARGUMENT"},
        {"message", "Invalid value"},
        {"details", Json::array({{{"@type", "type.googleapis.com/google.rpc.BadRequest"},
                                  {"fieldViolations",
                                   Json::array({{{"field", "message.token"},
                                                 {"description", "Invalid token"}}})}}})}}}};
  EXPECT_EQ(parseResponse(400, bad_request.dump(), "", kNow).action, PushAction::kRemoveBinding);
  bad_request["error"]["details"][0]["fieldViolations"][0]["field"] = "message.data[0].value";
  EXPECT_EQ(parseResponse(400, bad_request.dump(), "", kNow).action, PushAction::kDrop);
}

TEST(FcmResponse, RetryAfter) {
  Response r = parseResponse(503, errorBody(503, "UNAVAILABLE", "UNAVAILABLE"), "17", kNow);
  EXPECT_EQ(r.action, PushAction::kRetry);
  EXPECT_EQ(r.retry_after, std::chrono::seconds(17));
  // IMF-fixdate relative to now: 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
  r = parseResponse(503, errorBody(503, "UNAVAILABLE", "UNAVAILABLE"),
                    "Tue, 14 Nov 2023 22:14:20 GMT", kNow);
  EXPECT_EQ(r.retry_after, std::chrono::seconds(60));
  r = parseResponse(500, errorBody(500, "INTERNAL", "INTERNAL"), "", kNow);
  EXPECT_FALSE(r.retry_after.has_value());  // caller's backoff with jitter
  // Quota: at least a minute even when the hint is shorter or absent.
  r = parseResponse(429, errorBody(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "5", kNow);
  EXPECT_EQ(r.retry_after, std::chrono::seconds(60));
  r = parseResponse(429, errorBody(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "120", kNow);
  EXPECT_EQ(r.retry_after, std::chrono::seconds(120));
  r = parseResponse(429, "", "", kNow);
  EXPECT_EQ(r.action, PushAction::kRetry);
  EXPECT_EQ(r.retry_after, std::chrono::seconds(60));
}

TEST(FcmResponse, ParseRetryAfter) {
  EXPECT_EQ(parseRetryAfter("0", kNow), std::chrono::seconds(0));
  EXPECT_EQ(parseRetryAfter(" 30 ", kNow), std::chrono::seconds(30));
  EXPECT_EQ(parseRetryAfter("99999999999999", kNow), std::chrono::seconds(86400));
  EXPECT_EQ(parseRetryAfter("Tue, 14 Nov 2023 22:13:00 GMT", kNow), std::chrono::seconds(0));
  EXPECT_FALSE(parseRetryAfter("", kNow).has_value());
  EXPECT_FALSE(parseRetryAfter("-5", kNow).has_value());
  EXPECT_FALSE(parseRetryAfter("soon", kNow).has_value());
  EXPECT_FALSE(parseRetryAfter("Tue, 14 Foo 2023 22:13:00 GMT", kNow).has_value());
}

TEST(FcmResponse, GarbageBodies) {
  EXPECT_EQ(parseResponse(500, "<html>", "", kNow).action, PushAction::kRetry);
  EXPECT_EQ(parseResponse(401, "", "", kNow).action, PushAction::kRefreshToken);
  EXPECT_EQ(parseResponse(403, "{}", "", kNow).action, PushAction::kFatalConfig);
  EXPECT_EQ(parseResponse(404, R"({"error":{"status":"NOT_FOUND"}})", "", kNow).action,
            PushAction::kDrop);
  EXPECT_EQ(parseResponse(400, R"({"error":{"details":[{"@type":5},"x",null]}})", "", kNow).action,
            PushAction::kDrop);
  EXPECT_EQ(parseResponse(400, R"({"error":"string"})", "", kNow).action, PushAction::kDrop);
  EXPECT_EQ(parseResponse(200, "not json", "", kNow).action, PushAction::kOk);
}

}  // namespace
}  // namespace sipwake::push::fcm
