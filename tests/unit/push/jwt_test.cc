#include "push/jwt.h"

#include <gtest/gtest.h>

namespace sipwake::push {
namespace {

using Json = nlohmann::json;

// Keys are generated per test run with the OpenSSL API: no key material is committed.
const Key& ecKey() {
  static const Key k = *Key::generateEcP256();
  return k;
}
const Key& rsaKey() {
  static const Key k = *Key::generateRsa(2048);
  return k;
}
Key publicOf(const Key& k) { return *Key::publicFromPem(*k.publicPem()); }

struct Parts {
  std::string header, claims, sig;
};
Parts split(const std::string& jwt) {
  std::size_t a = jwt.find('.');
  std::size_t b = jwt.find('.', a + 1);
  return {*base64UrlDecode(jwt.substr(0, a)), *base64UrlDecode(jwt.substr(a + 1, b - a - 1)),
          *base64UrlDecode(jwt.substr(b + 1))};
}

std::string serviceAccountJson(const Key& key) {
  Json j = {{"type", "service_account"},
            {"project_id", "demo-project"},
            {"private_key_id", "0123456789abcdef"},
            {"private_key", *key.privatePem()},
            {"client_email", "fcm@demo-project.iam.gserviceaccount.com"},
            {"client_id", "1234"},
            {"token_uri", "https://oauth2.googleapis.com/token"}};
  return j.dump();
}

TEST(Base64Url, Vectors) {
  // RFC 4648 §10 vectors, without padding.
  EXPECT_EQ(base64UrlEncode(""), "");
  EXPECT_EQ(base64UrlEncode("f"), "Zg");
  EXPECT_EQ(base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64UrlEncode(std::string("\xfb\xff\xbf", 3)), "-_-_");
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xfb\xff\xbf\x00\x01"}) {
    EXPECT_EQ(base64UrlDecode(base64UrlEncode(s)), s);
  }
  EXPECT_FALSE(base64UrlDecode("Zg==").has_value());  // padding refused
  EXPECT_FALSE(base64UrlDecode("Z").has_value());
  EXPECT_FALSE(base64UrlDecode("Zh").has_value());  // non-zero leftover bits
  EXPECT_FALSE(base64UrlDecode("Zm+v").has_value());
}

TEST(Jwt, ApnsEs256SignVerify) {
  Result<std::string> jwt = makeApnsJwt(ecKey(), "ABC123DEFG", "DEF123GHIJ", 1700000000);
  ASSERT_TRUE(jwt.isOk()) << jwt.status().toString();
  Parts p = split(*jwt);
  EXPECT_EQ(Json::parse(p.header), (Json{{"alg", "ES256"}, {"kid", "ABC123DEFG"}}));
  EXPECT_EQ(Json::parse(p.claims), (Json{{"iss", "DEF123GHIJ"}, {"iat", 1700000000}}));
  EXPECT_EQ(p.sig.size(), 64u);  // r||s, not DER
  Result<VerifiedJwt> v = verifyJwt(*jwt, publicOf(ecKey()));
  ASSERT_TRUE(v.isOk()) << v.status().toString();
  EXPECT_EQ(v->claims["iss"], "DEF123GHIJ");
  EXPECT_EQ(v->header["kid"], "ABC123DEFG");
}

TEST(Jwt, VerifyRejectsTamperingAndWrongKey) {
  std::string jwt = *makeApnsJwt(ecKey(), "ABC123DEFG", "DEF123GHIJ", 1700000000);
  Key other = *Key::generateEcP256();
  EXPECT_EQ(verifyJwt(jwt, publicOf(other)).status().code(), StatusCode::kPermissionDenied);
  // Changed claims, same signature.
  std::size_t a = jwt.find('.');
  std::size_t b = jwt.find('.', a + 1);
  std::string forged = jwt.substr(0, a + 1) +
                       base64UrlEncode(R"({"iat":1700000000,"iss":"EVILTEAM00"})") + jwt.substr(b);
  EXPECT_FALSE(verifyJwt(forged, publicOf(ecKey())).isOk());
  // alg confusion: an ES256 token presented to an RSA key, and alg "none".
  EXPECT_FALSE(verifyJwt(jwt, publicOf(rsaKey())).isOk());
  std::string none =
      base64UrlEncode(R"({"alg":"none"})") + "." + base64UrlEncode(R"({"iss":"x"})") + ".";
  EXPECT_FALSE(verifyJwt(none, publicOf(ecKey())).isOk());
  for (std::string_view bad : {"", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.AAAA"}) {
    EXPECT_FALSE(verifyJwt(bad, publicOf(ecKey())).isOk()) << bad;
  }
}

TEST(Jwt, DerRawConversions) {
  for (int i = 0; i < 20; ++i) {  // r or s with leading zero bytes occur in some of these
    std::string jwt = *makeApnsJwt(ecKey(), "K", "T", 1700000000 + i);
    std::string raw = split(jwt).sig;
    ASSERT_EQ(raw.size(), 64u);
    auto der = ecdsaRawToDer(raw);
    ASSERT_TRUE(der.has_value());
    EXPECT_EQ(ecdsaDerToRaw(*der), raw);
  }
  EXPECT_FALSE(ecdsaRawToDer(std::string(63, 'a')).has_value());
  EXPECT_FALSE(ecdsaDerToRaw("garbage").has_value());
}

TEST(Jwt, ApnsNeedsP256) {
  EXPECT_FALSE(makeApnsJwt(rsaKey(), "K", "T", 1).isOk());
  EXPECT_FALSE(makeApnsJwt(ecKey(), "", "T", 1).isOk());
  EXPECT_FALSE(makeApnsJwt(publicOf(ecKey()), "K", "T", 1).isOk());
  EXPECT_FALSE(makeApnsJwt(Key(), "K", "T", 1).isOk());
}

TEST(Jwt, P8PemRoundTrip) {
  std::string pem = *ecKey().privatePem();
  EXPECT_NE(pem.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);  // PKCS#8 like a .p8
  Result<Key> k = Key::privateFromPem(pem);
  ASSERT_TRUE(k.isOk());
  EXPECT_EQ(k->type(), Key::Type::kEcP256);
  std::string jwt = *makeApnsJwt(*k, "K", "T", 5);
  EXPECT_TRUE(verifyJwt(jwt, publicOf(ecKey())).isOk());
  EXPECT_FALSE(
      Key::privateFromPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").isOk());
  EXPECT_FALSE(Key::privateFromPem("").isOk());
  EXPECT_FALSE(Key::publicFromPem(pem).isOk());
}

TEST(Jwt, ServiceAccountAndRs256Assertion) {
  Result<ServiceAccount> sa = parseServiceAccount(serviceAccountJson(rsaKey()));
  ASSERT_TRUE(sa.isOk()) << sa.status().toString();
  EXPECT_EQ(sa->client_email, "fcm@demo-project.iam.gserviceaccount.com");
  EXPECT_EQ(sa->project_id, "demo-project");
  Result<std::string> jwt = makeFcmAssertion(*sa, 1700000000);
  ASSERT_TRUE(jwt.isOk());
  Result<VerifiedJwt> v = verifyJwt(*jwt, publicOf(rsaKey()));
  ASSERT_TRUE(v.isOk()) << v.status().toString();
  EXPECT_EQ(v->header, (Json{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "0123456789abcdef"}}));
  EXPECT_EQ(v->claims, (Json{{"iss", "fcm@demo-project.iam.gserviceaccount.com"},
                             {"scope", "https://www.googleapis.com/auth/firebase.messaging"},
                             {"aud", "https://oauth2.googleapis.com/token"},
                             {"iat", 1700000000},
                             {"exp", 1700003600}}));
  EXPECT_FALSE(verifyJwt(*jwt, publicOf(*Key::generateRsa(2048))).isOk());
}

TEST(Jwt, ServiceAccountErrorsNameTheField) {
  Json good = Json::parse(serviceAccountJson(rsaKey()));
  for (const char* field : {"client_email", "private_key", "private_key_id", "token_uri"}) {
    Json j = good;
    j.erase(field);
    Result<ServiceAccount> r = parseServiceAccount(j.dump());
    ASSERT_FALSE(r.isOk());
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().message();
  }
  Json ec = good;
  ec["private_key"] = *ecKey().privatePem();
  EXPECT_NE(parseServiceAccount(ec.dump()).status().message().find("not RSA"), std::string::npos);
  Json bad_key = good;
  bad_key["private_key"] = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n";
  Result<ServiceAccount> r = parseServiceAccount(bad_key.dump());
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message().find("nope"), std::string::npos);  // never echoes the key
  Json http = good;
  http["token_uri"] = "http://oauth2.googleapis.com/token";
  EXPECT_FALSE(parseServiceAccount(http.dump()).isOk());
  EXPECT_FALSE(parseServiceAccount("not json").isOk());
  Json wrong_type = good;
  wrong_type["client_email"] = 5;
  EXPECT_FALSE(parseServiceAccount(wrong_type.dump()).isOk());
}

TEST(Jwt, OAuthRequestBody) {
  EXPECT_EQ(oauthTokenRequestBody("a.b-c_d"),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b-c_d");
}

TEST(Jwt, SignJwtChecksAlgAgainstKey) {
  EXPECT_FALSE(signJwt(ecKey(), Json{{"alg", "RS256"}}, Json::object()).isOk());
  EXPECT_FALSE(signJwt(rsaKey(), Json{{"alg", "ES256"}}, Json::object()).isOk());
  EXPECT_FALSE(signJwt(ecKey(), Json{{"alg", "ES256"}}, Json::array()).isOk());
  EXPECT_TRUE(signJwt(ecKey(), Json{{"alg", "ES256"}}, Json::object()).isOk());
}

}  // namespace
}  // namespace sipwake::push
