// "Parse once": parseMessage() keeps the typed values it validated (top Via, From, To, CSeq) and
// the accessors parse the rest once; edits must drop what they make stale. Also checks the
// word-at-a-time header name classification against every canonical name.
#include <gtest/gtest.h>

#include <cctype>

#include "sip/message.h"
#include "test_util.h"

namespace sipwake::sip {
namespace {

using testing::crlf;
using testing::parse;
using testing::parseOk;

std::string registerRequest(std::string_view via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1") {
  const std::string via_line = "Via: " + std::string(via);
  return crlf({"REGISTER sip:example.com SIP/2.0", via_line, "Max-Forwards: 70",
               "From: \"A\" <sip:a@example.com>;tag=from-1", "To: <sip:a@example.com>",
               "Call-ID: c1@example.com", "CSeq: 7 REGISTER",
               "Contact: <sip:a@192.0.2.1;transport=udp>;expires=60",
               "Contact: <sip:a@198.51.100.1>;q=0.5", "Content-Length: 0"});
}

TEST(ParsedCacheTest, AccessorsReturnTheSameParsedValue) {
  Message m = parseOk(registerRequest());
  const Result<Via>& via = m.topVia();
  ASSERT_TRUE(via.isOk());
  EXPECT_EQ(&via, &m.topVia());
  EXPECT_EQ(via->host, "192.0.2.1");
  EXPECT_EQ(via->port, 5060);
  EXPECT_EQ(via->branch(), "z9hG4bK1");
  EXPECT_EQ(&m.from(), &m.from());
  EXPECT_EQ(m.from()->tag(), "from-1");
  EXPECT_EQ(m.from()->display_name, "A");
  EXPECT_EQ(m.to()->uri.host, "example.com");
  EXPECT_TRUE(m.to()->tag().empty());
  EXPECT_EQ(m.cseq()->number, 7u);
  EXPECT_EQ(methodOf(*m.cseq()), Method::kRegister);
  const Result<std::vector<ContactValue>>& contacts = m.contacts();
  ASSERT_TRUE(contacts.isOk());
  EXPECT_EQ(&contacts, &m.contacts());
  ASSERT_EQ(contacts->size(), 2u);
  EXPECT_EQ(contacts->at(0).expires(), 60u);
  EXPECT_EQ(contacts->at(1).addr.uri.host, "198.51.100.1");
}

TEST(ParsedCacheTest, ViewsSurviveMovingTheMessage) {
  Message a = parseOk(registerRequest());
  ASSERT_TRUE(a.from().isOk());
  Message b = std::move(a);
  EXPECT_EQ(b.from()->tag(), "from-1");
  EXPECT_EQ(b.topVia()->branch(), "z9hG4bK1");
  EXPECT_EQ(b.contacts()->at(0).addr.uri.param("transport")->value, "udp");
}

TEST(ParsedCacheTest, ViaEditsRefreshTopVia) {
  Message m = parseOk(registerRequest());
  EXPECT_EQ(m.topVia()->host, "192.0.2.1");
  m.pushVia("SIP/2.0/TCP proxy.example.com;branch=z9hG4bK-p1");
  EXPECT_EQ(m.topVia()->host, "proxy.example.com");
  EXPECT_EQ(m.topVia()->branch(), "z9hG4bK-p1");
  m.popVia();
  EXPECT_EQ(m.topVia()->host, "192.0.2.1");
  m.popVia();
  EXPECT_EQ(m.topVia().status().code(), StatusCode::kNotFound);
}

TEST(ParsedCacheTest, HeaderEditsRefreshTypedValues) {
  Message m = parseOk(registerRequest());
  ASSERT_EQ(m.contacts()->size(), 2u);
  ASSERT_TRUE(m.to()->tag().empty());
  ASSERT_EQ(m.cseq()->number, 7u);
  m.setHeader(HeaderId::kTo, "<sip:a@example.com>;tag=to-9");
  EXPECT_EQ(m.to()->tag(), "to-9");
  m.setHeader(HeaderId::kCSeq, "8 REGISTER");
  EXPECT_EQ(m.cseq()->number, 8u);
  m.appendHeader("Contact", "<sip:a@203.0.113.9>");
  ASSERT_EQ(m.contacts()->size(), 3u);
  EXPECT_EQ(m.contacts()->at(2).addr.uri.host, "203.0.113.9");
  m.prependHeader(HeaderId::kContact, "*");
  EXPECT_TRUE(m.contacts()->at(0).star);
  m.removeHeaders(HeaderId::kContact);
  EXPECT_TRUE(m.contacts()->empty());
  m.removeHeaders(HeaderId::kFrom);
  EXPECT_EQ(m.from().status().code(), StatusCode::kNotFound);
  m.appendHeader("f", "<sip:b@example.com>;tag=from-2");  // compact form
  EXPECT_EQ(m.from()->tag(), "from-2");
}

TEST(ParsedCacheTest, RejectedRequestStillAnswersWithItsTopVia) {
  // The defect lies after the top via-parm of the first Via field: the request is rejected,
  // and the response still goes where the top Via says.
  ParseOutcome o = parse(registerRequest("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK2, ;;"));
  ASSERT_EQ(o.kind, ParseOutcome::Kind::kReject);
  EXPECT_NE(o.reason.find("Malformed Via"), std::string::npos) << o.reason;
  const Result<Via>& via = o.message->topVia();
  ASSERT_TRUE(via.isOk()) << via.status().toString();
  EXPECT_EQ(via->port, 5070);
  EXPECT_EQ(via->branch(), "z9hG4bK2");
}

TEST(ParsedCacheTest, RejectedFromKeepsItsError) {
  std::string bytes = registerRequest();
  bytes.replace(bytes.find("\"A\" <sip:a@example.com>"), 23, "\"A\" <sip:a@exa mple.com>");
  ParseOutcome o = parse(bytes);
  ASSERT_EQ(o.kind, ParseOutcome::Kind::kReject);
  EXPECT_EQ(o.reason, "Bad Request - Malformed From");
  EXPECT_FALSE(o.message->from().isOk());
  EXPECT_TRUE(o.message->to().isOk());
}

std::string withCase(std::string_view s, bool upper) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

TEST(ParsedCacheTest, EveryCanonicalHeaderNameInAnyCaseAndNoNearMiss) {
  for (int i = 1; i < static_cast<int>(HeaderId::kCount); ++i) {
    const auto id = static_cast<HeaderId>(i);
    const std::string_view name = canonicalHeaderName(id);
    EXPECT_EQ(headerIdFromName(name), id) << name;
    EXPECT_EQ(headerIdFromName(withCase(name, true)), id) << name;
    EXPECT_EQ(headerIdFromName(withCase(name, false)), id) << name;
    for (std::size_t k = 0; k < name.size(); ++k) {  // one byte off, at every position
      std::string near(name);
      near[k] = near[k] == 'x' ? 'y' : 'x';
      EXPECT_NE(headerIdFromName(near), id) << near;
    }
    EXPECT_EQ(headerIdFromName(std::string(name) + "x"), HeaderId::kOther) << name;
    if (name.size() > 2) {  // "T" is the compact form of To
      EXPECT_NE(headerIdFromName(name.substr(0, name.size() - 1)), id) << name;
    }
  }
  EXPECT_EQ(headerIdFromName(""), HeaderId::kOther);
}

}  // namespace
}  // namespace sipwake::sip
