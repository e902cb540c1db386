#include "location/push_index.h"

#include <algorithm>
#include <mutex>

#include "common/status.h"

namespace sipwake::location {

PushIndex::PushIndex(std::size_t shard_count)
    : shard_count_(shard_count), shards_(std::make_unique<Shard[]>(shard_count)) {
  SIPWAKE_CHECK(shard_count > 0);
}

PushIndex::Shard& PushIndex::shardFor(std::string_view key) const {
  std::size_t h = StringHash{}(key);
  h ^= h >> 29;
  return shards_[h % shard_count_];
}

PushIndex::Records PushIndex::get(std::string_view aor) const {
  Shard& shard = shardFor(aor);
  std::shared_lock lock(shard.mu);
  auto it = shard.by_aor.find(aor);
  return it == shard.by_aor.end() ? nullptr : it->second;
}

std::optional<std::string> PushIndex::aorOfDevice(std::string_view device_key) const {
  Shard& shard = shardFor(device_key);
  std::shared_lock lock(shard.mu);
  auto it = shard.aor_of_device.find(device_key);
  if (it == shard.aor_of_device.end()) return std::nullopt;
  return it->second;
}

std::vector<PushRecord> PushIndex::byAor(std::string_view aor, SysSeconds now) const {
  std::vector<PushRecord> out;
  Records records = get(aor);
  if (!records) return out;
  for (const PushRecord& r : *records) {
    if (r.expires_at > now) out.push_back(r);
  }
  return out;
}

std::optional<PushRecord> PushIndex::byDevice(std::string_view device_key) const {
  std::optional<std::string> aor = aorOfDevice(device_key);
  if (!aor) return std::nullopt;
  Records records = get(*aor);
  if (!records) return std::nullopt;
  for (const PushRecord& r : *records) {
    if (r.device_key == device_key) return r;
  }
  return std::nullopt;  // moved between the two reads
}

std::vector<PushRecord> PushIndex::live(SysSeconds now) const {
  std::vector<PushRecord> out;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::shared_lock lock(shards_[i].mu);
    for (const auto& [aor, records] : shards_[i].by_aor) {
      for (const PushRecord& r : *records) {
        if (r.expires_at > now) out.push_back(r);
      }
    }
  }
  return out;
}

void PushIndex::putAor(const std::string& aor, std::vector<PushRecord> records) {
  Shard& shard = shardFor(aor);
  Records old;  // freed after the lock
  std::unique_lock lock(shard.mu);
  auto it = shard.by_aor.find(aor);
  std::size_t old_count = 0;
  if (it != shard.by_aor.end()) {
    old = it->second;
    old_count = old->size();
  }
  const std::size_t new_count = records.size();
  if (records.empty()) {
    if (it != shard.by_aor.end()) shard.by_aor.erase(it);
  } else {
    auto snap = std::make_shared<const std::vector<PushRecord>>(std::move(records));
    if (it == shard.by_aor.end()) {
      shard.by_aor.emplace(aor, std::move(snap));
    } else {
      it->second = std::move(snap);
    }
  }
  size_.fetch_add(new_count - old_count, std::memory_order_relaxed);  // modular
}

void PushIndex::putDevice(const std::string& device_key, const std::optional<std::string>& aor) {
  Shard& shard = shardFor(device_key);
  std::unique_lock lock(shard.mu);
  if (aor) {
    shard.aor_of_device.insert_or_assign(device_key, *aor);
  } else {
    shard.aor_of_device.erase(device_key);
  }
}

std::size_t PushIndex::sweepExpired(SysSeconds now) {
  Batch batch(*this);
  std::vector<std::pair<std::string, std::string>> expired;  // aor, device_key
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::shared_lock lock(shards_[i].mu);
    for (const auto& [aor, records] : shards_[i].by_aor) {
      for (const PushRecord& r : *records) {
        if (r.expires_at <= now) expired.emplace_back(aor, r.device_key);
      }
    }
  }
  for (const auto& [aor, key] : expired) {
    PushOp op;
    op.kind = PushOp::Kind::kRemoveDevice;
    op.record.device_key = key;
    batch.apply(aor, op);
  }
  batch.publish(*this);
  return expired.size();
}

std::vector<PushRecord>& PushIndex::Batch::recordsOf(const std::string& aor) {
  auto it = aors_.find(aor);
  if (it != aors_.end()) return it->second;
  Records current = index_.get(aor);
  return aors_[aor] = current ? *current : std::vector<PushRecord>{};
}

std::optional<std::string> PushIndex::Batch::aorOf(const std::string& device_key) {
  auto it = devices_.find(device_key);
  if (it != devices_.end()) return it->second;
  return index_.aorOfDevice(device_key);
}

void PushIndex::Batch::erase(const std::string& device_key) {
  std::optional<std::string> aor = aorOf(device_key);
  if (!aor) return;
  std::erase_if(recordsOf(*aor),
                [&device_key](const PushRecord& r) { return r.device_key == device_key; });
  devices_[device_key] = std::nullopt;
}

void PushIndex::Batch::put(PushRecord record) {
  erase(record.device_key);
  devices_[record.device_key] = record.aor;
  std::string aor = record.aor;
  recordsOf(aor).push_back(std::move(record));
}

void PushIndex::Batch::loaded(PushRecord record) { put(std::move(record)); }

void PushIndex::Batch::replaceAor(const std::string& aor, std::vector<PushRecord> records) {
  std::vector<std::string> keys;
  for (const PushRecord& o : recordsOf(aor)) keys.push_back(o.device_key);
  for (const std::string& k : keys) erase(k);
  for (PushRecord& r : records) put(std::move(r));
}

void PushIndex::Batch::apply(const std::string& aor, const PushOp& op) {
  auto removeKey = [this](const std::string& key) {
    erase(key);
    Write w;
    w.device_key = key;
    writes_.push_back(std::move(w));
  };
  switch (op.kind) {
    case PushOp::Kind::kUpsert: {
      PushRecord r = op.record;
      r.aor = aor;
      std::vector<PushRecord> displaced;
      if (std::optional<std::string> other = aorOf(r.device_key)) {
        for (const PushRecord& o : recordsOf(*other)) {
          if (o.device_key == r.device_key) displaced.push_back(o);
        }
      }
      for (const PushRecord& o : recordsOf(aor)) {
        if (o.identity == r.identity && o.device_key != r.device_key) displaced.push_back(o);
      }
      for (const PushRecord& o : displaced) {
        if (o.aor != r.aor || o.identity != r.identity) moved_.push_back(o);
        erase(o.device_key);
      }
      put(r);
      Write w;
      w.insert = true;
      w.record = std::move(r);
      writes_.push_back(std::move(w));
      return;
    }
    case PushOp::Kind::kRemoveIdentity: {
      std::vector<std::string> keys;
      for (const PushRecord& o : recordsOf(aor)) {
        if (o.identity == op.record.identity) keys.push_back(o.device_key);
      }
      for (const std::string& k : keys) removeKey(k);
      return;
    }
    case PushOp::Kind::kRemoveDevice: {
      std::optional<std::string> owner = aorOf(op.record.device_key);
      if (!owner) return;
      for (const PushRecord& o : recordsOf(*owner)) {
        if (o.device_key != op.record.device_key) continue;
        if (op.unless_registered_after && o.registered_at > *op.unless_registered_after) return;
        break;
      }
      removeKey(op.record.device_key);
      return;
    }
    case PushOp::Kind::kRemoveAll: {
      std::vector<std::string> keys;
      for (const PushRecord& o : recordsOf(aor)) keys.push_back(o.device_key);
      for (const std::string& k : keys) removeKey(k);
      return;
    }
  }
}

void PushIndex::Batch::publish(PushIndex& index) {
  SIPWAKE_CHECK(&index == &index_);
  // Devices first for additions, so a reader following device -> AOR finds the record once the
  // AOR is published; a removed device's AOR lookup simply finds no record.
  for (auto& [key, aor] : devices_) {
    if (aor) index.putDevice(key, aor);
  }
  for (auto& [aor, records] : aors_) index.putAor(aor, std::move(records));
  for (auto& [key, aor] : devices_) {
    if (!aor) index.putDevice(key, std::nullopt);
  }
  aors_.clear();
  devices_.clear();
}

}  // namespace sipwake::location
