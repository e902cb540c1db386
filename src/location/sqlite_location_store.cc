#include "location/sqlite_location_store.h"

#include <fmt/format.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/log.h"
#include "common/stats.h"
#include "location/binding_index.h"
#include "location/push_index.h"
#include "location/sqlite_db.h"

namespace sipwake::location {
namespace {

constexpr std::string_view kUpsertSql =
    "INSERT OR REPLACE INTO bindings (aor, binding_key, contact_uri, instance_id, reg_id, "
    "call_id, cseq, expires_at, q_milli, path, protocol, source_ip, source_port, "
    "local_listener, user_agent, registered_at, push, contact_params) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";
constexpr std::string_view kDeleteSql = "DELETE FROM bindings WHERE aor = ?1 AND binding_key = ?2";
constexpr std::string_view kSweepSql = "DELETE FROM bindings WHERE expires_at <= ?1";
// Push bindings (schema v3 table push_bindings; the push column is push::serialize() JSON).
constexpr std::string_view kPushReplaceSql =
    "DELETE FROM push_bindings WHERE device_key = ?1 OR (aor = ?2 AND identity = ?3)";
constexpr std::string_view kPushInsertSql =
    "INSERT INTO push_bindings (device_key, aor, identity, binding_key, push, registered_at, "
    "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
constexpr std::string_view kPushDeleteSql = "DELETE FROM push_bindings WHERE device_key = ?1";
constexpr std::string_view kPushSweepSql = "DELETE FROM push_bindings WHERE expires_at <= ?1";
constexpr std::string_view kPushLoadSql =
    "SELECT device_key, aor, identity, binding_key, push, registered_at, expires_at "
    "FROM push_bindings";
// The primary key (aor, binding_key) clusters a WITHOUT ROWID table, so ORDER BY aor is free and
// each AOR's rows arrive together.
constexpr std::string_view kLoadSql =
    "SELECT aor, contact_uri, instance_id, reg_id, call_id, cseq, expires_at, q_milli, path, "
    "protocol, source_ip, source_port, local_listener, user_agent, registered_at, push, "
    "contact_params FROM bindings ORDER BY aor";

std::int64_t toUnix(SysSeconds t) { return t.time_since_epoch().count(); }
SysSeconds fromUnix(std::int64_t s) { return SysSeconds(std::chrono::seconds(s)); }

std::string joinPath(const std::vector<std::string>& path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (i != 0) out.push_back('\n');
    out.append(path[i]);
  }
  return out;
}

// The push column of a bindings row: empty, or push::serialize() JSON. An unreadable one is
// logged and dropped (the SIP binding itself stays usable).
std::optional<push::PushBinding> pushOfRow(std::string_view text, std::string_view aor) {
  if (text.empty()) return std::nullopt;
  auto pb = push::deserialize(text);
  if (!pb) {
    SW_LOG_WARN("location: unreadable push binding of a binding of {}: {}", aor,
                pb.status().message());
    return std::nullopt;
  }
  return std::move(*pb);
}

std::vector<std::string> splitPath(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    out.emplace_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

const std::vector<Binding>& emptyBindings() {
  static const std::vector<Binding> kEmpty;
  return kEmpty;
}

}  // namespace

class SqliteLocationStore::Impl {
 public:
  struct RegistrationJob {
    RegistrationChange change;
    Executor reply_on;
    Done done;
  };
  // Owned by the caller of sweepExpired(), which blocks on `result` until the writer fills it.
  struct SweepJob {
    SysSeconds now;
    std::promise<std::size_t> result;
  };

  Impl(std::string path, SqliteLocationOptions options, BindingIndex& index, PushIndex& push)
      : index_(index),
        push_(push),
        path_(std::move(path)),
        options_(options),
        batches_(Stats::global().counter("location.batches")),
        committed_(Stats::global().counter("location.registrations_committed")),
        rejected_(Stats::global().counter("location.registrations_rejected")),
        queue_full_(Stats::global().counter("location.queue_full")),
        write_errors_(Stats::global().counter("location.write_errors")),
        swept_(Stats::global().counter("location.bindings_swept")),
        commit_latency_(Stats::global().histogram("location.commit_latency")) {}

  ~Impl() {
    if (writer_.joinable()) {
      {
        std::lock_guard lock(mu_);
        stopping_ = true;
      }
      cv_.notify_one();
      writer_.join();
    }
    if (checkpointer_.joinable()) {
      {
        std::lock_guard lock(ckpt_mu_);
        ckpt_stop_ = true;
      }
      ckpt_cv_.notify_one();
      checkpointer_.join();
    }
  }

  Status init() {
    Result<sqlite::DbHandle> db =
        sqlite::openDatabase(path_, {.synchronous_full = options_.synchronous_full,
                                     .busy_timeout_ms = options_.busy_timeout_ms});
    if (!db) return db.status();
    db_ = std::move(db).value();
    struct {
      sqlite::Statement* st;
      std::string_view sql;
    } const statements[] = {{&begin_, "BEGIN IMMEDIATE"}, {&commit_, "COMMIT"},
                            {&rollback_, "ROLLBACK"},     {&upsert_, kUpsertSql},
                            {&delete_, kDeleteSql},       {&sweep_, kSweepSql},
                            {&push_replace_, kPushReplaceSql}, {&push_insert_, kPushInsertSql},
                            {&push_delete_, kPushDeleteSql},   {&push_sweep_, kPushSweepSql}};
    for (const auto& s : statements) {
      Result<sqlite::Statement> st = sqlite::Statement::prepare(db_.get(), s.sql);
      if (!st) return st.status();
      *s.st = std::move(st).value();
    }
    // Replaces SQLite's automatic checkpoint, which would run (with its fsyncs) inside whichever
    // COMMIT crosses the threshold - possibly an inline commit on an I/O loop. The hook only
    // flags; the checkpointer thread checkpoints, on a connection of its own (checkpoint()):
    // the bulk of the copy and its fsyncs run without db_mu_, so REGISTERs keep committing
    // meanwhile instead of waiting for the whole checkpoint.
    sqlite3_wal_hook(db_.get(), &Impl::onWalCommit, this);
    Result<sqlite::DbHandle> ckpt =
        sqlite::openDatabase(path_, {.synchronous_full = options_.synchronous_full,
                                     .busy_timeout_ms = options_.busy_timeout_ms});
    if (!ckpt) return ckpt.status();
    checkpoint_db_ = std::move(ckpt).value();
    return Status::ok();
  }

  Result<LoadReport> load(SysSeconds now) {
    SIPWAKE_CHECK(!loaded_.load());
    auto start = std::chrono::steady_clock::now();
    Result<sqlite::Statement> st = sqlite::Statement::prepare(db_.get(), kLoadSql);
    if (!st) return st.status();
    LoadReport report;
    std::string current_aor;
    std::vector<Binding> group;
    auto flush = [&] {
      if (!group.empty()) {
        index_.put(current_aor, std::make_shared<const std::vector<Binding>>(std::move(group)));
      }
      group.clear();
    };
    int rc;
    while ((rc = st->step()) == SQLITE_ROW) {
      std::string_view aor = st->columnText(0);
      if (aor != current_aor) {
        flush();
        current_aor.assign(aor);
      }
      SysSeconds expires_at = fromUnix(st->columnInt(6));
      if (expires_at <= now) {
        ++report.expired_skipped;  // its row goes at the next sweep
        continue;
      }
      Binding& b = group.emplace_back();
      b.aor = current_aor;
      b.contact_uri = st->columnText(1);
      b.instance_id = st->columnText(2);
      if (!st->columnIsNull(3)) b.reg_id = static_cast<std::uint32_t>(st->columnInt(3));
      b.call_id = st->columnText(4);
      b.cseq = static_cast<std::uint32_t>(st->columnInt(5));
      b.expires_at = expires_at;
      b.q_milli = static_cast<int>(st->columnInt(7));
      b.path = splitPath(st->columnText(8));
      b.received.protocol = st->columnText(9);
      b.received.source_ip = st->columnText(10);
      b.received.source_port = static_cast<std::uint16_t>(st->columnInt(11));
      b.received.local_listener = st->columnText(12);
      b.received.flow_id = 0;  // the flow died with the previous process
      b.user_agent = st->columnText(13);
      b.registered_at = fromUnix(st->columnInt(14));
      b.push = pushOfRow(st->columnText(15), b.aor);
      b.contact_params = st->columnText(16);
    }
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "load bindings");
    flush();
    if (Status s = loadPush(now); !s) return s;
    report.bindings = index_.size();
    report.aors = index_.aorCount();
    report.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    SW_LOG_INFO(
        "location: loaded {} bindings of {} AORs and {} push bindings from {} in {} ms ({} "
        "expired skipped)",
        report.bindings, report.aors, push_.size(), path_, report.duration.count() / 1000,
        report.expired_skipped);
    checkpointer_ = std::thread([this] { runCheckpointer(); });
    writer_ = std::thread([this] { run(); });
    loaded_.store(true);  // after writer_ is set: sweep() reads writer_ once it sees loaded_
    return report;
  }

  void enqueue(RegistrationChange change, Executor reply_on, Done done) {
    Status refused;
    bool commit_here = false;
    {
      std::lock_guard lock(mu_);
      if (!loaded_.load()) {
        refused = {StatusCode::kFailedPrecondition, "location store used before load()"};
      } else if (stopping_) {
        refused = unavailable("location store is shutting down");
      } else if (options_.commit_inline_when_idle && queue_.empty() &&
                 std::this_thread::get_id() != writer_.get_id() && db_mu_.try_lock()) {
        // Nothing queued and the connection free: commit on the caller's thread. Taken under
        // mu_ (as the writer takes db_mu_ under mu_ when it dequeues), so a change queued before
        // this one is always committed before it.
        commit_here = true;
      } else if (queue_.size() >= options_.max_queue) {
        queue_full_.inc();
        refused = unavailable(
            fmt::format("location store queue full ({} registrations pending)", queue_.size()));
      } else {
        queue_.push_back({std::move(change), std::move(reply_on), std::move(done)});
      }
    }
    if (!refused.isOk()) {
      reply_on([done = std::move(done), refused = std::move(refused)] { done(refused); });
      return;
    }
    if (commit_here) {
      commitInline({std::move(change), std::move(reply_on), std::move(done)});
      return;
    }
    cv_.notify_one();
  }

  std::size_t sweep(SysSeconds now) {
    if (!loaded_.load()) return 0;  // nothing in memory; rows expire on load anyway
    SIPWAKE_CHECK(std::this_thread::get_id() != writer_.get_id());
    SweepJob job{now, {}};
    std::future<std::size_t> result = job.result.get_future();
    {
      std::lock_guard lock(mu_);
      sweeps_.push_back(&job);
    }
    cv_.notify_one();
    return result.get();
  }

  BindingIndex& index_;  // the store's (IndexedLocationStore)
  PushIndex& push_;

 private:
  // The push_bindings rows, parsed once here (memory holds them typed). Expired rows are loaded
  // too (the sweep deletes them); unreadable ones are logged and left to expire.
  Status loadPush(SysSeconds now) {
    Result<sqlite::Statement> st = sqlite::Statement::prepare(db_.get(), kPushLoadSql);
    if (!st) return st.status();
    PushIndex::Batch batch(push_);
    std::size_t unreadable = 0;
    int rc;
    while ((rc = st->step()) == SQLITE_ROW) {
      PushRecord r;
      r.device_key = st->columnText(0);
      r.aor = st->columnText(1);
      r.identity = st->columnText(2);
      r.binding_key = st->columnText(3);
      auto pb = push::deserialize(st->columnText(4));
      if (!pb) {
        ++unreadable;
        continue;
      }
      r.binding = std::move(*pb);
      r.registered_at = fromUnix(st->columnInt(5));
      r.expires_at = fromUnix(st->columnInt(6));
      batch.loaded(std::move(r));
    }
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "load push bindings");
    batch.publish(push_);
    if (unreadable != 0) SW_LOG_WARN("location: {} unreadable push bindings skipped", unreadable);
    (void)now;
    return Status::ok();
  }

  Status writePush(const std::vector<PushIndex::Write>& writes) {
    for (const PushIndex::Write& w : writes) {
      if (!w.insert) {
        push_delete_.bind(1, w.device_key);
        if (Status s = stepOnce(push_delete_, "delete push binding"); !s) return s;
        continue;
      }
      const PushRecord& r = w.record;
      push_replace_.bind(1, r.device_key);
      push_replace_.bind(2, r.aor);
      push_replace_.bind(3, r.identity);
      if (Status s = stepOnce(push_replace_, "replace push binding"); !s) return s;
      push_insert_.bind(1, r.device_key);
      push_insert_.bind(2, r.aor);
      push_insert_.bind(3, r.identity);
      push_insert_.bind(4, r.binding_key);
      push_insert_.bind(5, push::serialize(r.binding));
      push_insert_.bind(6, toUnix(r.registered_at));
      push_insert_.bind(7, toUnix(r.expires_at));
      if (Status s = stepOnce(push_insert_, "write push binding"); !s) return s;
    }
    return Status::ok();
  }

  // WAL frames after which the checkpointer checkpoints (SQLite's own default threshold).
  static constexpr int kCheckpointFrames = 1000;

  static int onWalCommit(void* self, sqlite3*, const char*, int frames) {
    if (frames >= kCheckpointFrames) {
      static_cast<Impl*>(self)->checkpoint_wanted_.store(true, std::memory_order_relaxed);
    }
    return SQLITE_OK;
  }

  // Caller holds db_mu_ (adopted here). Commits one change on the calling thread without
  // waiting for another process's lock: if the database is busy, the change goes to the writer,
  // which waits up to busy_timeout_ms as usual.
  void commitInline(RegistrationJob job) {
    std::unique_lock db(db_mu_, std::adopt_lock);
    sqlite3_busy_timeout(db_.get(), 0);
    int rc = begin_.step();
    begin_.reset();
    sqlite3_busy_timeout(db_.get(), options_.busy_timeout_ms);
    if (rc == SQLITE_DONE) {
      std::vector<RegistrationJob> one;
      one.push_back(std::move(job));
      commitBatch(one, /*begun=*/true);
      inline_commits_.inc();
      db.unlock();
      wakeCheckpointer();
      return;
    } else {
      db.unlock();
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(job));  // was empty a moment ago: within max_queue
    }
    cv_.notify_one();
  }

  // Writer thread: group commit until stopped and drained.
  void run() {
    for (;;) {
      std::vector<RegistrationJob> batch;
      std::vector<SweepJob*> sweeps;
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty() || !sweeps_.empty(); });
      if (stopping_ && queue_.empty() && sweeps_.empty()) return;  // nothing left to commit
      batch.swap(queue_);
      sweeps.swap(sweeps_);
      std::unique_lock db(db_mu_);  // before mu_ is released: see enqueue()
      lock.unlock();
      if (!batch.empty()) commitBatch(batch, /*begun=*/false);
      for (SweepJob* s : sweeps) s->result.set_value(runSweep(s->now));
      db.unlock();
      wakeCheckpointer();
    }
  }

  // After a commit: if the WAL hook asked for a checkpoint, wake the checkpointer.
  void wakeCheckpointer() {
    if (!checkpoint_wanted_.load(std::memory_order_relaxed)) return;
    { std::lock_guard lock(ckpt_mu_); }  // no lost wake-up between its check and its wait
    ckpt_cv_.notify_one();
  }

  // Checkpointer thread: its own thread so that the writer keeps committing while the bulk of a
  // checkpoint is copied and fsynced (on the writer, every REGISTER queued behind it waited for
  // the whole checkpoint).
  void runCheckpointer() {
    std::unique_lock lock(ckpt_mu_);
    for (;;) {
      ckpt_cv_.wait(lock, [this] {
        return ckpt_stop_ || checkpoint_wanted_.load(std::memory_order_relaxed);
      });
      if (ckpt_stop_) return;
      checkpoint_wanted_.store(false, std::memory_order_relaxed);
      lock.unlock();
      checkpoint();
      lock.lock();
    }
  }

  // Checkpointer thread. Two PASSIVE passes on the checkpoint connection: the first, without
  // db_mu_, copies the bulk of the WAL into the database (and does the fsyncs) while REGISTERs keep
  // committing; the second, with db_mu_, copies only what was appended meanwhile, so the WAL is
  // then fully backfilled and the next commit starts it over (a WAL that is never fully
  // checkpointed never restarts: it grows without bound and every commit sees it as "long",
  // which at 8000 REGISTER/s had the writer checkpointing after every batch).
  void checkpoint() {
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                       &log, &done);
    if (rc == SQLITE_OK && done < log) {
      std::lock_guard db(db_mu_);
      rc = sqlite3_wal_checkpoint_v2(checkpoint_db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log,
                                     &done);
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      SW_LOG_WARN("location: WAL checkpoint: {}", sqlite3_errmsg(checkpoint_db_.get()));
    }
  }

  Status stepOnce(sqlite::Statement& st, std::string_view what) {
    int rc = st.step();
    st.reset();
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return Status::ok();
    return sqlite::sqliteError(db_.get(), what);
  }

  Status writeChange(const std::string& aor, const AppliedChange& applied) {
    for (const std::string& key : applied.removed_keys) {
      delete_.bind(1, aor);
      delete_.bind(2, key);
      if (Status s = stepOnce(delete_, "delete binding"); !s) return s;
    }
    for (const Binding& b : applied.written) {
      upsert_.bind(1, aor);
      upsert_.bind(2, bindingKey(b));
      upsert_.bind(3, b.contact_uri);
      upsert_.bind(4, b.instance_id);
      if (b.reg_id) {
        upsert_.bind(5, static_cast<std::int64_t>(*b.reg_id));
      } else {
        upsert_.bindNull(5);
      }
      upsert_.bind(6, b.call_id);
      upsert_.bind(7, static_cast<std::int64_t>(b.cseq));
      upsert_.bind(8, toUnix(b.expires_at));
      upsert_.bind(9, static_cast<std::int64_t>(b.q_milli));
      upsert_.bind(10, joinPath(b.path));
      upsert_.bind(11, b.received.protocol);
      upsert_.bind(12, b.received.source_ip);
      upsert_.bind(13, static_cast<std::int64_t>(b.received.source_port));
      upsert_.bind(14, b.received.local_listener);
      upsert_.bind(15, b.user_agent);
      upsert_.bind(16, toUnix(b.registered_at));
      upsert_.bind(17, b.push ? push::serialize(*b.push) : std::string());
      upsert_.bind(18, b.contact_params);
      if (Status s = stepOnce(upsert_, "write binding"); !s) return s;
    }
    return Status::ok();
  }

  // One transaction for the whole batch. Later changes to the same AOR see earlier ones through
  // `overlay`; memory is updated only after COMMIT succeeded, so a failed batch changes nothing.
  // `begun`: the caller already ran BEGIN IMMEDIATE successfully. Caller holds db_mu_.
  void commitBatch(std::vector<RegistrationJob>& batch, bool begun) {
    batches_.inc();
    const auto started = std::chrono::steady_clock::now();
    std::vector<Result<std::vector<Binding>>> outcomes;
    outcomes.reserve(batch.size());
    std::unordered_map<std::string, BindingIndex::Snapshot> overlay;
    PushIndex::Batch push_batch(push_);
    Status failure = begun ? Status::ok() : stepOnce(begin_, "begin transaction");
    for (RegistrationJob& job : batch) {
      if (!failure.isOk()) {
        outcomes.emplace_back(failure);
        continue;
      }
      const std::string& aor = job.change.aor;
      auto it = overlay.find(aor);
      BindingIndex::Snapshot current = it != overlay.end() ? it->second : index_.get(aor);
      Result<AppliedChange> applied =
          applyRegistrationChange(current ? *current : emptyBindings(), job.change);
      if (!applied) {
        rejected_.inc();
        outcomes.emplace_back(applied.status());
        continue;
      }
      const std::size_t push_writes_before = push_batch.writes().size();
      for (const PushOp& op : job.change.push_ops) push_batch.apply(aor, op);
      Status s = writeChange(aor, *applied);
      if (s) {
        s = writePush({push_batch.writes().begin() + push_writes_before,
                       push_batch.writes().end()});
      }
      if (!s) {
        failure = std::move(s);
        outcomes.emplace_back(failure);
        continue;
      }
      overlay[aor] = std::make_shared<const std::vector<Binding>>(applied->bindings);
      outcomes.emplace_back(std::move(applied->bindings));
    }
    if (failure.isOk()) failure = stepOnce(commit_, "commit");
    commit_latency_.observe(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - started)
                                .count());
    if (!failure.isOk()) {
      write_errors_.inc();
      (void)stepOnce(rollback_, "rollback");  // fails harmlessly when BEGIN itself failed
      SW_LOG_ERROR("location: batch of {} registrations not written: {}", batch.size(),
                   failure.message());
      Status reply = unavailable("location store write failed: " + failure.message());
      for (auto& outcome : outcomes) {
        if (outcome.isOk()) outcome = reply;
      }
    } else {
      for (auto& [aor, snapshot] : overlay) index_.put(aor, std::move(snapshot));
      push_batch.publish(push_);
      for (const PushRecord& m : push_batch.moved()) {
        // The device key only: never a token, never the former owner's AOR.
        SW_LOG_INFO("location: push device {} moved; its former binding is removed",
                    m.device_key);
      }
      for (const auto& outcome : outcomes) {
        if (outcome.isOk()) committed_.inc();
      }
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      RegistrationJob& job = batch[i];
      job.reply_on([done = std::move(job.done), result = std::move(outcomes[i])]() mutable {
        done(std::move(result));
      });
    }
  }

  std::size_t runSweep(SysSeconds now) {
    sweep_.bind(1, toUnix(now));
    if (Status s = stepOnce(sweep_, "sweep expired bindings"); !s) {
      // Memory is swept regardless: expired rows left on disk are skipped by load().
      write_errors_.inc();
      SW_LOG_WARN("location: {}", s.message());
    }
    push_sweep_.bind(1, toUnix(now));
    if (Status s = stepOnce(push_sweep_, "sweep expired push bindings"); !s) {
      write_errors_.inc();
      SW_LOG_WARN("location: {}", s.message());
    }
    push_.sweepExpired(now);
    std::size_t n = index_.sweepExpired(now);
    swept_.inc(n);
    return n;
  }

  const std::string path_;
  const SqliteLocationOptions options_;
  sqlite::DbHandle checkpoint_db_;  // checkpointer thread only
  sqlite::DbHandle db_;  // declared before the statements: closed after they are finalized
  sqlite::Statement begin_, commit_, rollback_, upsert_, delete_, sweep_;
  sqlite::Statement push_replace_, push_insert_, push_delete_, push_sweep_;
  // Guards db_ and the statements: held by the writer for a batch, sweep or checkpoint, and by
  // a caller of applyRegistration() committing inline. Lock order: mu_, then db_mu_.
  std::mutex db_mu_;
  std::atomic<bool> checkpoint_wanted_{false};
  Counter& inline_commits_ = Stats::global().counter("location.inline_commits");

  Counter& batches_;
  Counter& committed_;
  Counter& rejected_;
  Counter& queue_full_;
  Counter& write_errors_;
  Counter& swept_;
  Histogram& commit_latency_;  // location.commit_latency: one group commit, BEGIN to COMMIT

  std::atomic<bool> loaded_{false};
  std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool stopping_ = false;
  std::vector<RegistrationJob> queue_;
  std::vector<SweepJob*> sweeps_;

  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  bool ckpt_stop_ = false;  // guarded by ckpt_mu_

  // Last: started in load(), joined in ~Impl (writer first) before anything is destroyed.
  std::thread checkpointer_;
  std::thread writer_;
};

Result<std::unique_ptr<SqliteLocationStore>> SqliteLocationStore::open(
    const std::string& path, SqliteLocationOptions options) {
  std::unique_ptr<SqliteLocationStore> store(new SqliteLocationStore());
  store->impl_ = std::make_unique<Impl>(path, options, store->index_, store->push_);
  if (Status s = store->impl_->init(); !s) return s;
  return store;
}

SqliteLocationStore::~SqliteLocationStore() = default;

Result<LoadReport> SqliteLocationStore::load(SysSeconds now) { return impl_->load(now); }

void SqliteLocationStore::applyRegistration(RegistrationChange change, Executor reply_on,
                                            Done done) {
  impl_->enqueue(std::move(change), std::move(reply_on), std::move(done));
}

std::size_t SqliteLocationStore::sweepExpired(SysSeconds now) { return impl_->sweep(now); }

}  // namespace sipwake::location
