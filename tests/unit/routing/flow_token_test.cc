#include "routing/flow_token.h"

#include <gtest/gtest.h>

#include "routing/next_hop.h"

namespace sipwake::routing {
namespace {

RouteKeyConfig keys(std::string secret = "0123456789abcdef0123456789abcdef") {
  RouteKeyConfig k;
  k.secret = std::move(secret);
  k.rotation = std::chrono::seconds(3600);
  k.overlap = std::chrono::seconds(7200);
  return k;
}

constexpr std::int64_t kT0 = 1'700'000'000;  // 40 minutes into an epoch of 3600 s

using Verdict = FlowTokenCodec::Verdict;

TEST(FlowToken, RoundTripsAndRejectsTampering) {
  FlowTokenCodec codec(keys());
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
  std::string token = codec.encode(pair, "call-1", "fa", kT0);
  const DialogRef dialog{"call-1", "fa", "bt"};
  auto back = codec.decode(token, dialog, kT0);
  ASSERT_EQ(back.verdict, Verdict::kValid);
  EXPECT_EQ(back.pair.upstream->remote, up.remote);
  EXPECT_EQ(back.pair.downstream->remote, down.remote);
  EXPECT_EQ(back.pair.downstream->flow, 0x1234u);
  EXPECT_EQ(back.pair.downstream->protocol, transport::Protocol::kTls);

  std::string bad = token;
  bad[3] = bad[3] == '0' ? '1' : '0';
  EXPECT_EQ(codec.decode(bad, dialog, kT0).verdict, Verdict::kBadSignature);
  EXPECT_EQ(
      FlowTokenCodec(keys("another secret, 32 bytes long...")).decode(token, dialog, kT0).verdict,
      Verdict::kBadSignature);
  EXPECT_EQ(codec.decode("alice", dialog, kT0).verdict, Verdict::kNotSigned);
  EXPECT_EQ(codec.decode("", dialog, kT0).verdict, Verdict::kNotSigned);
}

// Several nodes: the node route names the phone's flow at the node that took its REGISTER; any
// node with the same secret verifies it, and it passes for no dialog's token (nor one for it).
TEST(FlowToken, NodeRouteRoundTripsWithTheSharedSecretAndIsNoDialogToken) {
  FlowTokenCodec node_b(keys());
  FlowRef phone;
  phone.protocol = transport::Protocol::kTcp;
  phone.remote = *transport::Address::parse("192.0.2.9", 40000);
  phone.flow = 0x4201;
  std::string token = node_b.encodeNodeRoute(phone, kT0);
  auto back = FlowTokenCodec(keys()).decodeNodeRoute(token, kT0 + 3600);  // another node, later
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->remote, phone.remote);
  EXPECT_EQ(back->flow, 0x4201u);
  EXPECT_EQ(back->protocol, transport::Protocol::kTcp);

  EXPECT_FALSE(
      FlowTokenCodec(keys("another secret, 32 bytes long...")).decodeNodeRoute(token, kT0));
  EXPECT_FALSE(node_b.decodeNodeRoute(token, kT0 + 3600 + 7200 + 1200));  // its key retired
  std::string bad = token;
  bad[4] = bad[4] == '0' ? '1' : '0';
  EXPECT_FALSE(node_b.decodeNodeRoute(bad, kT0));
  EXPECT_EQ(node_b.decode(token, DialogRef{}, kT0).verdict, Verdict::kNotSigned);
  FlowPair pair;
  pair.downstream = phone;
  EXPECT_FALSE(node_b.decodeNodeRoute(node_b.encode(pair, "", "", kT0), kT0));
  // Why not, for the 403's reason phrase.
  std::string bad_mac = token;
  bad_mac.back() = bad_mac.back() == '0' ? '1' : '0';
  EXPECT_EQ(node_b.verifyNodeRoute(bad_mac, kT0).verdict, Verdict::kBadSignature);
  EXPECT_EQ(node_b.verifyNodeRoute(bad, kT0).verdict, Verdict::kNotSigned);  // no flow in it
  EXPECT_EQ(
      FlowTokenCodec(keys("another secret, 32 bytes long...")).verifyNodeRoute(token, kT0).verdict,
      Verdict::kBadSignature);
  EXPECT_EQ(node_b.verifyNodeRoute(token, kT0 + 3600 + 7200 + 1200).verdict, Verdict::kExpired);
  EXPECT_EQ(node_b.verifyNodeRoute(node_b.encode(pair, "", "", kT0), kT0).verdict,
            Verdict::kNotSigned);
  EXPECT_EQ(node_b.verifyNodeRoute(token, kT0).verdict, Verdict::kValid);
}

TEST(FlowToken, SignatureBindsTheDialogEitherTagAndNoFlowsIsStillSigned) {
  FlowTokenCodec codec(keys());
  std::string token = codec.encode({}, "call-1", "fa", kT0);
  EXPECT_LE(token.size(), 26u);  // compact: Record-Route size matters over UDP
  // From the caller (From tag = the caller's tag) and from the callee (To tag = it).
  EXPECT_EQ(codec.decode(token, {"call-1", "fa", "bt"}, kT0).verdict, Verdict::kValid);
  EXPECT_EQ(codec.decode(token, {"call-1", "bt", "fa"}, kT0).verdict, Verdict::kValid);
  EXPECT_TRUE(codec.decode(token, {"call-1", "fa", "bt"}, kT0).pair.empty());
  // Which tag verified tells who sent the request (unknown when both tags are the same).
  using Sender = FlowTokenCodec::Sender;
  EXPECT_EQ(codec.decode(token, {"call-1", "fa", "bt"}, kT0).sender, Sender::kCaller);
  EXPECT_EQ(codec.decode(token, {"call-1", "fa", ""}, kT0).sender, Sender::kCaller);
  EXPECT_EQ(codec.decode(token, {"call-1", "bt", "fa"}, kT0).sender, Sender::kCallee);
  EXPECT_EQ(codec.decode(token, {"call-1", "fa", "fa"}, kT0).sender, Sender::kUnknown);
  // Another dialog: other Call-ID, other tags, a Call-ID/tag split moved.
  EXPECT_EQ(codec.decode(token, {"call-2", "fa", "bt"}, kT0).verdict, Verdict::kBadSignature);
  EXPECT_EQ(codec.decode(token, {"call-1", "mm", "xx"}, kT0).verdict, Verdict::kBadSignature);
  EXPECT_EQ(codec.decode(token, {"call-1f", "a", ""}, kT0).verdict, Verdict::kBadSignature);
}

TEST(FlowToken, KeysRotateAndTheRetiredKeyVerifiesForTheOverlap) {
  FlowTokenCodec codec(keys());  // rotation 1 h, overlap 2 h
  const DialogRef dialog{"call-1", "fa", "bt"};
  const std::int64_t epoch_start = kT0 - kT0 % 3600;
  std::string old_token = codec.encode({}, "call-1", "fa", kT0);
  std::string new_token = codec.encode({}, "call-1", "fa", epoch_start + 3600);
  EXPECT_NE(old_token, new_token);  // another key (and key id) after the rotation
  EXPECT_NE(old_token.substr(old_token.size() - 19, 3), new_token.substr(new_token.size() - 19, 3));
  // The old key verifies until its epoch's end + overlap, not a second longer.
  EXPECT_EQ(codec.decode(old_token, dialog, epoch_start + 3600).verdict, Verdict::kValid);
  EXPECT_EQ(codec.decode(old_token, dialog, epoch_start + 3600 + 7199).verdict, Verdict::kValid);
  EXPECT_EQ(codec.decode(old_token, dialog, epoch_start + 3600 + 7200).verdict, Verdict::kExpired);
  EXPECT_EQ(codec.decode(new_token, dialog, epoch_start + 3600 + 7200).verdict, Verdict::kValid);
  // A key id from the future (a forged one) names an epoch 4096 rotations ago.
  EXPECT_EQ(codec.decode(new_token, dialog, kT0).verdict, Verdict::kExpired);
  // Without overlap, the key stops at the rotation.
  RouteKeyConfig strict = keys();
  strict.overlap = std::chrono::seconds(0);
  FlowTokenCodec no_overlap(strict);
  EXPECT_EQ(no_overlap.decode(old_token, dialog, epoch_start + 3599).verdict, Verdict::kValid);
  EXPECT_EQ(no_overlap.decode(old_token, dialog, epoch_start + 3600).verdict, Verdict::kExpired);
  // The same secret in another process (after a restart) verifies what this one signed.
  EXPECT_EQ(FlowTokenCodec(keys()).decode(old_token, dialog, kT0 + 60).verdict, Verdict::kValid);
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
