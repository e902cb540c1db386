// The embedded, durable LocationStore: SQLite in WAL mode, bindings mirrored in a BindingIndex.
//
// Write path: applyRegistration() queues the change (bounded) and returns. One writer thread owns
// the SQLite connection; it drains everything queued, applies the whole batch in ONE transaction
// (group commit), publishes the new AOR snapshots to memory, and only then posts every `done`.
// When the queue is empty and the connection free, the caller commits its change itself instead
// (SqliteLocationOptions::commit_inline_when_idle), with the same guarantees.
// So a 200 OK is sent only for bindings that are committed, and a burst of REGISTERs costs one
// commit per batch rather than one per request. Lookups never touch the database.
#pragma once

#include <memory>
#include <string>

#include "location/indexed_location_store.h"

namespace sipwake::location {

struct SqliteLocationOptions {
  // See the durability note in sqlite_db.cc: NORMAL survives process kill; FULL also power loss.
  bool synchronous_full = false;
  // Registrations queued but not yet committed beyond which applyRegistration fails fast with
  // kUnavailable (the registrar answers 503 with Retry-After rather than queueing unboundedly).
  std::size_t max_queue = 10000;
  // How long a write waits for a lock held by another process (the user CLI) before failing.
  int busy_timeout_ms = 5000;
  // When nothing is queued and the connection is free, applyRegistration() commits on the
  // calling thread (an I/O loop) instead of waking the writer thread: no thread hand-off, no
  // context switches, same durability (COMMIT has returned before `done` is posted). It never
  // waits for another process's lock (the change then goes to the writer) and never
  // checkpoints (a checkpointer thread does). Under load the connection is busy and changes queue
  // for the writer's group commit as before.
  bool commit_inline_when_idle = true;
};

class SqliteLocationStore final : public IndexedLocationStore {
 public:
  // Opens or creates the database (schema migrated). Call load() before serving.
  static Result<std::unique_ptr<SqliteLocationStore>> open(const std::string& path,
                                                           SqliteLocationOptions options = {});
  // Commits everything already queued (their `done`s run), then stops the writer thread.
  ~SqliteLocationStore() override;

  // Reads every row into memory and starts the writer thread. REQUIRES: called once.
  Result<LoadReport> load(SysSeconds now) override;
  void applyRegistration(RegistrationChange change, Executor reply_on, Done done) override;
  // Runs on the writer thread (ordered with registrations) and blocks the caller until done.
  // REQUIRES: not called from a `done` callback that runs on the writer thread.
  std::size_t sweepExpired(SysSeconds now) override;

  class Impl;  // public only so the .cc can define helpers on it

 private:
  SqliteLocationStore() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sipwake::location
