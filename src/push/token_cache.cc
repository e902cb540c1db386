#include "push/token_cache.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace sipwake::push {

using Json = nlohmann::json;

std::int64_t SystemPushClock::unixSeconds() const {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t SystemPushClock::unixMillis() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ApnsTokenCache::ApnsTokenCache(Key key, std::string key_id, std::string team_id,
                               const PushClock& clock, Duration refresh_after)
    : key_(std::move(key)),
      key_id_(std::move(key_id)),
      team_id_(std::move(team_id)),
      clock_(clock),
      refresh_after_(std::clamp<Duration>(refresh_after, kMinReuse, kMaxRefreshAfter)) {}

std::optional<Duration> ApnsTokenCache::age() const {
  if (current_.empty()) return std::nullopt;
  return clock_.monotonicNow() - minted_at_;
}

Result<std::string> ApnsTokenCache::token() {
  TimePoint now = clock_.monotonicNow();
  if (!current_.empty()) {
    Duration age = now - minted_at_;
    bool due = age >= refresh_after_ || (invalidated_ && age >= kMinReuse);
    if (!due) return current_;
  }
  Result<std::string> jwt = makeApnsJwt(key_, key_id_, team_id_, clock_.unixSeconds());
  if (!jwt.isOk()) return jwt.status();
  current_ = *jwt;
  minted_at_ = now;
  invalidated_ = false;
  ++mints_;
  return current_;
}

void ApnsTokenCache::invalidate(std::string_view rejected) {
  if (!current_.empty() && rejected == current_) invalidated_ = true;
}

Result<OAuthToken> parseOAuthTokenResponse(int http_status, std::string_view body) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  bool is_obj = !j.is_discarded() && j.is_object();
  if (http_status < 200 || http_status > 299) {
    std::string msg = "token endpoint: HTTP " + std::to_string(http_status);
    if (is_obj) {
      if (auto e = j.find("error"); e != j.end() && e->is_string()) {
        msg += ": " + e->get<std::string>().substr(0, 64);  // an OAuth error code; bounded
      }
      if (auto d = j.find("error_description"); d != j.end() && d->is_string()) {
        msg += " (" + d->get<std::string>().substr(0, 200) + ")";
      }
    }
    bool transient = http_status == 429 || http_status >= 500;
    return Status(transient ? StatusCode::kUnavailable : StatusCode::kPermissionDenied, msg);
  }
  if (!is_obj) return invalidArgument("token endpoint: reply is not a JSON object");
  OAuthToken t;
  auto at = j.find("access_token");
  if (at == j.end()) return invalidArgument("token endpoint: access_token missing");
  if (!at->is_string() || at->get_ref<const std::string&>().empty()) {
    return invalidArgument("token endpoint: access_token is not a non-empty string");
  }
  t.access_token = at->get<std::string>();
  auto tt = j.find("token_type");
  if (tt == j.end()) return invalidArgument("token endpoint: token_type missing");
  if (!tt->is_string()) return invalidArgument("token endpoint: token_type is not a string");
  t.token_type = tt->get<std::string>();
  std::string lowered = t.token_type;
  std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lowered != "bearer") return invalidArgument("token endpoint: token_type is not Bearer");
  auto ex = j.find("expires_in");
  if (ex == j.end()) return invalidArgument("token endpoint: expires_in missing");
  if (!ex->is_number_integer() || ex->get<std::int64_t>() <= 0 || ex->get<std::int64_t>() > 86400) {
    return invalidArgument("token endpoint: expires_in is not seconds in 1..86400");
  }
  t.expires_in = std::chrono::seconds(ex->get<std::int64_t>());
  return t;
}

void OAuthTokenCache::store(OAuthToken token) {
  TimePoint now = clock_.monotonicNow();
  Duration lifetime = token.expires_in;
  token_ = std::move(token.access_token);
  expires_at_ = now + lifetime;
  // Refresh `margin_` before expiry; for tokens living less than twice the margin, at half-life,
  // so a short token is not "due" the moment it arrives.
  refresh_at_ = now + std::max<Duration>(lifetime - margin_, lifetime / 2);
  valid_ = true;
}

std::optional<std::string> OAuthTokenCache::accessToken() const {
  if (!valid_ || clock_.monotonicNow() >= expires_at_) return std::nullopt;
  return token_;
}

bool OAuthTokenCache::refreshNeeded() const {
  return !valid_ || clock_.monotonicNow() >= refresh_at_;
}

}  // namespace sipwake::push
