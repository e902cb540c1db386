#include "location/memory_location_store.h"

#include <utility>

namespace sipwake::location {

Result<LoadReport> MemoryLocationStore::load(SysSeconds /*now*/) {
  LoadReport report;
  report.bindings = index_.size();
  report.aors = index_.aorCount();
  return report;
}

void MemoryLocationStore::applyRegistration(RegistrationChange change, Executor reply_on,
                                            Done done) {
  Result<std::vector<Binding>> result = unavailable("not applied");
  index_.update(change.aor, [&](const BindingIndex::Snapshot& cur) -> BindingIndex::Snapshot {
    static const std::vector<Binding> kEmpty;
    Result<AppliedChange> applied = applyRegistrationChange(cur ? *cur : kEmpty, change);
    if (!applied) {
      result = applied.status();
      return cur;
    }
    result = applied->bindings;
    return std::make_shared<const std::vector<Binding>>(std::move(applied->bindings));
  });
  reply_on(
      [done = std::move(done), result = std::move(result)]() mutable { done(std::move(result)); });
}

std::vector<Binding> MemoryLocationStore::lookup(std::string_view aor, SysSeconds now) const {
  return index_.lookup(aor, now);
}

std::size_t MemoryLocationStore::sweepExpired(SysSeconds now) { return index_.sweepExpired(now); }

}  // namespace sipwake::location
