// Http2Server: a small HTTP/2-over-TLS server (ALPN h2) for the fake push services and tests.
// With ServerOptions::protocols it also (or only) speaks HTTP/1.1 over TLS (ALPN "http/1.1", or
// no ALPN): keep-alive, requests answered one at a time in order; there Responder::goaway() and
// reset() close the connection without an answer.
//
// Thread: the server and all its connections live on one EventLoop; the handler runs there.
// A Responder may be used from any thread and at any later time (slow answers): it posts to the
// loop and does nothing when the stream or connection is already gone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/stats.h"
#include "common/status.h"
#include "http2/message.h"
#include "http2/tls.h"

namespace sipwake::transport {
class EventLoop;
}

namespace sipwake::http2 {

struct ServerOptions {
  std::string listen_host = "127.0.0.1";
  std::uint16_t port = 0;                      // 0 = any free port (see Http2Server::port())
  std::string cert_file;                       // PEM chain
  std::string key_file;                        // PEM private key
  std::uint32_t max_concurrent_streams = 100;  // advertised in SETTINGS
  std::size_t max_request_body = 1 << 20;      // larger bodies: stream reset (HTTP/1.1: 400)
  AlpnProtocols protocols = AlpnProtocols::kH2;
};

struct ServerStats {
  Counter connections;
  Counter tls_failures;
  Counter requests;
  Counter goaways_sent;
};

class ServerConnection;

// Answers one request stream. Copyable; the first respond()/goaway()/reset() wins.
class Responder {
 public:
  Responder() = default;
  Responder(std::weak_ptr<ServerConnection> conn, int32_t stream_id);
  void respond(Response response) const;
  // Sends GOAWAY(NO_ERROR) with last_stream_id just below this stream: this request was not
  // processed (the client may retry it on a new connection); the connection closes once the
  // streams below it are done.
  void goaway() const;
  // RST_STREAM(INTERNAL_ERROR).
  void reset() const;
  int32_t streamId() const { return stream_id_; }

 private:
  std::weak_ptr<ServerConnection> conn_;
  int32_t stream_id_ = 0;
};

class Http2Server {
 public:
  using Handler = std::function<void(const Request&, Responder)>;

  // REQUIRES: `loop` outlives the server.
  Http2Server(transport::EventLoop& loop, ServerOptions options, Handler handler);
  // Stops (see stop()).
  ~Http2Server();
  Http2Server(const Http2Server&) = delete;
  Http2Server& operator=(const Http2Server&) = delete;

  // Loads the certificate, binds and starts accepting. Any thread (not concurrently with stop()).
  Status start();
  // The bound port (after a successful start()).
  std::uint16_t port() const { return port_; }
  // Closes the listener and every connection; returns once done. Idempotent. Any thread except
  // that, when called off the loop, the loop must be running.
  void stop();

  const ServerStats& stats() const;

  class Impl;

 private:
  transport::EventLoop& loop_;
  std::shared_ptr<Impl> impl_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace sipwake::http2
