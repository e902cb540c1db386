#include "push/apns.h"

#include <gtest/gtest.h>

#include <set>

#include "push/sender.h"
#include "test_util.h"

namespace sipwake::push::apns {
namespace {

using Json = nlohmann::json;
using testing::hexToken;

PushBinding flexisipBinding(bool sandbox = false) {
  std::string p = std::string(";pn-provider=") + (sandbox ? "apns.dev" : "apns") +
                  ";pn-param=ABCD123456.org.example.phone.remote&voip;pn-prid=" + hexToken('1') +
                  ":remote&" + hexToken('2') + ":voip;pn-call-str=IC_MSG;pn-call-snd=ring.caf";
  auto r = testing::parse(p);
  EXPECT_TRUE(r.isOk());
  return *r.value();
}

CallEvent callEvent(CallEventKind kind = CallEventKind::kCall) {
  CallEvent ev;
  ev.kind = kind;
  ev.call_id = "a84b4c76e66710@pc33.atlanta.example.com";
  ev.call_uuid = deriveCallUuid(ev.call_id, "sip:bob@biloxi.example.com");
  ev.caller_uri = "sip:alice@atlanta.example.com";
  ev.caller_display_name = "Alice \"Al\" <Smith>";
  ev.callee_aor = "sip:bob@biloxi.example.com";
  ev.sent_at_ms = 1700000000123;
  return ev;
}

TEST(ApnsRequest, VoipCall) {
  RequestOptions o;
  o.type = PushType::kVoip;
  o.bearer_jwt = "header.claims.sig";
  o.expiration_unix = 1700000030;
  o.collapse_id = "call-1";
  o.apns_id = "123e4567-e89b-12d3-a456-426614174000";
  Result<PushRequest> r = buildRequest(flexisipBinding(), callEvent(), o);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->authority, "api.push.apple.com");
  EXPECT_EQ(r->path, "/3/device/" + hexToken('2'));
  EXPECT_EQ(r->header("authorization"), "bearer header.claims.sig");
  EXPECT_EQ(r->header("apns-push-type"), "voip");
  EXPECT_EQ(r->header("apns-topic"), "org.example.phone.voip");
  EXPECT_EQ(r->header("apns-priority"), "10");
  EXPECT_EQ(r->header("apns-expiration"), "1700000030");
  EXPECT_EQ(r->header("apns-collapse-id"), "call-1");
  EXPECT_EQ(r->header("apns-id"), "123e4567-e89b-12d3-a456-426614174000");
  Json body = Json::parse(r->body);
  EXPECT_EQ(body["aps"], Json::object());
  EXPECT_EQ(body["event"], "call");
  EXPECT_EQ(body["call_id"], "a84b4c76e66710@pc33.atlanta.example.com");
  EXPECT_EQ(body["call_uuid"], callEvent().call_uuid);
  EXPECT_EQ(body["caller_uri"], "sip:alice@atlanta.example.com");
  EXPECT_EQ(body["caller_name"], "Alice \"Al\" <Smith>");  // escaped by the JSON library
  EXPECT_EQ(body["callee_aor"], "sip:bob@biloxi.example.com");
  EXPECT_EQ(body["sent_at"], "1700000000123");
}

TEST(ApnsRequest, CertificateAuthHasNoAuthorizationAndRandomApnsId) {
  RequestOptions o;
  Result<PushRequest> r = buildRequest(flexisipBinding(true), callEvent(), o);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->authority, "api.sandbox.push.apple.com");
  EXPECT_EQ(r->header("authorization"), "");
  EXPECT_EQ(r->header("apns-collapse-id"), "");
  EXPECT_EQ(r->header("apns-expiration"), "0");
  std::string id = std::string(r->header("apns-id"));
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '4');
  EXPECT_NE(buildRequest(flexisipBinding(true), callEvent(), o)->header("apns-id"), id);
}

TEST(ApnsRequest, MissedCallAlert) {
  RequestOptions o;
  o.type = PushType::kAlert;
  o.thread_id = "missed-calls";
  Result<PushRequest> r = buildRequest(flexisipBinding(), callEvent(CallEventKind::kMissed), o);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->path, "/3/device/" + hexToken('1'));  // the remote token
  EXPECT_EQ(r->header("apns-push-type"), "alert");
  EXPECT_EQ(r->header("apns-topic"), "org.example.phone");
  EXPECT_EQ(r->header("apns-priority"), "10");
  Json aps = Json::parse(r->body)["aps"];
  EXPECT_EQ(aps["alert"]["title"], "Missed call");
  EXPECT_EQ(aps["alert"]["body"], "Alice \"Al\" <Smith>");
  EXPECT_FALSE(aps["alert"].contains("loc-key"));  // pn-call-str is for incoming calls
  EXPECT_EQ(aps["sound"], "ring.caf");
  EXPECT_EQ(aps["thread-id"], "missed-calls");
  EXPECT_EQ(Json::parse(r->body)["event"], "missed");
}

TEST(ApnsRequest, AlertCallUsesLinphoneLocKey) {
  RequestOptions o;
  o.type = PushType::kAlert;
  Result<PushRequest> r = buildRequest(flexisipBinding(), callEvent(), o);
  ASSERT_TRUE(r.isOk());
  Json alert = Json::parse(r->body)["aps"]["alert"];
  EXPECT_EQ(alert["loc-key"], "IC_MSG");
  EXPECT_EQ(alert["loc-args"], Json::array({"Alice \"Al\" <Smith>"}));
}

PushBinding linphoneMessageBinding() {
  std::string p = ";pn-provider=apns;pn-param=ABCD123456.org.example.phone.remote&voip;pn-prid=" +
                  hexToken('1') + ":remote&" + hexToken('2') +
                  ":voip;pn-call-str=IC_MSG;pn-msg-str=IM_MSG;pn-msg-snd=msg.caf";
  auto r = testing::parse(p);
  EXPECT_TRUE(r.isOk());
  return *r.value();
}

TEST(ApnsRequest, MessageAlertGoesToTheRemoteTokenWithPnMsgStr) {
  PushBinding b = linphoneMessageBinding();
  EXPECT_EQ(defaultPushType(b, CallEventKind::kMessage), PushType::kAlert);
  RequestOptions o;
  o.type = defaultPushType(b, CallEventKind::kMessage);
  Result<PushRequest> r = buildRequest(b, callEvent(CallEventKind::kMessage), o);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->path, "/3/device/" + hexToken('1'));  // the remote token, never the VoIP one
  EXPECT_EQ(r->header("apns-push-type"), "alert");
  EXPECT_EQ(r->header("apns-topic"), "org.example.phone");
  Json body = Json::parse(r->body);
  EXPECT_EQ(body["event"], "message");
  EXPECT_FALSE(body.contains("preview"));
  EXPECT_EQ(body["aps"]["alert"]["title"], "Message");
  EXPECT_EQ(body["aps"]["alert"]["body"], "Alice \"Al\" <Smith>");
  EXPECT_EQ(body["aps"]["alert"]["loc-key"], "IM_MSG");
  EXPECT_EQ(body["aps"]["alert"]["loc-args"], Json::array({"Alice \"Al\" <Smith>"}));
  EXPECT_EQ(body["aps"]["sound"], "msg.caf");
}

TEST(ApnsRequest, MessagePreviewInPayloadAndAlertBody) {
  CallEvent ev = callEvent(CallEventKind::kMessage);
  ev.preview = std::string(200, 'x');
  RequestOptions o;
  o.type = PushType::kAlert;
  Result<PushRequest> r = buildRequest(linphoneMessageBinding(), ev, o);
  ASSERT_TRUE(r.isOk());
  Json body = Json::parse(r->body);
  EXPECT_EQ(body["preview"], std::string(kMaxPreviewBytes, 'x'));
  EXPECT_EQ(body["aps"]["alert"]["body"],
            "Alice \"Al\" <Smith>: " + std::string(kMaxPreviewBytes, 'x'));
}

TEST(ApnsRequest, BackgroundCancelUsesPriority5) {
  RequestOptions o;
  o.type = PushType::kBackground;
  Result<PushRequest> r = buildRequest(flexisipBinding(), callEvent(CallEventKind::kCancel), o);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->header("apns-push-type"), "background");
  EXPECT_EQ(r->header("apns-priority"), "5");
  EXPECT_EQ(Json::parse(r->body)["aps"], (Json{{"content-available", 1}}));
  o.priority = 10;
  EXPECT_FALSE(buildRequest(flexisipBinding(), callEvent(), o).isOk());
}

TEST(ApnsRequest, RefreshIsABackgroundPushToTheRemoteTokenOnTheBundleTopic) {
  PushBinding b = flexisipBinding();  // Linphone "tok:remote&tok:voip"
  RequestOptions o;
  o.type = defaultPushType(b, CallEventKind::kRefresh);
  Result<PushRequest> r = buildRequest(b, refreshEvent("sip:bob@biloxi.example.com"), o);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->path, "/3/device/" + hexToken('1'));  // the remote token, never the VoIP one
  EXPECT_EQ(r->header("apns-push-type"), "background");
  EXPECT_EQ(r->header("apns-priority"), "5");
  EXPECT_EQ(r->header("apns-topic"), "org.example.phone");
  EXPECT_EQ(r->header("apns-collapse-id"), "");
  Json body = Json::parse(r->body);
  EXPECT_EQ(body["aps"], (Json{{"content-available", 1}}));  // no alert, sound or badge
  EXPECT_EQ(body["event"], "refresh");
  EXPECT_EQ(body["callee_aor"], "sip:bob@biloxi.example.com");
  EXPECT_EQ(body["call_id"], "");
  EXPECT_EQ(body["call_uuid"], "");
  EXPECT_EQ(body["caller_uri"], "");
  EXPECT_EQ(body["caller_name"], "");

  PushBinding voip_only = b;  // a PushKit token takes VoIP pushes only
  voip_only.message_token.clear();
  EXPECT_FALSE(voip_only.canWakeWithoutCall());
  EXPECT_TRUE(b.canWakeWithoutCall());
  EXPECT_EQ(buildRequest(voip_only, refreshEvent("sip:bob@biloxi.example.com"), o).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST(ApnsRequest, DefaultPushTypePolicy) {
  PushBinding b = flexisipBinding();
  EXPECT_EQ(defaultPushType(b, CallEventKind::kCall), PushType::kVoip);
  EXPECT_EQ(defaultPushType(b, CallEventKind::kMissed), PushType::kAlert);
  EXPECT_EQ(defaultPushType(b, CallEventKind::kCancel), PushType::kBackground);
  EXPECT_EQ(defaultPushType(b, CallEventKind::kAnsweredElsewhere), PushType::kBackground);
  EXPECT_EQ(defaultPushType(b, CallEventKind::kRefresh), PushType::kBackground);
  b.voip_token.clear();
  EXPECT_EQ(defaultPushType(b, CallEventKind::kCall), PushType::kAlert);
}

TEST(ApnsRequest, Preconditions) {
  PushBinding b = flexisipBinding();
  RequestOptions o;
  o.collapse_id = std::string(65, 'x');
  EXPECT_EQ(buildRequest(b, callEvent(), o).status().code(), StatusCode::kInvalidArgument);
  o.collapse_id = std::string(64, 'x');
  EXPECT_TRUE(buildRequest(b, callEvent(), o).isOk());
  o = {};
  o.priority = 7;
  EXPECT_FALSE(buildRequest(b, callEvent(), o).isOk());
  PushBinding no_voip = b;
  no_voip.voip_token.clear();
  EXPECT_EQ(buildRequest(no_voip, callEvent(), RequestOptions{}).status().code(),
            StatusCode::kFailedPrecondition);
  PushBinding fcm = b;
  fcm.provider = Provider::kFcm;
  EXPECT_FALSE(buildRequest(fcm, callEvent(), RequestOptions{}).isOk());
}

TEST(ApnsRequest, PayloadSizeLimits) {
  // Field truncation keeps realistic events far below the limits even with huge inputs...
  CallEvent ev = callEvent();
  ev.caller_display_name = std::string(10000, 'n');
  ev.caller_uri = "sip:" + std::string(10000, 'u') + "@x";
  Result<PushRequest> r = buildRequest(flexisipBinding(), ev, RequestOptions{});
  ASSERT_TRUE(r.isOk());
  EXPECT_LE(r->body.size(), kMaxVoipPayloadBytes);
  EXPECT_EQ(Json::parse(r->body)["caller_name"].get<std::string>().size(), kMaxDisplayNameBytes);
  // ...but a body over the limit is refused: 4096 for alerts, 5120 for VoIP.
  RequestOptions alert;
  alert.type = PushType::kAlert;
  alert.alert.body = std::string(4000, 'b');
  Result<PushRequest> big = buildRequest(flexisipBinding(), ev, alert);
  ASSERT_FALSE(big.isOk());
  EXPECT_EQ(big.status().code(), StatusCode::kOutOfRange);
  alert.alert.body = std::string(2000, 'b');
  Result<PushRequest> fits = buildRequest(flexisipBinding(), callEvent(), alert);
  ASSERT_TRUE(fits.isOk());
  EXPECT_LE(fits->body.size(), kMaxPayloadBytes);
}

TEST(ApnsRequest, InvalidUtf8NeverThrows) {
  CallEvent ev = callEvent();
  ev.caller_display_name = "bad \xff\xfe utf8";
  Result<PushRequest> r = buildRequest(flexisipBinding(), ev, RequestOptions{});
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(Json::parse(r->body, nullptr, false).is_discarded());
}

TEST(ApnsResponse, Success) {
  std::vector<HttpHeader> h = {{"apns-id", "ABC"}};
  Response r = parseResponse(200, "", h);
  EXPECT_EQ(r.action, PushAction::kOk);
  EXPECT_EQ(r.apns_id, "ABC");
}

TEST(ApnsResponse, EveryDocumentedReason) {
  const std::set<std::string_view> documented = {"BadCollapseId",
                                                 "BadDeviceToken",
                                                 "BadExpirationDate",
                                                 "BadMessageId",
                                                 "BadPriority",
                                                 "BadTopic",
                                                 "DeviceTokenNotForTopic",
                                                 "DuplicateHeaders",
                                                 "IdleTimeout",
                                                 "InvalidPushType",
                                                 "MissingDeviceToken",
                                                 "MissingTopic",
                                                 "PayloadEmpty",
                                                 "TopicDisallowed",
                                                 "BadCertificate",
                                                 "BadCertificateEnvironment",
                                                 "ExpiredProviderToken",
                                                 "Forbidden",
                                                 "InvalidProviderToken",
                                                 "MissingProviderToken",
                                                 "UnrelatedKeyIdInToken",
                                                 "BadEnvironmentKeyIdInToken",
                                                 "BadPath",
                                                 "MethodNotAllowed",
                                                 "ExpiredToken",
                                                 "Unregistered",
                                                 "PayloadTooLarge",
                                                 "TooManyProviderTokenUpdates",
                                                 "TooManyRequests",
                                                 "InternalServerError",
                                                 "ServiceUnavailable",
                                                 "Shutdown"};
  std::set<std::string_view> known;
  for (const ReasonInfo& info : knownReasons()) {
    known.insert(info.reason);
    std::string body = Json{{"reason", info.reason}}.dump();
    Response r = parseResponse(info.status, body, {});
    EXPECT_EQ(r.action, info.action) << info.reason;
    EXPECT_EQ(r.reason, info.reason);
  }
  for (std::string_view reason : documented) EXPECT_TRUE(known.count(reason)) << reason;
}

TEST(ApnsResponse, KeyMappings) {
  auto action = [](int status, std::string_view reason) {
    return parseResponse(status, Json{{"reason", reason}}.dump(), {}).action;
  };
  EXPECT_EQ(action(400, "BadDeviceToken"), PushAction::kRemoveBinding);
  EXPECT_EQ(action(400, "DeviceTokenNotForTopic"), PushAction::kRemoveBinding);
  EXPECT_EQ(action(400, "BadPayload"), PushAction::kDrop);  // unknown 400
  EXPECT_EQ(action(400, "PayloadEmpty"), PushAction::kDrop);
  EXPECT_EQ(action(400, "BadTopic"), PushAction::kFatalConfig);
  EXPECT_EQ(action(403, "ExpiredProviderToken"), PushAction::kRefreshToken);
  EXPECT_EQ(action(403, "InvalidProviderToken"), PushAction::kFatalConfig);
  EXPECT_EQ(action(403, "BadCertificate"), PushAction::kFatalConfig);
  EXPECT_EQ(action(429, "TooManyRequests"), PushAction::kRetry);
  EXPECT_EQ(action(429, "TooManyProviderTokenUpdates"), PushAction::kRetry);
  EXPECT_EQ(action(500, "InternalServerError"), PushAction::kRetry);
  EXPECT_EQ(action(503, "ServiceUnavailable"), PushAction::kRetry);
  Response shut = parseResponse(503, R"({"reason":"Shutdown"})", {});
  EXPECT_EQ(shut.action, PushAction::kRetry);
  EXPECT_TRUE(shut.reconnect);
  Response gone = parseResponse(410, R"({"reason":"Unregistered","timestamp":1700000000999})", {});
  EXPECT_EQ(gone.action, PushAction::kRemoveBinding);
  EXPECT_EQ(gone.timestamp_ms, 1700000000999);
  // No or garbage body: decided by status.
  EXPECT_EQ(parseResponse(410, "", {}).action, PushAction::kRemoveBinding);
  EXPECT_EQ(parseResponse(502, "<html>", {}).action, PushAction::kRetry);
  EXPECT_EQ(parseResponse(403, "[]", {}).action, PushAction::kFatalConfig);
  EXPECT_EQ(parseResponse(400, R"({"reason":5})", {}).action, PushAction::kDrop);
}

}  // namespace
}  // namespace sipwake::push::apns
