// A token bucket, the rate limit every per-source / per-device budget uses (auth::SourceThrottle,
// routing::WakeLimits). Plain value, no locking: its owner guards it.
#pragma once

#include <algorithm>
#include <chrono>

#include "common/clock.h"

namespace sipwake {

// `burst` tokens at most, refilled at `per_second` tokens a second.
struct TokenRate {
  double burst = 1;
  double per_second = 1;
};

class TokenBucket {
 public:
  // Tokens available at `now`. A bucket never spent from is full.
  double level(const TokenRate& rate, TimePoint now) const {
    if (tokens_ < 0) return rate.burst;
    const double elapsed = std::chrono::duration<double>(now - at_).count();
    return std::min(rate.burst, tokens_ + std::max(0.0, elapsed) * rate.per_second);
  }
  bool full(const TokenRate& rate, TimePoint now) const { return level(rate, now) >= rate.burst; }
  // Spends one token at `now` (the level may go below zero: the caller checked it first, or
  // charges a debt on purpose).
  void spend(const TokenRate& rate, TimePoint now) {
    tokens_ = level(rate, now) - 1.0;
    at_ = now;
  }
  // Spends one token if there is one; otherwise leaves the bucket as it is.
  bool trySpend(const TokenRate& rate, TimePoint now) {
    if (level(rate, now) < 1.0) return false;
    spend(rate, now);
    return true;
  }
  // Time until one token is available (zero if one is, or if the bucket never refills).
  Duration untilOne(const TokenRate& rate, TimePoint now) const {
    const double missing = 1.0 - level(rate, now);
    if (missing <= 0 || rate.per_second <= 0) return Duration::zero();
    return std::chrono::duration_cast<Duration>(
        std::chrono::duration<double>(missing / rate.per_second));
  }

 private:
  double tokens_ = -1;  // < 0: never spent from (full)
  TimePoint at_{};
};

}  // namespace sipwake
