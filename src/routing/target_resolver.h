// Where a request for one of our users goes (RFC 3261 §16.5): the seam between the proxy core and
// the location service. The default implementation looks the AOR up in the LocationStore; the
// push wake-up layer (routing/wake.h) wraps it to park a request and add targets later.
//
// Thread: a TargetResolver is used by the Proxy of one event loop at a time; resolve() may be
// called concurrently from several loops only if the implementation says so
// (LocationTargetResolver: yes, the LocationStore and the user lookup are thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "location/binding.h"
#include "location/location_store.h"
#include "sip/message.h"
#include "sip/uri.h"
#include "transport/transport.h"

namespace sipwake::routing {

// Identifies one ProxyContext within its Proxy (never reused).
using ContextId = std::uint64_t;

// One place to send a forwarded request: a branch of §16.6.
struct Target {
  std::string uri;                // Request-URI of the branch (a registered Contact)
  std::vector<std::string> path;  // RFC 3327 Path URIs, in header order: pushed as Route
  // The flow the binding registered over (RFC 5626 §5.3 / NAT): used when there is no Path.
  std::optional<transport::SendTarget> flow;
  int q_milli = 1000;
  std::string binding_key;  // location::bindingKey(), for the push layer; may be empty
};

struct Resolution {
  enum class Outcome : std::uint8_t {
    kTargets,      // `targets` (possibly empty when more_may_come) to fork to
    kUnknownUser,  // 404 Not Found
    kNoBinding,    // 480 Temporarily Unavailable: known user, nobody registered
    kRefused,      // `status` `reason` (+ Retry-After: retry_after_s when not 0); e.g. 503
  };
  Outcome outcome = Outcome::kTargets;
  std::vector<Target> targets;  // highest q first
  // True: further targets may be added later with ProxyContext::addBranch() (e.g. a phone woken
  // by push registers); the context waits for Proxy::noMoreBranches() before giving up.
  bool more_may_come = false;
  // INVITE only: when not 0 (180 or 183), the proxy sends the caller this provisional response at
  // once, with a To-tag of its own (push wake-up: ringback while the parked phone wakes up).
  int provisional = 0;
  // kRefused only.
  int status = 0;
  std::string reason;
  std::uint32_t retry_after_s = 0;
};

// Who sent a request, as the proxy established it (RFC 3261 §16.3 step 6), for resolvers whose
// answer depends on it (push wake-up budgets and wake_for).
struct RequestOrigin {
  enum class Trust : std::uint8_t {
    kStranger,       // neither authenticated nor from a trusted peer (e.g. another domain's user)
    kAuthenticated,  // our user, digest-authenticated (or the proxy authenticates nobody)
    kTrusted,        // from an [auth] trusted_peers address
  };
  Trust trust = Trust::kStranger;
  std::string source_ip;  // "192.0.2.7" / "2001:db8::7", no brackets
};

// How a context that was resolved with `more_may_come` ended (push wake-up bookkeeping).
struct ContextEnd {
  int code = 0;             // the final response sent upstream (0: none could be sent)
  bool cancelled = false;   // the caller CANCELled
  std::string answered_by;  // 2xx: Target::binding_key of the branch that answered
};

class TargetResolver {
 public:
  virtual ~TargetResolver() = default;
  // Targets for a request whose Request-URI `uri` is in one of our domains. `context` identifies
  // the proxy context that will fork (for resolvers that add branches later).
  virtual Resolution resolve(ContextId context, const sip::Uri& uri) = 0;
  // The same, for resolvers that need the whole request (caller, Call-ID, method: push
  // payloads) and who sent it (`origin`). The proxy calls this one; the default forwards to
  // resolve().
  virtual Resolution resolveRequest(ContextId context, const sip::Message& request,
                                    const RequestOrigin& /*origin*/) {
    return resolve(context, request.requestUri());
  }
  // A mid-dialog request (To-tag) that came along our Record-Route with no Route left and whose
  // Request-URI carries `pn-purr` (RFC 8599 §6). nullopt: forwarded as usual, to its
  // Request-URI; kRefused: answered so; kTargets: forked like resolveRequest's answer.
  virtual std::optional<Resolution> resolveMidDialog(ContextId /*context*/,
                                                     const sip::Message& /*request*/,
                                                     const RequestOrigin& /*origin*/) {
    return std::nullopt;
  }
  // Called once, on the proxy's loop, when a context resolved with more_may_come has chosen its
  // final response, was CANCELled by the caller (code 487, before the branches answered), or lost
  // its upstream (code 0). No proxy call may be made for `context` from inside it or afterwards.
  virtual void onContextEnded(ContextId /*context*/, const ContextEnd& /*end*/) {}
};

// Orders bindings by q (highest first; stable for equal q: most recently registered first) and
// turns each into a Target (Path, else the received flow).
std::vector<Target> targetsFromBindings(std::vector<location::Binding> bindings);

// The default resolver: location lookup of registrar::canonicalAor(uri) (the key the registrar
// stores bindings under).
class LocationTargetResolver final : public TargetResolver {
 public:
  // Whether `user` (%-unescaped) exists in `domain` (registrar::canonicalDomain); empty: every
  // user exists (no 404).
  using UserExists = std::function<bool(std::string_view user, std::string_view domain)>;
  using WallClock = std::function<location::SysSeconds()>;

  // `store` must outlive the resolver. `now` defaults to the system clock.
  LocationTargetResolver(const location::LocationStore& store, UserExists user_exists,
                         WallClock now = {});

  Resolution resolve(ContextId context, const sip::Uri& uri) override;

 private:
  const location::LocationStore& store_;
  UserExists user_exists_;
  WallClock now_;
};

}  // namespace sipwake::routing
