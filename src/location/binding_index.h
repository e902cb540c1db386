// The in-memory binding index every LocationStore serves lookups from: AOR -> immutable snapshot
// of its bindings, in a lock-sharded hash map so that lookups from several event loops rarely
// contend and never wait for a writer longer than a pointer swap.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "location/binding.h"

namespace sipwake::location {

class BindingIndex {
 public:
  // Immutable once published: readers copy the shared_ptr under the shard lock and read outside.
  using Snapshot = std::shared_ptr<const std::vector<Binding>>;

  // REQUIRES: shard_count > 0.
  explicit BindingIndex(std::size_t shard_count = 64);
  BindingIndex(const BindingIndex&) = delete;
  BindingIndex& operator=(const BindingIndex&) = delete;

  // Every stored binding of `aor` (expired ones included), or nullptr. Thread: any.
  Snapshot get(std::string_view aor) const;

  // Replaces the AOR's bindings; a null or empty snapshot erases the AOR. Thread: any, but callers
  // that read-modify-write must serialise themselves (single writer) or use update().
  void put(std::string_view aor, Snapshot bindings);

  // Read-modify-write under the AOR's shard write lock: `fn(current)` returns the new snapshot
  // (returning `current` unchanged is allowed). `fn` must not call back into this index.
  void update(std::string_view aor, const std::function<Snapshot(const Snapshot&)>& fn);

  // Live bindings (expires_at > now) of `aor`, copied. Thread: any.
  std::vector<Binding> lookup(std::string_view aor, SysSeconds now) const;

  // Drops bindings with expires_at <= now; returns how many. Thread: any.
  std::size_t sweepExpired(SysSeconds now);

  std::size_t size() const { return size_.load(std::memory_order_relaxed); }  // bindings
  std::size_t aorCount() const;

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    mutable std::shared_mutex mu;
    std::unordered_map<std::string, Snapshot, StringHash, std::equal_to<>> map;
  };

  Shard& shardFor(std::string_view aor) const;
  // REQUIRES: shard.mu held exclusively.
  void storeLocked(Shard& shard, std::string_view aor, Snapshot bindings);

  std::size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace sipwake::location
