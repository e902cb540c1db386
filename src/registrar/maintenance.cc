#include "registrar/maintenance.h"

#include <algorithm>

#include "common/status.h"

namespace sipwake::registrar {

void Maintenance::add(Task task) {
  SIPWAKE_CHECK(!thread_.joinable());
  tasks_.push_back(std::move(task));
}

void Maintenance::start() {
  SIPWAKE_CHECK(!thread_.joinable());
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void Maintenance::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Maintenance::runNow() {
  {
    std::lock_guard lock(mu_);
    run_all_ = true;
  }
  cv_.notify_all();
}

void Maintenance::loop() {
  std::vector<TimePoint> due(tasks_.size());
  const TimePoint start = Clock::now();
  for (std::size_t i = 0; i < tasks_.size(); ++i) due[i] = start + tasks_[i].interval;
  std::unique_lock lock(mu_);
  for (;;) {
    TimePoint next = TimePoint::max();
    for (std::size_t i = 0; i < tasks_.size(); ++i) {
      if (tasks_[i].interval > Duration::zero()) next = std::min(next, due[i]);
    }
    if (next == TimePoint::max()) {
      cv_.wait(lock, [this] { return stopping_ || run_all_; });
    } else {
      cv_.wait_until(lock, next, [this] { return stopping_ || run_all_; });
    }
    if (stopping_) return;
    const bool all = run_all_;
    run_all_ = false;
    lock.unlock();
    const TimePoint now = Clock::now();
    for (std::size_t i = 0; i < tasks_.size(); ++i) {
      const bool periodic_due = tasks_[i].interval > Duration::zero() && due[i] <= now;
      if (!all && !periodic_due) continue;
      tasks_[i].run();
      if (tasks_[i].interval > Duration::zero()) due[i] = Clock::now() + tasks_[i].interval;
    }
    lock.lock();
  }
}

}  // namespace sipwake::registrar
