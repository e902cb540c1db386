#include "location/binding_index.h"

#include <mutex>

#include "common/status.h"

namespace sipwake::location {

BindingIndex::BindingIndex(std::size_t shard_count)
    : shard_count_(shard_count), shards_(std::make_unique<Shard[]>(shard_count)) {
  SIPWAKE_CHECK(shard_count > 0);
}

BindingIndex::Shard& BindingIndex::shardFor(std::string_view aor) const {
  // The map hashes again with the same function; mixing the high bits keeps the shard choice
  // independent of the bucket choice inside the shard.
  std::size_t h = StringHash{}(aor);
  h ^= h >> 29;
  return shards_[h % shard_count_];
}

BindingIndex::Snapshot BindingIndex::get(std::string_view aor) const {
  Shard& shard = shardFor(aor);
  std::shared_lock lock(shard.mu);
  auto it = shard.map.find(aor);
  return it == shard.map.end() ? nullptr : it->second;
}

void BindingIndex::storeLocked(Shard& shard, std::string_view aor, Snapshot bindings) {
  auto it = shard.map.find(aor);
  std::size_t old_count = it == shard.map.end() ? 0 : it->second->size();
  std::size_t new_count = bindings ? bindings->size() : 0;
  if (new_count == 0) {
    if (it != shard.map.end()) shard.map.erase(it);
  } else if (it == shard.map.end()) {
    shard.map.emplace(std::string(aor), std::move(bindings));
  } else {
    it->second = std::move(bindings);
  }
  size_.fetch_add(new_count - old_count, std::memory_order_relaxed);  // modular: may "subtract"
}

void BindingIndex::put(std::string_view aor, Snapshot bindings) {
  Shard& shard = shardFor(aor);
  Snapshot old;  // released after the lock: freeing a large vector need not block readers
  {
    std::unique_lock lock(shard.mu);
    auto it = shard.map.find(aor);
    if (it != shard.map.end()) old = it->second;
    storeLocked(shard, aor, std::move(bindings));
  }
}

void BindingIndex::update(std::string_view aor,
                          const std::function<Snapshot(const Snapshot&)>& fn) {
  Shard& shard = shardFor(aor);
  Snapshot old;
  {
    std::unique_lock lock(shard.mu);
    auto it = shard.map.find(aor);
    if (it != shard.map.end()) old = it->second;
    Snapshot next = fn(old);
    if (next == old) return;
    storeLocked(shard, aor, std::move(next));
  }
}

std::vector<Binding> BindingIndex::lookup(std::string_view aor, SysSeconds now) const {
  Snapshot snap = get(aor);
  std::vector<Binding> out;
  if (!snap) return out;
  out.reserve(snap->size());
  for (const Binding& b : *snap) {
    if (b.expires_at > now) out.push_back(b);
  }
  return out;
}

std::size_t BindingIndex::sweepExpired(SysSeconds now) {
  std::size_t removed = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    std::vector<Snapshot> garbage;  // freed after the lock is released
    std::unique_lock lock(shard.mu);
    for (auto it = shard.map.begin(); it != shard.map.end();) {
      const std::vector<Binding>& cur = *it->second;
      std::size_t dead = 0;
      for (const Binding& b : cur) dead += b.expires_at <= now ? 1 : 0;
      if (dead == 0) {
        ++it;
        continue;
      }
      removed += dead;
      size_.fetch_sub(dead, std::memory_order_relaxed);
      garbage.push_back(it->second);
      if (dead == cur.size()) {
        it = shard.map.erase(it);
        continue;
      }
      auto next = std::make_shared<std::vector<Binding>>();
      next->reserve(cur.size() - dead);
      for (const Binding& b : cur) {
        if (b.expires_at > now) next->push_back(b);
      }
      it->second = std::move(next);
      ++it;
    }
    lock.unlock();
  }
  return removed;
}

std::size_t BindingIndex::aorCount() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::shared_lock lock(shards_[i].mu);
    n += shards_[i].map.size();
  }
  return n;
}

}  // namespace sipwake::location
