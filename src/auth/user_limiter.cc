#include "auth/user_limiter.h"

#include <algorithm>
#include <functional>

namespace sipwake::auth {
namespace {

// The slot of `key`, moved to the back of the LRU; created (evicting the least recently used
// entry when `capacity` is reached) when absent and `create`. nullptr when absent and !create.
template <typename Map>
auto* touch(Map& m, const std::string& key, std::size_t capacity, bool create) {
  auto it = m.map.find(key);
  if (it != m.map.end()) {
    m.lru.splice(m.lru.end(), m.lru, it->second.lru);
    return &it->second.value;
  }
  if (!create) return static_cast<decltype(&it->second.value)>(nullptr);
  if (m.map.size() >= capacity && !m.lru.empty()) {
    m.map.erase(m.lru.front());
    m.lru.pop_front();
  }
  m.lru.push_back(key);
  auto& slot = m.map[key];
  slot.lru = std::prev(m.lru.end());
  return &slot.value;
}

template <std::size_t N>
bool contains(const std::array<SourceKey, N>& a, std::uint8_t count, const SourceKey& k) {
  return std::find(a.begin(), a.begin() + count, k) != a.begin() + count;
}

}  // namespace

UserLimiter::UserLimiter(UserLimiterConfig config)
    : config_(config),
      per_shard_capacity_(config.capacity / kShards > 0 ? config.capacity / kShards : 1),
      shards_(std::make_unique<Shard[]>(kShards)) {
  if (config_.max_delay < config_.delay) config_.max_delay = config_.delay;
}

std::string UserLimiter::keyOf(std::string_view user, std::string_view realm) {
  std::string key;
  key.reserve(user.size() + 1 + realm.size());
  key.append(user).push_back('\0');
  key.append(realm);
  return key;
}

UserLimiter::Shard& UserLimiter::shardOf(const std::string& key) {
  return shards_[std::hash<std::string>{}(key) % kShards];
}

bool UserLimiter::idle(const Failing& f, TimePoint now) const {
  return now >= std::max(f.last_failure, f.delay_until) + config_.max_delay;
}

UserLimiter::Admission UserLimiter::admit(std::string_view user, std::string_view realm,
                                          const SourceKey& source, TimePoint now) {
  Admission a;
  if (config_.max_failures == 0) return a;
  const std::string key = keyOf(user, realm);
  Shard& sh = shardOf(key);
  std::lock_guard lock(sh.mu);
  Failing* f = touch(sh.failing, key, per_shard_capacity_, false);
  if (f == nullptr || now >= f->delay_until) return a;
  if (contains(f->sources, f->count, source)) {
    a.check = false;
  } else if (const Known* k = touch(sh.known, key, per_shard_capacity_, false);
             k != nullptr && contains(k->sources, k->count, source)) {
    a.known_source = true;
  } else if (!f->fresh_used) {
    f->fresh_used = true;
    a.fresh_check = true;
  } else {
    a.check = false;
  }
  if (!a.check) a.retry_after = f->delay_until - now;
  return a;
}

bool UserLimiter::knownSource(std::string_view user, std::string_view realm,
                              const SourceKey& source) {
  const std::string key = keyOf(user, realm);
  Shard& sh = shardOf(key);
  std::lock_guard lock(sh.mu);
  const Known* k = touch(sh.known, key, per_shard_capacity_, false);
  return k != nullptr && contains(k->sources, k->count, source);
}

bool UserLimiter::recordFailure(std::string_view user, std::string_view realm,
                                const SourceKey& source, TimePoint now) {
  if (config_.max_failures == 0) return false;
  const std::string key = keyOf(user, realm);
  Shard& sh = shardOf(key);
  std::lock_guard lock(sh.mu);
  // Each entry is dropped at most once, so this stays O(1) amortised.
  while (!sh.failing.lru.empty() && sh.failing.lru.front() != key) {
    auto front = sh.failing.map.find(sh.failing.lru.front());
    if (!idle(front->second.value, now)) break;
    sh.failing.map.erase(front);
    sh.failing.lru.pop_front();
  }
  if (Known* k = touch(sh.known, key, per_shard_capacity_, false)) {
    auto end = std::remove(k->sources.begin(), k->sources.begin() + k->count, source);
    k->count = static_cast<std::uint8_t>(end - k->sources.begin());
  }
  Failing* f = touch(sh.failing, key, per_shard_capacity_, true);
  if (f->last_failure != TimePoint{} && idle(*f, now)) *f = Failing{};  // forgotten
  if (f->last_failure == TimePoint{}) f->first_failure = now;
  f->last_failure = now;
  if (!contains(f->sources, f->count, source)) {
    f->sources[f->next] = source;
    f->next = static_cast<std::uint8_t>((f->next + 1) % kFailingSources);
    if (f->count < kFailingSources) ++f->count;
  }
  if (f->delay > Duration{0}) {
    if (now >= f->delay_until) f->fresh_used = false;  // a new delay
    f->delay = std::min<Duration>(2 * f->delay, config_.max_delay);
    f->delay_until = now + f->delay;
    return true;
  }
  if (now - f->first_failure >= config_.max_delay) {
    f->first_failure = now;
    f->failures = 0;
  }
  if (++f->failures < config_.max_failures) return false;
  f->delay = config_.delay;
  f->delay_until = now + f->delay;
  f->fresh_used = false;
  return true;
}

void UserLimiter::recordSuccess(std::string_view user, std::string_view realm,
                                const SourceKey& source) {
  if (config_.max_failures == 0) return;
  const std::string key = keyOf(user, realm);
  Shard& sh = shardOf(key);
  std::lock_guard lock(sh.mu);
  if (Failing* f = touch(sh.failing, key, per_shard_capacity_, false)) {
    auto end = std::remove(f->sources.begin(), f->sources.begin() + f->count, source);
    f->count = static_cast<std::uint8_t>(end - f->sources.begin());
    f->next = static_cast<std::uint8_t>(f->count % kFailingSources);
  }
  Known* k = touch(sh.known, key, per_shard_capacity_, true);
  // Most recent first: shift the others down, dropping `source` (or the oldest).
  auto end = std::remove(k->sources.begin(), k->sources.begin() + k->count, source);
  std::size_t n = std::min<std::size_t>(end - k->sources.begin(), kKnownSources - 1);
  std::copy_backward(k->sources.begin(), k->sources.begin() + n, k->sources.begin() + n + 1);
  k->sources[0] = source;
  k->count = static_cast<std::uint8_t>(n + 1);
}

UserLimiter::Tracked UserLimiter::tracked() const {
  Tracked t;
  for (std::size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    t.failing += shards_[i].failing.map.size();
    t.known += shards_[i].known.map.size();
  }
  return t;
}

}  // namespace sipwake::auth
