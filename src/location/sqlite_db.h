// Internal to src/location: thin RAII over the SQLite C API, connection set-up (WAL, pragmas)
// and the schema migrations shared by SqliteLocationStore and UserStore (one file, two tables).
#pragma once

#include <sqlite3.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sipwake::location::sqlite {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

// A prepared statement. Not thread-safe: used by the one thread that owns its connection.
class Statement {
 public:
  Statement() = default;
  static Result<Statement> prepare(sqlite3* db, std::string_view sql);

  // 1-based parameter index. Text is copied (SQLITE_TRANSIENT), so temporaries are fine.
  void bind(int index, std::string_view text);
  void bind(int index, std::int64_t value);
  void bindNull(int index);

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step();
  // Resets for the next execution and clears the bindings.
  void reset();

  std::string_view columnText(int col) const;
  std::int64_t columnInt(int col) const;
  bool columnIsNull(int col) const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
  };
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
};

struct OpenOptions {
  // false: synchronous=NORMAL (durable against process crash); true: FULL (also power loss).
  bool synchronous_full = false;
  int busy_timeout_ms = 5000;
};

// The schema version this build writes (PRAGMA user_version).
inline constexpr int kSchemaVersion = 4;

// Opens (creating if needed) the database at `path`, switches it to WAL, applies the pragmas and
// runs pending migrations. Fails with kFailedPrecondition for a schema newer than this build.
Result<DbHandle> openDatabase(const std::string& path, const OpenOptions& options);

// Runs SQL without results (may hold several statements).
Status exec(sqlite3* db, const char* sql);

// kUnavailable "<what>: <sqlite message>": storage errors are treated as transient.
Status sqliteError(sqlite3* db, std::string_view what);

// A store's statements, prepared once on first use from a fixed table of SQL texts indexed by the
// store's own enum (SQL compilation per request is measurable on the REGISTER path). Not
// thread-safe: used under the store's lock, on its one connection.
template <std::size_t N>
class StatementCache {
 public:
  explicit StatementCache(const std::array<std::string_view, N>& sql) : sql_(sql) {}

  Result<Statement*> get(sqlite3* db, std::size_t which) {
    std::optional<Statement>& slot = statements_[which];
    if (!slot) {
      auto st = Statement::prepare(db, sql_[which]);
      if (!st) return st.status();
      slot = std::move(st).value();
    }
    return &*slot;
  }
  // Steps the (bound) statement to completion and resets it.
  Status run(sqlite3* db, std::size_t which, std::string_view what) {
    auto st = get(db, which);
    if (!st) return st.status();
    int rc = (*st)->step();
    (*st)->reset();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return sqliteError(db, what);
    return Status::ok();
  }

 private:
  const std::array<std::string_view, N>& sql_;
  std::array<std::optional<Statement>, N> statements_;
};

}  // namespace sipwake::location::sqlite
