#include "routing/flow_token.h"

#include <gtest/gtest.h>

#include "routing/next_hop.h"

namespace sipwake::routing {
namespace {

TEST(FlowToken, RoundTripsAndRejectsTampering) {
  FlowTokenCodec codec("0123456789abcdef0123456789abcdef");
  FlowPair pair;
  FlowRef up;
  up.protocol = transport::Protocol::kUdp;
  up.remote = *transport::Address::parse("10.0.0.1", 5060);
  pair.upstream = up;
  FlowRef down;
  down.protocol = transport::Protocol::kTls;
  down.remote = *transport::Address::parse("2001:db8::7", 40000);
  down.flow = 0x1234;
  pair.downstream = down;
  std::string token = codec.encode(pair);
  auto back = codec.decode(token);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->upstream->remote, up.remote);
  EXPECT_EQ(back->downstream->remote, down.remote);
  EXPECT_EQ(back->downstream->flow, 0x1234u);
  EXPECT_EQ(back->downstream->protocol, transport::Protocol::kTls);

  std::string bad = token;
  bad[3] = bad[3] == '0' ? '1' : '0';
  EXPECT_FALSE(codec.decode(bad).has_value());
  EXPECT_FALSE(FlowTokenCodec("another secret, 32 bytes long...").decode(token).has_value());
  EXPECT_FALSE(codec.decode("alice").has_value());
  EXPECT_FALSE(codec.decode("").has_value());
}

TEST(NextHop, LiteralTargets) {
  auto t = literalTarget(*sip::parseUri("sips:bob@192.0.2.7"));
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ(t->protocol, transport::Protocol::kTls);
  EXPECT_EQ(t->remote.port, 5061);
  t = literalTarget(*sip::parseUri("sip:[2001:db8::1]:5070;transport=tcp"));
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ(t->protocol, transport::Protocol::kTcp);
  EXPECT_EQ(t->remote.port, 5070);
  EXPECT_EQ(literalTarget(*sip::parseUri("sip:example.com")).status().code(),
            StatusCode::kNotFound);
  EXPECT_FALSE(literalTarget(*sip::parseUri("sip:1.2.3.4;transport=sctp")).isOk());
}

TEST(NextHop, OutboundProxySpec) {
  EXPECT_EQ(*outboundProxyUri("10.0.0.1:5080"), "sip:10.0.0.1:5080");
  EXPECT_EQ(*outboundProxyUri("proxy.example;transport=tcp"), "sip:proxy.example;transport=tcp");
  EXPECT_EQ(*outboundProxyUri("sips:proxy.example"), "sips:proxy.example");
  EXPECT_FALSE(outboundProxyUri("").isOk());
  EXPECT_FALSE(outboundProxyUri("user@host").isOk());
  EXPECT_FALSE(outboundProxyUri("h;transport=sctp").isOk());
}

}  // namespace
}  // namespace sipwake::routing
