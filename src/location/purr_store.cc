#include "location/purr_store.h"

#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "location/sqlite_db.h"

namespace sipwake::location {
namespace {

constexpr std::size_t kPurrBytes = 16;

std::int64_t unixSecs(SysSeconds t) { return t.time_since_epoch().count(); }
SysSeconds fromUnix(std::int64_t s) { return SysSeconds{std::chrono::seconds(s)}; }

Result<std::string> newPurr() {
  std::array<unsigned char, kPurrBytes> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    return Status(StatusCode::kUnavailable, "RAND_bytes failed: no PURR");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * raw.size());
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS push_purrs (
  purr       TEXT    NOT NULL PRIMARY KEY,  -- 32 hex characters from the CSPRNG
  device_key TEXT    NOT NULL,              -- push_bindings.device_key
  aor        TEXT    NOT NULL,
  issued_at  INTEGER NOT NULL,              -- unix seconds
  used_at    INTEGER NOT NULL               -- unix seconds
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS push_purrs_by_device ON push_purrs (device_key);
)sql";

// Memory index with optional SQLite write-through (db_ null: memory only). One mutex.
class PurrStoreImpl final : public PurrStore {
 public:
  PurrStoreImpl(PurrPolicy policy, sqlite::DbHandle db) : policy_(policy), db_(std::move(db)) {}

  Result<std::size_t> load(SysSeconds now) override {
    std::lock_guard lock(mu_);
    if (!db_) return by_purr_.size();
    auto st = sqlite::Statement::prepare(
        db_.get(), "SELECT purr, device_key, aor, issued_at, used_at FROM push_purrs");
    if (!st) return st.status();
    int rc;
    while ((rc = st->step()) == SQLITE_ROW) {
      PurrRecord r;
      r.purr = std::string(st->columnText(0));
      r.device_key = std::string(st->columnText(1));
      r.aor = std::string(st->columnText(2));
      r.issued_at = fromUnix(st->columnInt(3));
      r.used_at = fromUnix(st->columnInt(4));
      put(std::move(r));
    }
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "load PURRs");
    std::size_t valid = 0;
    for (const auto& [p, r] : by_purr_) valid += kept(r, now) ? 1 : 0;
    return valid;
  }

  Result<std::string> issue(std::string_view device_key, std::string_view aor,
                            SysSeconds now) override {
    std::lock_guard lock(mu_);
    const PurrRecord* newest = nullptr;
    for (const PurrRecord* r : ofDevice(device_key)) {
      if (r->aor != aor) continue;  // the token moved to another AOR: never reuse its values
      if (newest == nullptr || r->issued_at > newest->issued_at) newest = r;
    }
    if (newest != nullptr && now - newest->issued_at < policy_.rotate_after) return newest->purr;
    auto purr = newPurr();
    if (!purr) return purr.status();
    PurrRecord r{*purr, std::string(device_key), std::string(aor), now, now};
    // Over the bound: the least recently used of the device go (in the same transaction).
    std::vector<std::string> evict;
    std::vector<const PurrRecord*> mine = ofDevice(device_key);
    if (mine.size() + 1 > policy_.max_per_device) {
      std::sort(mine.begin(), mine.end(),
                [](const PurrRecord* a, const PurrRecord* b) { return a->used_at < b->used_at; });
      const std::size_t excess = mine.size() + 1 - policy_.max_per_device;
      for (std::size_t i = 0; i < excess && i < mine.size(); ++i) evict.push_back(mine[i]->purr);
    }
    if (db_) {
      if (Status s = write(r, evict); !s) return s;
    }
    for (const std::string& e : evict) erase(e);
    put(std::move(r));
    return std::move(*purr);
  }

  std::optional<PurrRecord> use(std::string_view purr, SysSeconds now) override {
    std::lock_guard lock(mu_);
    auto it = by_purr_.find(std::string(purr));
    if (it == by_purr_.end() || !kept(it->second, now)) return std::nullopt;
    PurrRecord& r = it->second;
    // Durable use marks at most once a minute per PURR (a burst of in-dialog requests writes once).
    if (now - r.used_at >= std::chrono::minutes(1) && db_) {
      auto st = statement(kTouch);
      if (st) {
        (*st)->bind(1, unixSecs(now));
        (*st)->bind(2, r.purr);
        (void)run(kTouch, "mark PURR used");  // a failed mark only shortens its life
      }
    }
    r.used_at = std::max(r.used_at, now);
    return r;
  }

  std::size_t sweep(SysSeconds now) override {
    std::lock_guard lock(mu_);
    std::vector<std::string> old;
    for (const auto& [p, r] : by_purr_) {
      if (!kept(r, now)) old.push_back(p);
    }
    if (old.empty()) return 0;
    if (db_) {
      auto st = statement(kSweep);
      if (!st) return 0;
      (*st)->bind(1, unixSecs(now - policy_.keep));
      if (!run(kSweep, "sweep PURRs")) return 0;  // retried by the next sweep
    }
    for (const std::string& p : old) erase(p);
    return old.size();
  }

  std::size_t size() const override {
    std::lock_guard lock(mu_);
    return by_purr_.size();
  }

 private:
  bool kept(const PurrRecord& r, SysSeconds now) const {
    return now - std::max(r.issued_at, r.used_at) < policy_.keep;
  }
  void put(PurrRecord r) {
    by_device_[r.device_key].push_back(r.purr);
    std::string key = r.purr;
    by_purr_.insert_or_assign(std::move(key), std::move(r));
  }
  void erase(const std::string& purr) {
    auto it = by_purr_.find(purr);
    if (it == by_purr_.end()) return;
    auto d = by_device_.find(it->second.device_key);
    if (d != by_device_.end()) {
      std::erase(d->second, purr);
      if (d->second.empty()) by_device_.erase(d);
    }
    by_purr_.erase(it);
  }
  std::vector<const PurrRecord*> ofDevice(std::string_view device_key) const {
    std::vector<const PurrRecord*> out;
    auto d = by_device_.find(std::string(device_key));
    if (d == by_device_.end()) return out;
    for (const std::string& p : d->second) out.push_back(&by_purr_.at(p));
    return out;
  }

  // REQUIRES (below): mu_ held, db_ set.
  enum Sql { kBegin, kCommit, kRollback, kInsert, kDelete, kTouch, kSweep, kSqlCount };
  static constexpr std::array<std::string_view, kSqlCount> kSql = {
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
        "INSERT INTO push_purrs (purr, device_key, aor, issued_at, used_at) VALUES (?, ?, ?, ?, ?)",
        "DELETE FROM push_purrs WHERE purr = ?",
        "UPDATE push_purrs SET used_at = ? WHERE purr = ?",
        "DELETE FROM push_purrs WHERE MAX(issued_at, used_at) <= ?"};
  Result<sqlite::Statement*> statement(Sql which) { return statements_.get(db_.get(), which); }
  Status run(Sql which, std::string_view what) { return statements_.run(db_.get(), which, what); }
  Status write(const PurrRecord& r, const std::vector<std::string>& evict) {
    if (Status s = run(kBegin, "begin PURR write"); !s) return s;
    Status s = Status::ok();
    for (const std::string& e : evict) {
      auto del = statement(kDelete);
      if (!del) {
        s = del.status();
        break;
      }
      (*del)->bind(1, e);
      if (s = run(kDelete, "evict PURR"); !s) break;
    }
    if (s) {
      auto ins = statement(kInsert);
      if (!ins) {
        s = ins.status();
      } else {
        (*ins)->bind(1, r.purr);
        (*ins)->bind(2, r.device_key);
        (*ins)->bind(3, r.aor);
        (*ins)->bind(4, unixSecs(r.issued_at));
        (*ins)->bind(5, unixSecs(r.used_at));
        s = run(kInsert, "write PURR");
      }
    }
    if (s) s = run(kCommit, "commit PURR");
    if (!s) (void)run(kRollback, "rollback PURR");
    return s;
  }

  const PurrPolicy policy_;
  mutable std::mutex mu_;
  sqlite::DbHandle db_;  // declared before the statements: closed after they are finalized
  sqlite::StatementCache<kSqlCount> statements_{kSql};
  std::unordered_map<std::string, PurrRecord> by_purr_;
  std::unordered_map<std::string, std::vector<std::string>> by_device_;
};

}  // namespace

bool isPurrShaped(std::string_view text) {
  if (text.size() != 2 * kPurrBytes) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::unique_ptr<PurrStore> makeMemoryPurrStore(PurrPolicy policy) {
  return std::make_unique<PurrStoreImpl>(policy, sqlite::DbHandle{});
}

Result<std::unique_ptr<PurrStore>> openSqlitePurrStore(const std::string& path, PurrPolicy policy) {
  auto db = sqlite::openDatabase(path, sqlite::OpenOptions{});
  if (!db) return db.status();
  sqlite3_wal_autocheckpoint(db->get(), 20000);  // as the push binding store: see there
  if (Status s = sqlite::exec(db->get(), kSchema); !s) return s;
  return std::unique_ptr<PurrStore>(std::make_unique<PurrStoreImpl>(policy, std::move(*db)));
}

}  // namespace sipwake::location
