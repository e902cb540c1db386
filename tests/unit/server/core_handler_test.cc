// CoreHandler behind a real TransactionLayer, a fake transport and a fake clock: requests go in
// as parsed messages, the responses that come out are parsed back and checked.
#include "server/core_handler.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/clock.h"
#include "sip/message.h"
#include "transaction/transaction_layer.h"

namespace sipwake::server {
namespace {

using transport::Address;
using transport::Protocol;

class FakeTransport final : public transport::Transport {
 public:
  void send(const transport::SendTarget& /*target*/, std::string bytes,
            std::function<void(Status)> on_done) override {
    sent.push_back(std::move(bytes));
    if (on_done) on_done(Status::ok());
  }
  Result<Address> localAddressFor(Protocol /*protocol*/, bool /*v6*/) const override {
    return Address::parse("127.0.0.1", 5060);
  }
  std::vector<std::string> sent;
};

class CoreHandlerTest : public ::testing::Test {
 protected:
  CoreHandlerTest()
      : identity_({"localhost", "example.org"}, {"127.0.0.1", "::1"}, {5060, 5061}),
        core_(identity_),
        layer_(timers_, transport_, core_) {
    core_.attach(layer_);
  }

  // Feeds one request; returns the final response sent for it (or fails the test).
  sip::Message exchange(const std::string& method, const std::string& ruri,
                        const std::string& extra_headers = "",
                        const std::string& cseq_method = "") {
    const std::string n = std::to_string(++branch_);
    std::string text = method + " " + ruri + " SIP/2.0\r\n" +
                       "Via: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bK" + n + ";rport\r\n" +
                       "Max-Forwards: 70\r\n"
                       "From: <sip:tester@127.0.0.1>;tag=abc\r\n"
                       "To: <" +
                       ruri + ">\r\nCall-ID: call-" + n + "@test\r\nCSeq: 1 " +
                       (cseq_method.empty() ? method : cseq_method) + "\r\n" + extra_headers +
                       "Content-Length: 0\r\n\r\n";
    return deliver(std::move(text));
  }

  sip::Message deliver(std::string text) {
    auto parsed = sip::parseMessage(std::move(text), sip::ParseLimits{});
    EXPECT_EQ(parsed.kind, sip::ParseOutcome::Kind::kOk) << parsed.reason;
    transport::ReceivedMessage rm{std::move(*parsed.message),
                                  Protocol::kUdp,
                                  *Address::parse("127.0.0.1", 6000),
                                  *Address::parse("127.0.0.1", 5060),
                                  0,
                                  timers_.now()};
    std::size_t before = transport_.sent.size();
    layer_.receive(std::move(rm));
    timers_.advance(milliseconds(1));
    EXPECT_GT(transport_.sent.size(), before) << "no response sent";
    std::string last = transport_.sent.empty() ? std::string() : transport_.sent.back();
    auto out = sip::parseMessage(last, sip::ParseLimits{});
    EXPECT_EQ(out.kind, sip::ParseOutcome::Kind::kOk) << last;
    return std::move(*out.message);
  }

  static std::string header(const sip::Message& m, std::string_view name) {
    const sip::HeaderField* f = m.find(name);
    return f ? std::string(f->value) : std::string("<absent>");
  }

  FakeTimerService timers_;
  FakeTransport transport_;
  Identity identity_;
  CoreHandler core_;
  transaction::TransactionLayer layer_;
  int branch_ = 0;
};

TEST_F(CoreHandlerTest, OptionsToServerIs200WithCapabilities) {
  sip::Message r = exchange("OPTIONS", "sip:127.0.0.1:5060");
  EXPECT_EQ(r.statusCode(), 200);
  EXPECT_NE(header(r, "Allow").find("OPTIONS"), std::string::npos);
  EXPECT_NE(header(r, "Supported"), "<absent>");
  EXPECT_EQ(header(r, "Accept"), "application/sdp");
  EXPECT_EQ(header(r, "Server"), std::string(CoreHandler::serverHeader()));
  auto to = r.to();
  ASSERT_TRUE(to.isOk());
  EXPECT_FALSE(to->tag().empty());
}

TEST_F(CoreHandlerTest, ServerNamesAndAddresses) {
  EXPECT_EQ(exchange("OPTIONS", "sip:localhost").statusCode(), 200);
  EXPECT_EQ(exchange("OPTIONS", "sip:EXAMPLE.org;transport=tcp").statusCode(), 200);
  EXPECT_EQ(exchange("OPTIONS", "sips:[::1]:5061").statusCode(), 200);
  EXPECT_EQ(exchange("OPTIONS", "sip:[0:0::1]").statusCode(), 200);
}

TEST_F(CoreHandlerTest, MaxForwardsZeroOptionsToUsIsAnswered) {
  std::string text =
      "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKmf0\r\n"
      "Max-Forwards: 0\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
      "Call-ID: mf0@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(deliver(text).statusCode(), 200);
}

TEST_F(CoreHandlerTest, KnownButUnimplementedMethodIs405WithAllow) {
  for (const char* m : {"INVITE", "REGISTER", "SUBSCRIBE", "MESSAGE", "BYE"}) {
    sip::Message r = exchange(m, "sip:127.0.0.1");
    EXPECT_EQ(r.statusCode(), 405) << m;
    EXPECT_EQ(header(r, "Allow"), std::string(CoreHandler::allowHeader())) << m;
  }
}

TEST_F(CoreHandlerTest, UnknownMethodIs501) {
  sip::Message r = exchange("FROBNICATE", "sip:localhost");
  EXPECT_EQ(r.statusCode(), 501);
}

TEST_F(CoreHandlerTest, UnsupportedRequireIs420) {
  sip::Message r = exchange("OPTIONS", "sip:localhost", "Require: foo, 100rel\r\n");
  EXPECT_EQ(r.statusCode(), 420);
  EXPECT_EQ(header(r, "Unsupported"), "foo, 100rel");
}

TEST_F(CoreHandlerTest, OtherTargetsAre404Or483) {
  EXPECT_EQ(exchange("OPTIONS", "sip:alice@localhost").statusCode(), 404);
  EXPECT_EQ(exchange("MESSAGE", "sip:bob@example.com").statusCode(), 404);
  EXPECT_EQ(exchange("OPTIONS", "sip:example.com").statusCode(), 404);
  std::string text =
      "MESSAGE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKx0\r\n"
      "Max-Forwards: 0\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
      "Call-ID: x0@test\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n";
  EXPECT_EQ(deliver(text).statusCode(), 483);
}

// Without a proxy attached, what is not for the server is 404: that shows the decision.
TEST_F(CoreHandlerTest, UaOnOurHostAtAnotherPortIsNotTheServer) {
  EXPECT_EQ(exchange("BYE", "sip:127.0.0.1:16080;transport=UDP").statusCode(), 404);
  EXPECT_EQ(exchange("OPTIONS", "sip:localhost:7000").statusCode(), 404);
  EXPECT_EQ(exchange("BYE", "sip:127.0.0.1:5060").statusCode(), 405);
  EXPECT_EQ(exchange("OPTIONS", "sip:127.0.0.1;transport=tls").statusCode(), 200);  // 5061
}

TEST_F(CoreHandlerTest, RouteToAnotherHopIsNotTheServer) {
  // In-dialog request to our own address with a Route beyond us: loose routing (proxy).
  EXPECT_EQ(exchange("INFO", "sip:127.0.0.1:5060",
                     "Route: <sip:tok@127.0.0.1:5060;lr>, <sip:10.9.9.9;lr>\r\n")
                .statusCode(),
            404);
  // Only our own Route values (a phone using us as outbound proxy): for the server.
  EXPECT_EQ(exchange("OPTIONS", "sip:127.0.0.1", "Route: <sip:127.0.0.1:5060;lr>\r\n").statusCode(),
            200);
  EXPECT_EQ(exchange("OPTIONS", "sip:localhost:5060",
                     "Route: <sip:127.0.0.1;lr>, <sip:[::1]:5061;transport=tls;lr>\r\n")
                .statusCode(),
            200);
}

TEST_F(CoreHandlerTest, TelUriIs416) {
  EXPECT_EQ(exchange("OPTIONS", "tel:+15551234567").statusCode(), 416);
}

TEST_F(CoreHandlerTest, AckIsAbsorbed) {
  std::string text =
      "ACK sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKack1\r\n"
      "Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>;tag=2\r\n"
      "Call-ID: ack@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";
  auto parsed = sip::parseMessage(text, sip::ParseLimits{});
  ASSERT_EQ(parsed.kind, sip::ParseOutcome::Kind::kOk);
  transport::ReceivedMessage rm{std::move(*parsed.message),
                                Protocol::kUdp,
                                *Address::parse("127.0.0.1", 6000),
                                *Address::parse("127.0.0.1", 5060),
                                0,
                                timers_.now()};
  layer_.receive(std::move(rm));
  timers_.advance(milliseconds(1));
  EXPECT_TRUE(transport_.sent.empty());
}

TEST(IdentityTest, Matching) {
  Identity id({"Example.COM", "[::1]"}, {"10.1.2.3"}, {5060});
  EXPECT_TRUE(id.isLocalHost("example.com"));
  EXPECT_TRUE(id.isLocalHost("EXAMPLE.com"));
  EXPECT_TRUE(id.isLocalHost("[::1]"));
  EXPECT_TRUE(id.isLocalHost("::1"));
  EXPECT_TRUE(id.isLocalHost("10.1.2.3"));
  EXPECT_FALSE(id.isLocalHost("example.org"));
  EXPECT_FALSE(id.isLocalHost("10.1.2.4"));
  // A wildcard listener stands for the local interface addresses, loopback included.
  Identity any({}, {"0.0.0.0"}, {5060});
  EXPECT_TRUE(any.isLocalHost("127.0.0.1"));
  EXPECT_FALSE(any.isLocalHost("0.0.0.0"));
}

TEST(IdentityTest, SelfUriNeedsOneOfOurPorts) {
  Identity id({"example.com"}, {"127.0.0.1"}, {5061, 5070});
  auto self = [&](std::string_view text) {
    auto uri = sip::parseUri(text);
    EXPECT_TRUE(uri.isOk()) << text;
    return uri.isOk() && id.isSelfUri(*uri);
  };
  EXPECT_TRUE(self("sip:127.0.0.1:5070"));
  EXPECT_TRUE(self("sip:example.com:5061;transport=tcp"));
  EXPECT_TRUE(self("sip:example.com"));  // a name without port: RFC 3263 finds our port
  EXPECT_TRUE(self("sips:127.0.0.1"));   // an IP literal without port: 5061 by default
  EXPECT_TRUE(self("sip:127.0.0.1;transport=TLS"));
  EXPECT_FALSE(self("sip:127.0.0.1"));  // 5060 by default: not ours
  EXPECT_FALSE(self("sip:example.com:5060"));
  EXPECT_FALSE(self("sip:127.0.0.1:16080;transport=UDP"));
  EXPECT_FALSE(self("sip:10.0.0.1:5070"));
  EXPECT_FALSE(self("tel:+15551234567"));
}

}  // namespace
}  // namespace sipwake::server
