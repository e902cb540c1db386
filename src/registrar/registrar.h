// The registrar: RFC 3261 §10.3 REGISTER processing with RFC 5626 (outbound) and RFC 3327 (Path).
//
// Steps, in the order the RFC gives them (each failure answered with a precise reason phrase):
//   1-2  the Request-URI host must be one of our domains (403), Require must name only option
//        tags we implement (420 + Unsupported);
//   3-4  digest authentication with realm = the To domain (401 + WWW-Authenticate, 403 when the
//        authenticated user does not own the To AOR, 403 + Retry-After while rate-limited);
//   5    the To URI must be a SIP AOR in one of our domains (404), canonicalised (canonicalAor);
//   6    Contact: "*" only alone and with Expires: 0 (400); per contact expiry = expires param,
//        else Expires header, else default; 0 < e < min_expires -> 423 + Min-Expires; above
//        max_expires -> clipped; q validated (400); +sip.instance/reg-id (reg-id honoured only
//        with Supported: outbound, RFC 5626 §6), Path stored;
//   7-8  the change goes to LocationStore::applyRegistration; CSeq not above the stored one for
//        the same Call-ID -> 400 and nothing changes; per-AOR limit -> 403; store unavailable ->
//        500 + Retry-After. The 200 OK is sent ONLY from the store's `done` callback, i.e. after
//        the binding is durable, and lists every current binding with its expires (and q when
//        not 1), a Date header, Path (when the UA supports it) and Require: outbound when the
//        registration used outbound.
// A REGISTER without Contact is a query: 200 with the current bindings, nothing written.
//
// Thread: one Registrar per event loop, used only on that loop (like the TransactionLayer it
// answers through). `reply_on` must post to that same loop. The Services are shared and
// thread-safe.
// Lifetime: a pending REGISTER (waiting for the store) holds a reference to its
// ServerTransaction. A non-INVITE server transaction in Trying has no timers, so it lives until
// we respond. The owner must stop the loop before destroying the Registrar; closures the store
// posts afterwards must never run (they are dropped with the loop's queue).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/stats.h"
#include "location/location_store.h"
#include "location/purr_store.h"
#include "push/push_params.h"
#include "registrar/services.h"
#include "transaction/transaction_layer.h"

namespace sipwake::registrar {

struct RegistrarConfig {
  std::uint32_t min_expires = 60;        // shorter non-zero requests get 423
  std::uint32_t max_expires = 86400;     // longer requests are clipped to this
  std::uint32_t default_expires = 3600;  // no expires param and no Expires header
  std::size_t max_contacts_per_aor = 0;  // 0 = unlimited
  bool require_auth = true;              // false: anyone may register any AOR of our domains
  std::uint32_t retry_after_s = 5;       // Retry-After on a store failure
  std::string server_header;             // Server header value; empty: none
  // Several nodes on one store: the node route to this node for a binding that arrived over
  // `flow` (a URI, put in front of the binding's Path, so that another node's request reaches the
  // phone through this node and its connection); empty function: none (one node).
  std::function<std::string(const location::ReceivedFlow& flow,
                            const transport::ReceivedMessage& request)>
      node_route;
};

// Push-parameter capture (RFC 8599): how the registrar treats Contacts carrying push
// params. Disabled (the default, and when no push app is configured) means push params are
// ignored: no push binding, no Feature-Caps, so the UA knows nobody will push for it.
struct PushCaptureConfig {
  bool enabled = false;
  push::ServesFn serves;                                   // unserved (provider, app) -> 555
  std::chrono::seconds ttl = std::chrono::hours(24 * 30);  // push binding lifetime per REGISTER
};

// Told about every binding a REGISTER added or refreshed, after its 200 OK was sent (the hook for
// push wake-up). Called on the registrar's loop; must not block.
class RegistrationObserver {
 public:
  virtual ~RegistrationObserver() = default;
  virtual void onRegistered(std::string_view /*aor*/, const location::Binding& /*binding*/,
                            const transport::ReceivedMessage& /*request*/) {}
};

// Edge mode "relay" (routing/edge.h): REGISTERs for some domains are authorised by the upstream
// registrar, to which each is relayed with the phone's own digest answer. For those the registrar
// checks the REGISTER as usual but does not authenticate it; it asks relay() and writes the
// bindings only once the upstream accepted; otherwise the phone gets what the upstream answered.
class RegisterRelay {
 public:
  struct Device {
    std::string key;        // push device key (PushBinding::deviceKey), else the SIP binding key
    bool push = false;      // the REGISTER carries push params for it
    bool removed = false;   // leaving: its upstream binding goes too
    bool sleeping = false;  // un-REGISTER that keeps the push binding (the app went to sleep)
  };
  // What is relayed of the phone's REGISTER (the registrar's copy: the message stays with it).
  struct Request {
    std::string aor;
    std::string request_uri;
    std::string from;
    std::string to;
    std::string call_id;
    std::uint32_t cseq = 0;
    std::string user_agent;
    std::vector<std::string> authorization;        // Authorization values, unchanged
    std::vector<std::string> proxy_authorization;  // Proxy-Authorization values, unchanged
    std::string source;                            // the IP address it came from
    std::vector<Device> devices;                   // empty: a query
    bool remove_all = false;                       // "Contact: *": every device of the AOR leaves
  };
  struct Verdict {
    bool accepted = false;
    // Not accepted: the answer to the phone, e.g. the upstream's 401 with its challenge.
    int status = 0;
    std::string reason;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  virtual ~RegisterRelay() = default;
  // Whether REGISTERs for `domain` (canonical) are relayed. Any thread.
  virtual bool relays(std::string_view domain) const = 0;
  // Any thread. `done` runs exactly once, on any thread.
  virtual void relay(Request request, std::function<void(Verdict)> done) = 0;
};

// Wall clock for binding expiry (injectable for tests).
using WallClock = std::function<location::SysSeconds()>;
location::SysSeconds systemWallClock();

class Registrar {
 public:
  // `layer` is the transaction layer of this loop (for To-tags); `reply_on` posts to this loop.
  Registrar(RegistrarConfig config, Services services, transaction::TransactionLayer& layer,
            location::Executor reply_on, WallClock wall_clock = systemWallClock);
  Registrar(const Registrar&) = delete;
  Registrar& operator=(const Registrar&) = delete;

  // Takes a REGISTER server transaction; answers it now or once the store has written.
  // REQUIRES: request.message.method() == kRegister.
  void handle(transaction::ServerTransaction& tx, transport::ReceivedMessage&& request);

  // nullptr: none. The observer must outlive the registrar.
  void setObserver(RegistrationObserver* observer) { observer_ = observer; }
  // Push capture. Each REGISTER Contact's push params are parsed (400 naming the param / 555 for
  // an unserved provider); the push binding (or its removal when a device registers without push
  // params) travels in the RegistrationChange, so the location store commits it in the same
  // transaction as the SIP bindings, before the 200 OK, which carries Feature-Caps.
  void setPushCapture(PushCaptureConfig config);

  // RFC 8599 §6: with a PURR store, the Feature-Caps of each provider in the 200 OK to a push
  // REGISTER also carries `+sip.pnspurr="<PURR>"` for the first device of that provider in the
  // REGISTER (PurrStore::issue). nullptr: none. Must outlive the registrar.
  void setPurrs(location::PurrStore* purrs) { purrs_ = purrs; }

  // Edge relay mode; nullptr: none. Must outlive the registrar.
  void setRelay(RegisterRelay* relay) { relay_ = relay; }

  const RegistrarConfig& config() const { return config_; }

  // Option tags the registrar implements (for Supported and the Require check).
  static std::string_view supportedHeader();  // "path, outbound"

 private:
  struct Pending;
  struct Counters {
    Counter& requests;
    Counter& ok;
    Counter& queries;
    Counter& challenged;
    Counter& forbidden;
    Counter& rate_limited;
    Counter& bad_request;
    Counter& not_found;
    Counter& bad_extension;
    Counter& interval_too_brief;
    Counter& out_of_order;
    Counter& too_many_contacts;
    Counter& store_errors;
    Counter& bindings_written;
  };

  void reject(transaction::ServerTransaction& tx, const sip::Message& request, int code,
              std::string_view reason,
              const std::vector<std::pair<std::string_view, std::string>>& extra = {});
  // `stateless`: ServerTransaction::respondStateless (a non-INVITE final response that keeps
  // no transaction state behind it).
  void send(transaction::ServerTransaction& tx, sip::Message&& response, bool stateless = false);
  void finish(Pending& pending, Result<std::vector<location::Binding>> result);
  void answerOk(transaction::ServerTransaction& tx, const Pending& pending,
                const std::vector<location::Binding>& bindings);
  // Relay mode: asks the upstream, then runs `then` (accepted) or relays its answer.
  void relayThen(std::shared_ptr<Pending> pending, RegisterRelay::Request request,
                 std::function<void()> then);

  RegistrarConfig config_;
  Services services_;
  transaction::TransactionLayer& layer_;
  location::Executor reply_on_;
  WallClock wall_clock_;
  RegistrationObserver* observer_ = nullptr;
  RegisterRelay* relay_ = nullptr;
  Counters stats_;
  PushCaptureConfig push_;
  location::PurrStore* purrs_ = nullptr;
  Counter& push_bindings_written_;
  Counter& push_bindings_removed_;
  Counter& push_rejected_;
  Counter& relayed_;
  Counter& relay_refused_;
  Histogram& latency_;  // registrar.latency: request in → final response sent
};

// `uri` without its push parameters (push::isPushParamName): what may be shown to other users or
// sent to the phone as a Request-URI. Returned unchanged when it does not parse.
std::string stripPushUriParams(std::string_view uri);

// RFC 1123 date for the Date header ("Sun, 06 Nov 1994 08:49:37 GMT").
std::string httpDate(location::SysSeconds t);

}  // namespace sipwake::registrar
