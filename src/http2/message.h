// HTTP/2 request/response values shared by Http2Client and Http2Server. Pure data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace sipwake::http2 {

struct Header {
  std::string name;  // lower case (HTTP/2 requires it on the wire)
  std::string value;
};

struct Request {
  std::string method = "POST";
  std::string path;             // ":path"
  std::string authority;        // ":authority"; client: empty = the origin's host
  std::vector<Header> headers;  // regular headers only (no pseudo-headers)
  std::string body;
  // Client: per-request deadline covering queueing and the exchange; zero = the client default.
  Duration timeout{};
  // Server: which connection the request came on (stable for the connection's life), so that
  // handlers can keep per-connection state (APNs: provider-token updates per connection).
  std::uint64_t connection_id = 0;

  // First header named `name` (lower case), or empty.
  std::string_view header(std::string_view name) const;
  // How many headers are named `name` (to detect duplicates).
  std::size_t headerCount(std::string_view name) const;
};

struct Response {
  int status = 0;
  std::vector<Header> headers;  // regular headers only
  std::string body;

  std::string_view header(std::string_view name) const;
};

}  // namespace sipwake::http2
