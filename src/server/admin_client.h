// The client side of the admin API (docs/operations.md, "Admin API"): what `sipwake status`,
// `timeline`, `push test`, `binding list|drop` and `reload` do. A blocking HTTP/1.1 exchange
// (plain TCP, or TLS for an https:// listener) with the running server, and the rendering of its
// JSON answers as text for a terminal. The rendering functions are pure (unit-tested).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "http2/message.h"

namespace sipwake::server {

struct AdminEndpoint {
  bool tls = false;
  std::string host;  // IP literal or name, without brackets
  std::uint16_t port = 0;

  // "http://127.0.0.1:9090" / "https://[::1]:9443" (as the user should type it).
  std::string url() const;
};

// "http://HOST:PORT" or "https://HOST:PORT" (IPv6 in brackets; a trailing '/' allowed).
Result<AdminEndpoint> parseAdminUrl(std::string_view url);

struct AdminClientOptions {
  std::string token;    // bearer token ("" sends none)
  std::string ca_file;  // https: trust anchors ("" = the system's)
  std::chrono::milliseconds timeout{20000};
};

// One request (method, path with query) to the admin listener; the response whatever its status.
// Errors: kUnavailable "cannot reach the admin listener at URL: <why> (is sipwake running?)",
// kUnavailable for TLS/protocol failures, kTimedOut when no answer within the timeout.
Result<http2::Response> adminRequest(const AdminEndpoint& endpoint, std::string_view method,
                                     std::string_view path, const AdminClientOptions& options);

// Percent-encodes a query value (RFC 3986 unreserved characters kept).
std::string queryEscape(std::string_view value);

// The text shown for a successful answer of each command (input: the response body). A body that
// is not the JSON the command expects gives kInternal naming what is missing.
Result<std::string> renderStatus(std::string_view body);
Result<std::string> renderBindings(std::string_view body);
Result<std::string> renderDropped(std::string_view body);
Result<std::string> renderTimelines(std::string_view body);
Result<std::string> renderPushTest(std::string_view body);
Result<std::string> renderReload(std::string_view body);

// The message for an error answer: 401 → "the admin token was refused (check [admin]
// token_file)", otherwise the "error" member of the JSON body, or the status line.
std::string describeAdminError(const http2::Response& response);

}  // namespace sipwake::server
