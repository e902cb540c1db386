#include "transaction/transaction_layer.h"

#include <charconv>
#include <random>
#include <utility>

#include "common/log.h"
#include "sip/headers.h"
#include "transport/event_loop.h"
#include "transport/response_routing.h"

namespace sipwake::transaction {
namespace {

constexpr char kSep = '\x1f';  // cannot appear in any SIP token or header value we key on

// Method class of a server transaction: an ACK belongs to its INVITE (§17.2.3).
std::string_view methodClass(const sip::Message& m) {
  return m.method() == sip::Method::kAck ? std::string_view("INVITE") : m.methodText();
}

void appendNumber(std::string& out, std::uint64_t n) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), n);
  out.append(buf, r.ptr);
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void appendHex(std::string& out, std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xf]);
}

std::string toTagOf(const sip::Message& m) {
  auto to = m.to();
  return to ? std::string(to->tag()) : std::string();
}

Counter* counter(const char* name) { return &Stats::global().counter(name); }

// A client transaction still waiting for its final response (a transport failure matters).
bool awaitingFinal(ClientState s) {
  return s == ClientState::kCalling || s == ClientState::kTrying || s == ClientState::kProceeding;
}

}  // namespace

TransactionLayer::TransactionLayer(TimerService& timers, transport::Transport& transport,
                                   TransactionUser& tu, LayerConfig config)
    : timers_(timers), transport_(transport), tu_(tu), config_(std::move(config)) {
  stats_.server_invite_created = counter("transaction.server_invite_created");
  stats_.server_non_invite_created = counter("transaction.server_non_invite_created");
  stats_.client_invite_created = counter("transaction.client_invite_created");
  stats_.client_non_invite_created = counter("transaction.client_non_invite_created");
  stats_.server_invite_terminated = counter("transaction.server_invite_terminated");
  stats_.server_non_invite_terminated = counter("transaction.server_non_invite_terminated");
  stats_.client_invite_terminated = counter("transaction.client_invite_terminated");
  stats_.client_non_invite_terminated = counter("transaction.client_non_invite_terminated");
  stats_.retransmissions_absorbed = counter("transaction.retransmissions_absorbed");
  stats_.retransmissions_sent = counter("transaction.retransmissions_sent");
  stats_.timeouts = counter("transaction.timeouts");
  stats_.transport_errors = counter("transaction.transport_errors");
  stats_.cancel_481 = counter("transaction.cancel_481");
  stats_.stray_responses = counter("transaction.stray_responses");
  stats_.unmatched_acks = counter("transaction.unmatched_acks");
  stats_.refused_overload = counter("transaction.refused_overload");
  stats_.dropped_malformed = counter("transaction.dropped_malformed");
  std::random_device rd;
  id_seed_ = (std::uint64_t{rd()} << 32) ^ rd();
  key_buf_.reserve(256);
}

TransactionLayer::~TransactionLayer() {
  // Timer callbacks hold raw pointers to transactions and to us: cancel them all, no callbacks.
  auto cancelServer = [this](ServerTransaction& tx) {
    if (tx.trying_timer_) timers_.cancel(tx.trying_timer_);
    if (tx.retransmit_timer_) timers_.cancel(tx.retransmit_timer_);
    if (tx.timeout_timer_) timers_.cancel(tx.timeout_timer_);
  };
  auto cancelClient = [this](ClientTransaction& tx) {
    if (tx.retransmit_timer_) timers_.cancel(tx.retransmit_timer_);
    if (tx.timeout_timer_) timers_.cancel(tx.timeout_timer_);
    if (tx.linger_timer_) timers_.cancel(tx.linger_timer_);
  };
  for (auto& [key, tx] : servers_) cancelServer(*tx);
  for (auto& [key, tx] : clients_) cancelClient(*tx);
  if (reap_timer_) timers_.cancel(reap_timer_);
  if (lazy_reap_timer_) timers_.cancel(lazy_reap_timer_);
  if (failure_timer_) timers_.cancel(failure_timer_);
}

std::string TransactionLayer::newBranch() {
  std::string b;
  b.reserve(7 + 4 + 16);
  transport::appendBranchCookie(b);
  appendHex(b, splitmix64(id_seed_ + ++id_counter_));
  return b;
}

std::string TransactionLayer::newTag() {
  std::string t;
  t.reserve(16);
  appendHex(t, splitmix64(id_seed_ ^ (++id_counter_ * 0x2545f4914f6cdd1dULL)));
  return t;
}

std::size_t TransactionLayer::unansweredServerCount() const {
  std::size_t n = 0;
  for (const auto& [key, tx] : servers_) {
    if (tx->state() == ServerState::kTrying || tx->state() == ServerState::kProceeding) ++n;
  }
  return n;
}

bool TransactionLayer::atCapacity() const {
  return servers_.size() + clients_.size() >= config_.max_transactions;
}

// ---------------------------------------------------------------------------------------------
// Receiving.

void TransactionLayer::receive(transport::ReceivedMessage&& message) {
  if (message.message.isRequest()) {
    receiveRequest(std::move(message));
  } else {
    receiveResponse(std::move(message));
  }
}

bool TransactionLayer::buildServerKey(const sip::Message& message, const sip::Via& via,
                                      std::string_view method_class) {
  key_buf_.clear();
  key_buf_.append(method_class);
  key_buf_.push_back(kSep);
  if (via.hasMagicCookie()) {
    // §17.2.3: branch + sent-by + method.
    key_buf_.push_back('b');
    key_buf_.append(via.branch());
    key_buf_.push_back(kSep);
    key_buf_.append(via.host);
    key_buf_.push_back(':');
    appendNumber(key_buf_, via.port);
    return true;
  }
  // RFC 2543 fallback (§17.2.3): Request-URI, From tag, Call-ID, CSeq number, top Via. The To
  // tag is compared by the caller (it differs between an INVITE and its ACK).
  auto from = message.from();
  auto cseq = message.cseq();
  if (!from || !cseq) return false;
  key_buf_.push_back('2');
  key_buf_.append(message.requestUriText());
  key_buf_.push_back(kSep);
  key_buf_.append(from->tag());
  key_buf_.push_back(kSep);
  key_buf_.append(message.callId());
  key_buf_.push_back(kSep);
  appendNumber(key_buf_, cseq->number);
  key_buf_.push_back(kSep);
  key_buf_.append(via.text);
  return true;
}

ServerTransaction* TransactionLayer::findServer() {
  auto it = servers_.find(std::string_view(key_buf_));
  return it == servers_.end() ? nullptr : it->second.get();
}

void TransactionLayer::receiveRequest(transport::ReceivedMessage&& message) {
  auto via = message.message.topVia();
  if (!via) {
    stats_.dropped_malformed->inc();
    SW_LOG_DEBUG("transaction: request without usable Via dropped: {}", via.status().message());
    return;
  }
  switch (message.message.method()) {
    case sip::Method::kAck:
      receiveAck(std::move(message), *via);
      return;
    case sip::Method::kCancel:
      receiveCancel(std::move(message), *via);
      return;
    default:
      break;
  }
  if (!buildServerKey(message.message, *via, methodClass(message.message))) {
    stats_.dropped_malformed->inc();
    return;
  }
  if (ServerTransaction* tx = findServer()) {
    // With the RFC 2543 fallback a different To tag would be a different request; such a clash
    // (same From tag, Call-ID, CSeq and Via) is not a real-world case, so it is absorbed too.
    tx->onRetransmission();
    return;
  }
  if (atCapacity()) {
    stats_.refused_overload->inc();
    auto response = sip::makeResponseTo(message.message, 503, "Service Unavailable", newTag());
    sendStatelessResponse(message, std::move(response));
    return;
  }
  ServerTransaction* tx = createServer(message, *via);
  tu_.onRequest(*tx, std::move(message));
}

void TransactionLayer::receiveAck(transport::ReceivedMessage&& message, const sip::Via& via) {
  ServerTransaction* tx = nullptr;
  if (buildServerKey(message.message, via, "INVITE")) tx = findServer();
  if (tx != nullptr && tx->rfc2543_ && toTagOf(message.message) != tx->response_to_tag_) {
    tx = nullptr;  // §17.2.3: the ACK's To tag must be the one of our response
  }
  if (tx == nullptr) {
    stats_.unmatched_acks->inc();
    tu_.onAck(std::move(message));
    return;
  }
  tx->onAck(std::move(message));
}

void TransactionLayer::receiveCancel(transport::ReceivedMessage&& message, const sip::Via& via) {
  if (!buildServerKey(message.message, via, message.message.methodText())) {
    stats_.dropped_malformed->inc();
    return;
  }
  if (ServerTransaction* tx = findServer()) {
    tx->onRetransmission();
    return;
  }
  if (atCapacity()) {
    stats_.refused_overload->inc();
    sendStatelessResponse(
        message, sip::makeResponseTo(message.message, 503, "Service Unavailable", newTag()));
    return;
  }
  // §9.2: the INVITE is found with the §17.2.3 rules, but with the method INVITE.
  ServerTransaction* invite = nullptr;
  if (buildServerKey(message.message, via, "INVITE")) invite = findServer();
  if (invite != nullptr && invite->rfc2543_ &&
      toTagOf(message.message) != invite->request_to_tag_) {
    invite = nullptr;
  }
  // The CANCEL is a non-INVITE server transaction of its own, answered here; nobody hears of it.
  bool ok = buildServerKey(message.message, via, message.message.methodText());
  SIPWAKE_CHECK(ok);
  ServerTransaction* cancel_tx = createServer(message, via);
  cancel_tx->setUser(nullptr);
  if (invite == nullptr) {
    stats_.cancel_481->inc();
    (void)cancel_tx->respond(
        sip::makeResponseTo(message.message, 481, "Call/Transaction Does Not Exist", newTag()));
    return;
  }
  (void)cancel_tx->respond(sip::makeResponseTo(message.message, 200, "OK", newTag()));
  // §9.2: a CANCEL after the final response has no effect on the INVITE.
  if (invite->state_ == ServerState::kProceeding && invite->user_ != nullptr) {
    invite->user_->onCancel(*invite, std::move(message));
  }
}

void TransactionLayer::receiveResponse(transport::ReceivedMessage&& message) {
  auto via = message.message.topVia();
  auto cseq = message.message.cseq();
  if (!via || !cseq) {
    stats_.dropped_malformed->inc();
    return;
  }
  // §17.1.3: branch of the top Via + CSeq method (CANCEL shares the INVITE's branch).
  key_buf_.clear();
  key_buf_.append(cseq->method_text);
  key_buf_.push_back(kSep);
  key_buf_.append(via->branch());
  auto it = clients_.find(std::string_view(key_buf_));
  if (it == clients_.end()) {
    stats_.stray_responses->inc();
    tu_.onStrayResponse(std::move(message));
    return;
  }
  it->second->onResponse(std::move(message));
}

transport::SendTarget TransactionLayer::routeResponse(const transport::ReceivedMessage& request,
                                                      const sip::Via& via) {
  Result<transport::SendTarget> target =
      config_.response_router
          ? config_.response_router(request, via)
          : transport::responseTarget(via, request.protocol, request.remote, request.flow);
  if (target) return std::move(target).value();
  // Symmetric fallback: back where the request came from.
  transport::SendTarget t;
  t.protocol = request.protocol;
  t.remote = request.remote;
  t.flow = request.flow;
  return t;
}

ServerTransaction* TransactionLayer::createServer(transport::ReceivedMessage& request,
                                                  const sip::Via& via) {
  const sip::Message& m = request.message;
  std::unique_ptr<ServerTransaction> owned(new ServerTransaction(*this, ++next_serial_));
  ServerTransaction* tx = owned.get();
  tx->key_ = key_buf_;
  tx->created_at_ = timers_.now();
  tx->method_ = m.method();
  tx->invite_ = tx->method_ == sip::Method::kInvite;
  tx->reliable_ = request.protocol != transport::Protocol::kUdp;
  tx->rfc2543_ = !via.hasMagicCookie();
  tx->target_ = routeResponse(request, via);
  tx->user_ = &tu_;
  if (tx->rfc2543_) tx->request_to_tag_ = toTagOf(m);
  if (tx->invite_ && !tx->rfc2543_) {
    tx->pin_key_ = transport::inviteAffinityKey(via);
    transport_.pinInvite(tx->pin_key_);
  }
  servers_.emplace(std::string_view(tx->key_), std::move(owned));
  live_servers_.emplace(tx->serial_, tx);
  if (tx->invite_) {
    stats_.server_invite_created->inc();
    tx->state_ = ServerState::kProceeding;
    if (config_.auto_trying) {
      // §8.2.6.1: the 100 copies Via, From, To, Call-ID, CSeq and Timestamp, without a To tag.
      // Kept as preformatted lines so that no Message has to be built unless the timer fires.
      for (const sip::HeaderField& h : m.headers()) {
        if (h.removed) continue;
        switch (h.id) {
          case sip::HeaderId::kVia:
          case sip::HeaderId::kFrom:
          case sip::HeaderId::kTo:
          case sip::HeaderId::kCallId:
          case sip::HeaderId::kCSeq:
          case sip::HeaderId::kTimestamp:
            // name + value, not `raw`: an edited field (e.g. the Via stamped with received=)
            // keeps its old raw bytes.
            tx->trying_head_.append(sip::canonicalHeaderName(h.id));
            tx->trying_head_.append(": ");
            tx->trying_head_.append(h.value);
            tx->trying_head_.append("\r\n");
            break;
          default:
            break;
        }
      }
      if (config_.trying_delay <= Duration::zero()) {
        tx->sendTrying();
      } else {
        tx->trying_timer_ = timers_.schedule(config_.trying_delay, [tx] {
          tx->trying_timer_ = 0;
          tx->sendTrying();
        });
      }
    }
  } else {
    stats_.server_non_invite_created->inc();
    tx->state_ = ServerState::kTrying;
  }
  return tx;
}

void TransactionLayer::sendStatelessResponse(const transport::ReceivedMessage& request,
                                             sip::Message&& response) {
  auto via = request.message.topVia();
  transport::SendTarget target;
  if (via) {
    target = routeResponse(request, *via);
  } else {
    target.protocol = request.protocol;
    target.remote = request.remote;
    target.flow = request.flow;
  }
  transport_.send(target, response.serialize());
}

// ---------------------------------------------------------------------------------------------
// Sending requests.

Result<ClientTransaction*> TransactionLayer::sendRequest(sip::Message&& request,
                                                         const transport::SendTarget& target,
                                                         const RequestOptions& options) {
  SIPWAKE_CHECK(request.isRequest());
  if (request.method() == sip::Method::kAck) {
    return invalidArgument("ACK is not sent in a client transaction");
  }
  if (atCapacity()) {
    stats_.refused_overload->inc();
    return outOfRange("transaction table full");
  }
  std::string branch;
  if (options.push_via) {
    auto local = transport_.localAddressFor(target.protocol, target.remote.v6);
    if (!local) return local.status();
    branch = options.branch.empty() ? newBranch() : std::string(options.branch);
    std::string via;
    via.reserve(64 + branch.size());
    via.append("SIP/2.0/");
    via.append(transport::protocolName(target.protocol));
    via.push_back(' ');
    via.append(local->hostForUri());
    via.push_back(':');
    appendNumber(via, local->port);
    via.append(";branch=");
    via.append(branch);
    if (target.protocol == transport::Protocol::kUdp) via.append(";rport");
    request.pushVia(std::move(via));
  } else {
    auto via = request.topVia();
    if (!via) return via.status();
    if (!via->hasMagicCookie()) {
      return invalidArgument("top Via branch lacks the z9hG4bK magic cookie");
    }
    branch = std::string(via->branch());
  }
  key_buf_.clear();
  key_buf_.append(request.methodText());
  key_buf_.push_back(kSep);
  key_buf_.append(branch);
  if (clients_.find(std::string_view(key_buf_)) != clients_.end()) {
    return Status(StatusCode::kAlreadyExists, "a client transaction with this branch exists");
  }
  std::unique_ptr<ClientTransaction> owned(
      new ClientTransaction(*this, ++next_serial_, std::move(request)));
  ClientTransaction* tx = owned.get();
  tx->key_ = key_buf_;
  tx->branch_ = std::move(branch);
  tx->method_ = tx->request_.method();
  tx->invite_ = tx->method_ == sip::Method::kInvite;
  tx->reliable_ = target.protocol != transport::Protocol::kUdp;
  tx->target_ = target;
  tx->user_ = options.user;
  tx->user_data_ = options.user_data;
  clients_.emplace(std::string_view(tx->key_), std::move(owned));
  live_clients_.emplace(tx->serial_, tx);
  (tx->invite_ ? stats_.client_invite_created : stats_.client_non_invite_created)->inc();
  tx->start();
  return tx;
}

Status TransactionLayer::cancel(ClientTransaction& tx, std::string_view reason) {
  if (!tx.invite_) return invalidArgument("only INVITE transactions can be cancelled");
  if (tx.state_ != ClientState::kCalling && tx.state_ != ClientState::kProceeding) {
    return Status(StatusCode::kFailedPrecondition, "INVITE already has a final response");
  }
  if (tx.cancel_requested_) return Status::ok();
  tx.cancel_requested_ = true;
  tx.cancel_reason_ = std::string(reason);
  // §9.1: no CANCEL before a provisional response; sent when the first one arrives.
  if (tx.state_ == ClientState::kProceeding) tx.sendCancel();
  return Status::ok();
}

void TransactionLayer::retransmitNow(ClientTransaction& tx) {
  if (tx.reliable_ || tx.wire_.empty() || !tx.awaitingFirstResponse()) return;
  stats_.retransmissions_sent->inc();
  tx.send(tx.wire_);
}

void TransactionLayer::stopRetransmissions(ClientTransaction& tx) {
  if (tx.retransmit_timer_ == 0 || !tx.awaitingFirstResponse()) return;
  timers_.cancel(std::exchange(tx.retransmit_timer_, 0));
}

// ---------------------------------------------------------------------------------------------
// Sending, termination, reaping.

void TransactionLayer::sendForServer(ServerTransaction& tx, std::string bytes) {
  std::uint64_t serial = tx.serial_;
  // sendOnFlow: the transport's native completion type, no wrapper on this hot path.
  transport_.sendOnFlow(tx.target_, std::move(bytes), [this, serial](Status s, transport::FlowId) {
    if (!s.isOk()) serverSendFailed(serial, std::move(s));
  });
}

void TransactionLayer::sendForClient(ClientTransaction& tx, std::string bytes) {
  std::uint64_t serial = tx.serial_;
  transport_.sendOnFlow(tx.target_, std::move(bytes),
                        [this, serial](Status s, transport::FlowId flow) {
                          if (!s.isOk()) {
                            clientSendFailed(serial, std::move(s));
                          } else if (flow != 0) {
                            clientSentOn(serial, flow);
                          }
                        });
}

void TransactionLayer::clientSentOn(std::uint64_t serial, transport::FlowId flow) {
  auto it = live_clients_.find(serial);
  if (it == live_clients_.end()) return;
  ClientTransaction& tx = *it->second;
  // Only a request still waiting for its final response cares (the ACK of a non-2xx is sent
  // later on the same transaction and needs nothing).
  if (tx.flow_ == flow || !awaitingFinal(tx.state())) return;
  unlinkFlow(tx);
  tx.flow_ = flow;
  ClientTransaction*& head = flow_clients_[flow];
  tx.flow_next_ = head;
  if (head != nullptr) head->flow_prev_ = &tx;
  head = &tx;
}

void TransactionLayer::unlinkFlow(ClientTransaction& tx) {
  if (tx.flow_ == 0) return;
  if (tx.flow_next_ != nullptr) tx.flow_next_->flow_prev_ = tx.flow_prev_;
  if (tx.flow_prev_ != nullptr) {
    tx.flow_prev_->flow_next_ = tx.flow_next_;
  } else if (tx.flow_next_ != nullptr) {
    flow_clients_[tx.flow_] = tx.flow_next_;
  } else {
    flow_clients_.erase(tx.flow_);
  }
  tx.flow_ = 0;
  tx.flow_prev_ = tx.flow_next_ = nullptr;
}

void TransactionLayer::onFlowClosed(transport::FlowId flow, const Status& why) {
  auto it = flow_clients_.find(flow);
  if (it == flow_clients_.end()) return;
  ClientTransaction* tx = it->second;
  flow_clients_.erase(it);
  while (tx != nullptr) {
    ClientTransaction* next = tx->flow_next_;
    tx->flow_ = 0;
    tx->flow_prev_ = tx->flow_next_ = nullptr;
    if (awaitingFinal(tx->state_)) {
      clientSendFailed(tx->serial_, unavailable("connection closed after the request was sent: " +
                                                why.message()));
    }
    tx = next;
  }
}

// Transport completions may run inside send(), i.e. inside a TU call; errors are handled from
// a zero-delay timer so the TU is never re-entered. Rare path: allocation is fine here.
void TransactionLayer::serverSendFailed(std::uint64_t serial, Status error) {
  failed_sends_.push_back(FailedSend{serial, true, std::move(error)});
  if (failure_timer_ == 0) {
    failure_timer_ = timers_.schedule(Duration::zero(), [this] {
      failure_timer_ = 0;
      reportFailedSends();
    });
  }
}

void TransactionLayer::clientSendFailed(std::uint64_t serial, Status error) {
  failed_sends_.push_back(FailedSend{serial, false, std::move(error)});
  if (failure_timer_ == 0) {
    failure_timer_ = timers_.schedule(Duration::zero(), [this] {
      failure_timer_ = 0;
      reportFailedSends();
    });
  }
}

void TransactionLayer::reportFailedSends() {
  auto failures = std::move(failed_sends_);
  failed_sends_.clear();
  for (FailedSend& f : failures) {
    if (f.server) {
      auto it = live_servers_.find(f.serial);
      if (it == live_servers_.end()) continue;  // already gone: nobody to tell
      ServerTransaction& tx = *it->second;
      stats_.transport_errors->inc();
      // The TU only hears of it while it may still respond; afterwards it has nothing to do.
      bool report = tx.state_ == ServerState::kTrying || tx.state_ == ServerState::kProceeding;
      ServerTransactionUser* user = tx.user_;
      terminate(tx);
      if (report && user != nullptr) user->onTransportError(tx, f.error);
    } else {
      auto it = live_clients_.find(f.serial);
      if (it == live_clients_.end()) continue;
      ClientTransaction& tx = *it->second;
      stats_.transport_errors->inc();
      bool report = awaitingFinal(tx.state_);
      ClientTransactionUser* user = tx.user_;
      terminate(tx);
      if (report && user != nullptr) user->onTransportError(tx, f.error);
    }
  }
}

void TransactionLayer::terminate(ServerTransaction& tx, bool reap_soon) {
  if (tx.state_ == ServerState::kTerminated) return;
  tx.state_ = ServerState::kTerminated;
  if (tx.trying_timer_) timers_.cancel(std::exchange(tx.trying_timer_, 0));
  if (tx.retransmit_timer_) timers_.cancel(std::exchange(tx.retransmit_timer_, 0));
  if (tx.timeout_timer_) timers_.cancel(std::exchange(tx.timeout_timer_, 0));
  (tx.invite_ ? stats_.server_invite_terminated : stats_.server_non_invite_terminated)->inc();
  if (!tx.pin_key_.empty()) transport_.unpinInvite(tx.pin_key_);
  live_servers_.erase(tx.serial_);
  auto it = servers_.find(std::string_view(tx.key_));
  SIPWAKE_CHECK(it != servers_.end() && it->second.get() == &tx);
  dead_servers_.push_back(std::move(it->second));
  servers_.erase(it);
  if (reap_soon) {
    scheduleReap();
  } else {
    scheduleLazyReap();
  }
}

void TransactionLayer::terminate(ClientTransaction& tx) {
  if (tx.state_ == ClientState::kTerminated) return;
  tx.state_ = ClientState::kTerminated;
  if (tx.retransmit_timer_) timers_.cancel(std::exchange(tx.retransmit_timer_, 0));
  if (tx.timeout_timer_) timers_.cancel(std::exchange(tx.timeout_timer_, 0));
  if (tx.linger_timer_) timers_.cancel(std::exchange(tx.linger_timer_, 0));
  (tx.invite_ ? stats_.client_invite_terminated : stats_.client_non_invite_terminated)->inc();
  live_clients_.erase(tx.serial_);
  unlinkFlow(tx);
  auto it = clients_.find(std::string_view(tx.key_));
  SIPWAKE_CHECK(it != clients_.end() && it->second.get() == &tx);
  dead_clients_.push_back(std::move(it->second));
  clients_.erase(it);
  scheduleReap();
}

void TransactionLayer::scheduleReap() {
  if (reap_timer_ != 0) return;
  reap_timer_ = timers_.schedule(Duration::zero(), [this] {
    reap_timer_ = 0;
    reap();
  });
}

void TransactionLayer::scheduleLazyReap() {
  if (lazy_reap_timer_ != 0 || reap_timer_ != 0) return;
  lazy_reap_timer_ = timers_.schedule(kLazyReapDelay, [this] {
    lazy_reap_timer_ = 0;
    reap();
  });
}

void TransactionLayer::reap() {
  // onTerminated may terminate further transactions: loop until both lists stay empty.
  while (!dead_servers_.empty() || !dead_clients_.empty()) {
    auto servers = std::move(dead_servers_);
    dead_servers_.clear();
    auto clients = std::move(dead_clients_);
    dead_clients_.clear();
    for (auto& tx : servers) {
      if (tx->user_ != nullptr) tx->user_->onTerminated(*tx);
    }
    for (auto& tx : clients) {
      if (tx->user_ != nullptr) tx->user_->onTerminated(*tx);
    }
  }
}

}  // namespace sipwake::transaction
