// Subscriber: a pub/sub connection that keeps its subscriptions across reconnections. Built for a
// modest set of channels and patterns (one channel per node, a few patterns), not one per user.
// Thread: like Connection — one EventLoop, callbacks on it.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "redis/connection.h"

namespace sipwake::redis {

struct PubSubMessage {
  std::string channel;
  std::string pattern;  // the pattern that matched (PSUBSCRIBE), else empty
  std::string payload;
};

class Subscriber : public std::enable_shared_from_this<Subscriber> {
 public:
  static Result<std::shared_ptr<Subscriber>> create(transport::EventLoop& loop,
                                                    ConnectionOptions options);
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  void setMessageCallback(std::function<void(const PubSubMessage&)> cb) {
    on_message_ = std::move(cb);
  }
  // Runs when Redis confirms a (P)SUBSCRIBE — also each time it is renewed after a reconnection.
  void setSubscribedCallback(std::function<void(std::string_view name, bool pattern)> cb) {
    on_subscribed_ = std::move(cb);
  }
  void setStateCallback(std::function<void(bool connected, const Status& why)> cb) {
    connection_->setStateCallback(std::move(cb));
  }
  void start() { connection_->start(); }
  void stop() { connection_->stop(); }
  bool connected() const { return connection_->connected(); }

  // Idempotent; remembered while disconnected and (re)sent on every connection.
  void subscribe(const std::string& channel);
  void unsubscribe(const std::string& channel);
  void psubscribe(const std::string& pattern);
  void punsubscribe(const std::string& pattern);
  std::size_t subscriptions() const { return channels_.size() + patterns_.size(); }

 private:
  explicit Subscriber(std::shared_ptr<Connection> connection);
  void onPush(const Reply& reply);
  void resubscribe();

  std::shared_ptr<Connection> connection_;
  std::set<std::string> channels_;
  std::set<std::string> patterns_;
  std::function<void(const PubSubMessage&)> on_message_;
  std::function<void(std::string_view, bool)> on_subscribed_;
};

}  // namespace sipwake::redis
