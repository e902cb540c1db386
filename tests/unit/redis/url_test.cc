#include "redis/url.h"

#include <gtest/gtest.h>

#include "redis/resp.h"

namespace sipwake::redis {
namespace {

TEST(RedisUrl, PlainWithDefaults) {
  auto c = parseRedisUrl("redis://127.0.0.1");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_FALSE(c->tls);
  EXPECT_FALSE(c->sentinel());
  ASSERT_EQ(c->hosts.size(), 1u);
  EXPECT_EQ(c->hosts[0], (HostPort{"127.0.0.1", 6379}));
  EXPECT_EQ(c->db, 0);
  EXPECT_TRUE(c->password.empty());
}

TEST(RedisUrl, CredentialsPortDbTls) {
  auto c = parseRedisUrl("rediss://alice:p%40ss%3Aw@redis.example:6380/4");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_TRUE(c->tls);
  EXPECT_EQ(c->user, "alice");
  EXPECT_EQ(c->password, "p@ss:w");
  EXPECT_EQ(c->hosts[0], (HostPort{"redis.example", 6380}));
  EXPECT_EQ(c->db, 4);
  auto p = parseRedisUrl("redis://:secret@[::1]:7000/0");
  ASSERT_TRUE(p) << p.status().message();
  EXPECT_TRUE(p->user.empty());
  EXPECT_EQ(p->password, "secret");
  EXPECT_EQ(p->hosts[0], (HostPort{"::1", 7000}));
  EXPECT_EQ(toString(p->hosts[0]), "[::1]:7000");
}

TEST(RedisUrl, Sentinel) {
  auto c = parseRedisUrl("redis-sentinel://:pw@s1:26380,s2,[::1]:26381/mymaster/2");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_FALSE(c->tls);
  EXPECT_EQ(c->sentinel_master, "mymaster");
  EXPECT_EQ(c->db, 2);
  EXPECT_EQ(c->password, "pw");
  ASSERT_EQ(c->hosts.size(), 3u);
  EXPECT_EQ(c->hosts[0], (HostPort{"s1", 26380}));
  EXPECT_EQ(c->hosts[1], (HostPort{"s2", 26379}));
  EXPECT_EQ(c->hosts[2], (HostPort{"::1", 26381}));
  auto t = parseRedisUrl("rediss-sentinel://s1/m");
  ASSERT_TRUE(t) << t.status().message();
  EXPECT_TRUE(t->tls);
  EXPECT_EQ(t->sentinel_master, "m");
  EXPECT_EQ(t->db, 0);
}

void expectError(std::string_view url, std::string_view fragment) {
  auto c = parseRedisUrl(url);
  ASSERT_FALSE(c) << url;
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find(fragment), std::string::npos)
      << url << " -> " << c.status().message();
}

TEST(RedisUrl, PreciseErrors) {
  expectError("127.0.0.1:6379", "is not a URL");
  expectError("http://h/0", "unknown scheme 'http'");
  expectError("redis://", "missing host");
  expectError("redis://h:/0", "empty port");
  expectError("redis://h:99999", "port '99999' is not a number in 1..65535");
  expectError("redis://h:abc", "port 'abc'");
  expectError("redis://h/x", "database 'x'");
  expectError("redis://h/-1", "database '-1'");
  expectError("redis://h/0/1", "unexpected path");
  expectError("redis://a,b/0", "names one server");
  expectError("redis://pw@h", "credentials must be");
  expectError("redis://u:@h", "empty password");
  expectError("redis://u:p%zz@h", "percent-encoding in the password");
  expectError("redis://h/0?ssl=1", "query");
  expectError("redis-sentinel://s1:26379", "missing master name");
  expectError("redis-sentinel://s1:26379//0", "missing master name");
  expectError("redis://[::1:6379", "lacks ']'");
}

TEST(Resp, FormatsCommandsAndParsesSplitReplies) {
  std::string out;
  appendCommand(out, {"SET", "k", std::string("a\0b", 3)});
  EXPECT_EQ(out, std::string("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\na\0b\r\n", 29));

  ReplyParser parser;
  const std::string bytes = "+OK\r\n:42\r\n$-1\r\n*2\r\n$3\r\nfoo\r\n-ERR bad\r\n";
  std::vector<Reply> got;
  for (char c : bytes) {  // one byte at a time: replies split anywhere
    parser.feed(&c, 1);
    while (true) {
      auto r = parser.next();
      ASSERT_TRUE(r);
      if (!r->has_value()) break;
      got.push_back(std::move(**r));
    }
  }
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(got[0].is("OK"));
  EXPECT_EQ(got[1].integer, 42);
  EXPECT_TRUE(got[2].isNil());
  ASSERT_TRUE(got[3].isArray());
  EXPECT_TRUE(got[3].elements[0].is("foo"));
  EXPECT_TRUE(got[3].elements[1].isError());
  EXPECT_EQ(got[3].elements[1].str, "ERR bad");

  ReplyParser bad;
  bad.feed("?what\r\n", 7);
  EXPECT_FALSE(bad.next());
}

}  // namespace
}  // namespace sipwake::redis
