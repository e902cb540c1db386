#include "location/push_binding_store.h"

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <optional>
#include <string_view>

#include "location/sqlite_db.h"

namespace sipwake::location {
namespace {

std::int64_t unixSecs(SysSeconds t) { return t.time_since_epoch().count(); }
SysSeconds fromUnix(std::int64_t s) { return SysSeconds{std::chrono::seconds(s)}; }

// The in-memory index shared by both implementations. Not locked: the owner locks.
// Records by device_key, plus the device keys of each AOR (a handful per AOR), so the per-call
// lookup and the per-REGISTER upsert cost O(devices of the AOR), not O(all push bindings).
class Index {
 public:
  // Returns the records `r` displaces (same device_key or same (aor, identity)), removing them.
  std::vector<PushRecord> displaced(const PushRecord& r) {
    std::vector<PushRecord> out;
    if (const PushRecord* same_device = find(r.device_key)) out.push_back(*same_device);
    for (const PushRecord* o : ofAor(r.aor)) {
      if (o->identity == r.identity && o->device_key != r.device_key) out.push_back(*o);
    }
    for (const PushRecord& o : out) erase(o.device_key);
    return out;
  }
  void put(PushRecord r) {
    erase(r.device_key);
    keys_by_aor_[r.aor].push_back(r.device_key);
    std::string key = r.device_key;
    by_device_.insert_or_assign(std::move(key), std::move(r));
  }
  const PushRecord* find(std::string_view key) const {
    auto it = by_device_.find(std::string(key));
    return it == by_device_.end() ? nullptr : &it->second;
  }
  void erase(std::string_view key) {
    auto it = by_device_.find(std::string(key));
    if (it == by_device_.end()) return;
    auto a = keys_by_aor_.find(it->second.aor);
    if (a != keys_by_aor_.end()) {
      std::erase(a->second, it->first);
      if (a->second.empty()) keys_by_aor_.erase(a);
    }
    by_device_.erase(it);
  }
  std::vector<PushRecord> byAor(std::string_view aor, SysSeconds now) const {
    std::vector<PushRecord> out;
    for (const PushRecord* r : ofAor(aor)) {
      if (r->expires_at > now) out.push_back(*r);
    }
    return out;
  }
  std::optional<std::string> keyOfIdentity(std::string_view aor, std::string_view identity) const {
    for (const PushRecord* r : ofAor(aor)) {
      if (r->identity == identity) return r->device_key;
    }
    return std::nullopt;
  }
  std::vector<PushRecord> live(SysSeconds now) const {
    std::vector<PushRecord> out;
    for (const auto& [k, r] : by_device_) {
      if (r.expires_at > now) out.push_back(r);
    }
    return out;
  }
  std::vector<std::string> expired(SysSeconds now) const {
    std::vector<std::string> out;
    for (const auto& [k, r] : by_device_) {
      if (r.expires_at <= now) out.push_back(k);
    }
    return out;
  }
  std::size_t size() const { return by_device_.size(); }

 private:
  std::vector<const PushRecord*> ofAor(std::string_view aor) const {
    std::vector<const PushRecord*> out;
    auto a = keys_by_aor_.find(std::string(aor));
    if (a == keys_by_aor_.end()) return out;
    for (const std::string& k : a->second) out.push_back(&by_device_.at(k));
    return out;
  }

  std::unordered_map<std::string, PushRecord> by_device_;
  std::unordered_map<std::string, std::vector<std::string>> keys_by_aor_;  // insertion order
};

std::vector<PushRecord> moves(const PushRecord& r, const std::vector<PushRecord>& displaced) {
  std::vector<PushRecord> out;
  for (const PushRecord& o : displaced) {
    if (o.aor != r.aor || o.identity != r.identity) out.push_back(o);
  }
  return out;
}

class MemoryPushBindingStore final : public PushBindingStore {
 public:
  Result<std::size_t> load(SysSeconds) override {
    std::lock_guard lock(mu_);
    return index_.size();
  }
  Result<std::vector<PushRecord>> upsert(PushRecord record) override {
    std::lock_guard lock(mu_);
    auto gone = index_.displaced(record);
    auto moved = moves(record, gone);
    index_.put(std::move(record));
    return moved;
  }
  Result<bool> remove(std::string_view key, std::optional<SysSeconds> unless_after) override {
    std::lock_guard lock(mu_);
    const PushRecord* r = index_.find(key);
    if (r == nullptr) return false;
    if (unless_after && r->registered_at > *unless_after) return false;
    index_.erase(key);
    return true;
  }
  Result<bool> removeIdentity(std::string_view aor, std::string_view identity) override {
    std::lock_guard lock(mu_);
    auto key = index_.keyOfIdentity(aor, identity);
    if (!key) return false;
    index_.erase(*key);
    return true;
  }
  std::vector<PushRecord> lookupByAor(std::string_view aor, SysSeconds now) const override {
    std::lock_guard lock(mu_);
    return index_.byAor(aor, now);
  }
  std::vector<PushRecord> liveRecords(SysSeconds now) const override {
    std::lock_guard lock(mu_);
    return index_.live(now);
  }
  std::optional<PushRecord> lookupByDevice(std::string_view key) const override {
    std::lock_guard lock(mu_);
    const PushRecord* r = index_.find(key);
    if (r == nullptr) return std::nullopt;
    return *r;
  }
  std::size_t sweepExpired(SysSeconds now) override {
    std::lock_guard lock(mu_);
    auto keys = index_.expired(now);
    for (const auto& k : keys) index_.erase(k);
    return keys.size();
  }
  std::size_t size() const override {
    std::lock_guard lock(mu_);
    return index_.size();
  }

 private:
  mutable std::mutex mu_;
  Index index_;
};

// Writes go to SQLite synchronously under the lock (one small transaction per REGISTER that
// carries push params), then to memory.
class SqlitePushBindingStore final : public PushBindingStore {
 public:
  explicit SqlitePushBindingStore(sqlite::DbHandle db) : db_(std::move(db)) {}

  Result<std::size_t> load(SysSeconds now) override {
    std::lock_guard lock(mu_);
    auto st = sqlite::Statement::prepare(
        db_.get(),
        "SELECT device_key, aor, identity, binding_key, push, registered_at, expires_at "
        "FROM push_bindings");
    if (!st) return st.status();
    std::size_t live = 0;
    int rc;
    while ((rc = st->step()) == SQLITE_ROW) {
      PushRecord r;
      r.device_key = std::string(st->columnText(0));
      r.aor = std::string(st->columnText(1));
      r.identity = std::string(st->columnText(2));
      r.binding_key = std::string(st->columnText(3));
      auto pb = push::deserialize(st->columnText(4));
      if (!pb) continue;  // unreadable: left for the sweep (its expiry still holds)
      r.binding = std::move(*pb);
      r.registered_at = fromUnix(st->columnInt(5));
      r.expires_at = fromUnix(st->columnInt(6));
      if (r.expires_at > now) ++live;
      index_.put(std::move(r));
    }
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "load push bindings");
    return live;
  }

  Result<std::vector<PushRecord>> upsert(PushRecord record) override {
    std::lock_guard lock(mu_);
    if (Status s = run(kBegin, "begin push binding write"); !s) return s;
    Status s = writeUpsert(record);
    if (s) s = run(kCommit, "commit push binding");
    if (!s) {
      (void)run(kRollback, "rollback push binding");
      return s;
    }
    auto gone = index_.displaced(record);
    auto moved = moves(record, gone);
    index_.put(std::move(record));
    return moved;
  }

  Result<bool> remove(std::string_view key, std::optional<SysSeconds> unless_after) override {
    std::lock_guard lock(mu_);
    const PushRecord* r = index_.find(key);
    if (r == nullptr) return false;
    if (unless_after && r->registered_at > *unless_after) return false;
    if (Status s = deleteKey(key); !s) return s;
    index_.erase(key);
    return true;
  }

  Result<bool> removeIdentity(std::string_view aor, std::string_view identity) override {
    std::lock_guard lock(mu_);
    auto key = index_.keyOfIdentity(aor, identity);
    if (!key) return false;
    if (Status s = deleteKey(*key); !s) return s;
    index_.erase(*key);
    return true;
  }

  std::vector<PushRecord> lookupByAor(std::string_view aor, SysSeconds now) const override {
    std::lock_guard lock(mu_);
    return index_.byAor(aor, now);
  }
  std::vector<PushRecord> liveRecords(SysSeconds now) const override {
    std::lock_guard lock(mu_);
    return index_.live(now);
  }
  std::optional<PushRecord> lookupByDevice(std::string_view key) const override {
    std::lock_guard lock(mu_);
    const PushRecord* r = index_.find(key);
    if (r == nullptr) return std::nullopt;
    return *r;
  }
  std::size_t sweepExpired(SysSeconds now) override {
    std::lock_guard lock(mu_);
    auto st = statement(kSweep);
    if (!st) return 0;
    (*st)->bind(1, unixSecs(now));
    if (!run(kSweep, "sweep push bindings")) return 0;  // retried by the next sweep
    auto keys = index_.expired(now);
    for (const auto& k : keys) index_.erase(k);
    return keys.size();
  }
  std::size_t size() const override {
    std::lock_guard lock(mu_);
    return index_.size();
  }

 private:
  // Statements prepared once, on first use (SQL compilation per REGISTER was ~5% of the wake
  // path's CPU). REQUIRES (all below): mu_ held.
  enum Sql { kBegin, kCommit, kRollback, kReplace, kInsert, kDeleteKey, kSweep, kSqlCount };
  static constexpr std::array<std::string_view, kSqlCount> kSql = {
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "DELETE FROM push_bindings WHERE device_key = ? OR (aor = ? AND identity = ?)",
        "INSERT INTO push_bindings (device_key, aor, identity, binding_key, push, registered_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        "DELETE FROM push_bindings WHERE device_key = ?",
        "DELETE FROM push_bindings WHERE expires_at <= ?"};
  Result<sqlite::Statement*> statement(Sql which) { return statements_.get(db_.get(), which); }
  Status run(Sql which, std::string_view what) { return statements_.run(db_.get(), which, what); }

  Status deleteKey(std::string_view key) {
    auto st = statement(kDeleteKey);
    if (!st) return st.status();
    (*st)->bind(1, key);
    return run(kDeleteKey, "delete push binding");
  }

  Status writeUpsert(const PushRecord& r) {
    auto del = statement(kReplace);
    if (!del) return del.status();
    (*del)->bind(1, r.device_key);
    (*del)->bind(2, r.aor);
    (*del)->bind(3, r.identity);
    if (Status s = run(kReplace, "replace push binding"); !s) return s;
    auto ins = statement(kInsert);
    if (!ins) return ins.status();
    (*ins)->bind(1, r.device_key);
    (*ins)->bind(2, r.aor);
    (*ins)->bind(3, r.identity);
    (*ins)->bind(4, r.binding_key);
    (*ins)->bind(5, push::serialize(r.binding));
    (*ins)->bind(6, unixSecs(r.registered_at));
    (*ins)->bind(7, unixSecs(r.expires_at));
    return run(kInsert, "write push binding");
  }

  mutable std::mutex mu_;
  sqlite::DbHandle db_;  // declared before the statements: closed after they are finalized
  sqlite::StatementCache<kSqlCount> statements_{kSql};
  Index index_;
};

}  // namespace

std::unique_ptr<PushBindingStore> makeMemoryPushBindingStore() {
  return std::make_unique<MemoryPushBindingStore>();
}

Result<std::unique_ptr<PushBindingStore>> openSqlitePushBindingStore(const std::string& path) {
  auto db = sqlite::openDatabase(path, sqlite::OpenOptions{});
  if (!db) return db.status();
  // The location store's writer thread checkpoints the shared WAL (off the I/O loops, on its own
  // connection). SQLite's automatic checkpoint at 1000 frames would instead run, fsyncs and all,
  // inside whichever push-binding COMMIT crossed it, on an I/O loop. Kept as a backstop only.
  sqlite3_wal_autocheckpoint(db->get(), 20000);
  return std::unique_ptr<PushBindingStore>(
      std::make_unique<SqlitePushBindingStore>(std::move(*db)));
}

}  // namespace sipwake::location
