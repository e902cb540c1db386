// RFC 3261 §10.3 steps 6-8 for one AOR, as a pure function over its current bindings.
#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "location/location_store.h"

namespace sipwake::location {
namespace {

Status validate(const RegistrationChange& c) {
  if (c.aor.empty()) return invalidArgument("registration change without an AOR");
  if (c.remove_all && (!c.upserts.empty() || !c.removals.empty())) {
    return invalidArgument(
        fmt::format("wildcard Contact '*' combined with other contacts for {}", c.aor));
  }
  for (const Binding& b : c.upserts) {
    if (b.contact_uri.empty()) {
      return invalidArgument(fmt::format("binding without a Contact URI for {}", c.aor));
    }
    if (b.q_milli < 0 || b.q_milli > 1000) {
      return invalidArgument(fmt::format("q {} out of range 0..1000 (milli) for contact {}",
                                         b.q_milli, b.contact_uri));
    }
    if (b.expires_at <= c.now) {
      return invalidArgument(fmt::format(
          "contact {} added with an expiry not after now (use removals)", b.contact_uri));
    }
  }
  for (const Binding& b : c.removals) {
    if (b.contact_uri.empty() && b.instance_id.empty()) {
      return invalidArgument(fmt::format("removal without Contact URI or instance for {}", c.aor));
    }
  }
  return Status::ok();
}

// Step 6/7 ordering rule: the same Call-ID must come with a higher CSeq than the stored one.
Status checkOrdering(const Binding& existing, const RegistrationChange& c) {
  if (existing.call_id == c.call_id && c.cseq <= existing.cseq) {
    return {StatusCode::kFailedPrecondition,
            fmt::format("CSeq {} not higher than {} for Call-ID {} (AOR {}, contact {})", c.cseq,
                        existing.cseq, c.call_id, c.aor, existing.contact_uri)};
  }
  return Status::ok();
}

}  // namespace

void LocationStore::removePushDevice(std::string aor, std::string device_key,
                                     std::optional<SysSeconds> unless_registered_after,
                                     SysSeconds now, Executor reply_on,
                                     std::function<void(Status)> done) {
  RegistrationChange change;
  change.aor = std::move(aor);
  change.now = now;
  PushOp& op = change.push_ops.emplace_back();
  op.kind = PushOp::Kind::kRemoveDevice;
  op.record.device_key = std::move(device_key);
  op.unless_registered_after = unless_registered_after;
  applyRegistration(std::move(change), std::move(reply_on),
                    [done = std::move(done)](Result<std::vector<Binding>> r) {
                      done(r.isOk() ? Status::ok() : r.status());
                    });
}

Result<AppliedChange> applyRegistrationChange(const std::vector<Binding>& current,
                                              const RegistrationChange& change) {
  if (Status s = validate(change); !s) return s;

  std::vector<Binding> live;
  live.reserve(current.size() + change.upserts.size());
  for (const Binding& b : current) {
    if (b.expires_at > change.now) live.push_back(b);
  }
  const std::size_t live_before = live.size();

  // Keys written by this change: a REGISTER repeating a contact must not be rejected against the
  // binding it just wrote itself (that one carries the request's own Call-ID and CSeq).
  std::unordered_set<std::string> touched;
  auto find = [&live](const std::string& key) {
    return std::find_if(live.begin(), live.end(),
                        [&key](const Binding& b) { return bindingKey(b) == key; });
  };

  bool added_new = false;
  if (change.remove_all) {
    for (const Binding& b : live) {
      if (Status s = checkOrdering(b, change); !s) return s;
    }
    live.clear();
  } else {
    for (const Binding& r : change.removals) {
      std::string key = bindingKey(r);
      auto it = find(key);
      if (it == live.end()) continue;
      if (!touched.contains(key)) {
        if (Status s = checkOrdering(*it, change); !s) return s;
      }
      live.erase(it);
      touched.erase(key);
    }
    for (const Binding& u : change.upserts) {
      std::string key = bindingKey(u);
      Binding nb = u;
      nb.aor = change.aor;
      nb.call_id = change.call_id;
      nb.cseq = change.cseq;
      nb.registered_at = change.now;
      auto it = find(key);
      if (it == live.end()) {
        live.push_back(std::move(nb));
        added_new = true;
      } else {
        if (!touched.contains(key)) {
          if (Status s = checkOrdering(*it, change); !s) return s;
        }
        *it = std::move(nb);
      }
      touched.insert(std::move(key));
    }
  }

  if (change.max_bindings != 0 && added_new && live.size() > change.max_bindings &&
      live.size() > live_before) {
    return outOfRange(fmt::format("AOR {} would have {} bindings, limit {}", change.aor,
                                  live.size(), change.max_bindings));
  }

  AppliedChange out;
  std::unordered_set<std::string> final_keys;
  for (const Binding& b : live) {
    std::string key = bindingKey(b);
    if (touched.contains(key)) out.written.push_back(b);
    final_keys.insert(std::move(key));
  }
  for (const Binding& b : current) {
    std::string key = bindingKey(b);
    if (!final_keys.contains(key)) out.removed_keys.push_back(std::move(key));
  }
  out.bindings = std::move(live);
  return out;
}

}  // namespace sipwake::location
