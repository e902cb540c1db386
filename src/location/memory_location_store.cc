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
  {
    std::lock_guard lock(write_mu_);
    static const std::vector<Binding> kEmpty;
    BindingIndex::Snapshot cur = index_.get(change.aor);
    Result<AppliedChange> applied = applyRegistrationChange(cur ? *cur : kEmpty, change);
    if (!applied) {
      result = applied.status();
    } else {
      PushIndex::Batch push_batch(push_);
      for (const PushOp& op : change.push_ops) push_batch.apply(change.aor, op);
      result = applied->bindings;
      index_.put(change.aor,
                 std::make_shared<const std::vector<Binding>>(std::move(applied->bindings)));
      push_batch.publish(push_);
    }
  }
  reply_on(
      [done = std::move(done), result = std::move(result)]() mutable { done(std::move(result)); });
}

std::size_t MemoryLocationStore::sweepExpired(SysSeconds now) {
  std::lock_guard lock(write_mu_);
  push_.sweepExpired(now);
  return index_.sweepExpired(now);
}

}  // namespace sipwake::location
