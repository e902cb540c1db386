#include "transport/transport_layer.h"

#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <asio/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <deque>
#include <future>
#include <optional>
#include <type_traits>
#include <utility>

#include "common/allocator.h"
#include "common/log.h"
#include "sip/stream_framer.h"
#include "transport/response_routing.h"
#include "transport/reuseport_steer.h"

namespace sipwake::transport {

using asio::ip::tcp;
using asio::ip::udp;

// ---------------------------------------------------------------------------------------------
// Helpers

namespace {

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

asio::ip::address toAsio(const Address& a) {
  if (a.v6) {
    asio::ip::address_v6::bytes_type b;
    std::copy(a.bytes.begin(), a.bytes.end(), b.begin());
    return asio::ip::address_v6(b);
  }
  asio::ip::address_v4::bytes_type b{a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]};
  return asio::ip::address_v4(b);
}

Address fromAsio(const asio::ip::address& ip, std::uint16_t port) {
  Address a;
  a.port = port;
  if (ip.is_v6()) {
    auto v6 = ip.to_v6();
    if (v6.is_v4_mapped()) {
      auto b = asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_bytes();
      std::copy(b.begin(), b.end(), a.bytes.begin());
      return a;
    }
    auto b = v6.to_bytes();
    std::copy(b.begin(), b.end(), a.bytes.begin());
    a.v6 = true;
    return a;
  }
  auto b = ip.to_v4().to_bytes();
  std::copy(b.begin(), b.end(), a.bytes.begin());
  return a;
}

template <typename Endpoint>
Address fromEndpoint(const Endpoint& ep) {
  return fromAsio(ep.address(), ep.port());
}

Address ipOnly(Address a) {
  a.port = 0;
  return a;
}

bool onlyWhitespace(const char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' && p[i] != '\t') return false;
  }
  return true;
}

std::size_t protoIndex(Protocol p) { return static_cast<std::size_t>(p); }

}  // namespace

struct TransportLayer::Counters {
  std::array<Counter*, 3> received;
  std::array<Counter*, 3> sent;
  std::array<Gauge*, 3> open;  // connections open now, per transport (udp stays 0)
  Counter& parse_rejects = Stats::global().counter("transport.parse_rejects");
  Counter& parse_drops = Stats::global().counter("transport.parse_drops");
  Counter& connections_opened = Stats::global().counter("transport.connections_opened");
  Counter& connections_closed = Stats::global().counter("transport.connections_closed");
  Counter& connections_refused = Stats::global().counter("transport.connections_refused");
  Counter& idle_closes = Stats::global().counter("transport.idle_closes");
  Counter& framing_errors = Stats::global().counter("transport.framing_errors");
  Counter& keepalive_pongs = Stats::global().counter("transport.keepalive_pongs");
  Counter& send_errors = Stats::global().counter("transport.send_errors");
  Counter& udp_oversize = Stats::global().counter("transport.udp_oversize_sends");
  Counter& steering_switches = Stats::global().counter("transport.udp_steering_switches");
  Counter& write_queue_overflows = Stats::global().counter("transport.write_queue_overflows");
  Counter& cross_loop_dispatch = Stats::global().counter("transport.cross_loop_dispatch");
  Counter& tls_handshake_failures = Stats::global().counter("transport.tls_handshake_failures");
  Counter& tls_handshakes_refused = Stats::global().counter("transport.tls_handshakes_refused");
  Counter& message_timeouts = Stats::global().counter("transport.message_timeouts");
  Counter& accept_errors = Stats::global().counter("transport.accept_errors");
  Counter& memory_releases = Stats::global().counter("transport.memory_releases");

  Counters() {
    for (Protocol p : {Protocol::kUdp, Protocol::kTcp, Protocol::kTls}) {
      std::string name(protocolName(p));
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      received[protoIndex(p)] = &Stats::global().counter("transport." + name + ".received");
      sent[protoIndex(p)] = &Stats::global().counter("transport." + name + ".sent");
      open[protoIndex(p)] = &Stats::global().gauge("transport.connections." + name);
    }
  }
};

namespace detail {

struct TlsContexts {
  std::optional<asio::ssl::context> server;
  asio::ssl::context client{asio::ssl::context::tls_client};
  TlsConfig::Verify verify = TlsConfig::Verify::kNone;
};

// ---------------------------------------------------------------------------------------------
// Connection: one TCP or TLS connection, owned by the loop's connection table (shared_ptr; the
// pending asio handlers hold extra references). Every method runs on `loop_`.

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(TransportLayer& layer, EventLoop& loop, FlowId flow, Protocol protocol, bool inbound,
             Address remote, Address local)
      : layer_(layer),
        loop_(loop),
        flow_(flow),
        protocol_(protocol),
        inbound_(inbound),
        remote_(remote),
        local_(local),
        framer_(layer.config_.limits),
        idle_timer_(loop.io()),
        last_activity_(Clock::now()) {}
  virtual ~Connection() = default;

  FlowId flow() const { return flow_; }
  Protocol protocol() const { return protocol_; }
  bool inbound() const { return inbound_; }
  const Address& remote() const { return remote_; }
  bool closed() const { return closed_; }

  // Server side: TLS handshake (if TLS), then reading. `counted_handshake`: the layer admitted
  // this connection's handshake (admitHandshake); it is released once the handshake ends.
  void startAccepted(bool counted_handshake = false) {
    counted_handshake_ = counted_handshake;
    armIdleTimer();
    startHandshakeOrRead(/*client=*/false);
  }
  // Client side: connect, TLS handshake (if TLS), then flush queued writes and read.
  void startConnect(const std::string& tls_server_name) {
    armIdleTimer();
    if (!prepareClient(tls_server_name)) return;
    auto self = shared_from_this();
    socket().async_connect(
        tcp::endpoint(toAsio(remote_), remote_.port), [self](const asio::error_code& ec) {
          if (self->closed_) return;
          if (ec) {
            self->close(
                unavailable("connect to " + self->remote_.toString() + " failed: " + ec.message()));
            return;
          }
          asio::error_code ignored;
          auto ep = self->socket().local_endpoint(ignored);
          if (!ignored) self->local_ = fromEndpoint(ep);
          self->socket().set_option(tcp::no_delay(true), ignored);
          self->startHandshakeOrRead(/*client=*/true);
        });
  }

  // Queues bytes; `done` is completed when written (or when the connection fails).
  void enqueue(std::string bytes, TransportLayer::Completion done, EventLoop* origin) {
    if (closed_) {
      TransportLayer::complete(done, origin, unavailable("connection closed"), false);
      return;
    }
    if (queued_bytes_ + bytes.size() > layer_.config_.max_write_queue_bytes) {
      layer_.counters_->write_queue_overflows.inc();
      TransportLayer::complete(done, origin, unavailable("write queue full"), false);
      close(unavailable("peer " + remote_.toString() + " is not reading (write queue full)"));
      return;
    }
    queued_bytes_ += bytes.size();
    queue_.push_back(Pending{std::move(bytes), std::move(done), origin});
    flush();
  }

  // Closes the socket, fails queued writes with `why`, and leaves the table. Idempotent.
  void close(const Status& why) {
    if (closed_) return;
    closed_ = true;
    auto self = shared_from_this();  // the table may hold the last reference
    SW_LOG_DEBUG("closing {} connection {} to {}: {}", protocolName(protocol_), flow_,
                 remote_.toString(), why.message());
    endHandshake();
    asio::error_code ignored;
    idle_timer_.cancel();
    socket().close(ignored);
    for (auto& p : queue_) TransportLayer::complete(p.done, p.origin, why, false);
    queue_.clear();
    // In-flight writes complete with operation_aborted in onWritten.
    layer_.unregisterConnection(*this);
    layer_.notifyFlowClosed(flow_, why);
  }

 protected:
  virtual tcp::socket& socket() = 0;
  virtual bool prepareClient(const std::string& /*tls_server_name*/) { return true; }
  virtual void startHandshakeOrRead(bool client) = 0;
  virtual void asyncRead() = 0;
  virtual void asyncWrite() = 0;

  void onEstablished() {
    established_ = true;
    last_activity_ = Clock::now();
    armIdleTimer();  // switch from the connect/handshake deadline to the idle deadline
    flush();
    asyncRead();
  }

  void onRead(const asio::error_code& ec, std::size_t n) {
    if (closed_) return;
    if (ec) {
      close(unavailable(ec == asio::error::eof ? "peer closed" : "read: " + ec.message()));
      return;
    }
    last_activity_ = Clock::now();
    framer_.append(std::string_view(rbuf_.data(), n));
    std::string frame;
    std::string error;
    for (;;) {
      switch (framer_.next(&frame, &error)) {
        case sip::StreamFramer::Next::kMessage: {
          sip::ParseOutcome po = sip::parseMessage(std::move(frame), layer_.config_.limits);
          frame.clear();
          layer_.onParsed(loop_, std::move(po), protocol_, remote_, local_, flow_);
          if (closed_) return;
          continue;
        }
        case sip::StreamFramer::Next::kPing:
          layer_.counters_->keepalive_pongs.inc();
          enqueue(std::string("\r\n"), {}, nullptr);
          if (closed_) return;
          continue;
        case sip::StreamFramer::Next::kError:
          layer_.counters_->framing_errors.inc();
          close(unavailable("framing error: " + error));
          return;
        case sip::StreamFramer::Next::kNeedMore:
          break;
      }
      break;
    }
    // More than a pending CRLF keep-alive is buffered: part of a message, which must be complete
    // within message_timeout of its start (its 4th buffered byte), however slowly the rest
    // trickles in.
    const bool partial = framer_.buffered() > 3;
    if (partial && !partial_since_) {
      partial_since_ = last_activity_;
      if (layer_.config_.message_timeout > Duration::zero()) armIdleTimer();
    } else if (!partial) {
      partial_since_.reset();
    }
    asyncRead();
  }

  void onWritten(const asio::error_code& ec) {
    writing_ = false;
    Status st =
        ec ? unavailable("write to " + remote_.toString() + ": " + ec.message()) : Status::ok();
    for (auto& p : inflight_) {
      if (!ec) layer_.counters_->sent[protoIndex(protocol_)]->inc();
      TransportLayer::complete(p.done, p.origin, st, true, ec ? 0 : flow_);
    }
    inflight_.clear();
    buffers_.clear();
    if (closed_) return;
    if (ec) {
      close(st);
      return;
    }
    last_activity_ = Clock::now();
    flush();
  }

  void onHandshake(const asio::error_code& ec) {
    if (closed_) return;
    endHandshake();
    if (ec) {
      layer_.counters_->tls_handshake_failures.inc();
      close(unavailable("TLS handshake with " + remote_.toString() + " failed: " + ec.message()));
      return;
    }
    onEstablished();
  }

  struct Pending {
    std::string bytes;
    TransportLayer::Completion done;
    EventLoop* origin;
  };

  void flush() {
    if (writing_ || !established_ || closed_ || queue_.empty()) return;
    // Gather everything queued into one write (one syscall for a burst of messages).
    while (!queue_.empty()) {
      queued_bytes_ -= queue_.front().bytes.size();
      inflight_.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    for (auto& p : inflight_) buffers_.emplace_back(asio::buffer(p.bytes));
    writing_ = true;
    asyncWrite();
  }

  // The earlier of the idle (or connect/handshake) deadline and the deadline of the partial
  // message being received.
  TimePoint deadline() const {
    Duration limit = established_ ? layer_.config_.idle_timeout : layer_.config_.connect_timeout;
    TimePoint at = last_activity_ + limit;
    if (partial_since_ && layer_.config_.message_timeout > Duration::zero()) {
      at = std::min(at, *partial_since_ + layer_.config_.message_timeout);
    }
    return at;
  }

  void armIdleTimer() {
    idle_timer_.expires_at(deadline());
    auto self = shared_from_this();
    idle_timer_.async_wait([self](const asio::error_code& ec) {
      if (ec || self->closed_) return;
      const TimePoint now = Clock::now();
      if (now < self->deadline()) {
        self->armIdleTimer();
        return;
      }
      const Duration message_timeout = self->layer_.config_.message_timeout;
      if (self->partial_since_ && message_timeout > Duration::zero() &&
          now - *self->partial_since_ >= message_timeout) {
        self->layer_.counters_->message_timeouts.inc();
        self->close(unavailable(
            "no complete message within " +
            std::to_string(std::chrono::duration_cast<milliseconds>(message_timeout).count()) +
            " ms of its start"));
        return;
      }
      self->layer_.counters_->idle_closes.inc();
      self->close(unavailable(self->established_ ? "idle timeout" : "connect/handshake timeout"));
    });
  }

  void endHandshake() {
    if (!counted_handshake_) return;
    counted_handshake_ = false;
    layer_.endHandshake(remote_);
  }

  TransportLayer& layer_;
  EventLoop& loop_;
  const FlowId flow_;
  const Protocol protocol_;
  const bool inbound_;
  Address remote_;
  Address local_;
  sip::StreamFramer framer_;
  asio::steady_timer idle_timer_;
  TimePoint last_activity_;
  std::optional<TimePoint> partial_since_;  // first byte of the message being received
  bool counted_handshake_ = false;
  bool established_ = false;
  bool closed_ = false;
  bool writing_ = false;
  std::deque<Pending> queue_;
  std::size_t queued_bytes_ = 0;
  std::vector<Pending> inflight_;
  std::vector<asio::const_buffer> buffers_;
  std::array<char, 16384> rbuf_;
};

class TcpConnection final : public Connection {
 public:
  TcpConnection(tcp::socket socket, TransportLayer& layer, EventLoop& loop, FlowId flow,
                bool inbound, Address remote, Address local)
      : Connection(layer, loop, flow, Protocol::kTcp, inbound, remote, local),
        socket_(std::move(socket)) {}

 private:
  tcp::socket& socket() override { return socket_; }
  void startHandshakeOrRead(bool) override { onEstablished(); }
  void asyncRead() override {
    auto self = std::static_pointer_cast<TcpConnection>(shared_from_this());
    socket_.async_read_some(asio::buffer(rbuf_), [self](const asio::error_code& ec, std::size_t n) {
      self->onRead(ec, n);
    });
  }
  void asyncWrite() override {
    auto self = std::static_pointer_cast<TcpConnection>(shared_from_this());
    asio::async_write(socket_, buffers_,
                      [self](const asio::error_code& ec, std::size_t) { self->onWritten(ec); });
  }

  tcp::socket socket_;
};

class TlsConnection final : public Connection {
 public:
  // `tls`: the contexts current when the connection was made; it keeps them (a reload swaps in
  // new ones for later connections). `server`: the listeners' context, else the client one.
  TlsConnection(tcp::socket socket, std::shared_ptr<TlsContexts> tls, bool server,
                TransportLayer& layer, EventLoop& loop, FlowId flow, bool inbound, Address remote,
                Address local)
      : Connection(layer, loop, flow, Protocol::kTls, inbound, remote, local),
        tls_(std::move(tls)),
        stream_(std::move(socket), server ? *tls_->server : tls_->client),
        verify_(tls_->verify) {}

 private:
  tcp::socket& socket() override { return stream_.next_layer(); }
  bool prepareClient(const std::string& server_name) override {
    std::string name = server_name.empty() ? remote_.ip() : server_name;
    // SNI only carries DNS names (RFC 6066 §3), never IP literals.
    if (!server_name.empty() && !Address::parse(server_name, 0).isOk()) {
      if (SSL_set_tlsext_host_name(stream_.native_handle(), server_name.c_str()) != 1) {
        close(unavailable("cannot set TLS SNI '" + server_name + "'"));
        return false;
      }
    }
    if (verify_ != TlsConfig::Verify::kNone) {
      asio::error_code ec;
      stream_.set_verify_callback(asio::ssl::host_name_verification(name), ec);
      if (ec) {
        close(unavailable("cannot set TLS name check: " + ec.message()));
        return false;
      }
    }
    return true;
  }
  void startHandshakeOrRead(bool client) override {
    auto self = std::static_pointer_cast<TlsConnection>(shared_from_this());
    stream_.async_handshake(
        client ? asio::ssl::stream_base::client : asio::ssl::stream_base::server,
        [self](const asio::error_code& ec) { self->onHandshake(ec); });
  }
  void asyncRead() override {
    auto self = std::static_pointer_cast<TlsConnection>(shared_from_this());
    stream_.async_read_some(asio::buffer(rbuf_), [self](const asio::error_code& ec, std::size_t n) {
      self->onRead(ec, n);
    });
  }
  void asyncWrite() override {
    auto self = std::static_pointer_cast<TlsConnection>(shared_from_this());
    asio::async_write(stream_, buffers_,
                      [self](const asio::error_code& ec, std::size_t) { self->onWritten(ec); });
  }

  std::shared_ptr<TlsContexts> tls_;  // before stream_: its SSL_CTX outlives the stream
  asio::ssl::stream<tcp::socket> stream_;
  TlsConfig::Verify verify_;
};

// ---------------------------------------------------------------------------------------------
// UDP: one socket per (listener, loop); receives on that loop.

struct UdpEndpoint {
  UdpEndpoint(TransportLayer& layer, EventLoop& loop, udp::socket socket, Address local)
      : layer(layer), loop(loop), socket(std::move(socket)), local(local) {}

  void startReceive() {
    socket.async_receive_from(
        asio::buffer(buf), sender, [this](const asio::error_code& ec, std::size_t n) {
          if (ec == asio::error::operation_aborted || !socket.is_open()) {
            return;
          }
          if (!ec) handleDatagram(n);
          // Drain what is already queued before going back to the reactor:
          // one wake-up, several datagrams.
          for (int i = 0; i < 32 && socket.is_open(); ++i) {
            asio::error_code rec;
            std::size_t got = socket.receive_from(asio::buffer(buf), sender, 0, rec);
            if (rec) break;
            handleDatagram(got);
          }
          if (socket.is_open()) startReceive();
        });
  }

  void handleDatagram(std::size_t n) {
    datagrams.store(datagrams.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (n == 0 || onlyWhitespace(buf.data(), n)) return;  // NAT keep-alive noise
    Address remote = fromEndpoint(sender);
    sip::ParseOutcome po = sip::parseMessage(std::string(buf.data(), n), layer.config_.limits);
    layer.onParsed(loop, std::move(po), Protocol::kUdp, remote, local, 0);
  }

  TransportLayer& layer;
  EventLoop& loop;
  udp::socket socket;
  Address local;
  udp::endpoint sender;
  std::atomic<std::uint64_t> datagrams{0};  // written by this loop only; read by loop 0
  std::array<char, 65536> buf;
};

struct Acceptor {
  Acceptor(TransportLayer& layer, EventLoop& loop, tcp::acceptor acceptor, Protocol protocol,
           Address local)
      : layer(layer), loop(loop), acceptor(std::move(acceptor)), protocol(protocol), local(local) {}

  void startAccept() {
    acceptor.async_accept(loop.io(), [this](const asio::error_code& ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of file descriptors: the connection stays in the backlog and the socket stays
        // readable, so an immediate retry would spin. Wait, doubling, then try again.
        backoff = layer.onAcceptError(ec, protocol, backoff);
        if (backoff > Duration::zero()) {
          retry_timer.expires_after(backoff);
          retry_timer.async_wait([this](const asio::error_code& wec) {
            if (!wec && acceptor.is_open()) startAccept();
          });
          return;
        }
      } else {
        backoff = Duration::zero();
        onAccepted(std::move(s));
      }
      startAccept();
    });
  }

  void onAccepted(tcp::socket s) {
    asio::error_code ec;
    auto ep = s.remote_endpoint(ec);
    if (ec) return;
    Address remote = fromEndpoint(ep);
    if (!layer.admitInbound(remote)) {
      layer.counters_->connections_refused.inc();
      SW_LOG_DEBUG("refusing {} connection from {}: connection cap", protocolName(protocol),
                   remote.toString());
      s.close(ec);
      return;
    }
    bool counted_handshake = false;
    if (protocol == Protocol::kTls) {
      if (!layer.admitHandshake(remote)) {
        layer.counters_->tls_handshakes_refused.inc();
        SW_LOG_DEBUG("refusing TLS connection from {}: too many TLS handshakes in progress",
                     remote.toString());
        layer.releaseInbound(remote);
        s.close(ec);
        return;
      }
      counted_handshake = true;
    }
    s.set_option(tcp::no_delay(true), ec);
    FlowId flow = layer.newFlowId(loop.index());
    std::shared_ptr<Connection> conn;
    if (protocol == Protocol::kTls) {
      conn = std::make_shared<TlsConnection>(std::move(s), layer.currentTls(), true, layer, loop,
                                             flow, true, remote, local);
    } else {
      conn = std::make_shared<TcpConnection>(std::move(s), layer, loop, flow, true, remote, local);
    }
    layer.registerConnection(conn);
    conn->startAccepted(counted_handshake);
  }

  TransportLayer& layer;
  EventLoop& loop;
  tcp::acceptor acceptor;
  Protocol protocol;
  Address local;
  asio::steady_timer retry_timer{loop.io()};
  Duration backoff = Duration::zero();
};

struct LoopState {
  std::vector<std::unique_ptr<UdpEndpoint>> udp;
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  std::unordered_map<FlowId, std::shared_ptr<Connection>> connections;
  TimerService::TimerId trim_timer = 0;  // maybeReleaseMemory's pending trim on this loop
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// TransportLayer

TransportLayer::TransportLayer(LoopPool& loops, TransportConfig config, MessageHandler handler)
    : loops_(loops),
      config_(std::move(config)),
      handler_(std::make_shared<MessageHandler>(std::move(handler))),
      counters_(std::make_unique<Counters>()) {
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    states_.push_back(std::make_unique<detail::LoopState>());
  }
}

TransportLayer::~TransportLayer() { stop(); }

namespace {

// The client context (always) and, when `want_server`, the listeners' server context, from the
// files `tc` names: every file is read here, so a bad one is an error before anything changes.
Result<std::shared_ptr<detail::TlsContexts>> buildTlsContexts(const TlsConfig& tc,
                                                              bool want_server) {
  auto tls = std::make_shared<detail::TlsContexts>();
  tls->verify = tc.verify;
  asio::error_code ec;
  auto options = asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                 asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                 asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use;
  auto loadCa = [&](asio::ssl::context& ctx) -> Status {
    if (!tc.ca_file.empty()) {
      ctx.load_verify_file(tc.ca_file, ec);
      if (ec) return invalidArgument("TLS CA file '" + tc.ca_file + "': " + ec.message());
    } else {
      ctx.set_default_verify_paths(ec);
    }
    return Status::ok();
  };
  auto setCiphers = [&](asio::ssl::context& ctx) -> Status {
    if (SSL_CTX_set_cipher_list(ctx.native_handle(), tc.ciphers.c_str()) != 1) {
      return invalidArgument("[tls] ciphers \"" + tc.ciphers +
                             "\": OpenSSL knows none of these TLS 1.2 cipher suites");
    }
    return Status::ok();
  };
  tls->client.set_options(options, ec);
  // Idle connections give their 2 x ~34 kB record buffers back (SSL_MODE_RELEASE_BUFFERS).
  SSL_CTX_set_mode(tls->client.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (Status s = setCiphers(tls->client); !s) return s;
  if (Status s = loadCa(tls->client); !s) return s;
  tls->client.set_verify_mode(
      tc.verify == TlsConfig::Verify::kNone ? asio::ssl::verify_none : asio::ssl::verify_peer, ec);
  // Our certificate is also offered as a client certificate (mutual TLS between servers).
  if (!tc.certificate_file.empty() && !tc.private_key_file.empty()) {
    tls->client.use_certificate_chain_file(tc.certificate_file, ec);
    if (!ec) tls->client.use_private_key_file(tc.private_key_file, asio::ssl::context::pem, ec);
    ec.clear();
  }
  if (want_server) {
    tls->server.emplace(asio::ssl::context::tls_server);
    auto& ctx = *tls->server;
    ctx.set_options(options, ec);
    SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_RELEASE_BUFFERS);
    if (Status s = setCiphers(ctx); !s) return s;
    ctx.use_certificate_chain_file(tc.certificate_file, ec);
    if (ec) {
      return invalidArgument("TLS certificate file '" + tc.certificate_file + "': " + ec.message());
    }
    ctx.use_private_key_file(tc.private_key_file, asio::ssl::context::pem, ec);
    if (ec) {
      return invalidArgument("TLS private key file '" + tc.private_key_file + "': " + ec.message());
    }
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
      return invalidArgument("TLS private key file '" + tc.private_key_file +
                             "' does not match the certificate in '" + tc.certificate_file + "'");
    }
    if (tc.verify != TlsConfig::Verify::kNone) {
      if (Status s = loadCa(ctx); !s) return s;
    }
    asio::ssl::verify_mode mode = asio::ssl::verify_none;
    if (tc.verify == TlsConfig::Verify::kPeer) mode = asio::ssl::verify_peer;
    if (tc.verify == TlsConfig::Verify::kRequire) {
      mode = asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert;
    }
    ctx.set_verify_mode(mode, ec);
  }
  return tls;
}

}  // namespace

bool TransportLayer::wantsTlsServer() const {
  for (const auto& l : config_.listeners) {
    if (l.protocol == Protocol::kTls) return true;
  }
  return false;
}

std::shared_ptr<detail::TlsContexts> TransportLayer::currentTls() const {
  std::lock_guard lock(tls_mu_);
  return tls_;
}

Result<std::shared_ptr<detail::TlsContexts>> TransportLayer::prepareTls(
    const TlsConfig& tls) const {
  return buildTlsContexts(tls, wantsTlsServer());
}

void TransportLayer::swapTls(std::shared_ptr<detail::TlsContexts> next) {
  SIPWAKE_CHECK(next != nullptr);
  std::lock_guard lock(tls_mu_);
  tls_ = std::move(next);
}

Status TransportLayer::start() {
  SIPWAKE_CHECK(EventLoop::current() == nullptr);
  SIPWAKE_CHECK(!started_.exchange(true));
  auto tls = buildTlsContexts(config_.tls, wantsTlsServer());
  if (!tls) return tls.status();
  swapTls(std::move(*tls));

  for (std::size_t i = 0; i < config_.listeners.size(); ++i) {
    listeners_.push_back(Listener{config_.listeners[i].protocol, config_.listeners[i].address, {}});
    if (Status s = openListener(i); !s) {
      // Close what was opened; no receive has started yet.
      for (auto& st : states_) {
        st->udp.clear();
        st->acceptors.clear();
      }
      return s;
    }
  }
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    detail::LoopState* st = states_[i].get();
    loops_.at(i).post([st] {
      for (auto& u : st->udp) u->startReceive();
      for (auto& a : st->acceptors) a->startAccept();
    });
  }
  if (!steering_.group_fds.empty() &&
      config_.udp_steering == TransportConfig::UdpSteering::kAdaptive) {
    loops_.at(0).post([this] {
      if (stopped_.load()) return;
      steering_.timer = loops_.at(0).timers().schedule(seconds(1), [this] { steeringTick(); });
    });
  }
  return Status::ok();
}

void TransportLayer::steeringTick() {
  steering_.timer = 0;
  if (stopped_.load()) return;
  std::uint64_t count = 0;
  for (auto& st : states_) {
    for (auto& u : st->udp) count += u->datagrams.load(std::memory_order_relaxed);
  }
  std::uint64_t rate = count - steering_.last_count;  // per second
  steering_.last_count = count;
  if (!steering_.spreading && rate > config_.spread_above) {
    SW_LOG_INFO("udp: {} datagrams/s: requests spread over {} loops by Call-ID", rate,
                loops_.size());
    applySteering(true);
  } else if (steering_.spreading && rate < config_.spread_below) {
    SW_LOG_INFO("udp: {} datagrams/s: requests handled on the loop of their source", rate);
    applySteering(false);
  }
  steering_.timer = loops_.at(0).timers().schedule(seconds(1), [this] { steeringTick(); });
}

void TransportLayer::applySteering(bool spread) {
  for (int fd : steering_.group_fds) {
    if (Status s = attachSteering(fd, loops_.size(), spread); !s) {
      SW_LOG_WARN("udp: steering not changed: {}", s.message());
      return;
    }
  }
  steering_.spreading = spread;
  counters_->steering_switches.inc();
}

namespace {

Status probeExclusiveBind(Protocol protocol, const Address& want) {
  asio::io_context io;
  asio::error_code ec;
  if (protocol == Protocol::kUdp) {
    udp::endpoint ep(toAsio(want), want.port);
    udp::socket s(io);
    s.open(ep.protocol(), ec);
    if (!ec && want.v6) s.set_option(asio::ip::v6_only(true), ec);
    if (!ec) s.bind(ep, ec);
  } else {
    tcp::endpoint ep(toAsio(want), want.port);
    tcp::acceptor a(io);
    a.open(ep.protocol(), ec);
    if (!ec && want.v6) a.set_option(asio::ip::v6_only(true), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);  // TIME_WAIT is not "in use"
    if (!ec) a.bind(ep, ec);
  }
  if (ec) {
    return unavailable("bind " + std::string(protocolName(protocol)) + " " + want.toString() +
                       ": " + ec.message());
  }
  return Status::ok();
}

}  // namespace

Status TransportLayer::openListener(std::size_t index) {
  Listener& l = listeners_[index];
  Address want = l.configured;
  asio::error_code ec;
  // SO_REUSEPORT would let a second process (same user) silently share a busy port and take part
  // of its traffic. Probe-bind once WITHOUT it, so a port already in use is an error at start-up.
  if (want.port != 0) {
    if (Status s = probeExclusiveBind(l.protocol, want); !s) return s;
  }
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    EventLoop& loop = loops_.at(i);
    auto fail = [&](const char* what) {
      return unavailable(std::string(what) + " " + std::string(protocolName(l.protocol)) + " " +
                         want.toString() + ": " + ec.message());
    };
    if (l.protocol == Protocol::kUdp) {
      udp::endpoint ep(toAsio(want), want.port);
      udp::socket s(loop.io());
      s.open(ep.protocol(), ec);
      if (ec) return fail("open");
      if (want.v6) s.set_option(asio::ip::v6_only(true), ec);
      s.set_option(ReusePort(true), ec);
      if (config_.udp_receive_buffer > 0) {
        asio::error_code ignored;  // capped by the kernel, never an error worth failing for
        s.set_option(asio::socket_base::receive_buffer_size(config_.udp_receive_buffer), ignored);
      }
      s.bind(ep, ec);
      if (ec) return fail("bind");
      s.non_blocking(true, ec);  // the drain loop in startReceive relies on would_block
      Address bound = fromEndpoint(s.local_endpoint(ec));
      if (i == 0) want.port = bound.port;  // later loops join the same port
      states_[i]->udp.push_back(
          std::make_unique<detail::UdpEndpoint>(*this, loop, std::move(s), bound));
      l.bound = bound;
    } else {
      tcp::endpoint ep(toAsio(want), want.port);
      tcp::acceptor a(loop.io());
      a.open(ep.protocol(), ec);
      if (ec) return fail("open");
      if (want.v6) a.set_option(asio::ip::v6_only(true), ec);
      a.set_option(tcp::acceptor::reuse_address(true), ec);
      a.set_option(ReusePort(true), ec);
      a.bind(ep, ec);
      if (ec) return fail("bind");
      a.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) return fail("listen");
      Address bound = fromEndpoint(a.local_endpoint(ec));
      if (i == 0) want.port = bound.port;
      states_[i]->acceptors.push_back(
          std::make_unique<detail::Acceptor>(*this, loop, std::move(a), l.protocol, bound));
      l.bound = bound;
    }
  }
  if (l.protocol == Protocol::kUdp && loops_.size() > 1) {
    // Responses by the loop in their branch, requests by 4-tuple or Call-ID (reuseport_steer.h).
    int fd = states_[0]->udp.back()->socket.native_handle();
    bool spread = config_.udp_steering == TransportConfig::UdpSteering::kSpread;
    if (Status s = attachSteering(fd, loops_.size(), spread); !s) {
      SW_LOG_INFO("udp {}: datagrams not steered by the kernel ({}): by 4-tuple hash",
                  l.bound.toString(), s.message());
    } else {
      steering_.group_fds.push_back(fd);
      steering_.spreading = spread;
    }
  }
  SW_LOG_DEBUG("listening on {} {} ({} loops)", protocolName(l.protocol), l.bound.toString(),
               loops_.size());
  return Status::ok();
}

void TransportLayer::stopAccepting() {
  if (!started_.load() || stopped_.load()) return;
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    detail::LoopState* st = states_[i].get();
    loops_.at(i).runOrPost([st] {
      asio::error_code ec;
      for (auto& a : st->acceptors) {
        a->retry_timer.cancel();
        a->acceptor.close(ec);
      }
    });
  }
}

void TransportLayer::stop() {
  if (!started_.load() || stopped_.exchange(true)) return;
  SIPWAKE_CHECK(EventLoop::current() == nullptr);
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    EventLoop& loop = loops_.at(i);
    detail::LoopState* st = states_[i].get();
    auto shutdown = [this, st, i] {
      if (i == 0 && steering_.timer != 0) loops_.at(0).timers().cancel(steering_.timer);
      asio::error_code ec;
      for (auto& u : st->udp) u->socket.close(ec);
      for (auto& a : st->acceptors) a->acceptor.close(ec);
      auto conns = st->connections;  // close() edits the table
      for (auto& [flow, c] : conns) c->close(unavailable("transport stopping"));
      if (st->trim_timer != 0) loops_.at(i).timers().cancel(st->trim_timer);
      st->trim_timer = 0;
    };
    if (!loop.running()) {
      shutdown();
      continue;
    }
    // Two round trips: the first closes everything, the second runs after the aborted
    // completions that the closes queued, so no handler can touch `this` afterwards.
    for (int round = 0; round < 2; ++round) {
      std::promise<void> done;
      auto fut = done.get_future();
      if (round == 0) {
        loop.post([&] {
          shutdown();
          done.set_value();
        });
      } else {
        loop.post([&] { done.set_value(); });
      }
      if (fut.wait_for(seconds(10)) != std::future_status::ready) {
        SW_LOG_WARN("transport stop: loop {} did not respond", i);
        break;
      }
    }
  }
}

FlowId TransportLayer::newFlowId(std::size_t loop_index) {
  return (next_flow_seq_.fetch_add(1, std::memory_order_relaxed) << 8) | loop_index;
}

FlowId TransportLayer::lookupRemote(Protocol protocol, const Address& remote) {
  RemoteKey key{protocol, remote};
  Shard& sh = shards_[RemoteKeyHash()(key) % kShards];
  std::lock_guard lock(sh.mu);
  auto it = sh.by_remote.find(key);
  return it == sh.by_remote.end() ? 0 : it->second;
}

bool TransportLayer::admitInbound(const Address& remote) {
  // Reserve the slot before checking, so that the acceptors of several loops cannot both take
  // the last one.
  if (total_connections_.fetch_add(1, std::memory_order_relaxed) >= config_.max_connections) {
    total_connections_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  Address ip = ipOnly(remote);
  Shard& sh = shards_[AddressHash()(ip) % kShards];
  std::lock_guard lock(sh.mu);
  std::uint32_t& n = sh.inbound_per_ip[ip];
  if (n >= config_.max_connections_per_ip) {
    total_connections_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  ++n;
  return true;
}

void TransportLayer::releaseInbound(const Address& remote) {
  total_connections_.fetch_sub(1, std::memory_order_relaxed);
  Address ip = ipOnly(remote);
  Shard& sh = shards_[AddressHash()(ip) % kShards];
  std::lock_guard lock(sh.mu);
  auto it = sh.inbound_per_ip.find(ip);
  if (it != sh.inbound_per_ip.end() && --it->second == 0) sh.inbound_per_ip.erase(it);
}

bool TransportLayer::admitHandshake(const Address& remote) {
  if (config_.max_tls_handshakes > 0 &&
      tls_handshakes_.fetch_add(1, std::memory_order_relaxed) >= config_.max_tls_handshakes) {
    tls_handshakes_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  if (config_.max_tls_handshakes == 0) tls_handshakes_.fetch_add(1, std::memory_order_relaxed);
  Address ip = ipOnly(remote);
  Shard& sh = shards_[AddressHash()(ip) % kShards];
  std::lock_guard lock(sh.mu);
  std::uint32_t& n = sh.handshakes_per_ip[ip];
  if (config_.max_tls_handshakes_per_ip > 0 && n >= config_.max_tls_handshakes_per_ip) {
    if (n == 0) sh.handshakes_per_ip.erase(ip);
    tls_handshakes_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  ++n;
  return true;
}

void TransportLayer::endHandshake(const Address& remote) {
  tls_handshakes_.fetch_sub(1, std::memory_order_relaxed);
  Address ip = ipOnly(remote);
  Shard& sh = shards_[AddressHash()(ip) % kShards];
  std::lock_guard lock(sh.mu);
  auto it = sh.handshakes_per_ip.find(ip);
  if (it != sh.handshakes_per_ip.end() && --it->second == 0) sh.handshakes_per_ip.erase(it);
}

Duration TransportLayer::onAcceptError(const std::error_code& ec, Protocol protocol,
                                       Duration previous_backoff) {
  counters_->accept_errors.inc();
  const int e = ec.value();
  // asio reports errno values in its own system category, a different object from
  // std::system_category(): comparing with the latter never matches.
  const bool out_of_resources = (ec.category() == asio::error::get_system_category() ||
                                 ec.category() == std::system_category()) &&
                                (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM);
  Duration backoff = Duration::zero();
  if (out_of_resources) {
    backoff = previous_backoff > Duration::zero()
                  ? std::min(previous_backoff * 2, config_.accept_backoff_max)
                  : config_.accept_backoff;
  }
  std::uint64_t failures = 0;
  {
    std::lock_guard lock(accept_log_mu_);
    ++accept_failures_unlogged_;
    const TimePoint now = Clock::now();
    if (accept_log_at_ != TimePoint{} && now - accept_log_at_ < config_.accept_log_interval) {
      return backoff;
    }
    accept_log_at_ = now;
    failures = std::exchange(accept_failures_unlogged_, 0);
  }
  SW_LOG_WARN(
      "{} accept failed: {} ({} failure(s) since the last report){}", protocolName(protocol),
      ec.message(), failures,
      out_of_resources
          ? "; new connections wait, retrying with back-off up to 1 s (raise the open-file limit, "
            "ulimit -n, or lower [limits] max_connections_per_ip)"
          : "");
  return backoff;
}

void TransportLayer::maybeReleaseMemory(std::size_t loop_index) {
  // The heap a burst of connections used stays with the process (the allocator keeps up to its
  // trim threshold). Once kBurst connections have closed, free memory is handed back
  // kTrimDelay later, so that the rest of the burst is included; one trim is pending at a time.
  constexpr std::size_t kBurst = 256;
  constexpr Duration kTrimDelay = seconds(1);
  if (closed_since_trim_.fetch_add(1, std::memory_order_relaxed) + 1 < kBurst) return;
  if (stopped_.load() || trim_pending_.exchange(true)) return;
  detail::LoopState* st = states_[loop_index].get();
  st->trim_timer = loops_.at(loop_index).timers().schedule(kTrimDelay, [this, st] {
    st->trim_timer = 0;
    closed_since_trim_.store(0, std::memory_order_relaxed);
    trim_pending_.store(false);
    counters_->memory_releases.inc();
    releaseFreeMemory();
  });
}

void TransportLayer::registerConnection(const std::shared_ptr<detail::Connection>& conn) {
  if (!conn->inbound())
    total_connections_.fetch_add(1, std::memory_order_relaxed);  // else admitted
  counters_->connections_opened.inc();
  counters_->open[protoIndex(conn->protocol())]->add(1);
  states_[conn->flow() & 0xff]->connections.emplace(conn->flow(), conn);
  RemoteKey key{conn->protocol(), conn->remote()};
  Shard& sh = shards_[RemoteKeyHash()(key) % kShards];
  std::lock_guard lock(sh.mu);
  sh.by_remote[key] = conn->flow();  // newest wins
}

void TransportLayer::unregisterConnection(detail::Connection& conn) {
  if (!conn.inbound()) total_connections_.fetch_sub(1, std::memory_order_relaxed);
  counters_->connections_closed.inc();
  counters_->open[protoIndex(conn.protocol())]->add(-1);
  {
    RemoteKey key{conn.protocol(), conn.remote()};
    Shard& sh = shards_[RemoteKeyHash()(key) % kShards];
    std::lock_guard lock(sh.mu);
    auto it = sh.by_remote.find(key);
    if (it != sh.by_remote.end() && it->second == conn.flow()) sh.by_remote.erase(it);
  }
  if (conn.inbound()) releaseInbound(conn.remote());
  maybeReleaseMemory(conn.flow() & 0xff);
  // Last: may drop the table's reference (callers hold their own shared_ptr).
  states_[conn.flow() & 0xff]->connections.erase(conn.flow());
}

void TransportLayer::complete(Completion& done, EventLoop* origin, Status status,
                              bool may_run_inline, FlowId flow) {
  if (!done) return;
  if (origin == nullptr || (may_run_inline && origin->isCurrent())) {
    done(std::move(status), flow);
    return;
  }
  origin->post([done = std::move(done), status = std::move(status), flow]() mutable {
    done(std::move(status), flow);
  });
}

void TransportLayer::setFlowClosedHandler(FlowClosedHandler handler) {
  SIPWAKE_CHECK(!started_.load());
  flow_closed_ = handler ? std::make_shared<FlowClosedHandler>(std::move(handler)) : nullptr;
}

// Runs on the connection's loop. Posted to every loop (also this one, so the handler never runs
// inside close(), which may be deep in a send or a read callback). Rare: once per connection.
void TransportLayer::notifyFlowClosed(FlowId flow, const Status& why) {
  if (!flow_closed_ || stopped_.load(std::memory_order_relaxed)) return;
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    loops_.at(i).post([h = flow_closed_, flow, why] { (*h)(flow, why); });
  }
}

void TransportLayer::onParsed(EventLoop& loop, sip::ParseOutcome po, Protocol protocol,
                              const Address& remote, const Address& local, FlowId flow) {
  (void)loop;
  switch (po.kind) {
    case sip::ParseOutcome::Kind::kOk: {
      sip::Message& m = *po.message;
      if (m.isRequest()) {
        if (Status s = stampReceivedVia(m, remote); !s) {
          counters_->parse_drops.inc();
          SW_LOG_DEBUG("dropping request from {}: {}", remote.toString(), s.message());
          return;
        }
      }
      counters_->received[protoIndex(protocol)]->inc();
      dispatch(ReceivedMessage{std::move(m), protocol, remote, local, flow, Clock::now()});
      return;
    }
    case sip::ParseOutcome::Kind::kReject: {
      counters_->parse_rejects.inc();
      SW_LOG_DEBUG("rejecting message from {} {}: {} {}", protocolName(protocol), remote.toString(),
                   po.status_code, po.drop_reason);
      if (!po.message) return;
      sip::Message& req = *po.message;
      SendTarget target{protocol, remote, flow, {}};
      if (stampReceivedVia(req, remote).isOk()) {
        if (auto via = req.topVia(); via.isOk()) {
          if (auto t = responseTarget(*via, protocol, remote, flow); t.isOk()) target = *t;
        }
      }
      sip::Message resp = sip::makeResponseTo(req, po.status_code, po.reason);
      send(target, resp.serialize());
      return;
    }
    case sip::ParseOutcome::Kind::kDrop:
      counters_->parse_drops.inc();
      SW_LOG_DEBUG("dropping message from {} {}: {}", protocolName(protocol), remote.toString(),
                   po.drop_reason);
      return;
  }
}

void TransportLayer::dispatch(ReceivedMessage msg) {
  EventLoop& owner = ownerOf(msg);
  if (owner.isCurrent()) {
    (*handler_)(std::move(msg));
    return;
  }
  counters_->cross_loop_dispatch.inc();
  owner.post([h = handler_, msg = std::move(msg)]() mutable { (*h)(std::move(msg)); });
}

EventLoop& TransportLayer::ownerOf(const ReceivedMessage& msg) {
  const std::size_t n = loops_.size();
  if (n == 1) return loops_.at(0);
  EventLoop* here = EventLoop::current();
  if (here != nullptr && (here->index() >= n || &loops_.at(here->index()) != here)) {
    here = nullptr;
  }
  const sip::Message& m = msg.message;
  EventLoop& fallback = here != nullptr ? *here : loops_.forCallId(m.callId());
  const Result<sip::Via>& via = m.topVia();
  if (!via.isOk()) return fallback;  // the transaction layer drops it, wherever
  if (m.isResponse()) {
    if (auto i = loopOfBranch(via->branch()); i && *i < n) return loops_.at(*i);
    return fallback;  // not from one of our client transactions: a stray response
  }
  if (!via->hasMagicCookie()) return loops_.forCallId(m.callId());
  switch (m.method()) {
    case sip::Method::kInvite:
    case sip::Method::kAck:
    case sip::Method::kCancel: {
      std::string key = inviteAffinityKey(*via);
      PinShard& sh = pins_[std::hash<std::string>()(key) % kShards];
      std::lock_guard lock(sh.mu);
      auto it = sh.loop_of.find(key);
      if (it != sh.loop_of.end() && it->second < n) return loops_.at(it->second);
      break;
    }
    default:
      break;
  }
  return fallback;
}

void TransportLayer::pinInvite(std::string_view key) {
  EventLoop* here = EventLoop::current();
  if (loops_.size() <= 1 || here == nullptr) return;
  std::string k(key);
  PinShard& sh = pins_[std::hash<std::string>()(k) % kShards];
  std::lock_guard lock(sh.mu);
  sh.loop_of[std::move(k)] = here->index();
}

void TransportLayer::unpinInvite(std::string_view key) {
  if (loops_.size() <= 1) return;
  std::string k(key);
  PinShard& sh = pins_[std::hash<std::string>()(k) % kShards];
  std::lock_guard lock(sh.mu);
  auto it = sh.loop_of.find(k);
  if (it != sh.loop_of.end() && EventLoop::current() != nullptr &&
      it->second == EventLoop::current()->index()) {
    sh.loop_of.erase(it);
  }
}

void TransportLayer::send(const SendTarget& target, std::string bytes,
                          std::function<void(Status)> on_done) {
  Completion done;
  if (on_done) done = [f = std::move(on_done)](Status s, FlowId) { f(std::move(s)); };
  sendOnFlow(target, std::move(bytes), std::move(done));
}

void TransportLayer::sendOnFlow(const SendTarget& target, std::string bytes,
                                FlowCompletion on_done) {
  EventLoop* origin = EventLoop::current();
  if (stopped_.load(std::memory_order_relaxed) || !started_.load(std::memory_order_relaxed)) {
    counters_->send_errors.inc();
    complete(on_done, origin, unavailable("transport not running"), false);
    return;
  }
  EventLoop* here = (origin != nullptr && origin->index() < loops_.size() &&
                     &loops_.at(origin->index()) == origin)
                        ? origin
                        : nullptr;
  if (target.protocol == Protocol::kUdp) {
    if (here != nullptr) {
      sendUdp(*here, target, std::move(bytes), std::move(on_done), origin);
    } else {
      EventLoop& loop = loops_.at(AddressHash()(target.remote) % loops_.size());
      loop.post(
          [this, &loop, target, bytes = std::move(bytes), done = std::move(on_done),
           origin]() mutable { sendUdp(loop, target, std::move(bytes), std::move(done), origin); });
    }
    return;
  }
  FlowId flow = 0;
  if (target.flow != 0 && (target.flow & 0xff) < loops_.size()) flow = target.flow;
  if (flow == 0) flow = lookupRemote(target.protocol, target.remote);
  EventLoop* owner = nullptr;
  if (flow != 0) {
    owner = &loops_.at(flow & 0xff);
  } else if (here != nullptr) {
    owner = here;
  } else {
    owner = &loops_.at(AddressHash()(target.remote) % loops_.size());
  }
  if (owner == here) {
    sendStreamOnLoop(*owner, target, flow, std::move(bytes), std::move(on_done), origin, false);
    return;
  }
  owner->post([this, owner, target, flow, bytes = std::move(bytes), done = std::move(on_done),
               origin]() mutable {
    sendStreamOnLoop(*owner, target, flow, std::move(bytes), std::move(done), origin, false);
  });
}

void TransportLayer::sendUdp(EventLoop& loop, const SendTarget& target, std::string bytes,
                             Completion done, EventLoop* origin) {
  detail::UdpEndpoint* ep = nullptr;
  for (auto& u : states_[loop.index()]->udp) {
    if (u->local.v6 == target.remote.v6 && u->socket.is_open()) {
      ep = u.get();
      break;
    }
  }
  if (ep == nullptr) {
    counters_->send_errors.inc();
    complete(
        done, origin,
        unavailable(std::string("no UDP listener for ") + (target.remote.v6 ? "IPv6" : "IPv4")),
        false);
    return;
  }
  if (bytes.size() > kUdpMtuLimit) counters_->udp_oversize.inc();
  asio::error_code ec;
  ep->socket.send_to(asio::buffer(bytes), udp::endpoint(toAsio(target.remote), target.remote.port),
                     0, ec);
  if (ec) {
    counters_->send_errors.inc();
    complete(done, origin,
             unavailable("UDP send to " + target.remote.toString() + ": " + ec.message()), false);
    return;
  }
  counters_->sent[protoIndex(Protocol::kUdp)]->inc();
  complete(done, origin, Status::ok(), false);
}

void TransportLayer::sendStreamOnLoop(EventLoop& loop, SendTarget target, FlowId flow,
                                      std::string bytes, Completion done, EventLoop* origin,
                                      bool retried) {
  if (stopped_.load(std::memory_order_relaxed)) {
    complete(done, origin, unavailable("transport stopping"), false);
    return;
  }
  auto& table = states_[loop.index()]->connections;
  if (flow != 0) {
    auto it = table.find(flow);
    if (it != table.end() && !it->second->closed()) {
      it->second->enqueue(std::move(bytes), std::move(done), origin);
      return;
    }
    // That flow is gone. Another live connection to the same remote (maybe on another loop)?
    FlowId other = lookupRemote(target.protocol, target.remote);
    if (!retried && other != 0 && other != flow) {
      EventLoop& owner = loops_.at(other & 0xff);
      owner.runOrPost([this, &owner, target, other, bytes = std::move(bytes),
                       done = std::move(done), origin]() mutable {
        sendStreamOnLoop(owner, target, other, std::move(bytes), std::move(done), origin, true);
      });
      return;
    }
  }
  // New outgoing connection, owned by this loop.
  std::shared_ptr<detail::TlsContexts> tls =
      target.protocol == Protocol::kTls ? currentTls() : nullptr;
  if (target.protocol == Protocol::kTls && !tls) {
    counters_->send_errors.inc();
    complete(done, origin, unavailable("TLS not configured"), false);
    return;
  }
  if (total_connections_.load(std::memory_order_relaxed) >= config_.max_connections) {
    counters_->send_errors.inc();
    complete(done, origin, unavailable("connection limit reached"), false);
    return;
  }
  FlowId id = newFlowId(loop.index());
  tcp::socket s(loop.io());
  std::shared_ptr<detail::Connection> conn;
  if (target.protocol == Protocol::kTls) {
    conn = std::make_shared<detail::TlsConnection>(std::move(s), std::move(tls), false, *this, loop,
                                                   id, false, target.remote, Address{});
  } else {
    conn = std::make_shared<detail::TcpConnection>(std::move(s), *this, loop, id, false,
                                                   target.remote, Address{});
  }
  registerConnection(conn);
  conn->enqueue(std::move(bytes), std::move(done), origin);
  conn->startConnect(target.tls_server_name);
}

Result<Address> TransportLayer::localAddressFor(Protocol protocol, bool v6) const {
  for (const auto& l : listeners_) {
    if (l.protocol == protocol && l.bound.v6 == v6) return l.bound;
  }
  return notFound(std::string("no ") + std::string(protocolName(protocol)) + " listener for " +
                  (v6 ? "IPv6" : "IPv4"));
}

}  // namespace sipwake::transport
