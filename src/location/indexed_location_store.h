// The part every LocationStore shares: the in-memory BindingIndex and PushIndex that serve every
// lookup (no storage round trip, no process-wide lock). A backend derives from it and supplies
// only what differs — how a change is persisted before it is published to the indexes, how the
// indexes are filled at load, and how expired entries leave storage:
//   MemoryLocationStore  nothing persisted (writes applied inline)
//   SqliteLocationStore  one local SQLite file, group commit on a writer thread
//   RedisLocationStore   Redis shared by several nodes, the indexes a cache kept coherent by
//                        pub/sub
// Writers: one at a time per backend (BindingIndex and PushIndex::Batch rules); readers: any
// thread, concurrently with the writer.
#pragma once

#include "location/binding_index.h"
#include "location/location_store.h"
#include "location/push_index.h"

namespace sipwake::location {

class IndexedLocationStore : public LocationStore {
 public:
  std::vector<Binding> lookup(std::string_view aor, SysSeconds now) const final {
    return index_.lookup(aor, now);
  }
  std::size_t size() const final { return index_.size(); }
  std::vector<PushRecord> lookupPush(std::string_view aor, SysSeconds now) const final {
    return push_.byAor(aor, now);
  }
  std::optional<PushRecord> lookupPushDevice(std::string_view device_key) const final {
    return push_.byDevice(device_key);
  }
  std::vector<PushRecord> livePushRecords(SysSeconds now) const final { return push_.live(now); }
  std::size_t pushSize() const final { return push_.size(); }

 protected:
  BindingIndex index_;
  PushIndex push_;
};

}  // namespace sipwake::location
