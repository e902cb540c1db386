#include "registrar/registrar.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <memory>
#include <optional>
#include <utility>
#include <variant>

#include "common/log.h"
#include "push/push_params.h"

namespace sipwake::registrar {
namespace {

using location::Binding;
using location::SysSeconds;

constexpr std::string_view kSupported = "path, outbound";

char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lowerChar(a[i]) != lowerChar(b[i])) return false;
  }
  return true;
}

bool isSupportedTag(std::string_view tag) {
  return iequals(tag, "path") || iequals(tag, "outbound");
}

// "1000" -> "" (q=1 is the default and not written), 500 -> "0.5", 0 -> "0", 125 -> "0.125".
std::string formatQ(int q_milli) {
  if (q_milli >= 1000) return "1";
  std::string s = "0.";
  s.push_back(static_cast<char>('0' + q_milli / 100));
  s.push_back(static_cast<char>('0' + q_milli / 10 % 10));
  s.push_back(static_cast<char>('0' + q_milli % 10));
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// The Contact header params to keep with the binding: everything but expires and q.
std::string keptParams(const std::vector<sip::Param>& params) {
  std::string out;
  for (const sip::Param& p : params) {
    if (iequals(p.name, "expires") || iequals(p.name, "q")) continue;
    out.push_back(';');
    out.append(p.name);
    if (p.has_value) {
      out.push_back('=');
      out.append(p.value);
    }
  }
  return out;
}

std::string lowerProtocol(transport::Protocol p) {
  std::string s(transport::protocolName(p));
  for (char& c : s) c = lowerChar(c);
  return s;
}

// The Contact's push params, URI and header params alike, for push::parsePushParams.
std::vector<push::RawParam> rawPushParams(const sip::NameAddr& a) {
  std::vector<push::RawParam> out;
  for (const std::vector<sip::Param>* list : {&a.uri.params, &a.params}) {
    for (const sip::Param& p : *list) out.push_back(push::RawParam{p.name, p.value, p.has_value});
  }
  return out;
}

// Which device of the AOR a Contact is: its instance id, else its URI without push params.
std::string deviceIdentity(const Binding& b) {
  if (!b.instance_id.empty()) return "i:" + b.instance_id;
  return "c:" + stripPushUriParams(b.contact_uri);
}

}  // namespace

std::string stripPushUriParams(std::string_view uri) {
  return sip::eraseUriParams(uri, push::isPushParamName);
}

location::SysSeconds systemWallClock() {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
}

std::string httpDate(location::SysSeconds t) {
  std::time_t tt = static_cast<std::time_t>(t.time_since_epoch().count());
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

// One REGISTER waiting for the store. Shared by the store's `done` closure (std::function needs
// a copyable callable).
struct Registrar::Pending {
  transaction::ServerTransaction* tx = nullptr;
  std::optional<transport::ReceivedMessage> request;  // set once the request is taken over
  std::string aor;
  std::string call_id;
  std::uint32_t cseq = 0;
  SysSeconds now{};
  bool outbound = false;  // reg-id honoured: answer with Require: outbound
  std::string path_echo;  // Path values to copy into the 200 (UA supports path)
  // Push bindings this REGISTER writes (they travel in its RegistrationChange), for Feature-Caps.
  struct PushUpsert {
    push::PushBinding binding;
    std::string device_key;
    std::uint32_t expires = 0;  // the Contact's SIP expiry (for +sip.pnsreg)
  };
  std::vector<PushUpsert> push_upserts;
  std::size_t push_removals = 0;  // opt-outs of devices that had a push binding
};

Registrar::Registrar(RegistrarConfig config, Services services,
                     transaction::TransactionLayer& layer, location::Executor reply_on,
                     WallClock wall_clock)
    : config_(std::move(config)),
      services_(std::move(services)),
      layer_(layer),
      reply_on_(std::move(reply_on)),
      wall_clock_(std::move(wall_clock)),
      stats_{Stats::global().counter("registrar.requests"),
             Stats::global().counter("registrar.ok"),
             Stats::global().counter("registrar.queries"),
             Stats::global().counter("registrar.challenged"),
             Stats::global().counter("registrar.forbidden"),
             Stats::global().counter("registrar.rate_limited"),
             Stats::global().counter("registrar.bad_request"),
             Stats::global().counter("registrar.not_found"),
             Stats::global().counter("registrar.bad_extension"),
             Stats::global().counter("registrar.interval_too_brief"),
             Stats::global().counter("registrar.cseq_out_of_order"),
             Stats::global().counter("registrar.too_many_contacts"),
             Stats::global().counter("registrar.store_errors"),
             Stats::global().counter("registrar.bindings_written")},
      push_bindings_written_(Stats::global().counter("registrar.push_bindings_written")),
      push_bindings_removed_(Stats::global().counter("registrar.push_bindings_removed")),
      push_rejected_(Stats::global().counter("registrar.push_params_rejected")),
      relayed_(Stats::global().counter("registrar.relayed")),
      relay_refused_(Stats::global().counter("registrar.relay_refused")),
      latency_(Stats::global().histogram("registrar.latency")) {
  SIPWAKE_CHECK(reply_on_ != nullptr && wall_clock_ != nullptr);
  SIPWAKE_CHECK(services_.is_local_domain != nullptr);
  SIPWAKE_CHECK(config_.min_expires <= config_.max_expires);
}

std::string_view Registrar::supportedHeader() { return kSupported; }

void Registrar::setPushCapture(PushCaptureConfig config) { push_ = std::move(config); }

void Registrar::send(transaction::ServerTransaction& tx, sip::Message&& response,
                     bool stateless) {
  if (!config_.server_header.empty()) response.appendHeader("Server", config_.server_header);
  const int code = response.statusCode();
  Status s = stateless ? tx.respondStateless(std::move(response)) : tx.respond(std::move(response));
  if (!s) {
    SW_LOG_DEBUG("registrar: cannot send {} on transaction {}: {}", code, tx.id(), s.toString());
  }
  if (code >= 200) {
    latency_.observe(std::chrono::duration_cast<std::chrono::milliseconds>(
                         layer_.timers().now() - tx.createdAt())
                         .count());
  }
}

void Registrar::reject(transaction::ServerTransaction& tx, const sip::Message& request, int code,
                       std::string_view reason,
                       const std::vector<std::pair<std::string_view, std::string>>& extra) {
  sip::Message response = sip::makeResponseTo(request, code, reason, layer_.newTag());
  for (const auto& [name, value] : extra) response.appendHeader(name, value);
  SW_LOG_DEBUG("registrar: {} {} for Call-ID {}", code, reason, request.callId());
  send(tx, std::move(response));
}

void Registrar::handle(transaction::ServerTransaction& tx, transport::ReceivedMessage&& received) {
  stats_.requests.inc();
  const sip::Message& req = received.message;
  SIPWAKE_CHECK(req.method() == sip::Method::kRegister);

  // §10.3 step 1: bindings only for our own domains (we do not forward REGISTERs).
  const sip::Uri& ruri = req.requestUri();
  if (!ruri.isSipOrSips()) {
    stats_.bad_request.inc();
    return reject(tx, req, 416, "Unsupported URI Scheme");
  }
  if (!services_.is_local_domain(ruri.host)) {
    stats_.forbidden.inc();
    return reject(tx, req, 403, "Forbidden - Not A Domain Of This Registrar");
  }

  // Step 2: Require (§8.2.2.3).
  bool require_outbound = false;
  if (req.find(sip::HeaderId::kRequire) != nullptr) {
    auto tags = req.optionTags(sip::HeaderId::kRequire);
    if (!tags) {
      stats_.bad_request.inc();
      return reject(tx, req, 400, "Bad Request - Malformed Require");
    }
    std::string unsupported;
    for (std::string_view t : *tags) {
      if (iequals(t, "outbound")) require_outbound = true;
      if (isSupportedTag(t)) continue;
      if (!unsupported.empty()) unsupported += ", ";
      unsupported += t;
    }
    if (!unsupported.empty()) {
      stats_.bad_extension.inc();
      return reject(tx, req, 420, "Bad Extension", {{"Unsupported", unsupported}});
    }
  }
  bool supports_outbound = require_outbound;
  bool supports_path = false;
  if (req.find(sip::HeaderId::kSupported) != nullptr) {
    auto tags = req.optionTags(sip::HeaderId::kSupported);
    if (!tags) {
      stats_.bad_request.inc();
      return reject(tx, req, 400, "Bad Request - Malformed Supported");
    }
    for (std::string_view t : *tags) {
      if (iequals(t, "outbound")) supports_outbound = true;
      if (iequals(t, "path")) supports_path = true;
    }
  }

  // Step 5 (checked before authentication: the realm is the To domain, which must be ours).
  auto to = req.to();
  if (!to) {
    stats_.bad_request.inc();
    return reject(tx, req, 400, "Bad Request - Malformed To");
  }
  if (!to->uri.isSipOrSips()) {
    stats_.not_found.inc();
    return reject(tx, req, 404, "Not Found - To Is Not A SIP URI");
  }
  if (!services_.is_local_domain(to->uri.host)) {
    stats_.not_found.inc();
    return reject(tx, req, 404, "Not Found - Domain Not Served Here");
  }
  Result<std::string> aor = canonicalAor(to->uri);
  if (!aor) {
    stats_.not_found.inc();
    return reject(tx, req, 404,
                  to->uri.user.empty() ? "Not Found - To Has No User Part"
                                       : "Not Found - Invalid Address-Of-Record");
  }
  std::string realm = canonicalDomain(to->uri.host);

  // Edge relay mode: the upstream authenticates (relayThen, below), with the phone's own answer.
  const bool relayed = relay_ != nullptr && relay_->relays(realm);
  RegisterRelay::Request relay_request;
  if (relayed) {
    relay_request.aor = *aor;
    relay_request.request_uri = std::string(req.requestUriText());
    if (const sip::HeaderField* h = req.find(sip::HeaderId::kFrom)) relay_request.from = h->value;
    if (const sip::HeaderField* h = req.find(sip::HeaderId::kTo)) relay_request.to = h->value;
    relay_request.call_id = std::string(req.callId());
    if (const sip::HeaderField* ua = req.find(sip::HeaderId::kUserAgent)) {
      relay_request.user_agent = std::string(ua->value);
    }
    for (std::string_view v : req.values(sip::HeaderId::kAuthorization)) {
      relay_request.authorization.emplace_back(v);
    }
    for (std::string_view v : req.values(sip::HeaderId::kProxyAuthorization)) {
      relay_request.proxy_authorization.emplace_back(v);
    }
    relay_request.source = received.remote.ip();
  }

  // Steps 3-4: authentication and authorisation.
  if (config_.require_auth && !relayed) {
    std::vector<std::string_view> credentials = req.values(sip::HeaderId::kAuthorization);
    std::string source_ip = received.remote.ip();
    auth::AuthRequest ar;
    ar.method = req.methodText();
    ar.request_uri = req.requestUriText();
    ar.credentials = credentials;
    ar.realm = realm;
    ar.source_ip = source_ip;
    ar.is_proxy = false;
    ar.now = layer_.timers().now();
    ar.must_own = auth::AorRef{to->uri.user, to->uri.host};
    if (const sip::HeaderField* ua = req.find(sip::HeaderId::kUserAgent)) ar.user_agent = ua->value;
    auth::AuthResult result = services_.authenticator.authenticate(ar);
    if (auto* c = std::get_if<auth::Challenge>(&result)) {
      stats_.challenged.inc();
      sip::Message response = sip::makeResponseTo(req, c->status, "Unauthorized", layer_.newTag());
      for (std::string& v : c->values) response.appendHeader(c->header_name, std::move(v));
      // A REGISTER without credentials is challenged statelessly, as a registrar may (RFC 3261
      // §8.2.7): a retransmission of it is challenged again with a fresh nonce, and no
      // transaction holds the 401 for 64*T1 per REGISTER. One with credentials keeps its
      // transaction, so that a retransmission is not checked (and counted as a failure) twice.
      return send(tx, std::move(response), /*stateless=*/credentials.empty());
    }
    if (auto* f = std::get_if<auth::Forbidden>(&result)) {
      stats_.forbidden.inc();
      return reject(tx, req, 403, "Forbidden - " + f->reason);
    }
    if (auto* r = std::get_if<auth::RateLimited>(&result)) {
      stats_.rate_limited.inc();
      return reject(tx, req, r->status, r->reason,
                    {{"Retry-After", std::to_string(r->retry_after.count())}});
    }
    if (auto* b = std::get_if<auth::BadRequest>(&result)) {
      stats_.bad_request.inc();
      return reject(tx, req, 400, "Bad Request - " + b->reason);
    }
    // Authenticated or TrustedPeer: go on.
  }

  auto cseq = req.cseq();
  if (!cseq) {
    stats_.bad_request.inc();
    return reject(tx, req, 400, "Bad Request - Malformed CSeq");
  }
  const SysSeconds now = wall_clock_();

  // Step 6: contacts.
  auto contacts = req.contacts();
  if (!contacts) {
    stats_.bad_request.inc();
    return reject(tx, req, 400, "Bad Request - Malformed Contact");
  }
  auto pending = std::make_shared<Pending>();
  pending->tx = &tx;
  pending->aor = std::move(*aor);
  pending->call_id = std::string(req.callId());
  pending->cseq = cseq->number;
  pending->now = now;
  relay_request.cseq = cseq->number;

  auto paths = req.paths();
  if (!paths) {
    stats_.bad_request.inc();
    return reject(tx, req, 400, "Bad Request - Malformed Path");
  }

  if (contacts->empty()) {
    // A query: the current bindings, nothing written.
    stats_.queries.inc();
    pending->request.emplace(std::move(received));
    auto answer = [this, pending] {
      answerOk(*pending->tx, *pending, services_.locations.lookup(pending->aor, pending->now));
    };
    if (relayed) return relayThen(pending, std::move(relay_request), std::move(answer));
    answer();
    return;
  }

  // Expires header: malformed values count as the default (RFC 3261 §20.19), huge ones as max.
  std::optional<std::uint32_t> header_expires;
  {
    auto e = req.expires();
    if (e) {
      header_expires = *e;
    } else if (e.status().code() == StatusCode::kOutOfRange) {
      header_expires = config_.max_expires;
    } else if (e.status().code() != StatusCode::kNotFound) {
      header_expires = config_.default_expires;
    }
  }

  location::RegistrationChange change;
  change.aor = pending->aor;
  change.call_id = pending->call_id;
  change.cseq = pending->cseq;
  change.now = now;
  change.max_bindings = config_.max_contacts_per_aor;

  const bool has_star = std::any_of(contacts->begin(), contacts->end(),
                                    [](const sip::ContactValue& c) { return c.star; });
  if (has_star) {
    if (contacts->size() != 1) {
      stats_.bad_request.inc();
      return reject(tx, req, 400, "Bad Request - Wildcard Contact Must Be The Only Contact");
    }
    if (!header_expires || *header_expires != 0) {
      stats_.bad_request.inc();
      return reject(tx, req, 400, "Bad Request - Wildcard Contact Requires Expires: 0");
    }
    change.remove_all = true;
    relay_request.remove_all = true;
    if (push_.enabled) {
      // "Contact: *" is a log-out: the phone must not be woken for this AOR any more either.
      location::PushOp op;
      op.kind = location::PushOp::Kind::kRemoveAll;
      pending->push_removals = services_.locations.lookupPush(pending->aor, SysSeconds{}).size();
      change.push_ops.push_back(std::move(op));
    }
  } else {
    std::vector<std::string> path_values;
    path_values.reserve(paths->size());
    for (const sip::NameAddr& p : *paths) path_values.emplace_back(p.text);
    std::string user_agent;
    if (const sip::HeaderField* ua = req.find(sip::HeaderId::kUserAgent)) {
      user_agent = std::string(ua->value);
    }
    location::ReceivedFlow flow;
    flow.protocol = lowerProtocol(received.protocol);
    flow.source_ip = received.remote.ip();
    flow.source_port = received.remote.port;
    flow.local_listener = flow.protocol + ":" + received.local.toString();
    flow.flow_id = received.flow;
    if (config_.node_route) {
      std::string route = config_.node_route(flow, received);
      if (!route.empty()) path_values.insert(path_values.begin(), std::move(route));
    }

    std::size_t reg_ids = 0;
    for (const sip::ContactValue& c : *contacts) {
      const sip::NameAddr& a = c.addr;
      if (a.uri.text.empty()) {
        stats_.bad_request.inc();
        return reject(tx, req, 400, "Bad Request - Empty Contact URI");
      }
      std::uint32_t expires = config_.default_expires;
      if (a.param("expires") != nullptr) {
        std::optional<std::uint32_t> e = c.expires();
        expires = e ? *e : config_.default_expires;
      } else if (header_expires) {
        expires = *header_expires;
      }
      Binding b;
      b.contact_uri = std::string(a.uri.text);
      b.instance_id = std::string(c.instance());
      if (a.param("reg-id") != nullptr) {
        std::optional<std::uint32_t> reg_id = c.regId();
        if (!reg_id) {
          stats_.bad_request.inc();
          return reject(tx, req, 400, "Bad Request - Invalid reg-id");
        }
        // RFC 5626 §6: reg-id only counts with +sip.instance and when the UA supports outbound.
        if (!b.instance_id.empty() && supports_outbound) {
          b.reg_id = *reg_id;
          ++reg_ids;
        }
      }
      std::optional<push::PushBinding> push_binding;
      if (push_.enabled) {
        std::vector<push::RawParam> raw = rawPushParams(a);
        push::PushParamsResult parsed = push::parsePushParams(raw, push_.serves);
        if (!parsed.isOk()) {
          push_rejected_.inc();
          stats_.bad_request.inc();
          return reject(tx, req, parsed.error().sip_code, parsed.error().reason);
        }
        push_binding = std::move(parsed.value());
        location::PushOp op;
        op.record.aor = pending->aor;
        op.record.identity = deviceIdentity(b);
        if (push_binding) {
          // Also on an un-REGISTER (expires 0): the app went to the background; the push
          // binding stays and its TTL is renewed.
          op.kind = location::PushOp::Kind::kUpsert;
          op.record.device_key = push_binding->deviceKey();
          op.record.binding_key = location::bindingKey(b);
          op.record.binding = *push_binding;
          op.record.registered_at = now;
          op.record.expires_at = now + push_.ttl;
          pending->push_upserts.push_back(
              {*push_binding, op.record.device_key, std::min(expires, config_.max_expires)});
          change.push_ops.push_back(std::move(op));
        } else {
          // Registered without push params: the device opts out of push.
          for (const location::PushRecord& r :
               services_.locations.lookupPush(pending->aor, SysSeconds{})) {
            if (r.identity != op.record.identity) continue;
            ++pending->push_removals;
            // The device's push binding goes, and with it its upstream binding.
            if (relayed) relay_request.devices.push_back({r.device_key, true, true, false});
          }
          op.kind = location::PushOp::Kind::kRemoveIdentity;
          change.push_ops.push_back(std::move(op));
        }
      }
      if (relayed) {
        RegisterRelay::Device d;
        d.push = push_binding.has_value();
        d.key = d.push ? push_binding->deviceKey() : location::bindingKey(b);
        d.removed = expires == 0 && !d.push;
        d.sleeping = expires == 0 && d.push;
        relay_request.devices.push_back(std::move(d));
      }
      if (expires == 0) {
        change.removals.push_back(std::move(b));
        continue;
      }
      b.push = push_binding;
      if (expires < config_.min_expires) {
        stats_.interval_too_brief.inc();
        return reject(tx, req, 423, "Interval Too Brief",
                      {{"Min-Expires", std::to_string(config_.min_expires)}});
      }
      expires = std::min(expires, config_.max_expires);
      if (a.param("q") != nullptr) {
        std::optional<double> q = c.q();
        if (!q) {
          stats_.bad_request.inc();
          return reject(tx, req, 400, "Bad Request - Invalid q Value");
        }
        b.q_milli = static_cast<int>(std::lround(*q * 1000.0));
      }
      b.expires_at = now + std::chrono::seconds(expires);
      b.path = path_values;
      b.received = flow;
      b.user_agent = user_agent;
      b.contact_params = keptParams(a.params);
      if (b.reg_id) pending->outbound = true;
      change.upserts.push_back(std::move(b));
    }
    if (reg_ids > 1) {
      stats_.bad_request.inc();
      return reject(tx, req, 400, "Bad Request - More Than One Contact With reg-id");
    }
    // RFC 5626 §6: with outbound through an edge proxy, that proxy (the last Path value it
    // added, i.e. the bottom one) must have flagged its support with ;ob.
    if (pending->outbound && !paths->empty() && paths->back().uri.param("ob") == nullptr) {
      stats_.bad_request.inc();
      return reject(tx, req, 439, "First Hop Lacks Outbound Support");
    }
    if (supports_path && !paths->empty()) {
      for (const std::string& p : path_values) {
        if (!pending->path_echo.empty()) pending->path_echo += ", ";
        pending->path_echo += p;
      }
    }
  }

  // Steps 7-8: write, then answer from the store's completion.
  pending->request.emplace(std::move(received));
  auto write = [this, pending, change = std::make_shared<location::RegistrationChange>(
                                   std::move(change))] {
    services_.locations.applyRegistration(std::move(*change), reply_on_,
                                          [this, pending](Result<std::vector<Binding>> result) {
                                            finish(*pending, std::move(result));
                                          });
  };
  if (relayed) return relayThen(pending, std::move(relay_request), std::move(write));
  write();
}

void Registrar::relayThen(std::shared_ptr<Pending> pending, RegisterRelay::Request request,
                          std::function<void()> then) {
  relayed_.inc();
  relay_->relay(std::move(request), [this, pending, then = std::move(then),
                                     post = reply_on_](RegisterRelay::Verdict v) {
    post([this, pending, then, v = std::move(v)] {
      if (v.accepted) return then();
      relay_refused_.inc();
      std::vector<std::pair<std::string_view, std::string>> extra;
      for (const auto& [name, value] : v.headers) extra.emplace_back(name, value);
      reject(*pending->tx, pending->request->message, v.status, v.reason, extra);
    });
  });
}

void Registrar::finish(Pending& p, Result<std::vector<Binding>> result) {
  transaction::ServerTransaction& tx = *p.tx;
  const sip::Message& req = p.request->message;
  if (!result) {
    const Status& s = result.status();
    switch (s.code()) {
      case StatusCode::kFailedPrecondition:
        if (s.message().starts_with("CSeq")) {
          // §10.3 step 7: the update is aborted and the request fails.
          stats_.out_of_order.inc();
          return reject(tx, req, 400, "Bad Request - CSeq Out Of Order For This Call-ID");
        }
        break;
      case StatusCode::kOutOfRange:
        stats_.too_many_contacts.inc();
        return reject(tx, req, 403, "Forbidden - Too Many Contacts For This AOR");
      case StatusCode::kUnavailable:
        // Not stored (Redis unreachable, write queue full): try again later, never a false 200.
        stats_.store_errors.inc();
        SW_LOG_WARN("registrar: REGISTER for {} not stored: {}", p.aor, s.message());
        return reject(tx, req, 503, "Service Unavailable - Location Store Unavailable",
                      {{"Retry-After", std::to_string(config_.retry_after_s)}});
      default:
        break;
    }
    stats_.store_errors.inc();
    SW_LOG_WARN("registrar: REGISTER for {} not stored: {}", p.aor, s.message());
    return reject(tx, req, 500, "Server Internal Error",
                  {{"Retry-After", std::to_string(config_.retry_after_s)}});
  }
  push_bindings_written_.inc(p.push_upserts.size());
  if (p.push_removals != 0) {
    push_bindings_removed_.inc(p.push_removals);
    SW_LOG_INFO("registrar: {} opted out of push (REGISTER without push params)", p.aor);
  }
  const std::vector<Binding>& bindings = *result;
  answerOk(tx, p, bindings);
  for (const Binding& b : bindings) {
    if (b.call_id != p.call_id || b.cseq != p.cseq) continue;  // not written by this REGISTER
    stats_.bindings_written.inc();
    if (observer_ != nullptr) observer_->onRegistered(p.aor, b, *p.request);
  }
}

void Registrar::answerOk(transaction::ServerTransaction& tx, const Pending& p,
                         const std::vector<Binding>& bindings) {
  stats_.ok.inc();
  const sip::Message& req = p.request->message;
  sip::Message response = sip::makeResponseTo(req, 200, "OK", layer_.newTag());
  std::vector<const Binding*> order;
  order.reserve(bindings.size());
  for (const Binding& b : bindings) order.push_back(&b);
  std::stable_sort(order.begin(), order.end(),
                   [](const Binding* a, const Binding* b) { return a->q_milli > b->q_milli; });
  for (const Binding* b : order) {
    auto left = (b->expires_at - p.now).count();
    if (left <= 0) continue;
    std::string v;
    v.reserve(b->contact_uri.size() + b->contact_params.size() + 32);
    v.push_back('<');
    v.append(b->contact_uri);
    v.append(">;expires=");
    v.append(std::to_string(left));
    if (b->q_milli != 1000) v.append(";q=").append(formatQ(b->q_milli));
    v.append(b->contact_params);
    response.appendHeader("Contact", std::move(v));
  }
  response.appendHeader("Date", httpDate(p.now));
  if (!p.path_echo.empty()) response.appendHeader("Path", p.path_echo);
  if (p.outbound) response.appendHeader("Require", "outbound");
  // RFC 8599 §4.1.1: one Feature-Caps per PNS type we will push through for this REGISTER.
  std::vector<push::Provider> announced;
  for (const Pending::PushUpsert& op : p.push_upserts) {
    if (std::find(announced.begin(), announced.end(), op.binding.provider) != announced.end()) {
      continue;
    }
    announced.push_back(op.binding.provider);
    std::optional<std::uint32_t> pnsreg;
    // Ask for a refresh half-way through the binding (RFC 8599 §4.1.1: the value must be > 120).
    if (op.binding.has_pnsreg) pnsreg = std::max<std::uint32_t>(121, op.expires / 2);
    std::string caps = push::featureCapsValue(op.binding, pnsreg);
    if (purrs_ != nullptr) {
      // RFC 8599 §6 / RFC 6809: a string value, quoted. A store failure costs only the PURR.
      auto purr = purrs_->issue(op.device_key, p.aor, p.now);
      if (purr) {
        caps.append(";+sip.pnspurr=\"").append(*purr).append("\"");
      } else {
        SW_LOG_WARN("registrar: no PURR for {}: {}", p.aor, purr.status().message());
      }
    }
    response.appendHeader("Feature-Caps", std::move(caps));
  }
  response.appendHeader("Supported", std::string(kSupported));
  send(tx, std::move(response));
}

}  // namespace sipwake::registrar
