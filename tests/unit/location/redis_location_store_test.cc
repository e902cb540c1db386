// RedisLocationStore against a real redis-server: two stores on one Redis are two nodes.
#include "location/redis_location_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "../wait_until.h"
#include "redis_server.h"
#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using redis::testing::RedisServer;
using testing::applySync;
using testing::contact;
using testing::kNow;
using testing::reg;

// Waits (bounded) until `pred` holds.
template <typename Pred>
bool eventually(Pred pred) {
  return testing_support::waitUntil(pred, std::chrono::seconds(10));
}

// The push upsert a REGISTER of `b` (carrying a push binding) makes, expiring after `expires_in`.
PushOp pushUpsert(const Binding& b, std::chrono::seconds expires_in) {
  PushOp op;
  op.record.binding = *b.push;
  op.record.device_key = b.push->deviceKey();
  op.record.identity = "c:" + b.contact_uri;
  op.record.binding_key = "c:" + b.contact_uri;
  op.record.registered_at = kNow;
  op.record.expires_at = kNow + expires_in;
  return op;
}

class RedisLocationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!redis::testing::haveRedisServer()) GTEST_SKIP() << "redis-server is not installed";
    ASSERT_TRUE(server_.start());
  }

  std::unique_ptr<RedisLocationStore> node(std::string id,
                                           std::function<void(const RegisteredEvent&)> obs = {}) {
    RedisLocationOptions o;
    o.redis.hosts = {{"127.0.0.1", server_.port()}};
    o.node_id = std::move(id);
    o.command_timeout = 500ms;
    auto s = RedisLocationStore::open(o);
    EXPECT_TRUE(s.isOk()) << s.status().toString();
    if (!s) return nullptr;
    if (obs) (*s)->setRegisteredObserver(std::move(obs));
    auto loaded = (*s)->load(kNow);
    EXPECT_TRUE(loaded.isOk()) << loaded.status().toString();
    return std::move(s).value();
  }

  RedisServer server_{{"--appendonly", "yes"}};
};

TEST_F(RedisLocationStoreTest, TwoNodesNeverLoseAnUpdateAndTheLoserGetsFailedPrecondition) {
  auto a = node("a");
  auto b = node("b");
  // Different Call-IDs (two devices of one AOR) through two nodes: both bindings kept.
  ASSERT_TRUE(applySync(*a, reg("sip:u@x", "c1", 1, {contact("sip:u@d1", 600)})).isOk());
  auto rb = applySync(*b, reg("sip:u@x", "c2", 1, {contact("sip:u@d2", 600)}));
  ASSERT_TRUE(rb.isOk()) << rb.status().toString();
  EXPECT_EQ(rb->size(), 2u);  // B wrote on top of A's binding, seen in Redis
  // The same Call-ID and CSeq again through the other node: refused, nothing changed.
  auto again = applySync(*b, reg("sip:u@x", "c1", 1, {contact("sip:u@d1", 900)}));
  ASSERT_FALSE(again.isOk());
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(eventually([&] { return a->lookup("sip:u@x", kNow).size() == 2; }));
  // Concurrent writers on both nodes, interleaved: every one lands.
  std::thread ta([&] {
    for (std::uint32_t i = 2; i <= 30; ++i) {
      auto r = applySync(*a, reg("sip:u@x", "c1", i, {contact("sip:u@d1", 600 + i)}));
      EXPECT_TRUE(r.isOk()) << r.status().toString();
    }
  });
  for (std::uint32_t i = 2; i <= 30; ++i) {
    auto r = applySync(*b, reg("sip:u@x", "c2", i, {contact("sip:u@d2", 600 + i)}));
    EXPECT_TRUE(r.isOk()) << r.status().toString();
  }
  ta.join();
  auto fresh = node("c");  // a third node reading Redis from scratch
  auto all = fresh->lookup("sip:u@x", kNow);
  ASSERT_EQ(all.size(), 2u);
  for (const Binding& bd : all) EXPECT_EQ(bd.cseq, 30u);
}

TEST_F(RedisLocationStoreTest, OtherNodesCacheFollowsByPubSubAndRegisteredEventIsPublished) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<RegisteredEvent> heard;
  auto a = node("a");
  auto b = node("b", [&](const RegisteredEvent& e) {
    std::lock_guard lock(mu);
    heard.push_back(e);
    cv.notify_all();
  });
  RegistrationChange c = reg("sip:p@x", "c1", 1, {contact("sip:p@phone", 600)});
  Binding& bd = c.upserts[0];
  bd.push = testing::tokenBinding("tok-1");
  PushOp op = pushUpsert(bd, 3600s);
  c.push_ops.push_back(op);
  ASSERT_TRUE(applySync(*a, std::move(c)).isOk());
  // B serves it from memory, without a restart.
  ASSERT_TRUE(eventually([&] { return b->lookup("sip:p@x", kNow).size() == 1; }));
  auto found = b->lookup("sip:p@x", kNow)[0];
  ASSERT_TRUE(found.push.has_value());
  EXPECT_EQ(found.push->voip_token, "tok-1");
  ASSERT_TRUE(eventually([&] { return b->lookupPushDevice(op.record.device_key).has_value(); }));
  EXPECT_EQ(b->lookupPush("sip:p@x", kNow).size(), 1u);
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return !heard.empty(); }));
    EXPECT_EQ(heard[0].node_id, "a");
    EXPECT_EQ(heard[0].aor, "sip:p@x");
    EXPECT_EQ(heard[0].device_keys, std::vector<std::string>{op.record.device_key});
  }
  // A removal on B reaches A's cache.
  ASSERT_TRUE(applySync(*b, reg("sip:p@x", "c1", 2, {}, {contact("sip:p@phone", 0)})).isOk());
  EXPECT_TRUE(eventually([&] { return a->lookup("sip:p@x", kNow).empty(); }));
}

TEST_F(RedisLocationStoreTest, RedisDownFailsFastLookupsServeCacheAndRecoveryRereads) {
  auto a = node("a");
  ASSERT_TRUE(applySync(*a, reg("sip:d@x", "c1", 1, {contact("sip:d@h", 600)})).isOk());
  EXPECT_TRUE(a->redisUp());
  server_.kill();
  ASSERT_TRUE(eventually([&] { return !a->redisUp(); }));
  auto started = std::chrono::steady_clock::now();
  auto r = applySync(*a, reg("sip:d@x", "c1", 2, {contact("sip:d@h", 700)}));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(a->lookup("sip:d@x", kNow).size(), 1u);  // the cache still serves
  const std::size_t reads = a->fullReads();
  ASSERT_TRUE(server_.start(/*same_port=*/true));  // appendonly: the binding is still there
  ASSERT_TRUE(eventually([&] { return a->redisUp() && a->fullReads() > reads; }));
  EXPECT_EQ(a->lookup("sip:d@x", kNow).size(), 1u);
  auto after = applySync(*a, reg("sip:d@x", "c1", 3, {contact("sip:d@h", 800)}));
  ASSERT_TRUE(after.isOk()) << after.status().toString();
  EXPECT_EQ((*after)[0].cseq, 3u);
}

TEST_F(RedisLocationStoreTest, SweepDeletesExpiredFieldsFromRedisBesideLiveOnes) {
  auto a = node("a");
  ASSERT_TRUE(applySync(*a, reg("sip:e@x", "c1", 1, {contact("sip:e@old", 10)})).isOk());
  RegistrationChange c = reg("sip:e@x", "c2", 1, {contact("sip:e@new", 600)});
  c.upserts[0].push = testing::tokenBinding("tok-e");
  c.push_ops.push_back(pushUpsert(c.upserts[0], 30s));
  ASSERT_TRUE(applySync(*a, std::move(c)).isOk());
  auto b = node("b");
  EXPECT_EQ(b->size(), 2u);
  EXPECT_EQ(b->pushSize(), 1u);

  // The old binding and the push record have expired; the new binding lives on, so the AOR's
  // key does not expire: only the sweep can take the dead fields out of Redis.
  EXPECT_EQ(a->sweepExpired(kNow + 60s), 1u);
  EXPECT_EQ(a->size(), 1u);
  EXPECT_EQ(a->pushSize(), 0u);
  auto fresh = node("c");  // what Redis holds now
  ASSERT_EQ(fresh->size(), 1u);
  EXPECT_EQ(fresh->lookup("sip:e@x", kNow)[0].contact_uri, "sip:e@new");
  EXPECT_EQ(fresh->pushSize(), 0u);
  EXPECT_TRUE(eventually([&] { return b->size() == 1 && b->pushSize() == 0; }));
  // Nothing left to prune: no write, so no node hears of the AOR again.
  EXPECT_EQ(b->sweepExpired(kNow + 60s), 0u);
}

}  // namespace
}  // namespace sipwake::location
