// Push bindings in the location store: written with the SIP bindings in one change (one
// transaction), the move/rotate rules, removal through the writer, restart and old files.
#include <sqlite3.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "location/memory_location_store.h"
#include "location/sqlite_location_store.h"
#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using testing::applySync;
using testing::contact;
using testing::kNow;
using testing::reg;
using testing::tokenBinding;

enum class StoreKind { kMemory, kSqlite };

PushOp upsert(std::string token, std::string identity, SysSeconds expires_at = kNow + 1h) {
  PushOp op;
  op.record.binding = tokenBinding(token);
  op.record.device_key = op.record.binding.deviceKey();
  op.record.identity = identity;
  op.record.binding_key = identity;
  op.record.registered_at = kNow;
  op.record.expires_at = expires_at;
  return op;
}

std::string keyOf(const std::string& token) { return tokenBinding(token).deviceKey(); }

// A REGISTER of `aor` with one SIP binding and the given push ops.
RegistrationChange pushReg(std::string aor, std::uint32_t cseq, std::vector<PushOp> ops,
                           std::string call_id = "call-1") {
  RegistrationChange c =
      reg(std::move(aor), std::move(call_id), cseq, {contact("sip:phone@198.51.100.7", 3600)});
  c.push_ops = std::move(ops);
  return c;
}

std::vector<std::string> devicesOf(const LocationStore& store, std::string_view aor) {
  std::vector<std::string> out;
  for (const PushRecord& r : store.lookupPush(aor, kNow)) out.push_back(r.device_key);
  std::sort(out.begin(), out.end());
  return out;
}

class PushStoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override { store_ = open(); }

  std::unique_ptr<LocationStore> open() {
    std::unique_ptr<LocationStore> s;
    if (GetParam() == StoreKind::kMemory) {
      s = std::make_unique<MemoryLocationStore>();
    } else {
      auto opened = SqliteLocationStore::open(dir_.file("location.db"));
      if (!opened) {
        ADD_FAILURE() << opened.status().toString();
        return nullptr;
      }
      s = std::move(opened).value();
    }
    auto loaded = s->load(kNow);
    EXPECT_TRUE(loaded.isOk()) << loaded.status().toString();
    return s;
  }

  // Waits for the removal's callback (the SQLite writer may run it on its thread).
  Status remove(std::string aor, std::string key, std::optional<SysSeconds> unless = {}) {
    auto promise = std::make_shared<std::promise<Status>>();
    auto future = promise->get_future();
    store_->removePushDevice(std::move(aor), std::move(key), unless, kNow,
                             testing::inlineExecutor(),
                             [promise](Status s) { promise->set_value(std::move(s)); });
    if (future.wait_for(10s) != std::future_status::ready) return unavailable("timed out");
    return future.get();
  }

  testing::TempDir dir_;
  std::unique_ptr<LocationStore> store_;
};

TEST_P(PushStoreTest, RegisterWritesSipAndPushBindingsTogether) {
  auto r = applySync(*store_, pushReg("sip:alice@example.com", 1, {upsert("tok-a", "i:a")}));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->size(), 1u);
  auto records = store_->lookupPush("sip:alice@example.com", kNow);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].aor, "sip:alice@example.com");
  EXPECT_EQ(records[0].binding, tokenBinding("tok-a"));
  auto by_device = store_->lookupPushDevice(keyOf("tok-a"));
  ASSERT_TRUE(by_device.has_value());
  EXPECT_EQ(*by_device, records[0]);
  EXPECT_EQ(store_->pushSize(), 1u);
}

TEST_P(PushStoreTest, TokenMovesToItsNewAorAndRotatesWithinItsDevice) {
  ASSERT_TRUE(applySync(*store_, pushReg("sip:alice@example.com", 1, {upsert("t1", "i:a")})));
  ASSERT_TRUE(applySync(*store_, pushReg("sip:bob@example.com", 1, {upsert("t2", "i:b")})));
  // The same token registered by bob: it moves.
  ASSERT_TRUE(applySync(*store_, pushReg("sip:bob@example.com", 2, {upsert("t1", "i:c")})));
  EXPECT_TRUE(devicesOf(*store_, "sip:alice@example.com").empty());
  std::vector<std::string> bob{keyOf("t1"), keyOf("t2")};
  std::sort(bob.begin(), bob.end());
  EXPECT_EQ(devicesOf(*store_, "sip:bob@example.com"), bob);
  EXPECT_EQ(store_->lookupPushDevice(keyOf("t1"))->aor, "sip:bob@example.com");
  // Device i:b rotates its token: t2's record is replaced.
  ASSERT_TRUE(applySync(*store_, pushReg("sip:bob@example.com", 3, {upsert("t3", "i:b")})));
  bob = {keyOf("t1"), keyOf("t3")};
  std::sort(bob.begin(), bob.end());
  EXPECT_EQ(devicesOf(*store_, "sip:bob@example.com"), bob);
  EXPECT_FALSE(store_->lookupPushDevice(keyOf("t2")).has_value());
  EXPECT_EQ(store_->pushSize(), 2u);
}

TEST_P(PushStoreTest, OutOfOrderCSeqChangesNeitherSipNorPushBindings) {
  ASSERT_TRUE(applySync(*store_, pushReg("sip:alice@example.com", 5, {upsert("t1", "i:a")})));
  PushOp opt_out;
  opt_out.kind = PushOp::Kind::kRemoveIdentity;
  opt_out.record.identity = "i:a";
  auto r = applySync(*store_, pushReg("sip:alice@example.com", 4, {opt_out}));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(devicesOf(*store_, "sip:alice@example.com"), std::vector<std::string>{keyOf("t1")});
  // In order, the opt-out applies.
  ASSERT_TRUE(applySync(*store_, pushReg("sip:alice@example.com", 6, {opt_out})));
  EXPECT_TRUE(devicesOf(*store_, "sip:alice@example.com").empty());
}

TEST_P(PushStoreTest, DeadTokenRemovalGoesThroughTheWriterAndHonoursTheTimestamp) {
  ASSERT_TRUE(applySync(*store_, pushReg("sip:alice@example.com", 1, {upsert("t1", "i:a")})));
  // APNs 410 with a timestamp before the registration: the binding stays.
  ASSERT_TRUE(remove("sip:alice@example.com", keyOf("t1"), kNow - 10s).isOk());
  EXPECT_EQ(store_->pushSize(), 1u);
  // Same (whole) second as the REGISTER: the token is dead.
  ASSERT_TRUE(remove("sip:alice@example.com", keyOf("t1"), kNow).isOk());
  EXPECT_EQ(store_->pushSize(), 0u);
  EXPECT_EQ(store_->lookup("sip:alice@example.com", kNow).size(), 1u);  // SIP binding untouched
  if (GetParam() == StoreKind::kSqlite) {
    store_.reset();
    store_ = open();
    EXPECT_EQ(store_->pushSize(), 0u);  // the removal was committed
  }
}

TEST_P(PushStoreTest, RemoveAllAndSweep) {
  ASSERT_TRUE(applySync(*store_, pushReg("sip:alice@example.com", 1,
                                         {upsert("t1", "i:a"), upsert("t2", "i:b", kNow + 1s)})));
  EXPECT_EQ(store_->sweepExpired(kNow + 2s), 0u);  // SIP bindings: none expired
  EXPECT_EQ(devicesOf(*store_, "sip:alice@example.com"), std::vector<std::string>{keyOf("t1")});
  PushOp all;
  all.kind = PushOp::Kind::kRemoveAll;
  ASSERT_TRUE(applySync(*store_, pushReg("sip:alice@example.com", 2, {all})));
  EXPECT_EQ(store_->pushSize(), 0u);
}

TEST_P(PushStoreTest, TypedPushBindingsSurviveRestart) {
  if (GetParam() != StoreKind::kSqlite) GTEST_SKIP() << "persistence is SQLite's";
  push::PushBinding full = tokenBinding("voip-1");
  full.message_token = "msg-1";
  full.sandbox = true;
  full.linphone.call_str = "IC_MSG";
  full.linphone.timeout = 30;
  PushOp op = upsert("voip-1", "i:a");
  op.record.binding = full;
  RegistrationChange c = pushReg("sip:alice@example.com", 1, {op});
  c.upserts[0].push = full;
  ASSERT_TRUE(applySync(*store_, c));
  store_.reset();
  store_ = open();
  auto records = store_->lookupPush("sip:alice@example.com", kNow);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].binding, full);
  auto sip = store_->lookup("sip:alice@example.com", kNow);
  ASSERT_EQ(sip.size(), 1u);
  EXPECT_EQ(sip[0].push, full);
  // The reloaded index keeps the move rule.
  ASSERT_TRUE(applySync(*store_, pushReg("sip:bob@example.com", 1, {op})));
  EXPECT_TRUE(devicesOf(*store_, "sip:alice@example.com").empty());
  EXPECT_EQ(devicesOf(*store_, "sip:bob@example.com").size(), 1u);
}

TEST_P(PushStoreTest, AFailedPushWriteLeavesNoSipBindingEither) {
  if (GetParam() != StoreKind::kSqlite) GTEST_SKIP() << "a write failure is SQLite's";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir_.file("location.db").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db,
                          "CREATE TRIGGER fail_push BEFORE INSERT ON push_bindings "
                          "BEGIN SELECT RAISE(ABORT, 'injected push write failure'); END;",
                          nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
  }
  auto r = applySync(*store_, pushReg("sip:alice@example.com", 1, {upsert("t1", "i:a")}));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(store_->lookup("sip:alice@example.com", kNow).empty());
  EXPECT_EQ(store_->pushSize(), 0u);
  store_.reset();
  store_ = open();
  EXPECT_TRUE(store_->lookup("sip:alice@example.com", kNow).empty());
  EXPECT_EQ(store_->pushSize(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Stores, PushStoreTest,
                         ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite),
                         [](const auto& info) {
                           return info.param == StoreKind::kMemory ? "Memory" : "Sqlite";
                         });

// A schema v3 file as the previous code wrote it (push bindings in their own table, JSON in the
// push columns) loads into typed values.
TEST(PushStoreFileTest, SchemaV3FileLoadsTyped) {
  testing::TempDir dir;
  const std::string path = dir.file("v3.db");
  const std::string json =
      R"({"v":1,"provider":"apns","sandbox":false,"dialect":"rfc8599","app_id":"com.example.app",)"
      R"("team_id":"","project_id":"","voip_token":"abcd","message_token":"","purr":"",)"
      R"("pnsreg":false,"linphone":{"call_str":"","msg_str":"","groupchat_str":"","call_snd":"",)"
      R"("msg_snd":"","silent":false}})";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const std::string sql =
        "CREATE TABLE bindings (aor TEXT NOT NULL, binding_key TEXT NOT NULL, contact_uri TEXT "
        "NOT NULL, instance_id TEXT NOT NULL, reg_id INTEGER, call_id TEXT NOT NULL, cseq "
        "INTEGER NOT NULL, expires_at INTEGER NOT NULL, q_milli INTEGER NOT NULL, path TEXT NOT "
        "NULL, protocol TEXT NOT NULL, source_ip TEXT NOT NULL, source_port INTEGER NOT NULL, "
        "local_listener TEXT NOT NULL, user_agent TEXT NOT NULL, registered_at INTEGER NOT NULL, "
        "push TEXT NOT NULL, PRIMARY KEY (aor, binding_key)) WITHOUT ROWID;"
        "CREATE INDEX bindings_by_expiry ON bindings (expires_at);"
        "CREATE TABLE users (user TEXT NOT NULL, domain TEXT NOT NULL, ha1_md5 TEXT NOT NULL, "
        "ha1_sha256 TEXT NOT NULL, PRIMARY KEY (user, domain)) WITHOUT ROWID;"
        "ALTER TABLE bindings ADD COLUMN contact_params TEXT NOT NULL DEFAULT '';"
        "CREATE TABLE push_bindings (device_key TEXT NOT NULL PRIMARY KEY, aor TEXT NOT NULL, "
        "identity TEXT NOT NULL, binding_key TEXT NOT NULL, push TEXT NOT NULL, registered_at "
        "INTEGER NOT NULL, expires_at INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX push_bindings_by_aor ON push_bindings (aor);"
        "PRAGMA user_version = 3;"
        "INSERT INTO bindings VALUES ('sip:alice@example.com', 'i:<urn:uuid:1>', "
        "'sip:alice@198.51.100.7', '<urn:uuid:1>', NULL, 'c1', 1, 1700003600, 1000, '', 'tcp', "
        "'198.51.100.7', 5060, 'tcp:192.0.2.1:5060', 'Phone', 1700000000, '" +
        json + "', '');" +
        "INSERT INTO push_bindings VALUES ('apns:dev', 'sip:alice@example.com', 'i:<urn:uuid:1>', "
        "'i:<urn:uuid:1>', '" +
        json + "', 1700000000, 1700086400);";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << (err ? err : "");
    sqlite3_close(db);
  }
  auto opened = SqliteLocationStore::open(path);
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  std::unique_ptr<SqliteLocationStore> store = std::move(opened).value();
  ASSERT_TRUE(store->load(kNow).isOk());
  push::PushBinding expected = tokenBinding("abcd");
  auto sip = store->lookup("sip:alice@example.com", kNow);
  ASSERT_EQ(sip.size(), 1u);
  EXPECT_EQ(sip[0].push, expected);
  auto rec = store->lookupPushDevice("apns:dev");
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->binding, expected);
  EXPECT_EQ(rec->aor, "sip:alice@example.com");
}

}  // namespace
}  // namespace sipwake::location
