#include "auth/user_limiter.h"

#include <algorithm>
#include <functional>

namespace sipwake::auth {
namespace {

template <std::size_t N>
bool contains(const std::array<SourceKey, N>& a, std::uint8_t count, const SourceKey& k) {
  return std::find(a.begin(), a.begin() + count, k) != a.begin() + count;
}

// Removes `k` from the first `*count` of `a`, keeping the order of the others.
template <std::size_t N>
void remove(std::array<SourceKey, N>& a, std::uint8_t* count, const SourceKey& k) {
  *count = static_cast<std::uint8_t>(std::remove(a.begin(), a.begin() + *count, k) - a.begin());
}

}  // namespace

UserLimiter::UserLimiter(UserLimiterConfig config)
    : config_(config),
      per_shard_capacity_(config.capacity / kShards > 0 ? config.capacity / kShards : 1),
      shards_(std::make_unique<Shard[]>(kShards)),
      guessers_(std::make_unique<GuesserShard[]>(kShards)) {
  if (config_.max_delay < config_.delay) config_.max_delay = config_.delay;
  for (std::size_t i = 0; i < kShards; ++i) {
    shards_[i].failing.setCapacity(per_shard_capacity_);
    shards_[i].known.setCapacity(per_shard_capacity_);
    guessers_[i].last_guess.setCapacity(per_shard_capacity_);
  }
}

UserLimiter::GuesserShard& UserLimiter::guesserShardOf(const SourceKey& source) {
  return guessers_[SourceKeyHash{}(source) % kShards];
}

bool UserLimiter::guessing(const SourceKey& source, TimePoint now) {
  GuesserShard& g = guesserShardOf(source);
  std::lock_guard lock(g.mu);
  const TimePoint* last = g.last_guess.peek(source);
  return last != nullptr && now - *last < config_.max_delay;
}

void UserLimiter::markGuessing(const SourceKey& source, TimePoint now) {
  GuesserShard& g = guesserShardOf(source);
  std::lock_guard lock(g.mu);
  g.last_guess.findOrCreate(source) = now;
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
  Failing* f = sh.failing.find(key);
  if (f == nullptr || now >= f->delay_until) return a;
  if (contains(f->sources, f->count, source)) {
    a.check = false;
  } else if (const Known* k = sh.known.peek(key);
             k != nullptr && contains(k->sources, k->count, source)) {
    a.known_source = true;
  } else if (!guessing(source, now)) {
    a.fresh_check = true;
  } else {
    a.check = false;
  }
  if (!a.check) {
    a.retry_after = f->delay_until - now;
    markGuessing(source, now);
  }
  return a;
}

bool UserLimiter::knownSource(std::string_view user, std::string_view realm,
                              const SourceKey& source) {
  const std::string key = keyOf(user, realm);
  Shard& sh = shardOf(key);
  std::lock_guard lock(sh.mu);
  const Known* k = sh.known.peek(key);
  return k != nullptr && contains(k->sources, k->count, source);
}

bool UserLimiter::recordFailure(std::string_view user, std::string_view realm,
                                const SourceKey& source, TimePoint now) {
  if (config_.max_failures == 0) return false;
  const std::string key = keyOf(user, realm);
  Shard& sh = shardOf(key);
  std::lock_guard lock(sh.mu);
  sh.failing.dropIdle(key, [&](const Failing& f) { return idle(f, now); });
  if (Known* k = sh.known.find(key)) remove(k->sources, &k->count, source);
  bool created = false;
  Failing* f = &sh.failing.findOrCreate(key, &created);
  if (!created && idle(*f, now)) *f = Failing{};  // forgotten: starts again
  if (f->last_failure == TimePoint{}) f->first_failure = now;
  f->last_failure = now;
  if (!contains(f->sources, f->count, source)) {
    f->sources[f->next] = source;
    f->next = static_cast<std::uint8_t>((f->next + 1) % kFailingSources);
    if (f->count < kFailingSources) ++f->count;
  }
  markGuessing(source, now);
  if (f->delay > Duration{0}) {
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
  return true;
}

void UserLimiter::recordSuccess(std::string_view user, std::string_view realm,
                                const SourceKey& source) {
  if (config_.max_failures == 0) return;
  const std::string key = keyOf(user, realm);
  Shard& sh = shardOf(key);
  std::lock_guard lock(sh.mu);
  if (Failing* f = sh.failing.find(key)) {
    remove(f->sources, &f->count, source);
    f->next = static_cast<std::uint8_t>(f->count % kFailingSources);
  }
  Known* k = &sh.known.findOrCreate(key);
  // Most recent first: shift the others down, dropping `source` (or the oldest).
  remove(k->sources, &k->count, source);
  std::size_t n = std::min<std::size_t>(k->count, kKnownSources - 1);
  std::copy_backward(k->sources.begin(), k->sources.begin() + n, k->sources.begin() + n + 1);
  k->sources[0] = source;
  k->count = static_cast<std::uint8_t>(n + 1);
}

UserLimiter::Tracked UserLimiter::tracked() const {
  Tracked t;
  t.failing =
      sumOverShards(shards_.get(), kShards, [](const Shard& s) { return s.failing.size(); });
  t.known = sumOverShards(shards_.get(), kShards, [](const Shard& s) { return s.known.size(); });
  return t;
}

}  // namespace sipwake::auth
