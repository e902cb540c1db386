#include "auth/trusted_peers.h"

#include <gtest/gtest.h>

namespace sipwake::auth {
namespace {

TEST(TrustedPeers, EmptyTrustsNobody) {
  TrustedPeers p;
  EXPECT_FALSE(p.contains("127.0.0.1"));
}

TEST(TrustedPeers, Ipv4CidrsAndSingleAddresses) {
  auto p = TrustedPeers::parse({"10.0.0.0/8", "192.0.2.7", "198.51.100.77/25", "0.0.0.0/0"});
  ASSERT_TRUE(p.isOk()) << p.status().toString();
  auto q = TrustedPeers::parse({"10.0.0.0/8", "192.0.2.7", "198.51.100.77/25"});
  ASSERT_TRUE(q.isOk());
  EXPECT_TRUE(q->contains("10.0.0.1"));
  EXPECT_TRUE(q->contains("10.255.255.255"));
  EXPECT_FALSE(q->contains("11.0.0.0"));
  EXPECT_TRUE(q->contains("192.0.2.7"));
  EXPECT_FALSE(q->contains("192.0.2.8"));
  EXPECT_TRUE(q->contains("198.51.100.0"));  // host bits of the entry are ignored
  EXPECT_TRUE(q->contains("198.51.100.127"));
  EXPECT_FALSE(q->contains("198.51.100.128"));
  EXPECT_TRUE(q->contains("::ffff:10.1.2.3"));  // IPv4-mapped
  EXPECT_TRUE(q->contains("[::ffff:192.0.2.7]"));
  EXPECT_FALSE(q->contains("::1"));
  EXPECT_FALSE(q->contains("not-an-ip"));
  EXPECT_FALSE(q->contains(""));
  EXPECT_TRUE(p->contains("203.0.113.9"));  // 0.0.0.0/0
}

TEST(TrustedPeers, Ipv6Cidrs) {
  auto p =
      TrustedPeers::parse({"::1/128", "2001:db8::/32", "2001:db8:ffff:ff00::/57", "[fe80::1]"});
  ASSERT_TRUE(p.isOk()) << p.status().toString();
  EXPECT_TRUE(p->contains("::1"));
  EXPECT_TRUE(p->contains("[::1]"));
  EXPECT_FALSE(p->contains("::2"));
  EXPECT_TRUE(p->contains("2001:db8:1234::5"));
  EXPECT_TRUE(p->contains("2001:DB8::"));
  EXPECT_FALSE(p->contains("2001:db9::1"));
  EXPECT_TRUE(p->contains("fe80::1"));
  EXPECT_FALSE(p->contains("fe80::2"));
  EXPECT_FALSE(p->contains("10.0.0.1"));
  auto q = TrustedPeers::parse({"2001:db9:ff00::/41"});
  ASSERT_TRUE(q.isOk());
  EXPECT_TRUE(q->contains("2001:db9:ff00::1"));
  EXPECT_TRUE(q->contains("2001:db9:ff7f:ffff::1"));
  EXPECT_FALSE(q->contains("2001:db9:ff80::1"));
}

TEST(TrustedPeers, Errors) {
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "300.0.0.1",
                          "hostname", "", "10.0.0.0/8/8", "1.2.3"}) {
    auto p = TrustedPeers::parse({bad});
    ASSERT_FALSE(p.isOk()) << bad;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(std::string("'") + bad + "'"), std::string::npos);
  }
}

}  // namespace
}  // namespace sipwake::auth
