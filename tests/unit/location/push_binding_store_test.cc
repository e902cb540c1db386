// PushBindingStore semantics (push_binding_store.h), run against both implementations: token
// moves, token rotation, opt-out and removal, per-AOR lookups among many AORs, restart (SQLite).
#include "location/push_binding_store.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using testing::kNow;

enum class StoreKind { kMemory, kSqlite };

PushRecord record(std::string device, std::string aor, std::string identity,
                  SysSeconds expires_at = kNow + 1h) {
  push::PushBinding binding = testing::tokenBinding(device);
  return PushRecord{std::move(device), std::move(aor),    identity,  identity,
                    std::move(binding), kNow,             expires_at};
}

std::vector<std::string> devicesOf(const PushBindingStore& store, std::string_view aor,
                                   SysSeconds now = kNow) {
  std::vector<std::string> out;
  for (const PushRecord& r : store.lookupByAor(aor, now)) out.push_back(r.device_key);
  std::sort(out.begin(), out.end());
  return out;
}

class PushBindingStoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override { store_ = open(); }

  std::unique_ptr<PushBindingStore> open() {
    if (GetParam() == StoreKind::kMemory) return makeMemoryPushBindingStore();
    auto opened = openSqlitePushBindingStore(dir_.file("push.db"));
    EXPECT_TRUE(opened.isOk()) << opened.status().toString();
    if (!opened.isOk()) return nullptr;
    EXPECT_TRUE((*opened)->load(kNow).isOk());
    return std::move(*opened);
  }

  void upsert(const PushRecord& r, std::size_t expected_moves = 0) {
    auto moved = store_->upsert(r);
    ASSERT_TRUE(moved.isOk()) << moved.status().toString();
    EXPECT_EQ(moved->size(), expected_moves) << r.device_key;
  }

  testing::TempDir dir_;
  std::unique_ptr<PushBindingStore> store_;
};

TEST_P(PushBindingStoreTest, LookupByAorFindsOnlyThatAorsLiveDevices) {
  ASSERT_NE(store_, nullptr);
  for (int i = 0; i < 200; ++i) {
    upsert(record("dev" + std::to_string(i), "sip:u" + std::to_string(i % 50) + "@example.com",
                  "i:phone" + std::to_string(i)));
  }
  EXPECT_EQ(store_->size(), 200u);
  EXPECT_EQ(devicesOf(*store_, "sip:u7@example.com"),
            (std::vector<std::string>{"dev107", "dev157", "dev57", "dev7"}));
  EXPECT_TRUE(devicesOf(*store_, "sip:nobody@example.com").empty());
  upsert(record("short", "sip:u7@example.com", "i:short", kNow + 10s));
  EXPECT_EQ(devicesOf(*store_, "sip:u7@example.com").size(), 5u);
  EXPECT_EQ(devicesOf(*store_, "sip:u7@example.com", kNow + 10s).size(), 4u);  // expired
  ASSERT_TRUE(store_->lookupByDevice("dev57").has_value());
  EXPECT_EQ(store_->lookupByDevice("dev57")->aor, "sip:u7@example.com");
}

TEST_P(PushBindingStoreTest, RefreshKeepsOneRecordPerDevice) {
  ASSERT_NE(store_, nullptr);
  upsert(record("dev1", "sip:alice@example.com", "i:a"));
  upsert(record("dev1", "sip:alice@example.com", "i:a", kNow + 2h));  // re-REGISTER: no move
  EXPECT_EQ(store_->size(), 1u);
  auto records = store_->lookupByAor("sip:alice@example.com", kNow + 90min);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].expires_at, kNow + 2h);
}

TEST_P(PushBindingStoreTest, TokenMovedToAnotherAorLeavesTheOldOne) {
  ASSERT_NE(store_, nullptr);
  upsert(record("dev1", "sip:alice@example.com", "i:a"));
  upsert(record("dev2", "sip:alice@example.com", "i:b"));
  upsert(record("dev1", "sip:bob@example.com", "i:a"), 1);  // the phone changed hands
  EXPECT_EQ(devicesOf(*store_, "sip:alice@example.com"), std::vector<std::string>{"dev2"});
  EXPECT_EQ(devicesOf(*store_, "sip:bob@example.com"), std::vector<std::string>{"dev1"});
  EXPECT_EQ(store_->size(), 2u);
  // alice's "i:a" is free again: opting it out removes nothing.
  auto none = store_->removeIdentity("sip:alice@example.com", "i:a");
  ASSERT_TRUE(none.isOk());
  EXPECT_FALSE(*none);
}

TEST_P(PushBindingStoreTest, RotatedTokenReplacesTheDevicesRecord) {
  ASSERT_NE(store_, nullptr);
  upsert(record("old", "sip:alice@example.com", "i:a"));
  upsert(record("other", "sip:alice@example.com", "i:b"));
  upsert(record("new", "sip:alice@example.com", "i:a"));  // same device, new token: not a move
  EXPECT_EQ(devicesOf(*store_, "sip:alice@example.com"),
            (std::vector<std::string>{"new", "other"}));
  EXPECT_FALSE(store_->lookupByDevice("old").has_value());
}

TEST_P(PushBindingStoreTest, RemoveAndOptOutForgetTheDevice) {
  ASSERT_NE(store_, nullptr);
  upsert(record("dev1", "sip:alice@example.com", "i:a"));
  upsert(record("dev2", "sip:alice@example.com", "i:b"));
  auto removed = store_->removeIdentity("sip:alice@example.com", "i:b");
  ASSERT_TRUE(removed.isOk());
  EXPECT_TRUE(*removed);
  auto gone = store_->remove("dev1", std::nullopt);
  ASSERT_TRUE(gone.isOk());
  EXPECT_TRUE(*gone);
  EXPECT_TRUE(devicesOf(*store_, "sip:alice@example.com").empty());
  EXPECT_EQ(store_->size(), 0u);
  // The AOR can register again afterwards.
  upsert(record("dev3", "sip:alice@example.com", "i:a"));
  EXPECT_EQ(devicesOf(*store_, "sip:alice@example.com"), std::vector<std::string>{"dev3"});
}

TEST_P(PushBindingStoreTest, SweepRemovesExpiredRecordsFromLookups) {
  ASSERT_NE(store_, nullptr);
  upsert(record("dev1", "sip:alice@example.com", "i:a", kNow + 10s));
  upsert(record("dev2", "sip:alice@example.com", "i:b"));
  EXPECT_EQ(store_->sweepExpired(kNow + 10s), 1u);
  EXPECT_EQ(devicesOf(*store_, "sip:alice@example.com", SysSeconds{}),
            std::vector<std::string>{"dev2"});
}

TEST_P(PushBindingStoreTest, SqliteReloadRebuildsTheAorIndex) {
  if (GetParam() != StoreKind::kSqlite) GTEST_SKIP() << "persistence is SQLite's";
  ASSERT_NE(store_, nullptr);
  upsert(record("dev1", "sip:alice@example.com", "i:a"));
  upsert(record("dev2", "sip:bob@example.com", "i:a"));
  store_.reset();
  store_ = open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(devicesOf(*store_, "sip:alice@example.com"), std::vector<std::string>{"dev1"});
  upsert(record("dev1", "sip:bob@example.com", "i:b"), 1);  // move after reload
  EXPECT_TRUE(devicesOf(*store_, "sip:alice@example.com").empty());
  EXPECT_EQ(devicesOf(*store_, "sip:bob@example.com"), (std::vector<std::string>{"dev1", "dev2"}));
}

INSTANTIATE_TEST_SUITE_P(Stores, PushBindingStoreTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite),
                         [](const auto& info) {
                           return info.param == StoreKind::kMemory ? "Memory" : "Sqlite";
                         });

}  // namespace
}  // namespace sipwake::location
