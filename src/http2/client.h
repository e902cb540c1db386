// Http2Client: one long-lived, multiplexed HTTP/2-over-TLS connection to one origin.
//
//   * TLS peer verification is always on (CA file or the system store; the certificate must name
//     the host, DNS or IP); ALPN must select "h2"; SNI = host. With options.allow_http1 the client
//     also offers "http/1.1" and, when the server picks it (or sends no ALPN), speaks HTTP/1.1
//     over the same TLS connection: keep-alive, one request at a time (no pipelining); a request
//     that times out in flight closes that connection (HTTP/1.1 cannot cancel one).
//   * Requests are multiplexed on one connection, never more in flight than the peer's
//     SETTINGS_MAX_CONCURRENT_STREAMS (and options.max_streams); the rest wait in a queue.
//   * The queue is bounded (options.max_queued): beyond it submit() answers kUnavailable at once.
//     A failed connection attempt fails the queued requests with kUnavailable (the caller owns
//     retry policy) and arms an exponential backoff (with jitter) before the next attempt.
//   * GOAWAY: streams above last_stream_id (refused by the server, never processed) are retried on
//     a new connection; the others complete on the old one, which is then closed.
//   * Every request has a deadline (queueing included): kTimedOut when it passes.
//   * A connection lost with requests in flight fails them with kUnavailable (they may or may not
//     have been processed: the caller decides whether a retry is safe).
//
// Thread: the client lives on one EventLoop. submit() may be called from any thread; callbacks
// always run on the client's loop. Destroying the client (any thread) fails what is pending with
// kUnavailable on the loop; the loop must still be running for that (or be stopped for good).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/stats.h"
#include "common/status.h"
#include "http2/message.h"

namespace sipwake::transport {
class EventLoop;
}

namespace sipwake::http2 {

struct ClientOptions {
  std::string host;  // verified against the certificate; SNI and default :authority
  std::uint16_t port = 443;
  // Where to connect when not `host` (tests, or a pinned address); empty = resolve `host`.
  std::string connect_address;
  std::string ca_file;           // PEM bundle; empty = system trust store
  std::string client_cert_file;  // optional (APNs certificate auth), PEM chain
  std::string client_key_file;   // empty = the key is in client_cert_file
  std::size_t max_queued = 1000;
  // Accept an HTTP/1.1 server (webhooks): see the file comment. APNs/FCM leave it false.
  bool allow_http1 = false;
  std::uint32_t max_streams = 1000;  // our own cap on top of the peer's setting
  // APNs token auth: "until a provider token is accepted on a connection, only one stream".
  // When set, a new connection carries one stream until a 2xx response arrived on it.
  bool single_stream_until_success = false;
  // PING after this much idleness on an open connection (zero = never); no PING ACK within
  // connect_timeout closes the connection (its in-flight requests fail with kUnavailable).
  Duration idle_ping = Duration::zero();
  Duration request_timeout = std::chrono::seconds(10);
  Duration connect_timeout = std::chrono::seconds(10);
  Duration backoff_initial = std::chrono::milliseconds(100);
  Duration backoff_max = std::chrono::seconds(30);
};

// Monotonic counters, readable from any thread.
struct ClientStats {
  Counter connects;          // TLS+h2 (or TLS+HTTP/1.1) established
  Counter http1_connects;    // of which HTTP/1.1
  Counter connect_failures;  // resolve/TCP/TLS/ALPN failures
  Counter disconnects;       // established connections that ended (error, EOF, GOAWAY)
  Counter goaways;
  Counter requests;   // accepted by submit()
  Counter responses;  // completed with a response
  Counter retried;    // refused by GOAWAY/REFUSED_STREAM and requeued
  Counter failed;     // completed with an error (timeout, connection loss, queue full)
  Counter timeouts;
  Counter queue_full;
  Counter pings;  // keep-alive PINGs sent
};

class Http2Client {
 public:
  using Callback = std::function<void(Result<Response>)>;

  // REQUIRES: `loop` outlives the client's pending work. Validates the TLS set-up (CA file...) at
  // once: check status() before use. The first submit() opens the connection.
  Http2Client(transport::EventLoop& loop, ClientOptions options);
  ~Http2Client();
  Http2Client(const Http2Client&) = delete;
  Http2Client& operator=(const Http2Client&) = delete;

  // Ok, or why the client cannot work (its submits then fail at once with this status).
  Status status() const;

  // Queues `request`; `done` runs exactly once on the client's loop. Any thread.
  void submit(Request request, Callback done);

  const ClientStats& stats() const;
  const ClientOptions& options() const;

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sipwake::http2
