// Data-driven: every RFC 4475 / RFC 5118 message in tests/data parses to the outcome the RFC
// states (where the RFC allows a choice, the choice is written here and in EXPECTED.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "test_util.h"

namespace sipwake::sip {
namespace {

using testing::dataDir;
using testing::readFile;
using Kind = ParseOutcome::Kind;

struct Expectation {
  Kind kind;
  int code = 0;                  // kReject
  std::string_view reason = {};  // kReject: exact reason phrase
  std::string_view why = {};     // what the RFC says, for the failure message
};

Expectation ok(std::string_view why = {}) { return {Kind::kOk, 0, {}, why}; }
Expectation reject(int code, std::string_view reason, std::string_view why = {}) {
  return {Kind::kReject, code, reason, why};
}
Expectation drop(std::string_view why = {}) { return {Kind::kDrop, 0, {}, why}; }

const std::map<std::string, Expectation>& rfc4475() {
  static const std::map<std::string, Expectation> table = {
      // §3.1.1 valid messages: must parse.
      {"wsinv", ok("3.1.1.1 short tortuous INVITE")},
      {"intmeth", ok("3.1.1.2 wide range of valid characters")},
      {"esc01", ok("3.1.1.3 valid use of % escaping")},
      {"escnull", ok("3.1.1.4 escaped NULs in URIs")},
      {"esc02", ok("3.1.1.5 % that is not an escape")},
      {"lwsdisp", ok("3.1.1.6 no LWS between display name and <")},
      {"longreq", ok("3.1.1.7 long values")},
      {"dblreq", ok("3.1.1.8 extra trailing octets in a datagram are ignored")},
      {"semiuri", ok("3.1.1.9 ; in the user part")},
      {"transports", ok("3.1.1.10 varied and unknown transports")},
      {"mpart01", ok("3.1.1.11 multipart body")},
      {"unreason", ok("3.1.1.12 UTF-8 reason phrase")},
      {"noreason", ok("3.1.1.13 empty reason phrase")},
      // §3.1.2 invalid messages.
      {"badinv01", reject(400, "Bad Request - Malformed Via", "3.1.2.1 extraneous separators")},
      {"clerr",
       reject(400, "Bad Request - Content-Length larger than body", "3.1.2.2 over UDP: 400")},
      {"ncl", reject(400, "Bad Request - Negative Content-Length", "3.1.2.3 respond with error")},
      {"scalar02", reject(400, "Bad Request - Malformed CSeq", "3.1.2.4 400 due to CSeq")},
      {"scalarlg", drop("3.1.2.5 response: discard")},
      {"quotbal", reject(400, "Bad Request - Malformed To", "3.1.2.6 unterminated quote")},
      {"ltgtruri", reject(400, "Bad Request - Malformed Request-URI", "3.1.2.7 <> around R-URI")},
      {"lwsruri", reject(400, "Bad Request - Malformed Request-Line", "3.1.2.8 LWS in R-URI")},
      {"lwsstart", reject(400, "Bad Request - Malformed Request-Line", "3.1.2.9 multiple SP")},
      {"trws", reject(400, "Bad Request - Malformed Request-Line",
                      "3.1.2.10 trailing SP: rejecting is reasonable")},
      {"escruri",
       reject(400, "Bad Request - Request-URI contains headers",
              "3.1.2.11 reject, or ignore the headers; a proxy must never forward them")},
      {"baddate", ok("3.1.2.12 may ignore a Date it does not use (we never use Date)")},
      {"regbadct", reject(400, "Bad Request - Malformed Contact",
                          "3.1.2.13 name-addr URI with headers not in <>: 400 is reasonable")},
      {"badaspec", reject(400, "Bad Request - Malformed To", "3.1.2.14 spaces within addr-spec")},
      {"baddn", reject(400, "Bad Request - Malformed From", "3.1.2.15 non-token display name")},
      {"badvers", reject(505, "Version Not Supported", "3.1.2.16 unknown protocol version")},
      {"mismatch01", reject(400, "Bad Request - CSeq method does not match the request method",
                            "3.1.2.17 start line / CSeq method mismatch")},
      {"mismatch02", reject(400, "Bad Request - CSeq method does not match the request method",
                            "3.1.2.18 400, not 501")},
      {"bigcode", drop("3.1.2.19 overlarge response code: response is discarded")},
      // §3.2 transaction layer.
      {"badbranch", reject(400, "Bad Request - Empty Via branch",
                           "3.2.1 400, or fall back to RFC 2543 matching (we do not)")},
      // §3.3 application layer.
      {"insuf", reject(400, "Bad Request - Missing Call-ID", "3.3.1 must respond 400")},
      {"unkscm", reject(416, "Unsupported URI Scheme", "3.3.2 416")},
      {"novelsc", reject(416, "Unsupported URI Scheme", "3.3.3 416 for an unsupported scheme")},
      {"unksm2", ok("3.3.4 parses; the registrar answers 400 for a non-SIP To")},
      {"bext01", ok("3.3.5 parses; the proxy answers 420 for Proxy-Require")},
      {"invut", ok("3.3.6 parses; a UAS would answer 415")},
      {"regaut01", ok("3.3.7 parses; the registrar challenges")},
      {"multi01", reject(400, "Bad Request - Conflicting CSeq headers", "3.3.8 400")},
      {"mcl01",
       reject(400, "Bad Request - Conflicting Content-Length headers", "3.3.9 over UDP: 400")},
      {"bcast", ok("3.3.10 parses; not forwarded to a broadcast address (proxy layer)")},
      {"zeromf", ok("3.3.11 parses; Max-Forwards 0 is the proxy's 483")},
      {"cparam01", ok("3.3.12 contact header parameter")},
      {"cparam02", ok("3.3.13 url-parameter")},
      {"regescrt", ok("3.3.14 parses; the registrar decides about the escaped Route")},
      {"sdp01", ok("3.3.15 parses; a UAS would answer 406")},
      // §3.4 backward compatibility.
      {"inv2543", ok("3.4.1 RFC 2543 syntax must be accepted")},
  };
  return table;
}

const std::map<std::string, Expectation>& rfc5118() {
  static const std::map<std::string, Expectation> table = {
      {"ipv6-good", ok("4.1")},
      {"ipv6-bad", reject(400, "Bad Request - Malformed Request-URI", "4.2 respond 400")},
      {"port-ambiguous", ok("4.3 well-formed; the port is inside the reference")},
      {"port-unambiguous", ok("4.4")},
      {"via-received-param-with-delim", ok("4.5 must parse received with [ ]")},
      {"via-received-param-no-delim", ok("4.5 must parse received without [ ]")},
      {"ipv6-in-sdp", ok("4.6")},
      {"mult-ip-in-header", ok("4.7")},
      {"mult-ip-in-sdp", ok("4.8")},
      {"ipv4-mapped-ipv6", ok("4.9")},
      {"ipv6-bug-abnf-3-colons", ok("4.10 must tolerate the 3-colon form")},
      {"ipv6-correct-abnf-2-colons", ok("4.10")},
  };
  return table;
}

// Every typed accessor must answer on a kOk message (it is the point of "readable").
void expectTypedHeadersReadable(const std::string& name, const Message& m) {
  SCOPED_TRACE(name);
  EXPECT_TRUE(m.vias().isOk()) << m.vias().status().toString();
  EXPECT_TRUE(m.topVia().isOk());
  EXPECT_TRUE(m.from().isOk()) << m.from().status().toString();
  EXPECT_TRUE(m.to().isOk()) << m.to().status().toString();
  EXPECT_TRUE(m.cseq().isOk());
  EXPECT_FALSE(m.callId().empty());
  EXPECT_TRUE(m.contacts().isOk()) << m.contacts().status().toString();
  EXPECT_TRUE(m.routes().isOk());
  EXPECT_TRUE(m.recordRoutes().isOk());
  if (m.find(HeaderId::kMaxForwards)) {
    EXPECT_TRUE(m.maxForwards().isOk());
  }
  if (m.isRequest()) {
    EXPECT_NE(m.requestUri().scheme, Uri::Scheme::kOther);
  }
}

// The round-trip property: an unedited message serializes to its input (modulo the documented
// normalisations) and parse(serialize(m)) is equivalent to m.
void expectRoundTrip(const std::string& name, const std::string& input, const Message& m) {
  SCOPED_TRACE(name);
  const std::string wire = m.serialize();
  if (name == "dblreq") {
    EXPECT_EQ(wire, input.substr(0, wire.size())) << "only the first message is kept";
  } else if (name == "inv2543") {
    EXPECT_EQ(wire.size(), input.size() + std::string_view("Content-Length: 105\r\n").size())
        << "a missing Content-Length is added";
  } else {
    EXPECT_EQ(wire, input) << "unedited message must serialize byte-identically";
  }
  ParseOutcome again = parseMessage(wire, ParseLimits{});
  ASSERT_EQ(again.kind, Kind::kOk) << again.drop_reason;
  const Message& m2 = *again.message;
  EXPECT_EQ(m2.serialize(), wire);
  EXPECT_EQ(m2.isRequest(), m.isRequest());
  EXPECT_EQ(m2.methodText(), m.methodText());
  EXPECT_EQ(m2.requestUriText(), m.requestUriText());
  EXPECT_EQ(m2.statusCode(), m.statusCode());
  EXPECT_EQ(m2.reasonPhrase(), m.reasonPhrase());
  EXPECT_EQ(m2.body(), m.body());
  EXPECT_EQ(m2.callId(), m.callId());
}

void runCorpus(const std::string& dir, const std::map<std::string, Expectation>& table) {
  std::set<std::string> seen;
  for (const auto& entry : std::filesystem::directory_iterator(dataDir() / dir)) {
    if (entry.path().extension() != ".sip") continue;
    const std::string name = entry.path().stem().string();
    seen.insert(name);
    SCOPED_TRACE(dir + "/" + name);
    auto it = table.find(name);
    ASSERT_NE(it, table.end()) << "no expectation for " << name;
    const Expectation& want = it->second;
    const std::string input = readFile(entry.path());
    ParseOutcome got = parseMessage(input, ParseLimits{});
    EXPECT_EQ(testing::kindName(got.kind), std::string(testing::kindName(want.kind)))
        << want.why << " | reason: " << got.reason << " | detail: " << got.drop_reason;
    if (want.kind == Kind::kReject && got.kind == Kind::kReject) {
      EXPECT_EQ(got.status_code, want.code) << want.why;
      EXPECT_EQ(got.reason, want.reason) << want.why << " | detail: " << got.drop_reason;
      ASSERT_TRUE(got.message.has_value());
      // An answerable request: the response can be built and carries the CSeq.
      Message resp = makeResponseTo(*got.message, got.status_code, got.reason);
      EXPECT_TRUE(resp.cseq().isOk() || resp.find(HeaderId::kCSeq) != nullptr);
      ParseOutcome r = parseMessage(resp.serialize(), ParseLimits{});
      EXPECT_NE(r.kind, Kind::kReject);
    }
    if (want.kind == Kind::kDrop) {
      EXPECT_FALSE(got.drop_reason.empty());
    }
    if (got.kind == Kind::kOk && want.kind == Kind::kOk) {
      expectTypedHeadersReadable(name, *got.message);
      expectRoundTrip(name, input, *got.message);
    }
  }
  for (const auto& [name, want] : table) {
    EXPECT_TRUE(seen.count(name)) << "missing data file " << dir << "/" << name << ".sip";
  }
}

TEST(RfcCorpusTest, Rfc4475TortureMessages) { runCorpus("rfc4475", rfc4475()); }
TEST(RfcCorpusTest, Rfc5118Ipv6Messages) { runCorpus("rfc5118", rfc5118()); }

TEST(RfcCorpusTest, CorpusIsComplete) {
  EXPECT_EQ(rfc4475().size(), 49u) << "RFC 4475 §3 has 49 messages";
  EXPECT_EQ(rfc5118().size(), 12u) << "RFC 5118 §4 has 12 messages";
}

}  // namespace
}  // namespace sipwake::sip
