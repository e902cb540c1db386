#include "location/message_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>

#include "location/sqlite_db.h"

namespace sipwake::location {
namespace {

std::int64_t unixSecs(SysSeconds t) { return t.time_since_epoch().count(); }
SysSeconds fromUnix(std::int64_t s) { return SysSeconds{std::chrono::seconds(s)}; }

// Memory is the truth for reads; with a database every write goes there first (one transaction)
// and memory follows only once it committed.
class MessageStoreImpl final : public MessageStore {
 public:
  MessageStoreImpl(MessageStoreLimits limits, sqlite::DbHandle db)
      : limits_(limits), db_(std::move(db)) {}

  Result<std::size_t> load() override {
    std::lock_guard lock(mu_);
    if (!db_) return std::size_t{0};
    auto st = sqlite::Statement::prepare(
        db_.get(),
        "SELECT id, aor, stored_at, expires_at, from_hdr, to_hdr, call_id, content_type, body "
        "FROM stored_messages ORDER BY id");
    if (!st) return st.status();
    int rc;
    while ((rc = st->step()) == SQLITE_ROW) {
      StoredMessage m;
      m.id = st->columnInt(0);
      m.aor = std::string(st->columnText(1));
      m.stored_at = fromUnix(st->columnInt(2));
      m.expires_at = fromUnix(st->columnInt(3));
      m.from = std::string(st->columnText(4));
      m.to = std::string(st->columnText(5));
      m.call_id = std::string(st->columnText(6));
      m.content_type = std::string(st->columnText(7));
      m.body = std::string(st->columnText(8));
      next_id_ = std::max(next_id_, m.id + 1);
      put(std::move(m));
    }
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "load stored messages");
    auto dev = sqlite::Statement::prepare(
        db_.get(), "SELECT message_id, device_key FROM stored_message_devices");
    if (!dev) return dev.status();
    while ((rc = dev->step()) == SQLITE_ROW) {
      auto it = by_id_.find(dev->columnInt(0));
      if (it == by_id_.end()) continue;
      std::string key(dev->columnText(1));
      it->second.devices.push_back(key);
      by_device_[key].insert(it->first);
    }
    if (rc != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "load stored message devices");
    // A message whose devices all took it but whose row survived a crash between the two deletes.
    std::vector<std::int64_t> orphans;
    for (const auto& [id, m] : by_id_) {
      if (m.devices.empty()) orphans.push_back(id);
    }
    for (std::int64_t id : orphans) (void)removeLocked(id);
    return by_id_.size();
  }

  Result<std::int64_t> add(StoredMessage m) override {
    SIPWAKE_CHECK(!m.devices.empty());
    std::lock_guard lock(mu_);
    auto a = count_by_aor_.find(m.aor);
    if (a != count_by_aor_.end() && a->second >= limits_.max_per_aor) {
      return Status(StatusCode::kOutOfRange, std::string(kMessageStoreUserFull));
    }
    if (by_id_.size() >= limits_.max_total) {
      return Status(StatusCode::kOutOfRange, std::string(kMessageStoreFull));
    }
    std::sort(m.devices.begin(), m.devices.end());
    m.devices.erase(std::unique(m.devices.begin(), m.devices.end()), m.devices.end());
    m.id = next_id_;
    if (db_) {
      if (Status s = sqlite::exec(db_.get(), "BEGIN IMMEDIATE"); !s) return s;
      Status s = insertRows(m);
      if (s) s = sqlite::exec(db_.get(), "COMMIT");
      if (!s) {
        (void)sqlite::exec(db_.get(), "ROLLBACK");
        return s;
      }
    }
    ++next_id_;
    for (const std::string& d : m.devices) by_device_[d].insert(m.id);
    const std::int64_t id = m.id;
    put(std::move(m));
    return id;
  }

  std::vector<StoredMessage> pendingFor(std::string_view device_key,
                                        SysSeconds now) const override {
    std::lock_guard lock(mu_);
    std::vector<StoredMessage> out;
    auto d = by_device_.find(std::string(device_key));
    if (d == by_device_.end()) return out;
    for (std::int64_t id : d->second) {  // ascending: oldest first
      const StoredMessage& m = by_id_.at(id);
      if (m.expires_at > now) out.push_back(m);
    }
    return out;
  }

  Result<bool> delivered(std::int64_t id, std::string_view device_key) override {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return false;
    std::vector<std::string>& devices = it->second.devices;
    auto d = std::find(devices.begin(), devices.end(), device_key);
    if (d == devices.end()) return false;
    if (devices.size() == 1) {
      if (Status s = removeLocked(id); !s) return s;
      return true;
    }
    if (db_) {
      auto st = sqlite::Statement::prepare(
          db_.get(), "DELETE FROM stored_message_devices WHERE message_id = ? AND device_key = ?");
      if (!st) return st.status();
      st->bind(1, id);
      st->bind(2, device_key);
      if (st->step() != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "delivered");
    }
    unindexDevice(*d, id);
    devices.erase(d);
    return true;
  }

  Result<bool> remove(std::int64_t id) override {
    std::lock_guard lock(mu_);
    if (by_id_.count(id) == 0) return false;
    if (Status s = removeLocked(id); !s) return s;
    return true;
  }

  std::vector<StoredMessage> sweepExpired(SysSeconds now) override {
    std::lock_guard lock(mu_);
    std::vector<StoredMessage> out;
    std::vector<std::int64_t> ids;
    for (const auto& [id, m] : by_id_) {
      if (m.expires_at <= now) ids.push_back(id);
    }
    for (std::int64_t id : ids) {
      StoredMessage m = by_id_.at(id);
      if (!removeLocked(id)) break;  // retried by the next sweep
      out.push_back(std::move(m));
    }
    return out;
  }

  std::size_t countForAor(std::string_view aor) const override {
    std::lock_guard lock(mu_);
    auto a = count_by_aor_.find(std::string(aor));
    return a == count_by_aor_.end() ? 0 : a->second;
  }
  std::size_t size() const override {
    std::lock_guard lock(mu_);
    return by_id_.size();
  }

 private:
  // REQUIRES (all below): mu_ held.
  void put(StoredMessage m) {
    ++count_by_aor_[m.aor];
    const std::int64_t id = m.id;
    by_id_.insert_or_assign(id, std::move(m));
  }

  void unindexDevice(const std::string& key, std::int64_t id) {
    auto d = by_device_.find(key);
    if (d == by_device_.end()) return;
    d->second.erase(id);
    if (d->second.empty()) by_device_.erase(d);
  }

  Status insertRows(const StoredMessage& m) {
    auto st = sqlite::Statement::prepare(
        db_.get(),
        "INSERT INTO stored_messages (id, aor, stored_at, expires_at, from_hdr, to_hdr, call_id, "
        "content_type, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st) return st.status();
    st->bind(1, m.id);
    st->bind(2, m.aor);
    st->bind(3, unixSecs(m.stored_at));
    st->bind(4, unixSecs(m.expires_at));
    st->bind(5, m.from);
    st->bind(6, m.to);
    st->bind(7, m.call_id);
    st->bind(8, m.content_type);
    st->bind(9, m.body);
    if (st->step() != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "store message");
    auto dev = sqlite::Statement::prepare(
        db_.get(), "INSERT INTO stored_message_devices (message_id, device_key) VALUES (?, ?)");
    if (!dev) return dev.status();
    for (const std::string& d : m.devices) {
      dev->bind(1, m.id);
      dev->bind(2, d);
      if (dev->step() != SQLITE_DONE) return sqlite::sqliteError(db_.get(), "store message device");
      dev->reset();
    }
    return Status::ok();
  }

  Status removeLocked(std::int64_t id) {
    if (db_) {
      if (Status s = sqlite::exec(db_.get(), "BEGIN IMMEDIATE"); !s) return s;
      Status s = Status::ok();
      for (const char* sql : {"DELETE FROM stored_message_devices WHERE message_id = ?",
                              "DELETE FROM stored_messages WHERE id = ?"}) {
        auto st = sqlite::Statement::prepare(db_.get(), sql);
        if (!st) {
          s = st.status();
          break;
        }
        st->bind(1, id);
        if (st->step() != SQLITE_DONE) {
          s = sqlite::sqliteError(db_.get(), "remove stored message");
          break;
        }
      }
      if (s) s = sqlite::exec(db_.get(), "COMMIT");
      if (!s) {
        (void)sqlite::exec(db_.get(), "ROLLBACK");
        return s;
      }
    }
    auto it = by_id_.find(id);
    for (const std::string& d : it->second.devices) unindexDevice(d, id);
    auto a = count_by_aor_.find(it->second.aor);
    if (a != count_by_aor_.end() && --a->second == 0) count_by_aor_.erase(a);
    by_id_.erase(it);
    return Status::ok();
  }

  const MessageStoreLimits limits_;
  mutable std::mutex mu_;
  sqlite::DbHandle db_;  // nullptr: memory only
  std::int64_t next_id_ = 1;
  std::map<std::int64_t, StoredMessage> by_id_;
  std::unordered_map<std::string, std::set<std::int64_t>> by_device_;
  std::unordered_map<std::string, std::size_t> count_by_aor_;
};

}  // namespace

std::unique_ptr<MessageStore> makeMemoryMessageStore(MessageStoreLimits limits) {
  return std::make_unique<MessageStoreImpl>(limits, sqlite::DbHandle());
}

Result<std::unique_ptr<MessageStore>> openSqliteMessageStore(const std::string& path,
                                                             MessageStoreLimits limits) {
  auto db = sqlite::openDatabase(path, sqlite::OpenOptions{});
  if (!db) return db.status();
  return std::unique_ptr<MessageStore>(std::make_unique<MessageStoreImpl>(limits, std::move(*db)));
}

}  // namespace sipwake::location
