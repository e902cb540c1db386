// Stored SIP MESSAGEs: a MESSAGE for a sleeping user whose pushed devices did not register within
// the wait is answered 202 and kept here until each of the user's devices (those push-bound when
// it was stored, by push device key) registers and takes it, or it expires.
//
// Each message keeps the set of device keys it still has to reach; a device gets every message
// pending for it, oldest first (ids grow), once: delivered() crosses it off, and a message with
// no device left is deleted. Bounds: at most `max_per_aor` messages per AOR and `max_total` in
// all; add() refuses beyond them (kOutOfRange, the message names the bound) and stores nothing.
// Expired messages (expires_at <= now) are never handed out and are removed by sweepExpired().
//
// Bodies are opaque bytes: never logged by the store.
//
// Thread: every method is thread-safe. Writes are synchronous and durable when they return (the
// caller answers 202 only after add() succeeded); reads are served from memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "location/binding.h"

namespace sipwake::location {

struct StoredMessage {
  std::int64_t id = 0;  // assigned by add(); later messages have larger ids
  std::string aor;
  SysSeconds stored_at{};
  SysSeconds expires_at{};
  // What the delivered MESSAGE is rebuilt from: the original From / To header values (with their
  // tags), Call-ID, Content-Type (may be empty) and body.
  std::string from;
  std::string to;
  std::string call_id;
  std::string content_type;
  std::string body;
  std::vector<std::string> devices;  // device keys it has yet to reach

  friend bool operator==(const StoredMessage&, const StoredMessage&) = default;
};

struct MessageStoreLimits {
  std::size_t max_per_aor = 50;
  std::size_t max_total = 100000;
};

// What add() refuses with when a bound is reached (kOutOfRange, message exactly this).
inline constexpr std::string_view kMessageStoreUserFull = "per-user message bound reached";
inline constexpr std::string_view kMessageStoreFull = "total message bound reached";

class MessageStore {
 public:
  virtual ~MessageStore() = default;

  // Loads persisted messages (expired ones included; the next sweep drops them); returns how many.
  // REQUIRES: called once, before serving traffic.
  virtual Result<std::size_t> load() = 0;

  // Stores `m` for m.devices (must not be empty); returns its id. kOutOfRange when a bound is
  // reached (kMessageStoreUserFull / kMessageStoreFull), kUnavailable on a storage error.
  virtual Result<std::int64_t> add(StoredMessage m) = 0;

  // The messages not yet delivered to `device_key` and not expired at `now`, oldest first.
  virtual std::vector<StoredMessage> pendingFor(std::string_view device_key,
                                                SysSeconds now) const = 0;

  // `device_key` has taken message `id` (or it gave up on it): it is not handed out to that
  // device again; the message goes when no device is left. Whether it was pending for it.
  virtual Result<bool> delivered(std::int64_t id, std::string_view device_key) = 0;

  // Removes message `id` whatever devices it still had (it reached the user another way).
  virtual Result<bool> remove(std::int64_t id) = 0;

  // Removes the messages expired at `now`; returns them (with the devices they never reached).
  virtual std::vector<StoredMessage> sweepExpired(SysSeconds now) = 0;

  virtual std::size_t countForAor(std::string_view aor) const = 0;
  virtual std::size_t size() const = 0;
};

// In memory only (tests, nodes without persistence).
std::unique_ptr<MessageStore> makeMemoryMessageStore(MessageStoreLimits limits);

// SQLite (tables stored_messages and stored_message_devices, schema v4) in the database file at
// `path`, which may be the location store's file (its own connection; WAL lets both write).
Result<std::unique_ptr<MessageStore>> openSqliteMessageStore(const std::string& path,
                                                             MessageStoreLimits limits);

}  // namespace sipwake::location
