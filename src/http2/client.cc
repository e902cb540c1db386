#include "http2/client.h"

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <cctype>
#include <cstring>
#include <deque>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "common/log.h"
#include "http2/http1.h"
#include "http2/nghttp2_util.h"
#include "http2/tls.h"
#include "transport/event_loop.h"
#include "transport/tls_client.h"

namespace sipwake::http2 {
namespace {

constexpr std::size_t kMaxResponseBody = 1 << 20;
constexpr std::size_t kWriteChunk = 64 * 1024;
constexpr int32_t kHttp1Stream = 1;  // key of the in-flight HTTP/1.1 request in Conn::streams

using detail::makeNv;

}  // namespace

class Http2Client::Impl : public std::enable_shared_from_this<Http2Client::Impl> {
 public:
  using TimerId = TimerService::TimerId;

  struct Conn {
    Conn(asio::io_context& io, asio::ssl::context& ctx) : tls(io, ctx), resolver(io) {}
    ~Conn() {
      if (session) nghttp2_session_del(session);
    }
    Impl* owner = nullptr;
    std::uint64_t gen = 0;
    asio::ssl::stream<asio::ip::tcp::socket> tls;
    asio::ip::tcp::resolver resolver;
    nghttp2_session* session = nullptr;
    bool established = false;
    bool settings_received = false;
    // HTTP/1.1 (ALPN fallback): the one request in flight is streams[kHttp1Stream].
    bool http1 = false;
    std::unique_ptr<http1::Parser> h1_parser;
    bool had_success = false;  // a 2xx arrived on this connection
    bool ping_outstanding = false;
    TimePoint last_activity{};
    TimerId ping_timer = 0;
    bool writing = false;
    bool goaway = false;
    bool closed = false;
    TimerId connect_timer = 0;
    std::array<uint8_t, 16384> rbuf{};
    std::string wbuf;
    std::unordered_map<int32_t, std::uint64_t> streams;  // stream id → request id
  };

  struct Pending {
    Request req;
    Callback done;
    TimerId timer = 0;
    Conn* conn = nullptr;  // set while in flight
    int32_t stream_id = 0;
    std::size_t body_offset = 0;
    Response resp;
  };

  Impl(transport::EventLoop& loop, ClientOptions options)
      : loop_(loop), options_(std::move(options)), rng_(std::random_device{}()) {
    auto ctx =
        makeClientTlsContext(options_.ca_file, options_.client_cert_file, options_.client_key_file,
                             options_.allow_http1 ? AlpnProtocols::kH2OrHttp1 : AlpnProtocols::kH2);
    if (!ctx) {
      status_ = ctx.status();
    } else {
      tls_ = *ctx;
    }
    if (status_.isOk() && options_.host.empty())
      status_ = invalidArgument("HTTP/2 client: no host");
  }

  Status status() const { return status_; }
  const ClientStats& stats() const { return stats_; }
  const ClientOptions& options() const { return options_; }
  transport::EventLoop& loop() { return loop_; }

  void submitOnLoop(Request request, Callback done) {
    if (!status_.isOk() || shut_down_) {
      stats_.failed.inc();
      deliver(std::move(done), shut_down_ ? unavailable("HTTP/2 client shut down") : status_);
      return;
    }
    if (queue_.size() >= options_.max_queued) {
      stats_.queue_full.inc();
      stats_.failed.inc();
      deliver(std::move(done), unavailable("HTTP/2 request queue full"));
      return;
    }
    stats_.requests.inc();
    const std::uint64_t id = ++next_id_;
    Duration timeout =
        request.timeout > Duration::zero() ? request.timeout : options_.request_timeout;
    Pending p;
    p.req = std::move(request);
    p.done = std::move(done);
    std::weak_ptr<Impl> weak = shared_from_this();
    p.timer = loop_.timers().schedule(timeout, [weak, id] {
      if (auto self = weak.lock()) self->onRequestTimeout(id);
    });
    reqs_.emplace(id, std::move(p));
    queue_.push_back(id);
    pump();
  }

  void shutdown() {
    shut_down_ = true;
    if (backoff_timer_ != 0) loop_.timers().cancel(backoff_timer_);
    backoff_timer_ = 0;
    std::vector<std::uint64_t> ids;
    for (auto& [id, p] : reqs_) ids.push_back(id);
    for (auto id : ids) complete(id, unavailable("HTTP/2 client shut down"));
    auto conns = conns_;
    for (auto& c : conns) closeConn(c);
  }

 private:
  // ---- request completion ----
  void deliver(Callback done, Result<Response> result) {
    loop_.post([done = std::move(done), result = std::move(result)]() mutable {
      if (done) done(std::move(result));
    });
  }

  void complete(std::uint64_t id, Result<Response> result) {
    auto it = reqs_.find(id);
    if (it == reqs_.end()) return;
    Pending p = std::move(it->second);
    reqs_.erase(it);
    if (p.timer != 0) loop_.timers().cancel(p.timer);
    if (p.conn != nullptr) p.conn->streams.erase(p.stream_id);
    if (result.isOk()) {
      stats_.responses.inc();
    } else {
      stats_.failed.inc();
    }
    deliver(std::move(p.done), std::move(result));
  }

  void onRequestTimeout(std::uint64_t id) {
    auto it = reqs_.find(id);
    if (it == reqs_.end()) return;
    it->second.timer = 0;
    stats_.timeouts.inc();
    Conn* c = it->second.conn;
    if (c != nullptr && c->session != nullptr && !c->closed) {
      nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, it->second.stream_id,
                                NGHTTP2_CANCEL);
    }
    complete(id, Status(StatusCode::kTimedOut, "HTTP/2 request timed out"));
    if (c != nullptr) {
      auto sp = findConn(c);
      if (sp && sp->http1) {
        retireHttp1(sp);  // the late answer would be taken for the next request's
      } else if (sp) {
        flush(sp);
      }
    }
  }

  std::shared_ptr<Conn> findConn(Conn* c) {
    for (auto& sp : conns_) {
      if (sp.get() == c) return sp;
    }
    return nullptr;
  }

  // ---- scheduling ----
  std::size_t queuedCount() const { return queue_.size(); }

  void pump() {
    if (shut_down_) return;
    // Drop ids that completed (timed out) while queued.
    while (!queue_.empty() && !reqs_.contains(queue_.front())) queue_.pop_front();
    if (queue_.empty()) return;
    if (!active_) {
      if (backoff_timer_ == 0) connect();
      return;
    }
    Conn& c = *active_;
    if (!c.established || !c.settings_received || c.goaway || c.closed) return;
    if (c.http1) {
      if (c.streams.empty() && !c.writing) startHttp1(active_);
      return;
    }
    std::uint32_t limit = std::min<std::uint32_t>(
        options_.max_streams,
        nghttp2_session_get_remote_settings(c.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
    if (options_.single_stream_until_success && !c.had_success) limit = 1;
    while (!queue_.empty() && c.streams.size() < limit) {
      std::uint64_t id = queue_.front();
      queue_.pop_front();
      auto it = reqs_.find(id);
      if (it == reqs_.end()) continue;
      startStream(c, id, it->second);
    }
    flush(active_);
  }

  void startStream(Conn& c, std::uint64_t id, Pending& p) {
    const std::string kMethod = ":method", kScheme = ":scheme", kAuthority = ":authority",
                      kPath = ":path", kHttps = "https";
    const std::string& authority = p.req.authority.empty() ? options_.host : p.req.authority;
    std::string authority_with_port = authority;
    if (p.req.authority.empty() && options_.port != 443) {
      authority_with_port += ":" + std::to_string(options_.port);
    }
    std::vector<nghttp2_nv> nva;
    nva.reserve(4 + p.req.headers.size());
    nva.push_back(makeNv(kMethod, p.req.method));
    nva.push_back(makeNv(kScheme, kHttps));
    nva.push_back(makeNv(kAuthority, authority_with_port));
    nva.push_back(makeNv(kPath, p.req.path));
    for (auto& h : p.req.headers) {
      // HTTP/2 field names are lower case; a peer treats anything else as malformed.
      for (auto& ch : h.name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      nva.push_back(makeNv(h.name, h.value));
    }
    nghttp2_data_provider dp;
    dp.source.ptr = nullptr;
    dp.read_callback = &Impl::onReadBody;
    p.body_offset = 0;
    p.resp = Response{};
    int32_t sid = nghttp2_submit_request(c.session, nullptr, nva.data(), nva.size(),
                                         p.req.body.empty() ? nullptr : &dp, nullptr);
    if (sid < 0) {
      complete(id, internalError(std::string("HTTP/2 submit failed: ") + nghttp2_strerror(sid)));
      return;
    }
    p.conn = &c;
    p.stream_id = sid;
    c.streams.emplace(sid, id);
  }

  // ---- connection ----
  void connect() {
    auto c = std::make_shared<Conn>(loop_.io(), *tls_);
    c->owner = this;
    c->gen = ++conn_gen_;
    conns_.push_back(c);
    active_ = c;
    auto self = shared_from_this();
    std::weak_ptr<Impl> weak = self;
    std::weak_ptr<Conn> wc = c;
    c->connect_timer = loop_.timers().schedule(options_.connect_timeout, [weak, wc] {
      auto s = weak.lock();
      auto cc = wc.lock();
      if (!s || !cc) return;
      cc->connect_timer = 0;
      if (!cc->established) s->connectFailed(cc, "connect timed out");
    });
    const std::string& where =
        options_.connect_address.empty() ? options_.host : options_.connect_address;
    c->resolver.async_resolve(
        where, std::to_string(options_.port),
        [self, c](const asio::error_code& ec, asio::ip::tcp::resolver::results_type results) {
          if (c->closed) return;
          if (ec) return self->connectFailed(c, "resolve: " + ec.message());
          asio::async_connect(
              c->tls.lowest_layer(), results,
              [self, c](const asio::error_code& ec2, const asio::ip::tcp::endpoint&) {
                if (c->closed) return;
                if (ec2) return self->connectFailed(c, "connect: " + ec2.message());
                self->startTls(c);
              });
        });
  }

  void startTls(const std::shared_ptr<Conn>& c) {
    asio::error_code ec;
    c->tls.lowest_layer().set_option(asio::ip::tcp::no_delay(true), ec);
    transport::expectPeerName(c->tls.native_handle(), options_.host);
    auto self = shared_from_this();
    c->tls.async_handshake(asio::ssl::stream_base::client, [self, c](const asio::error_code& hec) {
      if (c->closed) return;
      if (hec) {
        return self->connectFailed(
            c, "TLS handshake: " + transport::handshakeFailure(c->tls.native_handle(), hec));
      }
      const unsigned char* alpn = nullptr;
      unsigned int alpn_len = 0;
      SSL_get0_alpn_selected(c->tls.native_handle(), &alpn, &alpn_len);
      const std::string_view selected(reinterpret_cast<const char*>(alpn), alpn_len);
      if (selected == "h2") return self->startSession(c);
      if (self->options_.allow_http1 && (selected == "http/1.1" || selected.empty())) {
        return self->startHttp1Session(c);
      }
      return self->connectFailed(c, "server did not select ALPN h2");
    });
  }

  void startSession(const std::shared_ptr<Conn>& c) {
    if (nghttp2_session_client_new(&c->session, callbacks(), c.get()) != 0) {
      return connectFailed(c, "nghttp2 session creation failed");
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 2);
    c->established = true;
    if (c->connect_timer != 0) loop_.timers().cancel(c->connect_timer);
    c->connect_timer = 0;
    stats_.connects.inc();
    SW_LOG_DEBUG("http2: connected to {}:{}", options_.host, options_.port);
    c->last_activity = loop_.timers().now();
    if (options_.idle_ping > Duration::zero()) armPing(c, options_.idle_ping);
    flush(c);
    read(c);
  }

  // ---- HTTP/1.1 fallback ----
  void startHttp1Session(const std::shared_ptr<Conn>& c) {
    c->http1 = true;
    c->h1_parser =
        std::make_unique<http1::Parser>(http1::Parser::Kind::kResponse, kMaxResponseBody);
    c->established = true;
    c->settings_received = true;  // nothing to negotiate
    if (c->connect_timer != 0) loop_.timers().cancel(c->connect_timer);
    c->connect_timer = 0;
    backoff_ = Duration::zero();
    stats_.connects.inc();
    stats_.http1_connects.inc();
    SW_LOG_DEBUG("http2: connected to {}:{} (HTTP/1.1)", options_.host, options_.port);
    readHttp1(c);
    pump();
  }

  void startHttp1(const std::shared_ptr<Conn>& c) {
    while (!queue_.empty()) {
      std::uint64_t id = queue_.front();
      queue_.pop_front();
      auto it = reqs_.find(id);
      if (it == reqs_.end()) continue;
      Pending& p = it->second;
      p.conn = c.get();
      p.stream_id = kHttp1Stream;
      p.resp = Response{};
      c->streams[kHttp1Stream] = id;
      std::string authority = p.req.authority;
      if (authority.empty()) {
        authority = options_.host.find(':') != std::string::npos ? "[" + options_.host + "]"
                                                                 : options_.host;
        if (options_.port != 443) authority += ":" + std::to_string(options_.port);
      }
      for (auto& h : p.req.headers) {
        for (auto& ch : h.name)
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      }
      c->wbuf = http1::serializeRequest(p.req, authority);
      // pump() afterwards: an early answer may have freed the connection meanwhile.
      return writeBuffer(c, &Impl::pump);
    }
  }

  void readHttp1(const std::shared_ptr<Conn>& c) {
    auto self = shared_from_this();
    c->tls.async_read_some(asio::buffer(c->rbuf), [self, c](const asio::error_code& ec,
                                                            std::size_t n) {
      if (c->closed) return;
      http1::Parser& parser = *c->h1_parser;
      http1::Parser::State st =
          ec ? parser.finish()
             : parser.feed(std::string_view(reinterpret_cast<const char*>(c->rbuf.data()), n));
      if (st == http1::Parser::State::kError) {
        return self->connectionLost(c, "HTTP/1.1 error: " + parser.error());
      }
      if (st == http1::Parser::State::kComplete) {
        auto it = c->streams.find(kHttp1Stream);
        if (it == c->streams.end()) {
          return self->connectionLost(c, "HTTP/1.1 response without a request");
        }
        std::uint64_t id = it->second;
        c->streams.erase(it);
        Response resp = std::move(parser.response());
        const bool keep = parser.keepAlive() && !ec;
        self->complete(id, std::move(resp));
        if (!keep) return self->retireHttp1(c);
        if (parser.next() != http1::Parser::State::kIncomplete || !parser.idle()) {
          return self->connectionLost(c, "HTTP/1.1 bytes after the response");
        }
        self->pump();
      } else if (ec) {
        // Closed while idle (keep-alive timeout of the server): clean; else the request is lost.
        if (c->streams.empty()) return self->retireHttp1(c);
        return self->connectionLost(c, ec == asio::error::eof ? "closed by peer" : ec.message());
      }
      if (!c->closed) self->readHttp1(c);
    });
  }

  // Closes an HTTP/1.1 connection that cannot carry another request; no backoff.
  void retireHttp1(const std::shared_ptr<Conn>& c) {
    if (c->closed) return;
    stats_.disconnects.inc();
    closeConn(c);
    failInFlight(c.get(), "HTTP/1.1 connection closed");
    pump();
  }

  // Keep-alive: PING after idle_ping without input; no ACK within connect_timeout = dead.
  void armPing(const std::shared_ptr<Conn>& c, Duration delay) {
    std::weak_ptr<Impl> weak = shared_from_this();
    std::weak_ptr<Conn> wc = c;
    c->ping_timer = loop_.timers().schedule(delay, [weak, wc] {
      auto self = weak.lock();
      auto cc = wc.lock();
      if (self && cc) self->onPingTimer(cc);
    });
  }

  void onPingTimer(const std::shared_ptr<Conn>& c) {
    c->ping_timer = 0;
    if (c->closed) return;
    if (c->ping_outstanding) return connectionLost(c, "PING timeout");
    const Duration idle = loop_.timers().now() - c->last_activity;
    if (idle < options_.idle_ping) return armPing(c, options_.idle_ping - idle);
    nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, nullptr);
    c->ping_outstanding = true;
    stats_.pings.inc();
    flush(c);
    if (!c->closed) armPing(c, options_.connect_timeout);
  }

  void connectFailed(const std::shared_ptr<Conn>& c, const std::string& why) {
    if (c->closed) return;
    stats_.connect_failures.inc();
    SW_LOG_WARN("http2: connection to {}:{} failed: {}", options_.host, options_.port, why);
    closeConn(c);
    // Queued requests fail now: the caller owns the retry policy; the backoff spaces attempts.
    std::vector<std::uint64_t> queued(queue_.begin(), queue_.end());
    queue_.clear();
    for (auto id : queued) complete(id, unavailable("HTTP/2 connection failed: " + why));
    failInFlight(c.get(), "HTTP/2 connection failed: " + why);
    startBackoff();
  }

  void startBackoff() {
    if (shut_down_ || backoff_timer_ != 0) return;
    backoff_ = backoff_ == Duration::zero() ? options_.backoff_initial
                                            : std::min(backoff_ * 2, options_.backoff_max);
    // Jitter: a uniformly chosen delay in [backoff/2, backoff].
    auto ticks = backoff_.count();
    std::uniform_int_distribution<Duration::rep> dist(ticks / 2, std::max<Duration::rep>(ticks, 1));
    Duration delay(dist(rng_));
    std::weak_ptr<Impl> weak = shared_from_this();
    backoff_timer_ = loop_.timers().schedule(delay, [weak] {
      if (auto self = weak.lock()) {
        self->backoff_timer_ = 0;
        self->pump();
      }
    });
  }

  void failInFlight(Conn* c, const std::string& why) {
    std::vector<std::uint64_t> ids;
    for (auto& [sid, id] : c->streams) ids.push_back(id);
    for (auto id : ids) complete(id, unavailable(why));
    c->streams.clear();
  }

  void connectionLost(const std::shared_ptr<Conn>& c, const std::string& why) {
    if (c->closed) return;
    stats_.disconnects.inc();
    SW_LOG_INFO("http2: connection to {}:{} lost: {}", options_.host, options_.port, why);
    bool was_clean = c->goaway && c->streams.empty();
    closeConn(c);
    failInFlight(c.get(), "HTTP/2 connection lost: " + why);
    if (!was_clean) startBackoff();
    pump();
  }

  void closeConn(const std::shared_ptr<Conn>& c) {
    if (c->closed) return;
    c->closed = true;
    if (c->connect_timer != 0) loop_.timers().cancel(c->connect_timer);
    c->connect_timer = 0;
    if (c->ping_timer != 0) loop_.timers().cancel(c->ping_timer);
    c->ping_timer = 0;
    asio::error_code ec;
    c->resolver.cancel();
    c->tls.lowest_layer().close(ec);
    if (active_ == c) active_.reset();
    conns_.erase(std::remove(conns_.begin(), conns_.end(), c), conns_.end());
  }

  void read(const std::shared_ptr<Conn>& c) {
    auto self = shared_from_this();
    c->tls.async_read_some(asio::buffer(c->rbuf), [self, c](const asio::error_code& ec,
                                                            std::size_t n) {
      if (c->closed) return;
      if (ec) {
        return self->connectionLost(c, ec == asio::error::eof ? "closed by peer" : ec.message());
      }
      ssize_t rv = nghttp2_session_mem_recv(c->session, c->rbuf.data(), n);
      if (rv < 0)
        return self->connectionLost(
            c, std::string("HTTP/2 error: ") + nghttp2_strerror(static_cast<int>(rv)));
      c->last_activity = self->loop_.timers().now();
      self->pump();
      self->flush(c);
      if (!c->closed) self->read(c);
    });
  }

  void flush(const std::shared_ptr<Conn>& c) {
    if (c->closed || c->writing || c->session == nullptr) return;
    c->wbuf.clear();
    while (c->wbuf.size() < kWriteChunk) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(c->session, &data);
      if (n < 0)
        return connectionLost(
            c, std::string("HTTP/2 error: ") + nghttp2_strerror(static_cast<int>(n)));
      if (n == 0) break;
      c->wbuf.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (c->wbuf.empty()) {
      maybeRetire(c);
      return;
    }
    writeBuffer(c, nullptr);
  }

  // Writes c->wbuf; then runs `then` (nullptr: flush(c) for more HTTP/2 output).
  void writeBuffer(const std::shared_ptr<Conn>& c, void (Impl::*then)()) {
    c->writing = true;
    auto self = shared_from_this();
    asio::async_write(c->tls, asio::buffer(c->wbuf),
                      [self, c, then](const asio::error_code& ec, std::size_t) {
                        c->writing = false;
                        if (c->closed) return;
                        if (ec) return self->connectionLost(c, ec.message());
                        if (then != nullptr) return (self.get()->*then)();
                        self->flush(c);
                      });
  }

  // A connection that received GOAWAY is closed once its last stream completed.
  void maybeRetire(const std::shared_ptr<Conn>& c) {
    if (c->closed || c->writing) return;
    bool done = c->goaway ? c->streams.empty()
                          : (c->session && !nghttp2_session_want_read(c->session) &&
                             !nghttp2_session_want_write(c->session));
    if (!done) return;
    stats_.disconnects.inc();
    closeConn(c);
    pump();
  }

  // ---- nghttp2 callbacks (run inside mem_recv/mem_send on the loop) ----
  static const nghttp2_session_callbacks* callbacks() {
    static nghttp2_session_callbacks* cbs = [] {
      nghttp2_session_callbacks* p = nullptr;
      nghttp2_session_callbacks_new(&p);
      nghttp2_session_callbacks_set_on_header_callback(p, &Impl::onHeader);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(p, &Impl::onDataChunk);
      nghttp2_session_callbacks_set_on_stream_close_callback(p, &Impl::onStreamClose);
      nghttp2_session_callbacks_set_on_frame_recv_callback(p, &Impl::onFrameRecv);
      return p;
    }();
    return cbs;
  }

  Pending* pendingFor(Conn* c, int32_t stream_id) {
    auto it = c->streams.find(stream_id);
    if (it == c->streams.end()) return nullptr;
    auto rit = reqs_.find(it->second);
    return rit == reqs_.end() ? nullptr : &rit->second;
  }

  static ssize_t onReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                            uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
    Conn* c = static_cast<Conn*>(user_data);
    Pending* p = c->owner->pendingFor(c, stream_id);
    if (p == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    std::size_t n = std::min(length, p->req.body.size() - p->body_offset);
    std::memcpy(buf, p->req.body.data() + p->body_offset, n);
    p->body_offset += n;
    if (p->body_offset == p->req.body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Conn* c = static_cast<Conn*>(user_data);
    Pending* p = c->owner->pendingFor(c, frame->hd.stream_id);
    if (p == nullptr) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      int status = 0;
      for (char ch : v) status = status * 10 + (ch - '0');
      if (status >= 200) p->resp.status = status;  // 1xx are informational
    } else if (!n.empty() && n[0] != ':') {
      p->resp.headers.push_back(Header{std::string(n), std::string(v)});
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t len, void* user_data) {
    Conn* c = static_cast<Conn*>(user_data);
    Pending* p = c->owner->pendingFor(c, stream_id);
    if (p == nullptr) return 0;
    if (p->resp.body.size() + len <= kMaxResponseBody) {
      p->resp.body.append(reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                           void* user_data) {
    Conn* c = static_cast<Conn*>(user_data);
    Impl* self = c->owner;
    auto it = c->streams.find(stream_id);
    if (it == c->streams.end()) return 0;
    std::uint64_t id = it->second;
    c->streams.erase(it);
    auto rit = self->reqs_.find(id);
    if (rit == self->reqs_.end()) return 0;
    Pending& p = rit->second;
    p.conn = nullptr;
    if (error_code == NGHTTP2_REFUSED_STREAM && p.resp.status == 0) {
      // Never processed (GOAWAY above last_stream_id, or refused): safe to retry elsewhere.
      self->stats_.retried.inc();
      p.stream_id = 0;
      self->queue_.push_front(id);
      return 0;
    }
    if (error_code == NGHTTP2_NO_ERROR && p.resp.status != 0) {
      if (p.resp.status >= 200 && p.resp.status < 300) c->had_success = true;
      self->complete(id, std::move(p.resp));
    } else {
      self->complete(id, unavailable(std::string("HTTP/2 stream reset: ") +
                                     nghttp2_http2_strerror(error_code)));
    }
    return 0;
  }

  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    Conn* c = static_cast<Conn*>(user_data);
    Impl* self = c->owner;
    if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
      c->settings_received = true;
      self->backoff_ = Duration::zero();  // a working connection resets the backoff
    } else if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
      c->ping_outstanding = false;
      if (c->ping_timer != 0) self->loop_.timers().cancel(c->ping_timer);
      c->ping_timer = 0;
      if (auto sp = self->findConn(c)) self->armPing(sp, self->options_.idle_ping);
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
      self->stats_.goaways.inc();
      c->goaway = true;
      SW_LOG_INFO("http2: GOAWAY from {}:{} (last stream {}, {})", self->options_.host,
                  self->options_.port, frame->goaway.last_stream_id,
                  nghttp2_http2_strerror(frame->goaway.error_code));
      for (auto& sp : self->conns_) {
        if (sp.get() == c && self->active_ == sp) self->active_.reset();
      }
    }
    return 0;
  }

  transport::EventLoop& loop_;
  ClientOptions options_;
  Status status_;
  std::shared_ptr<asio::ssl::context> tls_;
  ClientStats stats_;
  std::unordered_map<std::uint64_t, Pending> reqs_;
  std::deque<std::uint64_t> queue_;  // waiting for a stream; may hold completed ids (skipped)
  std::vector<std::shared_ptr<Conn>> conns_;
  std::shared_ptr<Conn> active_;  // the connection new streams go to
  std::uint64_t next_id_ = 0;
  std::uint64_t conn_gen_ = 0;
  Duration backoff_{};
  TimerId backoff_timer_ = 0;
  bool shut_down_ = false;
  std::mt19937_64 rng_;
};

Http2Client::Http2Client(transport::EventLoop& loop, ClientOptions options)
    : impl_(std::make_shared<Impl>(loop, std::move(options))) {}

Http2Client::~Http2Client() {
  impl_->loop().runOrPost([impl = impl_] { impl->shutdown(); });
}

Status Http2Client::status() const { return impl_->status(); }

void Http2Client::submit(Request request, Callback done) {
  impl_->loop().runOrPost(
      [impl = impl_, request = std::move(request), done = std::move(done)]() mutable {
        impl->submitOnLoop(std::move(request), std::move(done));
      });
}

const ClientStats& Http2Client::stats() const { return impl_->stats(); }
const ClientOptions& Http2Client::options() const { return impl_->options(); }

}  // namespace sipwake::http2
