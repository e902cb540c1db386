// One input through the parsers of what push services answer (src/push): the APNs and FCM
// response bodies (JSON), FCM's Retry-After header and the OAuth 2.0 token endpoint's reply,
// with the invariants that must hold for any input. Used by the libFuzzer target
// (fuzz_push_response.cc) and by the unit test that replays its seed corpus.
//
// Input: "<kind> <status>\n<rest>", kind one of apns, fcm, oauth, retry-after. For fcm, <rest>
// is "<Retry-After value>\n<body>"; for retry-after it is the header value; otherwise the body.
// Any other input is an APNs body with status 400.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "push/apns.h"
#include "push/fcm.h"
#include "push/token_cache.h"

namespace sipwake::push::fuzz {

[[noreturn]] inline void pushInvariantFailed(const char* what, int line) {
  std::fprintf(stderr, "push response fuzz invariant violated (line %d): %s\n", line, what);
  std::abort();
}
#define SIPWAKE_PUSH_FUZZ_CHECK(cond)                                         \
  do {                                                                        \
    if (!(cond)) ::sipwake::push::fuzz::pushInvariantFailed(#cond, __LINE__); \
  } while (0)

constexpr std::int64_t kNowUnix = 1796083200;  // 2026-12-01, for IMF-fixdate Retry-After
constexpr std::int64_t kMaxRetrySecs = 24 * 3600;

inline void checkRetryAfter(const std::optional<std::chrono::seconds>& s) {
  if (s) SIPWAKE_PUSH_FUZZ_CHECK(s->count() >= 0 && s->count() <= kMaxRetrySecs);
}

inline void exerciseApns(int status, std::string_view body) {
  std::vector<HttpHeader> headers{{"apns-id", "8E5E2D8C-1B6C-4A4A-9F3A-0123456789AB"}};
  apns::Response r = apns::parseResponse(status, body, headers);
  SIPWAKE_PUSH_FUZZ_CHECK(r.status == status);
  SIPWAKE_PUSH_FUZZ_CHECK(r.apns_id == headers[0].value);
  SIPWAKE_PUSH_FUZZ_CHECK(r.reason.size() <= 64);  // bounded: it is logged and counted
  const bool success = status >= 200 && status < 300;
  SIPWAKE_PUSH_FUZZ_CHECK(success == (r.action == PushAction::kOk));
  if (success) SIPWAKE_PUSH_FUZZ_CHECK(r.reason.empty() && !r.timestamp_ms);
}

inline void exerciseFcm(int status, std::string_view rest) {
  const std::size_t nl = rest.find('\n');
  const std::string_view retry_after = nl == std::string_view::npos ? "" : rest.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? rest : rest.substr(nl + 1);
  fcm::Response r = fcm::parseResponse(status, body, retry_after, kNowUnix);
  SIPWAKE_PUSH_FUZZ_CHECK(r.status == status);
  SIPWAKE_PUSH_FUZZ_CHECK(r.rpc_status.size() <= 64 && r.error_code.size() <= 64);
  SIPWAKE_PUSH_FUZZ_CHECK(r.message.size() <= 256);
  const bool success = status >= 200 && status < 300;
  SIPWAKE_PUSH_FUZZ_CHECK(success == (r.action == PushAction::kOk));
  if (r.retry_after) SIPWAKE_PUSH_FUZZ_CHECK(r.action == PushAction::kRetry);
  checkRetryAfter(r.retry_after);
}

inline void exerciseOAuth(int status, std::string_view body) {
  Result<OAuthToken> t = parseOAuthTokenResponse(status, body);
  if (status < 200 || status > 299) {
    SIPWAKE_PUSH_FUZZ_CHECK(!t.isOk());
    const StatusCode want =
        status == 429 || status >= 500 ? StatusCode::kUnavailable : StatusCode::kPermissionDenied;
    SIPWAKE_PUSH_FUZZ_CHECK(t.status().code() == want);
    return;
  }
  if (!t.isOk()) {
    SIPWAKE_PUSH_FUZZ_CHECK(t.status().code() == StatusCode::kInvalidArgument);
    return;
  }
  SIPWAKE_PUSH_FUZZ_CHECK(!t->access_token.empty());
  SIPWAKE_PUSH_FUZZ_CHECK(t->expires_in.count() >= 1 && t->expires_in.count() <= 86400);
  std::string type = t->token_type;
  for (char& c : type) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  SIPWAKE_PUSH_FUZZ_CHECK(type == "bearer");
}

inline void exercise(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = in.find('\n');
  const std::string_view head = in.substr(0, nl == std::string_view::npos ? 0 : nl);
  const std::string_view rest = nl == std::string_view::npos ? in : in.substr(nl + 1);
  const std::size_t sp = head.find(' ');
  const std::string_view kind = head.substr(0, sp);
  int status = 400;
  if (sp != std::string_view::npos) {
    int n = 0;
    const std::string_view digits = head.substr(sp + 1);
    for (char c : digits.substr(0, 3)) n = c >= '0' && c <= '9' ? n * 10 + (c - '0') : -1000;
    if (digits.size() == 3 && n >= 100) status = n;
  }
  if (kind == "fcm") {
    exerciseFcm(status, rest);
  } else if (kind == "oauth") {
    exerciseOAuth(status, rest);
  } else if (kind == "retry-after") {
    checkRetryAfter(fcm::parseRetryAfter(rest, kNowUnix));
  } else {
    exerciseApns(status, kind == "apns" ? rest : in);
  }
}

}  // namespace sipwake::push::fuzz
