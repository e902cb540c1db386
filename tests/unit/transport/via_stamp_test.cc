#include <gtest/gtest.h>

#include <string>

#include "sip/message.h"
#include "transport/response_routing.h"

namespace sipwake::transport {
namespace {

sip::Message parse(const std::string& via) {
  std::string text =
      "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n"
      "Via: " +
      via +
      "\r\n"
      "Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKlower\r\n"
      "From: <sip:a@example.com>;tag=1\r\n"
      "To: <sip:b@example.com>\r\n"
      "Call-ID: stamp-test\r\n"
      "CSeq: 1 OPTIONS\r\n"
      "Max-Forwards: 70\r\n"
      "Content-Length: 0\r\n\r\n";
  auto po = sip::parseMessage(text, sip::ParseLimits{});
  EXPECT_EQ(po.kind, sip::ParseOutcome::Kind::kOk) << po.drop_reason << po.reason;
  return std::move(*po.message);
}

struct StampResult {
  std::string host, received, rport, branch;
  bool has_received = false, has_rport = false;
  std::size_t via_count = 0;
};

StampResult stamp(const std::string& via, const char* source) {
  sip::Message m = parse(via);
  EXPECT_TRUE(stampReceivedVia(m, *Address::parseHostPort(source, 0)).isOk());
  // Round-trip through the wire form: what the next hop would see.
  auto again = sip::parseMessage(m.serialize(), sip::ParseLimits{});
  EXPECT_EQ(again.kind, sip::ParseOutcome::Kind::kOk);
  StampResult r;
  auto vias = again.message->vias();
  EXPECT_TRUE(vias.isOk());
  r.via_count = vias->size();
  const sip::Via& top = vias->front();
  r.host = std::string(top.host);
  r.branch = std::string(top.branch());
  if (auto* p = top.received()) {
    r.has_received = true;
    r.received = std::string(p->value);
  }
  if (auto* p = top.rport()) {
    r.has_rport = true;
    r.rport = std::string(p->value);
  }
  EXPECT_EQ(vias->back().branch(), "z9hG4bKlower");
  return r;
}

TEST(StampReceivedViaTest, SameHostNoRportUnchanged) {
  auto r = stamp("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa", "192.0.2.1:5060");
  EXPECT_FALSE(r.has_received);
  EXPECT_FALSE(r.has_rport);
  EXPECT_EQ(r.via_count, 2u);
}

TEST(StampReceivedViaTest, DifferentHostAddsReceived) {
  auto r = stamp("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa", "192.0.2.1:4000");
  EXPECT_TRUE(r.has_received);
  EXPECT_EQ(r.received, "192.0.2.1");
  EXPECT_EQ(r.branch, "z9hG4bKa");
  EXPECT_EQ(r.via_count, 2u);
}

TEST(StampReceivedViaTest, HostnameAddsReceived) {
  auto r = stamp("SIP/2.0/TCP phone.example.com;branch=z9hG4bKa", "192.0.2.1:4000");
  EXPECT_EQ(r.received, "192.0.2.1");
  EXPECT_EQ(r.host, "phone.example.com");
}

TEST(StampReceivedViaTest, EmptyRportFilledAndReceivedAlwaysAdded) {
  auto r = stamp("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKa", "192.0.2.1:4000");
  EXPECT_EQ(r.rport, "4000");
  EXPECT_TRUE(r.has_received);  // RFC 3581 §4: even when equal to sent-by
  EXPECT_EQ(r.received, "192.0.2.1");
  EXPECT_EQ(r.branch, "z9hG4bKa");
}

TEST(StampReceivedViaTest, ClientSuppliedReceivedIsReplaced) {
  auto r = stamp("SIP/2.0/UDP 10.0.0.1;received=6.6.6.6;branch=z9hG4bKa", "192.0.2.1:4000");
  EXPECT_EQ(r.received, "192.0.2.1");
}

TEST(StampReceivedViaTest, Ipv6Source) {
  auto r = stamp("SIP/2.0/UDP [2001:db8::1]:5060;rport;branch=z9hG4bKa", "[2001:db8::2]:4000");
  EXPECT_EQ(r.received, "2001:db8::2");
  EXPECT_EQ(r.rport, "4000");
  EXPECT_EQ(r.host, "[2001:db8::1]");
}

TEST(StampReceivedViaTest, Ipv6SameHostDifferentSpelling) {
  auto r = stamp("SIP/2.0/UDP [2001:DB8:0::1]:5060;branch=z9hG4bKa", "[2001:db8::1]:5060");
  EXPECT_FALSE(r.has_received);
}

}  // namespace
}  // namespace sipwake::transport
