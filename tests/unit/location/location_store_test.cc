// Registrar semantics (RFC 3261 §10.3, RFC 5626 instance rule), run against every LocationStore.
#include <atomic>
#include <memory>
#include <thread>

#include "location/memory_location_store.h"
#include "location/redis_location_store.h"
#include "location/sqlite_location_store.h"
#include "redis_server.h"
#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using testing::applySync;
using testing::contact;
using testing::kNow;
using testing::reg;

TEST(BindingKeyTest, InstanceAndRegIdWinOverContact) {
  Binding a = contact("sip:a@198.51.100.7:5060", 60, "<urn:uuid:1>", 1);
  Binding b = contact("sip:a@203.0.113.9:5060", 60, "<urn:uuid:1>", 1);
  EXPECT_EQ(bindingKey(a), bindingKey(b));
  b.reg_id = 2;
  EXPECT_NE(bindingKey(a), bindingKey(b));
  Binding no_instance = contact("sip:a@198.51.100.7:5060", 60, "", 1);
  Binding no_instance_other_reg = contact("sip:a@198.51.100.7:5060", 60, "", 7);
  EXPECT_EQ(bindingKey(no_instance), bindingKey(no_instance_other_reg));  // reg-id ignored
  EXPECT_NE(bindingKey(no_instance), bindingKey(a));
}

enum class StoreKind { kMemory, kSqlite, kRedis };

class LocationStoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    if (GetParam() == StoreKind::kMemory) {
      store_ = std::make_unique<MemoryLocationStore>();
    } else if (GetParam() == StoreKind::kRedis) {
      if (!redis::testing::haveRedisServer()) GTEST_SKIP() << "redis-server is not installed";
      redis_ = std::make_unique<redis::testing::RedisServer>();
      ASSERT_TRUE(redis_->start());
      RedisLocationOptions o;
      o.redis.hosts = {{"127.0.0.1", redis_->port()}};
      auto opened = RedisLocationStore::open(o);
      ASSERT_TRUE(opened.isOk()) << opened.status().toString();
      store_ = std::move(opened).value();
    } else {
      auto opened = SqliteLocationStore::open(dir_.file("location.db"));
      ASSERT_TRUE(opened.isOk()) << opened.status().toString();
      store_ = std::move(opened).value();
    }
    auto loaded = store_->load(kNow);
    ASSERT_TRUE(loaded.isOk()) << loaded.status().toString();
  }

  Result<std::vector<Binding>> apply(RegistrationChange c) {
    return applySync(*store_, std::move(c));
  }

  testing::TempDir dir_;
  std::unique_ptr<redis::testing::RedisServer> redis_;  // outlives store_
  std::unique_ptr<LocationStore> store_;
};

TEST_P(LocationStoreTest, AddsBindingsAndReturnsThem) {
  Binding phone = contact("sip:alice@198.51.100.7:40123;transport=tcp", 3600);
  phone.q_milli = 700;
  phone.path = {"<sip:edge1.example.com;lr>", "<sip:edge2.example.com;lr>"};
  push::PushBinding pb;
  pb.voip_token = "abc";
  phone.push = pb;
  Binding desk = contact("sip:alice@203.0.113.4:5060", 600);

  auto r = apply(reg("sip:alice@example.com", "call-1", 1, {phone, desk}));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->size(), 2u);

  auto found = store_->lookup("sip:alice@example.com", kNow);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found, *r);
  const Binding& b = found[0];
  EXPECT_EQ(b.aor, "sip:alice@example.com");
  EXPECT_EQ(b.contact_uri, phone.contact_uri);
  EXPECT_EQ(b.call_id, "call-1");
  EXPECT_EQ(b.cseq, 1u);
  EXPECT_EQ(b.q_milli, 700);
  EXPECT_EQ(b.path, phone.path);
  EXPECT_EQ(b.received, phone.received);
  EXPECT_EQ(b.push, phone.push);
  EXPECT_EQ(b.registered_at, kNow);
  EXPECT_EQ(store_->size(), 2u);
  EXPECT_TRUE(store_->lookup("sip:bob@example.com", kNow).empty());
}

TEST_P(LocationStoreTest, RefreshReplacesExpiryWithoutDuplicating) {
  ASSERT_TRUE(apply(reg("sip:a@x", "c1", 1, {contact("sip:a@h", 60)})).isOk());
  auto r = apply(reg("sip:a@x", "c1", 2, {contact("sip:a@h", 3600)}));
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].expires_at, kNow + 3600s);
  EXPECT_EQ((*r)[0].cseq, 2u);
  EXPECT_EQ(store_->size(), 1u);
}

TEST_P(LocationStoreTest, RemovalWithExpiresZero) {
  ASSERT_TRUE(apply(reg("sip:a@x", "c1", 1, {contact("sip:a@h1", 60), contact("sip:a@h2", 60)})));
  auto r = apply(reg("sip:a@x", "c1", 2, {}, {contact("sip:a@h1", 0)}));
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].contact_uri, "sip:a@h2");
  // Removing something that is not bound is not an error.
  EXPECT_TRUE(apply(reg("sip:a@x", "c1", 3, {}, {contact("sip:a@nowhere", 0)})).isOk());
  ASSERT_TRUE(apply(reg("sip:a@x", "c1", 4, {}, {contact("sip:a@h2", 0)})).isOk());
  EXPECT_TRUE(store_->lookup("sip:a@x", kNow).empty());
  EXPECT_EQ(store_->size(), 0u);
}

TEST_P(LocationStoreTest, SameCallIdNeedsHigherCSeq) {
  ASSERT_TRUE(apply(reg("sip:a@x", "call-7", 7, {contact("sip:a@h", 60)})));
  for (std::uint32_t cseq : {7u, 5u}) {
    auto r = apply(reg("sip:a@x", "call-7", cseq, {contact("sip:a@h", 999)}));
    ASSERT_FALSE(r.isOk());
    EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(r.status().message().find("CSeq " + std::to_string(cseq) +
                                        " not higher than 7 for Call-ID call-7"),
              std::string::npos)
        << r.status().message();
  }
  auto now = store_->lookup("sip:a@x", kNow);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].expires_at, kNow + 60s);  // untouched
  // A different Call-ID (phone rebooted) may use any CSeq.
  EXPECT_TRUE(apply(reg("sip:a@x", "call-8", 1, {contact("sip:a@h", 120)})).isOk());
}

TEST_P(LocationStoreTest, RejectedChangeLeavesAorUntouched) {
  ASSERT_TRUE(apply(reg("sip:a@x", "c1", 5, {contact("sip:a@old", 60)})));
  // One new contact plus one out-of-order refresh: the whole REGISTER fails.
  auto r = apply(reg("sip:a@x", "c1", 4, {contact("sip:a@new", 60), contact("sip:a@old", 90)}));
  ASSERT_FALSE(r.isOk());
  auto now = store_->lookup("sip:a@x", kNow);
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].contact_uri, "sip:a@old");
}

TEST_P(LocationStoreTest, RepeatedContactInOneRegisterIsNotAConflict) {
  auto r = apply(reg("sip:a@x", "c1", 1, {contact("sip:a@h", 60), contact("sip:a@h", 90)}));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].expires_at, kNow + 90s);
}

TEST_P(LocationStoreTest, SameInstanceAndRegIdReplacesEarlierBinding) {
  const std::string inst = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>";
  ASSERT_TRUE(apply(reg("sip:a@x", "c1", 1, {contact("sip:a@198.51.100.7:1111", 600, inst, 1)})));
  // New network, new Call-ID, new contact address: replaces, not piles up.
  auto r = apply(reg("sip:a@x", "c2", 1, {contact("sip:a@203.0.113.9:2222", 600, inst, 1)}));
  ASSERT_TRUE(r.isOk());
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].contact_uri, "sip:a@203.0.113.9:2222");
  // A second flow of the same device (reg-id 2) is a second binding.
  r = apply(reg("sip:a@x", "c3", 1, {contact("sip:a@203.0.113.9:3333", 600, inst, 2)}));
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->size(), 2u);
  // Instance without reg-id also keys on the instance.
  const std::string other = "<urn:uuid:00000000-0000-1000-8000-000000000002>";
  ASSERT_TRUE(apply(reg("sip:a@x", "c4", 1, {contact("sip:a@h1", 600, other)})));
  r = apply(reg("sip:a@x", "c5", 1, {contact("sip:a@h2", 600, other)}));
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(r->size(), 3u);
  EXPECT_EQ(store_->size(), 3u);
}

TEST_P(LocationStoreTest, WildcardRemovesEverything) {
  ASSERT_TRUE(apply(reg("sip:a@x", "c1", 1, {contact("sip:a@h1", 60), contact("sip:a@h2", 60)})));
  ASSERT_TRUE(apply(reg("sip:a@x", "c2", 9, {contact("sip:a@h3", 60)})));
  // Same Call-ID as h3's with a CSeq not higher: fails, nothing removed.
  RegistrationChange stale = reg("sip:a@x", "c2", 9, {});
  stale.remove_all = true;
  auto r = apply(stale);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->lookup("sip:a@x", kNow).size(), 3u);

  RegistrationChange all = reg("sip:a@x", "c3", 1, {});
  all.remove_all = true;
  r = apply(all);
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r->empty());
  EXPECT_TRUE(store_->lookup("sip:a@x", kNow).empty());
  EXPECT_EQ(store_->size(), 0u);
}

TEST_P(LocationStoreTest, WildcardWithContactsIsInvalid) {
  RegistrationChange bad = reg("sip:a@x", "c1", 1, {contact("sip:a@h", 60)});
  bad.remove_all = true;
  auto r = apply(bad);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_P(LocationStoreTest, InvalidBindingsAreRejected) {
  Binding q = contact("sip:a@h", 60);
  q.q_milli = 1001;
  EXPECT_EQ(apply(reg("sip:a@x", "c1", 1, {q})).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(apply(reg("sip:a@x", "c1", 1, {contact("sip:a@h", 0)})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(apply(reg("", "c1", 1, {contact("sip:a@h", 10)})).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->size(), 0u);
}

TEST_P(LocationStoreTest, MaxBindingsPerAor) {
  RegistrationChange c =
      reg("sip:a@x", "c1", 1, {contact("sip:a@h1", 60), contact("sip:a@h2", 60)});
  c.max_bindings = 2;
  ASSERT_TRUE(apply(c).isOk());
  RegistrationChange more = reg("sip:a@x", "c1", 2, {contact("sip:a@h3", 60)});
  more.max_bindings = 2;
  auto r = apply(more);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange);
  // Refreshing an existing one at the limit is fine.
  RegistrationChange refresh = reg("sip:a@x", "c1", 3, {contact("sip:a@h1", 90)});
  refresh.max_bindings = 2;
  EXPECT_TRUE(apply(refresh).isOk());
}

TEST_P(LocationStoreTest, ExpiredBindingsAreHiddenThenSwept) {
  ASSERT_TRUE(
      apply(reg("sip:a@x", "c1", 1, {contact("sip:a@short", 10), contact("sip:a@long", 100)})));
  ASSERT_TRUE(apply(reg("sip:b@x", "c2", 1, {contact("sip:b@short", 10)})));
  EXPECT_EQ(store_->lookup("sip:a@x", kNow + 9s).size(), 2u);
  auto later = store_->lookup("sip:a@x", kNow + 10s);  // dead at expires_at exactly
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].contact_uri, "sip:a@long");
  EXPECT_EQ(store_->size(), 3u);
  EXPECT_EQ(store_->sweepExpired(kNow + 10s), 2u);
  EXPECT_EQ(store_->size(), 1u);
  EXPECT_EQ(store_->sweepExpired(kNow + 10s), 0u);
}

TEST_P(LocationStoreTest, ExpiredBindingDoesNotBlockNewRegistration) {
  ASSERT_TRUE(apply(reg("sip:a@x", "c1", 50, {contact("sip:a@h", 10)})));
  // Same Call-ID, lower CSeq, but the old binding is gone by now: it counts as absent.
  auto r = apply(reg("sip:a@x", "c1", 3, {contact("sip:a@h", 100)}, {}, kNow + 20s));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(store_->size(), 1u);
}

TEST_P(LocationStoreTest, DoneRunsAfterBindingIsVisible) {
  std::promise<std::size_t> seen;
  store_->applyRegistration(reg("sip:a@x", "c1", 1, {contact("sip:a@h", 60)}),
                            testing::inlineExecutor(), [&](Result<std::vector<Binding>> r) {
                              EXPECT_TRUE(r.isOk());
                              seen.set_value(store_->lookup("sip:a@x", kNow).size());
                            });
  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), 1u);
}

TEST_P(LocationStoreTest, LookupsFromTwoThreadsWhileWriting) {
  constexpr int kAors = 50;
  constexpr int kRounds = 40;
  std::atomic<bool> stop{false};
  std::atomic<long> lookups{0};
  std::atomic<int> inconsistent{0};
  auto reader = [&](int seed) {
    int i = seed;
    while (!stop.load(std::memory_order_relaxed)) {
      std::string aor = "sip:u" + std::to_string(i++ % kAors) + "@x";
      for (const Binding& b : store_->lookup(aor, kNow)) {
        // Every binding must belong to the AOR asked for and be complete.
        if (b.aor != aor || b.contact_uri != aor + ";dev" || b.call_id.empty()) ++inconsistent;
      }
      ++lookups;
    }
  };
  std::thread r1(reader, 0), r2(reader, 17);
  // The memory store can finish every write before a reader thread is scheduled: wait (bounded)
  // until both readers are running so the writes really overlap with lookups.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (lookups.load() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  for (std::uint32_t round = 1; round <= kRounds; ++round) {
    for (int u = 0; u < kAors; ++u) {
      std::string aor = "sip:u" + std::to_string(u) + "@x";
      ASSERT_TRUE(apply(reg(aor, "c", round, {contact(aor + ";dev", 60 + round)})).isOk());
    }
  }
  stop = true;
  r1.join();
  r2.join();
  EXPECT_EQ(inconsistent.load(), 0);
  EXPECT_GT(lookups.load(), 0);
  EXPECT_EQ(store_->size(), static_cast<std::size_t>(kAors));
  for (int u = 0; u < kAors; ++u) {
    auto b = store_->lookup("sip:u" + std::to_string(u) + "@x", kNow);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].cseq, static_cast<std::uint32_t>(kRounds));
  }
}

INSTANTIATE_TEST_SUITE_P(AllStores, LocationStoreTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite,
                                           StoreKind::kRedis),
                         [](const auto& info) {
                           switch (info.param) {
                             case StoreKind::kMemory: return "Memory";
                             case StoreKind::kSqlite: return "Sqlite";
                             default: return "Redis";
                           }
                         });

}  // namespace
}  // namespace sipwake::location
