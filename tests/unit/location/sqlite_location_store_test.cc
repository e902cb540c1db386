// SqliteLocationStore specifics: persistence, load, group commit ordering, back-pressure, schema.
#include "location/sqlite_location_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <memory>
#include <optional>
#include <thread>

#include "common/stats.h"

#include "test_util.h"

namespace sipwake::location {
namespace {

using namespace std::chrono_literals;
using testing::applySync;
using testing::contact;
using testing::kNow;
using testing::reg;

std::unique_ptr<SqliteLocationStore> openStore(const std::string& path,
                                               SqliteLocationOptions options = {}) {
  auto opened = SqliteLocationStore::open(path, options);
  if (!opened) {
    ADD_FAILURE() << opened.status().toString();
    return nullptr;
  }
  return std::move(opened).value();
}

class SqliteLocationStoreTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  std::string path_ = dir_.file("location.db");
};

TEST_F(SqliteLocationStoreTest, BindingsSurviveReopen) {
  std::vector<Binding> written;
  {
    auto store = openStore(path_);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->load(kNow).isOk());
    Binding full = contact("sip:alice@198.51.100.7:40123;transport=tls;ob", 3600,
                           "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>", 1);
    full.q_milli = 500;
    full.path = {"<sip:edge1.example.com;lr;ob>", "<sip:core.example.com;lr>"};
    push::PushBinding pb;
    pb.app_id = "com.example.app";
    pb.voip_token = "abc";
    full.push = pb;
    Binding plain = contact("sip:alice@203.0.113.4", 600);
    plain.reg_id = 3;  // ignored for the key, but kept as data
    auto r = applySync(*store, reg("sip:alice@example.com", "c1", 1, {full, plain}));
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    written = *r;
    ASSERT_TRUE(applySync(*store, reg("sip:bob@example.com", "c2", 4, {contact("sip:bob@h", 60)})));
    ASSERT_TRUE(
        applySync(*store, reg("sip:bob@example.com", "c2", 5, {}, {contact("sip:bob@h", 0)})));
  }
  auto store = openStore(path_);
  ASSERT_TRUE(store);
  auto report = store->load(kNow);
  ASSERT_TRUE(report.isOk()) << report.status().toString();
  EXPECT_EQ(report->bindings, 2u);
  EXPECT_EQ(report->aors, 1u);
  auto loaded = store->lookup("sip:alice@example.com", kNow);
  ASSERT_EQ(loaded.size(), 2u);
  for (Binding& b : written) b.received.flow_id = 0;  // process-local: not persisted
  // Order within an AOR after load follows the key, not insertion: compare as sets.
  for (const Binding& w : written) {
    EXPECT_NE(std::find(loaded.begin(), loaded.end(), w), loaded.end()) << w.contact_uri;
  }
  EXPECT_TRUE(store->lookup("sip:bob@example.com", kNow).empty());
}

TEST_F(SqliteLocationStoreTest, LoadSkipsExpiredAndSweepDeletesRows) {
  {
    auto store = openStore(path_);
    ASSERT_TRUE(store->load(kNow).isOk());
    ASSERT_TRUE(applySync(
        *store, reg("sip:a@x", "c1", 1, {contact("sip:a@h1", 10), contact("sip:a@h2", 100)})));
  }
  {
    auto store = openStore(path_);
    auto report = store->load(kNow + 50s);
    ASSERT_TRUE(report.isOk());
    EXPECT_EQ(report->bindings, 1u);
    EXPECT_EQ(report->expired_skipped, 1u);
    EXPECT_EQ(store->sweepExpired(kNow + 200s), 1u);  // h2 in memory; h1's row goes too
  }
  auto store = openStore(path_);
  auto report = store->load(kNow);
  ASSERT_TRUE(report.isOk());
  EXPECT_EQ(report->bindings, 0u);
  EXPECT_EQ(report->expired_skipped, 0u);  // both rows deleted from disk
}

TEST_F(SqliteLocationStoreTest, UseBeforeLoadFails) {
  auto store = openStore(path_);
  auto r = applySync(*store, reg("sip:a@x", "c1", 1, {contact("sip:a@h", 60)}));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(SqliteLocationStoreTest, QueuedChangesToOneAorApplyInOrder) {
  auto store = openStore(path_, {.commit_inline_when_idle = false});
  ASSERT_TRUE(store->load(kNow).isOk());
  // Fired back to back, these mostly land in the same batch: each must see the one before.
  constexpr std::uint32_t kCount = 200;
  std::atomic<std::uint32_t> ok{0}, rejected{0}, finished{0};
  std::promise<void> all_done;
  auto on_done = [&](Result<std::vector<Binding>> r) {
    ++(r.isOk() ? ok : rejected);
    if (++finished == kCount + 1) all_done.set_value();
  };
  for (std::uint32_t cseq = 1; cseq <= kCount; ++cseq) {
    store->applyRegistration(reg("sip:a@x", "c1", cseq, {contact("sip:a@h", 60 + cseq)}),
                             testing::inlineExecutor(), on_done);
  }
  // A replay of CSeq 1 queued behind them must be rejected.
  store->applyRegistration(reg("sip:a@x", "c1", 1, {contact("sip:a@h", 5)}),
                           testing::inlineExecutor(), on_done);
  ASSERT_EQ(all_done.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(ok.load(), kCount);
  EXPECT_EQ(rejected.load(), 1u);
  auto b = store->lookup("sip:a@x", kNow);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].cseq, kCount);
}

TEST_F(SqliteLocationStoreTest, FullQueueFailsFastWithUnavailable) {
  auto store = openStore(path_, {.max_queue = 2, .commit_inline_when_idle = false});
  ASSERT_TRUE(store->load(kNow).isOk());
  // The first change's reply executor parks the writer thread until released, so the next
  // changes stay queued.
  std::promise<void> writer_parked;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  Executor parking = [&writer_parked, released](std::function<void()> f) {
    writer_parked.set_value();
    released.wait_for(10s);
    f();
  };
  std::promise<bool> first;
  store->applyRegistration(reg("sip:a@x", "c", 1, {contact("sip:a@h", 60)}), parking,
                           [&](Result<std::vector<Binding>> r) { first.set_value(r.isOk()); });
  ASSERT_EQ(writer_parked.get_future().wait_for(10s), std::future_status::ready);

  std::vector<std::promise<Status>> results(3);
  for (std::uint32_t i = 0; i < 3; ++i) {
    store->applyRegistration(
        reg("sip:u" + std::to_string(i) + "@x", "c", 1, {contact("sip:h", 60)}),
        testing::inlineExecutor(),
        [&results, i](Result<std::vector<Binding>> r) { results[i].set_value(r.status()); });
  }
  auto third = results[2].get_future();
  ASSERT_EQ(third.wait_for(0s), std::future_status::ready);  // refused inline, not queued
  Status refused = third.get();
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.message().find("queue full"), std::string::npos) << refused.message();

  release.set_value();
  auto f0 = results[0].get_future();
  auto f1 = results[1].get_future();
  ASSERT_EQ(f0.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(f1.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f0.get().isOk());
  EXPECT_TRUE(f1.get().isOk());
  EXPECT_TRUE(first.get_future().get());
}

TEST_F(SqliteLocationStoreTest, DestructionCommitsWhatIsQueued) {
  std::atomic<int> acknowledged{0};
  {
    auto store = openStore(path_, {.commit_inline_when_idle = false});
    ASSERT_TRUE(store->load(kNow).isOk());
    for (int i = 0; i < 100; ++i) {
      store->applyRegistration(
          reg("sip:u" + std::to_string(i) + "@x", "c", 1, {contact("sip:h", 60)}),
          testing::inlineExecutor(),
          [&](Result<std::vector<Binding>> r) { acknowledged += r.isOk() ? 1 : 0; });
    }
  }
  EXPECT_EQ(acknowledged.load(), 100);
  auto store = openStore(path_);
  auto report = store->load(kNow);
  ASSERT_TRUE(report.isOk());
  EXPECT_EQ(report->bindings, 100u);
}

TEST_F(SqliteLocationStoreTest, IdleStoreCommitsOnTheCallersThreadAndDurably) {
  Counter& inline_commits = Stats::global().counter("location.inline_commits");
  const std::uint64_t before = inline_commits.value();
  {
    auto store = openStore(path_);
    ASSERT_TRUE(store->load(kNow).isOk());
    // Nothing queued: the change is committed by this thread, so `done` (run by the inline
    // executor on the committing thread) has run when applyRegistration returns.
    std::optional<Result<std::vector<Binding>>> result;
    std::thread::id ran_on;
    store->applyRegistration(reg("sip:a@x", "c1", 1, {contact("sip:a@h", 60)}),
                             testing::inlineExecutor(), [&](Result<std::vector<Binding>> r) {
                               ran_on = std::this_thread::get_id();
                               result = std::move(r);
                             });
    ASSERT_TRUE(result.has_value());
    ASSERT_TRUE(result->isOk()) << result->status().toString();
    EXPECT_EQ(ran_on, std::this_thread::get_id());
    EXPECT_EQ(inline_commits.value(), before + 1);
    ASSERT_EQ(store->lookup("sip:a@x", kNow).size(), 1u);
    // A later, older CSeq is still refused (the inline path applies the same rules).
    auto replay = applySync(*store, reg("sip:a@x", "c1", 1, {contact("sip:a@h", 5)}));
    EXPECT_FALSE(replay.isOk());
  }
  auto store = openStore(path_);
  auto report = store->load(kNow);
  ASSERT_TRUE(report.isOk());
  EXPECT_EQ(report->bindings, 1u);  // committed, not just in memory
}

TEST_F(SqliteLocationStoreTest, InlineCommitNeverWaitsForAnotherProcessAndKeepsOrder) {
  auto store = openStore(path_);
  ASSERT_TRUE(store->load(kNow).isOk());
  // Another connection (as the user CLI would) holds the write lock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  std::promise<Status> first, second;
  store->applyRegistration(reg("sip:a@x", "c1", 1, {contact("sip:a@h", 60)}),
                           testing::inlineExecutor(),
                           [&](Result<std::vector<Binding>> r) { first.set_value(r.status()); });
  store->applyRegistration(reg("sip:a@x", "c1", 2, {contact("sip:a@h", 120)}),
                           testing::inlineExecutor(),
                           [&](Result<std::vector<Binding>> r) { second.set_value(r.status()); });
  auto f1 = first.get_future();
  auto f2 = second.get_future();
  // Neither call waited for the lock: both went to the writer, which waits (busy timeout).
  EXPECT_EQ(f1.wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(f2.wait_for(0s), std::future_status::timeout);

  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  ASSERT_EQ(f1.wait_for(10s), std::future_status::ready);
  ASSERT_EQ(f2.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(f1.get().isOk());
  EXPECT_TRUE(f2.get().isOk());  // CSeq 2 after CSeq 1: committed in the order given
  auto b = store->lookup("sip:a@x", kNow);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].cseq, 2u);
}

TEST_F(SqliteLocationStoreTest, NewerSchemaIsRefused) {
  { ASSERT_TRUE(openStore(path_)); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto opened = SqliteLocationStore::open(path_);
  ASSERT_FALSE(opened.isOk());
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("schema version 99"), std::string::npos);
}

TEST_F(SqliteLocationStoreTest, OpensInWalMode) {
  { ASSERT_TRUE(openStore(path_)); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  std::string mode;
  sqlite3_exec(
      db, "PRAGMA journal_mode",
      [](void* out, int, char** values, char**) {
        *static_cast<std::string*>(out) = values[0];
        return 0;
      },
      &mode, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(mode, "wal");
}

// The store holds HA1 digests and push tokens: 0600 whatever the umask, -wal/-shm too, and a
// file an earlier version left 0644 is narrowed.
TEST_F(SqliteLocationStoreTest, FilesArePrivateWhateverTheUmask) {
  const mode_t old_umask = ::umask(0);
  auto store = openStore(path_);
  ::umask(old_umask);
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->load(kNow).isOk());
  ASSERT_TRUE(applySync(*store, reg("sip:alice@example.com", "c1", 1,
                                    {contact("sip:alice@192.0.2.1", 600)})));
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat((path_ + suffix).c_str(), &st), 0) << suffix;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path_ + suffix;
  }
  store.reset();

  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  store = openStore(path_);
  ASSERT_TRUE(store);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace sipwake::location
