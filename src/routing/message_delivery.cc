#include "routing/message_delivery.h"

#include <utility>

#include "common/log.h"
#include "common/stats.h"
#include "push/push_params.h"
#include "registrar/services.h"
#include "routing/next_hop.h"

namespace sipwake::routing {
namespace {

const StatCounter kDelivered{"message.delivered"};
const StatCounter kDeliveryFailed{"message.delivery_failed"};
const StatCounter kExpired{"message.expired"};

std::string shortKey(std::string_view device_key) { return std::string(device_key.substr(0, 8)); }

// Worth another try at the device's next registration.
bool transientFailure(int code) { return code == 0 || code == 408 || code == 480 || code == 503; }

std::string angle(std::string_view uri) {
  if (!uri.empty() && uri.front() == '<') return std::string(uri);
  return "<" + std::string(uri) + ">";
}

// Where the MESSAGE goes first: the first Path URI, else the registration's flow, else the
// Contact's IP literal.
Result<transport::SendTarget> firstHop(const Target& t) {
  if (!t.path.empty()) {
    std::string_view p = t.path.front();
    if (p.size() >= 2 && p.front() == '<' && p.back() == '>') p = p.substr(1, p.size() - 2);
    auto uri = sip::parseUri(p);
    if (!uri) return uri.status();
    return literalTarget(*uri);
  }
  if (t.flow) return *t.flow;
  auto uri = sip::parseUri(t.uri);
  if (!uri) return uri.status();
  return literalTarget(*uri);
}

}  // namespace

MessageDelivery::MessageDelivery(Deps deps) : deps_(std::move(deps)) {
  SIPWAKE_CHECK(deps_.store != nullptr && deps_.current_loop != nullptr);
  if (!deps_.wall_clock) deps_.wall_clock = registrar::systemWallClock;
}

void MessageDelivery::attach(std::size_t loop, transaction::TransactionLayer* layer) {
  std::lock_guard lock(mu_);
  if (layers_.size() <= loop) layers_.resize(loop + 1, nullptr);
  layers_[loop] = layer;
}

void MessageDelivery::onRegistered(std::string_view aor, const location::Binding& binding,
                                   const transport::ReceivedMessage& /*request*/) {
  if (!binding.push) return;
  const push::PushBinding* pb = &*binding.push;
  const std::string device_key = pb->deviceKey();
  std::vector<location::StoredMessage> pending =
      deps_.store->pendingFor(device_key, deps_.wall_clock());
  if (pending.empty()) return;
  std::vector<Target> targets = targetsFromBindings({binding});
  if (targets.empty()) return;
  Target target = std::move(targets.front());
  target.uri = registrar::stripPushUriParams(target.uri);
  const std::size_t count = pending.size();
  std::uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    const std::size_t loop = deps_.current_loop();
    if (loop >= layers_.size() || layers_[loop] == nullptr) return;
    if (!busy_devices_.insert(device_key).second) return;  // its run goes on
    seq = ++next_seq_;
    Run& run = runs_[seq];
    run.device_key = device_key;
    run.aor = std::string(aor);
    run.target = std::move(target);
    run.layer = layers_[loop];
    run.queue = std::move(pending);
  }
  SW_LOG_INFO("message: {} stored messages for {} to device {}", count, aor, shortKey(device_key));
  sendNext(seq);
}

// Runs on the run's loop; nobody else touches this run meanwhile.
void MessageDelivery::sendNext(std::uint64_t seq) {
  Run* run = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = runs_.find(seq);
    if (it == runs_.end()) return;
    if (it->second.next >= it->second.queue.size()) {
      busy_devices_.erase(it->second.device_key);
      runs_.erase(it);
      return;
    }
    run = &it->second;
  }
  const location::StoredMessage& m = run->queue[run->next];
  sip::Message msg = sip::Message::makeRequest(sip::Method::kMessage, "MESSAGE", run->target.uri);
  for (const std::string& p : run->target.path) msg.appendHeader("Route", angle(p));
  msg.appendHeader("Max-Forwards", "70");
  msg.appendHeader("From", m.from);
  msg.appendHeader("To", m.to);
  msg.appendHeader("Call-ID", m.call_id);
  msg.appendHeader("CSeq", "1 MESSAGE");
  if (m.content_type.empty()) {
    msg.appendHeader("Content-Length", "0");
  } else {
    msg.setBody(m.content_type, m.body);
  }
  auto hop = firstHop(run->target);
  if (!hop) return finished(seq, 0, "no route: " + hop.status().message());
  transaction::RequestOptions options;
  options.user = this;
  options.user_data = seq;
  auto sent = run->layer->sendRequest(std::move(msg), *hop, options);
  if (!sent) return finished(seq, 0, "not sent: " + sent.status().message());
}

void MessageDelivery::finished(std::uint64_t seq, int code, std::string_view why) {
  Run* run = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = runs_.find(seq);
    if (it == runs_.end()) return;
    run = &it->second;
  }
  const location::StoredMessage& m = run->queue[run->next];
  const bool ok = code >= 200 && code < 300;
  if (ok) {
    kDelivered.inc();
  } else {
    kDeliveryFailed.inc();
  }
  SW_LOG_INFO("message: stored message {} for {} {} to device {} ({}{}{})", m.id, run->aor,
              ok ? "delivered" : "failed", shortKey(run->device_key), code,
              why.empty() ? "" : " ", why);
  if (ok || !transientFailure(code)) {
    auto done = deps_.store->delivered(m.id, run->device_key);
    if (!done) SW_LOG_WARN("message: store: {}", done.status().toString());
  }
  if (!ok && transientFailure(code)) {
    run->next = run->queue.size();  // the rest waits for the next registration, in order
  } else {
    ++run->next;
  }
  sendNext(seq);
}

void MessageDelivery::onResponse(transaction::ClientTransaction& tx,
                                 transport::ReceivedMessage&& response) {
  const int code = response.message.statusCode();
  if (code < 200) return;
  finished(tx.userData(), code, response.message.reasonPhrase());
}

void MessageDelivery::onTimeout(transaction::ClientTransaction& tx) {
  finished(tx.userData(), 408, "timeout");
}

void MessageDelivery::onTransportError(transaction::ClientTransaction& tx, const Status& error) {
  finished(tx.userData(), 0, error.message());
}

std::size_t MessageDelivery::sweepExpired() {
  std::vector<location::StoredMessage> expired = deps_.store->sweepExpired(deps_.wall_clock());
  for (const location::StoredMessage& m : expired) {
    for (const std::string& d : m.devices) {
      kExpired.inc();
      SW_LOG_INFO("message: stored message {} for {} expired for device {}", m.id, m.aor,
                  shortKey(d));
    }
  }
  return expired.size();
}

}  // namespace sipwake::routing
