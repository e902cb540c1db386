// The stateful proxy core (RFC 3261 §16): validates a request (§16.3), processes its Route header
// (§16.4, loose routing and the strict-router fix-up), finds the targets (§16.5: location lookup
// for our domains, the Request-URI — via the outbound proxy or RFC 3263 — for other domains),
// forks to every target in parallel (§16.6), aggregates the responses (§16.7), handles CANCEL
// (§16.10), Timer C (§16.8) and forwards ACKs for 2xx and stray 2xx retransmissions statelessly.
// It answers 489 to PUBLISH / server-side SUBSCRIBE for our users (we serve no event state) and
// removes push parameters from the Contact of everything it forwards.
//
// One Proxy per event loop. The core handler (src/server) hands it every request that is not for
// the server itself and not a REGISTER, and every ACK / response the transaction layer did not
// match. For each forwarded request the Proxy creates a ProxyContext (proxy.cc): the server
// transaction, its branches (client transactions), Timer C and the response context. A context
// lives until its server transaction and all its client transactions are terminated.
//
// Push wake-up hooks (routing/wake.h): the proxy asks TargetResolver::resolveRequest(); a resolver
// may return `more_may_come`; the context then waits (even with zero branches) for addBranch() /
// noMoreBranches(), and tells the resolver how it ended (TargetResolver::onContextEnded). "All
// current branches finished" and "no more branches will come" are separate: a final response is
// chosen only when both hold (or a 2xx / 6xx / CANCEL ends the request earlier).
//
// Thread: everything runs on the loop that owns the TransactionLayer. No locks.
// Ownership: the Proxy owns its contexts; every dependency in ProxyDeps must outlive it. The
// Proxy must be destroyed before the TransactionLayer (it detaches itself from the transactions).
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

#include "auth/authenticator.h"
#include "auth/source_throttle.h"
#include "auth/trusted_peers.h"
#include "common/clock.h"
#include "common/stats.h"
#include "common/status.h"
#include "routing/edge.h"
#include "routing/flow_token.h"
#include "routing/next_hop.h"
#include "routing/target_resolver.h"
#include "sip/message.h"
#include "transaction/transaction_layer.h"

namespace sipwake::routing {

enum class RecordRouteMode : std::uint8_t {
  kAlways,  // every dialog-creating (To-tag-less) request: stay on the path of the dialog
  kNever,   // never: in-dialog requests go end to end
};

// kDistinct: 404 for an unknown user, 480 for a known one without bindings (RFC 3261 plain).
// k480 / k404: both get that answer, with the same headers, at the same point.
enum class UnknownUserAnswer : std::uint8_t { k480, k404, kDistinct };

struct ProxyConfig {
  // §16.6 step 11: > 3 minutes. Restarted by every provisional response of the branch.
  Duration timer_c = seconds(180);
  RecordRouteMode record_route = RecordRouteMode::kAlways;
  // Targets beyond this many (highest q first) are not tried.
  std::size_t max_forks = 16;
  // Requests for domains we are not responsible for go here (a URI from outboundProxyUri());
  // empty: to the Request-URI itself (IP literal, or RFC 3263 through the Resolver).
  std::string outbound_proxy;
  // Host written in Record-Route when a listener is bound to a wildcard address (0.0.0.0 / ::).
  std::string advertised_host;
  // Value of the Server header of responses the proxy generates itself; empty: none.
  std::string server_header;
  // Send "100 Trying" for an INVITE at once (§16.2) rather than leaving it to the transaction
  // layer's 200 ms timer.
  bool immediate_trying = true;
  // Keys that sign our Record-Route values (routing/flow_token.h). Every Proxy of a process must
  // get the same secret: an in-dialog request may arrive on any loop. Empty secret: a random one
  // for this Proxy alone (tests).
  RouteKeyConfig route_keys;
  // What a stranger (neither authenticated nor trusted) hears for a user of ours who does not
  // exist and for one who is not reachable (no binding): the same answer unless kDistinct.
  UnknownUserAnswer unknown_user_answer = UnknownUserAnswer::k480;
};

struct ProxyDeps {
  transaction::TransactionLayer* layer = nullptr;  // required
  transport::Transport* transport = nullptr;       // required
  TargetResolver* targets = nullptr;               // required: location lookup
  Resolver* resolver = nullptr;  // DNS for host names; nullptr: names are unroutable (503)
  // Digest authentication of requests from our users (407); nullptr: nobody is challenged.
  auth::Authenticator* authenticator = nullptr;
  // Sources that may use us to reach other domains without authenticating (and skip the
  // challenge; the Authenticator has its own copy for that). nullptr: nobody.
  const auth::TrustedPeers* trusted = nullptr;
  // True if `host` (URI form: IPv6 in brackets) is one of our domains or addresses. Required.
  std::function<bool(std::string_view host)> is_local_host;
  // Wall-clock time in Unix seconds, for the key epochs of signed Record-Routes; nullptr: the
  // system clock.
  std::function<std::int64_t()> unix_now;
  // Out-of-dialog requests from strangers to our domains, per source address: beyond it,
  // 503 + Retry-After. Shared by the proxies of all loops; nullptr: no throttle.
  auth::SourceThrottle* stranger_throttle = nullptr;
  // Edge mode (routing/edge.h): a Request-URI naming an upstream contact of ours
  // ("edge-<device>@us") is resolved as the device's AOR; a request of our users (or trusted
  // peers) for an edge-domain user without targets here goes to the upstream; in relay mode every
  // new request from an edge-domain user goes there, unchallenged here. nullptr: off.
  const EdgeRouting* edge = nullptr;
};

class ProxyContext;

// What the branches of a context sent to one binding have heard (push layer). Ordered: the
// "most alive" of several branches wins.
enum class BranchProgress : std::uint8_t {
  kNone,       // no branch to that binding (or no such context)
  kUnreached,  // ended without any response but 100 (timeout, transport error, DNS)
  kPending,    // sent, no response other than 100 yet
  kReached,    // a response other than 100 arrived: the UA rang (or declined) — it saw the call
};

class Proxy {
 public:
  // REQUIRES: deps.layer, deps.transport, deps.targets and deps.is_local_host set.
  Proxy(ProxyDeps deps, ProxyConfig config);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // A new request that is not addressed to the server itself (the core answers those) and is
  // not a REGISTER. Takes over `tx` (becomes its user) if it forwards; otherwise answers it.
  // REQUIRES: request.message.isRequest(), method is not ACK or CANCEL.
  void onRequest(transaction::ServerTransaction& tx, transport::ReceivedMessage&& request);
  // An ACK that matched no server transaction: the ACK for a 2xx, forwarded statelessly along
  // its Route set (or dropped when it has nowhere to go).
  void onAck(transport::ReceivedMessage&& ack);
  // A response that matched no client transaction (a late 2xx retransmission): forwarded
  // statelessly when its top Via is ours (§16.7 step 3 / RFC 6026), else dropped.
  void onStrayResponse(transport::ReceivedMessage&& response);

  // Adds a branch to a live context that has not sent its final response yet (push wake-up: a
  // woken device registered). FailedPrecondition when the context no longer accepts branches
  // (final response sent, 6xx received, CANCEL), NotFound when the context is gone.
  Status addBranch(ContextId id, Target target);
  // No more branches will be added to `id`: once the current ones finish, the best response is
  // sent (480 if there never was a branch). No-op for an unknown context.
  void noMoreBranches(ContextId id);
  // The same, and when no branch answers with a 2xx the request gets `code` `reason` (+
  // Retry-After when retry_after_s is not 0) instead of the best response (push layer: a MESSAGE
  // kept for later delivery gets 202, or the answer of a full message store).
  struct Fallback {
    int code = 0;
    std::string reason;
    std::uint32_t retry_after_s = 0;
    // Sent at once, not after the branches still without a final response: the MESSAGE wait
    // is over and a non-INVITE branch cannot be CANCELled (the contact of an app the OS killed
    // stays silent until the branch's Timer F, which is the sender's too). Those that never
    // heard from their destination are retransmitted no more; late responses are dropped, a
    // 2xx among them too.
    bool at_once = false;
  };
  void noMoreBranches(ContextId id, Fallback fallback);
  // Cancels the branches of `id` that were sent to `binding_key` (push layer: a device declined
  // or a different device of the same instance answered). Returns how many were cancelled.
  std::size_t cancelBranches(ContextId id, std::string_view binding_key);
  // Push layer: what the branches of `id` sent to `binding_key` have heard (the most alive).
  BranchProgress branchProgress(ContextId id, std::string_view binding_key);
  // Push layer: a device that had a live contact (so its branch went there) was pushed anyway
  // and registered again as `fresh`. Each branch to `binding_key` that the UA has not answered
  // (kPending) is either
  //  - taken over: it still waits for its first response and goes where `fresh` goes (same
  //    transport and address, for TCP/TLS the same connection, no Path): its client transaction
  //    IS the request to the woken device. Over UDP the request is retransmitted at once. The
  //    branch now counts as `fresh`'s (ContextEnd::answered_by).
  //  - or superseded: its retransmissions stop at once (none may reach the woken app, which
  //    would see a second call), it is CANCELled as soon as a provisional allows (§9.1), and its
  //    final response is ignored; the caller adds the branch to `fresh` right after.
  struct Handover {
    std::size_t taken_over = 0;
    std::size_t superseded = 0;
  };
  Handover handOverBranches(ContextId id, std::string_view binding_key, const Target& fresh);
  bool hasContext(ContextId id) const { return contexts_.count(id) != 0; }

  std::size_t contextCount() const { return contexts_.size(); }

 private:
  friend class ProxyContext;

  struct Counters {
    Counter& requests;
    Counter& forwarded;
    Counter& branches;
    Counter& responses_forwarded;
    Counter& too_many_hops;
    Counter& loops;
    Counter& bad_extension;
    Counter& unsupported_scheme;
    Counter& not_found;
    Counter& unavailable;
    Counter& challenged;
    Counter& forbidden;
    Counter& relay_denied;
    Counter& cancelled;
    Counter& timer_c;
    Counter& unroutable;
    Counter& acks_forwarded;
    Counter& acks_dropped;
    Counter& route_rejected;
    Counter& stray_forwarded;
    Counter& stray_dropped;
    Counter& bad_event;
    Counter& push_params_stripped;
    Counter& stranger_throttled;
    Counter& unknown_user_hidden;
    Counter& edge_from_upstream;
    Counter& edge_to_upstream;
  };

  // Where a request goes after §16.4 processing.
  struct RouteInfo {
    bool popped_self = false;   // we removed our own Route value(s)
    bool signed_by_us = false;  // one of them carries our signature for this dialog
    // Why none verified (when popped_self && !signed_by_us): the most telling of their verdicts.
    FlowTokenCodec::Verdict failure = FlowTokenCodec::Verdict::kNotSigned;
    std::optional<FlowPair> flow_tokens;  // from our popped Route value (last one that verified)
    FlowTokenCodec::Sender sender = FlowTokenCodec::Sender::kUnknown;  // with flow_tokens
    // A popped node route of ours (another node sent us a request for a phone registered here):
    // the phone's flow. Signed with the nodes' shared secret: the sending node authorised it.
    std::optional<FlowRef> node_flow;
    // A popped node route of ours that does not verify (forged, another secret, expired): the
    // request is refused, whatever else it carries.
    FlowTokenCodec::Verdict node_route_failure = FlowTokenCodec::Verdict::kNotSigned;
  };

  void ensureLocalPorts();
  bool isSelfUri(const sip::Uri& uri);
  // A target whose Path starts with a node route of ours (a binding registered at this node on a
  // shared store): that value is dropped and, with no Path left, the target goes over the flow
  // it names.
  void takeOwnNodeRoute(Target& target);
  bool isLocalDomainUri(const sip::Uri& uri);
  bool isOurVia(const sip::Via& via);
  // §16.4: strict-router fix-up and removal of our own Route values. False (with `error` set)
  // if the Route header is malformed.
  bool processRoutes(sip::Message& request, RouteInfo& info, std::string& error);
  // An in-dialog request (To-tag) may leave along a Route of ours only if that Route carries our
  // signature for its dialog, unless it comes from a trusted peer (which may relay anyway).
  bool mayFollowRoute(const RouteInfo& info, bool in_dialog,
                      const transport::ReceivedMessage& request) const;
  bool isTrustedSource(const transport::ReceivedMessage& request) const;
  static std::string_view rejectionReason(FlowTokenCodec::Verdict verdict);
  static std::string_view nodeRouteRejectionReason(FlowTokenCodec::Verdict verdict);
  std::int64_t unixNow() const;
  // The flow a token says the request should go out on: the other end's, given the flow it
  // arrived over, or (over neither) given who sent it.
  std::optional<transport::SendTarget> tokenFlow(const RouteInfo& info,
                                                 const transport::ReceivedMessage& request) const;
  // Hash of the routing-relevant fields of a received request (§16.6 step 8, §16.3 step 4).
  static std::string loopHash(const sip::Message& request);
  bool detectLoop(const sip::Message& request, std::string_view hash);
  // Record-Route value for our listener of `protocol`/`v6` with `token` as user part.
  Result<std::string> recordRouteValue(transport::Protocol protocol, bool v6,
                                       std::string_view token);
  // Stateless forwarding of `request` (ACK) to the next hop; false if it had nowhere to go.
  bool forwardStateless(sip::Message&& request, const std::optional<transport::SendTarget>& hop);
  // The answer for a request to our user `unknown` (no such user) or without targets, as
  // config_.unknown_user_answer says for a `stranger`.
  void respondNoTarget(transaction::ServerTransaction& tx, const sip::Message& request,
                       bool unknown, bool stranger);
  // The stranger throttle (per source address): false when it answered 503 + Retry-After.
  bool throttleStranger(transaction::ServerTransaction& tx, const sip::Message& request,
                        const transport::ReceivedMessage& received);
  void respondError(transaction::ServerTransaction& tx, const sip::Message& request, int code,
                    std::string_view reason,
                    const std::vector<std::pair<std::string_view, std::string>>& extra = {});

  ProxyContext* find(ContextId id);
  void retire(ContextId id);  // the context is finished: destroyed from a zero-delay timer
  void reap();

  ProxyDeps deps_;
  ProxyConfig config_;
  FlowTokenCodec tokens_;
  Counters stats_;
  std::unordered_map<ContextId, std::unique_ptr<ProxyContext>> contexts_;
  std::vector<std::unique_ptr<ProxyContext>> dead_;
  TimerService::TimerId reap_timer_ = 0;
  ContextId next_id_ = 0;
  bool ports_known_ = false;
  std::vector<std::uint16_t> local_ports_;  // every listener port, all protocols
  std::vector<std::string> local_via_hosts_;
  // Set to false on destruction: resolver callbacks that arrive later find it false.
  std::shared_ptr<bool> alive_;
};

}  // namespace sipwake::routing
