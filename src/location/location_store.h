// The location service seam: where the registrar writes bindings and the proxy core reads them.
// Implementations: MemoryLocationStore (tests, single node without persistence) and
// SqliteLocationStore (embedded, durable default).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "location/binding.h"

namespace sipwake::location {

// Posts a closure to the caller's event loop. Tests pass an inline one: [](auto f) { f(); }.
using Executor = std::function<void(std::function<void()>)>;

// A push binding: "this device of this AOR can be woken by a push". Push bindings outlive SIP
// bindings: an app going to the background un-REGISTERs its SIP contact but stays reachable by
// push until its push TTL runs out, it opts out (REGISTER without push params), or the push
// service reports the token dead. Keys:
//   device_key  push::PushBinding::deviceKey(): unique in the store. A token seen under another
//               AOR or device MOVES there (the upsert displaces the old record), so a phone never
//               rings for its former owner.
//   identity    the device within its AOR (instance id, else the Contact URI without push
//               params): a device that re-registers with a rotated token replaces its record.
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

// One push-binding operation of a RegistrationChange, applied in order after its SIP bindings
// and in the same transaction.
struct PushOp {
  enum class Kind : std::uint8_t {
    kUpsert,          // `record` (its aor is the change's): displaces every record with the
                      // same device_key (move) or the same (aor, identity) (rotated token)
    kRemoveIdentity,  // the record of device `record.identity` in the change's AOR (opt-out)
    kRemoveDevice,    // the record of `record.device_key`, whatever its AOR; kept when
                      // `unless_registered_after` is set and it was registered strictly after
                      // it (APNs 410 timestamp; whole seconds, so a REGISTER in the 410's second
                      // does not save a dead token)
    kRemoveAll,       // every record of the change's AOR
  };
  Kind kind = Kind::kUpsert;
  PushRecord record;
  std::optional<SysSeconds> unless_registered_after;
};

// The whole outcome of one REGISTER for one AOR (RFC 3261 §10.3 steps 6-8), applied atomically.
struct RegistrationChange {
  std::string aor;
  std::string call_id;
  std::uint32_t cseq = 0;
  SysSeconds now{};  // request time: bindings with expires_at <= now count as absent
  // "Contact: *" with Expires: 0. REQUIRES: upserts and removals empty when set.
  bool remove_all = false;
  // Contacts to add or refresh. The store overwrites aor, call_id, cseq and registered_at (= now)
  // from this change. REQUIRES: expires_at > now, 0 <= q_milli <= 1000, contact_uri non-empty.
  std::vector<Binding> upserts;
  // Contacts with expires 0. Only the key fields (contact_uri, instance_id, reg_id) matter;
  // removing a binding that does not exist is not an error (RFC 3261 §10.3 step 7).
  std::vector<Binding> removals;
  // Per-AOR limit on live bindings after the change; 0 = unlimited. Exceeding it fails the change
  // with kOutOfRange and leaves the AOR untouched.
  std::size_t max_bindings = 0;
  // Push bindings written with the SIP bindings (same transaction, same durability). A change
  // may carry only push_ops (a dead token's removal): Call-ID and CSeq then do not matter.
  std::vector<PushOp> push_ops;
};

struct LoadReport {
  std::size_t bindings = 0;  // live bindings now in memory
  std::size_t aors = 0;
  std::size_t expired_skipped = 0;  // rows already expired at load (left for sweepExpired)
  std::chrono::microseconds duration{0};
};

class LocationStore {
 public:
  using Done = std::function<void(Result<std::vector<Binding>>)>;

  virtual ~LocationStore() = default;

  // Loads every persisted binding into memory. REQUIRES: called once, before any other method
  // is used to serve traffic (applyRegistration before load fails with kFailedPrecondition).
  virtual Result<LoadReport> load(SysSeconds now) = 0;

  // Applies `change` atomically: checked against Call-ID/CSeq ordering and written durably (for a
  // persistent store) before `done` runs. `done` is posted through `reply_on` and receives the
  // AOR's live bindings after the change, or:
  //   kFailedPrecondition  CSeq not higher than the stored one for the same Call-ID (RFC 3261
  //                        §10.3 step 7: the request fails, nothing is changed), or not loaded
  //   kInvalidArgument     the change violates the REQUIRES above
  //   kOutOfRange          max_bindings exceeded
  //   kUnavailable         the store cannot accept or persist it (queue full, disk error)
  // Thread: any. REQUIRES: reply_on and done non-null; `done` must not call sweepExpired().
  virtual void applyRegistration(RegistrationChange change, Executor reply_on, Done done) = 0;

  // The AOR's live bindings (expires_at > now), in no particular order (callers sort by q).
  // Served from memory, never touches disk. Thread: any, concurrently with everything else.
  virtual std::vector<Binding> lookup(std::string_view aor, SysSeconds now) const = 0;

  // Removes bindings with expires_at <= now from memory and storage; returns how many.
  // May block on storage: call from a maintenance timer, not from a request path.
  virtual std::size_t sweepExpired(SysSeconds now) = 0;

  // Bindings held in memory, including expired ones not yet swept.
  virtual std::size_t size() const = 0;

  // Push bindings, served from memory (a sharded index of per-AOR immutable snapshots: no
  // process-wide lock). Thread: any.
  // Live push records (expires_at > now) of `aor`, oldest first.
  virtual std::vector<PushRecord> lookupPush(std::string_view aor, SysSeconds now) const = 0;
  // The record of `device_key`, live or not.
  virtual std::optional<PushRecord> lookupPushDevice(std::string_view device_key) const = 0;
  // Every live record (start-up work such as edge mode's upstream registrations; not per request).
  virtual std::vector<PushRecord> livePushRecords(SysSeconds now) const = 0;
  // Push records held, including expired ones not yet swept.
  virtual std::size_t pushSize() const = 0;

  // Removes the push record of `device_key` (a dead token: PushOp::kRemoveDevice) through the
  // writer, like a registration: `done` gets the outcome through `reply_on`. `aor` is the AOR the
  // caller found it under (the record goes wherever it is now). Thread: any.
  void removePushDevice(std::string aor, std::string device_key,
                        std::optional<SysSeconds> unless_registered_after, SysSeconds now,
                        Executor reply_on, std::function<void(Status)> done);
};

// Outcome of applying a RegistrationChange to one AOR's current bindings (pure logic shared by
// every store implementation).
struct AppliedChange {
  std::vector<Binding> bindings;          // the AOR's live bindings afterwards
  std::vector<Binding> written;           // new or refreshed bindings (subset of `bindings`)
  std::vector<std::string> removed_keys;  // keys of stored bindings (live or expired) now gone
};

// RFC 3261 §10.3 steps 6-8 plus the RFC 5626 instance rule, on `current` (which may hold expired
// bindings). Errors as documented on LocationStore::applyRegistration; on error nothing changes.
Result<AppliedChange> applyRegistrationChange(const std::vector<Binding>& current,
                                              const RegistrationChange& change);

}  // namespace sipwake::location
