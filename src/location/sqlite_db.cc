#include "location/sqlite_db.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include "common/log.h"

namespace sipwake::location::sqlite {
namespace {

// Migration hook: entry N upgrades a database from user_version N to N+1. Append, never edit:
// deployed files may be at any earlier version. Each step runs in the migration transaction.
constexpr const char* kMigrations[] = {
    // 0 -> 1: bindings and users.
    R"sql(
CREATE TABLE bindings (
  aor            TEXT    NOT NULL,
  binding_key    TEXT    NOT NULL,  -- location::bindingKey()
  contact_uri    TEXT    NOT NULL,
  instance_id    TEXT    NOT NULL,
  reg_id         INTEGER,           -- NULL when absent
  call_id        TEXT    NOT NULL,
  cseq           INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL,  -- unix seconds
  q_milli        INTEGER NOT NULL,
  path           TEXT    NOT NULL,  -- Path URIs joined by '\n' (cannot occur inside a header)
  protocol       TEXT    NOT NULL,
  source_ip      TEXT    NOT NULL,
  source_port    INTEGER NOT NULL,
  local_listener TEXT    NOT NULL,
  user_agent     TEXT    NOT NULL,
  registered_at  INTEGER NOT NULL,  -- unix seconds
  push           TEXT    NOT NULL,  -- opaque JSON owned by the push layer
  PRIMARY KEY (aor, binding_key)
) WITHOUT ROWID;
CREATE INDEX bindings_by_expiry ON bindings (expires_at);
CREATE TABLE users (
  user       TEXT NOT NULL,
  domain     TEXT NOT NULL,
  ha1_md5    TEXT NOT NULL,  -- hex MD5(user:realm:password), realm = domain
  ha1_sha256 TEXT NOT NULL,  -- hex SHA-256(user:realm:password)
  PRIMARY KEY (user, domain)
) WITHOUT ROWID;
)sql",
    // 1 -> 2: the Contact header parameters of each binding (Binding::contact_params).
    R"sql(
ALTER TABLE bindings ADD COLUMN contact_params TEXT NOT NULL DEFAULT '';
)sql",
    // 2 -> 3: push bindings (LocationStore push records), which outlive the SIP bindings.
    R"sql(
CREATE TABLE push_bindings (
  device_key    TEXT    NOT NULL PRIMARY KEY,  -- push::PushBinding::deviceKey() (no token)
  aor           TEXT    NOT NULL,
  identity      TEXT    NOT NULL,  -- the device within its AOR: instance id or Contact URI
  binding_key   TEXT    NOT NULL,  -- location::bindingKey() of the SIP binding it came with
  push          TEXT    NOT NULL,  -- push::serialize() JSON
  registered_at INTEGER NOT NULL,  -- unix seconds
  expires_at    INTEGER NOT NULL   -- unix seconds
) WITHOUT ROWID;
CREATE INDEX push_bindings_by_aor ON push_bindings (aor);
)sql",
    // 3 -> 4: stored MESSAGEs (MessageStore) and the devices each has yet to reach.
    R"sql(
CREATE TABLE stored_messages (
  id           INTEGER NOT NULL PRIMARY KEY,  -- delivery order
  aor          TEXT    NOT NULL,
  stored_at    INTEGER NOT NULL,  -- unix seconds
  expires_at   INTEGER NOT NULL,  -- unix seconds
  from_hdr     TEXT    NOT NULL,
  to_hdr       TEXT    NOT NULL,
  call_id      TEXT    NOT NULL,
  content_type TEXT    NOT NULL,
  body         TEXT    NOT NULL
);
CREATE TABLE stored_message_devices (
  message_id INTEGER NOT NULL,
  device_key TEXT    NOT NULL,  -- push::PushBinding::deviceKey()
  PRIMARY KEY (message_id, device_key)
) WITHOUT ROWID;
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

Result<int> userVersion(sqlite3* db) {
  Result<Statement> st = Statement::prepare(db, "PRAGMA user_version");
  if (!st) return st.status();
  if (st->step() != SQLITE_ROW) return sqliteError(db, "read user_version");
  return static_cast<int>(st->columnInt(0));
}

Status migrate(sqlite3* db, const std::string& path) {
  // IMMEDIATE: two processes (server and CLI) opening a fresh file must not both migrate.
  if (Status s = exec(db, "BEGIN IMMEDIATE"); !s) return s;
  Result<int> version = userVersion(db);
  if (!version) {
    (void)exec(db, "ROLLBACK");
    return version.status();
  }
  if (*version > kSchemaVersion) {
    (void)exec(db, "ROLLBACK");
    return {StatusCode::kFailedPrecondition,
            fmt::format("{}: schema version {} is newer than this build supports ({})", path,
                        *version, kSchemaVersion)};
  }
  for (int v = *version; v < kSchemaVersion; ++v) {
    if (Status s = exec(db, kMigrations[v]); !s) {
      (void)exec(db, "ROLLBACK");
      return Status(s.code(),
                    fmt::format("migrating {} to version {}: {}", path, v + 1, s.message()));
    }
  }
  if (*version != kSchemaVersion) {
    std::string set = fmt::format("PRAGMA user_version = {}", kSchemaVersion);
    if (Status s = exec(db, set.c_str()); !s) {
      (void)exec(db, "ROLLBACK");
      return s;
    }
  }
  return exec(db, "COMMIT");
}

}  // namespace

Result<Statement> Statement::prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(db, fmt::format("prepare '{}'", sql));
  Statement st;
  st.stmt_.reset(raw);
  return st;
}

void Statement::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_.get(), index, text.data(), static_cast<int>(text.size()),
                    SQLITE_TRANSIENT);
}
void Statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_.get(), index, value);
}
void Statement::bindNull(int index) { sqlite3_bind_null(stmt_.get(), index); }
int Statement::step() { return sqlite3_step(stmt_.get()); }
void Statement::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

std::string_view Statement::columnText(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_.get(), col);
  int n = sqlite3_column_bytes(stmt_.get(), col);
  return p ? std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n))
           : std::string_view();
}
std::int64_t Statement::columnInt(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
bool Statement::columnIsNull(int col) const {
  return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL;
}

Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::ok();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return unavailable(std::move(msg));
}

Status sqliteError(sqlite3* db, std::string_view what) {
  return unavailable(fmt::format("{}: {}", what, sqlite3_errmsg(db)));
}

namespace {

// The store holds HA1 digests and push tokens: the database and its -wal/-shm are private to the
// server's user whatever the umask. SQLite gives the -wal/-shm it creates the main file's mode, so
// creating the main file 0600 covers them; files left by an earlier run with a wider mode are
// narrowed (and said so once).
Status makePrivate(const std::string& path) {
  if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0) return Status::ok();
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return unavailable(fmt::format("open {}: {}", path, std::strerror(errno)));
  }
  ::close(fd);
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    const std::string file = path + suffix;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if ((st.st_mode & 077) == 0) continue;
    if (::chmod(file.c_str(), st.st_mode & 0700) != 0) {
      return unavailable(fmt::format("{} is readable by others (mode {:04o}) and chmod failed: {}",
                                     file, st.st_mode & 07777, std::strerror(errno)));
    }
    SW_LOG_WARN("store: {} was mode {:04o}; now {:04o} (it holds password digests and push tokens)",
                file, st.st_mode & 07777, st.st_mode & 0700);
  }
  return Status::ok();
}

}  // namespace

Result<DbHandle> openDatabase(const std::string& path, const OpenOptions& options) {
  if (Status s = makePrivate(path); !s) return s;
  sqlite3* raw = nullptr;
  // NOMUTEX: each connection is used by one thread at a time (its owner serialises access).
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) {
    return unavailable(
        fmt::format("open {}: {}", path, raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  sqlite3_busy_timeout(db.get(), options.busy_timeout_ms);
  sqlite3_extended_result_codes(db.get(), 1);

  {
    Result<Statement> wal = Statement::prepare(db.get(), "PRAGMA journal_mode=WAL");
    if (!wal) return wal.status();
    if (wal->step() != SQLITE_ROW || wal->columnText(0) != "wal") {
      return unavailable(fmt::format("{}: cannot switch to WAL journal mode", path));
    }
  }
  // Durability choice. In WAL mode a commit appends the transaction's pages to the -wal file with
  // write(2) before COMMIT returns; with synchronous=NORMAL the WAL is fsync'ed only at
  // checkpoints. Data handed to write(2) lives in the kernel page cache, which survives the death
  // of this process (kill -9, crash, OOM kill): every acknowledged binding is on "disk" as far as
  // any later process can tell. What NORMAL does not cover is losing the kernel itself (power
  // cut, kernel panic) in the window before the next checkpoint: the most recent commits may be
  // rolled back, though the database stays consistent. FULL fsyncs the WAL on every commit to
  // close that window, at one fsync per group-committed batch.
  const char* sync =
      options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
  if (Status s = exec(db.get(), sync); !s) return s;
  if (Status s = exec(db.get(), "PRAGMA foreign_keys=OFF"); !s) return s;
  if (Status s = migrate(db.get(), path); !s) return s;
  return db;
}

}  // namespace sipwake::location::sqlite
