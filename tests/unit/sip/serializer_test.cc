// serialize(), the edit operations, the builders and makeResponseTo().
#include <gtest/gtest.h>

#include "sip/message.h"
#include "test_util.h"

namespace sipwake::sip {
namespace {

using testing::crlf;
using testing::parseOk;

// The header lines of a serialization, without the start line and the empty line.
std::vector<std::string> headerLines(const std::string& wire) {
  std::vector<std::string> out;
  std::size_t pos = wire.find("\r\n") + 2;
  while (true) {
    const std::size_t e = wire.find("\r\n", pos);
    if (e == pos || e == std::string::npos) break;
    out.push_back(wire.substr(pos, e - pos));
    pos = e + 2;
  }
  return out;
}

Message reparse(const Message& m) {
  ParseOutcome o = parseMessage(m.serialize(), ParseLimits{});
  EXPECT_EQ(o.kind, ParseOutcome::Kind::kOk) << o.reason << " / " << o.drop_reason;
  return std::move(*o.message);
}

TEST(SerializerTest, UneditedMessagesAreByteIdentical) {
  for (const std::string& input : {testing::typicalRegister(), testing::typicalInvite()}) {
    EXPECT_EQ(parseOk(input).serialize(), input);
  }
  // Odd spellings, compact forms and folded lines survive untouched.
  const std::string odd = crlf({"OPTIONS sip:bob@example.com SIP/2.0",
                                "v :  SIP/2.0/UDP 192.0.2.1\r\n ;branch=z9hG4bK1",
                                "f:<sip:a@example.com>;tag=1", "t: <sip:bob@example.com>", "i: c",
                                "CSEQ:   1   OPTIONS", "X-Unknown: ;;,,\"odd\" value", "l: 0"});
  EXPECT_EQ(parseOk(odd).serialize(), odd);
}

TEST(SerializerTest, ContentLengthIsNormalisedOnlyWhenNeeded) {
  const std::string missing =
      crlf({"MESSAGE sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            "From: <sip:a@b>;tag=1", "To: <sip:bob@example.com>", "Call-ID: c", "CSeq: 2 MESSAGE"},
           "hello");
  const std::string wire = parseOk(missing).serialize();
  EXPECT_NE(wire.find("\r\nContent-Length: 5\r\n\r\nhello"), std::string::npos) << wire;
  const std::string truncated =
      crlf({"MESSAGE sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            "From: <sip:a@b>;tag=1", "To: <sip:bob@example.com>", "Call-ID: c", "CSeq: 2 MESSAGE",
            "l: 3", "Content-Length: 3"},
           "abcdef");
  const std::string w2 = parseOk(truncated).serialize();
  EXPECT_TRUE(w2.ends_with("CSeq: 2 MESSAGE\r\nl: 3\r\n\r\nabc"))
      << w2 << " (duplicates collapse, the body is truncated)";
}

TEST(EditTest, PushAndPopVia) {
  Message m = parseOk(testing::typicalInvite());
  const std::string original_top(m.topVia()->text);
  m.pushVia("SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKproxy1");
  EXPECT_EQ(m.topVia()->host, "proxy.example.com");
  EXPECT_EQ(m.count(HeaderId::kVia), 2u);
  Message r = reparse(m);
  ASSERT_EQ(r.vias()->size(), 2u);
  EXPECT_EQ(r.vias()->at(0).branch(), "z9hG4bKproxy1");
  EXPECT_EQ(r.vias()->at(1).text, original_top);
  const std::vector<std::string> lines = headerLines(m.serialize());
  EXPECT_EQ(lines[0], "Via: SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bKproxy1");

  r.popVia();
  EXPECT_EQ(r.topVia()->text, original_top);
  EXPECT_EQ(r.serialize(), testing::typicalInvite()) << "push then pop restores the bytes";
}

TEST(EditTest, PopViaRemovesOnlyTheTopValueOfACommaList) {
  Message m =
      parseOk(crlf({"SIP/2.0 200 OK",
                    "v: SIP/2.0/UDP p1.example.com;branch=z9hG4bKa , SIP/2.0/TCP "
                    "p2.example.com;branch=z9hG4bKb,SIP/2.0/UDP ua.example.com;branch=z9hG4bKc",
                    "Via: SIP/2.0/UDP last.example.com;branch=z9hG4bKd", "From: <sip:a@b>;tag=1",
                    "To: <sip:a@b>;tag=2", "Call-ID: c", "CSeq: 1 INVITE", "Content-Length: 0"}));
  m.popVia();
  ASSERT_EQ(m.vias()->size(), 3u);
  EXPECT_EQ(m.topVia()->host, "p2.example.com");
  const std::vector<std::string> lines = headerLines(m.serialize());
  EXPECT_EQ(
      lines[0],
      "v: SIP/2.0/TCP p2.example.com;branch=z9hG4bKb,SIP/2.0/UDP ua.example.com;branch=z9hG4bKc");
  m.popVia();
  m.popVia();
  EXPECT_EQ(m.topVia()->host, "last.example.com");
  m.popVia();
  EXPECT_FALSE(m.topVia().isOk());
  m.popVia();  // nothing left: no-op
}

TEST(EditTest, RecordRouteMaxForwardsSetRemoveAppend) {
  Message m = parseOk(testing::typicalInvite());
  m.prependHeader(HeaderId::kRecordRoute, "<sip:p2.example.com;lr>");
  m.prependHeader(HeaderId::kRecordRoute, "<sip:p1.example.com;lr>");
  m.decrementMaxForwards();
  m.setHeader(HeaderId::kUserAgent, "sipwake");
  m.removeHeaders(HeaderId::kAllow);
  m.appendHeader("X-Trace", "abc");
  Message r = reparse(m);
  EXPECT_EQ(*r.maxForwards(), 69);
  Result<std::vector<NameAddr>> rr = r.recordRoutes();
  ASSERT_EQ(rr->size(), 2u);
  EXPECT_EQ(rr->at(0).uri.host, "p1.example.com") << "placed before the first of its kind";
  EXPECT_EQ(r.find(HeaderId::kUserAgent)->value, "sipwake");
  EXPECT_EQ(r.count(HeaderId::kUserAgent), 1u);
  EXPECT_EQ(r.find(HeaderId::kAllow), nullptr);
  EXPECT_EQ(r.find("x-trace")->value, "abc");
  EXPECT_EQ(r.body(), m.body());
  const std::vector<std::string> lines = headerLines(m.serialize());
  EXPECT_EQ(lines[1], "Max-Forwards: 69");
  // Untouched fields are copied as raw bytes.
  EXPECT_EQ(lines[2], "Contact: <sip:alice@192.0.2.10:51234;transport=tls;ob>");
}

TEST(EditTest, DecrementCollapsesIdenticalDuplicates) {
  Message m =
      parseOk(crlf({"OPTIONS sip:b@example.com SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
                    "Max-Forwards: 3", "From: <sip:a@b>;tag=1", "To: <sip:b@example.com>",
                    "Call-ID: c", "CSeq: 1 OPTIONS", "Max-Forwards: 3", "l: 0"}));
  m.decrementMaxForwards();
  Message r = reparse(m);
  EXPECT_EQ(r.count(HeaderId::kMaxForwards), 1u);
  EXPECT_EQ(*r.maxForwards(), 2);
}

TEST(EditTest, SetBodyAndRequestUri) {
  Message m = parseOk(testing::typicalRegister());
  m.setRequestUri("sip:alice@192.0.2.10:51234;transport=tls");
  m.setBody("text/plain", "hi");
  EXPECT_EQ(m.requestUri().port, 51234);
  const std::string wire = m.serialize();
  EXPECT_EQ(wire.substr(0, wire.find("\r\n")),
            "REGISTER sip:alice@192.0.2.10:51234;transport=tls SIP/2.0");
  Message r = reparse(m);
  EXPECT_EQ(r.body(), "hi");
  EXPECT_EQ(r.find(HeaderId::kContentType)->value, "text/plain");
  EXPECT_EQ(r.find(HeaderId::kContentLength)->value, "2");
  m.setBody("", "");
  Message e = reparse(m);
  EXPECT_EQ(e.find(HeaderId::kContentType), nullptr);
  EXPECT_EQ(e.body(), "");
}

TEST(EditTest, EditsSurviveAMove) {
  Message m = parseOk(testing::typicalInvite());
  m.pushVia("SIP/2.0/UDP short;branch=z9hG4bKs");  // short enough for the small-string buffer
  m.setRequestUri("sip:x@y");
  Message moved = std::move(m);
  Message r = reparse(moved);
  EXPECT_EQ(r.topVia()->host, "short");
  EXPECT_EQ(r.requestUriText(), "sip:x@y");
}

TEST(BuilderTest, RequestsAndResponses) {
  Message req = Message::makeRequest(Method::kOptions, "", "sip:bob@example.com");
  req.appendHeader("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKb1");
  req.appendHeader("Max-Forwards", "70");
  req.appendHeader("From", "<sip:sipwake@example.com>;tag=t1");
  req.appendHeader("To", "<sip:bob@example.com>");
  req.appendHeader("Call-ID", "k1");
  req.appendHeader("CSeq", "1 OPTIONS");
  EXPECT_EQ(
      req.serialize(),
      crlf({"OPTIONS sip:bob@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKb1",
            "Max-Forwards: 70", "From: <sip:sipwake@example.com>;tag=t1",
            "To: <sip:bob@example.com>", "Call-ID: k1", "CSeq: 1 OPTIONS", "Content-Length: 0"}));
  Message r = reparse(req);
  EXPECT_EQ(r.method(), Method::kOptions);

  Message custom = Message::makeRequest(Method::kUnknown, "FOO", "sip:x@y");
  EXPECT_EQ(custom.methodText(), "FOO");
  Message resp = Message::makeResponse(486, "Busy Here");
  EXPECT_EQ(resp.serialize(), "SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n");
}

TEST(MakeResponseToTest, CopiesPerRfc3261Section8_2_6_2) {
  std::string input = testing::typicalInvite();
  input.insert(input.find("CSeq:"),
               "v: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKsecond\r\nTimestamp: 54\r\n");
  ParseOutcome o = parseMessage(input, ParseLimits{});
  ASSERT_EQ(o.kind, ParseOutcome::Kind::kOk);
  const Message& req = *o.message;
  Message ringing = makeResponseTo(req, 180, "Ringing", "srv1");
  Message r = reparse(ringing);
  EXPECT_EQ(r.statusCode(), 180);
  EXPECT_EQ(r.vias()->size(), 2u);
  EXPECT_EQ(r.from()->tag(), "9fxced76sl");
  EXPECT_EQ(r.to()->tag(), "srv1");
  EXPECT_EQ(r.to()->display_name, "Bob");
  EXPECT_EQ(r.callId(), req.callId());
  EXPECT_EQ(r.cseq()->number, 1u);
  EXPECT_EQ(r.find(HeaderId::kTimestamp), nullptr) << "only a 100 copies Timestamp";
  EXPECT_EQ(r.body(), "");
  const std::vector<std::string> lines = headerLines(ringing.serialize());
  EXPECT_EQ(lines[1], "v: SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKsecond") << "copied byte-exact";

  Message trying = makeResponseTo(req, 100, "Trying");
  EXPECT_EQ(trying.to()->tag(), "") << "no tag requested";
  EXPECT_EQ(trying.find(HeaderId::kTimestamp)->value, "54");

  // A To that already has a tag keeps it.
  Message in_dialog = parseOk(
      crlf({"BYE sip:a@b SIP/2.0", "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@b>;tag=1",
            "To: <sip:c@d>;tag=existing", "Call-ID: c", "CSeq: 2 BYE", "l: 0"}));
  EXPECT_EQ(makeResponseTo(in_dialog, 200, "OK", "new").to()->tag(), "existing");
}

TEST(MakeResponseToTest, OutlivesTheRequestAndCopiesEditedFields) {
  Message resp = Message::makeResponse(200, "OK");
  {
    Message req = parseOk(testing::typicalRegister());
    req.pushVia("SIP/2.0/UDP edited.example.com;branch=z9hG4bKe");  // owned by req, must be copied
    resp = makeResponseTo(req, 200, "OK", "t");
  }
  Message r = reparse(resp);
  EXPECT_EQ(r.vias()->size(), 2u);
  EXPECT_EQ(r.topVia()->host, "edited.example.com");
  EXPECT_EQ(r.callId(), "9aa5c2fe-4f5d-4a2b-9f0e-5e4a3c2b1a09");
}

}  // namespace
}  // namespace sipwake::sip
