// LocationStore on Redis, shared by several sipwake nodes. Data model and protocol: the "Redis
// store" part of docs/architecture.md.
//
// Writes: each RegistrationChange is applied by ONE Lua script (EVALSHA) that first checks that
// the AOR is still in the state this node computed the change against (a version token stored
// in the AOR's hash), then writes the bindings and push bindings, sets the key expiry and
// PUBLISHes the change. When another node changed the AOR meanwhile the script changes nothing;
// this node re-reads the AOR and applies the change again, so the RFC 3261 Call-ID/CSeq rule is
// checked against the state Redis holds and a REGISTER is never lost (the loser of a true
// conflict gets kFailedPrecondition, as with SQLite). `done` runs only after Redis answered.
//
// Reads: every lookup is served from the in-memory indexes (IndexedLocationStore), a cache of
// Redis filled at load(), updated by this node's own writes, and refreshed per AOR when another
// node publishes a change (and fully re-read after the connection to Redis comes back).
//
// Failure: while Redis is unreachable every applyRegistration fails at once with kUnavailable
// (the registrar answers 503 + Retry-After); lookups keep serving the cache.
//
// Threads: one event loop of its own runs the Redis connections and every write; lookups from
// any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "location/indexed_location_store.h"
#include "redis/url.h"

namespace sipwake::location {

struct RedisLocationOptions {
  redis::RedisConfig redis;          // from [store] url (+ redis_ca_file)
  std::string prefix = "sipwake:";  // every key and channel starts with it
  std::string node_id;               // names this node in published events; empty: random
  Duration command_timeout = std::chrono::seconds(1);
  Duration connect_timeout = std::chrono::seconds(2);
  // How long load() waits for the first connection before failing.
  Duration load_wait = std::chrono::seconds(5);
  // Changes queued or in flight beyond which applyRegistration fails with kUnavailable.
  std::size_t max_pending = 10000;
};

// A device registered (a REGISTER that carried its push binding) at node `node_id`, published
// on "<prefix>registered" by the node that took the REGISTER and heard by every node.
struct RegisteredEvent {
  std::string node_id;
  std::string aor;
  std::vector<std::string> device_keys;  // push::PushBinding::deviceKey() of each device
};

class RedisLocationStore final : public IndexedLocationStore {
 public:
  static Result<std::unique_ptr<RedisLocationStore>> open(RedisLocationOptions options);
  // Stops the connections (changes in flight get kUnavailable) and the store's loop.
  ~RedisLocationStore() override;

  // Connects (waits up to load_wait), then reads every AOR (SCAN + HGETALL) into memory.
  Result<LoadReport> load(SysSeconds now) override;
  void applyRegistration(RegistrationChange change, Executor reply_on, Done done) override;
  // Drops expired entries from memory (Redis expires its keys itself). Blocks until done.
  std::size_t sweepExpired(SysSeconds now) override;

  const std::string& nodeId() const;
  bool redisUp() const;
  // Full re-reads of the cache done so far (load, and each return of Redis).
  std::size_t fullReads() const;
  // Called for every RegisteredEvent heard (this node's own included: compare node_id), on the
  // store's loop: keep it short, post elsewhere. REQUIRES: set before load().
  void setRegisteredObserver(std::function<void(const RegisteredEvent&)> observer);

  class Impl;  // public only so the .cc can define helpers on it

 private:
  RedisLocationStore() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sipwake::location
