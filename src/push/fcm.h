// Firebase Cloud Messaging HTTP v1: request building and response interpretation. Pure logic;
// the OAuth2 exchange (token_cache.h builds and parses it) and HTTP/2 belong to the sender.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "push/payload.h"
#include "push/push_params.h"
#include "push/push_request.h"

namespace sipwake::push::fcm {

inline constexpr std::string_view kHost = "fcm.googleapis.com";
inline constexpr std::size_t kMaxDataBytes = 4096;  // keys and values of "data"
inline constexpr std::chrono::seconds kMinQuotaBackoff{60};

struct RequestOptions {
  // Project to send through; empty = the binding's project_id (RFC 8599 pn-param). One of the
  // two must be set (configuration usually maps the binding's app to a project).
  std::string project_id;
  std::string access_token;      // OAuth2 bearer token (REQUIRES: non-empty)
  std::chrono::seconds ttl{30};  // android.ttl: ring time for calls
  std::string collapse_key;      // android.collapse_key; empty = none
};

// POST /v1/projects/<project>/messages:send with a data-only, high-priority message:
//   {"message":{"token":T,"data":{...all strings...},"android":{"priority":"high","ttl":"30s"}}}
// kFailedPrecondition: not an FCM binding / no token / no project; kOutOfRange: data > 4096 bytes.
Result<PushRequest> buildRequest(const PushBinding& binding, const CallEvent& event,
                                 const RequestOptions& options);

struct Response {
  PushAction action = PushAction::kOk;
  int status = 0;
  std::string message_name;  // success: "projects/<p>/messages/<id>"
  std::string error_code;    // FcmError errorCode (UNREGISTERED, ...) or "" when absent
  std::string rpc_status;    // google.rpc.Status "status" (NOT_FOUND, ...)
  std::string message;       // error message (bounded); never contains our secrets
  std::optional<std::chrono::seconds> retry_after;  // kRetry: when to try again at the earliest
};

// Interprets an FCM answer. `retry_after` is the Retry-After header ("" when absent): delta
// seconds or an IMF-fixdate, the latter resolved against `now_unix`.
Response parseResponse(int status, std::string_view body, std::string_view retry_after,
                       std::int64_t now_unix);

// Retry-After (RFC 9110 §10.2.3) → seconds from now; nullopt when absent or unparsable.
std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value, std::int64_t now_unix);

}  // namespace sipwake::push::fcm
