// LocationStore without persistence: for unit tests and for a single node that accepts losing
// its bindings on restart. Every operation completes inline, under the AOR's shard lock.
#pragma once

#include "location/binding_index.h"
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

 private:
  BindingIndex index_;
};

}  // namespace sipwake::location
