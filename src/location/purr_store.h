// PURRs (RFC 8599 §6, "PNS Unique Registration Reference"): the value sipwake returns in
// `+sip.pnspurr` on the 2xx of a push REGISTER. The phone puts it in its dialogs' Contact URI as
// `pn-purr`; a mid-dialog request whose Request-URI carries it names the push binding to wake.
//
// A PURR is 128 bits from OpenSSL's CSPRNG (RAND_bytes), as 32 lower-hex characters: it cannot
// be guessed or derived from the token, the AOR or another PURR (unforgeable), and two PURRs of
// one device share nothing (unlinkable): the remote party of a dialog learns only an opaque value.
//
// Rotation: a device is given a new PURR when its newest one is older than `rotate_after`
// (default 1 h), else the newest one again. A schedule rather than a new value per REGISTER: a
// phone that refreshes its registration every minute would otherwise mint 60 values an hour, and
// the per-device bound would then push out the PURR of a call within minutes; with the schedule,
// how long a value stays valid does not depend on the phone's refresh rate.
// Retention: every PURR of a device stays valid while it was issued or last used (a mid-dialog
// request carried it) within `keep` (default 24 h: a dialog that sends a request at least once a
// day, e.g. a session refresh, keeps its PURR), at most `max_per_device` (default 32; the least
// recently used goes first). A PURR is valid only while its device's push binding exists under
// the same AOR: an opted-out, removed or moved device is not woken through an old PURR (the
// caller checks the binding; see PurrStore::use).
//
// Thread: every method is thread-safe. Writes are synchronous and durable when they return (the
// registrar writes before sending its 200 OK); reads are served from memory.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "location/binding.h"

namespace sipwake::location {

struct PurrPolicy {
  std::chrono::seconds rotate_after = std::chrono::hours(1);
  std::chrono::seconds keep = std::chrono::hours(24);
  std::size_t max_per_device = 32;
};

struct PurrRecord {
  std::string purr;
  std::string device_key;  // PushRecord::device_key
  std::string aor;
  SysSeconds issued_at{};
  SysSeconds used_at{};  // issued_at, or the last mid-dialog request that carried it

  friend bool operator==(const PurrRecord&, const PurrRecord&) = default;
};

class PurrStore {
 public:
  virtual ~PurrStore() = default;

  // Loads persisted PURRs; returns how many are still valid. REQUIRES: called once, first.
  virtual Result<std::size_t> load(SysSeconds now) = 0;

  // The PURR to announce for `device_key` of `aor` at `now`: its newest one when younger than
  // rotate_after, else a new one (written durably first). Unavailable when the CSPRNG or the
  // store fails.
  virtual Result<std::string> issue(std::string_view device_key, std::string_view aor,
                                    SysSeconds now) = 0;

  // The record of a valid `purr`, its use recorded (used_at = now, so a dialog that uses it keeps
  // it); nullopt when unknown or no longer kept. The caller checks the device's push binding.
  virtual std::optional<PurrRecord> use(std::string_view purr, SysSeconds now) = 0;

  // Forgets PURRs neither issued nor used within `keep`; returns how many.
  virtual std::size_t sweep(SysSeconds now) = 0;
  virtual std::size_t size() const = 0;
};

// Whether `text` has the form of a PURR this store issues (32 lower-hex characters).
bool isPurrShaped(std::string_view text);

std::unique_ptr<PurrStore> makeMemoryPurrStore(PurrPolicy policy = {});

// SQLite (table push_purrs, created on open when missing) in the database file at `path`, which
// may be the push binding store's file (its own connection).
Result<std::unique_ptr<PurrStore>> openSqlitePurrStore(const std::string& path,
                                                       PurrPolicy policy = {});

}  // namespace sipwake::location
