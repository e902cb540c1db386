#include <gtest/gtest.h>

#include <set>

#include "push/payload.h"
#include "push/sender.h"
#include "push/webhook.h"
#include "test_util.h"

namespace sipwake::push {
namespace {

using Json = nlohmann::json;

TEST(Payload, DeterministicCallUuid) {
  std::string a = deriveCallUuid("c1@host", "sip:bob@example.com", "salt");
  EXPECT_EQ(a, deriveCallUuid("c1@host", "sip:bob@example.com", "salt"));  // call and cancel agree
  EXPECT_NE(a, deriveCallUuid("c2@host", "sip:bob@example.com", "salt"));
  EXPECT_NE(a, deriveCallUuid("c1@host", "sip:carol@example.com", "salt"));
  EXPECT_NE(a, deriveCallUuid("c1@host", "sip:bob@example.com", "other"));
  // No ambiguity from concatenation.
  EXPECT_NE(deriveCallUuid("ab", "c"), deriveCallUuid("a", "bc"));
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[8], '-');
  EXPECT_EQ(a[14], '8');                                          // version 8
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos);  // variant 10xx
}

TEST(Payload, RandomUuidV4) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string u = randomUuidV4();
    ASSERT_EQ(u.size(), 36u);
    EXPECT_EQ(u[14], '4');
    EXPECT_NE(std::string("89ab").find(u[19]), std::string::npos);
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(Payload, TruncateUtf8) {
  EXPECT_EQ(truncateUtf8("abc", 5), "abc");
  EXPECT_EQ(truncateUtf8("abcdef", 3), "abc");
  std::string e = "a\xc3\xa9z";        // a é z
  EXPECT_EQ(truncateUtf8(e, 2), "a");  // never half a character
  EXPECT_EQ(truncateUtf8(e, 3), "a\xc3\xa9");
  EXPECT_EQ(truncateUtf8("\xe2\x82\xac\xe2\x82\xac", 4), "\xe2\x82\xac");
}

TEST(Payload, EventNames) {
  EXPECT_EQ(callEventName(CallEventKind::kCall), "call");
  EXPECT_EQ(callEventName(CallEventKind::kCancel), "cancel");
  EXPECT_EQ(callEventName(CallEventKind::kMissed), "missed");
  EXPECT_EQ(callEventName(CallEventKind::kAnsweredElsewhere), "answered_elsewhere");
  EXPECT_EQ(callEventName(CallEventKind::kRefresh), "refresh");
  EXPECT_EQ(callEventName(CallEventKind::kMessage), "message");
  EXPECT_EQ(pushKindName(PushKind::kRefresh), "refresh");
}

TEST(Payload, RefreshEventHasNoCall) {
  CallEvent ev = refreshEvent("sip:bob@example.com");
  EXPECT_EQ(ev.kind, CallEventKind::kRefresh);
  EXPECT_EQ(ev.callee_aor, "sip:bob@example.com");
  EXPECT_EQ(ev.call_id, "");
  EXPECT_EQ(ev.call_uuid, "");
  EXPECT_EQ(ev.caller_uri, "");
  EXPECT_EQ(ev.caller_display_name, "");
}

TEST(Webhook, DocumentedBody) {
  auto r = testing::parse(";pn-provider=apns;pn-param=ABCD123456.com.example.phone.voip;pn-prid=" +
                          testing::hexToken());
  ASSERT_TRUE(r.isOk());
  const PushBinding& b = *r.value();
  CallEvent ev;
  ev.kind = CallEventKind::kCancel;
  ev.call_id = "c1@host";
  ev.call_uuid = deriveCallUuid(ev.call_id, "sip:bob@example.com");
  ev.caller_uri = "sip:alice@example.com";
  ev.caller_display_name = "Alice \"quoted\"\n";
  ev.callee_aor = "sip:bob@example.com";
  ev.sent_at_ms = 1700000000123;
  Json body = Json::parse(webhook::buildBody(b, ev));
  Json expected = {
      {"version", 1},
      {"event", "cancel"},
      {"call_id", "c1@host"},
      {"call_uuid", ev.call_uuid},
      {"caller", {{"uri", "sip:alice@example.com"}, {"display_name", "Alice \"quoted\"\n"}}},
      {"callee_aor", "sip:bob@example.com"},
      {"provider", "apns"},
      {"sandbox", false},
      {"app",
       {{"id", "com.example.phone"},
        {"team_id", "ABCD123456"},
        {"project_id", ""},
        {"apns_topic", "com.example.phone.voip"}}},
      {"tokens", {{"voip", testing::hexToken()}, {"message", ""}}},
      {"device_key", b.deviceKey()},
      {"sent_at", 1700000000123},
  };
  EXPECT_EQ(body, expected);
  PushRequest req = webhook::buildRequest(b, ev, "hooks.example.net", "/push", "s3cret");
  EXPECT_EQ(req.authority, "hooks.example.net");
  EXPECT_EQ(req.path, "/push");
  EXPECT_EQ(req.header("authorization"), "Bearer s3cret");
  EXPECT_EQ(req.header("content-type"), "application/json");
  EXPECT_EQ(webhook::buildRequest(b, ev, "h", "/", "").header("authorization"), "");
}

TEST(Webhook, RefreshGoesToTheBundleTopicWithNoCall) {
  auto r = testing::parse(
      ";pn-provider=apns;pn-param=ABCD123456.com.example.phone.remote&voip;pn-prid=" +
      testing::hexToken('1') + ":remote&" + testing::hexToken('2') + ":voip");
  ASSERT_TRUE(r.isOk());
  const PushBinding& b = *r.value();
  CallEvent ev = refreshEvent("sip:bob@example.com");
  ev.sent_at_ms = 1700000000123;
  Json body = Json::parse(webhook::buildBody(b, ev));
  EXPECT_EQ(body["event"], "refresh");
  EXPECT_EQ(body["call_id"], "");
  EXPECT_EQ(body["call_uuid"], "");
  EXPECT_EQ(body["caller"], (Json{{"uri", ""}, {"display_name", ""}}));
  EXPECT_EQ(body["callee_aor"], "sip:bob@example.com");
  EXPECT_EQ(body["app"]["apns_topic"], "com.example.phone");  // a background push, not VoIP
  EXPECT_EQ(body["tokens"]["message"], testing::hexToken('1'));
  ev.kind = CallEventKind::kCall;  // the same device's call goes to the VoIP topic
  EXPECT_EQ(Json::parse(webhook::buildBody(b, ev))["app"]["apns_topic"], "com.example.phone.voip");
  ev.kind = CallEventKind::kMessage;  // a message is an alert: the bundle id, never VoIP
  Json message = Json::parse(webhook::buildBody(b, ev));
  EXPECT_EQ(message["event"], "message");
  EXPECT_EQ(message["app"]["apns_topic"], "com.example.phone");
  EXPECT_FALSE(message.contains("preview"));
  EXPECT_FALSE(message.contains("loc_key"));
}

TEST(Webhook, StatusActions) {
  EXPECT_EQ(webhook::actionForStatus(200), PushAction::kOk);
  EXPECT_EQ(webhook::actionForStatus(204), PushAction::kOk);
  EXPECT_EQ(webhook::actionForStatus(410), PushAction::kRemoveBinding);
  EXPECT_EQ(webhook::actionForStatus(404), PushAction::kRemoveBinding);
  EXPECT_EQ(webhook::actionForStatus(401), PushAction::kFatalConfig);
  EXPECT_EQ(webhook::actionForStatus(429), PushAction::kRetry);
  EXPECT_EQ(webhook::actionForStatus(503), PushAction::kRetry);
  EXPECT_EQ(webhook::actionForStatus(400), PushAction::kDrop);
  EXPECT_EQ(webhook::actionForStatus(403), PushAction::kFatalConfig);
  EXPECT_EQ(webhook::actionForStatus(408), PushAction::kRetry);
  EXPECT_EQ(webhook::actionForStatus(500), PushAction::kRetry);
  EXPECT_EQ(webhook::actionForStatus(422), PushAction::kDrop);
  EXPECT_EQ(webhook::actionForStatus(299), PushAction::kOk);
  EXPECT_EQ(webhook::actionForStatus(301), PushAction::kDrop);  // redirects are not followed
}

TEST(Webhook, FcmBodyHasNoApnsTopicAndTruncatesLongFields) {
  auto r = testing::parse(";pn-provider=fcm;pn-param=my-project;pn-prid=fcm-token-" +
                          std::string(40, 'q'));
  ASSERT_TRUE(r.isOk());
  const PushBinding& b = *r.value();
  CallEvent ev;
  ev.kind = CallEventKind::kAnsweredElsewhere;
  ev.call_id = "c2@host";
  ev.call_uuid = deriveCallUuid(ev.call_id, "sip:bob@example.com");
  ev.caller_uri = "sip:" + std::string(600, 'u') + "@example.com";
  ev.caller_display_name = std::string(127, 'n') + "\xc3\xa9";  // é straddles byte 128
  ev.callee_aor = "sip:bob@example.com";
  ev.sent_at_ms = 1700000000999;
  Json body = Json::parse(webhook::buildBody(b, ev));
  EXPECT_EQ(body["event"], "answered_elsewhere");
  EXPECT_EQ(body["provider"], "fcm");
  EXPECT_EQ(body["app"]["project_id"], "my-project");
  EXPECT_EQ(body["app"]["apns_topic"], "");
  EXPECT_EQ(body["tokens"]["voip"], "");
  EXPECT_EQ(body["tokens"]["message"], "fcm-token-" + std::string(40, 'q'));
  EXPECT_EQ(body["caller"]["uri"].get<std::string>().size(), 512u);
  EXPECT_EQ(body["caller"]["display_name"], std::string(127, 'n'));  // no half character
}

}  // namespace
}  // namespace sipwake::push
