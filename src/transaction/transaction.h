// RFC 3261 §17 transactions (with RFC 6026 Accepted states) as seen by a transaction user (TU):
// the proxy core, the registrar, a UA. The TransactionLayer (transaction_layer.h) creates, owns,
// matches and destroys every transaction; the TU only holds non-owning references.
//
// Thread: every object here is owned by one event loop (the loop of its TransactionLayer) and is
// only touched on that loop. No locks.
//
// Lifetime contract for TU-held references (ServerTransaction& / ClientTransaction*):
//   a reference is valid until the transaction's user has been told onTerminated(), which the
//   layer calls from a deferred timer (zero-delay; for respondStateless, the lazy reap) after
//   the transaction reached Terminated. So a
//   reference obtained in any callback stays valid for the rest of that callback even when the
//   TU's own action (respond(), a transport error) terminates the transaction. A TU that no longer
//   wants callbacks for a transaction calls setUser(nullptr) (detach); the transaction then runs to
//   completion silently (absorbing retransmissions, sending ACKs) and is destroyed without a word.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "sip/message.h"
#include "transport/transport.h"

namespace sipwake::transaction {

class TransactionLayer;
class ServerTransaction;
class ClientTransaction;

// §17.2.1 / §17.2.2 plus RFC 6026 kAccepted (INVITE after a 2xx was sent).
enum class ServerState : std::uint8_t {
  kTrying,      // non-INVITE: nothing sent yet
  kProceeding,  // INVITE from creation; non-INVITE after a provisional
  kCompleted,   // final (INVITE: non-2xx) sent, absorbing retransmissions
  kConfirmed,   // INVITE: ACK for the non-2xx final received (Timer I)
  kAccepted,    // INVITE: 2xx sent (Timer L); ACKs go to the TU
  kTerminated,
};
// §17.1.1 / §17.1.2 plus RFC 6026 kAccepted (INVITE after a 2xx was received).
enum class ClientState : std::uint8_t {
  kCalling,     // INVITE: sent, no response yet (Timers A, B)
  kTrying,      // non-INVITE: sent, no response yet (Timers E, F)
  kProceeding,  // provisional received
  kCompleted,   // final received (INVITE: non-2xx, ACK sent; Timer D / K)
  kAccepted,    // INVITE: 2xx received (Timer M); further 2xx go to the TU
  kTerminated,
};
std::string_view stateName(ServerState s);
std::string_view stateName(ClientState s);

// Per-server-transaction events. The layer-wide TransactionUser is the default user of every
// server transaction; a TU may route one transaction's events elsewhere with setUser().
class ServerTransactionUser {
 public:
  virtual ~ServerTransactionUser() = default;
  // A CANCEL matched this INVITE transaction while it was still Proceeding (§9.2). The layer has
  // already answered the CANCEL with 200; the TU should end the INVITE (a UAS answers 487, a
  // proxy cancels its branches, §16.10).
  virtual void onCancel(ServerTransaction& invite_tx, transport::ReceivedMessage&& cancel) = 0;
  // Sending a response failed (§17.2.4); the transaction is now Terminated.
  virtual void onTransportError(ServerTransaction& tx, const Status& error) = 0;
  // Timer H fired: no ACK for the non-2xx final response (§17.2.1). Transaction is Terminated.
  virtual void onAckTimeout(ServerTransaction& /*tx*/) {}
  // Last call for `tx`; the reference dies when this returns.
  virtual void onTerminated(ServerTransaction& /*tx*/) {}
};

// Per-client-transaction events. Given to TransactionLayer::sendRequest().
class ClientTransactionUser {
 public:
  virtual ~ClientTransactionUser() = default;
  // Provisional and final responses, each once (retransmissions are absorbed). For INVITE, every
  // 2xx is passed up, also retransmissions and 2xx from other forks (RFC 6026 §8.4): the TU (a
  // proxy forwards them, a UA ACKs them) deals with them.
  virtual void onResponse(ClientTransaction& tx, transport::ReceivedMessage&& response) = 0;
  // Timer B / F fired with no final response, or a cancelled INVITE got no final response within
  // 64*T1 (§9.1). The TU treats it as a 408 (§8.1.3.1). The transaction is Terminated.
  virtual void onTimeout(ClientTransaction& tx) = 0;
  // The transport failed to send the request (§8.1.3.1, §17.1.4): the TU treats it as a 503.
  // The transaction is Terminated.
  virtual void onTransportError(ClientTransaction& tx, const Status& error) = 0;
  // Last call for `tx`; the pointer dies when this returns.
  virtual void onTerminated(ClientTransaction& /*tx*/) {}
};

class ServerTransaction {
 public:
  ServerTransaction(const ServerTransaction&) = delete;
  ServerTransaction& operator=(const ServerTransaction&) = delete;

  // Sends `response` (built by the TU, usually with sip::makeResponseTo on the request) to the
  // response target computed when the request arrived, and drives the state machine:
  // 1xx keeps/moves to Proceeding; INVITE 2xx -> Accepted (Timer L); INVITE 3xx-6xx -> Completed
  // (Timers G, H); non-INVITE final -> Completed (Timer J). Further 2xx are allowed in Accepted
  // (a proxy forwards 2xx retransmissions). Returns FailedPrecondition when the state does not
  // allow that response (e.g. a second final response). REQUIRES: response.isResponse().
  Status respond(sip::Message&& response);
  // A non-INVITE final response sent as a stateless UAS would (RFC 3261 §8.2.7): the
  // transaction is Terminated when this returns and keeps no copy of the response, so a
  // retransmission of the request reaches the TU again as a new request. Its onTerminated comes
  // later than usual (at the layer's next lazy reap, within a few hundred ms, without a loop
  // wake-up of its own); the reference stays valid until then as always. For answers that are
  // as good when repeated afresh, e.g. a registrar's digest challenge (a new nonce each time):
  // nothing is held for 64*T1 per challenged request. FailedPrecondition as respond() does; also
  // for an INVITE or a response below 200.
  Status respondStateless(sip::Message&& response);

  sip::Method method() const { return method_; }
  bool isInvite() const { return invite_; }
  ServerState state() const { return state_; }
  bool reliable() const { return reliable_; }
  const transport::SendTarget& responseTarget() const { return target_; }
  std::uint64_t id() const { return serial_; }  // unique per layer, never reused
  int lastStatusCode() const { return last_status_; }
  // When the request arrived (the layer's timer clock): for latency metrics.
  TimePoint createdAt() const { return created_at_; }

  ServerTransactionUser* user() const { return user_; }
  // Redirects this transaction's events (nullptr: no more events).
  void setUser(ServerTransactionUser* user) { user_ = user; }
  // Opaque TU data (e.g. a proxy context id); the layer never reads it.
  std::uint64_t userData() const { return user_data_; }
  void setUserData(std::uint64_t v) { user_data_ = v; }

 private:
  friend class TransactionLayer;
  ServerTransaction(TransactionLayer& layer, std::uint64_t serial)
      : layer_(layer), serial_(serial) {}

  void onRetransmission();
  void onAck(transport::ReceivedMessage&& ack);
  void sendTrying();
  void send(std::string bytes);
  void fireTimerG();
  void fireTimeout();  // H, I, J, L

  TransactionLayer& layer_;
  std::uint64_t serial_;
  TimePoint created_at_{};
  std::string key_;      // index key in the layer's table
  std::string pin_key_;  // RFC 3261 INVITE: transport::inviteAffinityKey, pinned while alive
  ServerState state_ = ServerState::kProceeding;
  sip::Method method_ = sip::Method::kUnknown;
  bool invite_ = false;
  bool reliable_ = false;
  bool rfc2543_ = false;  // matched by the §17.2.3 fallback, not by branch
  int last_status_ = 0;
  transport::SendTarget target_;
  std::string last_response_;    // wire bytes re-sent on a retransmitted request
  std::string trying_head_;      // INVITE: Via..CSeq lines for the automatic 100 Trying
  std::string request_to_tag_;   // rfc2543_ only
  std::string response_to_tag_;  // rfc2543_ only: To tag of the final response (ACK matching)
  TimerService::TimerId trying_timer_ = 0;
  TimerService::TimerId retransmit_timer_ = 0;  // G
  TimerService::TimerId timeout_timer_ = 0;     // H, I, J, L
  Duration retransmit_interval_{};
  ServerTransactionUser* user_ = nullptr;
  std::uint64_t user_data_ = 0;
};

class ClientTransaction {
 public:
  ClientTransaction(const ClientTransaction&) = delete;
  ClientTransaction& operator=(const ClientTransaction&) = delete;

  sip::Method method() const { return method_; }
  bool isInvite() const { return invite_; }
  ClientState state() const { return state_; }
  bool reliable() const { return reliable_; }
  std::string_view branch() const { return branch_; }
  const transport::SendTarget& target() const { return target_; }
  // The request as sent (with the Via the layer pushed). For the TU, e.g. to build a 2xx ACK.
  const sip::Message& request() const { return request_; }
  std::uint64_t id() const { return serial_; }
  bool cancelRequested() const { return cancel_requested_; }

  ClientTransactionUser* user() const { return user_; }
  void setUser(ClientTransactionUser* user) { user_ = user; }  // nullptr detaches
  std::uint64_t userData() const { return user_data_; }
  void setUserData(std::uint64_t v) { user_data_ = v; }

 private:
  friend class TransactionLayer;
  ClientTransaction(TransactionLayer& layer, std::uint64_t serial, sip::Message&& request)
      : layer_(layer), serial_(serial), request_(std::move(request)) {}

  void start();
  void onResponse(transport::ReceivedMessage&& response);
  void sendAck(const sip::Message& response);
  void sendCancel();
  void send(std::string bytes);
  void fireRetransmit();  // A, E
  void fireTimeout();     // B, F, cancel wait
  void fireLinger();      // D, K, M
  bool awaitingFirstResponse() const {
    return state_ == ClientState::kCalling || state_ == ClientState::kTrying;
  }

  TransactionLayer& layer_;
  std::uint64_t serial_;
  sip::Message request_;
  std::string key_;
  std::string branch_;
  std::string wire_;      // request bytes for retransmission (unreliable only)
  std::string ack_wire_;  // INVITE non-2xx: the ACK, re-sent on a retransmitted final
  std::string cancel_reason_;
  ClientState state_ = ClientState::kTrying;
  sip::Method method_ = sip::Method::kUnknown;
  bool invite_ = false;
  bool reliable_ = false;
  bool cancel_requested_ = false;
  bool cancel_sent_ = false;
  transport::SendTarget target_;
  // The TCP/TLS connection the request was written to, and this transaction's links in the
  // layer's list of transactions on that flow (failed when the flow closes, §8.1.3.1).
  transport::FlowId flow_ = 0;
  ClientTransaction* flow_prev_ = nullptr;
  ClientTransaction* flow_next_ = nullptr;
  TimerService::TimerId retransmit_timer_ = 0;  // A, E
  TimerService::TimerId timeout_timer_ = 0;     // B, F, cancel wait
  TimerService::TimerId linger_timer_ = 0;      // D, K, M
  Duration retransmit_interval_{};
  ClientTransactionUser* user_ = nullptr;
  std::uint64_t user_data_ = 0;
};

}  // namespace sipwake::transaction
