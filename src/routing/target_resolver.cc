#include "routing/target_resolver.h"

#include <algorithm>
#include <chrono>

#include "registrar/registrar.h"
#include "registrar/services.h"

namespace sipwake::routing {

std::vector<Target> targetsFromBindings(std::vector<location::Binding> bindings) {
  std::stable_sort(bindings.begin(), bindings.end(),
                   [](const location::Binding& a, const location::Binding& b) {
                     if (a.q_milli != b.q_milli) return a.q_milli > b.q_milli;
                     return a.registered_at > b.registered_at;
                   });
  std::vector<Target> out;
  out.reserve(bindings.size());
  for (location::Binding& b : bindings) {
    Target t;
    t.binding_key = location::bindingKey(b);  // before contact_uri is moved from
    // Push parameters (pn-prid, push-token-id, …) never leave sipwake towards the phone or
    // anyone else, whether or not push is configured.
    t.uri = registrar::stripPushUriParams(b.contact_uri);
    t.path = std::move(b.path);
    t.q_milli = b.q_milli;
    if (!b.received.protocol.empty() && !b.received.source_ip.empty()) {
      auto protocol = transport::protocolFromName(b.received.protocol);
      auto address = transport::Address::parse(b.received.source_ip, b.received.source_port);
      if (protocol && address && b.received.source_port != 0) {
        transport::SendTarget flow;
        flow.protocol = *protocol;
        flow.remote = *address;
        flow.flow = b.received.flow_id;
        t.flow = flow;
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

LocationTargetResolver::LocationTargetResolver(const location::LocationStore& store,
                                               UserExists user_exists, WallClock now)
    : store_(store), user_exists_(std::move(user_exists)), now_(std::move(now)) {
  if (!now_) {
    now_ = [] {
      return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
    };
  }
}

Resolution LocationTargetResolver::resolve(ContextId /*context*/, const sip::Uri& uri) {
  Resolution r;
  auto aor = registrar::canonicalAor(uri);
  if (!aor) {
    r.outcome = Resolution::Outcome::kUnknownUser;
    return r;
  }
  std::vector<location::Binding> bindings = store_.lookup(*aor, now_());
  if (bindings.empty()) {
    bool exists = true;
    if (user_exists_) {
      auto user = sip::unescape(uri.user);
      exists = user && user_exists_(*user, registrar::canonicalDomain(uri.host));
    }
    r.outcome = exists ? Resolution::Outcome::kNoBinding : Resolution::Outcome::kUnknownUser;
    return r;
  }
  r.targets = targetsFromBindings(std::move(bindings));
  return r;
}

}  // namespace sipwake::routing
