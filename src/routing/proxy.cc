#include "routing/proxy.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>
#include <variant>

#include "auth/sip_credentials.h"
#include "common/log.h"
#include "push/push_params.h"
#include "registrar/services.h"
#include "sip/headers.h"
#include "transport/event_loop.h"
#include "transport/response_routing.h"

namespace sipwake::routing {
namespace {

// RFC 3326 Reason for the CANCELs sent when another branch answered.
constexpr std::string_view kCompletedElsewhere = "SIP;cause=200;text=\"Call completed elsewhere\"";

constexpr char kHex[] = "0123456789abcdef";

void appendHex64(std::string& out, std::uint64_t v) {
  for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kHex[(v >> shift) & 0xf]);
}

struct Fnv {
  std::uint64_t h = 1469598103934665603ULL;
  void add(std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;  // field separator
    h *= 1099511628211ULL;
  }
};

std::string_view toTag(const sip::Message& m) {
  auto to = m.to();
  return to ? to->tag() : std::string_view();
}

bool isUnspecified(const transport::Address& a) {
  for (std::size_t i = 0; i < (a.v6 ? 16u : 4u); ++i) {
    if (a.bytes[i] != 0) return false;
  }
  return true;
}

// Rank of a final response for §16.7 step 6: lower is better.
int rankOf(int code) {
  int cls = code / 100;
  if (cls == 6) return 0;
  int base = cls * 10;
  switch (code) {
    case 401:
    case 407:
    case 415:
    case 420:
    case 484:
      return base;  // information that lets the UAC resubmit
    default:
      return base + 5;
  }
}

// A deep copy of a message we built ourselves from a parsed one.
Result<sip::Message> cloneMessage(const sip::Message& m) {
  sip::ParseLimits limits;
  limits.max_message_bytes = 1u << 20;
  limits.max_headers = 4096;
  limits.max_line_bytes = 1u << 20;
  sip::ParseOutcome out = sip::parseMessage(m.serialize(), limits);
  if (out.kind != sip::ParseOutcome::Kind::kOk || !out.message) {
    return internalError("re-parse of a forwarded request failed: " + out.reason + out.drop_reason);
  }
  return std::move(*out.message);
}

std::string joinRoutes(const std::vector<std::string>& values) {
  std::string out;
  for (const std::string& v : values) {
    if (!out.empty()) out.append(", ");
    out.append(v);
  }
  return out;
}

std::string angleUri(std::string_view uri) {
  if (!uri.empty() && uri.front() == '<') return std::string(uri);
  std::string s;
  s.reserve(uri.size() + 2);
  s.push_back('<');
  s.append(uri);
  s.push_back('>');
  return s;
}

// Removes push parameters (push::isPushParamName: RFC 8599 pn-* and the other dialects) from the
// Contact of a message we forward, URI and header parameters alike: a device's push token is for
// the registrar and its push service, never for the other party of a dialog (docs/push.md).
// True if anything was removed.
bool isPurrParam(std::string_view name) {
  constexpr std::string_view kPurr = "pn-purr";
  if (name.size() != kPurr.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c != kPurr[i]) return false;
  }
  return true;
}

bool isPushParamButPurr(std::string_view name) {
  return push::isPushParamName(name) && !isPurrParam(name);
}

// The push params of the Contact header values go (tokens never leave sipwake). With `keep_purr`
// `pn-purr` stays (RFC 8599 §6): only in a dialog sipwake record-routes, whose mid-dialog
// requests come back through sipwake.
bool stripPushContactParams(sip::Message& m, bool keep_purr = false) {
  if (m.find(sip::HeaderId::kContact) == nullptr) return false;
  std::vector<std::string_view> values = m.values(sip::HeaderId::kContact);
  std::vector<std::string> stripped;
  stripped.reserve(values.size());
  bool changed = false;
  for (std::string_view v : values) {
    stripped.push_back(
        sip::eraseNameAddrParams(v, keep_purr ? isPushParamButPurr : push::isPushParamName));
    changed = changed || stripped.back().size() != v.size();
  }
  if (changed) m.setHeader(sip::HeaderId::kContact, joinRoutes(stripped));
  return changed;
}

bool hasContactPurr(const sip::Message& m) {
  if (m.find(sip::HeaderId::kContact) == nullptr) return false;
  for (std::string_view v : m.values(sip::HeaderId::kContact)) {
    if (sip::eraseNameAddrParams(v, isPurrParam).size() != v.size()) return true;
  }
  return false;
}

// RFC 8599 §6: a device woken for a mid-dialog request answers from a new connection and gives
// its new Contact (a target refresh), while the dialog's Record-Route flow token still names the
// first connection. With `pn-purr` in the Request-URI the token's flow is used only while the
// Request-URI still names the token's address; otherwise the Request-URI is the way.
std::optional<transport::SendTarget> unlessPurrTargetMoved(
    std::optional<transport::SendTarget> flow, const sip::Uri& request_uri) {
  if (!flow || request_uri.param("pn-purr") == nullptr) return flow;
  auto literal = literalTarget(request_uri);
  if (!literal || (literal->remote == flow->remote && literal->protocol == flow->protocol)) {
    return flow;
  }
  return std::nullopt;
}

// Event packages whose state lives on a server for the user's AOR (presence server, voicemail,
// registrar event server), not on the user's devices. sipwake serves none of them, and PUBLISH
// (RFC 3903) always goes to such a server.
bool isServerSideEvent(std::string_view event) {
  // Event: package[.template][;id=...]: the package is what we compare.
  std::size_t end = event.find_first_of("; \t");
  std::string package(event.substr(0, end));
  for (char& c : package) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  for (std::string_view known : {"presence", "presence.winfo", "message-summary", "reg"}) {
    if (package == known) return true;
  }
  return false;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ProxyContext: one forwarded request (§16: the server transaction, its branches and the
// response context).

class ProxyContext final : public transaction::ServerTransactionUser,
                           public transaction::ClientTransactionUser {
 public:
  struct Arrival {
    transport::Protocol protocol = transport::Protocol::kUdp;
    bool v6 = false;
    std::optional<FlowRef> upstream;  // the sender is the UA itself (one Via)
  };

  ProxyContext(Proxy& proxy, ContextId id, transaction::ServerTransaction& tx,
               sip::Message&& request, Arrival arrival, std::string loop_hash, bool record_route,
               bool use_outbound)
      : proxy_(proxy),
        id_(id),
        server_(&tx),
        invite_(tx.isInvite()),
        request_(std::move(request)),
        arrival_(std::move(arrival)),
        loop_hash_(std::move(loop_hash)),
        record_route_(record_route),
        use_outbound_(use_outbound) {}

  // Whether `pn-purr` may stay in the Contact of the responses (the dialog runs through us).
  void setKeepPurr(bool keep) { keep_purr_ = keep; }

  ~ProxyContext() override {
    TimerService& timers = proxy_.deps_.layer->timers();
    for (auto& b : branches_) {
      if (b->timer_c != 0) timers.cancel(b->timer_c);
      if (b->tx != nullptr) b->tx->setUser(nullptr);
    }
    if (server_ != nullptr) server_->setUser(nullptr);
  }

  ContextId id() const { return id_; }

  void start(Resolution&& resolution) {
    more_may_come_ = resolution.more_may_come;
    notify_end_ = resolution.more_may_come;
    starting_ = true;
    std::size_t n = std::min(resolution.targets.size(), proxy_.config_.max_forks);
    for (std::size_t i = 0; i < n; ++i) startBranch(std::move(resolution.targets[i]));
    starting_ = false;
    if (invite_ && resolution.provisional != 0) sendOwnProvisional(resolution.provisional);
    maybeSendBest();
    maybeRetire();
  }

  Status addBranch(Target&& target) {
    if (final_sent_ || no_new_branches_) {
      return Status(StatusCode::kFailedPrecondition, "context no longer accepts branches");
    }
    startBranch(std::move(target));
    maybeSendBest();
    return Status::ok();
  }

  void noMoreBranches(Proxy::Fallback fallback = {}) {
    if (fallback.code != 0) fallback_ = std::move(fallback);
    more_may_come_ = false;
    maybeSendBest();
    maybeRetire();
  }

  std::size_t cancelBranches(std::string_view binding_key) {
    std::size_t n = 0;
    for (auto& b : branches_) {
      if (b->target.binding_key != binding_key || b->state == BranchState::kFinal) continue;
      cancelBranch(*b, {});
      ++n;
    }
    maybeSendBest();
    return n;
  }

  BranchProgress progress(std::string_view binding_key) const {
    BranchProgress best = BranchProgress::kNone;
    for (const auto& b : branches_) {
      if (b->target.binding_key != binding_key) continue;
      BranchProgress p = b->reached                        ? BranchProgress::kReached
                         : b->state == BranchState::kFinal ? BranchProgress::kUnreached
                                                           : BranchProgress::kPending;
      best = std::max(best, p);
    }
    return best;
  }

  // No maybeSendBest(): a superseded branch's replacement is added next (the push layer).
  Proxy::Handover handOverBranches(std::string_view binding_key, const Target& fresh) {
    Proxy::Handover h;
    for (auto& b : branches_) {
      if (b->target.binding_key != binding_key || b->state == BranchState::kFinal || b->reached) {
        continue;
      }
      if (b->state == BranchState::kCalling && b->tx != nullptr && sameDestination(*b, fresh)) {
        b->target.binding_key = fresh.binding_key;
        proxy_.deps_.layer->retransmitNow(*b->tx);
        ++h.taken_over;
        continue;
      }
      b->superseded = true;
      if (b->state == BranchState::kResolving) {
        setFinal(*b);
        b->pending.reset();
      } else if (b->tx != nullptr) {
        proxy_.deps_.layer->stopRetransmissions(*b->tx);
        if (invite_) (void)proxy_.deps_.layer->cancel(*b->tx);
      }
      ++h.superseded;
    }
    return h;
  }

  // ---- ClientTransactionUser ----

  void onResponse(transaction::ClientTransaction& tx,
                  transport::ReceivedMessage&& response) override {
    Branch* b = branchOf(tx);
    if (b == nullptr) return;
    const int code = response.message.statusCode();
    if (code > 100) b->reached = true;
    if (code < 200) {
      if (b->state == BranchState::kCalling) b->state = BranchState::kProceeding;
      if (code == 100) return;  // hop by hop (§16.7 step 5)
      if (invite_ && b->state != BranchState::kFinal) restartTimerC(*b);
      if (!final_sent_) forward(std::move(response));
      return;
    }
    bool first_final = b->state != BranchState::kFinal;
    setFinal(*b);
    if (code < 300) {
      // Every 2xx is forwarded, also 2xx from other forks and retransmissions (§16.7 step 5).
      forward(std::move(response));
      if (!final_sent_) {
        final_sent_ = true;
        no_new_branches_ = true;
        more_may_come_ = false;
        cancelPending(kCompletedElsewhere);
        notifyEnd(code, b->target.binding_key);
      }
      return;
    }
    if (!first_final || final_sent_) return;
    if (b->superseded) return maybeSendBest();  // replaced by the device's new registration
    if (code >= 600) {
      // §16.7 step 5: cancel the others and create no new branches.
      no_new_branches_ = true;
      more_may_come_ = false;
      cancelPending({});
    }
    consider(code, response.message.reasonPhrase(), &response.message);
    maybeSendBest();
  }

  void onTimeout(transaction::ClientTransaction& tx) override {
    Branch* b = branchOf(tx);
    if (b == nullptr || b->state == BranchState::kFinal) return;
    setFinal(*b);
    if (b->superseded) return maybeSendBest();
    consider(408, "Request Timeout", nullptr);  // §16.7 step 2 / §16.8
    maybeSendBest();
  }

  void onTransportError(transaction::ClientTransaction& tx, const Status& error) override {
    Branch* b = branchOf(tx);
    if (b == nullptr || b->state == BranchState::kFinal) return;
    SW_LOG_DEBUG("proxy: branch {} of context {}: transport error: {}", b->index, id_,
                 error.toString());
    setFinal(*b);
    if (b->superseded) return maybeSendBest();
    consider(503, "Service Unavailable", nullptr);  // §16.9: as if a 503 was received
    maybeSendBest();
  }

  void onTerminated(transaction::ClientTransaction& tx) override {
    Branch* b = branchOf(tx);
    if (b == nullptr) return;
    b->tx = nullptr;
    --live_clients_;
    if (b->state != BranchState::kFinal) {
      setFinal(*b);
      consider(408, "Request Timeout", nullptr);
      maybeSendBest();
    }
    maybeRetire();
  }

  // ---- ServerTransactionUser ----

  void onCancel(transaction::ServerTransaction& /*invite_tx*/,
                transport::ReceivedMessage&& /*cancel*/) override {
    // §16.10: the layer answered the CANCEL with 200; cancel every pending branch. The final
    // response (usually a 487 from the branches) is chosen as usual.
    proxy_.stats_.cancelled.inc();
    cancelled_ = true;
    no_new_branches_ = true;
    more_may_come_ = false;
    // The resolver hears of it now (its "missed call" pushes should not wait for the branches'
    // 487s); the final response will be 487 unless a branch's 2xx crosses the CANCEL.
    notifyEnd(487, {});
    cancelPending({});
    // A branch without any response yet cannot be CANCELled (§9.1: its transaction sends the
    // CANCEL if a provisional still comes) and may never answer: over a TCP/TLS flow that died
    // after the INVITE was written no transport error comes, only Timer B (32 s). The caller's
    // 487 does not wait for it: it ends here, as Timer C ends such a branch (§16.8), while its
    // client transaction runs on silently (a late 2xx is still forwarded, §16.7 step 5).
    for (auto& b : branches_) {
      if (b->state != BranchState::kCalling) continue;
      setFinal(*b);
      consider(487, "Request Terminated", nullptr);
    }
    maybeSendBest();
    maybeRetire();
  }

  void onTransportError(transaction::ServerTransaction& /*tx*/, const Status& error) override {
    SW_LOG_DEBUG("proxy: context {}: cannot reach the upstream: {}", id_, error.toString());
    final_sent_ = true;  // nobody to send it to
    no_new_branches_ = true;
    more_may_come_ = false;
    cancelPending({});
    notifyEnd(0, {});
  }

  void onTerminated(transaction::ServerTransaction& /*tx*/) override {
    server_ = nullptr;
    if (!final_sent_) {
      final_sent_ = true;
      no_new_branches_ = true;
      more_may_come_ = false;
      cancelPending({});
      notifyEnd(0, {});
    }
    maybeRetire();
  }

  void onResolved(std::uint32_t index, Result<transport::SendTarget> hop) {
    SIPWAKE_CHECK(index < branches_.size() && resolving_ > 0);
    --resolving_;
    Branch& b = *branches_[index];
    if (b.state == BranchState::kResolving && b.pending) {
      sip::Message msg = std::move(*b.pending);
      b.pending.reset();
      if (hop) {
        sendBranch(b, std::move(msg), *hop);
      } else {
        proxy_.stats_.unroutable.inc();
        setFinal(b);
        // RFC 3263 §4.3 / 3261 §16.9: a failed resolution counts as a 503 (sent as 500); the
        // resolver's message ("DNS: no records for example.org") becomes the reason detail.
        const Status why = hop.status();
        consider(503, "Service Unavailable", nullptr,
                 why.message().empty() ? std::string_view("Unresolvable Destination")
                                       : std::string_view(why.message()));
      }
    }
    maybeSendBest();
    maybeRetire();
  }

 private:
  enum class BranchState : std::uint8_t { kResolving, kCalling, kProceeding, kFinal };
  struct Branch {
    std::uint32_t index = 0;
    Target target;
    BranchState state = BranchState::kResolving;
    transaction::ClientTransaction* tx = nullptr;  // until onTerminated
    TimerService::TimerId timer_c = 0;
    std::optional<sip::Message> pending;  // built, waiting for DNS
    bool reached = false;     // a response other than 100 arrived: the UA has seen the request
    bool superseded = false;  // replaced by a woken device's new binding: its final is ignored
  };

  // Whether the request of `b` (sent, no Path) goes where a branch to `t` would: same transport
  // and address and, for TCP/TLS, the same connection (a UDP "flow" is only our socket).
  static bool sameDestination(const Branch& b, const Target& t) {
    if (!b.target.path.empty() || !t.path.empty() || !t.flow || b.tx == nullptr) return false;
    const transport::SendTarget& sent = b.tx->target();
    if (sent.protocol != t.flow->protocol || !(sent.remote == t.flow->remote)) return false;
    return sent.protocol == transport::Protocol::kUdp ||
           (sent.flow != 0 && sent.flow == t.flow->flow);
  }

  Branch* branchOf(transaction::ClientTransaction& tx) {
    std::uint64_t i = tx.userData();
    if (i >= branches_.size() || branches_[i]->tx != &tx) return nullptr;
    return branches_[i].get();
  }

  void startBranch(Target&& target) {
    proxy_.stats_.branches.inc();
    auto owned = std::make_unique<Branch>();
    Branch& b = *owned;
    b.index = static_cast<std::uint32_t>(branches_.size());
    b.target = std::move(target);
    proxy_.ensureLocalPorts();
    proxy_.takeOwnNodeRoute(b.target);
    branches_.push_back(std::move(owned));

    auto copy = cloneMessage(request_);
    if (!copy) {
      SW_LOG_ERROR("proxy: {}", copy.status().toString());
      setFinal(b);
      consider(500, "Server Internal Error", nullptr);
      return;
    }
    sip::Message msg = std::move(*copy);
    // §16.6 step 2: the Request-URI is the target.
    if (!b.target.uri.empty()) msg.setRequestUri(b.target.uri);
    // RFC 3327: the Path of the binding becomes the Route set.
    for (auto it = b.target.path.rbegin(); it != b.target.path.rend(); ++it) {
      msg.prependHeader(sip::HeaderId::kRoute, angleUri(*it));
    }

    // §16.6 steps 6 and 7: the next hop.
    std::optional<transport::SendTarget> hop;
    std::string hop_uri;
    auto routes = msg.routes();
    if (!routes) {
      setFinal(b);
      consider(500, "Server Internal Error", nullptr, "Malformed Route");
      return;
    }
    if (!routes->empty()) {
      const sip::NameAddr& top = routes->front();
      hop_uri = std::string(top.uri.text);
      if (!top.uri.hasLr()) {
        // Strict router next: the Request-URI goes last in the Route set, the strict router's
        // URI becomes the Request-URI.
        std::vector<std::string> rest;
        for (std::size_t i = 1; i < routes->size(); ++i) {
          rest.emplace_back((*routes)[i].text);
        }
        rest.push_back(angleUri(msg.requestUriText()));
        msg.setHeader(sip::HeaderId::kRoute, joinRoutes(rest));
        msg.setRequestUri(hop_uri);
      }
    } else if (b.target.flow) {
      hop = *b.target.flow;
    } else if (use_outbound_ && !proxy_.config_.outbound_proxy.empty()) {
      hop_uri = proxy_.config_.outbound_proxy;
    } else {
      hop_uri = std::string(msg.requestUriText());
    }

    if (!hop) {
      auto uri = sip::parseUri(hop_uri);
      if (!uri) {
        proxy_.stats_.unroutable.inc();
        setFinal(b);
        consider(503, "Service Unavailable", nullptr, "Unroutable Destination");
        return;
      }
      auto literal = literalTarget(*uri);
      if (literal) {
        hop = *literal;
      } else if (literal.status().code() == StatusCode::kNotFound &&
                 proxy_.deps_.resolver != nullptr) {
        b.pending = std::move(msg);
        ++resolving_;
        std::weak_ptr<bool> alive = proxy_.alive_;
        Proxy* proxy = &proxy_;
        ContextId id = id_;
        std::uint32_t index = b.index;
        proxy_.deps_.resolver->resolve(*uri,
                                       [alive, proxy, id, index](Result<transport::SendTarget> r) {
                                         if (alive.expired()) return;
                                         if (ProxyContext* ctx = proxy->find(id))
                                           ctx->onResolved(index, std::move(r));
                                       });
        return;
      } else {
        proxy_.stats_.unroutable.inc();
        setFinal(b);
        consider(503, "Service Unavailable", nullptr, "Unresolvable Destination");
        return;
      }
    }
    sendBranch(b, std::move(msg), *hop);
  }

  void sendBranch(Branch& b, sip::Message&& msg, const transport::SendTarget& hop) {
    if (record_route_) addRecordRoute(msg, b, hop);
    std::string branch;
    branch.reserve(7 + 4 + 16 + 1 + 16);
    transport::appendBranchCookie(branch);
    branch.append(loop_hash_);
    branch.push_back('.');
    branch.append(proxy_.deps_.layer->newTag());
    transaction::RequestOptions options;
    options.branch = branch;
    options.user = this;
    options.user_data = b.index;
    auto sent = proxy_.deps_.layer->sendRequest(std::move(msg), hop, options);
    if (!sent) {
      SW_LOG_DEBUG("proxy: context {} branch {}: not sent: {}", id_, b.index,
                   sent.status().toString());
      setFinal(b);
      consider(503, "Service Unavailable", nullptr);
      return;
    }
    proxy_.stats_.forwarded.inc();
    SW_LOG_DEBUG("proxy: context {} branch {}: {} to {}:{} flow {}", id_, b.index,
                 (*sent)->request().methodText(), transport::protocolName(hop.protocol),
                 hop.remote.toString(), hop.flow);
    b.tx = *sent;
    b.state = BranchState::kCalling;
    ++live_clients_;
    if (invite_) restartTimerC(b);
  }

  void addRecordRoute(sip::Message& msg, const Branch& b, const transport::SendTarget& hop) {
    FlowPair pair;
    pair.upstream = arrival_.upstream;
    if (b.target.flow && b.target.path.empty()) {
      FlowRef down;
      down.protocol = b.target.flow->protocol;
      down.remote = b.target.flow->remote;
      down.flow = b.target.flow->flow;
      pair.downstream = down;
    }
    auto from = request_.from();
    std::string token = proxy_.tokens_.encode(
        pair, request_.callId(), from ? from->tag() : std::string_view(), proxy_.unixNow());
    // §16.6 step 4: when the transport (or address family) changes, one Record-Route value per
    // side, the one facing the next hop on top.
    if (hop.protocol != arrival_.protocol || hop.remote.v6 != arrival_.v6) {
      auto in = proxy_.recordRouteValue(arrival_.protocol, arrival_.v6, token);
      if (in) msg.prependHeader(sip::HeaderId::kRecordRoute, std::move(*in));
    }
    auto out = proxy_.recordRouteValue(hop.protocol, hop.remote.v6, token);
    if (out) msg.prependHeader(sip::HeaderId::kRecordRoute, std::move(*out));
  }

  void restartTimerC(Branch& b) {
    TimerService& timers = proxy_.deps_.layer->timers();
    if (b.timer_c != 0) timers.cancel(b.timer_c);
    Branch* bp = &b;
    b.timer_c = timers.schedule(proxy_.config_.timer_c, [this, bp] {
      bp->timer_c = 0;
      if (bp->state == BranchState::kFinal) return;
      proxy_.stats_.timer_c.inc();
      // §16.8: a branch with a provisional response is cancelled; one without any response is
      // treated as a 408 (its INVITE client transaction keeps running silently).
      if (bp->state == BranchState::kProceeding) {
        cancelBranch(*bp, {});
      } else {
        if (bp->tx != nullptr) (void)proxy_.deps_.layer->cancel(*bp->tx);
        setFinal(*bp);
        consider(408, "Request Timeout", nullptr);
        maybeSendBest();
      }
    });
  }

  void setFinal(Branch& b) {
    b.state = BranchState::kFinal;
    if (b.timer_c != 0) {
      proxy_.deps_.layer->timers().cancel(b.timer_c);
      b.timer_c = 0;
    }
  }

  void cancelBranch(Branch& b, std::string_view reason) {
    switch (b.state) {
      case BranchState::kResolving:
        // Never sent: it ends here, as if it had answered 487.
        setFinal(b);
        b.pending.reset();
        consider(487, "Request Terminated", nullptr);
        return;
      case BranchState::kCalling:
      case BranchState::kProceeding:
        if (invite_ && b.tx != nullptr) (void)proxy_.deps_.layer->cancel(*b.tx, reason);
        return;
      case BranchState::kFinal:
        return;
    }
  }

  void cancelPending(std::string_view reason) {
    for (auto& b : branches_) cancelBranch(*b, reason);
  }

  // §16.7 step 6 bookkeeping: keep the best final response seen so far.
  void consider(int code, std::string_view reason, sip::Message* message,
                std::string_view detail = {}) {
    if (message != nullptr && (code == 401 || code == 407)) {
      // Step 7: the chosen 401/407 carries every challenge of every branch.
      for (sip::HeaderId id :
           {sip::HeaderId::kWwwAuthenticate, sip::HeaderId::kProxyAuthenticate}) {
        for (std::string_view v : message->values(id)) challenges_.emplace_back(id, std::string(v));
      }
    }
    if (best_code_ != 0 && rankOf(code) >= rankOf(best_code_)) return;
    best_code_ = code;
    best_reason_ = std::string(reason);
    best_detail_ = std::string(detail);
    best_.reset();
    if (message != nullptr) {
      message->popVia();
      best_ = std::move(*message);
    }
  }

  bool anyPending() const {
    return std::any_of(branches_.begin(), branches_.end(),
                       [](const auto& b) { return b->state != BranchState::kFinal; });
  }

  void maybeSendBest() {
    if (starting_ || final_sent_ || more_may_come_) return;
    if (anyPending() && !(fallback_.at_once && fallback_.code != 0 && !cancelled_)) return;
    final_sent_ = true;
    no_new_branches_ = true;
    if (server_ == nullptr) return notifyEnd(0, {});
    int code = best_code_;
    std::string reason = best_reason_;
    if (fallback_.code != 0 && !cancelled_ && (code < 200 || code >= 300)) {
      if (fallback_.at_once) stopSilentBranches();
      notifyEnd(fallback_.code, {});
      sip::Message response = ownResponse(fallback_.code, fallback_.reason);
      if (fallback_.retry_after_s != 0) {
        response.appendHeader("Retry-After", std::to_string(fallback_.retry_after_s));
      }
      respond(std::move(response));
      return;
    }
    if (code == 0) {
      // No branch ever answered: there never was a branch (a parked request given up), or the
      // request was cancelled before any was created.
      code = cancelled_ ? 487 : 480;
      reason = cancelled_ ? "Request Terminated" : "Temporarily Unavailable";
    }
    notifyEnd(code == 503 ? 500 : code, {});
    if (code == 503) {
      // §16.7 step 6: a 503 is converted to 500 (the 503 was about the next hop, not us).
      code = 500;
      reason = best_detail_.empty() ? "Server Internal Error"
                                    : "Server Internal Error - " + best_detail_;
      best_.reset();
    } else if (!best_detail_.empty()) {
      reason += " - " + best_detail_;
    }
    if (best_) {
      sip::Message response = std::move(*best_);
      best_.reset();
      if ((code == 401 || code == 407) && !challenges_.empty()) {
        response.removeHeaders(sip::HeaderId::kWwwAuthenticate);
        response.removeHeaders(sip::HeaderId::kProxyAuthenticate);
        for (auto& [id, value] : challenges_) {
          response.appendHeader(sip::canonicalHeaderName(id), std::move(value));
        }
      }
      respond(std::move(response));
      return;
    }
    respond(ownResponse(code, reason));
  }

  // Branches that never heard from their destination are retransmitted no more (Timer F still
  // ends them): a copy reaching the app once it runs again on that address would duplicate the
  // message kept for it.
  void stopSilentBranches() {
    for (auto& b : branches_) {
      if (b->state != BranchState::kFinal && !b->reached && b->tx != nullptr) {
        proxy_.deps_.layer->stopRetransmissions(*b->tx);
      }
    }
  }

  // A response the proxy generates itself. Its To-tag is that of our own provisional, if any.
  sip::Message ownResponse(int code, std::string_view reason) {
    sip::Message response = sip::makeResponseTo(
        request_, code, reason, own_tag_.empty() ? proxy_.deps_.layer->newTag() : own_tag_);
    if (!proxy_.config_.server_header.empty()) {
      response.appendHeader("Server", proxy_.config_.server_header);
    }
    return response;
  }

  // Push wake-up: ringback (180) or early progress (183) while the parked phone wakes. Its To-tag
  // is ours; a final response we generate later carries the same tag.
  void sendOwnProvisional(int code) {
    if (final_sent_ || server_ == nullptr) return;
    if (own_tag_.empty()) own_tag_ = proxy_.deps_.layer->newTag();
    respond(ownResponse(code, code == 180 ? "Ringing" : "Session Progress"));
  }

  void forward(transport::ReceivedMessage&& response) {
    response.message.popVia();  // §16.7 step 3
    respond(std::move(response.message));
  }

  void respond(sip::Message&& response) {
    if (server_ == nullptr) return;
    if (stripPushContactParams(response, keep_purr_)) proxy_.stats_.push_params_stripped.inc();
    int code = response.statusCode();
    if (Status s = server_->respond(std::move(response)); !s) {
      SW_LOG_DEBUG("proxy: context {}: {} not forwarded: {}", id_, code, s.toString());
      return;
    }
    proxy_.stats_.responses_forwarded.inc();
  }

  // Tells the resolver (once) how a context it may add branches to ended. Runs before the final
  // response is sent, so the resolver's cancel pushes do not wait for the response to go out.
  void notifyEnd(int code, const std::string& answered_by) {
    if (!notify_end_) return;
    notify_end_ = false;
    ContextEnd end;
    end.code = code;
    end.cancelled = cancelled_;
    end.answered_by = answered_by;
    proxy_.deps_.targets->onContextEnded(id_, end);
  }

  void maybeRetire() {
    if (retired_ || starting_) return;
    if (server_ != nullptr || live_clients_ != 0 || resolving_ != 0) return;
    retired_ = true;
    proxy_.retire(id_);
  }

  Proxy& proxy_;
  const ContextId id_;
  transaction::ServerTransaction* server_;  // until its onTerminated
  const bool invite_;
  sip::Message request_;  // as received, after §16.3/§16.4 processing: the template of branches
  Arrival arrival_;
  std::string loop_hash_;
  const bool record_route_;
  const bool use_outbound_;
  bool keep_purr_ = false;
  std::vector<std::unique_ptr<Branch>> branches_;
  std::size_t live_clients_ = 0;
  std::size_t resolving_ = 0;
  bool more_may_come_ = false;
  Proxy::Fallback fallback_;  // noMoreBranches(): the answer unless a branch sends a 2xx
  bool notify_end_ = false;   // resolved with more_may_come: report the end to the resolver
  bool no_new_branches_ = false;
  bool final_sent_ = false;
  bool cancelled_ = false;
  bool starting_ = false;
  bool retired_ = false;
  int best_code_ = 0;
  std::string best_reason_;
  std::string best_detail_;
  std::optional<sip::Message> best_;
  std::vector<std::pair<sip::HeaderId, std::string>> challenges_;
  std::string own_tag_;  // To-tag of the provisional we generated (push wake-up), if any
};

// ---------------------------------------------------------------------------------------------
// Proxy

namespace {
Counter& counter(const char* name) { return Stats::global().counter(name); }
}  // namespace

Proxy::Proxy(ProxyDeps deps, ProxyConfig config)
    : deps_(std::move(deps)),
      config_(std::move(config)),
      tokens_(config_.route_keys),
      stats_{counter("proxy.requests"),
             counter("proxy.forwarded"),
             counter("proxy.branches"),
             counter("proxy.responses_forwarded"),
             counter("proxy.too_many_hops"),
             counter("proxy.loops_detected"),
             counter("proxy.bad_extension"),
             counter("proxy.unsupported_uri_scheme"),
             counter("proxy.not_found"),
             counter("proxy.temporarily_unavailable"),
             counter("proxy.challenged"),
             counter("proxy.forbidden"),
             counter("proxy.relay_denied"),
             counter("proxy.cancelled"),
             counter("proxy.timer_c_fired"),
             counter("proxy.unroutable"),
             counter("proxy.acks_forwarded"),
             counter("proxy.acks_dropped"),
             counter("proxy.route_rejected"),
             counter("proxy.stray_responses_forwarded"),
             counter("proxy.stray_responses_dropped"),
             counter("proxy.bad_event"),
             counter("proxy.push_params_stripped"),
             counter("proxy.stranger_throttled"),
             counter("proxy.unknown_user_hidden"),
             counter("edge.requests_from_upstream"),
             counter("edge.requests_to_upstream")},
      alive_(std::make_shared<bool>(true)) {
  SIPWAKE_CHECK(deps_.layer != nullptr && deps_.transport != nullptr && deps_.targets != nullptr &&
                deps_.is_local_host);
}

Proxy::~Proxy() {
  alive_.reset();
  if (reap_timer_ != 0) deps_.layer->timers().cancel(reap_timer_);
  contexts_.clear();
  dead_.clear();
}

ProxyContext* Proxy::find(ContextId id) {
  auto it = contexts_.find(id);
  return it == contexts_.end() ? nullptr : it->second.get();
}

void Proxy::retire(ContextId id) {
  auto it = contexts_.find(id);
  if (it == contexts_.end()) return;
  dead_.push_back(std::move(it->second));
  contexts_.erase(it);
  if (reap_timer_ == 0) {
    reap_timer_ = deps_.layer->timers().schedule(Duration::zero(), [this] {
      reap_timer_ = 0;
      reap();
    });
  }
}

void Proxy::reap() { dead_.clear(); }

Status Proxy::addBranch(ContextId id, Target target) {
  ProxyContext* ctx = find(id);
  if (ctx == nullptr) return notFound("no proxy context " + std::to_string(id));
  return ctx->addBranch(std::move(target));
}

void Proxy::noMoreBranches(ContextId id) {
  if (ProxyContext* ctx = find(id)) ctx->noMoreBranches();
}

void Proxy::noMoreBranches(ContextId id, Fallback fallback) {
  if (ProxyContext* ctx = find(id)) ctx->noMoreBranches(std::move(fallback));
}

std::size_t Proxy::cancelBranches(ContextId id, std::string_view binding_key) {
  ProxyContext* ctx = find(id);
  return ctx == nullptr ? 0 : ctx->cancelBranches(binding_key);
}

BranchProgress Proxy::branchProgress(ContextId id, std::string_view binding_key) {
  ProxyContext* ctx = find(id);
  return ctx == nullptr ? BranchProgress::kNone : ctx->progress(binding_key);
}

Proxy::Handover Proxy::handOverBranches(ContextId id, std::string_view binding_key,
                                        const Target& fresh) {
  ProxyContext* ctx = find(id);
  if (ctx == nullptr) return Handover{};
  ensureLocalPorts();
  Target own = fresh;
  takeOwnNodeRoute(own);
  return ctx->handOverBranches(binding_key, own);
}

void Proxy::ensureLocalPorts() {
  if (ports_known_) return;
  for (transport::Protocol p :
       {transport::Protocol::kUdp, transport::Protocol::kTcp, transport::Protocol::kTls}) {
    for (bool v6 : {false, true}) {
      auto a = deps_.transport->localAddressFor(p, v6);
      if (!a) continue;
      if (std::find(local_ports_.begin(), local_ports_.end(), a->port) == local_ports_.end()) {
        local_ports_.push_back(a->port);
      }
    }
  }
  ports_known_ = !local_ports_.empty();
}

bool Proxy::isSelfUri(const sip::Uri& uri) {
  if (!uri.isSipOrSips() || !deps_.is_local_host(uri.host)) return false;
  std::uint16_t port = uri.port;
  if (!uri.has_port) {
    auto p = uriProtocol(uri, transport::Protocol::kUdp);
    port = transport::defaultPort(p ? *p : transport::Protocol::kUdp);
  }
  return std::find(local_ports_.begin(), local_ports_.end(), port) != local_ports_.end();
}

void Proxy::takeOwnNodeRoute(Target& target) {
  if (target.path.empty()) return;
  auto uri = sip::parseUri(target.path.front());
  if (!uri || !isSelfUri(*uri)) return;
  auto flow = tokens_.decodeNodeRoute(uri->user, unixNow());
  if (!flow) return;
  target.path.erase(target.path.begin());
  if (target.path.empty()) target.flow = flow->sendTarget();
}

bool Proxy::isLocalDomainUri(const sip::Uri& uri) {
  if (!uri.isSipOrSips() || !deps_.is_local_host(uri.host)) return false;
  if (!uri.has_port) return true;
  return std::find(local_ports_.begin(), local_ports_.end(), uri.port) != local_ports_.end();
}

bool Proxy::isOurVia(const sip::Via& via) {
  if (!deps_.is_local_host(via.host)) return false;
  std::uint16_t port = via.port;
  if (!via.has_port) {
    auto p = transport::protocolFromName(via.transport);
    port = transport::defaultPort(p ? *p : transport::Protocol::kUdp);
  }
  return std::find(local_ports_.begin(), local_ports_.end(), port) != local_ports_.end();
}

std::string Proxy::loopHash(const sip::Message& request) {
  Fnv f;
  f.add(request.requestUriText());
  const sip::HeaderField* route = request.find(sip::HeaderId::kRoute);
  f.add(route != nullptr ? sip::splitHeaderList(route->value).front() : std::string_view());
  auto to = request.to();
  f.add(to ? to->tag() : std::string_view());
  auto from = request.from();
  f.add(from ? from->tag() : std::string_view());
  f.add(request.callId());
  auto cseq = request.cseq();
  f.add(cseq ? std::to_string(cseq->number) : std::string());
  for (std::string_view v : request.values(sip::HeaderId::kProxyRequire)) f.add(v);
  for (std::string_view v : request.values(sip::HeaderId::kProxyAuthorization)) f.add(v);
  std::string out;
  out.reserve(16);
  appendHex64(out, f.h);
  return out;
}

bool Proxy::detectLoop(const sip::Message& request, std::string_view hash) {
  auto vias = request.vias();
  if (!vias) return false;
  for (const sip::Via& via : *vias) {
    std::string_view branch = via.branch();
    if (branch.size() < 7 + hash.size() + 1) continue;
    if (branch.substr(7, hash.size()) != hash || branch[7 + hash.size()] != '.') continue;
    if (isOurVia(via)) return true;
  }
  return false;
}

bool Proxy::processRoutes(sip::Message& request, RouteInfo& info, std::string& error) {
  if (request.find(sip::HeaderId::kRoute) == nullptr) {
    // A strict router upstream would have put our Record-Route URI in the Request-URI and a
    // Route header after it; without Route there is nothing to fix up.
    return true;
  }
  auto routes = request.routes();
  if (!routes || routes->empty()) {
    error = "Bad Request - Malformed Route";
    return false;
  }
  std::vector<std::string> values;
  values.reserve(routes->size());
  for (const sip::NameAddr& r : *routes) values.emplace_back(r.text);
  auto from = request.from();
  auto to = request.to();
  DialogRef dialog{request.callId(), from ? from->tag() : std::string_view(),
                   to ? to->tag() : std::string_view()};
  const std::int64_t now = unixNow();
  auto takeToken = [&](const sip::Uri& uri) {
    FlowTokenCodec::Decoded d = tokens_.decode(uri.user, dialog, now);
    if (d.verdict == FlowTokenCodec::Verdict::kValid) {
      info.signed_by_us = true;
      info.flow_tokens = d.pair;
      info.sender = d.sender;
      return;
    }
    FlowTokenCodec::Decoded node = tokens_.verifyNodeRoute(uri.user, now);
    if (node.verdict == FlowTokenCodec::Verdict::kValid) {
      info.signed_by_us = true;
      info.node_flow = node.pair.downstream;
      return;
    }
    if (node.verdict != FlowTokenCodec::Verdict::kNotSigned) {
      info.node_route_failure = node.verdict;
      if (node.verdict > info.failure) info.failure = node.verdict;
    } else if (d.verdict > info.failure) {
      info.failure = d.verdict;
    }
  };
  bool changed = false;
  // §16.4: the Request-URI is a value we put in a Record-Route (strict router upstream): the
  // real Request-URI is the last Route value.
  const sip::Uri& ruri = request.requestUri();
  if (ruri.hasLr() && isSelfUri(ruri)) {
    takeToken(ruri);
    std::string last = std::string(routes->back().uri.text);
    values.pop_back();
    request.setRequestUri(last);
    info.popped_self = true;
    changed = true;
  }
  // Our own values on top (two of them after a transport change) are removed (loose routing).
  std::size_t ours = 0;
  while (ours < values.size()) {
    const sip::Uri& uri = (*routes)[ours].uri;
    if (!isSelfUri(uri)) break;
    takeToken(uri);
    ++ours;
  }
  if (ours > 0) {
    values.erase(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(ours));
    info.popped_self = true;
    changed = true;
  }
  if (changed) {
    if (values.empty()) {
      request.removeHeaders(sip::HeaderId::kRoute);
    } else {
      request.setHeader(sip::HeaderId::kRoute, joinRoutes(values));
    }
  }
  return true;
}

std::int64_t Proxy::unixNow() const {
  if (deps_.unix_now) return deps_.unix_now();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Proxy::isTrustedSource(const transport::ReceivedMessage& request) const {
  return deps_.trusted != nullptr && deps_.trusted->contains(request.remote.ip());
}

bool Proxy::mayFollowRoute(const RouteInfo& info, bool in_dialog,
                           const transport::ReceivedMessage& request) const {
  if (!in_dialog || !info.popped_self || info.signed_by_us) return true;
  return isTrustedSource(request);
}

std::string_view Proxy::nodeRouteRejectionReason(FlowTokenCodec::Verdict verdict) {
  return verdict == FlowTokenCodec::Verdict::kExpired ? "Forbidden - Node Route Expired"
                                                      : "Forbidden - Node Route Signature Invalid";
}

std::string_view Proxy::rejectionReason(FlowTokenCodec::Verdict verdict) {
  switch (verdict) {
    case FlowTokenCodec::Verdict::kBadSignature:
      return "Forbidden - Route Signature Invalid";
    case FlowTokenCodec::Verdict::kExpired:
      return "Forbidden - Route Signature Expired";
    case FlowTokenCodec::Verdict::kValid:
    case FlowTokenCodec::Verdict::kNotSigned:
      break;
  }
  return "Forbidden - Route Not Signed";
}

std::optional<transport::SendTarget> Proxy::tokenFlow(
    const RouteInfo& info, const transport::ReceivedMessage& request) const {
  if (!info.flow_tokens) return std::nullopt;
  const FlowPair& pair = *info.flow_tokens;
  if (pair.downstream && pair.downstream->matches(request.protocol, request.remote, request.flow)) {
    if (pair.upstream) return pair.upstream->sendTarget();
    return std::nullopt;
  }
  if (pair.upstream && pair.upstream->matches(request.protocol, request.remote, request.flow)) {
    if (pair.downstream) return pair.downstream->sendTarget();
    return std::nullopt;
  }
  // Over neither flow: the sender is behind another proxy, so the token names the other end only
  // (an INVITE that came from another node had two Vias: B's token names the phone alone), or
  // the UA's connection changed. The signature tells who sent it; the request goes over the
  // other end's flow (behind NAT, that end's Contact is not reachable).
  if (info.sender == FlowTokenCodec::Sender::kCaller && pair.downstream) {
    return pair.downstream->sendTarget();
  }
  if (info.sender == FlowTokenCodec::Sender::kCallee && pair.upstream) {
    return pair.upstream->sendTarget();
  }
  return std::nullopt;
}

Result<std::string> Proxy::recordRouteValue(transport::Protocol protocol, bool v6,
                                            std::string_view token) {
  auto local = deps_.transport->localAddressFor(protocol, v6);
  if (!local) return local.status();
  std::string host = isUnspecified(*local) && !config_.advertised_host.empty()
                         ? config_.advertised_host
                         : local->hostForUri();
  std::string v;
  v.reserve(32 + token.size() + host.size());
  v.append("<sip:");
  if (!token.empty()) {
    v.append(token);
    v.push_back('@');
  }
  v.append(host);
  v.push_back(':');
  v.append(std::to_string(local->port));
  if (protocol == transport::Protocol::kTcp) v.append(";transport=tcp");
  if (protocol == transport::Protocol::kTls) v.append(";transport=tls");
  v.append(";lr>");
  return v;
}

bool Proxy::throttleStranger(transaction::ServerTransaction& tx, const sip::Message& request,
                             const transport::ReceivedMessage& received) {
  if (deps_.stranger_throttle == nullptr) return true;
  auto wait = deps_.stranger_throttle->take(received.remote.ip(), deps_.layer->timers().now());
  if (!wait) return true;
  stats_.stranger_throttled.inc();
  const long long s = std::max<long long>(1, std::chrono::ceil<seconds>(*wait).count());
  respondError(tx, request, 503, "Service Unavailable - Too Many Requests",
               {{"Retry-After", std::to_string(s)}});
  return false;
}

void Proxy::respondError(transaction::ServerTransaction& tx, const sip::Message& request, int code,
                         std::string_view reason,
                         const std::vector<std::pair<std::string_view, std::string>>& extra) {
  sip::Message response = sip::makeResponseTo(request, code, reason, deps_.layer->newTag());
  for (const auto& [name, value] : extra) response.appendHeader(name, value);
  if (!config_.server_header.empty()) response.appendHeader("Server", config_.server_header);
  if (Status s = tx.respond(std::move(response)); !s) {
    SW_LOG_DEBUG("proxy: cannot send {}: {}", code, s.toString());
  }
}

void Proxy::onRequest(transaction::ServerTransaction& tx, transport::ReceivedMessage&& received) {
  stats_.requests.inc();
  ensureLocalPorts();
  sip::Message& request = received.message;

  // §16.3 step 2: a Request-URI scheme we cannot route.
  const sip::Uri& ruri = request.requestUri();
  if (ruri.scheme == sip::Uri::Scheme::kOther ||
      (ruri.scheme == sip::Uri::Scheme::kTel && config_.outbound_proxy.empty())) {
    stats_.unsupported_scheme.inc();
    respondError(tx, request, 416, "Unsupported URI Scheme");
    return;
  }
  // §16.3 step 3: Max-Forwards.
  auto max_forwards = request.maxForwards();
  if (!max_forwards && max_forwards.status().code() != StatusCode::kNotFound) {
    respondError(tx, request, 400, "Bad Request - Malformed Max-Forwards");
    return;
  }
  if (max_forwards && *max_forwards == 0) {
    stats_.too_many_hops.inc();
    respondError(tx, request, 483, "Too Many Hops");
    return;
  }
  // §16.3 step 4: loop detection with the branch hash of §16.6 step 8.
  std::string hash = loopHash(request);
  if (detectLoop(request, hash)) {
    stats_.loops.inc();
    respondError(tx, request, 482, "Loop Detected");
    return;
  }
  // §16.3 step 5: we support no extension a proxy must understand.
  if (request.find(sip::HeaderId::kProxyRequire) != nullptr) {
    auto tags = request.optionTags(sip::HeaderId::kProxyRequire);
    if (!tags) {
      respondError(tx, request, 400, "Bad Request - Malformed Proxy-Require");
      return;
    }
    std::string unsupported;
    for (std::string_view t : *tags) {
      if (!unsupported.empty()) unsupported.append(", ");
      unsupported.append(t);
    }
    if (!unsupported.empty()) {
      stats_.bad_extension.inc();
      respondError(tx, request, 420, "Bad Extension", {{"Unsupported", unsupported}});
      return;
    }
  }
  // §16.4: Route processing.
  RouteInfo route_info;
  std::string route_error;
  if (!processRoutes(request, route_info, route_error)) {
    respondError(tx, request, 400, route_error);
    return;
  }

  const bool in_dialog = !toTag(request).empty();
  // No relaying: an in-dialog request follows a Route of ours only along a Record-Route we
  // signed for its dialog. Out of dialog, a pre-loaded Route to us (outbound proxy) is normal.
  // A node route that names us but does not verify: another node's request for a phone here
  // (or a forgery). It goes nowhere: neither over a flow nor, unverified, anywhere else.
  if (route_info.node_route_failure != FlowTokenCodec::Verdict::kNotSigned) {
    stats_.route_rejected.inc();
    const std::string_view reason = nodeRouteRejectionReason(route_info.node_route_failure);
    SW_LOG_DEBUG("proxy: {} (Call-ID {}) from {}: {}", request.methodText(), request.callId(),
                 received.remote.toString(), reason);
    respondError(tx, request, 403, reason);
    return;
  }
  if (!mayFollowRoute(route_info, in_dialog, received)) {
    stats_.route_rejected.inc();
    SW_LOG_DEBUG("proxy: {} (Call-ID {}) from {}: {}", request.methodText(), request.callId(),
                 received.remote.toString(), rejectionReason(route_info.failure));
    respondError(tx, request, 403, rejectionReason(route_info.failure));
    return;
  }
  // Event state of our users (PUBLISH, SUBSCRIBE to presence / message-summary / reg) has no
  // server here: answered at once (RFC 3903 §6, RFC 6665 §4.2.1.1) rather than forked to the
  // user's own devices, which cannot serve it either. No Allow-Events: we serve no package.
  if (!in_dialog && request.find(sip::HeaderId::kRoute) == nullptr &&
      isLocalDomainUri(request.requestUri())) {
    const sip::Method m = request.method();
    const sip::HeaderField* event = request.find(sip::HeaderId::kEvent);
    if (m == sip::Method::kPublish ||
        (m == sip::Method::kSubscribe && event != nullptr && isServerSideEvent(event->value))) {
      stats_.bad_event.inc();
      respondError(tx, request, 489, "Bad Event");
      return;
    }
  }
  // RFC 8599 §6: a dialog whose Contact carries a PURR is record-routed, so its mid-dialog
  // requests (which may need a push) come through us; an in-dialog request that came along our
  // Record-Route is in such a dialog.
  const bool contact_purr = hasContactPurr(request);
  const bool dialog_through_us = in_dialog ? route_info.popped_self : contact_purr;
  if (stripPushContactParams(request, dialog_through_us)) stats_.push_params_stripped.inc();

  // §16.3 step 6 (proxy authorization): requests of our users that start something new.
  const bool trusted_peer =
      deps_.trusted != nullptr && deps_.trusted->contains(received.remote.ip());
  // A node route of ours: the node that sent it authorised the request.
  bool authorized = deps_.authenticator == nullptr || trusted_peer || route_info.node_flow;
  auto from = request.from();
  const bool from_local = from && from->uri.isSipOrSips() && deps_.is_local_host(from->uri.host);

  // Edge mode: the upstream's request to a device's contact of ours is a request to its AOR (and
  // takes the whole wake path of one).
  std::optional<std::string> edge_contact_aor;
  if (deps_.edge != nullptr && !in_dialog && request.find(sip::HeaderId::kRoute) == nullptr &&
      isLocalDomainUri(request.requestUri())) {
    edge_contact_aor = deps_.edge->aorForContactUser(request.requestUri().user);
  }
  // Edge relay mode: a phone's new request goes to the upstream, which authenticates it (its 407
  // comes back through here); the phone's credentials are for the upstream.
  const bool relay_upstream = deps_.edge != nullptr && deps_.edge->relaysCredentials() &&
                              !in_dialog && from_local && !edge_contact_aor &&
                              request.find(sip::HeaderId::kRoute) == nullptr &&
                              deps_.edge->isEdgeDomain(registrar::canonicalDomain(from->uri.host));
  if (!authorized && !in_dialog && from_local && !relay_upstream) {
    std::vector<std::string_view> credentials = request.values(sip::HeaderId::kProxyAuthorization);
    std::string realm(from->uri.host);
    for (char& c : realm) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    std::string source_ip = received.remote.ip();
    auth::AuthRequest ar;
    ar.method = request.methodText();
    ar.request_uri = request.requestUriText();
    ar.credentials = credentials;
    ar.realm = realm;
    ar.source_ip = source_ip;
    ar.is_proxy = true;
    ar.now = deps_.layer->timers().now();
    ar.must_own = auth::AorRef{from->uri.user, from->uri.host};
    if (const sip::HeaderField* ua = request.find(sip::HeaderId::kUserAgent)) {
      ar.user_agent = ua->value;
    }
    auth::AuthResult result = deps_.authenticator->authenticate(ar);
    if (auto* c = std::get_if<auth::Challenge>(&result)) {
      stats_.challenged.inc();
      std::vector<std::pair<std::string_view, std::string>> extra;
      for (std::string& v : c->values) extra.emplace_back(c->header_name, std::move(v));
      respondError(tx, request, c->status, "Proxy Authentication Required", extra);
      return;
    }
    if (auto* f = std::get_if<auth::Forbidden>(&result)) {
      stats_.forbidden.inc();
      respondError(tx, request, 403, f->reason.empty() ? "Forbidden" : f->reason);
      return;
    }
    if (auto* r = std::get_if<auth::RateLimited>(&result)) {
      stats_.forbidden.inc();
      respondError(
          tx, request, r->status, r->reason,
          {{"Retry-After", std::to_string(std::max<long long>(1, r->retry_after.count()))}});
      return;
    }
    if (auto* b = std::get_if<auth::BadRequest>(&result)) {
      respondError(tx, request, 400, "Bad Request - " + b->reason);
      return;
    }
    authorized = true;  // Authenticated or TrustedPeer
  }

  const bool to_edge_contact = edge_contact_aor.has_value();
  if (to_edge_contact) {
    SW_LOG_DEBUG("proxy: {} (Call-ID {}) to {}: for {}", request.methodText(), request.callId(),
                 request.requestUriText(), *edge_contact_aor);
    request.setRequestUri(*edge_contact_aor);
    stats_.edge_from_upstream.inc();
  }

  // §16.5: the target set.
  const ContextId id = ++next_id_;
  const sip::Uri& target_uri = request.requestUri();
  const bool has_routes = request.find(sip::HeaderId::kRoute) != nullptr;
  // A node route names the phone's flow here: the Request-URI is its contact, not a user.
  const bool local = !has_routes && !route_info.node_flow && isLocalDomainUri(target_uri);
  auto origin = [&] {
    RequestOrigin o;
    o.trust = trusted_peer ? RequestOrigin::Trust::kTrusted
              : authorized ? RequestOrigin::Trust::kAuthenticated
                           : RequestOrigin::Trust::kStranger;
    o.source_ip = received.remote.ip();
    return o;
  };
  Resolution resolution;
  if (relay_upstream) {
    // Not authenticated here: the stranger throttle keeps one address from using sipwake to
    // probe or flood the PBX (the PBX's own challenge comes after).
    if (!trusted_peer && !throttleStranger(tx, request, received)) return;
    Target upstream;  // Request-URI unchanged, Route to the upstream
    upstream.path.push_back(deps_.edge->upstreamRoute());
    resolution.targets.push_back(std::move(upstream));
    stats_.edge_to_upstream.inc();
  } else if (local) {
    // Scanners probing our users from one address get a trickle of answers.
    if (!authorized && !in_dialog && !throttleStranger(tx, request, received)) return;
    resolution = deps_.targets->resolveRequest(id, request, origin());
    if (resolution.outcome == Resolution::Outcome::kRefused) {  // counted by the resolver
      if (resolution.retry_after_s != 0) {
        respondError(tx, request, resolution.status, resolution.reason,
                     {{"Retry-After", std::to_string(resolution.retry_after_s)}});
      } else {
        respondError(tx, request, resolution.status, resolution.reason);
      }
      return;
    }
    if (resolution.outcome != Resolution::Outcome::kTargets ||
        (resolution.targets.empty() && !resolution.more_may_come)) {
      // Edge mode: a user of the upstream's domains who is not reachable here is the upstream's
      // (our users calling PBX users). Never back to the upstream what it sent to a device.
      if (deps_.edge != nullptr && authorized && !to_edge_contact &&
          deps_.edge->isEdgeDomain(registrar::canonicalDomain(target_uri.host))) {
        resolution = Resolution{};
        Target upstream;  // Request-URI unchanged, Route to the upstream
        upstream.path.push_back(deps_.edge->upstreamRoute());
        resolution.targets.push_back(std::move(upstream));
        stats_.edge_to_upstream.inc();
      } else {
        respondNoTarget(tx, request, resolution.outcome == Resolution::Outcome::kUnknownUser,
                        !authorized);
        return;
      }
    }
  } else {
    // Another domain (or the next hop of a Route set): no open relay for strangers.
    if (!authorized && !(in_dialog && route_info.popped_self)) {
      stats_.relay_denied.inc();
      respondError(tx, request, 403, "Relaying Denied");
      return;
    }
    // RFC 8599 §6: along our Record-Route to a device's PURR: it may have to be woken first.
    std::optional<Resolution> woken;
    if (in_dialog && route_info.popped_self && !has_routes &&
        target_uri.param("pn-purr") != nullptr) {
      woken = deps_.targets->resolveMidDialog(id, request, origin());
    }
    if (woken && woken->outcome == Resolution::Outcome::kRefused) {  // counted by the resolver
      respondError(tx, request, woken->status, woken->reason);
      return;
    }
    if (woken) {
      resolution = std::move(*woken);
    } else {
      Target t;  // Request-URI unchanged
      if (!has_routes && route_info.node_flow) {
        t.flow = route_info.node_flow->sendTarget();
      } else if (!has_routes) {
        t.flow = unlessPurrTargetMoved(tokenFlow(route_info, received), target_uri);
      }
      resolution.targets.push_back(std::move(t));
    }
  }

  // §16.6 step 3 (done once for every branch).
  if (max_forwards) {
    request.decrementMaxForwards();
  } else {
    request.setHeader(sip::HeaderId::kMaxForwards, "70");
  }
  // §22.3: credentials for our realm end here (in relay mode the upstream's realm is the same
  // domain, and they are the upstream's).
  if (!relay_upstream) auth::consumeCredentials(request, deps_.is_local_host);
  if (tx.isInvite() && config_.immediate_trying) {
    (void)tx.respond(sip::makeResponseTo(request, 100, "Trying"));
  }

  ProxyContext::Arrival arrival;
  arrival.protocol = received.protocol;
  arrival.v6 = received.local.v6;
  if (request.count(sip::HeaderId::kVia) == 1) {
    auto vias = request.vias();
    if (vias && vias->size() == 1) {
      FlowRef up;
      up.protocol = received.protocol;
      up.remote = received.remote;
      up.flow = received.flow;
      arrival.upstream = up;
    }
  }
  const bool record_route = (config_.record_route == RecordRouteMode::kAlways || contact_purr) &&
                            !in_dialog && request.method() != sip::Method::kRegister;
  const bool use_outbound = !local && !in_dialog && !has_routes;
  auto owned = std::make_unique<ProxyContext>(*this, id, tx, std::move(request), std::move(arrival),
                                              std::move(hash), record_route, use_outbound);
  ProxyContext* ctx = owned.get();
  ctx->setKeepPurr(in_dialog ? route_info.popped_self : record_route);
  contexts_.emplace(id, std::move(owned));
  tx.setUser(ctx);
  tx.setUserData(id);
  ctx->start(std::move(resolution));
}

void Proxy::respondNoTarget(transaction::ServerTransaction& tx, const sip::Message& request,
                            bool unknown, bool stranger) {
  (unknown ? stats_.not_found : stats_.unavailable).inc();
  bool not_found = unknown;
  if (stranger && config_.unknown_user_answer != UnknownUserAnswer::kDistinct) {
    not_found = config_.unknown_user_answer == UnknownUserAnswer::k404;
    if (not_found != unknown) stats_.unknown_user_hidden.inc();
  }
  if (not_found) {
    respondError(tx, request, 404, "Not Found");
  } else {
    respondError(tx, request, 480, "Temporarily Unavailable");
  }
}

bool Proxy::forwardStateless(sip::Message&& request,
                             const std::optional<transport::SendTarget>& hop_in) {
  transport::SendTarget hop;
  if (hop_in) {
    hop = *hop_in;
  } else {
    std::string_view hop_uri = request.requestUriText();
    std::string top;
    if (auto routes = request.routes(); routes && !routes->empty()) {
      top = std::string(routes->front().uri.text);
      hop_uri = top;
    }
    auto uri = sip::parseUri(hop_uri);
    if (!uri) return false;
    auto literal = literalTarget(*uri);
    if (!literal) {
      if (literal.status().code() != StatusCode::kNotFound || deps_.resolver == nullptr) {
        return false;
      }
      auto shared = std::make_shared<sip::Message>(std::move(request));
      std::weak_ptr<bool> alive = alive_;
      deps_.resolver->resolve(*uri, [this, alive, shared](Result<transport::SendTarget> r) {
        if (alive.expired() || !r) return;
        forwardStateless(std::move(*shared), *r);
      });
      return true;
    }
    hop = *literal;
  }
  auto local = deps_.transport->localAddressFor(hop.protocol, hop.remote.v6);
  if (!local) return false;
  // Stateless branch (§16.11): the same for a retransmission of the same request.
  Fnv f;
  if (auto via = request.topVia()) f.add(via->branch());
  f.add(request.callId());
  std::string via;
  via.reserve(80);
  via.append("SIP/2.0/");
  via.append(transport::protocolName(hop.protocol));
  via.push_back(' ');
  via.append(isUnspecified(*local) && !config_.advertised_host.empty() ? config_.advertised_host
                                                                       : local->hostForUri());
  via.push_back(':');
  via.append(std::to_string(local->port));
  via.append(";branch=z9hG4bK");
  appendHex64(via, f.h);
  via.append("s");
  if (hop.protocol == transport::Protocol::kUdp) via.append(";rport");
  request.pushVia(std::move(via));
  deps_.transport->send(hop, request.serialize());
  return true;
}

void Proxy::onAck(transport::ReceivedMessage&& received) {
  ensureLocalPorts();
  sip::Message& ack = received.message;
  auto max_forwards = ack.maxForwards();
  if ((max_forwards && *max_forwards == 0) ||
      (!max_forwards && max_forwards.status().code() != StatusCode::kNotFound)) {
    stats_.acks_dropped.inc();
    return;
  }
  RouteInfo info;
  std::string error;
  if (!processRoutes(ack, info, error)) {
    stats_.acks_dropped.inc();
    return;
  }
  // The ACK for a 2xx is in the dialog: it leaves only along a Route of ours signed for that
  // dialog. Without one it could go anywhere (the Request-URI or a Route the sender chose):
  // only trusted peers, or anyone when there is no authentication at all, may send it so.
  if (info.node_route_failure != FlowTokenCodec::Verdict::kNotSigned ||
      !mayFollowRoute(info, true, received)) {
    stats_.route_rejected.inc();
    stats_.acks_dropped.inc();
    return;
  }
  if (!info.popped_self && deps_.authenticator != nullptr && !isTrustedSource(received)) {
    stats_.acks_dropped.inc();
    return;
  }
  std::optional<transport::SendTarget> hop;
  if (ack.find(sip::HeaderId::kRoute) == nullptr) {
    hop = unlessPurrTargetMoved(tokenFlow(info, received), ack.requestUri());
    if (!hop && isLocalDomainUri(ack.requestUri())) {
      // An ACK for one of our users outside any transaction and without a Route set: nothing
      // of ours is waiting for it.
      stats_.acks_dropped.inc();
      return;
    }
  }
  if (max_forwards) {
    ack.decrementMaxForwards();
  } else {
    ack.setHeader(sip::HeaderId::kMaxForwards, "70");
  }
  auth::consumeCredentials(ack, deps_.is_local_host);  // §22.3, as for the INVITE
  if (forwardStateless(std::move(ack), hop)) {
    stats_.acks_forwarded.inc();
  } else {
    stats_.acks_dropped.inc();
  }
}

void Proxy::onStrayResponse(transport::ReceivedMessage&& received) {
  ensureLocalPorts();
  sip::Message& response = received.message;
  auto vias = response.vias();
  auto cseq = response.cseq();
  // Only 2xx to INVITE are worth forwarding without state (RFC 6026 §8.5): a retransmission
  // after our client transaction is gone. Everything else is dropped.
  if (!vias || vias->size() < 2 || !cseq || sip::methodOf(*cseq) != sip::Method::kInvite ||
      response.statusCode() / 100 != 2 || !isOurVia(vias->front())) {
    stats_.stray_dropped.inc();
    return;
  }
  const sip::Via& next = (*vias)[1];
  auto protocol = transport::protocolFromName(next.transport);
  if (!protocol) {
    stats_.stray_dropped.inc();
    return;
  }
  std::string_view ip = next.host;
  if (const sip::Param* r = next.received(); r != nullptr && r->has_value) ip = r->value;
  if (ip.size() >= 2 && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
  std::uint16_t port = next.has_port ? next.port : transport::defaultPort(*protocol);
  if (const sip::Param* rp = next.rport(); rp != nullptr && rp->has_value) {
    unsigned v = 0;
    auto res = std::from_chars(rp->value.data(), rp->value.data() + rp->value.size(), v);
    if (res.ec == std::errc() && v > 0 && v < 65536) port = static_cast<std::uint16_t>(v);
  }
  auto remote = transport::Address::parse(ip, port);
  if (!remote) {
    stats_.stray_dropped.inc();
    return;
  }
  auto target = transport::responseTarget(next, *protocol, *remote, 0);
  if (!target) {
    stats_.stray_dropped.inc();
    return;
  }
  response.popVia();
  if (stripPushContactParams(response)) stats_.push_params_stripped.inc();
  deps_.transport->send(*target, response.serialize());
  stats_.stray_forwarded.inc();
}

}  // namespace sipwake::routing
