#include <gtest/gtest.h>

#include "sip/message.h"
#include "test_util.h"

namespace sipwake::sip {
namespace {

using testing::crlf;
using testing::parse;
using testing::parseOk;
using Kind = ParseOutcome::Kind;

std::string options(std::initializer_list<std::string_view> extra,
                    std::string_view start = "OPTIONS sip:bob@example.com SIP/2.0") {
  std::vector<std::string_view> lines = {start,
                                         "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
                                         "From: <sip:a@example.com>;tag=1",
                                         "To: <sip:bob@example.com>",
                                         "Call-ID: c1@example.com",
                                         "CSeq: 1 OPTIONS",
                                         "Max-Forwards: 70"};
  lines.insert(lines.end(), extra.begin(), extra.end());
  std::string out;
  for (std::string_view l : lines) out.append(l).append("\r\n");
  return out + "Content-Length: 0\r\n\r\n";
}

TEST(HeaderNameTest, CanonicalCompactAndCaseInsensitive) {
  EXPECT_EQ(headerIdFromName("Via"), HeaderId::kVia);
  EXPECT_EQ(headerIdFromName("vIA"), HeaderId::kVia);
  EXPECT_EQ(headerIdFromName("v"), HeaderId::kVia);
  EXPECT_EQ(headerIdFromName("V"), HeaderId::kVia);
  EXPECT_EQ(headerIdFromName("f"), HeaderId::kFrom);
  EXPECT_EQ(headerIdFromName("t"), HeaderId::kTo);
  EXPECT_EQ(headerIdFromName("i"), HeaderId::kCallId);
  EXPECT_EQ(headerIdFromName("m"), HeaderId::kContact);
  EXPECT_EQ(headerIdFromName("l"), HeaderId::kContentLength);
  EXPECT_EQ(headerIdFromName("c"), HeaderId::kContentType);
  EXPECT_EQ(headerIdFromName("k"), HeaderId::kSupported);
  EXPECT_EQ(headerIdFromName("s"), HeaderId::kSubject);
  EXPECT_EQ(headerIdFromName("e"), HeaderId::kContentEncoding);
  EXPECT_EQ(headerIdFromName("o"), HeaderId::kEvent);
  EXPECT_EQ(headerIdFromName("r"), HeaderId::kReferTo);
  EXPECT_EQ(headerIdFromName("x"), HeaderId::kOther);
  EXPECT_EQ(headerIdFromName("CALL-ID"), HeaderId::kCallId);
  EXPECT_EQ(headerIdFromName("www-authenticate"), HeaderId::kWwwAuthenticate);
  EXPECT_EQ(headerIdFromName("Proxy-Authorization"), HeaderId::kProxyAuthorization);
  EXPECT_EQ(headerIdFromName("Feature-Caps"), HeaderId::kFeatureCaps);
  EXPECT_EQ(headerIdFromName("Max-Forward"), HeaderId::kOther);
  EXPECT_EQ(headerIdFromName(""), HeaderId::kOther);
  for (int i = 1; i < static_cast<int>(HeaderId::kCount); ++i) {
    const auto id = static_cast<HeaderId>(i);
    EXPECT_EQ(headerIdFromName(canonicalHeaderName(id)), id) << canonicalHeaderName(id);
  }
  EXPECT_EQ(canonicalHeaderName(HeaderId::kOther), "");
}

TEST(MethodTest, NamesAreCaseSensitive) {
  EXPECT_EQ(methodFromName("INVITE"), Method::kInvite);
  EXPECT_EQ(methodFromName("invite"), Method::kUnknown);
  EXPECT_EQ(methodFromName("PUBLISH"), Method::kPublish);
  EXPECT_EQ(methodName(Method::kRegister), "REGISTER");
  EXPECT_EQ(methodName(Method::kUnknown), "");
}

TEST(ParserTest, RequestFieldsAreViewsInWireOrder) {
  const std::string input = testing::typicalRegister();
  Message m = parseOk(input);
  EXPECT_TRUE(m.isRequest());
  EXPECT_EQ(m.method(), Method::kRegister);
  EXPECT_EQ(m.methodText(), "REGISTER");
  EXPECT_EQ(m.requestUriText(), "sip:example.com");
  EXPECT_EQ(m.version(), "SIP/2.0");
  ASSERT_EQ(m.headers().size(), 13u);
  EXPECT_EQ(m.headers()[0].id, HeaderId::kVia);
  EXPECT_EQ(m.headers()[0].name, "Via");
  EXPECT_EQ(m.headers()[1].raw, "Max-Forwards: 70");
  EXPECT_EQ(m.headers()[1].value, "70");
  EXPECT_EQ(m.find(HeaderId::kAuthorization)->value.substr(0, 7), "Digest ");
  EXPECT_EQ(m.count(HeaderId::kContact), 1u);
  EXPECT_EQ(*m.expires(), 3600u);
  EXPECT_EQ(m.optionTags(HeaderId::kSupported)->size(), 4u);
  EXPECT_EQ(m.find("user-agent")->value, "ExamplePhone/5.2.0 (iOS 17.4)");
  EXPECT_EQ(m.find("X-Not-There"), nullptr);
  EXPECT_EQ(m.values(HeaderId::kAllow).size(), 1u);
}

TEST(ParserTest, FoldedLinesAndOddSpacing) {
  Message m =
      parseOk(crlf({"OPTIONS sip:bob@example.com SIP/2.0",
                    "Via  :\tSIP/2.0/UDP\r\n  192.0.2.1\r\n\t;branch=z9hG4bK1",
                    "From:<sip:a@example.com>;tag=1", "To:\r\n <sip:bob@example.com>", "Call-ID:c1",
                    "CSeq: 1\r\n OPTIONS", "X-Folded: one\r\n two\r\n\tthree   ", "l:0"}));
  EXPECT_EQ(m.topVia()->host, "192.0.2.1");
  EXPECT_EQ(m.topVia()->branch(), "z9hG4bK1");
  EXPECT_EQ(m.to()->uri.user, "bob");
  EXPECT_EQ(m.cseq()->method_text, "OPTIONS");
  EXPECT_EQ(m.find("x-folded")->value, "one\r\n two\r\n\tthree");
  EXPECT_EQ(m.find("x-folded")->raw, "X-Folded: one\r\n two\r\n\tthree   ");
}

TEST(ParserTest, ResponsesParseAndMalformedOnesAreDropped) {
  Message r = parseOk(crlf({"SIP/2.0 180 Ringing", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
                            "From: <sip:a@example.com>;tag=1", "To: <sip:b@example.com>;tag=2",
                            "Call-ID: c1", "CSeq: 1 INVITE", "Content-Length: 0"}));
  EXPECT_TRUE(r.isResponse());
  EXPECT_EQ(r.statusCode(), 180);
  EXPECT_EQ(r.reasonPhrase(), "Ringing");
  EXPECT_EQ(r.cseq()->method_text, "INVITE");

  const std::vector<std::string> bad = {
      crlf({"SIP/2.0 99 Too Small", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "CSeq: 1 INVITE"}),
      crlf({"SIP/2.0 700 Too Big", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "CSeq: 1 INVITE"}),
      crlf({"SIP/2.0 2000 X", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "CSeq: 1 INVITE"}),
      crlf({"SIP/3.0 200 OK", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@b>;tag=1",
            "To: <sip:a@b>", "Call-ID: x", "CSeq: 1 INVITE"}),
      crlf({"SIP/2.0 200 OK", "From: <sip:a@b>;tag=1", "To: <sip:a@b>", "Call-ID: x",
            "CSeq: 1 INVITE"}),
  };
  for (const std::string& b : bad) {
    ParseOutcome o = parse(b);
    EXPECT_EQ(o.kind, Kind::kDrop) << b;
    EXPECT_FALSE(o.message.has_value());
    EXPECT_FALSE(o.drop_reason.empty());
  }
}

struct RejectCase {
  std::string input;
  int code;
  std::string reason;
};

TEST(ParserTest, RejectionsNameTheDefect) {
  const std::vector<RejectCase> cases = {
      {options({"Max-Forwards: 256"}), 400, "Bad Request - Conflicting Max-Forwards headers"},
      {options({}, "OPTIONS sip:bob@example.com;x=%G1 SIP/2.0"), 400,
       "Bad Request - Malformed Request-URI"},
      {options({}, "OPTIONS sip:b%6Fb@exa%mple.com SIP/2.0"), 400,
       "Bad Request - Malformed Request-URI"},
      {options({}, "OPTIONS sip:bob@example.com SIP/2.0 extra"), 400,
       "Bad Request - Malformed Request-Line"},
      {options({}, "OPT\"IONS sip:bob@example.com SIP/2.0"), 400,
       "Bad Request - Malformed Request-Line"},
      {options({}, "OPTIONS sip:bob@example.com SIP/2"), 400,
       "Bad Request - Malformed Request-Line"},
      {options({}, "OPTIONS sip:bob@example.com SIP/2.1"), 505, "Version Not Supported"},
      {options({}, "OPTIONS http://example.com/ SIP/2.0"), 416, "Unsupported URI Scheme"},
      {options({"Expires: -1"}), 400, "Bad Request - Malformed Expires"},
      {options({"Expires: 99999999999"}), 400, "Bad Request - Malformed Expires"},
      {options({"Route: <sip:p1.example.com;lr"}), 400, "Bad Request - Malformed Route"},
      {options({"Record-Route: sip:p1.example.com;lr, <sip:x"}), 400,
       "Bad Request - Malformed Record-Route"},
      {options({"Proxy-Require: a b"}), 400, "Bad Request - Malformed Proxy-Require"},
      {options({"Contact: <sip:a@b>;expires=1, *"}), 400, "Bad Request - Malformed Contact"},
      {options({"Contact: <sip:a@b>;push-token-app=hero <voip>"}), 400,
       "Bad Request - Malformed Contact Parameter push-token-app"},
      {options({"Contact: <sip:a@b>;expires=;q=1"}), 400,
       "Bad Request - Malformed Contact Parameter expires"},
      {options({"Route: <sip:p1@h;lr>;x=a b"}), 400, "Bad Request - Malformed Route"},
      {options({"Call-ID: other"}), 400, "Bad Request - Conflicting Call-ID headers"},
      {options({"From: <sip:x@y>;tag=2"}), 400, "Bad Request - Conflicting From headers"},
      {options({"To: <sip:x@y>"}), 400, "Bad Request - Conflicting To headers"},
      {options({"No colon here"}), 400, "Bad Request - Malformed header field"},
      {options({": no name"}), 400, "Bad Request - Malformed header field"},
      {options({"Bad Name: x"}), 400, "Bad Request - Malformed header field"},
      {options({"X-Bare-CR: a\rb"}), 400, "Bad Request - Malformed line ending"},
      {crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
             "CSeq: 1 OPTIONS", "Call-ID: c", "From: <sip:a@b>;tag=1", "To: <sip:a@b>",
             "Max-Forwards: 1a"}),
       400, "Bad Request - Malformed Max-Forwards"},
      {crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
             "CSeq: 1 OPTIONS", "Call-ID: bad id", "From: <sip:a@b>;tag=1", "To: <sip:a@b>"}),
       400, "Bad Request - Malformed Call-ID"},
      {crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
             "CSeq: 1 OPTIONS", "Call-ID: c"}),
       400, "Bad Request - Missing From"},
      {crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
             "CSeq: 1 OPTIONS", "Call-ID: c", "From: <sip:a@b>;tag=1"}),
       400, "Bad Request - Missing To"},
      {crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
             "CSeq: 1 OPTIONS", "Call-ID: c", "From: <sip:a@b>;tag=1", "To: <sip:a@b>",
             "Content-Length: 12abc"}),
       400, "Bad Request - Malformed Content-Length"},
      {crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
             "CSeq: 1 OPTIONS", "Call-ID: c", "From: <sip:a@b>;tag=1", "To: <sip:a@b>",
             "Content-Length: 99999999999999999999"}),
       400, "Bad Request - Malformed Content-Length"},
      {" leading continuation\r\n" + options({}), 400, "Bad Request - Malformed Request-Line"},
  };
  for (const RejectCase& c : cases) {
    ParseOutcome o = parse(c.input);
    EXPECT_EQ(o.kind, Kind::kReject) << c.input << "\n-> " << o.drop_reason;
    EXPECT_EQ(o.status_code, c.code) << c.input;
    EXPECT_EQ(o.reason, c.reason) << c.input << "\n-> " << o.drop_reason;
    EXPECT_TRUE(o.message.has_value());
  }
}

TEST(ParserTest, BareLineFeedsAreRejectedNotGuessed) {
  std::string lf = options({});
  for (std::size_t i = lf.find("\r\n"); i != std::string::npos; i = lf.find("\r\n", i))
    lf.erase(i, 1);
  ParseOutcome o = parse(lf);
  EXPECT_EQ(o.kind, Kind::kReject);
  EXPECT_EQ(o.reason, "Bad Request - Malformed line ending");
}

TEST(ParserTest, UnanswerableRequestsAreDropped) {
  const std::vector<std::string> inputs = {
      crlf({"OPTIONS sip:bob@example.com SIP/2.0", "CSeq: 1 OPTIONS", "Call-ID: c"}),  // no Via
      crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"}),
      crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: garbage", "CSeq: 1 OPTIONS"}),
      "",
      "\r\n\r\n",
      "garbage",
  };
  for (const std::string& in : inputs) {
    ParseOutcome o = parse(in);
    EXPECT_EQ(o.kind, Kind::kDrop) << in;
    EXPECT_FALSE(o.drop_reason.empty());
  }
}

TEST(ParserTest, TolerancesThatKeepMessagesValid) {
  // Identical duplicates of a single-value header are tolerated.
  EXPECT_EQ(parse(options({"Call-ID: c1@example.com"})).kind, Kind::kOk);
  // tel Request-URI, leading CRLFs, a header section without its empty line.
  EXPECT_EQ(parse(options({}, "OPTIONS tel:+12015550123 SIP/2.0")).kind, Kind::kOk);
  EXPECT_EQ(parse("\r\n\r\n" + options({})).kind, Kind::kOk);
  std::string open = options({});
  open.resize(open.size() - 2);
  EXPECT_EQ(parse(open).kind, Kind::kOk);
  // "sip:" is case-insensitive in the version, the method is not (it is just unknown).
  EXPECT_EQ(parse(options({}, "OPTIONS sip:bob@example.com sip/2.0")).kind, Kind::kOk);
  // Body longer than Content-Length: truncated (datagram); no Content-Length: rest of datagram.
  Message m = parseOk(
      crlf({"MESSAGE sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            "From: <sip:a@b>;tag=1", "To: <sip:bob@example.com>", "Call-ID: c", "CSeq: 2 MESSAGE",
            "Content-Type: text/plain", "Content-Length: 5"},
           "hello, trailing junk"));
  EXPECT_EQ(m.body(), "hello");
  Message n = parseOk(
      crlf({"MESSAGE sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            "From: <sip:a@b>;tag=1", "To: <sip:bob@example.com>", "Call-ID: c", "CSeq: 2 MESSAGE"},
           "all of it"));
  EXPECT_EQ(n.body(), "all of it");
}

TEST(ParserTest, KRejectKeepsWhatParsedForTheResponse) {
  ParseOutcome o = parse(options({}, "OPTIONS sip:bob@example.com SIP/7.0"));
  ASSERT_EQ(o.kind, Kind::kReject);
  const Message& m = *o.message;
  EXPECT_EQ(m.callId(), "c1@example.com");
  Message resp = makeResponseTo(m, o.status_code, o.reason, "srv-tag");
  EXPECT_EQ(resp.statusCode(), 505);
  EXPECT_EQ(resp.to()->tag(), "srv-tag");
  EXPECT_EQ(resp.cseq()->method_text, "OPTIONS");
}

TEST(ParseLimitsTest, EachLimitHasAClearOutcome) {
  ParseLimits small;
  small.max_message_bytes = 300;
  ParseOutcome big = parse(options({"X-Pad: " + std::string(400, 'a')}), small);
  EXPECT_EQ(big.kind, Kind::kReject);
  EXPECT_EQ(big.status_code, 513);
  EXPECT_EQ(big.reason, "Message Too Large");
  EXPECT_EQ(big.drop_reason, "message larger than 300 bytes");

  ParseLimits few;
  few.max_headers = 8;
  ParseOutcome many = parse(options({"X-1: a", "X-2: b"}), few);
  EXPECT_EQ(many.status_code, 513);
  EXPECT_EQ(many.drop_reason, "more than 8 header fields");

  ParseLimits narrow;
  narrow.max_line_bytes = 64;
  ParseOutcome wide = parse(options({"X-Long: " + std::string(80, 'b')}), narrow);
  EXPECT_EQ(wide.status_code, 513);
  EXPECT_EQ(wide.drop_reason, "line longer than 64 bytes");
  ParseOutcome folded = parse(
      options({"X-Folded: " + std::string(40, 'b') + "\r\n " + std::string(40, 'c')}), narrow);
  EXPECT_EQ(folded.status_code, 513);
  EXPECT_EQ(folded.drop_reason, "header field longer than 64 bytes");
  ParseOutcome long_start =
      parse(options({}, "OPTIONS sip:" + std::string(100, 'u') + "@example.com SIP/2.0"), narrow);
  EXPECT_EQ(long_start.kind, Kind::kDrop);

  // A limit hit before Via/CSeq were seen cannot be answered.
  ParseLimits tiny;
  tiny.max_headers = 1;
  EXPECT_EQ(parse(options({}), tiny).kind, Kind::kDrop);
}

}  // namespace
}  // namespace sipwake::sip
