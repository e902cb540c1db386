#include "push/push_params.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace sipwake::push {
namespace {

using testing::hexToken;
using testing::parse;
using testing::splitParams;

// The ABTO seed's Contact, verbatim (header params after the URI).
constexpr std::string_view kAbtoFcmToken =
    "e-3akVQA_Gk:APA91bFgqY-ryZagFwxvoEa5rbaLSr-"
    "r985CLPVtNeYXpHYLcIoYesoPC7s56jZrRp4rlcdPg4WS3EZ4Dii"
    "mlXFmAegx6EglnC2Rf--xYv8_hGJnoJma4yUUXZhdKfw5wFY3kn-kTEMv17uKzHU9zkNVEEcU-SLRVw";
constexpr std::string_view kAbtoContactParams =
    ";push-token-type=firebase;push-token-app=hero voip;push-token-id=e-3akVQA_Gk%3aAPA91bFgqY-"
    "ryZagFwxvoEa5rbaLSr-r985CLPVtNeYXpHYLcIoYesoPC7s56jZrRp4rlcdPg4WS3EZ4DiimlXFmAegx6EglnC2Rf--"
    "xYv8_hGJnoJma4yUUXZhdKfw5wFY3kn-kTEMv17uKzHU9zkNVEEcU-SLRVw";

PushBinding ok(const PushParamsResult& r) {
  EXPECT_TRUE(r.isOk()) << (r.isOk() ? "" : r.error().reason);
  if (!r.isOk() || !r.value()) {
    ADD_FAILURE() << "no binding";
    return {};
  }
  return *r.value();
}

void expectError(const PushParamsResult& r, int code, std::string_view needle) {
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.error().sip_code, code);
  EXPECT_NE(r.error().reason.find(needle), std::string::npos) << r.error().reason;
}

TEST(PushParams, NoPushParamsIsNullopt) {
  auto r = parse(";transport=tcp;ob;+sip.instance=\"<urn:uuid:1>\";reg-id=1;expires=60");
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(r.value().has_value());
  // An app-id alone identifies no device: no push, not an error.
  auto r2 = parse(";app-id=com.example.app");
  ASSERT_TRUE(r2.isOk());
  EXPECT_FALSE(r2.value().has_value());
}

TEST(PushParams, AbtoSeedExample) {
  PushBinding b = ok(parse(kAbtoContactParams));
  EXPECT_EQ(b.dialect, Dialect::kAbto);
  EXPECT_EQ(b.provider, Provider::kFcm);
  EXPECT_EQ(b.app_id, "hero voip");
  EXPECT_EQ(b.message_token, kAbtoFcmToken);  // %3a unescaped
  EXPECT_TRUE(b.voip_token.empty());
  EXPECT_EQ(b.callToken(), kAbtoFcmToken);
  EXPECT_FALSE(b.sandbox);
}

TEST(PushParams, AbtoSeedIosSdkForm) {
  // The seed's iOS/Android SDK snippets use "hero_voip".
  std::string s(kAbtoContactParams);
  s.replace(s.find("hero voip"), 9, "hero_voip");
  EXPECT_EQ(ok(parse(s)).app_id, "hero_voip");
}

TEST(PushParams, AbtoApple) {
  std::string p =
      ";push-token-type=apple;push-token-app=com.abto.hero;push-token-id=" + std::string(64, 'A');
  PushBinding b = ok(parse(p));
  EXPECT_EQ(b.provider, Provider::kApns);
  EXPECT_EQ(b.app_id, "com.abto.hero");
  EXPECT_EQ(b.voip_token, std::string(64, 'a'));  // normalised to lower case
  EXPECT_TRUE(
      ok(parse(";push-token-type=apns;push-token-app=com.abto.hero;push-token-id=" + hexToken()))
          .callsUseVoip());
}

TEST(PushParams, AbtoErrors) {
  expectError(parse(";push-token-type=firebase;push-token-app=x"), 400, "push-token-id missing");
  expectError(parse(";push-token-app=x;push-token-id=abcdefabcdefabcdefabcdef"), 400,
              "push-token-type missing");
  expectError(parse(";push-token-type=huawei;push-token-app=x;push-token-id=abcdefabcdefabcdef"),
              555, "Push Notification Service Not Supported");
  expectError(parse(";push-token-type=firebase;push-token-app=x;push-token-id=e-3akVQA_Gk%3"), 400,
              "push-token-id has a bad %-escape");
  expectError(
      parse(";push-token-type=firebase;push-token-app=x;push-token-id=e-3akVQA_Gk%zzAPA91b"), 400,
      "push-token-id has a bad %-escape");
  expectError(parse(";push-token-type=apple;push-token-id=" + hexToken()), 400,
              "push-token-app missing");
  expectError(parse(";push-token-type=apple;push-token-app=a.b;push-token-id=xyz"), 400,
              "push-token-id is not a hex APNs token");
}

TEST(PushParams, PjsipSeedExample) {
  // react-native-pjsip README: ";app-id=****;pn-voip-tok=XXXXXXXXX;pn-im-tok=XXXXXXXXXX" with
  // real values.
  std::string p =
      ";app-id=com.example.phone;pn-voip-tok=" + hexToken('1') + ";pn-im-tok=" + hexToken('2');
  PushBinding b = ok(parse(p));
  EXPECT_EQ(b.dialect, Dialect::kPjsip);
  EXPECT_EQ(b.provider, Provider::kApns);
  EXPECT_EQ(b.app_id, "com.example.phone");
  EXPECT_EQ(b.voip_token, hexToken('1'));
  EXPECT_EQ(b.message_token, hexToken('2'));
  // The README's placeholders are not tokens.
  expectError(parse(";app-id=****;pn-voip-tok=XXXXXXXXX;pn-im-tok=XXXXXXXXXX"), 400, "app-id");
  expectError(parse(";app-id=com.example.phone;pn-voip-tok=XXXXXXXXX"), 400,
              "pn-voip-tok is not a hex APNs token");
}

TEST(PushParams, PjsipPlatformAndErrors) {
  PushBinding b = ok(parse(";app-id=com.example.phone;pn-platform=android;pn-voip-tok=" +
                           std::string(kAbtoFcmToken)));
  EXPECT_EQ(b.provider, Provider::kFcm);
  EXPECT_EQ(b.message_token, kAbtoFcmToken);
  expectError(parse(";app-id=com.x;pn-platform=blackberry;pn-voip-tok=" + hexToken()), 555, "");
  expectError(parse(";app-id=com.x;pn-platform=ios"), 400, "pn-voip-tok missing");
  expectError(parse(";pn-voip-tok=" + hexToken()), 400, "app-id missing");
}

TEST(PushParams, LinphoneLegacy) {
  std::string p = ";app-id=org.linphone.phone.dev;pn-type=apple;pn-tok=" + hexToken('B') +
                  ";pn-msg-str=IM_MSG;pn-call-str=IC_MSG;pn-call-snd=ring.caf;pn-msg-snd=msg.caf;"
                  "pn-silent=1;pn-timeout=0";
  PushBinding b = ok(parse(p));
  EXPECT_EQ(b.dialect, Dialect::kLinphoneLegacy);
  EXPECT_EQ(b.provider, Provider::kApns);
  EXPECT_TRUE(b.sandbox);
  EXPECT_EQ(b.app_id, "org.linphone.phone");
  EXPECT_EQ(b.message_token, hexToken('b'));
  EXPECT_TRUE(b.voip_token.empty());
  EXPECT_EQ(b.linphone.call_str, "IC_MSG");
  EXPECT_EQ(b.linphone.msg_str, "IM_MSG");
  EXPECT_EQ(b.linphone.call_snd, "ring.caf");
  EXPECT_EQ(b.linphone.msg_snd, "msg.caf");
  EXPECT_TRUE(b.linphone.silent);
  EXPECT_EQ(b.linphone.timeout, 0u);

  PushBinding v =
      ok(parse(";app-id=org.linphone.phone.voip.prod;pn-type=apple;pn-tok=" + hexToken()));
  EXPECT_FALSE(v.sandbox);
  EXPECT_EQ(v.app_id, "org.linphone.phone");
  EXPECT_EQ(v.voip_token, hexToken());

  for (std::string_view type : {"android", "firebase", "google"}) {
    PushBinding f = ok(parse(";app-id=929724111839;pn-type=" + std::string(type) +
                             ";pn-tok=" + std::string(kAbtoFcmToken)));
    EXPECT_EQ(f.provider, Provider::kFcm) << type;
    EXPECT_EQ(f.app_id, "929724111839");
  }
  expectError(parse(";app-id=a.b;pn-type=apple"), 400, "pn-tok missing");
  expectError(parse(";app-id=a.b;pn-tok=" + hexToken()), 400, "pn-type missing");
  expectError(parse(";app-id=a.b;pn-type=windows;pn-tok=" + hexToken()), 555, "");
  expectError(parse(";app-id=a.b;pn-type=apple;pn-tok=" + hexToken() + ";pn-silent=maybe"), 400,
              "pn-silent");
  expectError(parse(";app-id=a.b;pn-type=apple;pn-tok=" + hexToken() + ";pn-timeout=x"), 400,
              "pn-timeout");
}

TEST(PushParams, Rfc8599Apns) {
  std::string p =
      ";pn-provider=apns;pn-param=ABCD123456.com.example.phone.voip;pn-prid=" + hexToken('C');
  PushBinding b = ok(parse(p));
  EXPECT_EQ(b.dialect, Dialect::kRfc8599);
  EXPECT_EQ(b.provider, Provider::kApns);
  EXPECT_FALSE(b.sandbox);
  EXPECT_EQ(b.team_id, "ABCD123456");
  EXPECT_EQ(b.app_id, "com.example.phone");
  EXPECT_EQ(b.voip_token, hexToken('c'));
  EXPECT_TRUE(b.message_token.empty());

  PushBinding r = ok(parse(
      ";pn-provider=apns;pn-param=ABCD123456.com.example.phone.remote;pn-prid=" + hexToken()));
  EXPECT_EQ(r.message_token, hexToken());
  EXPECT_TRUE(r.voip_token.empty());
}

TEST(PushParams, Rfc8599FlexisipTwoTokensAndSandbox) {
  std::string p =
      ";pn-provider=apns.dev;pn-param=ABCD123456.org.linphone.phone.remote&voip;"
      "pn-prid=" +
      hexToken('1') + ":remote&" + hexToken('2') + ":voip";
  PushBinding b = ok(parse(p));
  EXPECT_TRUE(b.sandbox);
  EXPECT_EQ(b.app_id, "org.linphone.phone");
  EXPECT_EQ(b.message_token, hexToken('1'));
  EXPECT_EQ(b.voip_token, hexToken('2'));
  EXPECT_EQ(b.callToken(), hexToken('2'));
  // Escaped '&' and ':' (pvalue charset) decode to the same thing.
  std::string escaped =
      ";pn-provider=apns.dev;pn-param=ABCD123456.org.linphone.phone.remote%26voip;"
      "pn-prid=" +
      hexToken('1') + "%3Aremote%26" + hexToken('2') + "%3Avoip";
  EXPECT_EQ(ok(parse(escaped)), b);
}

TEST(PushParams, Rfc8599ApnsErrors) {
  std::string tok = hexToken();
  expectError(parse(";pn-provider=apns;pn-prid=" + tok), 400, "pn-param missing");
  expectError(parse(";pn-provider=apns;pn-param=ABCD123456.com.x.voip"), 400, "pn-prid missing");
  expectError(parse(";pn-provider=apns;pn-param=com.voip;pn-prid=" + tok), 400, "pn-param");
  expectError(parse(";pn-provider=apns;pn-param=ABCD.com.x.pager;pn-prid=" + tok), 400,
              "pn-param service must be voip, remote or remote&voip");
  expectError(parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=nothex"), 400,
              "pn-prid is not a hex APNs token");
  expectError(parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=abcdef"), 400,
              "pn-prid has a bad APNs token length");
  expectError(parse(";pn-provider=apns;pn-param=ABCD.com.x.remote&voip;pn-prid=" + tok), 400,
              "pn-prid must be tok:remote&tok:voip");
  expectError(parse(";pn-provider=apns;pn-param=ABCD.com.x.remote&voip;pn-prid=" + tok + ":remote"),
              400, "pn-prid has no voip token");
  expectError(parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=" + tok + ":push"), 400,
              "pn-prid has an unknown token type");
  expectError(
      parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=" + tok + ":voip&" + tok + ":voip"),
      400, "pn-prid repeats a token type");
  expectError(parse(";pn-provider=;pn-prid=" + tok), 400, "pn-provider empty");
  expectError(parse(";pn-param=ABCD.com.x.voip;pn-prid=" + tok), 400, "pn-provider missing");
}

TEST(PushParams, Rfc8599Fcm) {
  std::string p = ";pn-provider=fcm;pn-param=my-project-123;pn-prid=" + std::string(kAbtoFcmToken);
  PushBinding b = ok(parse(p));
  EXPECT_EQ(b.provider, Provider::kFcm);
  EXPECT_EQ(b.project_id, "my-project-123");
  EXPECT_EQ(b.message_token, kAbtoFcmToken);  // the token's own ':' is kept
  EXPECT_EQ(b.appKey(), "my-project-123");
  // Flexisip-style label tolerated; aliases mean fcm.
  for (std::string_view alias : {"firebase", "google", "android", "FCM"}) {
    PushBinding a = ok(parse(";pn-provider=" + std::string(alias) +
                             ";pn-prid=" + std::string(kAbtoFcmToken) + ":remote"));
    EXPECT_EQ(a.provider, Provider::kFcm) << alias;
    EXPECT_EQ(a.message_token, kAbtoFcmToken);
    EXPECT_TRUE(a.project_id.empty());
  }
  expectError(parse(";pn-provider=fcm;pn-prid=abc$def0123456789012"), 400,
              "pn-prid has a character not allowed in an FCM token");
  expectError(parse(";pn-provider=fcm;pn-prid=short"), 400, "pn-prid has a bad FCM token length");
  expectError(parse(";pn-provider=fcm;pn-param=bad/project;pn-prid=" + std::string(kAbtoFcmToken)),
              400, "pn-param");
  expectError(parse(";pn-provider=fcm;pn-prid=aaaaaaaaaaaaaaaaaaaa&bbbbbbbbbbbbbbbbbbbbbbbbb"), 400,
              "pn-prid lists several FCM tokens");
}

TEST(PushParams, Rfc8599Webpush) {
  PushBinding b =
      ok(parse(";pn-provider=webpush;pn-prid=https%3A%2F%2Fpush.example.net%2Fsub%2F123"));
  EXPECT_EQ(b.provider, Provider::kWebpush);
  EXPECT_EQ(b.message_token, "https://push.example.net/sub/123");
  expectError(parse(";pn-provider=webpush;pn-prid=http://x.example/1"), 400,
              "pn-prid must be an https URI");
}

TEST(PushParams, UnknownProviderIs555) {
  expectError(parse(";pn-provider=hms;pn-prid=abc"), 555,
              "Push Notification Service Not Supported");
  expectError(parse(";pn-provider=apns.prod.xx;pn-prid=abc"), 555, "");
}

TEST(PushParams, ServesPredicateDecides555) {
  ServesFn only_fcm = [](const PushBinding& b) {
    return b.provider == Provider::kFcm && b.appKey() == "my-project";
  };
  std::string fcm = ";pn-provider=fcm;pn-param=my-project;pn-prid=" + std::string(kAbtoFcmToken);
  EXPECT_TRUE(parse(fcm, only_fcm).isOk());
  expectError(
      parse(";pn-provider=fcm;pn-param=other;pn-prid=" + std::string(kAbtoFcmToken), only_fcm), 555,
      "Not Supported");
  expectError(parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=" + hexToken(), only_fcm),
              555, "Not Supported");
  // Malformed beats unserved: the client learns what is wrong.
  expectError(parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=zz", only_fcm), 400,
              "pn-prid");
}

TEST(PushParams, UriAndHeaderParamsBothAccepted) {
  // pn-provider/pn-param inside the URI, pn-prid as header param, and a duplicate that agrees.
  std::string tok = hexToken();
  std::vector<RawParam> ps = {
      {"transport", "tls", true},
      {"pn-provider", "apns", true},
      {"pn-param", "ABCD123456.com.example.phone.voip", true},
      {"PN-PRID", tok, true},
      {"pn-provider", "apns", true},
      {"+sip.pnsreg", "", false},
  };
  auto r = parsePushParams(ps);
  PushBinding b = ok(r);
  EXPECT_TRUE(b.has_pnsreg);
  EXPECT_EQ(b.voip_token, tok);
  // A disagreeing duplicate is a 400.
  std::string other = hexToken('f');
  ps.push_back({"pn-prid", other, true});
  expectError(parsePushParams(ps), 400, "pn-prid conflicting");
}

TEST(PushParams, QuotedHeaderParamValue) {
  PushBinding b = ok(
      parse(";pn-provider=\"apns\";pn-param=\"ABCD.com.x.voip\";pn-prid=\"" + hexToken() + "\""));
  EXPECT_EQ(b.app_id, "com.x");
}

TEST(PushParams, ControlCharactersAndOversize) {
  expectError(parse(";pn-provider=apns%0d%0aX;pn-prid=a"), 400,
              "pn-provider has control characters");
  expectError(parse(";pn-provider=fcm;pn-prid=" + std::string(5000, 'a')), 400, "pn-prid too long");
}

TEST(PushParams, UnknownPnNamesAreIgnoredNotEchoed) {
  // Fuzz regression: a reason phrase quoted an unknown "pn-*" name with control characters.
  std::vector<RawParam> ps = {{std::string_view("pn-x\x01\r\n", 7), "%0d", true},
                              {"pn-provider", "nope", true}};
  auto r = parsePushParams(ps);
  expectError(r, 555, "Push Notification Service Not Supported");
  EXPECT_TRUE(isPushParamName("pn-x\x01\r\n"));  // still stripped when forwarding
}

TEST(PushParams, ReasonNeverEchoesToken) {
  std::string tok = "SECRETSECRETSECRET" + std::string(46, 'z');
  auto r = parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=" + tok);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.error().reason.find("SECRET"), std::string::npos);
}

TEST(PushParams, StripList) {
  for (std::string_view n :
       {"pn-provider",   "pn-param",       "pn-prid",          "pn-purr",         "PN-PRID",
        "pn-call-str",   "pn-msg-str",     "pn-groupchat-str", "pn-call-snd",     "pn-msg-snd",
        "pn-timeout",    "pn-silent",      "pn-type",          "pn-tok",          "pn-voip-tok",
        "pn-im-tok",     "pn-platform",    "app-id",           "push-token-type", "push-token-app",
        "push-token-id", "pn-future-thing"}) {
    EXPECT_TRUE(isPushParamName(n)) << n;
  }
  for (std::string_view n : {"transport", "lr", "ob", "user", "+sip.instance", "reg-id", "expires",
                             "pn", "push", "+sip.pnsreg"}) {
    EXPECT_FALSE(isPushParamName(n)) << n;
  }
}

TEST(PushParams, FeatureCaps) {
  PushBinding b;
  b.provider = Provider::kApns;
  EXPECT_EQ(featureCapsValue(b, 600), "*;+sip.pns=\"apns\"");  // no +sip.pnsreg tag in Contact
  b.has_pnsreg = true;
  EXPECT_EQ(featureCapsValue(b, 600), "*;+sip.pns=\"apns\";+sip.pnsreg=\"600\"");
  EXPECT_EQ(featureCapsValue(b, 120), "*;+sip.pns=\"apns\"");  // must be > 120
  EXPECT_EQ(featureCapsValue(b, std::nullopt), "*;+sip.pns=\"apns\"");
  b.provider = Provider::kFcm;
  b.sandbox = true;
  EXPECT_EQ(featureCapsValue(b, 121), "*;+sip.pns=\"fcm\";+sip.pnsreg=\"121\"");
  b.provider = Provider::kWebpush;
  EXPECT_EQ(featureCapsValue(b, std::nullopt), "*;+sip.pns=\"webpush\"");
}

TEST(PushParams, SerializeRoundTrip) {
  std::string p =
      ";pn-provider=apns.dev;pn-param=ABCD123456.org.linphone.phone.remote&voip;"
      "pn-prid=" +
      hexToken('1') + ":remote&" + hexToken('2') +
      ":voip;pn-purr=abc123;pn-call-str=IC_MSG;pn-timeout=25;pn-silent=1;+sip.pnsreg";
  PushBinding b = ok(parse(p));
  std::string json = serialize(b);
  Result<PushBinding> back = deserialize(json);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, b);
  PushBinding f = ok(parse(kAbtoContactParams));
  Result<PushBinding> fb = deserialize(serialize(f));
  ASSERT_TRUE(fb.isOk());
  EXPECT_EQ(*fb, f);
}

TEST(PushParams, SerializeLeavesDefaultsOutAndReadsTheFullFormToo) {
  PushBinding b = ok(parse(";pn-provider=apns;pn-param=ABCD123456.com.example.app.voip;pn-prid=" +
                           hexToken('3')));
  EXPECT_EQ(serialize(b), "{\"app_id\":\"com.example.app\",\"provider\":\"apns\","
                          "\"team_id\":\"ABCD123456\",\"v\":1,\"voip_token\":\"" +
                              hexToken('3') + "\"}");
  // Rows written with every field (as before) read the same.
  std::string full =
      "{\"app_id\":\"com.example.app\",\"dialect\":\"rfc8599\",\"linphone\":{\"call_snd\":\"\","
      "\"call_str\":\"\",\"groupchat_str\":\"\",\"msg_snd\":\"\",\"msg_str\":\"\",\"silent\":false},"
      "\"message_token\":\"\",\"pnsreg\":false,\"project_id\":\"\",\"provider\":\"apns\","
      "\"purr\":\"\",\"sandbox\":false,\"team_id\":\"ABCD123456\",\"v\":1,\"voip_token\":\"" +
      hexToken('3') + "\"}";
  Result<PushBinding> back = deserialize(full);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_EQ(*back, b);
}

TEST(PushParams, DeserializeRejectsGarbage) {
  for (std::string_view bad :
       {"", "[]", "{", "{\"v\":2}", "{\"v\":1,\"provider\":\"x\",\"voip_token\":\"a\"}",
        "{\"v\":1,\"provider\":\"apns\"}", "{\"v\":1,\"provider\":\"apns\",\"voip_token\":5}",
        "{\"v\":1,\"provider\":\"fcm\",\"message_token\":\"a\",\"sandbox\":\"yes\"}",
        "{\"v\":1,\"provider\":\"fcm\",\"message_token\":\"a\",\"linphone\":{\"timeout\":-1}}"}) {
    EXPECT_FALSE(deserialize(bad).isOk()) << bad;
  }
}

TEST(PushParams, DeviceKey) {
  PushBinding a = ok(parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=" + hexToken()));
  PushBinding a2 = a;
  a2.purr = "other";
  a2.has_pnsreg = true;
  EXPECT_EQ(a.deviceKey(), a2.deviceKey());
  // Same device from another dialect (upper-case token) → same key.
  PushBinding a3 = ok(parse(";app-id=com.x;pn-voip-tok=" + std::string(64, 'A')));
  EXPECT_EQ(a.deviceKey(), a3.deviceKey());
  PushBinding c = ok(parse(";pn-provider=apns;pn-param=ABCD.com.x.voip;pn-prid=" + hexToken('b')));
  EXPECT_NE(a.deviceKey(), c.deviceKey());
  EXPECT_EQ(a.deviceKey().find(hexToken().substr(0, 8)), std::string::npos);  // no token inside
  EXPECT_EQ(a.deviceKey().rfind("apns:", 0), 0u);
}

TEST(PushParams, RedactToken) {
  EXPECT_EQ(redactToken("abcdef0123456789abcdef"), "abcdef…");
  EXPECT_EQ(redactToken("short"), "…");
  EXPECT_EQ(redactToken(""), "");
}

TEST(PushParams, PercentDecode) {
  EXPECT_EQ(percentDecode("a%3Ab%3ac%25"), "a:b:c%");
  EXPECT_FALSE(percentDecode("%").has_value());
  EXPECT_FALSE(percentDecode("%4").has_value());
  EXPECT_FALSE(percentDecode("%g0").has_value());
  EXPECT_EQ(percentDecode(""), "");
}

TEST(PushParams, SplitHelperSanity) {
  auto l = splitParams(";a=1;b;c=");
  ASSERT_EQ(l.params.size(), 3u);
  EXPECT_FALSE(l.params[1].has_value);
  EXPECT_TRUE(l.params[2].has_value);
}

}  // namespace
}  // namespace sipwake::push
