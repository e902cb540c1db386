#include "redis/subscriber.h"

#include <vector>

namespace sipwake::redis {
namespace {

// Names per (P)SUBSCRIBE command when resubscribing: bounded command size.
constexpr std::size_t kNamesPerCommand = 512;

void sendInBatches(Connection& c, const char* verb, const std::set<std::string>& names) {
  std::vector<std::string> cmd{verb};
  for (const auto& n : names) {
    cmd.push_back(n);
    if (cmd.size() > kNamesPerCommand) {
      c.sendPush(cmd);
      cmd.resize(1);
    }
  }
  if (cmd.size() > 1) c.sendPush(cmd);
}

}  // namespace

Result<std::shared_ptr<Subscriber>> Subscriber::create(transport::EventLoop& loop,
                                                       ConnectionOptions options) {
  // Pub/sub channels are not per database: no SELECT needed, and AUTH still applies.
  auto conn = Connection::create(loop, std::move(options));
  if (!conn) return conn.status();
  auto sub = std::shared_ptr<Subscriber>(new Subscriber(std::move(*conn)));
  std::weak_ptr<Subscriber> weak = sub;
  sub->connection_->setPushMode(
      [weak](Reply r) {
        if (auto self = weak.lock()) self->onPush(r);
      },
      [weak] {
        if (auto self = weak.lock()) self->resubscribe();
      });
  return sub;
}

Subscriber::Subscriber(std::shared_ptr<Connection> connection)
    : connection_(std::move(connection)) {}

void Subscriber::subscribe(const std::string& channel) {
  if (channels_.insert(channel).second) connection_->sendPush({"SUBSCRIBE", channel});
}
void Subscriber::unsubscribe(const std::string& channel) {
  if (channels_.erase(channel)) connection_->sendPush({"UNSUBSCRIBE", channel});
}
void Subscriber::psubscribe(const std::string& pattern) {
  if (patterns_.insert(pattern).second) connection_->sendPush({"PSUBSCRIBE", pattern});
}
void Subscriber::punsubscribe(const std::string& pattern) {
  if (patterns_.erase(pattern)) connection_->sendPush({"PUNSUBSCRIBE", pattern});
}

void Subscriber::resubscribe() {
  sendInBatches(*connection_, "SUBSCRIBE", channels_);
  sendInBatches(*connection_, "PSUBSCRIBE", patterns_);
}

void Subscriber::onPush(const Reply& r) {
  if (!r.isArray() || r.elements.size() < 3) return;
  const auto& e = r.elements;
  if (e[0].is("message")) {
    if (on_message_) on_message_(PubSubMessage{e[1].str, "", e[2].str});
  } else if (e[0].is("pmessage") && e.size() == 4) {
    if (on_message_) on_message_(PubSubMessage{e[2].str, e[1].str, e[3].str});
  } else if (e[0].is("subscribe") || e[0].is("psubscribe")) {
    if (on_subscribed_) on_subscribed_(e[1].str, e[0].is("psubscribe"));
  }
}

}  // namespace sipwake::redis
