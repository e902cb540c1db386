// LocationStore without persistence: for unit tests and for a single node that accepts losing
// its bindings on restart. Every write completes inline, one at a time (under write_mu_).
#pragma once

#include <mutex>

#include "location/binding_index.h"
#include "location/push_index.h"
#include "location/location_store.h"

namespace sipwake::location {

class MemoryLocationStore final : public LocationStore {
 public:
  MemoryLocationStore() = default;

  Result<LoadReport> load(SysSeconds now) override;  // nothing to load: reports what is held
  // Runs the change inline, then posts `done` via reply_on (still on the calling thread when the
  // executor is inline).
  void applyRegistration(RegistrationChange change, Executor reply_on, Done done) override;
  std::vector<Binding> lookup(std::string_view aor, SysSeconds now) const override;
  std::size_t sweepExpired(SysSeconds now) override;
  std::size_t size() const override { return index_.size(); }
  std::vector<PushRecord> lookupPush(std::string_view aor, SysSeconds now) const override;
  std::optional<PushRecord> lookupPushDevice(std::string_view device_key) const override;
  std::vector<PushRecord> livePushRecords(SysSeconds now) const override;
  std::size_t pushSize() const override { return push_.size(); }

 private:
  std::mutex write_mu_;  // one writer at a time (reads take no lock of this store)
  BindingIndex index_;
  PushIndex push_;
};

}  // namespace sipwake::location
