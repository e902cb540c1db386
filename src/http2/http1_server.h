// Http1Server: a small HTTP/1.1 server, over plain TCP or TLS, on one EventLoop (sipwake's admin
// listener). Uses the HTTP/1.1 codec of http1.h; keep-alive, requests answered one at a time in
// order (pipelined requests wait, unread, until the one before is answered).
//
// Bounds: the request head is at most http1::kMaxHead bytes and the body max_request_body
// (else 400 and close); at most max_connections connections at once (further ones are closed
// as soon as they are accepted); a connection silent for idle_timeout, or whose request is not
// complete within it, is closed. A request the handler has not answered yet is not cut by the
// idle timeout (the handler bounds its own work); the timer starts again once it is answered.
// With TLS the handshake must also finish within idle_timeout.
//
// Thread: the server and all its connections live on its EventLoop; the handler runs there. A
// synchronous Handler answers at once; an AsyncHandler gets a Responder it calls once, at once
// or later, from any thread (the answer is written on the loop). A Responder called after its
// connection closed, or called twice, does nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/stats.h"
#include "common/status.h"
#include "http2/message.h"

namespace asio::ssl {
class context;
}

namespace sipwake::transport {
class EventLoop;
}

namespace sipwake::http2 {

struct Http1ServerOptions {
  std::string listen_host = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = any free port (see Http1Server::port())
  std::size_t max_request_body = 64 * 1024;
  std::size_t max_connections = 32;
  std::chrono::milliseconds idle_timeout{10000};
  // HTTPS: a server context (makeServerTlsContext, AlpnProtocols::kHttp1); nullptr: plain TCP.
  std::shared_ptr<asio::ssl::context> tls;
};

struct Http1ServerStats {
  Counter connections;          // accepted and served
  Counter connections_refused;  // over max_connections
  Counter requests;
  Counter bad_requests;  // unparsable or over the size bounds
  Counter tls_handshake_failures;
};

// Lifecycle as Http2Server: start() binds (any thread), port() is the bound port, stop() closes
// the listener and every connection and returns once done (idempotent; off the loop, the loop
// must be running); the destructor stops.
class Http1Server {
 public:
  using Handler = std::function<Response(const Request&)>;
  using Responder = std::function<void(Response)>;
  using AsyncHandler = std::function<void(const Request&, Responder)>;

  // REQUIRES: `loop` outlives the server.
  Http1Server(transport::EventLoop& loop, Http1ServerOptions options, Handler handler);
  Http1Server(transport::EventLoop& loop, Http1ServerOptions options, AsyncHandler handler);
  ~Http1Server();
  Http1Server(const Http1Server&) = delete;
  Http1Server& operator=(const Http1Server&) = delete;

  Status start();
  std::uint16_t port() const { return port_; }
  void stop();
  const Http1ServerStats& stats() const;

  class Impl;

 private:
  transport::EventLoop& loop_;
  std::shared_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace sipwake::http2
