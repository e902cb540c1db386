// Push bindings: "this device of this AOR can be woken by a push". Kept apart from SIP bindings
// because they outlive them: an app going to the background un-REGISTERs its SIP contact but stays
// reachable by push until its push TTL runs out, it opts out (REGISTER without push params), or
// the push service reports the token dead.
//
// The push data itself is opaque JSON (push::serialize): src/location does not depend on
// src/push. Keys:
//   device_key  push::PushBinding::deviceKey() (a hash of provider, environment and tokens): the
//               primary key. A token seen under another AOR or device MOVES there (upsert
//               replaces the old record), so a phone never rings for its former owner.
//   identity    the device within its AOR (instance id, else the Contact URI without push
//               params): a device that re-registers with a rotated token replaces its record.
//
// Thread: every method is thread-safe. Writes are synchronous and durable when they return (the
// registrar writes before sending its 200 OK); reads are served from memory.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "location/binding.h"

namespace sipwake::location {

struct PushRecord {
  std::string device_key;
  std::string aor;
  std::string identity;
  std::string binding_key;  // location::bindingKey() of the SIP binding it was registered with
  push::PushBinding binding;
  SysSeconds registered_at{};
  SysSeconds expires_at{};

  friend bool operator==(const PushRecord&, const PushRecord&) = default;
};

class PushBindingStore {
 public:
  virtual ~PushBindingStore() = default;

  // Loads persisted records into memory; returns how many live ones. REQUIRES: called once,
  // before serving traffic.
  virtual Result<std::size_t> load(SysSeconds now) = 0;

  // Adds or refreshes `record`. Removes, in the same transaction, every other record with the
  // same device_key (token moved) or the same (aor, identity) (token rotated). Returns the records
  // removed that belonged to ANOTHER aor or identity (moves), for logging.
  virtual Result<std::vector<PushRecord>> upsert(PushRecord record) = 0;

  // Removes the record of `device_key`. With `unless_registered_after` set, keeps it when it was
  // registered strictly after that instant (APNs 410 timestamp). Both are whole seconds, so a
  // REGISTER in the same second as the 410's timestamp does not save the binding: otherwise a dead
  // token registered in that second would be pushed (and rejected) for ever. Returns whether one
  // was removed.
  virtual Result<bool> remove(std::string_view device_key,
                              std::optional<SysSeconds> unless_registered_after = std::nullopt) = 0;
  // Removes the record of device `identity` in `aor` (opt-out); whether one was removed.
  virtual Result<bool> removeIdentity(std::string_view aor, std::string_view identity) = 0;

  // Live records (expires_at > now) of `aor`.
  virtual std::vector<PushRecord> lookupByAor(std::string_view aor, SysSeconds now) const = 0;
  // Every live record (start-up work such as edge mode's upstream registrations; not per request).
  virtual std::vector<PushRecord> liveRecords(SysSeconds now) const = 0;
  virtual std::optional<PushRecord> lookupByDevice(std::string_view device_key) const = 0;

  // Removes expired records; returns how many.
  virtual std::size_t sweepExpired(SysSeconds now) = 0;
  virtual std::size_t size() const = 0;
};

// In memory only (tests, nodes without persistence).
std::unique_ptr<PushBindingStore> makeMemoryPushBindingStore();

// SQLite (table push_bindings, schema v3) in the database file at `path`, which may be the
// location store's file (its own connection; WAL lets both write).
Result<std::unique_ptr<PushBindingStore>> openSqlitePushBindingStore(const std::string& path);

}  // namespace sipwake::location
