// Auth-token caches for the push services, under an injected clock.
//
// ApnsTokenCache: APNs wants the provider JWT renewed at least every 60 minutes (older → 403
// ExpiredProviderToken) and no more than once per 20 minutes (→ 429 TooManyProviderTokenUpdates).
// The cache mints a token only when (a) there is none, (b) the current one is at least
// `refresh_after` old (clamped to [20, 55] min), or (c) it was invalidated after a 403
// ExpiredProviderToken AND is at least 20 min old. So two mints are never less than 20 min apart,
// whatever responses arrive. Ages are measured on the monotonic clock (a wall-clock jump cannot
// make a token look young); `iat` is wall time.
//
// OAuthTokenCache: holds the FCM OAuth2 access token; refresh is due `refresh_margin` (5 min)
// before expiry, or at half-life for short-lived tokens; the HTTP exchange is the caller's.
//
// Thread: not thread-safe; each cache lives on one event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "push/jwt.h"

namespace sipwake::push {

using namespace std::chrono_literals;

// Both clocks the push layer needs: monotonic for ages and timers, wall for JWT iat/exp and
// payload timestamps.
class PushClock {
 public:
  virtual ~PushClock() = default;
  virtual TimePoint monotonicNow() const = 0;
  virtual std::int64_t unixSeconds() const = 0;
  virtual std::int64_t unixMillis() const = 0;
};

class SystemPushClock final : public PushClock {
 public:
  TimePoint monotonicNow() const override { return Clock::now(); }
  std::int64_t unixSeconds() const override;
  std::int64_t unixMillis() const override;
};

// Time moves only when told to. advance() moves both clocks; jumpWall() only the wall clock.
class FakePushClock final : public PushClock {
 public:
  explicit FakePushClock(std::int64_t unix_ms = 1'700'000'000'000) : unix_ms_(unix_ms) {}
  TimePoint monotonicNow() const override { return mono_; }
  std::int64_t unixSeconds() const override { return unix_ms_ / 1000; }
  std::int64_t unixMillis() const override { return unix_ms_; }
  void advance(Duration d) {
    mono_ += d;
    unix_ms_ += std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  }
  void jumpWall(std::chrono::milliseconds d) { unix_ms_ += d.count(); }

 private:
  TimePoint mono_{};
  std::int64_t unix_ms_;
};

class ApnsTokenCache {
 public:
  static constexpr Duration kMinReuse = 20min;  // APNs: at most one new token per 20 min
  static constexpr Duration kMaxAge = 60min;    // APNs: a token older than this is refused
  static constexpr Duration kMaxRefreshAfter = 55min;
  static constexpr Duration kDefaultRefreshAfter = 40min;

  // REQUIRES: `clock` outlives the cache. `key` is the .p8 P-256 private key.
  ApnsTokenCache(Key key, std::string key_id, std::string team_id, const PushClock& clock,
                 Duration refresh_after = kDefaultRefreshAfter);

  // The bearer token to send now; mints one when due (see the file comment).
  Result<std::string> token();
  // APNs answered 403 ExpiredProviderToken to a request carrying `rejected`. Stale rejections
  // (for a token already replaced) are ignored. The replacement is minted by the next token()
  // once the 20-minute floor allows it.
  void invalidate(std::string_view rejected);

  Duration refreshAfter() const { return refresh_after_; }
  std::uint64_t mintCount() const { return mints_; }
  // Age of the current token; nullopt when none was minted yet.
  std::optional<Duration> age() const;

 private:
  Key key_;
  std::string key_id_;
  std::string team_id_;
  const PushClock& clock_;
  Duration refresh_after_;
  std::string current_;
  TimePoint minted_at_{};
  bool invalidated_ = false;
  std::uint64_t mints_ = 0;
};

struct OAuthToken {
  std::string access_token;
  std::string token_type;  // "Bearer"
  std::chrono::seconds expires_in{0};
};

// Parses the token endpoint's reply. Non-2xx → kPermissionDenied (4xx: bad credentials/grant) or
// kUnavailable (429, 5xx), with the endpoint's "error"/"error_description" in the message. A 200
// with a missing/ill-typed field → kInvalidArgument naming the field.
Result<OAuthToken> parseOAuthTokenResponse(int http_status, std::string_view body);

class OAuthTokenCache {
 public:
  static constexpr Duration kDefaultRefreshMargin = 5min;

  // REQUIRES: `clock` outlives the cache.
  explicit OAuthTokenCache(const PushClock& clock, Duration refresh_margin = kDefaultRefreshMargin)
      : clock_(clock), margin_(refresh_margin) {}

  // Stores a freshly obtained token; it was obtained "now".
  void store(OAuthToken token);
  // The access token if one is held, not invalidated and not yet expired.
  std::optional<std::string> accessToken() const;
  // True when a new token should be fetched: none, invalidated, or within the margin of expiry.
  bool refreshNeeded() const;
  // FCM answered 401 UNAUTHENTICATED: drop the token.
  void invalidate() { valid_ = false; }

 private:
  const PushClock& clock_;
  Duration margin_;
  std::string token_;
  TimePoint expires_at_{};
  TimePoint refresh_at_{};
  bool valid_ = false;
};

}  // namespace sipwake::push
