// Provider-neutral shapes shared by the APNs, FCM and webhook builders: an HTTP request to send
// and the action a response calls for. Pure data; the HTTP/2 transport (later) sends these.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace sipwake::push {

struct HttpHeader {
  std::string name;  // lower case (HTTP/2)
  std::string value;

  friend bool operator==(const HttpHeader&, const HttpHeader&) = default;
};

// One request to a push service. `authority` is the host (":authority"), `path` the ":path".
struct PushRequest {
  std::string method = "POST";
  std::string authority;
  std::string path;
  std::vector<HttpHeader> headers;
  std::string body;

  // First header named `name` (lower case), or empty.
  std::string_view header(std::string_view name) const;
};

// What the caller must do after a push service answered.
enum class PushAction {
  kOk,             // delivered to the service
  kRemoveBinding,  // the device token is dead or belongs elsewhere: delete the push binding
  kRetry,          // transient: retry later (see retry_after), maybe on a new connection
  kRefreshToken,   // our auth token expired: renew it (respecting the caches' limits) and resend
  kFatalConfig,    // credentials/topic/project misconfigured: alert the operator, do not retry
  kDrop,           // this request was malformed (our bug or bad payload): count it, do not retry
};

std::string_view pushActionName(PushAction a);

}  // namespace sipwake::push
