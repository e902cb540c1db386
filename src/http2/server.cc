#include "http2/server.h"

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <cstring>
#include <map>
#include <unordered_map>
#include <vector>

#include "common/log.h"
#include "http2/http1.h"
#include "http2/listen_util.h"
#include "http2/nghttp2_util.h"
#include "http2/tls.h"
#include "transport/event_loop.h"

namespace sipwake::http2 {
namespace {

constexpr std::size_t kWriteChunk = 64 * 1024;

using detail::makeNv;

}  // namespace

class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  struct Stream {
    Request req;
    bool dispatched = false;
    bool answered = false;
    bool too_large = false;
    std::string out_body;
    std::size_t out_offset = 0;
  };

  ServerConnection(transport::EventLoop& loop, asio::ip::tcp::socket socket,
                   asio::ssl::context& ctx, const ServerOptions& options,
                   const Http2Server::Handler& handler, ServerStats& stats, std::uint64_t id,
                   std::function<void(ServerConnection*)> on_closed)
      : loop_(loop),
        tls_(std::move(socket), ctx),
        options_(options),
        handler_(handler),
        stats_(stats),
        id_(id),
        on_closed_(std::move(on_closed)) {}
  ~ServerConnection() {
    if (session_) nghttp2_session_del(session_);
  }

  transport::EventLoop& loop() { return loop_; }

  void start() {
    auto self = shared_from_this();
    tls_.async_handshake(asio::ssl::stream_base::server, [self](const asio::error_code& ec) {
      if (self->closed_) return;
      if (ec) {
        self->stats_.tls_failures.inc();
        SW_LOG_DEBUG("http2 server: TLS handshake failed: {}", ec.message());
        return self->close();
      }
      const unsigned char* alpn = nullptr;
      unsigned int alpn_len = 0;
      SSL_get0_alpn_selected(self->tls_.native_handle(), &alpn, &alpn_len);
      const std::string_view selected(reinterpret_cast<const char*>(alpn), alpn_len);
      if (self->options_.protocols != AlpnProtocols::kH2 &&
          (selected == "http/1.1" || selected.empty())) {
        return self->startHttp1();
      }
      if (selected != "h2") {
        self->stats_.tls_failures.inc();
        return self->close();
      }
      if (nghttp2_session_server_new(&self->session_, callbacks(), self.get()) != 0) {
        return self->close();
      }
      nghttp2_settings_entry iv[] = {
          {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, self->options_.max_concurrent_streams}};
      nghttp2_submit_settings(self->session_, NGHTTP2_FLAG_NONE, iv, 1);
      self->stats_.connections.inc();
      self->flush();
      self->read();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    tls_.lowest_layer().close(ec);
    if (on_closed_) on_closed_(this);
  }

  // On the loop.
  void respond(int32_t stream_id, Response response) {
    Stream* s = find(stream_id);
    if (s == nullptr || s->answered || closed_) return;
    s->answered = true;
    if (http1_) {
      streams_.erase(stream_id);
      return writeHttp1(http1::serializeResponse(response, h1_keep_alive_), !h1_keep_alive_);
    }
    std::vector<std::string> storage;
    storage.reserve(1 + 2 * response.headers.size());
    std::vector<nghttp2_nv> nva;
    const std::string kStatus = ":status";
    std::string status = std::to_string(response.status);
    nva.push_back(makeNv(kStatus, status));
    for (auto& h : response.headers) {
      std::transform(h.name.begin(), h.name.end(), h.name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      nva.push_back(makeNv(h.name, h.value));
    }
    s->out_body = std::move(response.body);
    nghttp2_data_provider dp;
    dp.source.ptr = nullptr;
    dp.read_callback = &ServerConnection::onReadBody;
    nghttp2_submit_response(session_, stream_id, nva.data(), nva.size(),
                            s->out_body.empty() ? nullptr : &dp);
    flush();
  }

  void goaway(int32_t stream_id) {
    if (http1_) return close();
    if (closed_ || session_ == nullptr) return;
    Stream* s = find(stream_id);
    if (s != nullptr) s->answered = true;
    stats_.goaways_sent.inc();
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, std::max(0, stream_id - 2), NGHTTP2_NO_ERROR,
                          nullptr, 0);
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_REFUSED_STREAM);
    flush();
  }

  void reset(int32_t stream_id) {
    Stream* s = find(stream_id);
    if (s == nullptr || s->answered || closed_) return;
    if (http1_) return close();
    s->answered = true;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_INTERNAL_ERROR);
    flush();
  }

 private:
  // ---- HTTP/1.1 mode: read one request, hand it to the handler, write its answer, repeat ----
  void startHttp1() {
    http1_ = true;
    h1_parser_ =
        std::make_unique<http1::Parser>(http1::Parser::Kind::kRequest, options_.max_request_body);
    stats_.connections.inc();
    processHttp1();
  }

  void processHttp1() {
    if (closed_ || h1_awaiting_) return;
    switch (h1_parser_->state()) {
      case http1::Parser::State::kError: {
        SW_LOG_DEBUG("http2 server: bad HTTP/1.1 request: {}", h1_parser_->error());
        Response bad;
        bad.status = 400;
        bad.headers.push_back({"content-type", "text/plain"});
        bad.body = h1_parser_->error() + "\n";
        h1_awaiting_ = true;
        return writeHttp1(http1::serializeResponse(bad, false), true);
      }
      case http1::Parser::State::kComplete: {
        h1_awaiting_ = true;
        h1_keep_alive_ = h1_parser_->keepAlive();
        const int32_t id = ++h1_seq_;
        Stream& s = streams_[id];
        s.req = std::move(h1_parser_->request());
        s.req.connection_id = id_;
        s.req.authority = std::string(s.req.header("host"));
        s.dispatched = true;
        stats_.requests.inc();
        if (handler_) handler_(s.req, Responder(weak_from_this(), id));
        return;
      }
      case http1::Parser::State::kIncomplete:
        return readHttp1();
    }
  }

  void readHttp1() {
    auto self = shared_from_this();
    tls_.async_read_some(asio::buffer(rbuf_), [self](const asio::error_code& ec, std::size_t n) {
      if (self->closed_) return;
      if (ec) return self->close();
      self->h1_parser_->feed(
          std::string_view(reinterpret_cast<const char*>(self->rbuf_.data()), n));
      self->processHttp1();
    });
  }

  void writeHttp1(std::string data, bool close_after) {
    if (closed_) return;
    wbuf_ = std::move(data);
    writing_ = true;
    auto self = shared_from_this();
    asio::async_write(tls_, asio::buffer(wbuf_),
                      [self, close_after](const asio::error_code& ec, std::size_t) {
                        self->writing_ = false;
                        if (self->closed_) return;
                        if (ec || close_after) return self->close();
                        self->h1_awaiting_ = false;
                        self->h1_parser_->next();
                        self->processHttp1();
                      });
  }

  Stream* find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : &it->second;
  }

  void read() {
    auto self = shared_from_this();
    tls_.async_read_some(asio::buffer(rbuf_), [self](const asio::error_code& ec, std::size_t n) {
      if (self->closed_) return;
      if (ec) return self->close();
      ssize_t rv = nghttp2_session_mem_recv(self->session_, self->rbuf_.data(), n);
      if (rv < 0) {
        SW_LOG_DEBUG("http2 server: protocol error: {}", nghttp2_strerror(static_cast<int>(rv)));
        return self->close();
      }
      self->flush();
      if (!self->closed_) self->read();
    });
  }

  void flush() {
    if (closed_ || writing_ || session_ == nullptr) return;
    wbuf_.clear();
    while (wbuf_.size() < kWriteChunk) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) return close();
      if (n == 0) break;
      wbuf_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (wbuf_.empty()) {
      if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) close();
      return;
    }
    writing_ = true;
    auto self = shared_from_this();
    asio::async_write(tls_, asio::buffer(wbuf_), [self](const asio::error_code& ec, std::size_t) {
      self->writing_ = false;
      if (self->closed_) return;
      if (ec) return self->close();
      self->flush();
    });
  }

  void dispatch(int32_t stream_id) {
    Stream* s = find(stream_id);
    if (s == nullptr || s->dispatched) return;
    s->dispatched = true;
    if (s->too_large) {
      s->answered = true;
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_REFUSED_STREAM);
      return;
    }
    stats_.requests.inc();
    if (handler_) handler_(s->req, Responder(weak_from_this(), stream_id));
  }

  static const nghttp2_session_callbacks* callbacks() {
    static nghttp2_session_callbacks* cbs = [] {
      nghttp2_session_callbacks* p = nullptr;
      nghttp2_session_callbacks_new(&p);
      nghttp2_session_callbacks_set_on_begin_headers_callback(p, &ServerConnection::onBeginHeaders);
      nghttp2_session_callbacks_set_on_header_callback(p, &ServerConnection::onHeader);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(p, &ServerConnection::onData);
      nghttp2_session_callbacks_set_on_frame_recv_callback(p, &ServerConnection::onFrameRecv);
      nghttp2_session_callbacks_set_on_stream_close_callback(p, &ServerConnection::onStreamClose);
      return p;
    }();
    return cbs;
  }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto* c = static_cast<ServerConnection*>(user_data);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      Stream& s = c->streams_[frame->hd.stream_id];
      s.req.method.clear();
      s.req.connection_id = c->id_;
    }
    return 0;
  }

  static int onHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    auto* c = static_cast<ServerConnection*>(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* s = c->find(frame->hd.stream_id);
    if (s == nullptr) return 0;
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":method") {
      s->req.method = std::move(v);
    } else if (n == ":path") {
      s->req.path = std::move(v);
    } else if (n == ":authority") {
      s->req.authority = std::move(v);
    } else if (!n.empty() && n[0] != ':') {
      s->req.headers.push_back(Header{std::move(n), std::move(v)});
    }
    return 0;
  }

  static int onData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                    void* user_data) {
    auto* c = static_cast<ServerConnection*>(user_data);
    Stream* s = c->find(stream_id);
    if (s == nullptr) return 0;
    if (s->req.body.size() + len > c->options_.max_request_body) {
      s->too_large = true;
    } else {
      s->req.body.append(reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }

  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    auto* c = static_cast<ServerConnection*>(user_data);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      c->dispatch(frame->hd.stream_id);
    }
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
    auto* c = static_cast<ServerConnection*>(user_data);
    c->streams_.erase(stream_id);
    return 0;
  }

  static ssize_t onReadBody(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length,
                            uint32_t* data_flags, nghttp2_data_source*, void* user_data) {
    auto* c = static_cast<ServerConnection*>(user_data);
    Stream* s = c->find(stream_id);
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    std::size_t n = std::min(length, s->out_body.size() - s->out_offset);
    std::memcpy(buf, s->out_body.data() + s->out_offset, n);
    s->out_offset += n;
    if (s->out_offset == s->out_body.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  transport::EventLoop& loop_;
  asio::ssl::stream<asio::ip::tcp::socket> tls_;
  const ServerOptions& options_;
  const Http2Server::Handler& handler_;
  ServerStats& stats_;
  std::uint64_t id_;
  std::function<void(ServerConnection*)> on_closed_;
  nghttp2_session* session_ = nullptr;
  bool closed_ = false;
  bool writing_ = false;
  bool http1_ = false;
  std::unique_ptr<http1::Parser> h1_parser_;
  bool h1_awaiting_ = false;  // a request is with the handler (or its answer being written)
  bool h1_keep_alive_ = true;
  int32_t h1_seq_ = 0;
  std::array<uint8_t, 16384> rbuf_{};
  std::string wbuf_;
  std::map<int32_t, Stream> streams_;
};

Responder::Responder(std::weak_ptr<ServerConnection> conn, int32_t stream_id)
    : conn_(std::move(conn)), stream_id_(stream_id) {}

void Responder::respond(Response response) const {
  auto c = conn_.lock();
  if (!c) return;
  c->loop().post(
      [c, id = stream_id_, r = std::move(response)]() mutable { c->respond(id, std::move(r)); });
}

void Responder::goaway() const {
  auto c = conn_.lock();
  if (!c) return;
  c->loop().post([c, id = stream_id_] { c->goaway(id); });
}

void Responder::reset() const {
  auto c = conn_.lock();
  if (!c) return;
  c->loop().post([c, id = stream_id_] { c->reset(id); });
}

class Http2Server::Impl : public std::enable_shared_from_this<Http2Server::Impl> {
 public:
  Impl(transport::EventLoop& loop, ServerOptions options, Handler handler)
      : loop_(loop),
        options_(std::move(options)),
        handler_(std::move(handler)),
        acceptor_(loop.io()) {}

  Status start(std::uint16_t& port_out) {
    auto ctx = makeServerTlsContext(options_.cert_file, options_.key_file, options_.protocols);
    if (!ctx) return ctx.status();
    tls_ = *ctx;
    if (Status s = bindAndListen(acceptor_, options_.listen_host, options_.port, port_out); !s) {
      return s;
    }
    loop_.post([self = shared_from_this()] {
      acceptLoop(
          self->acceptor_, [self] { return self->stopped_; },
          [self](asio::ip::tcp::socket socket) { self->serve(std::move(socket)); });
    });
    return Status::ok();
  }

  void stopOnLoop() {
    stopped_ = true;
    asio::error_code ec;
    acceptor_.close(ec);
    conns_->closeAll();
  }

  const ServerStats& stats() const { return stats_; }

 private:
  void serve(asio::ip::tcp::socket socket) {
    asio::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto conn = std::make_shared<ServerConnection>(loop_, std::move(socket), *tls_, options_,
                                                   handler_, stats_, ++next_conn_id_,
                                                   conns_->remover());
    conns_->add(conn);
    conn->start();
  }

  transport::EventLoop& loop_;
  ServerOptions options_;
  Handler handler_;
  std::shared_ptr<asio::ssl::context> tls_;
  asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<ConnectionSet<ServerConnection>> conns_ =
      std::make_shared<ConnectionSet<ServerConnection>>();
  ServerStats stats_;
  std::uint64_t next_conn_id_ = 0;
  bool stopped_ = false;
};

Http2Server::Http2Server(transport::EventLoop& loop, ServerOptions options, Handler handler)
    : loop_(loop), impl_(std::make_shared<Impl>(loop, std::move(options), std::move(handler))) {}

Http2Server::~Http2Server() { stop(); }

Status Http2Server::start() { return impl_->start(port_); }

void Http2Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  auto impl = impl_;
  runOnLoopAndWait(loop_, [impl] { impl->stopOnLoop(); });
}

const ServerStats& Http2Server::stats() const { return impl_->stats(); }

}  // namespace sipwake::http2
