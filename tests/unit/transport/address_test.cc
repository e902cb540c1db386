#include <gtest/gtest.h>

#include <unordered_set>

#include "transport/transport.h"

namespace sipwake::transport {
namespace {

TEST(ProtocolTest, NamesRoundTrip) {
  EXPECT_EQ(protocolName(Protocol::kUdp), "UDP");
  EXPECT_EQ(protocolName(Protocol::kTcp), "TCP");
  EXPECT_EQ(protocolName(Protocol::kTls), "TLS");
  EXPECT_EQ(*protocolFromName("udp"), Protocol::kUdp);
  EXPECT_EQ(*protocolFromName("Tcp"), Protocol::kTcp);
  EXPECT_EQ(*protocolFromName("TLS"), Protocol::kTls);
  EXPECT_FALSE(protocolFromName("SCTP").isOk());
  EXPECT_FALSE(protocolFromName("").isOk());
}

TEST(AddressTest, ParsesIpv4) {
  auto a = Address::parse("192.0.2.7", 5060);
  ASSERT_TRUE(a.isOk());
  EXPECT_FALSE(a->v6);
  EXPECT_EQ(a->bytes[0], 192);
  EXPECT_EQ(a->bytes[3], 7);
  EXPECT_EQ(a->ip(), "192.0.2.7");
  EXPECT_EQ(a->hostForUri(), "192.0.2.7");
  EXPECT_EQ(a->toString(), "192.0.2.7:5060");
}

TEST(AddressTest, ParsesIpv6) {
  auto a = Address::parse("2001:db8::1", 5061);
  ASSERT_TRUE(a.isOk());
  EXPECT_TRUE(a->v6);
  EXPECT_EQ(a->ip(), "2001:db8::1");
  EXPECT_EQ(a->hostForUri(), "[2001:db8::1]");
  EXPECT_EQ(a->toString(), "[2001:db8::1]:5061");
  // Non-canonical text compares equal to canonical.
  EXPECT_EQ(*Address::parse("2001:DB8:0::0:1", 5061), *a);
}

TEST(AddressTest, RejectsGarbage) {
  EXPECT_FALSE(Address::parse("", 1).isOk());
  EXPECT_FALSE(Address::parse("example.com", 1).isOk());
  EXPECT_FALSE(Address::parse("1.2.3", 1).isOk());
  EXPECT_FALSE(Address::parse("256.1.1.1", 1).isOk());
  EXPECT_FALSE(Address::parse("[::1]", 1).isOk());  // brackets are not part of ip
  EXPECT_FALSE(Address::parse("::1::2", 1).isOk());
  EXPECT_FALSE(Address::parse(std::string(100, '1'), 1).isOk());
}

TEST(AddressTest, ParseHostPort) {
  EXPECT_EQ(Address::parseHostPort("127.0.0.1:5080", 5060)->toString(), "127.0.0.1:5080");
  EXPECT_EQ(Address::parseHostPort("127.0.0.1", 5060)->toString(), "127.0.0.1:5060");
  EXPECT_EQ(Address::parseHostPort("[::1]:5070", 5060)->toString(), "[::1]:5070");
  EXPECT_EQ(Address::parseHostPort("[::1]", 5061)->toString(), "[::1]:5061");
  EXPECT_EQ(Address::parseHostPort("::1", 5061)->toString(), "[::1]:5061");
  EXPECT_FALSE(Address::parseHostPort("127.0.0.1:", 5060).isOk());
  EXPECT_FALSE(Address::parseHostPort("127.0.0.1:70000", 5060).isOk());
  EXPECT_FALSE(Address::parseHostPort("127.0.0.1:50x", 5060).isOk());
  EXPECT_FALSE(Address::parseHostPort("[::1", 5060).isOk());
  EXPECT_FALSE(Address::parseHostPort("[::1]x", 5060).isOk());
  EXPECT_FALSE(Address::parseHostPort("host:5060", 5060).isOk());
}

TEST(AddressTest, EqualityAndHash) {
  Address a = *Address::parse("10.0.0.1", 1);
  Address b = *Address::parse("10.0.0.1", 2);
  Address c = *Address::parse("::ffff:10.0.0.1", 1);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  std::unordered_set<Address, AddressHash> set{a, b, c, a};
  EXPECT_EQ(set.size(), 3u);
}

}  // namespace
}  // namespace sipwake::transport
