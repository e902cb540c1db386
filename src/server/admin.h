// The admin listener's requests ([admin] listen; the contract is docs/operations.md "Admin API"):
//   GET /, /dashboard/...   the dashboard's static files (dashboard_files.h; no token needed)
//   GET /metrics            Prometheus text exposition of every counter of Stats::global()
//   GET /api/status         gauges: bindings, push bindings, parked requests, pushes, wake latency
//   GET|DELETE /api/bindings  a user's SIP and push bindings (tokens truncated); drop them
//   GET /api/timelines      the last wake timelines of a user or a Call-ID
//   POST /api/push-test     pushes each device of a user once, answers every provider's answer
//   POST /api/reload        re-reads what the server can reload
// /api/... needs "Authorization: Bearer <[admin] token_file>" (401 otherwise; 403 when no
// token_file is configured); bodies are JSON, errors {"error": "..."}.
//
// Thread: AdminApi::handle runs on the admin listener's loop; answers that wait (the binding
// store's write, the push services) come back from any thread through the responder.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "http2/http1_server.h"
#include "http2/message.h"
#include "location/location_store.h"
#include "server/reload_report.h"

namespace sipwake::push {
class PushSender;
}
namespace sipwake::routing {
class TimelineRecorder;
}

namespace sipwake::server {

// Whether `authorization` (the header's value) is "Bearer <token>". Constant time in the token's
// bytes. An empty `token` matches nothing.
bool bearerTokenMatches(std::string_view authorization, std::string_view token);

// A token as the API shows it: first 4 + "…" + last 4; 12 characters or fewer: "…" + last 2.
std::string truncatedToken(std::string_view token);
// A Contact URI with the value of each token-carrying parameter (pn-prid, pn-tok, pn-voip-tok,
// pn-im-tok, pn-purr, push-token-id; any case) cut by truncatedToken(); the rest unchanged.
std::string redactedContact(std::string_view contact);

struct AdminDeps {
  std::string token;  // empty: /api/... answers 403
  location::LocationStore* locations = nullptr;
  location::LocationStore* push_store = nullptr;  // its push bindings
  push::PushSender* sender = nullptr;
  const routing::TimelineRecorder* timelines = nullptr;  // nullptr: no timelines kept
  std::function<std::size_t()> parked;                   // requests parked for a wake-up now
  std::function<Result<ReloadReport>()> reload;
  // Runs a closure on the admin listener's loop (store completions come back there).
  location::Executor post;
  // Schedules `fn` after `delay` on the admin listener's loop (the push test's bound).
  std::function<void(std::chrono::milliseconds delay, std::function<void()> fn)> after;
  std::chrono::milliseconds push_test_timeout{15000};
};

class AdminApi {
 public:
  // REQUIRES: the stores, sender and recorder outlive every request's answer (the server stops
  // the admin listener first).
  explicit AdminApi(AdminDeps deps);

  void handle(const http2::Request& request, http2::Http1Server::Responder respond);

 private:
  AdminDeps deps_;
  std::chrono::steady_clock::time_point started_;
};

}  // namespace sipwake::server
