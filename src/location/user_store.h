// SIP users and their digest credentials, stored only as HA1 values (RFC 7616 §3.4.2:
// H(username ":" realm ":" password), realm = the user's domain), never as passwords.
//
// Two places to keep them, one interface:
// - SQLite (open()): same file as the bindings (table `users`), separate connection. The
//   `sipwake user ...` CLI edits the file from another process, so the server must call reload()
//   to see those edits — on SIGHUP and/or on a periodic timer, whichever the server wiring chooses.
// - Redis (openRedis()), shared by every node: one hash per domain, "<prefix>users:<domain>",
//   field = user, value = "<HA1-MD5 hex>:<HA1-SHA-256 hex>", and the set "<prefix>user-domains"
//   naming the domains that hold any (so a full read needs no SCAN). Every write is one Lua
//   script (all rows or none) that also PUBLISHes on "<prefix>users-changed"; a store that
//   follows changes re-reads every user when it hears that (and when its subscription is
//   renewed after a reconnection), so an edit made on any node reaches all of them without a
//   reload. reload() re-reads too.
// Lookups are served from an in-memory copy in both cases. Passwords are never stored and must
// never be logged.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "redis/url.h"

namespace sipwake::location {

enum class DigestAlgorithm { kMd5, kSha256 };

// Lower-case hex digest of `data`.
std::string digestHex(DigestAlgorithm algorithm, std::string_view data);
// HA1 = H(user ":" realm ":" password), lower-case hex.
std::string computeHa1(DigestAlgorithm algorithm, std::string_view user, std::string_view realm,
                       std::string_view password);

struct UserCredentials {
  std::string user;
  std::string domain;      // also the digest realm
  std::string ha1_md5;     // hex
  std::string ha1_sha256;  // hex
};

// One user for UserStore::importUsers().
struct NewUser {
  std::string user;
  std::string domain;
  std::string password;
};

struct UserEntry {
  std::string user;
  std::string domain;
  friend bool operator==(const UserEntry&, const UserEntry&) = default;
};

struct RedisUserOptions {
  redis::RedisConfig redis;         // from [store] url (+ redis_ca_file)
  std::string prefix = "sipwake:";  // [store] redis_prefix
  // An import of many users is one script: give it time.
  Duration command_timeout = std::chrono::seconds(10);
  Duration connect_timeout = std::chrono::seconds(2);
  Duration load_wait = std::chrono::seconds(5);  // for the first connection
  // Subscribe to "<prefix>users-changed" and re-read on each message (the server: yes; a
  // one-shot CLI command: no).
  bool follow_changes = true;
};

class UserStore {
 public:
  // Opens or creates the database (schema migrated) and loads the users into memory.
  static Result<std::unique_ptr<UserStore>> open(const std::string& path,
                                                 int busy_timeout_ms = 5000);
  // Connects to Redis (kUnavailable when it cannot within options.load_wait) and reads every
  // user into memory.
  static Result<std::unique_ptr<UserStore>> openRedis(const RedisUserOptions& options);
  ~UserStore();

  // Thread: the mutating calls and reload() may be called from any thread (serialised inside);
  // each refreshes the in-memory copy after a successful write.
  // `domain` is used verbatim as the realm: pass it canonical (lower case), as the server will.
  // kAlreadyExists if the user exists; kInvalidArgument for empty or control-character fields.
  Status add(std::string_view user, std::string_view domain, std::string_view password);
  Status remove(std::string_view user, std::string_view domain);  // kNotFound if absent
  Status setPassword(std::string_view user, std::string_view domain,
                     std::string_view password);  // kNotFound if absent
  // Adds every user of `users` in ONE transaction: all of them or, on any error, none. An
  // existing user is an error (kAlreadyExists) unless `replace`, which sets its password. A
  // user listed twice is kInvalidArgument. On an error that one entry caused (bad field,
  // duplicate, existing user) `*bad_index` (if given) is set to its index in `users`; a storage
  // error leaves it untouched. Fields are validated like add() does.
  Status importUsers(const std::vector<NewUser>& users, bool replace,
                     std::size_t* bad_index = nullptr);
  // Like importUsers() with the HA1s already computed (copying users from one store to
  // another: HA1s cannot be turned back into passwords).
  Status importCredentials(const std::vector<UserCredentials>& users, bool replace,
                           std::size_t* bad_index = nullptr);
  // Every user, sorted by (domain, user), read from the database (not the cached copy).
  Result<std::vector<UserEntry>> list() const;
  // The same with their HA1s.
  Result<std::vector<UserCredentials>> credentials() const;

  // From memory, never touches disk. Thread: any.
  std::optional<UserCredentials> lookup(std::string_view user, std::string_view domain) const;
  std::size_t size() const;

  // Re-reads every user from the database (picks up edits made by another process).
  Status reload();
  // Full reads installed so far (open, writes, reloads, changes heard). Thread: any.
  std::size_t reads() const;

  class Impl;

 private:
  explicit UserStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sipwake::location
