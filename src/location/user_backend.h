// Where UserStore keeps its users: the SQLite `users` table or Redis. Private to the location
// library (user_store.cc, redis_user_backend.cc). The backend stores and reads rows of HA1s;
// validation, hashing and the in-memory copy are UserStore's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "location/user_store.h"

namespace sipwake::location {

class UserBackend {
 public:
  enum class Mode {
    kAdd,      // every user must be absent (else kAlreadyExists)
    kUpsert,   // added or overwritten
    kReplace,  // every user must exist (else kNotFound): sets the HA1s
    kRemove,   // every user must exist (else kNotFound): deleted (HA1s ignored)
  };

  virtual ~UserBackend() = default;
  // Applies `mode` to every row in ONE atomic step: all of them or, on any error, none. On an
  // error one row caused (kAlreadyExists, kNotFound) `*bad_index` is set to its index.
  // Thread: any; UserStore serialises the calls.
  virtual Status write(Mode mode, const std::vector<UserCredentials>& rows,
                       std::size_t* bad_index) = 0;
  // Every user, sorted by (domain, user), with a sequence number that grows with each read
  // started (UserStore installs a read only when it is newer than the copy it holds).
  struct Read {
    std::vector<UserCredentials> users;
    std::uint64_t sequence = 0;
  };
  virtual Result<Read> readAll() = 0;
  // Backends that hear other processes' changes call `on_read` with a fresh read after each
  // (from a thread of their own). REQUIRES: set before the first change can arrive.
  virtual void setChangeListener(std::function<void(Read)> on_read) { (void)on_read; }
};

// Connects (waits up to options.load_wait; and, with options.follow_changes, until subscribed
// to "<prefix>users-changed").
Result<std::unique_ptr<UserBackend>> openRedisUserBackend(const RedisUserOptions& options);

}  // namespace sipwake::location
