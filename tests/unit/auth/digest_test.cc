#include "auth/digest.h"

#include <gtest/gtest.h>

#include <string>

namespace sipwake::auth {
namespace {

// RFC 7616 §3.9.1 (errata 4495: "Circle of Life" with a lower-case "of").
constexpr std::string_view kUser = "Mufasa";
constexpr std::string_view kRealm7616 = "http-auth@example.org";
constexpr std::string_view kPassword7616 = "Circle of Life";
constexpr std::string_view kNonce7616 = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
constexpr std::string_view kCnonce7616 = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
constexpr std::string_view kOpaque7616 = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
constexpr std::string_view kResponseMd5 = "8ca523f5e9506fed4657c9700eebdbec";
constexpr std::string_view kResponseSha256 =
    "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";

std::string rfc7616Header(std::string_view algorithm, std::string_view response) {
  std::string h = "Digest username=\"Mufasa\",\r\n realm=\"http-auth@example.org\",\r\n";
  h += " uri=\"/dir/index.html\",\r\n algorithm=";
  h += algorithm;
  h += ",\r\n nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n nc=00000001,\r\n";
  h += " cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\",\r\n qop=auth,\r\n response=\"";
  h += response;
  h += "\",\r\n opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
  return h;
}

TEST(DigestRfc7616, Md5ExampleParsesAndVerifies) {
  std::string h = rfc7616Header("MD5", kResponseMd5);
  Result<DigestCredentials> c = parseDigestCredentials(h);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->username, kUser);
  EXPECT_EQ(c->realm, kRealm7616);
  EXPECT_EQ(c->nonce, kNonce7616);
  EXPECT_EQ(c->cnonce, kCnonce7616);
  EXPECT_EQ(c->opaque, kOpaque7616);
  EXPECT_EQ(c->uri, "/dir/index.html");
  EXPECT_EQ(c->nc, 1u);
  EXPECT_EQ(c->qop, Qop::kAuth);
  EXPECT_EQ(c->algorithm, DigestAlgorithm::kMd5);
  HexDigest ha1 = computeHa1(DigestAlgorithm::kMd5, kUser, kRealm7616, kPassword7616);
  EXPECT_EQ(computeResponse(responseInputs(*c, "GET", ha1.view())).view(), kResponseMd5);
  EXPECT_TRUE(verifyResponse(*c, "GET", ha1.view()));
  EXPECT_FALSE(verifyResponse(*c, "POST", ha1.view()));
  HexDigest wrong = computeHa1(DigestAlgorithm::kMd5, kUser, kRealm7616, "Circle Of Life");
  EXPECT_FALSE(verifyResponse(*c, "GET", wrong.view()));
}

TEST(DigestRfc7616, Sha256ExampleParsesAndVerifies) {
  std::string h = rfc7616Header("SHA-256", kResponseSha256);
  Result<DigestCredentials> c = parseDigestCredentials(h);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->algorithm, DigestAlgorithm::kSha256);
  HexDigest ha1 = computeHa1(DigestAlgorithm::kSha256, kUser, kRealm7616, kPassword7616);
  EXPECT_EQ(ha1.size, 64);
  EXPECT_EQ(computeResponse(responseInputs(*c, "GET", ha1.view())).view(), kResponseSha256);
  EXPECT_TRUE(verifyResponse(*c, "GET", ha1.view()));
}

TEST(DigestRfc2617, Section35Example) {
  // RFC 2617 §3.5: password "Circle Of Life" (capital O), qop=auth, quoted qop-less forms.
  std::string_view h =
      "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
      "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", qop=auth, "
      "nc=00000001, cnonce=\"0a4f113b\", response=\"6629fae49393a05397450978507c4ef1\", "
      "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
  Result<DigestCredentials> c = parseDigestCredentials(h);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->algorithm, DigestAlgorithm::kMd5);  // absent means MD5
  HexDigest ha1 =
      computeHa1(DigestAlgorithm::kMd5, "Mufasa", "testrealm@host.com", "Circle Of Life");
  EXPECT_TRUE(verifyResponse(*c, "GET", ha1.view()));
}

TEST(DigestVerify, UpperCaseResponseHexAccepted) {
  std::string upper(kResponseMd5);
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  std::string h = rfc7616Header("MD5", upper);
  Result<DigestCredentials> c = parseDigestCredentials(h);
  ASSERT_TRUE(c.isOk());
  HexDigest ha1 = computeHa1(DigestAlgorithm::kMd5, kUser, kRealm7616, kPassword7616);
  EXPECT_TRUE(verifyResponse(*c, "GET", ha1.view()));
}

TEST(DigestVerify, NoQopRfc2069) {
  HexDigest ha1 = computeHa1(DigestAlgorithm::kMd5, "alice", "example.com", "secret");
  ResponseInputs in;
  in.algorithm = DigestAlgorithm::kMd5;
  in.ha1 = ha1.view();
  in.nonce = "abc";
  in.method = "REGISTER";
  in.uri = "sip:example.com";
  HexDigest resp = computeResponse(in);
  // Computed independently: openssl md5 of "HA1:abc:" + md5("REGISTER:sip:example.com").
  EXPECT_EQ(resp.view(), "dbe98f00688a08a2dbda0b12e8c71319");
  std::string h =
      "Digest username=\"alice\", realm=\"example.com\", nonce=\"abc\", "
      "uri=\"sip:example.com\", response=\"" +
      std::string(resp.view()) + "\"";
  Result<DigestCredentials> c = parseDigestCredentials(h);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->qop, Qop::kNone);
  EXPECT_EQ(c->nc, 0u);
  EXPECT_TRUE(verifyResponse(*c, "REGISTER", ha1.view()));
}

TEST(DigestVerify, SessVariantsUseSessionHa1) {
  HexDigest ha1 = computeHa1(DigestAlgorithm::kSha256, "bob", "example.com", "pw");
  ResponseInputs in;
  in.algorithm = DigestAlgorithm::kSha256Sess;
  in.ha1 = ha1.view();
  in.nonce = "n";
  in.cnonce = "c";
  in.nc_text = "00000001";
  in.qop = Qop::kAuth;
  in.method = "REGISTER";
  in.uri = "sip:example.com";
  HexDigest sess = computeResponse(in);
  // Computed independently with openssl sha256: HA1' = H(HA1:n:c), then the qop=auth formula.
  EXPECT_EQ(sess.view(), "7887fc9fdaccb69086facb2726f762cd8cf1deef23b50df3404a4bef49a7f97b");
  in.algorithm = DigestAlgorithm::kSha256;
  EXPECT_NE(sess.view(), computeResponse(in).view());
}

TEST(DigestParse, TokenAndQuotedFormsAndEscapes) {
  std::string text =
      "dIgEsT USERNAME=\"a\\\"b\\\\c\" , realm=example.com,nonce=\"n1\","
      "uri=\"sip:x@y\",qop=\"auth\",nc=0000000A,cnonce=c1,algorithm=\"sha-256\","
      "foo=\"bar, baz\",,userhash=false,response=\"" +
      std::string(64, 'a') + "\"";
  Result<DigestCredentials> c = parseDigestCredentials(text);
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->username, "a\"b\\c");
  EXPECT_EQ(c->realm, "example.com");
  EXPECT_EQ(c->nc, 10u);
  EXPECT_EQ(c->nc_text, "0000000A");
  EXPECT_EQ(c->algorithm, DigestAlgorithm::kSha256);
  EXPECT_FALSE(c->has_opaque);
  // Views into escape storage stay valid after a move.
  DigestCredentials moved = std::move(c).value();
  EXPECT_EQ(moved.username, "a\"b\\c");
}

struct BadCase {
  const char* text;
  const char* message_part;
};

class DigestParseErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(DigestParseErrors, PreciseStatus) {
  Result<DigestCredentials> c = parseDigestCredentials(GetParam().text);
  ASSERT_FALSE(c.isOk()) << GetParam().text;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(GetParam().message_part), std::string::npos)
      << c.status().message();
}

#define GOOD_TAIL \
  "realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"0123456789abcdef0123456789abcdef\""

INSTANTIATE_TEST_SUITE_P(
    All, DigestParseErrors,
    ::testing::Values(
        BadCase{"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "not Digest"},
        BadCase{"Digest", "no parameters"},
        BadCase{"Digest username=\"a\", username=\"b\", " GOOD_TAIL,
                "duplicate parameter 'username'"},
        BadCase{"Digest username=\"a\", NONCE=\"x\", " GOOD_TAIL, "duplicate parameter 'nonce'"},
        BadCase{"Digest realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\""
                "0123456789abcdef0123456789abcdef\"",
                "missing parameter 'username'"},
        BadCase{"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:r\"",
                "missing parameter 'response'"},
        BadCase{"Digest username=\"a\", realm=\"r\", uri=\"sip:r\", response=\"x\"",
                "missing parameter 'nonce'"},
        BadCase{"Digest username=\"a, " GOOD_TAIL, "unexpected text after 'username'"},
        BadCase{"Digest username=\"abc", "unterminated quoted string in 'username'"},
        BadCase{"Digest username=\"abc\\", "unterminated quoted string in 'username'"},
        BadCase{"Digest username=, " GOOD_TAIL, "empty value for 'username'"},
        BadCase{"Digest username=\"\", " GOOD_TAIL, "empty value for 'username'"},
        BadCase{"Digest username \"a\", " GOOD_TAIL, "missing '=' after 'username'"},
        BadCase{"Digest =\"a\", " GOOD_TAIL, "expected a parameter name"},
        BadCase{"Digest username=\"a\" x, " GOOD_TAIL, "unexpected text after 'username'"},
        BadCase{"Digest username=\"a\", algorithm=SHA-512-256, " GOOD_TAIL,
                "unsupported algorithm 'SHA-512-256'"},
        BadCase{"Digest username=\"a\", qop=auth-int, nc=00000001, cnonce=\"c\", " GOOD_TAIL,
                "unsupported qop 'auth-int'"},
        BadCase{"Digest username=\"a\", qop=auth, nc=00000001, " GOOD_TAIL, "'cnonce'"},
        BadCase{"Digest username=\"a\", qop=auth, cnonce=\"c\", " GOOD_TAIL, "'nc'"},
        BadCase{"Digest username=\"a\", qop=auth, nc=1, cnonce=\"c\", " GOOD_TAIL,
                "must be 8 hex digits: 'nc'"},
        BadCase{"Digest username=\"a\", qop=auth, nc=0000000g, cnonce=\"c\", " GOOD_TAIL,
                "must be 8 hex digits: 'nc'"},
        BadCase{"Digest username=\"a\", qop=auth, nc=00000000, cnonce=\"c\", " GOOD_TAIL,
                "must be at least 1: 'nc'"},
        BadCase{"Digest username=\"a\", nc=00000001, " GOOD_TAIL, "given without qop: 'nc'"},
        BadCase{"Digest username=\"a\", cnonce=\"c\", " GOOD_TAIL, "given without qop: 'cnonce'"},
        BadCase{"Digest username=\"a\", userhash=true, " GOOD_TAIL, "userhash=true"},
        BadCase{"Digest username=\"a\", userhash=maybe, " GOOD_TAIL, "bad value for 'userhash'"},
        BadCase{"Digest username=\"a\", algorithm=SHA-256, " GOOD_TAIL,
                "wrong length for the algorithm: 'response'"},
        BadCase{"Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", "
                "response=\"0123456789abcdef0123456789abcdeZ\"",
                "not hexadecimal: 'response'"},
        BadCase{"Digest username=\"a\x01\", " GOOD_TAIL, "control character in 'username'"}));

TEST(DigestParse, AuthSchemeToken) {
  EXPECT_EQ(authScheme("  Digest username=\"a\""), "Digest");
  EXPECT_EQ(authScheme("Basic abc"), "Basic");
  EXPECT_EQ(authScheme(""), "");
}

TEST(DigestParse, AlgorithmNamesRoundTrip) {
  for (DigestAlgorithm a : {DigestAlgorithm::kMd5, DigestAlgorithm::kMd5Sess,
                            DigestAlgorithm::kSha256, DigestAlgorithm::kSha256Sess}) {
    EXPECT_EQ(parseAlgorithm(algorithmName(a)), a);
  }
  EXPECT_EQ(parseAlgorithm("md5-SESS"), DigestAlgorithm::kMd5Sess);
  EXPECT_FALSE(parseAlgorithm("SHA-512-256").has_value());
}

TEST(DigestHex, FromHexNormalises) {
  auto d = HexDigest::fromHex("ABCDEF0123456789abcdef0123456789");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->view(), "abcdef0123456789abcdef0123456789");
  EXPECT_FALSE(HexDigest::fromHex("abc").has_value());
  EXPECT_FALSE(HexDigest::fromHex(std::string(32, 'g')).has_value());
  EXPECT_TRUE(constantTimeHexEquals("abc0", "ABC0"));
  EXPECT_FALSE(constantTimeHexEquals("abc0", "abc1"));
  EXPECT_FALSE(constantTimeHexEquals("abc0", "abc"));
}

TEST(DigestChallenge, Format) {
  ChallengeParams p;
  p.realm = "example.com";
  p.nonce = "N";
  p.opaque = "O";
  p.algorithm = DigestAlgorithm::kSha256;
  EXPECT_EQ(buildChallenge(p),
            "Digest realm=\"example.com\", nonce=\"N\", opaque=\"O\", algorithm=SHA-256, "
            "qop=\"auth\"");
  p.stale = true;
  p.opaque = "";
  p.algorithm = DigestAlgorithm::kMd5;
  p.realm = "we\"ird\\";
  EXPECT_EQ(buildChallenge(p),
            "Digest realm=\"we\\\"ird\\\\\", nonce=\"N\", algorithm=MD5, qop=\"auth\", stale=true");
}

// The client side answers the RFC 7616 §3.9.1 challenge with the RFC's own response.
TEST(DigestClient, AnswersRfc7616ChallengeWithTheRfcResponse) {
  for (auto [algorithm, expected] : {std::pair{DigestAlgorithm::kMd5, kResponseMd5},
                                     std::pair{DigestAlgorithm::kSha256, kResponseSha256}}) {
    std::string challenge =
        "Digest\r\n realm=\"http-auth@example.org\",\r\n qop=\"auth, auth-int\",\r\n"
        " algorithm=" +
        std::string(algorithmName(algorithm)) +
        ",\r\n nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n"
        " opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
    Result<DigestChallenge> c = parseDigestChallenge(challenge);
    ASSERT_TRUE(c.isOk()) << c.status().toString();
    EXPECT_EQ(c->realm, kRealm7616);
    EXPECT_EQ(c->nonce, kNonce7616);
    EXPECT_EQ(c->opaque, kOpaque7616);
    EXPECT_EQ(c->algorithm, algorithm);
    EXPECT_TRUE(c->qop_auth);
    EXPECT_FALSE(c->stale);
    ASSERT_TRUE(canAnswer(*c));
    HexDigest ha1 = computeHa1(algorithm, kUser, kRealm7616, kPassword7616);
    ClientAnswer a;
    a.username = kUser;
    a.ha1 = ha1.view();
    a.method = "GET";
    a.uri = "/dir/index.html";
    a.cnonce = kCnonce7616;
    a.nc = 1;
    std::string header = buildCredentials(*c, a);
    Result<DigestCredentials> back = parseDigestCredentials(header);
    ASSERT_TRUE(back.isOk()) << back.status().toString() << ": " << header;
    EXPECT_EQ(back->response, expected) << header;
    EXPECT_EQ(back->nc_text, "00000001");
    EXPECT_EQ(back->cnonce, kCnonce7616);
    EXPECT_EQ(back->opaque, kOpaque7616);
    EXPECT_EQ(back->algorithm, algorithm);
    EXPECT_EQ(back->qop, Qop::kAuth);
    EXPECT_TRUE(verifyResponse(*back, "GET", ha1.view()));
    // The next request on the same nonce counts up.
    a.nc = 0x1a;
    Result<DigestCredentials> second = parseDigestCredentials(buildCredentials(*c, a));
    ASSERT_TRUE(second.isOk());
    EXPECT_EQ(second->nc_text, "0000001a");
    EXPECT_TRUE(verifyResponse(*second, "GET", ha1.view()));
  }
}

// RFC 2617 §3.5: no algorithm (MD5), qop list, opaque.
TEST(DigestClient, AnswersRfc2617Challenge) {
  Result<DigestChallenge> c = parseDigestChallenge(
      "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", "
      "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"");
  ASSERT_TRUE(c.isOk()) << c.status().toString();
  EXPECT_EQ(c->algorithm, DigestAlgorithm::kMd5);
  HexDigest ha1 =
      computeHa1(DigestAlgorithm::kMd5, "Mufasa", "testrealm@host.com", "Circle Of Life");
  ClientAnswer a;
  a.username = "Mufasa";
  a.ha1 = ha1.view();
  a.method = "GET";
  a.uri = "/dir/index.html";
  a.cnonce = "0a4f113b";
  EXPECT_EQ(buildCredentials(*c, a),
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
            "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", "
            "response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, qop=auth, "
            "nc=00000001, cnonce=\"0a4f113b\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"");
}

TEST(DigestClient, ChallengeFormsAndWhatIsNotAnswered) {
  // Kamailio's form: token algorithm absent, qop quoted, stale.
  Result<DigestChallenge> c =
      parseDigestChallenge("Digest realm=\"127.0.0.1\", nonce=\"abc\", qop=\"auth\", stale=true");
  ASSERT_TRUE(c.isOk());
  EXPECT_TRUE(c->stale);
  EXPECT_TRUE(canAnswer(*c));
  // RFC 2069: no qop; answered without cnonce / nc.
  c = parseDigestChallenge("Digest realm=\"r\", nonce=\"n\"");
  ASSERT_TRUE(c.isOk());
  ASSERT_TRUE(canAnswer(*c));
  ClientAnswer a;
  a.username = "u";
  a.ha1 = "0123456789abcdef0123456789abcdef";
  a.method = "REGISTER";
  a.uri = "sip:r";
  a.cnonce = "x";
  std::string h = buildCredentials(*c, a);
  EXPECT_EQ(h.find("cnonce"), std::string::npos) << h;
  Result<DigestCredentials> back = parseDigestCredentials(h);
  ASSERT_TRUE(back.isOk()) << back.status().toString();
  EXPECT_TRUE(verifyResponse(*back, "REGISTER", a.ha1));
  // Not answered: -sess, an unknown algorithm, auth-int only.
  c = parseDigestChallenge("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=\"auth\"");
  ASSERT_TRUE(c.isOk());
  EXPECT_FALSE(canAnswer(*c));
  c = parseDigestChallenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256");
  ASSERT_TRUE(c.isOk());
  EXPECT_FALSE(c->algorithm.has_value());
  EXPECT_EQ(c->algorithm_text, "SHA-512-256");
  EXPECT_FALSE(canAnswer(*c));
  c = parseDigestChallenge("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"");
  ASSERT_TRUE(c.isOk());
  EXPECT_FALSE(canAnswer(*c));
  // Broken values.
  EXPECT_FALSE(parseDigestChallenge("Basic realm=\"r\"").isOk());
  EXPECT_FALSE(parseDigestChallenge("Digest nonce=\"n\"").isOk());
  EXPECT_FALSE(parseDigestChallenge("Digest realm=\"r\"").isOk());
  EXPECT_FALSE(parseDigestChallenge("Digest realm=\"r, nonce=\"n\"").isOk());
}

}  // namespace
}  // namespace sipwake::auth
