// MessageStore semantics (message_store.h), run against both implementations: order, once per
// device, bounds per AOR and in total, expiry, restart (SQLite).
#include "location/message_store.h"

#include <memory>
#include <string>
#include <vector>

#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using testing::kNow;

enum class StoreKind { kMemory, kSqlite };

StoredMessage message(std::string aor, std::string body, std::vector<std::string> devices,
                      SysSeconds expires_at = kNow + 1h) {
  StoredMessage m;
  m.aor = std::move(aor);
  m.stored_at = kNow;
  m.expires_at = expires_at;
  m.from = "<sip:alice@example.com>;tag=a1";
  m.to = "<sip:bob@example.com>";
  m.call_id = "c-" + body;
  m.content_type = "text/plain";
  m.body = std::move(body);
  m.devices = std::move(devices);
  return m;
}

std::vector<std::string> bodies(const std::vector<StoredMessage>& ms) {
  std::vector<std::string> out;
  for (const StoredMessage& m : ms) out.push_back(m.body);
  return out;
}

class MessageStoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override { store_ = open(); }

  std::unique_ptr<MessageStore> open(MessageStoreLimits limits = {3, 5}) {
    if (GetParam() == StoreKind::kMemory) return makeMemoryMessageStore(limits);
    auto opened = openSqliteMessageStore(dir_.file("messages.db"), limits);
    EXPECT_TRUE(opened.isOk()) << opened.status().toString();
    EXPECT_TRUE((*opened)->load().isOk());
    return std::move(opened).value();
  }

  std::int64_t add(StoredMessage m) {
    auto id = store_->add(std::move(m));
    EXPECT_TRUE(id.isOk()) << id.status().toString();
    return id.isOk() ? *id : 0;
  }

  testing::TempDir dir_;
  std::unique_ptr<MessageStore> store_;
};

TEST_P(MessageStoreTest, EachDeviceGetsEveryMessageInOrderOnce) {
  std::int64_t first = add(message("sip:bob@example.com", "one", {"d1", "d2"}));
  std::int64_t second = add(message("sip:bob@example.com", "two", {"d1", "d2"}));
  EXPECT_LT(first, second);
  EXPECT_EQ(bodies(store_->pendingFor("d1", kNow)), (std::vector<std::string>{"one", "two"}));
  EXPECT_TRUE(*store_->delivered(first, "d1"));
  EXPECT_FALSE(*store_->delivered(first, "d1"));  // once
  EXPECT_EQ(bodies(store_->pendingFor("d1", kNow)), (std::vector<std::string>{"two"}));
  EXPECT_EQ(bodies(store_->pendingFor("d2", kNow)), (std::vector<std::string>{"one", "two"}));
  EXPECT_TRUE(store_->pendingFor("d3", kNow).empty());
  EXPECT_EQ(store_->size(), 2u);
  EXPECT_TRUE(*store_->delivered(first, "d2"));  // every device has it: gone
  EXPECT_EQ(store_->size(), 1u);
  EXPECT_EQ(store_->countForAor("sip:bob@example.com"), 1u);
}

TEST_P(MessageStoreTest, PerUserAndTotalBounds) {
  for (std::string b : {"1", "2", "3"}) add(message("sip:bob@example.com", b, {"d1"}));
  auto refused = store_->add(message("sip:bob@example.com", "4", {"d1"}));
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(refused.status().message(), kMessageStoreUserFull);
  EXPECT_EQ(store_->countForAor("sip:bob@example.com"), 3u);
  add(message("sip:carol@example.com", "5", {"d2"}));
  add(message("sip:carol@example.com", "6", {"d2"}));
  refused = store_->add(message("sip:dave@example.com", "7", {"d3"}));
  ASSERT_FALSE(refused.isOk());
  EXPECT_EQ(refused.status().message(), kMessageStoreFull);
  EXPECT_EQ(store_->size(), 5u);
  // Room again once one is delivered.
  EXPECT_TRUE(*store_->delivered(store_->pendingFor("d1", kNow).front().id, "d1"));
  add(message("sip:bob@example.com", "8", {"d1"}));
}

TEST_P(MessageStoreTest, ExpiredMessagesAreNotHandedOutAndAreSwept) {
  add(message("sip:bob@example.com", "old", {"d1", "d2"}, kNow + 10s));
  add(message("sip:bob@example.com", "new", {"d1"}, kNow + 1h));
  EXPECT_EQ(bodies(store_->pendingFor("d1", kNow + 10s)), (std::vector<std::string>{"new"}));
  std::vector<StoredMessage> swept = store_->sweepExpired(kNow + 10s);
  ASSERT_EQ(swept.size(), 1u);
  EXPECT_EQ(swept[0].body, "old");
  EXPECT_EQ(swept[0].devices, (std::vector<std::string>{"d1", "d2"}));  // never reached
  EXPECT_EQ(store_->size(), 1u);
  EXPECT_TRUE(store_->sweepExpired(kNow + 10s).empty());
}

TEST_P(MessageStoreTest, RemoveDropsAMessageForEveryDevice) {
  std::int64_t id = add(message("sip:bob@example.com", "x", {"d1", "d2"}));
  EXPECT_TRUE(*store_->remove(id));
  EXPECT_TRUE(store_->pendingFor("d1", kNow).empty());
  EXPECT_EQ(store_->countForAor("sip:bob@example.com"), 0u);
}

TEST_P(MessageStoreTest, SurvivesARestart) {
  if (GetParam() == StoreKind::kMemory) GTEST_SKIP() << "memory only";
  std::int64_t first = add(message("sip:bob@example.com", "one", {"d1", "d2"}));
  StoredMessage binary = message("sip:bob@example.com", std::string("t\0o", 3), {"d1"});
  binary.content_type = "application/octet-stream";
  add(binary);
  EXPECT_TRUE(*store_->delivered(first, "d2"));
  store_.reset();
  store_ = open();
  std::vector<StoredMessage> pending = store_->pendingFor("d1", kNow);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0].body, "one");
  EXPECT_EQ(pending[0].from, "<sip:alice@example.com>;tag=a1");
  EXPECT_EQ(pending[0].call_id, "c-one");
  EXPECT_EQ(pending[1].body, std::string("t\0o", 3));
  EXPECT_EQ(pending[1].content_type, "application/octet-stream");
  EXPECT_TRUE(store_->pendingFor("d2", kNow).empty());  // it took "one" before the restart
  // Ids go on growing after a restart: order holds.
  std::int64_t later = add(message("sip:bob@example.com", "three", {"d1"}));
  EXPECT_GT(later, pending[1].id);
  EXPECT_EQ(store_->countForAor("sip:bob@example.com"), 3u);
}

INSTANTIATE_TEST_SUITE_P(Stores, MessageStoreTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite),
                         [](const auto& info) {
                           return info.param == StoreKind::kMemory ? "Memory" : "Sqlite";
                         });

}  // namespace
}  // namespace sipwake::location
