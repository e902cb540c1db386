#include "http2/http1_server.h"

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <optional>
#include <vector>

#include "common/log.h"
#include "http2/http1.h"
#include "http2/listen_util.h"
#include "transport/event_loop.h"

namespace sipwake::http2 {

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using OnClose = std::function<void(Connection*)>;
  using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;

  Connection(asio::ip::tcp::socket socket, const Http1ServerOptions& options,
             const Http1Server::AsyncHandler& handler, Http1ServerStats& stats, OnClose on_close)
      : timer_(socket.get_executor()),
        options_(options),
        handler_(handler),
        stats_(stats),
        parser_(http1::Parser::Kind::kRequest, options.max_request_body),
        on_close_(std::move(on_close)) {
    if (options.tls) {
      tls_.emplace(std::move(socket), *options.tls);
    } else {
      plain_.emplace(std::move(socket));
    }
  }

  void start() {
    armTimer();
    if (!tls_) return process();
    auto self = shared_from_this();
    tls_->async_handshake(asio::ssl::stream_base::server, [self](const asio::error_code& ec) {
      if (self->closed_) return;
      if (ec) {
        self->stats_.tls_handshake_failures.inc();
        SW_LOG_DEBUG("http1 server: TLS handshake failed: {}", ec.message());
        return self->close();
      }
      self->process();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    asio::error_code ec;
    timer_.cancel();
    socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket().close(ec);
    if (on_close_) on_close_(this);
  }

 private:
  asio::ip::tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }

  // The whole request (and the wait for the next one) must fit in one idle_timeout.
  void armTimer() {
    timer_.expires_after(options_.idle_timeout);
    std::weak_ptr<Connection> weak = weak_from_this();
    timer_.async_wait([weak](const asio::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->close();
    });
  }

  void process() {
    if (closed_) return;
    switch (parser_.state()) {
      case http1::Parser::State::kError: {
        stats_.bad_requests.inc();
        SW_LOG_DEBUG("http1 server: bad request: {}", parser_.error());
        Response bad;
        bad.status = 400;
        bad.headers.push_back({"content-type", "text/plain"});
        bad.body = parser_.error() + "\n";
        return write(http1::serializeResponse(bad, false), true);
      }
      case http1::Parser::State::kComplete:
        stats_.requests.inc();
        timer_.cancel();  // the handler's answer is not cut by the idle timeout
        return dispatch();
      case http1::Parser::State::kIncomplete:
        return read();
    }
  }

  // Hands the complete request to the handler with a one-shot responder.
  void dispatch() {
    std::weak_ptr<Connection> weak = weak_from_this();
    auto executor = timer_.get_executor();
    auto answered = std::make_shared<std::atomic<bool>>(false);
    Http1Server::Responder respond = [weak, executor, answered](Response response) {
      if (answered->exchange(true)) return;
      asio::dispatch(executor, [weak, response = std::move(response)]() mutable {
        if (auto self = weak.lock(); self && !self->closed_) self->answer(std::move(response));
      });
    };
    if (!handler_) return respond(Response{});
    handler_(parser_.request(), std::move(respond));
  }

  void answer(Response response) {
    if (response.status == 0) response.status = 500;
    const bool keep_alive = parser_.keepAlive();
    write(http1::serializeResponse(response, keep_alive), !keep_alive);
  }

  void read() {
    auto self = shared_from_this();
    auto on_read = [self](const asio::error_code& ec, std::size_t n) {
      if (self->closed_) return;
      if (ec) return self->close();
      self->parser_.feed(std::string_view(self->rbuf_.data(), n));
      self->process();
    };
    if (tls_) {
      tls_->async_read_some(asio::buffer(rbuf_), std::move(on_read));
    } else {
      plain_->async_read_some(asio::buffer(rbuf_), std::move(on_read));
    }
  }

  void write(std::string data, bool close_after) {
    wbuf_ = std::move(data);
    auto self = shared_from_this();
    auto on_written = [self, close_after](const asio::error_code& ec, std::size_t) {
      if (self->closed_) return;
      if (ec || close_after) return self->close();
      self->parser_.next();
      self->armTimer();
      self->process();
    };
    if (tls_) {
      asio::async_write(*tls_, asio::buffer(wbuf_), std::move(on_written));
    } else {
      asio::async_write(*plain_, asio::buffer(wbuf_), std::move(on_written));
    }
  }

  std::optional<asio::ip::tcp::socket> plain_;
  std::optional<TlsStream> tls_;
  asio::steady_timer timer_;
  const Http1ServerOptions& options_;
  const Http1Server::AsyncHandler& handler_;
  Http1ServerStats& stats_;
  http1::Parser parser_;
  OnClose on_close_;
  std::array<char, 4096> rbuf_{};
  std::string wbuf_;
  bool closed_ = false;
};

}  // namespace

class Http1Server::Impl : public std::enable_shared_from_this<Http1Server::Impl> {
 public:
  Impl(transport::EventLoop& loop, Http1ServerOptions options, AsyncHandler handler)
      : loop_(loop),
        options_(std::move(options)),
        handler_(std::move(handler)),
        acceptor_(loop.io()) {}

  Status start(std::uint16_t& port_out) {
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

  const Http1ServerStats& stats() const { return stats_; }

 private:
  void serve(asio::ip::tcp::socket socket) {
    if (conns_->size() >= options_.max_connections) {
      stats_.connections_refused.inc();
      asio::error_code ignored;
      socket.close(ignored);
      return;
    }
    stats_.connections.inc();
    auto conn = std::make_shared<Connection>(std::move(socket), options_, handler_, stats_,
                                             conns_->remover());
    conns_->add(conn);
    conn->start();
  }

  transport::EventLoop& loop_;
  Http1ServerOptions options_;
  AsyncHandler handler_;
  asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<ConnectionSet<Connection>> conns_ = std::make_shared<ConnectionSet<Connection>>();
  Http1ServerStats stats_;
  bool stopped_ = false;
};

Http1Server::Http1Server(transport::EventLoop& loop, Http1ServerOptions options,
                         AsyncHandler handler)
    : loop_(loop), impl_(std::make_shared<Impl>(loop, std::move(options), std::move(handler))) {}

Http1Server::Http1Server(transport::EventLoop& loop, Http1ServerOptions options, Handler handler)
    : Http1Server(loop, std::move(options),
                  AsyncHandler([handler = std::move(handler)](const Request& r, Responder respond) {
                    respond(handler ? handler(r) : Response{});
                  })) {}

Http1Server::~Http1Server() { stop(); }

Status Http1Server::start() { return impl_->start(port_); }

void Http1Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  auto impl = impl_;
  runOnLoopAndWait(loop_, [impl] { impl->stopOnLoop(); });
}

const Http1ServerStats& Http1Server::stats() const { return impl_->stats(); }

}  // namespace sipwake::http2
