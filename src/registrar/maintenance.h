// Background upkeep that must never run on an event loop because it may block on disk:
// sweeping expired bindings (LocationStore::sweepExpired blocks until the store's writer has
// deleted them) and re-reading the user table that `sipwake user ...` edits from another process.
//
// Thread: owns one thread, started by start() and joined by stop() (or the destructor).
// runNow() may be called from any thread (e.g. the signal thread on SIGHUP); it only wakes the
// maintenance thread, which then runs every task once.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace sipwake::registrar {

class Maintenance {
 public:
  struct Task {
    std::string name;  // for logs
    Duration interval;
    std::function<void()> run;
  };

  Maintenance() = default;
  ~Maintenance() { stop(); }
  Maintenance(const Maintenance&) = delete;
  Maintenance& operator=(const Maintenance&) = delete;

  // REQUIRES: not started. Tasks with a zero interval only run on runNow().
  void add(Task task);
  void start();
  // Wakes the thread and joins it; a running task finishes first. Idempotent.
  void stop();
  // Runs every task once, soon, on the maintenance thread (does not wait for it).
  void runNow();

 private:
  void loop();

  std::vector<Task> tasks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool run_all_ = false;
  std::thread thread_;
};

}  // namespace sipwake::registrar
