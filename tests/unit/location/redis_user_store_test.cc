// UserStore on a real redis-server: two stores on one Redis are two nodes (or a node and the
// `sipwake user` CLI).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "../wait_until.h"
#include "location/user_store.h"
#include "redis_server.h"
#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using redis::testing::RedisServer;

// Waits (bounded) until `pred` holds.
template <typename Pred>
bool eventually(Pred pred) {
  return testing_support::waitUntil(pred, std::chrono::seconds(10));
}

class RedisUserStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!redis::testing::haveRedisServer()) GTEST_SKIP() << "redis-server is not installed";
    ASSERT_TRUE(server_.start());
  }

  std::unique_ptr<UserStore> open(bool follow = true, std::string prefix = "sipwake:") {
    RedisUserOptions o;
    o.redis.hosts = {{"127.0.0.1", server_.port()}};
    o.prefix = std::move(prefix);
    o.follow_changes = follow;
    auto s = UserStore::openRedis(o);
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    return s ? std::move(s).value() : nullptr;
  }

  RedisServer server_;
};

TEST_F(RedisUserStoreTest, AddListPasswdDelAsWithSqlite) {
  auto users = open(/*follow=*/false);
  ASSERT_TRUE(users);
  ASSERT_TRUE(users->add("alice", "example.com", "s3cret").isOk());
  ASSERT_TRUE(users->add("bob", "example.com", "hunter2").isOk());
  ASSERT_TRUE(users->add("alice", "example.org", "other").isOk());
  EXPECT_EQ(users->add("alice", "example.com", "again").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(users->add("a:b", "example.com", "x").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(users->size(), 3u);
  auto list = users->list();
  ASSERT_TRUE(list.isOk());
  std::vector<UserEntry> expected{
      {"alice", "example.com"}, {"bob", "example.com"}, {"alice", "example.org"}};
  EXPECT_EQ(*list, expected);

  auto c = users->lookup("alice", "example.com");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->ha1_md5, computeHa1(DigestAlgorithm::kMd5, "alice", "example.com", "s3cret"));
  EXPECT_EQ(c->ha1_sha256, computeHa1(DigestAlgorithm::kSha256, "alice", "example.com", "s3cret"));

  ASSERT_TRUE(users->setPassword("alice", "example.com", "new").isOk());
  EXPECT_EQ(users->lookup("alice", "example.com")->ha1_md5,
            computeHa1(DigestAlgorithm::kMd5, "alice", "example.com", "new"));
  EXPECT_EQ(users->setPassword("carol", "example.com", "x").code(), StatusCode::kNotFound);

  ASSERT_TRUE(users->remove("bob", "example.com").isOk());
  EXPECT_EQ(users->remove("bob", "example.com").code(), StatusCode::kNotFound);
  EXPECT_FALSE(users->lookup("bob", "example.com").has_value());
  ASSERT_TRUE(users->remove("alice", "example.org").isOk());
  // A new store (another process) reads the same users from Redis; the emptied domain is gone
  // from the domain set.
  auto again = open(false);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->size(), 1u);
  EXPECT_TRUE(again->lookup("alice", "example.com").has_value());
}

TEST_F(RedisUserStoreTest, ImportIsAllOrNone) {
  auto users = open(false);
  ASSERT_TRUE(users);
  ASSERT_TRUE(users->add("bob", "example.com", "old").isOk());
  std::vector<NewUser> batch{
      {"a1", "example.com", "p1"}, {"a2", "example.org", "p2"}, {"bob", "example.com", "p3"}};
  std::size_t bad = 99;
  EXPECT_EQ(users->importUsers(batch, /*replace=*/false, &bad).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(bad, 2u);
  auto fresh = open(false);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->size(), 1u);  // nothing of the batch reached Redis

  ASSERT_TRUE(users->importUsers(batch, /*replace=*/true).isOk());
  EXPECT_EQ(users->size(), 3u);
  EXPECT_EQ(users->lookup("bob", "example.com")->ha1_md5,
            computeHa1(DigestAlgorithm::kMd5, "bob", "example.com", "p3"));

  // A user listed twice: refused before anything is written.
  std::vector<NewUser> twice{{"c", "example.com", "x"}, {"c", "example.com", "y"}};
  EXPECT_EQ(users->importUsers(twice, true, &bad).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad, 1u);
  EXPECT_FALSE(users->lookup("c", "example.com").has_value());
}

TEST_F(RedisUserStoreTest, ASecondStoreSeesChangesWithoutReload) {
  auto node = open(/*follow=*/true);
  auto cli = open(/*follow=*/false);
  ASSERT_TRUE(node && cli);
  EXPECT_EQ(node->size(), 0u);
  ASSERT_TRUE(cli->add("carol", "example.com", "pw").isOk());
  EXPECT_TRUE(eventually([&] { return node->lookup("carol", "example.com").has_value(); }));
  ASSERT_TRUE(cli->setPassword("carol", "example.com", "pw2").isOk());
  const std::string want = computeHa1(DigestAlgorithm::kMd5, "carol", "example.com", "pw2");
  EXPECT_TRUE(eventually([&] { return node->lookup("carol", "example.com")->ha1_md5 == want; }));
  ASSERT_TRUE(
      cli->importUsers({{"d1", "example.net", "x"}, {"d2", "example.net", "y"}}, false).isOk());
  EXPECT_TRUE(eventually([&] { return node->size() == 3u; }));
  ASSERT_TRUE(cli->remove("carol", "example.com").isOk());
  EXPECT_TRUE(eventually([&] { return !node->lookup("carol", "example.com").has_value(); }));
}

TEST_F(RedisUserStoreTest, PrefixesSeparateDeployments) {
  auto a = open(false, "a:");
  auto b = open(false, "b:");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->add("alice", "example.com", "x").isOk());
  ASSERT_TRUE(b->reload().isOk());
  EXPECT_EQ(b->size(), 0u);
  EXPECT_EQ(a->list()->size(), 1u);
}

TEST_F(RedisUserStoreTest, CopiedCredentialsKeepTheirHa1s) {
  testing::TempDir dir;
  auto sqlite = UserStore::open(dir.file("sipwake.db"));
  ASSERT_TRUE(sqlite.isOk());
  ASSERT_TRUE((*sqlite)->add("alice", "example.com", "s3cret").isOk());
  auto rows = (*sqlite)->credentials();
  ASSERT_TRUE(rows.isOk());
  auto users = open(false);
  ASSERT_TRUE(users);
  ASSERT_TRUE(users->importCredentials(*rows, false).isOk());
  EXPECT_EQ(users->lookup("alice", "example.com")->ha1_sha256,
            computeHa1(DigestAlgorithm::kSha256, "alice", "example.com", "s3cret"));
}

TEST_F(RedisUserStoreTest, UnreachableRedisIsUnavailable) {
  RedisUserOptions o;
  o.redis.hosts = {{"127.0.0.1", redis::testing::freeLoopbackPort()}};
  o.load_wait = 300ms;
  auto s = UserStore::openRedis(o);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sipwake::location
