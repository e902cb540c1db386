// The building blocks of the limiters (RateLimiter, UserLimiter, SourceThrottle): a hash map that
// keeps its entries in least-recently-used order and never holds more than its capacity, and a
// sum over locked shards.
// Thread: LruTable is not thread-safe; the limiters shard it and lock each shard.
#pragma once

#include <cstddef>
#include <functional>
#include <iterator>
#include <list>
#include <mutex>
#include <unordered_map>

namespace sipwake::auth {

template <typename K, typename V, typename Hash = std::hash<K>>
class LruTable {
 public:
  explicit LruTable(std::size_t capacity = 1) : capacity_(capacity > 0 ? capacity : 1) {}
  void setCapacity(std::size_t capacity) { capacity_ = capacity > 0 ? capacity : 1; }

  // The value of `key` (its recency unchanged); nullptr when absent.
  const V* peek(const K& key) const {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second.value;
  }
  // The value of `key`, made the most recent; nullptr when absent.
  V* find(const K& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.end(), lru_, it->second.lru);
    return &it->second.value;
  }
  // The value of `key`, made the most recent; a value-initialised one when absent (the least
  // recent entry is forgotten first when the table is full). `*created` tells which.
  V& findOrCreate(const K& key, bool* created = nullptr) {
    V* v = find(key);
    if (created != nullptr) *created = v == nullptr;
    if (v != nullptr) return *v;
    if (map_.size() >= capacity_) {
      map_.erase(lru_.front());
      lru_.pop_front();
    }
    lru_.push_back(key);
    Slot& slot = map_[key];
    slot.lru = std::prev(lru_.end());
    return slot.value;
  }
  // Forgets least recent entries while `idle(value)` holds, stopping at `keep`. Each entry is
  // forgotten once, so calling this before each update stays O(1) amortised.
  template <typename Idle>
  void dropIdle(const K& keep, Idle idle) {
    while (!lru_.empty() && !(lru_.front() == keep)) {
      auto front = map_.find(lru_.front());
      if (!idle(front->second.value)) break;
      map_.erase(front);
      lru_.pop_front();
    }
  }
  std::size_t size() const { return map_.size(); }

 private:
  struct Slot {
    V value{};
    typename std::list<K>::iterator lru;
  };
  std::unordered_map<K, Slot, Hash> map_;
  std::list<K> lru_;  // front: least recently used
  std::size_t capacity_;
};

// Sum of `count(shard)` over `n` shards, each read under its `mu`.
template <typename Shard, typename Count>
std::size_t sumOverShards(Shard* shards, std::size_t n, Count count) {
  std::size_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::lock_guard lock(shards[i].mu);
    sum += count(shards[i]);
  }
  return sum;
}

}  // namespace sipwake::auth
