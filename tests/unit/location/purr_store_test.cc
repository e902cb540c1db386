// PurrStore (purr_store.h), both implementations: PURRs are CSPRNG-shaped and distinct, rotate on
// the schedule, stay valid while issued or used within `keep`, are bounded per device, never
// cross AORs, and survive a restart (SQLite).
#include "location/purr_store.h"

#include <memory>
#include <set>
#include <string>

#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using testing::kNow;

enum class StoreKind { kMemory, kSqlite };

class PurrStoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override { store_ = open(); }

  std::unique_ptr<PurrStore> open(PurrPolicy policy = {}) {
    if (GetParam() == StoreKind::kMemory) return makeMemoryPurrStore(policy);
    auto opened = openSqlitePurrStore(dir_.file("push.db"), policy);
    EXPECT_TRUE(opened.isOk()) << opened.status().toString();
    if (!opened.isOk()) return nullptr;
    EXPECT_TRUE((*opened)->load(kNow).isOk());
    return std::move(*opened);
  }

  std::string issue(PurrStore& s, const std::string& device, SysSeconds now,
                    const std::string& aor = "sip:alice@example.com") {
    auto p = s.issue(device, aor, now);
    EXPECT_TRUE(p.isOk()) << p.status().toString();
    return p.isOk() ? *p : std::string();
  }

  testing::TempDir dir_;
  std::unique_ptr<PurrStore> store_;
};

TEST_P(PurrStoreTest, IssuesRandomHexValuesDistinctPerDevice) {
  ASSERT_NE(store_, nullptr);
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string p = issue(*store_, "dev" + std::to_string(i), kNow);
    EXPECT_TRUE(isPurrShaped(p)) << p;
    EXPECT_EQ(p.find("dev"), std::string::npos);  // nothing of the device in it
    seen.insert(p);
  }
  EXPECT_EQ(seen.size(), 100u);
  auto r = store_->use(*seen.begin(), kNow);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->aor, "sip:alice@example.com");
  EXPECT_FALSE(store_->use("0123456789abcdef0123456789abcdef", kNow).has_value());
  EXPECT_FALSE(store_->use("", kNow).has_value());
}

TEST_P(PurrStoreTest, RotatesOnScheduleAndKeepsOldValuesValid) {
  ASSERT_NE(store_, nullptr);
  const std::string first = issue(*store_, "dev", kNow);
  EXPECT_EQ(issue(*store_, "dev", kNow + 59min), first);  // a refresh within the hour: same
  const std::string second = issue(*store_, "dev", kNow + 61min);
  EXPECT_NE(second, first);
  // The old value still wakes the device (a dialog may carry it).
  auto old = store_->use(first, kNow + 2h);
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->device_key, "dev");
  EXPECT_TRUE(store_->use(second, kNow + 2h).has_value());
}

TEST_P(PurrStoreTest, ValidWhileUsedWithinKeepThenForgotten) {
  ASSERT_NE(store_, nullptr);
  const std::string p = issue(*store_, "dev", kNow);
  EXPECT_TRUE(store_->use(p, kNow + 20h).has_value());         // used: kept 24 h from here
  EXPECT_TRUE(store_->use(p, kNow + 43h).has_value());         // still within 24 h of its use
  EXPECT_FALSE(store_->use(p, kNow + 43h + 24h).has_value());  // unused for a day: gone
  const std::string q = issue(*store_, "dev2", kNow);
  EXPECT_EQ(store_->sweep(kNow + 25h), 1u);  // `q`, never used
  EXPECT_FALSE(store_->use(q, kNow + 1h).has_value());
  EXPECT_EQ(store_->size(), 1u);  // `p`, used at +43 h
}

TEST_P(PurrStoreTest, BoundedPerDeviceLeastRecentlyUsedGoes) {
  store_ = open(PurrPolicy{std::chrono::hours(1), std::chrono::hours(24 * 30), 3});
  ASSERT_NE(store_, nullptr);
  const std::string a = issue(*store_, "dev", kNow);
  const std::string b = issue(*store_, "dev", kNow + 1h);
  const std::string c = issue(*store_, "dev", kNow + 2h);
  ASSERT_TRUE(store_->use(a, kNow + 150min).has_value());  // `a` is in use by a dialog
  const std::string d = issue(*store_, "dev", kNow + 3h);  // evicts `b`, the least recently used
  EXPECT_TRUE(store_->use(a, kNow + 3h).has_value());
  EXPECT_FALSE(store_->use(b, kNow + 3h).has_value());
  EXPECT_TRUE(store_->use(c, kNow + 3h).has_value());
  EXPECT_TRUE(store_->use(d, kNow + 3h).has_value());
  EXPECT_EQ(store_->size(), 3u);
}

TEST_P(PurrStoreTest, TokenMovedToAnotherAorGetsAFreshValue) {
  ASSERT_NE(store_, nullptr);
  const std::string alice = issue(*store_, "dev", kNow, "sip:alice@example.com");
  const std::string bob = issue(*store_, "dev", kNow + 1min, "sip:bob@example.com");
  EXPECT_NE(alice, bob);
  EXPECT_EQ(store_->use(bob, kNow + 2min)->aor, "sip:bob@example.com");
}

TEST_P(PurrStoreTest, SurvivesRestart) {
  if (GetParam() != StoreKind::kSqlite) GTEST_SKIP() << "memory only";
  ASSERT_NE(store_, nullptr);
  const std::string p = issue(*store_, "dev", kNow);
  store_.reset();
  store_ = open();
  ASSERT_NE(store_, nullptr);
  auto r = store_->use(p, kNow + 1h);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->device_key, "dev");
  EXPECT_EQ(issue(*store_, "dev", kNow + 30min), p);  // the schedule survives too
}

INSTANTIATE_TEST_SUITE_P(Both, PurrStoreTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite),
                         [](const auto& info) {
                           return info.param == StoreKind::kMemory ? "Memory" : "Sqlite";
                         });

}  // namespace
}  // namespace sipwake::location
