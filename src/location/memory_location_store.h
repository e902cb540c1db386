// LocationStore without persistence: for unit tests and for a single node that accepts losing
// its bindings on restart. Every write completes inline, one at a time (under write_mu_).
#pragma once

#include <mutex>

#include "location/indexed_location_store.h"

namespace sipwake::location {

class MemoryLocationStore final : public IndexedLocationStore {
 public:
  MemoryLocationStore() = default;

  Result<LoadReport> load(SysSeconds now) override;  // nothing to load: reports what is held
  // Runs the change inline, then posts `done` via reply_on (still on the calling thread when the
  // executor is inline).
  void applyRegistration(RegistrationChange change, Executor reply_on, Done done) override;
  std::size_t sweepExpired(SysSeconds now) override;

 private:
  std::mutex write_mu_;  // one writer at a time (reads take no lock of this store)
};

}  // namespace sipwake::location
