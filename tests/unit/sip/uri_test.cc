#include "sip/uri.h"

#include <gtest/gtest.h>

namespace sipwake::sip {
namespace {

Uri mustParse(std::string_view text) {
  Result<Uri> r = parseUri(text);
  EXPECT_TRUE(r.isOk()) << text << ": " << r.status().toString();
  return r.isOk() ? std::move(r).value() : Uri{};
}

std::string errorOf(std::string_view text) {
  Result<Uri> r = parseUri(text);
  return r.isOk() ? std::string("(parsed)") : r.status().message();
}

TEST(UriTest, FullSipUri) {
  Uri u = mustParse(
      "sips:alice:secret@[2001:db8::1]:5061;transport=tls;lr;maddr=239.0.0.1?subject=hi%20there&"
      "priority=urgent");
  EXPECT_EQ(u.scheme, Uri::Scheme::kSips);
  EXPECT_EQ(u.scheme_text, "sips");
  EXPECT_EQ(u.user, "alice");
  EXPECT_TRUE(u.has_password);
  EXPECT_EQ(u.password, "secret");
  EXPECT_EQ(u.host, "[2001:db8::1]");
  EXPECT_EQ(u.hostWithoutBrackets(), "2001:db8::1");
  EXPECT_TRUE(u.has_port);
  EXPECT_EQ(u.port, 5061);
  ASSERT_EQ(u.params.size(), 3u);
  EXPECT_EQ(u.params[0].name, "transport");
  EXPECT_EQ(u.params[0].value, "tls");
  EXPECT_TRUE(u.hasLr());
  EXPECT_FALSE(u.params[1].has_value);
  ASSERT_NE(u.param("MADDR"), nullptr);
  EXPECT_EQ(u.param("maddr")->value, "239.0.0.1");
  ASSERT_EQ(u.headers.size(), 2u);
  EXPECT_EQ(u.headers[0].name, "subject");
  EXPECT_EQ(u.headers[0].value, "hi%20there");
  EXPECT_TRUE(u.isSipOrSips());
}

TEST(UriTest, MinimalForms) {
  Uri u = mustParse("sip:example.com");
  EXPECT_TRUE(u.user.empty());
  EXPECT_EQ(u.host, "example.com");
  EXPECT_FALSE(u.has_port);
  EXPECT_EQ(u.port, 0);
  EXPECT_EQ(mustParse("SIP:Bob@Example.COM").scheme, Uri::Scheme::kSip);
  EXPECT_EQ(mustParse("sip:192.0.2.1:5060").port, 5060);
  EXPECT_EQ(mustParse("sip:[::1]").host, "[::1]");
}

TEST(UriTest, UserPartWithReservedCharactersAndEscapes) {
  // RFC 4475 intmeth: user and password with every allowed mark.
  Uri u = mustParse(
      "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/"
      ";;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
  EXPECT_EQ(u.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
  EXPECT_EQ(u.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
  EXPECT_EQ(u.host, "example.com");
  // RFC 4475 semiuri: ';' in the user part is not a parameter.
  Uri s = mustParse("sip:user;par=u%40example.net@example.com");
  EXPECT_EQ(s.user, "user;par=u%40example.net");
  EXPECT_TRUE(s.params.empty());
  // RFC 4475 esc01: escapes are kept as written; unescape() decodes them.
  Uri e = mustParse("sip:sips%3Auser%40example.com@example.net");
  EXPECT_EQ(e.user, "sips%3Auser%40example.com");
  EXPECT_EQ(*unescape(e.user), "sips:user@example.com");
  EXPECT_EQ(*unescape("null-%00-null"), std::string("null-\0-null", 11));
}

TEST(UriTest, PushParametersWithEscapes) {
  Uri u = mustParse(
      "sip:alice@192.0.2.10:51234;transport=tls;pn-provider=apns;pn-param=ABCD1234.com.example."
      "voip;"
      "pn-prid=00fc13adff78512%3a5a6c");
  ASSERT_NE(u.param("pn-prid"), nullptr);
  EXPECT_EQ(u.param("pn-prid")->value, "00fc13adff78512%3a5a6c");
  EXPECT_EQ(*unescape(u.param("pn-prid")->value), "00fc13adff78512:5a6c");
  EXPECT_EQ(u.param("pn-provider")->value, "apns");
  EXPECT_EQ(u.param("PN-PARAM")->value, "ABCD1234.com.example.voip");
}

TEST(UriTest, TelAndOtherSchemes) {
  Uri t = mustParse("tel:+1-201-555-0123;phone-context=example.com;ext=12");
  EXPECT_EQ(t.scheme, Uri::Scheme::kTel);
  EXPECT_EQ(t.user, "+1-201-555-0123");
  ASSERT_EQ(t.params.size(), 2u);
  EXPECT_EQ(t.param("phone-context")->value, "example.com");
  EXPECT_EQ(mustParse("tel:7042;phone-context=example.com").user, "7042");
  Uri o = mustParse("soap.beep://192.0.2.103:3002");
  EXPECT_EQ(o.scheme, Uri::Scheme::kOther);
  EXPECT_EQ(o.scheme_text, "soap.beep");
  EXPECT_EQ(mustParse("urn:service:sos").scheme, Uri::Scheme::kOther);
  EXPECT_EQ(mustParse("isbn:2983792873").scheme_text, "isbn");
}

TEST(UriTest, Rfc5118Ipv6References) {
  Uri a = mustParse("sip:[2001:db8::10:5070]");  // §4.3: the "port" is the last group
  EXPECT_EQ(a.host, "[2001:db8::10:5070]");
  EXPECT_FALSE(a.has_port);
  Uri b = mustParse("sip:[2001:db8::10]:5070");  // §4.4
  EXPECT_EQ(b.host, "[2001:db8::10]");
  EXPECT_EQ(b.port, 5070);
  EXPECT_EQ(mustParse("sip:user@[::ffff:192.0.2.10]:19823").port, 19823);     // §4.9
  EXPECT_TRUE(parseUri("sip:user@[2001:db8:::192.0.2.1]").isOk());            // §4.10 tolerated
  EXPECT_EQ(errorOf("sip:2001:db8::10"), "IPv6 address not enclosed in []");  // §4.2
}

TEST(UriTest, Ipv6AddressParser) {
  auto bytes = [](std::string_view s) { return parseIpv6Address(s); };
  ASSERT_TRUE(bytes("::1"));
  EXPECT_EQ((*bytes("::1"))[15], 1);
  EXPECT_TRUE(bytes("::"));
  EXPECT_TRUE(bytes("1:2:3:4:5:6:7:8"));
  EXPECT_TRUE(bytes("2001:db8::9:1"));
  EXPECT_TRUE(bytes("::ffff:192.0.2.2"));
  EXPECT_TRUE(bytes("0:0:0:0:0:FFFF:129.144.52.38"));
  EXPECT_EQ(*bytes("2001:db8:::192.0.2.1"), *bytes("2001:db8::192.0.2.1"));
  EXPECT_EQ(*bytes("2001:DB8:0::1"), *bytes("2001:db8::1"));
  EXPECT_FALSE(bytes("2001:db8:::10"));  // the third colon is tolerated only before IPv4
  EXPECT_FALSE(bytes("1:2:3:4:5:6:7:8:9"));
  EXPECT_FALSE(bytes("1::2::3"));
  EXPECT_FALSE(bytes(":1:2"));
  EXPECT_FALSE(bytes("1:2:"));
  EXPECT_FALSE(bytes("12345::1"));
  EXPECT_FALSE(bytes("::1.2.3"));
  EXPECT_FALSE(bytes("::256.1.1.1"));
  EXPECT_FALSE(bytes("g::1"));
  EXPECT_FALSE(bytes(""));
  EXPECT_TRUE(isIpv4Address("192.0.2.255"));
  EXPECT_FALSE(isIpv4Address("192.0.2"));
  EXPECT_FALSE(isIpv4Address("192.0.2.256"));
  EXPECT_FALSE(isIpv4Address("1.2.3.4.5"));
}

TEST(UriTest, DefectsAreNamed) {
  EXPECT_EQ(errorOf("<sip:user@example.com>"), "missing URI scheme");
  EXPECT_EQ(errorOf("sip:user@example.com; lr"), "invalid character in URI parameter");
  EXPECT_EQ(errorOf("sip:us%zzer@example.com"), "invalid character or escape in user part");
  EXPECT_EQ(errorOf("sip:user@example.com;a=%4"), "invalid character in URI parameter value");
  EXPECT_EQ(errorOf("sip:@example.com"), "empty user part");
  EXPECT_EQ(errorOf("sip:user@"), "missing host");
  EXPECT_EQ(errorOf("sip:user@example.com:99999"), "invalid port");
  EXPECT_EQ(errorOf("sip:user@example.com:"), "invalid port");
  EXPECT_EQ(errorOf("sip:user@exa mple.com"), "invalid character after host");
  EXPECT_EQ(errorOf("sip:user@example.com;;lr"), "empty URI parameter");
  EXPECT_EQ(errorOf("sip:user@example.com?x"), "URI header without '='");
  EXPECT_EQ(errorOf("sip:user@[::1"), "unterminated IPv6 reference");
  EXPECT_EQ(errorOf("sip:user@[::g]"), "invalid IPv6 reference");
  EXPECT_EQ(errorOf("sip:user@300.1.1.1"), "invalid IPv4 address");
  EXPECT_EQ(errorOf("tel:12+34"), "misplaced '+' in telephone number");
  EXPECT_EQ(errorOf("foo:a b"), "invalid character in URI");
  EXPECT_EQ(errorOf("foo:"), "empty URI after scheme");
  EXPECT_EQ(errorOf("foo:%4g"), "invalid %-escape in URI");
  EXPECT_FALSE(unescape("%4").isOk());
  EXPECT_FALSE(unescape("%G0").isOk());
}

bool equivalent(std::string_view a, std::string_view b) {
  return uriEquivalent(mustParse(a), mustParse(b));
}

TEST(UriTest, EquivalentPerRfc3261Section19_1_4) {
  // The RFC's own examples of equivalent URIs.
  EXPECT_TRUE(
      equivalent("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"));
  EXPECT_TRUE(equivalent("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"));
  EXPECT_TRUE(equivalent("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"));
  EXPECT_TRUE(equivalent("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"));
  EXPECT_TRUE(equivalent("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                         "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"));
  EXPECT_TRUE(equivalent("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                         "sip:alice@atlanta.com?priority=urgent&subject=project%20x"));
  // ... and of URIs that are not.
  EXPECT_FALSE(
      equivalent("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"));
  EXPECT_FALSE(equivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
  EXPECT_FALSE(equivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"));
  EXPECT_FALSE(equivalent("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"));
  EXPECT_FALSE(equivalent("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"));
  EXPECT_FALSE(equivalent("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
  // More rules.
  EXPECT_FALSE(equivalent("sip:alice@example.com", "sips:alice@example.com"));
  EXPECT_FALSE(equivalent("sip:example.com", "sip:alice@example.com"));
  EXPECT_FALSE(equivalent("sip:a%3bb@example.com", "sip:a;b@example.com"))
      << "an escaped reserved character differs from the literal one";
  EXPECT_TRUE(equivalent("sip:a%3bb@example.com", "sip:a%3Bb@example.com"));
  EXPECT_TRUE(equivalent("sip:u@[2001:db8::1]", "sip:u@[2001:DB8:0:0::1]"));
  EXPECT_FALSE(equivalent("sip:u@x.com;user=phone", "sip:u@x.com"));
  EXPECT_TRUE(equivalent("tel:+1-201-555-0123", "tel:+12015550123"));
  EXPECT_FALSE(equivalent("tel:+12015550123", "tel:+12015550124"));
}

}  // namespace
}  // namespace sipwake::sip
