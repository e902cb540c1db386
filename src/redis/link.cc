#include "redis/link.h"

#include "transport/tls_client.h"

namespace sipwake::redis {

std::shared_ptr<Link> Link::create(transport::EventLoop& loop, LinkOptions options) {
  return std::shared_ptr<Link>(new Link(loop, std::move(options)));
}

Link::Link(transport::EventLoop& loop, LinkOptions options)
    : loop_(loop), options_(std::move(options)), resolver_(loop.io()), socket_(loop.io()) {
  if (options_.tls) tls_.emplace(loop.io(), *options_.tls);
}

Link::~Link() {
  if (connect_timer_) loop_.timers().cancel(*connect_timer_);
  if (timeout_timer_) loop_.timers().cancel(*timeout_timer_);
}

void Link::connect(std::function<void(Status)> done, std::function<void(Status)> on_closed) {
  connect_done_ = std::move(done);
  on_closed_ = std::move(on_closed);
  std::weak_ptr<Link> weak = weak_from_this();
  connect_timer_ = loop_.timers().schedule(options_.connect_timeout, [weak] {
    auto self = weak.lock();
    if (!self) return;
    self->connect_timer_.reset();
    self->connect_failure_ = "connect timed out";
    asio::error_code ignored;
    self->resolver_.cancel();
    self->lowest().close(ignored);
  });
  auto self = shared_from_this();
  resolver_.async_resolve(
      options_.server.host, std::to_string(options_.server.port),
      [self](const asio::error_code& ec, const tcp::resolver::results_type& results) {
        if (self->closed_) return;
        if (ec) {
          return self->finishConnect(unavailable(
              "resolve " + toString(self->options_.server) + ": " +
              (self->connect_failure_.empty() ? ec.message() : self->connect_failure_)));
        }
        asio::async_connect(
            self->lowest(), results,
            [self](const asio::error_code& ec2, const tcp::endpoint&) { self->onConnected(ec2); });
      });
}

void Link::onConnected(const asio::error_code& ec) {
  if (closed_) return;
  const std::string where = toString(options_.server);
  if (ec) {
    return finishConnect(unavailable("connect " + where + ": " +
                                     (connect_failure_.empty() ? ec.message() : connect_failure_)));
  }
  asio::error_code ignored;
  lowest().set_option(tcp::no_delay(true), ignored);
  if (!tls_) return finishConnect(Status::ok());
  transport::expectPeerName(tls_->native_handle(), options_.server.host);
  auto self = shared_from_this();
  tls_->async_handshake(asio::ssl::stream_base::client, [self, where](const asio::error_code& hec) {
    if (self->closed_) return;
    if (!hec) return self->finishConnect(Status::ok());
    std::string why = self->connect_failure_.empty()
                          ? transport::handshakeFailure(self->tls_->native_handle(), hec)
                          : self->connect_failure_;
    self->finishConnect(unavailable("TLS handshake with " + where + ": " + why));
  });
}

void Link::finishConnect(const Status& st) {
  if (connect_timer_) {
    loop_.timers().cancel(*connect_timer_);
    connect_timer_.reset();
  }
  auto done = std::move(connect_done_);
  connect_done_ = nullptr;
  if (!st.isOk()) {
    close(st);
    if (done) done(st);
    return;
  }
  connected_ = true;
  startRead();
  if (!out_.empty()) startWrite();
  if (done) done(st);
}

void Link::send(const std::vector<std::string>& args, ReplyCallback cb) {
  if (closed_) {
    loop_.post([cb = std::move(cb), where = toString(options_.server)] {
      cb(unavailable("redis connection to " + where + " is closed"));
    });
    return;
  }
  appendCommand(out_, args);
  TimePoint deadline = options_.command_timeout.count() > 0
                           ? loop_.timers().now() + options_.command_timeout
                           : TimePoint::max();
  pending_.push_back(Pending{std::move(cb), deadline});
  if (connected_ && !write_in_progress_) startWrite();
  armTimeout();
}

void Link::enterPushMode(std::function<void(Reply)> handler) { push_handler_ = std::move(handler); }

void Link::sendPush(const std::vector<std::string>& args) {
  SIPWAKE_CHECK(push_handler_ != nullptr);
  if (closed_) return;
  appendCommand(out_, args);
  if (connected_ && !write_in_progress_) startWrite();
}

void Link::startWrite() {
  if (out_.empty() || closed_) return;
  write_in_progress_ = true;
  writing_.swap(out_);
  out_.clear();
  auto self = shared_from_this();
  withStream([&](auto& stream) {
    asio::async_write(
        stream, asio::buffer(writing_), [self](const asio::error_code& ec, std::size_t) {
          self->write_in_progress_ = false;
          if (self->closed_) return;
          if (ec)
            return self->fail(unavailable("redis write to " + toString(self->options_.server) +
                                          ": " + ec.message()));
          self->writing_.clear();
          self->startWrite();
        });
  });
}

void Link::startRead() {
  auto self = shared_from_this();
  withStream([&](auto& stream) {
    stream.async_read_some(asio::buffer(rbuf_), [self](const asio::error_code& ec, std::size_t n) {
      if (self->closed_) return;
      if (ec) {
        return self->fail(unavailable("redis connection to " + toString(self->options_.server) +
                                      " lost: " + ec.message()));
      }
      self->parser_.feed(self->rbuf_.data(), n);
      self->onReplies();
      if (!self->closed_) self->startRead();
    });
  });
}

void Link::onReplies() {
  while (!closed_) {
    auto next = parser_.next();
    if (!next) return fail(unavailable(next.status().message()));
    if (!next->has_value()) return;
    Reply reply = std::move(**next);
    if (pending_.empty()) {
      if (push_handler_) {
        push_handler_(std::move(reply));
        continue;
      }
      return fail(internalError("redis sent a reply to no command"));
    }
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    if (expired_ > 0) {
      --expired_;  // its caller already got kTimedOut
      continue;
    }
    if (p.cb) p.cb(std::move(reply));
  }
}

void Link::armTimeout() {
  if (timeout_timer_ || expired_ >= pending_.size()) return;
  TimePoint deadline = pending_[expired_].deadline;
  if (deadline == TimePoint::max()) return;
  std::weak_ptr<Link> weak = weak_from_this();
  Duration delay = deadline - loop_.timers().now();
  timeout_timer_ = loop_.timers().schedule(delay.count() > 0 ? delay : Duration::zero(), [weak] {
    if (auto self = weak.lock()) self->onTimeout();
  });
}

void Link::onTimeout() {
  timeout_timer_.reset();
  if (closed_) return;
  TimePoint now = loop_.timers().now();
  std::vector<ReplyCallback> expired;
  while (expired_ < pending_.size() && pending_[expired_].deadline <= now) {
    expired.push_back(std::move(pending_[expired_].cb));
    pending_[expired_].cb = nullptr;
    ++expired_;
    ++timeouts_;
  }
  armTimeout();
  const std::string where = toString(options_.server);
  for (auto& cb : expired) {
    if (cb) cb(Status(StatusCode::kTimedOut, "redis command to " + where + " timed out"));
  }
}

void Link::fail(const Status& why) {
  if (closed_) return;
  auto on_closed = std::move(on_closed_);
  on_closed_ = nullptr;
  close(why);
  if (on_closed && connected_) on_closed(why);
}

void Link::close(const Status& why) {
  if (closed_) return;
  closed_ = true;
  on_closed_ = nullptr;
  if (connect_timer_) {
    loop_.timers().cancel(*connect_timer_);
    connect_timer_.reset();
  }
  if (timeout_timer_) {
    loop_.timers().cancel(*timeout_timer_);
    timeout_timer_.reset();
  }
  asio::error_code ignored;
  resolver_.cancel();
  lowest().close(ignored);
  std::deque<Pending> pending;
  pending.swap(pending_);
  for (std::size_t i = expired_; i < pending.size(); ++i) {
    if (pending[i].cb) pending[i].cb(why);
  }
  expired_ = 0;
}

}  // namespace sipwake::redis
