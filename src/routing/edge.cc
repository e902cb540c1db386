#include "routing/edge.h"

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "location/binding.h"
#include "push/push_params.h"
#include "registrar/services.h"
#include "sip/uri.h"

namespace sipwake::routing {
namespace {

constexpr std::string_view kUserPrefix = "edge-";

bool isUnspecifiedAddress(const transport::Address& a) {
  for (std::size_t i = 0; i < (a.v6 ? 16u : 4u); ++i) {
    if (a.bytes[i] != 0) return false;
  }
  return true;
}

// "sip:alice@example.com" -> "alice".
std::string_view userOf(std::string_view aor) {
  auto colon = aor.find(':');
  auto at = aor.rfind('@');
  if (colon == std::string_view::npos || at == std::string_view::npos || at < colon) return {};
  return aor.substr(colon + 1, at - colon - 1);
}

// "sip:alice@example.com" -> "example.com".
std::string_view domainOf(std::string_view aor) {
  auto at = aor.rfind('@');
  return at == std::string_view::npos ? std::string_view() : aor.substr(at + 1);
}

}  // namespace

std::string edgeContactUser(std::string_view device_key) {
  std::string user(kUserPrefix);
  const bool plain =
      !device_key.empty() && std::all_of(device_key.begin(), device_key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':';
      });
  if (plain) {
    for (char c : device_key) user.push_back(c == ':' ? '-' : c);
    return user;
  }
  std::uint64_t h = 14695981039346656037ull;  // FNV-1a 64
  for (unsigned char c : device_key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  user.push_back('h');
  for (int shift = 60; shift >= 0; shift -= 4) user.push_back(kHex[(h >> shift) & 0xf]);
  return user;
}

std::chrono::seconds EdgeSchedule::renewAfter(std::chrono::seconds granted) const {
  const std::chrono::seconds half = granted / 2;
  return granted > refresh_before ? std::min(half, granted - refresh_before) : half;
}

bool EdgeSchedule::due(TimePoint now, std::optional<TimePoint> registered_at,
                       std::chrono::seconds granted, std::optional<TimePoint> failed_at) const {
  if (failed_at) return now >= *failed_at + retry_after_failure;
  if (!registered_at) return true;
  return now >= *registered_at + renewAfter(granted);
}

std::optional<std::chrono::seconds> grantedExpiry(const sip::Message& response,
                                                  std::string_view user,
                                                  std::chrono::seconds asked) {
  std::optional<std::chrono::seconds> header;
  if (const sip::HeaderField* e = response.find(sip::HeaderId::kExpires)) {
    if (auto v = sip::parseDeltaSeconds(e->value)) header = std::chrono::seconds(*v);
  }
  bool listed = false;
  for (const sip::HeaderField& h : response.headers()) {
    if (h.id != sip::HeaderId::kContact || h.removed) continue;
    auto contacts = sip::parseContactList(h.value);
    if (!contacts) continue;
    for (const sip::ContactValue& c : *contacts) {
      if (c.star) continue;
      listed = true;
      if (c.addr.uri.user != user) continue;
      if (auto v = c.expires()) return std::chrono::seconds(*v);
      return header.value_or(asked);
    }
  }
  if (listed) return std::nullopt;
  return header.value_or(asked);
}

EdgeUpstream::EdgeUpstream(EdgeConfig config, Deps deps)
    : config_(std::move(config)),
      deps_(std::move(deps)),
      schedule_{config_.refresh_before, config_.retry_after_failure},
      alive_(std::make_shared<bool>(true)),
      registers_(Stats::global().counter("edge.upstream_registers")),
      unregisters_(Stats::global().counter("edge.upstream_unregisters")),
      registered_(Stats::global().counter("edge.upstream_registered")),
      challenged_(Stats::global().counter("edge.upstream_challenged")),
      failed_(Stats::global().counter("edge.upstream_failed")),
      unreachable_(Stats::global().counter("edge.upstream_unreachable")),
      back_(Stats::global().counter("edge.upstream_back")),
      too_brief_(Stats::global().counter("edge.upstream_interval_too_brief")),
      relay_upstream_(Stats::global().counter("edge.relay_registers")),
      relay_local_(Stats::global().counter("edge.relay_answered_here")),
      relay_challenges_(Stats::global().counter("edge.relay_challenges")),
      relay_unavailable_(Stats::global().counter("edge.relay_unavailable")),
      relay_too_many_(Stats::global().counter("edge.relay_too_many")),
      refresh_pushes_(Stats::global().counter("edge.refresh_pushes")),
      refresh_push_failed_(Stats::global().counter("edge.refresh_push_failed")),
      auth_failed_(Stats::global().counter("edge.upstream_auth_failed")) {
  SIPWAKE_CHECK(deps_.layer != nullptr && deps_.transport != nullptr && deps_.post &&
                deps_.push_store != nullptr && deps_.locations != nullptr);
  SIPWAKE_CHECK(sip::parseUri(config_.upstream_uri).isOk());
  SIPWAKE_CHECK(config_.upstream_rate > 0);
  tokens_ = config_.upstream_rate;
  route_ = config_.upstream_uri;
  if (route_.find(";lr") == std::string::npos) route_ += ";lr";
}

EdgeUpstream::~EdgeUpstream() {
  *alive_ = false;
  // The home loop has stopped: its timers and transactions are never run again.
}

location::SysSeconds EdgeUpstream::wallNow() const {
  return deps_.wall_clock ? deps_.wall_clock() : registrar::systemWallClock();
}

void EdgeUpstream::start() {
  std::size_t restored = 0;
  for (const location::PushRecord& r : deps_.push_store->livePushRecords(wallNow())) {
    if (!isEdgeDomain(domainOf(r.aor))) continue;
    touch(r.aor, r.device_key, true);
    ++restored;
  }
  if (config_.relay) {
    SW_LOG_INFO("edge: upstream {} (relay); {} device(s) known from the push bindings",
                config_.upstream_uri, restored);
  } else {
    SW_LOG_INFO("edge: upstream {}; {} device(s) registered there from the push bindings",
                config_.upstream_uri, restored);
  }
  refilled_ = deps_.layer->timers().now();
  pump();
  std::weak_ptr<bool> alive = alive_;
  tick_ = deps_.layer->timers().schedule(config_.reconcile_interval, [this, alive] {
    if (alive.expired()) return;
    reconcile();
  });
}

std::optional<std::string> EdgeUpstream::aorForContactUser(std::string_view user) const {
  if (!user.starts_with(kUserPrefix)) return std::nullopt;
  std::lock_guard lock(mu_);
  auto u = by_user_.find(std::string(user));
  if (u == by_user_.end()) return std::nullopt;
  auto d = devices_.find(u->second);
  if (d == devices_.end()) return std::nullopt;
  return d->second.aor;
}

bool EdgeUpstream::isEdgeDomain(std::string_view host) const {
  return std::find(config_.domains.begin(), config_.domains.end(), host) != config_.domains.end();
}

std::size_t EdgeUpstream::deviceCount() const {
  std::lock_guard lock(mu_);
  return devices_.size();
}

void EdgeUpstream::onRegistered(std::string_view aor, const location::Binding& binding,
                                const transport::ReceivedMessage& /*request*/) {
  if (!isEdgeDomain(domainOf(aor))) return;
  std::string key;
  bool push = false;
  if (binding.push) {
    key = binding.push->deviceKey();
    push = true;
  }
  if (key.empty()) key = location::bindingKey(binding);
  std::weak_ptr<bool> alive = alive_;
  deps_.post([this, alive, aor = std::string(aor), key = std::move(key), push] {
    if (alive.expired()) return;
    touch(aor, key, push);
  });
}

EdgeUpstream::Device& EdgeUpstream::create(const std::string& aor, const std::string& key,
                                           bool push) {
  Device d;
  d.key = key;
  d.user = edgeContactUser(key);
  d.aor = aor;
  d.push = push;
  d.call_id = deps_.layer->newTag() + deps_.layer->newTag() + "@edge.sipwake";
  d.from_tag = deps_.layer->newTag();
  d.asked = config_.upstream_expires;
  by_user_[d.user] = key;
  return devices_.insert_or_assign(key, std::move(d)).first->second;
}

void EdgeUpstream::forget(const std::string& key) {
  auto it = devices_.find(key);
  if (it == devices_.end()) return;
  by_user_.erase(it->second.user);
  devices_.erase(it);
}

void EdgeUpstream::touch(const std::string& aor, const std::string& key, bool push) {
  std::optional<Device> moved_from;
  {
    std::lock_guard lock(mu_);
    auto it = devices_.find(key);
    if (it != devices_.end() && it->second.aor != aor) {
      // The device now belongs to another AOR: its old upstream binding must not ring it.
      moved_from = it->second;
      forget(key);
      it = devices_.end();
    }
    Device& d = it != devices_.end() ? it->second : create(aor, key, push);
    d.push = d.push || push;
    // Relay: the phone's own REGISTERs keep the upstream binding (sipwake has no credentials).
    if (!config_.relay &&
        schedule_.due(deps_.layer->timers().now(), d.registered_at, d.granted, d.failed_at)) {
      enqueue(d);
    }
  }
  if (moved_from && moved_from->registered_at) {
    moved_from->cseq += 1;
    send(*moved_from, std::chrono::seconds(0));
  }
  pump();
}

void EdgeUpstream::enqueue(Device& d, bool front) {
  if (d.queued || d.in_flight) return;
  d.queued = true;
  if (front) {
    pending_.push_front(d.key);
  } else {
    pending_.push_back(d.key);
  }
}

void EdgeUpstream::pump() {
  if (!reachable_) return;
  const TimePoint now = deps_.layer->timers().now();
  const double rate = config_.upstream_rate;
  tokens_ = std::min(rate, tokens_ + rate * std::chrono::duration<double>(now - refilled_).count());
  refilled_ = now;
  std::vector<Device> out;
  {
    std::lock_guard lock(mu_);
    while (!pending_.empty() && tokens_ >= 1.0) {
      std::string key = std::move(pending_.front());
      pending_.pop_front();
      auto it = devices_.find(key);
      if (it == devices_.end() || !it->second.queued) continue;
      Device& d = it->second;
      d.queued = false;
      if (d.in_flight) continue;
      d.in_flight = true;
      d.cseq += 1;
      out.push_back(d);
      tokens_ -= 1.0;
    }
  }
  for (const Device& d : out) send(d, d.asked);
  if (pending_.empty() || pump_armed_) return;
  pump_armed_ = true;
  const auto wait =
      std::chrono::duration_cast<Duration>(std::chrono::duration<double>((1.0 - tokens_) / rate));
  std::weak_ptr<bool> alive = alive_;
  deps_.layer->timers().schedule(std::max(wait, Duration(std::chrono::milliseconds(1))),
                                 [this, alive] {
                                   if (alive.expired()) return;
                                   pump_armed_ = false;
                                   pump();
                                 });
}

void EdgeUpstream::probe(TimePoint now) {
  if (reachable_ || (probed_at_ && now < *probed_at_ + config_.retry_after_failure)) return;
  std::optional<Device> out;
  {
    std::lock_guard lock(mu_);
    for (auto& [key, d] : devices_) {
      if (d.in_flight) return;  // an answer (or its absence) is on its way
    }
    // The longest-waiting device, else any.
    Device* pick = nullptr;
    while (!pending_.empty() && pick == nullptr) {
      auto it = devices_.find(pending_.front());
      pending_.pop_front();
      if (it != devices_.end() && it->second.queued) pick = &it->second;
    }
    if (pick == nullptr && !devices_.empty()) pick = &devices_.begin()->second;
    if (pick == nullptr) return;
    pick->queued = false;
    pick->in_flight = true;
    pick->cseq += 1;
    out = *pick;
  }
  probed_at_ = now;
  send(*out, out->asked);
}

void EdgeUpstream::upstreamUnreachable(const std::string& reason) {
  probed_at_ = deps_.layer->timers().now();
  if (!reachable_) return;
  reachable_ = false;
  unreachable_.inc();
  SW_LOG_WARN("edge: upstream {} unreachable ({}); {} devices waiting", config_.upstream_uri,
              reason, deviceCount());
}

void EdgeUpstream::upstreamAnswered() {
  if (reachable_) return;
  reachable_ = true;
  probed_at_.reset();
  back_.inc();
  if (config_.relay) return refreshAfterOutage();
  std::size_t n = 0;
  {
    std::lock_guard lock(mu_);
    // The upstream may have lost every binding while it was away: all are registered again.
    for (auto& [key, d] : devices_) {
      d.failed_at.reset();
      enqueue(d);
      if (d.queued) ++n;
    }
  }
  SW_LOG_INFO("edge: upstream {} back; re-registering {} devices", config_.upstream_uri, n);
  refilled_ = std::max(refilled_, deps_.layer->timers().now());
}

bool EdgeUpstream::alive(const Device& d, location::SysSeconds wall) const {
  if (d.push) {
    auto r = deps_.push_store->lookupPushDevice(d.key);
    return r && r->aor == d.aor && r->expires_at > wall;
  }
  for (const location::Binding& b : deps_.locations->lookup(d.aor, wall)) {
    if (location::bindingKey(b) == d.key) return true;
  }
  return false;
}

void EdgeUpstream::reconcile() {
  const location::SysSeconds wall = wallNow();
  const TimePoint now = deps_.layer->timers().now();
  std::vector<std::pair<Device, std::chrono::seconds>> out;
  std::vector<push::PushTarget> refreshes;
  {
    std::lock_guard lock(mu_);
    std::vector<std::string> gone;
    for (auto& [key, d] : devices_) {
      if (!alive(d, wall)) {
        gone.push_back(key);
        // Relay: no credentials to remove it with; its upstream binding lapses, and requests
        // to its contact get 404 here meanwhile.
        if (!config_.relay && (d.registered_at || d.in_flight)) {
          Device copy = d;
          copy.cseq += 1;
          out.emplace_back(std::move(copy), std::chrono::seconds(0));
        }
        continue;
      }
      if (!config_.relay && !d.in_flight &&
          schedule_.due(now, d.registered_at, d.granted, d.failed_at)) {
        enqueue(d);
      }
      if (config_.relay) {
        if (auto target = refreshDue(d, now)) refreshes.push_back(std::move(*target));
      }
    }
    for (const std::string& key : gone) forget(key);
  }
  for (auto& [d, expires] : out) send(d, expires);
  for (const push::PushTarget& t : refreshes) sendRefresh(t);
  if (config_.relay) {
    if (!reachable_ && (!probed_at_ || now >= *probed_at_ + config_.retry_after_failure)) {
      sendProbe();
    }
  } else {
    probe(now);
  }
  pump();
  std::weak_ptr<bool> alive = alive_;
  tick_ = deps_.layer->timers().schedule(config_.reconcile_interval, [this, alive] {
    if (alive.expired()) return;
    reconcile();
  });
}

void EdgeUpstream::withUpstream(std::function<void(const transport::SendTarget&)> then,
                                std::function<void(std::string)> failed) {
  auto uri = sip::parseUri(config_.upstream_uri);
  SIPWAKE_CHECK(uri.isOk());  // checked by the constructor
  auto literal = literalTarget(*uri);
  if (literal) {
    then(*literal);
    return;
  }
  if (literal.status().code() != StatusCode::kNotFound || deps_.resolver == nullptr) {
    failed("not routable: " + literal.status().message());
    return;
  }
  std::weak_ptr<bool> alive = alive_;
  deps_.resolver->resolve(*uri, [alive, then = std::move(then),
                                 failed = std::move(failed)](Result<transport::SendTarget> r) {
    if (alive.expired()) return;
    if (!r) {
      failed("not resolved: " + r.status().message());
      return;
    }
    then(*r);
  });
}

std::optional<std::string> EdgeUpstream::contactFor(const std::string& user,
                                                    const transport::SendTarget& hop,
                                                    std::string* why) const {
  auto local = deps_.transport->localAddressFor(hop.protocol, hop.remote.v6);
  if (!local) {
    *why = "no " + std::string(transport::protocolName(hop.protocol)) + " listener to send from";
    return std::nullopt;
  }
  const std::string host = isUnspecifiedAddress(*local) && !config_.advertised_host.empty()
                               ? config_.advertised_host
                               : local->hostForUri();
  std::string contact = "<sip:" + user + "@" + host + ":" + std::to_string(local->port);
  if (hop.protocol == transport::Protocol::kTcp) contact += ";transport=tcp";
  if (hop.protocol == transport::Protocol::kTls) contact += ";transport=tls";
  contact += ">";
  return contact;
}

void EdgeUpstream::send(const Device& d, std::chrono::seconds expires) {
  const std::uint64_t seq = ++next_seq_;
  sent_[seq] = Sent{d.key, expires.count() == 0, d.user, expires, nullptr, false, d};
  withUpstream(
      [this, seq, d, expires](const transport::SendTarget& hop) { sendTo(seq, d, expires, hop); },
      [this, seq](std::string why) {
        finished(seq, Outcome{0, std::move(why), {}, {}});
      });
}

void EdgeUpstream::sendTo(std::uint64_t seq, const Device& d, std::chrono::seconds expires,
                          const transport::SendTarget& hop) {
  std::string why;
  std::optional<std::string> contact_of_ours = contactFor(d.user, hop, &why);
  if (!contact_of_ours) {
    finished(seq, Outcome{0, std::move(why), {}, {}});
    return;
  }
  const std::string& contact = *contact_of_ours;
  const std::string aor_uri = "<" + d.aor + ">";
  sip::Message m = sip::Message::makeRequest(sip::Method::kRegister, "REGISTER",
                                             "sip:" + std::string(domainOf(d.aor)));
  m.appendHeader("Max-Forwards", "70");
  m.appendHeader("From", aor_uri + ";tag=" + d.from_tag);
  m.appendHeader("To", aor_uri);
  m.appendHeader("Call-ID", d.call_id);
  m.appendHeader("CSeq", std::to_string(d.cseq) + " REGISTER");
  m.appendHeader("Contact", contact);
  m.appendHeader("Expires", std::to_string(expires.count()));
  addCredentials(m, d);
  m.appendHeader("User-Agent", "sipwake-edge");
  m.appendHeader("Content-Length", "0");
  transaction::RequestOptions options;
  options.user = this;
  options.user_data = seq;
  (expires.count() == 0 ? unregisters_ : registers_).inc();
  SW_LOG_INFO("edge: REGISTER {} upstream, contact {}, expires {} (CSeq {})", d.aor, contact,
              expires.count(), d.cseq);
  auto sent = deps_.layer->sendRequest(std::move(m), hop, options);
  if (!sent) finished(seq, Outcome{0, "not sent: " + sent.status().message(), {}, {}});
}

void EdgeUpstream::finished(std::uint64_t seq, Outcome outcome) {
  auto s = sent_.find(seq);
  if (s == sent_.end()) return;
  Sent sent = std::move(s->second);
  sent_.erase(s);
  const TimePoint now = deps_.layer->timers().now();
  const int status = outcome.status;
  if (sent.probe) {
    // Any answer, even an error, shows the upstream is there.
    if (status == 0) {
      upstreamUnreachable(outcome.reason);
    } else {
      upstreamAnswered();
    }
    return;
  }
  const bool ok = status >= 200 && status < 300;
  if (status == 0 || status == 503) {
    failed_.inc();
    upstreamUnreachable(status == 0 ? outcome.reason : "503 from the upstream");
  } else {
    upstreamAnswered();
    if (ok) {
      if (!sent.unregister) registered_.inc();
    } else if (status == 401 || status == 407) {
      // Counted and logged by answerChallenge().
    } else if (status == 423) {
      too_brief_.inc();
    } else {
      failed_.inc();
      SW_LOG_WARN("edge: upstream REGISTER at {} failed: {}", config_.upstream_uri, status);
    }
  }
  if (sent.unregister) {
    auth_.erase(sent.device.call_id);
    no_credentials_logged_.erase(sent.device.call_id);
  } else {
    std::lock_guard lock(mu_);
    auto it = devices_.find(sent.key);
    if (it != devices_.end()) {
      Device& d = it->second;
      d.in_flight = false;
      if (ok) {
        d.registered_at = now;
        d.failed_at.reset();
        if (!outcome.granted) {
          SW_LOG_WARN("edge: upstream {} answered 200 without sipwake's contact for {}",
                      config_.upstream_uri, d.aor);
        }
        d.granted = outcome.granted.value_or(sent.asked);
      } else if (status == 423 && outcome.min_expires &&
                 std::chrono::seconds(*outcome.min_expires) > sent.asked) {
        // RFC 3261 §10.2.8: ask again for at least the Min-Expires, now.
        d.asked = std::chrono::seconds(*outcome.min_expires);
        SW_LOG_INFO("edge: upstream {} wants expires >= {} (423); asking that for {}",
                    config_.upstream_uri, d.asked.count(), d.aor);
        enqueue(d, true);
      } else {
        d.failed_at = now;
      }
    }
  }
  pump();
}

bool EdgeUpstream::answerChallenge(std::uint64_t seq, const sip::Message& response) {
  auto s = sent_.find(seq);
  if (s == sent_.end() || s->second.probe) return false;
  challenged_.inc();
  const Device& d = s->second.device;
  const int status = response.statusCode();
  auto kept = auth_.find(d.call_id);
  if (kept != auth_.end() && kept->second.answer_cseq == d.cseq) {
    // One answer per challenge: challenged again means the credentials are not the PBX's.
    auth_.erase(kept);
    auth_failed_.inc();
    SW_LOG_WARN(
        "edge: upstream {} refused sipwake's credentials for {} ({}): the password of "
        "`sipwake user` must equal the PBX's",
        config_.upstream_uri, d.aor, status);
    return false;
  }
  const std::string_view user = userOf(d.aor);
  const std::string_view domain = domainOf(d.aor);
  std::optional<location::UserCredentials> creds;
  if (deps_.users != nullptr) creds = deps_.users->lookup(user, domain);
  const sip::HeaderId challenge_id =
      status == 407 ? sip::HeaderId::kProxyAuthenticate : sip::HeaderId::kWwwAuthenticate;
  std::optional<auth::DigestChallenge> pick;
  std::string offered;  // for the log: what the upstream asked
  for (const sip::HeaderField& h : response.headers()) {
    if (h.id != challenge_id || h.removed) continue;
    auto c = auth::parseDigestChallenge(h.value);
    if (!c) continue;
    if (!offered.empty()) offered += ", ";
    offered +=
        "\"" + c->realm + "\" (" + (c->algorithm_text.empty() ? "MD5" : c->algorithm_text) + ")";
    if (c->realm == domain && auth::canAnswer(*c)) {
      pick = std::move(*c);
      break;
    }
  }
  if (!creds || !pick) {
    auth_.erase(d.call_id);
    auth_failed_.inc();
    if (no_credentials_logged_.insert(d.call_id).second) {
      if (offered.empty()) offered = "none that parses";
      if (creds) {
        SW_LOG_WARN(
            "edge: upstream challenges {} with realm {}; sipwake answers realm \"{}\" with MD5 "
            "or SHA-256 (qop auth or none): trust sipwake's address at the PBX",
            d.aor, offered, domain);
      } else {
        SW_LOG_WARN(
            "edge: upstream challenges {} with realm {}; sipwake has no credentials for it: add "
            "the user with `sipwake user add` or trust sipwake's address at the PBX",
            d.aor, offered);
      }
    }
    return false;
  }
  auto cnonce = auth::randomCnonce();
  if (!cnonce) {
    auth_failed_.inc();
    SW_LOG_WARN("edge: cannot answer the upstream's challenge for {}: {}", d.aor,
                cnonce.status().message());
    return false;
  }
  upstreamAnswered();
  Device next = d;
  next.cseq += 1;
  const std::chrono::seconds expires = s->second.asked;
  sent_.erase(s);
  UpstreamAuth& a = auth_[next.call_id];
  a = UpstreamAuth{next.aor, std::move(*pick), status == 407, std::move(*cnonce), 0, next.cseq};
  no_credentials_logged_.erase(next.call_id);
  {
    std::lock_guard lock(mu_);
    auto it = devices_.find(next.key);
    if (it != devices_.end() && it->second.call_id == next.call_id) {
      it->second.cseq = std::max(it->second.cseq, next.cseq);
    }
  }
  send(next, expires);
  return true;
}

void EdgeUpstream::addCredentials(sip::Message& m, const Device& d) {
  auto a = auth_.find(d.call_id);
  if (a == auth_.end() || a->second.aor != d.aor || deps_.users == nullptr) return;
  const std::string_view user = userOf(d.aor);
  auto creds = deps_.users->lookup(user, domainOf(d.aor));
  if (!creds) return;  // removed since: the upstream challenges, and that is logged
  UpstreamAuth& kept = a->second;
  kept.nc += 1;
  auth::ClientAnswer answer;
  answer.username = user;
  answer.ha1 = auth::baseAlgorithm(*kept.challenge.algorithm) == auth::DigestAlgorithm::kMd5
                   ? creds->ha1_md5
                   : creds->ha1_sha256;
  answer.method = "REGISTER";
  answer.uri = m.requestUriText();
  answer.cnonce = kept.cnonce;
  answer.nc = kept.nc;
  m.appendHeader(kept.proxy ? "Proxy-Authorization" : "Authorization",
                 auth::buildCredentials(kept.challenge, answer));
}

void EdgeUpstream::onResponse(transaction::ClientTransaction& tx,
                              transport::ReceivedMessage&& response) {
  const sip::Message& m = response.message;
  const int status = m.statusCode();
  if (status < 200) return;
  auto s = sent_.find(tx.userData());
  if (s != sent_.end() && s->second.relay) return relayFinished(tx.userData(), &m, {});
  if ((status == 401 || status == 407) && answerChallenge(tx.userData(), m)) return;
  Outcome outcome{status, {}, {}, {}};
  if (s != sent_.end() && status < 300) {
    outcome.granted = grantedExpiry(m, s->second.user, s->second.asked);
  }
  if (status == 423) {
    if (const sip::HeaderField* h = m.find(sip::HeaderId::kMinExpires)) {
      if (auto v = sip::parseDeltaSeconds(h->value)) outcome.min_expires = *v;
    }
  }
  finished(tx.userData(), std::move(outcome));
}

void EdgeUpstream::onTimeout(transaction::ClientTransaction& tx) {
  auto s = sent_.find(tx.userData());
  if (s != sent_.end() && s->second.relay) {
    return relayFinished(tx.userData(), nullptr, "no answer within the transaction timeout");
  }
  finished(tx.userData(), Outcome{0, "no answer within the transaction timeout", {}, {}});
}

void EdgeUpstream::onTransportError(transaction::ClientTransaction& tx, const Status& error) {
  auto s = sent_.find(tx.userData());
  if (s != sent_.end() && s->second.relay) {
    return relayFinished(tx.userData(), nullptr, "transport error: " + error.message());
  }
  finished(tx.userData(), Outcome{0, "transport error: " + error.message(), {}, {}});
}

}  // namespace sipwake::routing
