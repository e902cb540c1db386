#include "sip/headers.h"

#include <gtest/gtest.h>

#include "sip/message.h"
#include "sip/parse_internal.h"
#include "test_util.h"

namespace sipwake::sip {
namespace {

using testing::dataDir;
using testing::parseOk;
using testing::readFile;

Message corpus(std::string_view name) {
  return parseOk(readFile(dataDir() / "rfc4475" / (std::string(name) + ".sip")));
}

TEST(ViaTest, ParamsAndSentBy) {
  Result<std::vector<Via>> r = parseViaList(
      "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport;received=198.51.100.7;"
      "maddr=239.255.255.1;ttl=16");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->size(), 1u);
  const Via& v = r->front();
  EXPECT_EQ(v.protocol_name, "SIP");
  EXPECT_EQ(v.protocol_version, "2.0");
  EXPECT_EQ(v.transport, "UDP");
  EXPECT_EQ(v.host, "192.0.2.1");
  EXPECT_TRUE(v.has_port);
  EXPECT_EQ(v.port, 5060);
  EXPECT_EQ(v.branch(), "z9hG4bK776asdhds");
  EXPECT_TRUE(v.hasMagicCookie());
  ASSERT_NE(v.rport(), nullptr);
  EXPECT_FALSE(v.rport()->has_value);
  EXPECT_EQ(v.received()->value, "198.51.100.7");
  EXPECT_EQ(v.maddr()->value, "239.255.255.1");
  EXPECT_EQ(v.ttl()->value, "16");
}

TEST(ViaTest, RportWithValueIpv6AndLists) {
  Result<std::vector<Via>> r = parseViaList(
      "SIP/2.0/TCP [2001:db8::9:1]:6050;branch=z9hG4bKas3;rport=5061;received=[2001:db8::9:255], "
      "SIP/2.0/TLS host.example.com;branch=1, SIP/2.0/WSS abc.invalid;branch=z9hG4bKx");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].host, "[2001:db8::9:1]");
  EXPECT_EQ((*r)[0].port, 6050);
  EXPECT_EQ((*r)[0].rport()->value, "5061");
  EXPECT_EQ((*r)[0].received()->value, "[2001:db8::9:255]");
  EXPECT_EQ((*r)[1].transport, "TLS");
  EXPECT_FALSE((*r)[1].hasMagicCookie());
  EXPECT_FALSE((*r)[1].has_port);
  EXPECT_EQ((*r)[2].transport, "WSS");
  EXPECT_EQ(
      (*r)[0].text,
      "SIP/2.0/TCP [2001:db8::9:1]:6050;branch=z9hG4bKas3;rport=5061;received=[2001:db8::9:255]");
  // RFC 5118 §4.5: received without brackets.
  EXPECT_TRUE(parseViaList("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z").isOk());
}

TEST(ViaTest, Defects) {
  auto err = [](std::string_view v) {
    Result<std::vector<Via>> r = parseViaList(v);
    return r.isOk() ? std::string("(parsed)") : r.status().message();
  };
  EXPECT_EQ(err("SIP/2.0/UDP 192.0.2.15;;,;,,"), "empty parameter");
  EXPECT_EQ(err("SIP/2.0/UDP"), "missing sent-by");
  EXPECT_EQ(err("SIP/2.0 192.0.2.1"), "malformed sent-protocol");
  EXPECT_EQ(err("SIP/2.0/UDP 192.0.2.1;received=nothost"), "invalid received parameter");
  EXPECT_EQ(err("SIP/2.0/UDP 192.0.2.1;rport=x"), "invalid rport");
  EXPECT_EQ(err("SIP/2.0/UDP 192.0.2.1;ttl=256"), "invalid ttl");
  EXPECT_EQ(err("SIP/2.0/UDP 192.0.2.1:70000"), "invalid port");
  EXPECT_EQ(err("SIP/2.0/UDP 192.0.2.1;branch=a\"b\""), "unexpected character after Via value");
  EXPECT_EQ(err("SIP/2.0/UDP 192.0.2.1,"), "missing sent-protocol");
  EXPECT_EQ(err("SIP/2.0/UDP [::1;branch=x"), "unterminated IPv6 reference");
}

TEST(NameAddrTest, Forms) {
  Result<NameAddr> a =
      parseNameAddr("\"Alice \\\"A\\\" Smith\" <sip:alice@example.com;transport=tcp>;tag=88sja8x");
  ASSERT_TRUE(a.isOk()) << a.status().toString();
  EXPECT_TRUE(a->display_quoted);
  EXPECT_EQ(a->display_name, "Alice \\\"A\\\" Smith") << "quoted-pairs are left as written";
  EXPECT_TRUE(a->angle_brackets);
  EXPECT_EQ(a->uri.user, "alice");
  EXPECT_EQ(a->uri.param("transport")->value, "tcp");
  EXPECT_EQ(a->tag(), "88sja8x");

  Result<NameAddr> b = parseNameAddr("Bob Smith <sip:bob@example.com>");
  ASSERT_TRUE(b.isOk());
  EXPECT_EQ(b->display_name, "Bob Smith");
  EXPECT_FALSE(b->display_quoted);

  Result<NameAddr> c = parseNameAddr("sip:carol@example.com;tag=1;unknown");
  ASSERT_TRUE(c.isOk());
  EXPECT_FALSE(c->angle_brackets);
  EXPECT_TRUE(c->uri.params.empty()) << "in addr-spec form ';' starts header params";
  EXPECT_EQ(c->tag(), "1");
  EXPECT_NE(c->param("unknown"), nullptr);

  Result<NameAddr> d = parseNameAddr("caller<sip:caller@example.com>;tag=323");  // lwsdisp
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(d->display_name, "caller");

  Result<NameAddr> e = parseNameAddr("<http://www.example.com>;tag=3234233");  // unksm2
  ASSERT_TRUE(e.isOk());
  EXPECT_EQ(e->uri.scheme, Uri::Scheme::kOther);
  EXPECT_TRUE(parseNameAddr("isbn:2983792873").isOk());
}

TEST(NameAddrTest, Defects) {
  auto err = [](std::string_view v) {
    Result<NameAddr> r = parseNameAddr(v);
    return r.isOk() ? std::string("(parsed)") : r.status().message();
  };
  EXPECT_EQ(err("\"Mr. J. User <sip:j.user@example.com>"), "unterminated quoted string");
  EXPECT_EQ(err("\"Watson, Thomas\" < sip:t.watson@example.org >"),
            "whitespace inside <addr-spec>");
  EXPECT_EQ(err("Bell, Alexander <sip:a.g.bell@example.com>;tag=43"), "missing URI scheme");
  EXPECT_EQ(err("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            "a URI with headers must be enclosed in <>");
  EXPECT_EQ(err("\"A\" sip:a@b"), "expected '<' after display name");
  EXPECT_EQ(err("<sip:a@b"), "missing '>'");
  EXPECT_EQ(err("<>"), "missing URI");
  EXPECT_EQ(err("<sip:a@b>;tag"), "invalid tag");
  EXPECT_EQ(err("<sip:a@b>;tag=\"x\""), "invalid tag");
  EXPECT_EQ(err("<sip:a@b> x"), "unexpected characters after address");
  EXPECT_EQ(err("<sip:a@b>, <sip:c@d>"), "unexpected characters after address");
  EXPECT_EQ(err("<sip:a@b>;p=\"unterminated"), "unterminated quoted string");
  EXPECT_EQ(err(std::string_view("\"a\x01\" <sip:a@b>", 15)), "control character in quoted string");
}

TEST(ContactTest, StarExpiresQInstanceRegId) {
  Result<std::vector<ContactValue>> star = parseContactList(" * ");
  ASSERT_TRUE(star.isOk());
  ASSERT_EQ(star->size(), 1u);
  EXPECT_TRUE(star->front().star);

  Result<std::vector<ContactValue>> r = parseContactList(
      "<sip:alice@192.0.2.10:51234;transport=tls;pn-provider=apns;pn-prid=00fc13adff78512%3a5a6c>"
      ";+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1;expires=3600;q="
      "0.7, "
      "\"Desk\" <sip:alice@[2001:db8::5]>;expires=0;q=1.000, sip:alice@192.0.2.11;q=0");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->size(), 3u);
  const ContactValue& c = (*r)[0];
  EXPECT_FALSE(c.star);
  EXPECT_EQ(c.expires(), 3600u);
  EXPECT_DOUBLE_EQ(*c.q(), 0.7);
  EXPECT_EQ(c.instance(), "urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF");
  EXPECT_EQ(c.regId(), 1u);
  EXPECT_EQ(c.addr.uri.param("pn-prid")->value, "00fc13adff78512%3a5a6c");
  EXPECT_EQ(*unescape(c.addr.uri.param("pn-prid")->value), "00fc13adff78512:5a6c");
  EXPECT_EQ((*r)[1].expires(), 0u);
  EXPECT_DOUBLE_EQ(*(*r)[1].q(), 1.0);
  EXPECT_EQ((*r)[1].addr.display_name, "Desk");
  EXPECT_DOUBLE_EQ(*(*r)[2].q(), 0.0);
  EXPECT_FALSE((*r)[2].instance().size());
  EXPECT_FALSE((*r)[2].regId().has_value());
}

TEST(ContactTest, PushParamsAsHeaderParams) {
  // Some clients put push parameters after '>' (ABTO, react-native-pjsip): both must be readable.
  Result<std::vector<ContactValue>> r = parseContactList(
      "<sip:404@172.30.20.68:5061;ob>;push-token-type=firebase;push-token-app=com.example;"
      "push-token-id=fcm%3aAPA91bH;app-id=com.example.app;pn-voip-tok=ab12;pn-provider=fcm");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const NameAddr& a = r->front().addr;
  EXPECT_EQ(a.param("push-token-id")->value, "fcm%3aAPA91bH");
  EXPECT_EQ(a.param("push-token-type")->value, "firebase");
  EXPECT_EQ(a.param("PN-PROVIDER")->value, "fcm");
  EXPECT_EQ(a.uri.param("ob")->has_value, false);
}

TEST(ContactTest, UnquotedParamValueWithBlanks) {
  // The ABTO SDK's own example: "push-token-app=hero voip" (a space in an unquoted value). The
  // value runs to the next ';', ',' or the end and keeps its inner blanks.
  Result<std::vector<ContactValue>> r = parseContactList(
      "<sip:404@172.30.20.68:5061>;push-token-type=firebase;push-token-app=hero voip;"
      "push-token-id=e-3akVQA_Gk%3aAPA91bF");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  const NameAddr& a = r->front().addr;
  EXPECT_EQ(a.param("push-token-app")->value, "hero voip");
  EXPECT_EQ(a.param("push-token-id")->value, "e-3akVQA_Gk%3aAPA91bF");

  // Several blanks and tabs inside, blanks before ';' / ',' / the end are not part of it, and a
  // ',' ends the value (it separates contacts).
  r = parseContactList("<sip:a@b>;x=one  two\tthree ;y=4, sip:c@d;z=last word  ");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].addr.param("x")->value, "one  two\tthree");
  EXPECT_EQ((*r)[0].addr.param("y")->value, "4");
  EXPECT_EQ((*r)[1].addr.param("z")->value, "last word");
  EXPECT_EQ((*r)[1].addr.uri.host, "d");
  r = parseContactList("<sip:a@b>;x=hero voip,<sip:c@d>");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].addr.param("x")->value, "hero voip");

  // Only Contact: Route / From / To keep the strict grammar.
  EXPECT_FALSE(parseNameAddrList("<sip:p@h;lr>;x=a b").isOk());
  EXPECT_FALSE(parseNameAddr("<sip:a@b>;x=a b").isOk());
}

TEST(ContactTest, AbtoSeedRegisterParsesAsWritten) {
  // The REGISTER of the ABTO SDK's push document, byte for byte.
  Message m = parseOk(readFile(dataDir() / "push" / "abto-seed-register.sip"));
  ASSERT_TRUE(m.contacts().isOk()) << m.contacts().status().toString();
  const NameAddr& a = m.contacts()->front().addr;
  EXPECT_EQ(a.uri.host, "172.30.20.68");
  EXPECT_EQ(a.param("push-token-type")->value, "firebase");
  EXPECT_EQ(a.param("push-token-app")->value, "hero voip");
  EXPECT_EQ(a.param("push-token-id")->value.substr(0, 13), "e-3akVQA_Gk%3");
  EXPECT_EQ(a.params.size(), 3u);
}

TEST(ContactTest, MalformedParamsAreStillRefusedAndNamed) {
  auto err = [](std::string_view v) {
    std::string_view bad_param = "(none)";
    Status s = detail::validateNameAddrList(v, /*allow_star=*/true, &bad_param);
    EXPECT_EQ(s.isOk(), parseContactList(v).isOk()) << v;  // validation == parsing
    return s.isOk() ? std::string("ok") : std::string(bad_param) + ": " + s.message();
  };
  EXPECT_EQ(err("<sip:a@b>;app=hero <voip>"), "app: unexpected character after parameter 'app'");
  EXPECT_EQ(err("<sip:a@b>;app=hero voip=x"), "app: unexpected character after parameter 'app'");
  EXPECT_EQ(err("<sip:a@b>;app=\"q\" x"), "app: unexpected character after parameter 'app'");
  EXPECT_EQ(err("<sip:a@b>;flag junk"), "flag: unexpected character after parameter 'flag'");
  EXPECT_EQ(err("<sip:a@b>;app= ;x=1"), "app: empty value for parameter 'app'");
  EXPECT_EQ(err("<sip:a@b>;app=\"open"), "app: unterminated quoted string");
  EXPECT_EQ(err("<sip:a@b>; ;x=1"), ": empty parameter");
  // A folded line inside a value is not a blank of the value.
  EXPECT_EQ(err("<sip:a@b>;app=hero\r\n voip"), "app: unexpected character after parameter 'app'");
  EXPECT_EQ(err("<sip:a@b>;app=hero\r\n ;x=1"), "ok");
  EXPECT_EQ(err("<sip:a@b> x"), "(none): unexpected character after address");
}

TEST(ContactTest, OutOfRangeValuesAreAbsent) {
  Result<std::vector<ContactValue>> r = parseContactList(
      "<sip:user@host129.example.com>\r\n  ;expires=280297596632815;q=1.5;reg-id=x");
  ASSERT_TRUE(r.isOk());
  EXPECT_FALSE(r->front().expires().has_value()) << "scalar02: overlarge expires";
  EXPECT_FALSE(r->front().q().has_value());
  EXPECT_FALSE(r->front().regId().has_value());
  EXPECT_FALSE(parseContactList("*, <sip:a@b>").isOk());
  EXPECT_FALSE(parseContactList("").isOk());
  EXPECT_FALSE(parseContactList("<sip:a@b>,,<sip:c@d>").isOk());
}

TEST(RouteTest, Lists) {
  Result<std::vector<NameAddr>> r = parseNameAddrList(
      "<sip:p1.example.com;lr>,<sip:p2.example.com;lr;transport=tcp>\r\n , "
      "<sip:[2001:db8::1]:5061;lr>");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE((*r)[0].uri.hasLr());
  EXPECT_EQ((*r)[1].uri.param("transport")->value, "tcp");
  EXPECT_EQ((*r)[2].uri.port, 5061);
}

TEST(ScalarHeadersTest, CSeqExpiresMaxForwardsTokens) {
  Result<CSeq> c = parseCSeq(" 0009\r\n  INVITE ");
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->number, 9u);
  EXPECT_EQ(c->method_text, "INVITE");
  EXPECT_EQ(methodOf(*c), Method::kInvite);
  EXPECT_EQ(methodOf(*parseCSeq("1 FOO")), Method::kUnknown);
  EXPECT_EQ(parseCSeq("4294967295 ACK")->number, 4294967295u);
  EXPECT_EQ(parseCSeq("4294967296 ACK").status().message(), "sequence number larger than 2**32-1");
  EXPECT_EQ(parseCSeq("-1 ACK").status().message(), "missing sequence number");
  EXPECT_EQ(parseCSeq("1").status().message(), "missing method");
  EXPECT_EQ(parseCSeq("1 INVITE x").status().message(), "unexpected characters after method");

  EXPECT_EQ(*parseDeltaSeconds(" 3600 "), 3600u);
  EXPECT_EQ(parseDeltaSeconds("1" + std::string(30, '0')).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(parseDeltaSeconds("-1").status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(parseDeltaSeconds("").isOk());

  EXPECT_EQ(*parseMaxForwards("0068"), 68);
  EXPECT_EQ(*parseMaxForwards("0"), 0);
  EXPECT_FALSE(parseMaxForwards("256").isOk());
  EXPECT_FALSE(parseMaxForwards("-1").isOk());
  EXPECT_FALSE(parseMaxForwards("7a").isOk());

  Result<std::vector<std::string_view>> t =
      parseTokenList("nothingSupportsThis, nothingSupportsThisEither");
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ(*t,
            (std::vector<std::string_view>{"nothingSupportsThis", "nothingSupportsThisEither"}));
  EXPECT_TRUE(parseTokenList("")->empty());
  EXPECT_FALSE(parseTokenList("a,,b").isOk());
  EXPECT_FALSE(parseTokenList("a b").isOk());
}

TEST(SplitHeaderListTest, RespectsQuotesAndAngles) {
  EXPECT_EQ(splitHeaderList("a, \"b,c\" <sip:x,y@z>;p=1 ,, d"),
            (std::vector<std::string_view>{"a", "\"b,c\" <sip:x,y@z>;p=1", "d"}));
  EXPECT_EQ(splitHeaderList("\"x\\\",y\", z"), (std::vector<std::string_view>{"\"x\\\",y\"", "z"}));
  EXPECT_TRUE(splitHeaderList(" , ").empty());
}

// ---- typed values read out of the RFC 4475 valid messages --------------------------------

TEST(TortureValuesTest, Wsinv) {
  Message m = corpus("wsinv");
  EXPECT_EQ(m.requestUri().user, "vivekg");
  EXPECT_NE(m.requestUri().param("unknownparam"), nullptr);
  EXPECT_EQ(m.to()->tag(), "1918181833n");
  EXPECT_EQ(m.from()->tag(), "98asjd8");
  EXPECT_EQ(m.from()->display_name, "J Rosenberg \\\\\\\"");
  EXPECT_EQ(*m.maxForwards(), 68);
  EXPECT_EQ(m.callId(), "wsinv.ndaksdj@192.0.2.1");
  EXPECT_EQ(m.cseq()->number, 9u);
  Result<std::vector<Via>> vias = m.vias();
  ASSERT_TRUE(vias.isOk());
  ASSERT_EQ(vias->size(), 3u);
  EXPECT_EQ((*vias)[0].host, "192.0.2.2");
  EXPECT_EQ((*vias)[0].branch(), "390skdjuw");
  EXPECT_EQ((*vias)[1].transport, "TCP");
  EXPECT_EQ((*vias)[1].host, "spindle.example.com");
  EXPECT_EQ((*vias)[1].branch(), "z9hG4bK9ikj8");
  EXPECT_EQ((*vias)[2].host, "192.168.255.111");
  EXPECT_EQ((*vias)[2].branch(), "z9hG4bK30239");
  Result<std::vector<NameAddr>> routes = m.routes();
  ASSERT_EQ(routes->size(), 1u);
  EXPECT_TRUE(routes->front().uri.hasLr());
  EXPECT_EQ(routes->front().uri.param("unknownwith")->value, "value");
  Result<std::vector<ContactValue>> contacts = m.contacts();
  ASSERT_EQ(contacts->size(), 1u);
  EXPECT_EQ(contacts->front().addr.display_name, "Quoted string \\\"\\\"");
  EXPECT_EQ(contacts->front().addr.param("newparam")->value, "newvalue");
  EXPECT_NE(contacts->front().addr.param("secondparam"), nullptr);
  EXPECT_DOUBLE_EQ(*contacts->front().q(), 0.33);
  EXPECT_EQ(m.find("s")->value, "");
  EXPECT_EQ(m.find("newfangledheader")->value, "newfangled value\r\n continued newfangled value");
  EXPECT_EQ(m.find("UnknownHeaderWithUnusualValue")->value, ";;,,;;,;");
  EXPECT_EQ(m.body().size(), 150u);
}

TEST(TortureValuesTest, IntmethEscapesAndLongreq) {
  Message m = corpus("intmeth");
  EXPECT_EQ(m.method(), Method::kUnknown);
  EXPECT_EQ(m.methodText(), "!interesting-Method0123456789_*+`.%indeed'~");
  EXPECT_EQ(m.cseq()->method_text, m.methodText());
  EXPECT_EQ(m.to()->display_name, std::string_view("BEL:\\\x07 NUL:\\\0 DEL:\\\x7F", 20));
  EXPECT_EQ(m.from()->display_name, "token1~` token2'+_ token3*%!.-");
  EXPECT_EQ(m.from()->tag(), "_token~1'+`*%!-.");
  EXPECT_NE(m.from()->param("fromParam''~+*_!.-%"), nullptr);
  EXPECT_EQ(m.callId(), "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
  EXPECT_EQ(m.find("extensionHeader-!.%*+_`'~")->value,
            "\xEF\xBB\xBF\xE5\xA4\xA7\xE5\x81\x9C\xE9\x9B\xBB");
  EXPECT_EQ(*m.maxForwards(), 255);

  Message e = corpus("esc01");
  EXPECT_EQ(*unescape(e.to()->uri.user), "user");
  EXPECT_EQ(*unescape(e.from()->uri.user), "I have spaces");
  EXPECT_EQ(e.find(HeaderId::kContentType)->value, "application/sdp") << "compact 'C'";
  Result<std::vector<ContactValue>> contacts = e.contacts();
  ASSERT_TRUE(contacts.isOk());
  const Uri& contact = contacts->front().addr.uri;
  EXPECT_EQ(*unescape(contact.user), "caller");
  EXPECT_EQ(*unescape(contact.params[0].name), "lr");
  EXPECT_EQ(*unescape(contact.params[1].value), "value%41");

  Message n = corpus("escnull");
  EXPECT_EQ(*unescape(n.contacts()->at(1).addr.uri.user), std::string(2, '\0'));

  Message e2 = corpus("esc02");
  EXPECT_EQ(e2.methodText(), "RE%47IST%45R");
  EXPECT_EQ(e2.method(), Method::kUnknown) << "methods are not unescaped";
  EXPECT_EQ(e2.contacts()->size(), 2u) << "C%6Fntact is not Contact";
  EXPECT_NE(e2.find("C%6Fntact"), nullptr);

  Message l = corpus("longreq");
  EXPECT_EQ(l.vias()->size(), 34u);
  EXPECT_EQ(l.count(HeaderId::kVia), 34u) << "every odd spelling and compact form is Via";
  EXPECT_EQ(l.to()->uri.port, 6000);
  EXPECT_EQ(l.to()->uri.params.size(), 3u);
  EXPECT_EQ(l.from()->params.size(), 3u);

  Message t = corpus("transports");
  Result<std::vector<Via>> vias = t.vias();
  ASSERT_EQ(vias->size(), 5u);
  EXPECT_EQ((*vias)[1].transport, "SCTP");
  EXPECT_EQ((*vias)[3].transport, "UNKNOWN");

  Message u = corpus("unreason");
  EXPECT_EQ(u.statusCode(), 200);
  EXPECT_EQ(u.reasonPhrase().substr(0, 14), "= 2**3 * 5**2 ");
  Message nr = corpus("noreason");
  EXPECT_EQ(nr.statusCode(), 100);
  EXPECT_EQ(nr.reasonPhrase(), "");

  Message b = corpus("bext01");
  EXPECT_EQ(b.optionTags(HeaderId::kProxyRequire)->size(), 2u);
  EXPECT_EQ(b.optionTags(HeaderId::kRequire)->front(), "nothingSupportsThis");
  Message z = corpus("zeromf");
  EXPECT_EQ(*z.maxForwards(), 0);
  Message ra = corpus("regaut01");
  EXPECT_EQ(ra.find(HeaderId::kAuthorization)->value, "NoOneKnowsThisScheme opaque-data=here");
  Message c1 = corpus("cparam01");
  EXPECT_NE(c1.contacts()->front().addr.param("unknownparam"), nullptr);
  EXPECT_TRUE(c1.contacts()->front().addr.uri.params.empty());
  Message c2 = corpus("cparam02");
  EXPECT_NE(c2.contacts()->front().addr.uri.param("unknownparam"), nullptr);
  Message re = corpus("regescrt");
  EXPECT_EQ(re.contacts()->front().addr.uri.headers.front().name, "Route");
}

bool isXParam(std::string_view name) {
  return name.size() >= 2 && (name[0] == 'x' || name[0] == 'X') && name[1] == '-';
}

TEST(EraseParamsTest, UriKeepsEverythingElseAsWritten) {
  EXPECT_EQ(eraseUriParams("sip:bob@h:5060;x-a=1;transport=udp;X-B;lr", isXParam),
            "sip:bob@h:5060;transport=udp;lr");
  EXPECT_EQ(eraseUriParams("sip:bob@h;transport=tcp", isXParam), "sip:bob@h;transport=tcp");
  EXPECT_EQ(eraseUriParams("sip:bob@h;x-a=1?X-h=2", isXParam), "sip:bob@h?X-h=2");
  EXPECT_EQ(eraseUriParams("not a uri;x-a=1", isXParam), "not a uri;x-a=1");
}

TEST(EraseParamsTest, NameAddrListUriAndHeaderParams) {
  EXPECT_EQ(
      eraseNameAddrParams(
          "\"Bob\" <sip:b@h;x-tok=ab;transport=udp;x-flag>;+sip.instance=\"<urn:x>\" ; x-h=1;q=0.5",
          isXParam),
      "\"Bob\" <sip:b@h;transport=udp>;+sip.instance=\"<urn:x>\";q=0.5");
  // addr-spec form: the params belong to the header.
  EXPECT_EQ(eraseNameAddrParams("sip:b@h;x-a=1;expires=60, <sip:c@h;x-b=2>", isXParam),
            "sip:b@h;expires=60, <sip:c@h>");
  EXPECT_EQ(eraseNameAddrParams("<sip:c@h>;x-q=\"a;b\"", isXParam), "<sip:c@h>");
  EXPECT_EQ(eraseNameAddrParams("*", isXParam), "*");
  EXPECT_EQ(eraseNameAddrParams("<sip:c@h;x-a", isXParam), "<sip:c@h;x-a");
}

}  // namespace
}  // namespace sipwake::sip
