// Server transactions: RFC 3261 §17.2.1 (INVITE, with RFC 6026 Accepted) and §17.2.2.
#include <algorithm>
#include <utility>

#include "transaction/transaction.h"
#include "transaction/transaction_layer.h"

namespace sipwake::transaction {

std::string_view stateName(ServerState s) {
  switch (s) {
    case ServerState::kTrying:
      return "Trying";
    case ServerState::kProceeding:
      return "Proceeding";
    case ServerState::kCompleted:
      return "Completed";
    case ServerState::kConfirmed:
      return "Confirmed";
    case ServerState::kAccepted:
      return "Accepted";
    case ServerState::kTerminated:
      return "Terminated";
  }
  return "?";
}

void ServerTransaction::send(std::string bytes) { layer_.sendForServer(*this, std::move(bytes)); }

Status ServerTransaction::respond(sip::Message&& response) {
  SIPWAKE_CHECK(response.isResponse());
  const int code = response.statusCode();
  const TimerConfig& t = layer_.config_.timers;
  TimerService& timers = layer_.timers_;
  switch (state_) {
    case ServerState::kTrying:
    case ServerState::kProceeding:
      break;
    case ServerState::kAccepted:
      // RFC 6026 §8.5: 2xx retransmissions (or 2xx of other forks) pass through.
      if (code >= 200 && code < 300) {
        send(response.serialize());
        return Status::ok();
      }
      [[fallthrough]];
    default:
      return Status(
          StatusCode::kFailedPrecondition,
          std::string("cannot send this response in state ") + std::string(stateName(state_)));
  }
  if (trying_timer_) {
    timers.cancel(std::exchange(trying_timer_, 0));
    trying_head_ = std::string();
  }
  last_status_ = code;
  if (code < 200) {
    state_ = ServerState::kProceeding;
    last_response_ = response.serialize();
    send(last_response_);
    return Status::ok();
  }
  if (invite_) {
    if (rfc2543_) {
      auto to = response.to();
      if (to) response_to_tag_ = std::string(to->tag());
    }
    if (code < 300) {
      // RFC 6026 Accepted: the TU (UAS core or proxy) owns 2xx retransmission; we only absorb
      // INVITE retransmissions and hand ACKs up until Timer L.
      state_ = ServerState::kAccepted;
      last_response_ = std::string();
      timeout_timer_ = timers.schedule(t.l(), [this] { fireTimeout(); });
      send(response.serialize());
      return Status::ok();
    }
    state_ = ServerState::kCompleted;
    last_response_ = response.serialize();
    if (!reliable_) {
      retransmit_interval_ = t.t1;
      retransmit_timer_ = timers.schedule(t.t1, [this] { fireTimerG(); });
    }
    timeout_timer_ = timers.schedule(t.h(), [this] { fireTimeout(); });
    send(last_response_);
    return Status::ok();
  }
  state_ = ServerState::kCompleted;
  if (reliable_) {
    // Timer J = 0: nothing can be retransmitted to us over a reliable transport.
    last_response_ = std::string();
    timeout_timer_ = timers.schedule(Duration::zero(), [this] { fireTimeout(); });
    send(response.serialize());
  } else {
    last_response_ = response.serialize();
    timeout_timer_ = timers.schedule(t.j(), [this] { fireTimeout(); });
    send(last_response_);
  }
  return Status::ok();
}

Status ServerTransaction::respondStateless(sip::Message&& response) {
  SIPWAKE_CHECK(response.isResponse());
  if (invite_ || response.statusCode() < 200 ||
      (state_ != ServerState::kTrying && state_ != ServerState::kProceeding)) {
    return Status(StatusCode::kFailedPrecondition,
                  "stateless answer needs a non-INVITE final response before any final one");
  }
  last_status_ = response.statusCode();
  state_ = ServerState::kCompleted;
  send(response.serialize());
  layer_.terminate(*this, /*reap_soon=*/false);
  return Status::ok();
}

void ServerTransaction::sendTrying() {
  if (state_ != ServerState::kProceeding || last_status_ != 0) return;
  std::string bytes;
  bytes.reserve(trying_head_.size() + 64);
  bytes.append("SIP/2.0 100 Trying\r\n");
  bytes.append(trying_head_);
  bytes.append("Content-Length: 0\r\n\r\n");
  trying_head_ = std::string();
  last_status_ = 100;
  last_response_ = bytes;
  send(std::move(bytes));
}

void ServerTransaction::onRetransmission() {
  layer_.stats_.retransmissions_absorbed->inc();
  switch (state_) {
    case ServerState::kProceeding:
      if (last_response_.empty() && invite_ && trying_timer_ != 0) {
        // The client is already retransmitting: don't wait for the 200 ms any longer.
        layer_.timers_.cancel(std::exchange(trying_timer_, 0));
        sendTrying();
        return;
      }
      [[fallthrough]];
    case ServerState::kCompleted:
      if (!last_response_.empty()) {
        layer_.stats_.retransmissions_sent->inc();
        send(last_response_);
      }
      return;
    case ServerState::kTrying:     // nothing sent yet; the TU is still working
    case ServerState::kConfirmed:  // absorbed (§17.2.1)
    case ServerState::kAccepted:   // absorbed, not passed up (RFC 6026 §8.5)
    case ServerState::kTerminated:
      return;
  }
}

void ServerTransaction::onAck(transport::ReceivedMessage&& ack) {
  switch (state_) {
    case ServerState::kCompleted: {
      const TimerConfig& t = layer_.config_.timers;
      if (retransmit_timer_) layer_.timers_.cancel(std::exchange(retransmit_timer_, 0));
      if (timeout_timer_) layer_.timers_.cancel(std::exchange(timeout_timer_, 0));
      state_ = ServerState::kConfirmed;
      timeout_timer_ =
          layer_.timers_.schedule(reliable_ ? Duration::zero() : t.t4, [this] { fireTimeout(); });
      return;
    }
    case ServerState::kAccepted:
      // RFC 6026 §8.7: an ACK matching an Accepted transaction goes to the TU.
      layer_.tu_.onAck(std::move(ack));
      return;
    default:
      layer_.stats_.retransmissions_absorbed->inc();
      return;
  }
}

void ServerTransaction::fireTimerG() {
  retransmit_timer_ = 0;
  if (state_ != ServerState::kCompleted) return;
  const TimerConfig& t = layer_.config_.timers;
  layer_.stats_.retransmissions_sent->inc();
  send(last_response_);
  retransmit_interval_ = std::min(2 * retransmit_interval_, t.t2);
  retransmit_timer_ = layer_.timers_.schedule(retransmit_interval_, [this] { fireTimerG(); });
}

void ServerTransaction::fireTimeout() {
  timeout_timer_ = 0;
  if (invite_ && state_ == ServerState::kCompleted) {
    // Timer H: the ACK never came (§17.2.1).
    layer_.stats_.timeouts->inc();
    ServerTransactionUser* user = user_;
    layer_.terminate(*this);
    if (user != nullptr) user->onAckTimeout(*this);
    return;
  }
  layer_.terminate(*this);  // Timers I, J, L
}

}  // namespace sipwake::transaction
