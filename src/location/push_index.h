// The in-memory push-binding index every LocationStore serves push lookups from: AOR -> immutable
// snapshot of its push records, and device_key -> AOR, in lock-sharded hash maps (the same scheme
// as BindingIndex): a lookup copies a shared_ptr under a shard's shared lock, never a global one.
//
// Writes go through a Batch, staged on top of the index and published after the store's
// persistence committed it (or thrown away when it did not). One writer at a time: the store
// serialises its Batches and sweepExpired().
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "location/location_store.h"

namespace sipwake::location {

class PushIndex {
 public:
  using Records = std::shared_ptr<const std::vector<PushRecord>>;

  explicit PushIndex(std::size_t shard_count = 64);
  PushIndex(const PushIndex&) = delete;
  PushIndex& operator=(const PushIndex&) = delete;

  // Reads. Thread: any.
  std::vector<PushRecord> byAor(std::string_view aor, SysSeconds now) const;
  std::optional<PushRecord> byDevice(std::string_view device_key) const;
  std::vector<PushRecord> live(SysSeconds now) const;
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }

  // What persistence must do for a batch, in order: delete the row of `device_key`, or insert
  // `record` (after deleting any row with its device_key or its (aor, identity)).
  struct Write {
    bool insert = false;
    std::string device_key;  // !insert
    PushRecord record;       // insert
  };

  // Push operations staged over the index. REQUIRES: the index is not written while a Batch
  // is alive except by that Batch's publish().
  class Batch {
   public:
    explicit Batch(const PushIndex& index) : index_(index) {}
    // Applies `op` of a change to `aor`; appends to writes().
    void apply(const std::string& aor, const PushOp& op);
    // Adds a record read from storage (load): no write.
    void loaded(PushRecord record);
    // Makes `records` the AOR's whole set, as read from shared storage (a cache refresh): no
    // write. A device held under another AOR moves here.
    void replaceAor(const std::string& aor, std::vector<PushRecord> records);
    // The AOR's records as staged (expired ones included).
    const std::vector<PushRecord>& staged(const std::string& aor) { return recordsOf(aor); }
    const std::vector<Write>& writes() const { return writes_; }
    // Records displaced from another AOR or identity by upserts (moves), for logging.
    const std::vector<PushRecord>& moved() const { return moved_; }
    // Makes the staged state visible in `index` (the one the Batch was made from).
    void publish(PushIndex& index);

   private:
    std::vector<PushRecord>& recordsOf(const std::string& aor);
    std::optional<std::string> aorOf(const std::string& device_key);
    void erase(const std::string& device_key);  // from memory only
    void put(PushRecord record);

    const PushIndex& index_;
    std::unordered_map<std::string, std::vector<PushRecord>> aors_;  // staged AOR states
    std::unordered_map<std::string, std::optional<std::string>> devices_;  // staged device->AOR
    std::vector<Write> writes_;
    std::vector<PushRecord> moved_;
  };

  // Drops records with expires_at <= now; returns how many. Same writer rule as Batch.
  std::size_t sweepExpired(SysSeconds now);

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  template <typename V>
  using Map = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;
  struct Shard {
    mutable std::shared_mutex mu;
    Map<Records> by_aor;
    Map<std::string> aor_of_device;
  };

  Shard& shardFor(std::string_view key) const;
  Records get(std::string_view aor) const;
  std::optional<std::string> aorOfDevice(std::string_view device_key) const;
  void putAor(const std::string& aor, std::vector<PushRecord> records);
  void putDevice(const std::string& device_key, const std::optional<std::string>& aor);

  std::size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace sipwake::location
