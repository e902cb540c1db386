// The RFC 3261 §17 transaction layer of one event loop: matches every received message to a
// client or server transaction (§17.1.3, §17.2.3 incl. the RFC 2543 fallback, §9.2 CANCEL),
// runs the timers, absorbs retransmissions and reports to the transaction user (TU).
//
// Thread: owned by one loop. Every method, and every callback into the TU, runs on that loop.
// One TransactionLayer per loop; the transport hands every message of a transaction to the same
// layer (see transport_layer.h: receiving loop, branch-named loop for responses, pinned INVITEs),
// so there is no lock anywhere in here.
//
// Ownership: the layer owns every transaction; the TU gets non-owning references whose lifetime
// is described in transaction.h. The TimerService, Transport and TransactionUser must outlive the
// layer. Destroying the layer cancels all timers and destroys all transactions without callbacks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/stats.h"
#include "common/status.h"
#include "sip/message.h"
#include "transaction/transaction.h"
#include "transport/transport.h"

namespace sipwake::transaction {

// RFC 3261 Table 4 (§A). Unset optionals default to 64*T1 (Timers B, F, H, J, L, M).
struct TimerConfig {
  Duration t1 = milliseconds(500);
  Duration t2 = seconds(4);
  Duration t4 = seconds(5);
  std::optional<Duration> timer_b;  // INVITE client: transaction timeout
  std::optional<Duration> timer_f;  // non-INVITE client: transaction timeout
  std::optional<Duration> timer_h;  // INVITE server: wait for ACK
  std::optional<Duration> timer_j;  // non-INVITE server: wait for retransmissions (unreliable)
  std::optional<Duration> timer_l;  // RFC 6026 INVITE server Accepted
  std::optional<Duration> timer_m;  // RFC 6026 INVITE client Accepted
  Duration timer_d = seconds(32);   // INVITE client Completed, unreliable (reliable: 0)
  // Timer I = T4 and Timer K = T4 on unreliable transports, 0 on reliable ones.

  Duration b() const { return timer_b.value_or(64 * t1); }
  Duration f() const { return timer_f.value_or(64 * t1); }
  Duration h() const { return timer_h.value_or(64 * t1); }
  Duration j() const { return timer_j.value_or(64 * t1); }
  Duration l() const { return timer_l.value_or(64 * t1); }
  Duration m() const { return timer_m.value_or(64 * t1); }
};

// Where a server transaction sends its responses. Called once per new server transaction.
using ResponseRouter = std::function<Result<transport::SendTarget>(
    const transport::ReceivedMessage& request, const sip::Via& top_via)>;

struct LayerConfig {
  TimerConfig timers;
  // The INVITE server transaction sends "100 Trying" itself when the TU has sent no response
  // after this long (§17.2.1: "if the TU will not generate a provisional response within
  // 200 ms"). Zero sends it at once; disabled with auto_trying = false.
  bool auto_trying = true;
  Duration trying_delay = milliseconds(200);
  // Live transactions (server + client) above which new requests are refused: a received
  // request gets a stateless 503, sendRequest() returns OutOfRange. Counted in stats.
  std::size_t max_transactions = 200000;
  // Empty: transport::responseTarget() (RFC 3261 §18.2.2 + RFC 3581). If the router fails
  // (e.g. a hostname in sent-by), the response goes back to the request's source (symmetric).
  ResponseRouter response_router;
};

// The layer-wide transaction user: new requests, ACKs and responses that match no transaction,
// and by default the events of every server transaction.
class TransactionUser : public ServerTransactionUser {
 public:
  // A new request (never a retransmission; never ACK or CANCEL). The TU answers through
  // tx.respond(), now or later.
  virtual void onRequest(ServerTransaction& tx, transport::ReceivedMessage&& request) = 0;
  // An ACK that matches no server transaction (the ACK for a 2xx, a new transaction of its own)
  // or that reached an INVITE server transaction in Accepted state (RFC 6026 §8.7).
  virtual void onAck(transport::ReceivedMessage&& ack) = 0;
  // A response that matches no client transaction (§17.1.3); a proxy may forward it
  // statelessly (§16.7 and RFC 6026), everyone else drops it.
  virtual void onStrayResponse(transport::ReceivedMessage&& response) = 0;
};

struct RequestOptions {
  // true: the layer pushes a new top Via "SIP/2.0/<proto> <local address>;branch=...[;rport]"
  // for the target's protocol. false: the request already carries the top Via to use, whose
  // branch must start with the magic cookie (used for CANCEL, or a TU that builds its own Via).
  bool push_via = true;
  // Branch for the pushed Via; empty: a fresh unique "z9hG4bK..." branch.
  std::string_view branch;
  ClientTransactionUser* user = nullptr;  // may be nullptr: run silently
  std::uint64_t user_data = 0;
};

class TransactionLayer {
 public:
  TransactionLayer(TimerService& timers, transport::Transport& transport, TransactionUser& tu,
                   LayerConfig config = {});
  ~TransactionLayer();
  TransactionLayer(const TransactionLayer&) = delete;
  TransactionLayer& operator=(const TransactionLayer&) = delete;

  // Entry point for every parsed message from the transport (requests and responses).
  void receive(transport::ReceivedMessage&& message);

  // Starts a client transaction for `request` to `target` (the TU has resolved it, RFC 3263).
  // REQUIRES: request.isRequest(). ACK is refused (InvalidArgument): a 2xx ACK is not a
  // transaction, the TU sends it through the transport itself. Callbacks never run before this
  // returns: a transport error is reported from a zero-delay timer.
  Result<ClientTransaction*> sendRequest(sip::Message&& request,
                                         const transport::SendTarget& target,
                                         const RequestOptions& options = {});

  // Cancels a client INVITE transaction (§9.1): builds a CANCEL with the INVITE's Request-URI,
  // Call-ID, To, From, CSeq number, top Via and Route set, and sends it as its own non-INVITE
  // client transaction (silent, nobody is told its response) to the INVITE's target. If no
  // provisional response has arrived yet, the CANCEL is sent when the first one does; if a final
  // response arrives first, nothing is sent. If the INVITE then gets no final response within
  // 64*T1 it is terminated with onTimeout. `reason` (optional) is an RFC 3326 Reason header
  // value. Repeated calls are no-ops. FailedPrecondition if the INVITE already has a final.
  Status cancel(ClientTransaction& invite_tx, std::string_view reason = {});

  // Retransmission control for a client transaction over an unreliable transport that has no
  // response yet (INVITE Calling, non-INVITE Trying); no-ops otherwise. retransmitNow() sends
  // the request again at once (the TU learnt that its destination just came up: no need to wait
  // for Timer A/E), keeping the timer's schedule. stopRetransmissions() stops Timer A/E for
  // good (the TU no longer wants the request to reach its destination); Timer B/F and response
  // matching go on unchanged.
  void retransmitNow(ClientTransaction& tx);
  void stopRetransmissions(ClientTransaction& tx);

  // Sends a response outside any transaction, to where transport::responseTarget() says
  // (stateless UAS behaviour, e.g. errors for requests the TU will not keep state for).
  void sendStatelessResponse(const transport::ReceivedMessage& request, sip::Message&& response);

  // A TCP/TLS connection closed (any loop's; the transport tells every loop). Every client
  // transaction whose request was written to it and that has no final response yet fails as
  // a transport error (§8.1.3.1, §17.1.4: the TU sees onTransportError, i.e. a 503) from a
  // zero-delay timer, instead of waiting for Timer B/F. Unknown flows are ignored.
  void onFlowClosed(transport::FlowId flow, const Status& why);

  std::size_t serverTransactionCount() const { return servers_.size(); }
  // Server transactions still owing their request a final response (Trying / Proceeding): what
  // a draining server waits for. O(transactions).
  std::size_t unansweredServerCount() const;
  std::size_t clientTransactionCount() const { return clients_.size(); }
  // Fresh values for branches (with the magic cookie) and To/From tags.
  std::string newBranch();
  std::string newTag();

  const LayerConfig& config() const { return config_; }
  TimerService& timers() { return timers_; }

 private:
  friend class ServerTransaction;
  friend class ClientTransaction;

  // Heterogeneous lookup: keys are built in a reused scratch buffer, no allocation to look up.
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  // Keyed by a view of the transaction's own key_ (a transaction never changes it and outlives
  // its entry): the key is not stored twice.
  template <typename T>
  using Table = std::unordered_map<std::string_view, std::unique_ptr<T>, KeyHash, std::equal_to<>>;

  struct Counters {
    Counter* server_invite_created;
    Counter* server_non_invite_created;
    Counter* client_invite_created;
    Counter* client_non_invite_created;
    Counter* server_invite_terminated;
    Counter* server_non_invite_terminated;
    Counter* client_invite_terminated;
    Counter* client_non_invite_terminated;
    Counter* retransmissions_absorbed;  // requests (server) and responses (client)
    Counter* retransmissions_sent;      // Timers A, E, G and responses re-sent
    Counter* timeouts;                  // B, F, H, cancel wait
    Counter* transport_errors;
    Counter* cancel_481;
    Counter* stray_responses;
    Counter* unmatched_acks;
    Counter* refused_overload;
    Counter* dropped_malformed;
  };

  void receiveRequest(transport::ReceivedMessage&& message);
  void receiveResponse(transport::ReceivedMessage&& message);
  void receiveAck(transport::ReceivedMessage&& message, const sip::Via& via);
  void receiveCancel(transport::ReceivedMessage&& message, const sip::Via& via);
  // Builds the server key for `message` into key_buf_ with `method_class` (INVITE for ACK and
  // for a CANCEL looking for its INVITE). False if a needed header is missing or malformed.
  bool buildServerKey(const sip::Message& message, const sip::Via& via,
                      std::string_view method_class);
  ServerTransaction* findServer();  // by key_buf_
  ServerTransaction* createServer(transport::ReceivedMessage& request, const sip::Via& via);
  transport::SendTarget routeResponse(const transport::ReceivedMessage& request,
                                      const sip::Via& via);
  bool atCapacity() const;

  // `reap_soon` false: the TU hears onTerminated at the next lazy reap (within
  // kLazyReapDelay, rounded to the timer service's coalescing slot) rather than on a zero-delay
  // timer of its own: no extra wake-up of the loop per transaction.
  void terminate(ServerTransaction& tx, bool reap_soon = true);
  void terminate(ClientTransaction& tx);
  void scheduleReap();
  void scheduleLazyReap();
  void reap();
  // Send with an on_done that reports a failure to the transaction (by serial: the completion
  // may come after the transaction is gone). The layer must outlive the transport's completions.
  void sendForServer(ServerTransaction& tx, std::string bytes);
  void sendForClient(ClientTransaction& tx, std::string bytes);
  void serverSendFailed(std::uint64_t serial, Status error);
  void clientSendFailed(std::uint64_t serial, Status error);
  void clientSentOn(std::uint64_t serial, transport::FlowId flow);  // links tx to the flow
  void unlinkFlow(ClientTransaction& tx);
  void reportFailedSends();

  TimerService& timers_;
  transport::Transport& transport_;
  TransactionUser& tu_;
  LayerConfig config_;
  Counters stats_;

  Table<ServerTransaction> servers_;
  Table<ClientTransaction> clients_;
  // Serial -> live transaction, for transport completions that may arrive after termination.
  std::unordered_map<std::uint64_t, ServerTransaction*> live_servers_;
  std::unordered_map<std::uint64_t, ClientTransaction*> live_clients_;
  // Flow -> first client transaction written to it (intrusive list via flow_prev_/flow_next_).
  std::unordered_map<transport::FlowId, ClientTransaction*> flow_clients_;
  std::vector<std::unique_ptr<ServerTransaction>> dead_servers_;
  std::vector<std::unique_ptr<ClientTransaction>> dead_clients_;
  TimerService::TimerId reap_timer_ = 0;
  TimerService::TimerId lazy_reap_timer_ = 0;
  static constexpr Duration kLazyReapDelay = std::chrono::milliseconds(200);
  struct FailedSend {
    std::uint64_t serial;
    bool server;
    Status error;
  };
  std::vector<FailedSend> failed_sends_;
  TimerService::TimerId failure_timer_ = 0;

  std::uint64_t next_serial_ = 0;
  std::uint64_t id_seed_;
  std::uint64_t id_counter_ = 0;
  std::string key_buf_;
};

}  // namespace sipwake::transaction
