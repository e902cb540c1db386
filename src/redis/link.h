// Link: one TCP (or TLS) connection to one Redis server or sentinel, for its whole life — connect,
// pipeline commands, match replies in order, time commands out, close. No reconnection here:
// Connection and Subscriber make a new Link each time (redis/connection.h).
// Thread: created and used on one EventLoop's thread; every callback runs there.
#pragma once

#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "redis/resp.h"
#include "redis/url.h"
#include "transport/event_loop.h"

namespace sipwake::redis {

// The reply to one command, or why there is none: kUnavailable (not connected, connection lost
// before the reply), kTimedOut (no reply within the command timeout; the command may still have
// run). A Redis error reply ("-ERR ...") is a Reply of type kError, not a failed Result.
using ReplyCallback = std::function<void(Result<Reply>)>;

struct LinkOptions {
  HostPort server;
  std::shared_ptr<asio::ssl::context> tls;  // null: plain TCP
  Duration connect_timeout = std::chrono::seconds(2);
  Duration command_timeout = std::chrono::seconds(1);  // zero: none
};

class Link : public std::enable_shared_from_this<Link> {
 public:
  static std::shared_ptr<Link> create(transport::EventLoop& loop, LinkOptions options);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Resolves, connects and (TLS) handshakes within the connect timeout; `done` runs once with the
  // outcome. After a success, `on_closed` runs once if the link dies by itself (I/O error, EOF,
  // protocol error); never after close(). REQUIRES: called once.
  void connect(std::function<void(Status)> done, std::function<void(Status)> on_closed);
  // Sends one command; `cb` gets its reply (replies are matched in sending order). On a closed
  // link `cb` gets kUnavailable (posted, never re-entrant).
  void send(const std::vector<std::string>& args, ReplyCallback cb);
  // Pub/sub: every reply that does not answer a command sent before this call goes to `handler`.
  void enterPushMode(std::function<void(Reply)> handler);
  // Sends a command whose replies arrive through the push handler. REQUIRES: push mode.
  void sendPush(const std::vector<std::string>& args);
  // Closes the socket; every command still waiting gets `why`. Idempotent.
  void close(const Status& why);

  bool open() const { return connected_ && !closed_; }
  const HostPort& server() const { return options_.server; }
  std::size_t inFlight() const { return pending_.size() - expired_; }
  std::uint64_t timeouts() const { return timeouts_; }

 private:
  using tcp = asio::ip::tcp;
  struct Pending {
    ReplyCallback cb;
    TimePoint deadline;
  };
  Link(transport::EventLoop& loop, LinkOptions options);

  void onConnected(const asio::error_code& ec);
  void finishConnect(const Status& st);
  void startRead();
  void startWrite();
  void onReplies();
  void fail(const Status& why);  // the link died by itself
  void armTimeout();
  void onTimeout();
  template <typename Fn>
  void withStream(Fn&& fn) {
    if (tls_) {
      fn(*tls_);
    } else {
      fn(socket_);
    }
  }
  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : socket_; }

  transport::EventLoop& loop_;
  LinkOptions options_;
  tcp::resolver resolver_;
  tcp::socket socket_;                                 // plain TCP
  std::optional<asio::ssl::stream<tcp::socket>> tls_;  // TLS (owns its socket)
  std::function<void(Status)> connect_done_;
  std::function<void(Status)> on_closed_;
  std::function<void(Reply)> push_handler_;
  std::optional<TimerService::TimerId> connect_timer_;
  std::optional<TimerService::TimerId> timeout_timer_;
  std::string connect_failure_;  // why the connect attempt was aborted (timeout)
  bool connected_ = false;
  bool closed_ = false;
  std::deque<Pending> pending_;
  std::size_t expired_ =
      0;  // front entries already failed with kTimedOut; their replies are dropped
  std::uint64_t timeouts_ = 0;
  std::string out_;      // commands not yet handed to the socket
  std::string writing_;  // the bytes of the write in progress
  bool write_in_progress_ = false;
  std::array<char, 16 * 1024> rbuf_{};
  ReplyParser parser_;
};

}  // namespace sipwake::redis
