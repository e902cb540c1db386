// Client transactions: RFC 3261 §17.1.1 (INVITE, with RFC 6026 Accepted) and §17.1.2.
#include <algorithm>
#include <charconv>
#include <utility>

#include "common/log.h"
#include "transaction/transaction.h"
#include "transaction/transaction_layer.h"

namespace sipwake::transaction {
namespace {

// Headers shared by the ACK (§17.1.1.3) and the CANCEL (§9.1) built from our INVITE: the top
// Via only, From, Call-ID, CSeq number with `method`, and the Route set. To comes from
// `to_value` (the response's To for ACK, the INVITE's for CANCEL).
sip::Message buildFromInvite(const sip::Message& invite, sip::Method method,
                             std::string_view method_name, std::string_view to_value) {
  sip::Message m = sip::Message::makeRequest(method, method_name, invite.requestUriText());
  auto via = invite.topVia();
  SIPWAKE_CHECK(via.isOk());  // we pushed (or checked) it in sendRequest()
  m.appendHeader("Via", std::string(via->text));
  auto max_forwards = invite.maxForwards();
  if (max_forwards) {
    char buf[12];
    auto r = std::to_chars(buf, buf + sizeof(buf), *max_forwards);
    m.appendHeader("Max-Forwards", std::string(buf, r.ptr));
  } else {
    m.appendHeader("Max-Forwards", "70");
  }
  if (const sip::HeaderField* from = invite.find(sip::HeaderId::kFrom)) {
    m.appendHeader("From", std::string(from->value));
  }
  m.appendHeader("To", std::string(to_value));
  m.appendHeader("Call-ID", std::string(invite.callId()));
  auto cseq = invite.cseq();
  SIPWAKE_CHECK(cseq.isOk());
  std::string cseq_value;
  char buf[12];
  auto r = std::to_chars(buf, buf + sizeof(buf), cseq->number);
  cseq_value.append(buf, r.ptr);
  cseq_value.push_back(' ');
  cseq_value.append(method_name);
  m.appendHeader("CSeq", std::move(cseq_value));
  for (std::string_view route : invite.values(sip::HeaderId::kRoute)) {
    m.appendHeader("Route", std::string(route));
  }
  return m;
}

}  // namespace

std::string_view stateName(ClientState s) {
  switch (s) {
    case ClientState::kCalling:
      return "Calling";
    case ClientState::kTrying:
      return "Trying";
    case ClientState::kProceeding:
      return "Proceeding";
    case ClientState::kCompleted:
      return "Completed";
    case ClientState::kAccepted:
      return "Accepted";
    case ClientState::kTerminated:
      return "Terminated";
  }
  return "?";
}

void ClientTransaction::send(std::string bytes) { layer_.sendForClient(*this, std::move(bytes)); }

void ClientTransaction::start() {
  const TimerConfig& t = layer_.config_.timers;
  TimerService& timers = layer_.timers_;
  state_ = invite_ ? ClientState::kCalling : ClientState::kTrying;
  std::string bytes = request_.serialize();
  if (!reliable_) {
    // Timer A / E (§17.1.1.2, §17.1.2.2): only unreliable transports retransmit.
    wire_ = bytes;
    retransmit_interval_ = t.t1;
    retransmit_timer_ = timers.schedule(t.t1, [this] { fireRetransmit(); });
  }
  timeout_timer_ = timers.schedule(invite_ ? t.b() : t.f(), [this] { fireTimeout(); });
  send(std::move(bytes));
}

void ClientTransaction::fireRetransmit() {
  retransmit_timer_ = 0;
  const TimerConfig& t = layer_.config_.timers;
  if (invite_) {
    if (state_ != ClientState::kCalling) return;
    retransmit_interval_ = 2 * retransmit_interval_;  // Timer A doubles without a cap
  } else {
    if (state_ == ClientState::kTrying) {
      retransmit_interval_ = std::min(2 * retransmit_interval_, t.t2);
    } else if (state_ == ClientState::kProceeding) {
      retransmit_interval_ = t.t2;
    } else {
      return;
    }
  }
  layer_.stats_.retransmissions_sent->inc();
  send(wire_);
  retransmit_timer_ = layer_.timers_.schedule(retransmit_interval_, [this] { fireRetransmit(); });
}

void ClientTransaction::fireTimeout() {
  timeout_timer_ = 0;
  if (state_ != ClientState::kCalling && state_ != ClientState::kTrying &&
      state_ != ClientState::kProceeding) {
    return;
  }
  layer_.stats_.timeouts->inc();
  ClientTransactionUser* user = user_;
  layer_.terminate(*this);
  if (user != nullptr) user->onTimeout(*this);
}

void ClientTransaction::fireLinger() {
  linger_timer_ = 0;
  layer_.terminate(*this);  // Timers D, K, M
}

void ClientTransaction::onResponse(transport::ReceivedMessage&& response) {
  const int code = response.message.statusCode();
  const TimerConfig& t = layer_.config_.timers;
  TimerService& timers = layer_.timers_;
  auto stopTimers = [&] {
    if (retransmit_timer_) timers.cancel(std::exchange(retransmit_timer_, 0));
    if (timeout_timer_) timers.cancel(std::exchange(timeout_timer_, 0));
  };
  auto deliver = [&] {
    if (user_ != nullptr) user_->onResponse(*this, std::move(response));
  };
  if (invite_) {
    switch (state_) {
      case ClientState::kCalling:
      case ClientState::kProceeding:
        if (code < 200) {
          if (state_ == ClientState::kCalling) stopTimers();  // A, B (not the cancel wait)
          state_ = ClientState::kProceeding;
          if (cancel_requested_ && !cancel_sent_) sendCancel();
          deliver();
        } else if (code < 300) {
          stopTimers();
          state_ = ClientState::kAccepted;
          linger_timer_ = timers.schedule(t.m(), [this] { fireLinger(); });
          deliver();
        } else {
          stopTimers();
          state_ = ClientState::kCompleted;
          sendAck(response.message);
          linger_timer_ =
              timers.schedule(reliable_ ? Duration::zero() : t.timer_d, [this] { fireLinger(); });
          deliver();
        }
        return;
      case ClientState::kAccepted:
        if (code >= 200 && code < 300) {
          deliver();  // RFC 6026 §8.4: every 2xx goes to the TU
        } else {
          layer_.stats_.retransmissions_absorbed->inc();
        }
        return;
      case ClientState::kCompleted:
        layer_.stats_.retransmissions_absorbed->inc();
        if (code >= 300 && !ack_wire_.empty()) {
          layer_.stats_.retransmissions_sent->inc();
          send(ack_wire_);  // §17.1.1.2: re-ACK a retransmitted final response
        }
        return;
      default:
        return;
    }
  }
  switch (state_) {
    case ClientState::kTrying:
    case ClientState::kProceeding:
      if (code < 200) {
        state_ = ClientState::kProceeding;  // Timer E keeps running, now at T2
      } else {
        stopTimers();
        state_ = ClientState::kCompleted;
        linger_timer_ =
            timers.schedule(reliable_ ? Duration::zero() : t.t4, [this] { fireLinger(); });
      }
      deliver();
      return;
    default:
      layer_.stats_.retransmissions_absorbed->inc();
      return;
  }
}

void ClientTransaction::sendAck(const sip::Message& response) {
  const sip::HeaderField* to = response.find(sip::HeaderId::kTo);
  sip::Message ack = buildFromInvite(request_, sip::Method::kAck, "ACK",
                                     to != nullptr ? to->value : std::string_view());
  ack_wire_ = ack.serialize();
  send(ack_wire_);
}

void ClientTransaction::sendCancel() {
  cancel_sent_ = true;
  const sip::HeaderField* to = request_.find(sip::HeaderId::kTo);
  sip::Message cancel = buildFromInvite(request_, sip::Method::kCancel, "CANCEL",
                                        to != nullptr ? to->value : std::string_view());
  if (!cancel_reason_.empty()) cancel.appendHeader("Reason", std::move(cancel_reason_));
  RequestOptions options;
  options.push_via = false;
  auto sent = layer_.sendRequest(std::move(cancel), target_, options);
  if (!sent) SW_LOG_DEBUG("transaction: CANCEL not sent: {}", sent.status().message());
  // §9.1: if no final response within 64*T1 after the CANCEL, consider the INVITE cancelled.
  if (timeout_timer_) layer_.timers_.cancel(timeout_timer_);
  timeout_timer_ =
      layer_.timers_.schedule(64 * layer_.config_.timers.t1, [this] { fireTimeout(); });
}

}  // namespace sipwake::transaction
