// Edge mode "relay" (routing/edge.h): a phone's REGISTER goes to the upstream with the phone's own
// digest answer and sipwake's stable contact for the device in place of the phone's; the
// upstream's verdict decides whether the registrar writes the binding.
//
// Throttle: once the upstream accepted a device's REGISTER, the phone's next REGISTERs for that
// device from the same IP address, with the same Call-ID and a higher CSeq (its refreshes, its
// background un-REGISTER, its REGISTER when a push woke it on a new connection), are answered here
// until the upstream binding is due for renewal (EdgeSchedule): the upstream sees a stable expiry,
// not every refresh, and a woken phone's call is not held up by a challenge round trip. Anything
// else (a new Call-ID, another address, a device leaving, a query) is relayed: what is accepted
// here continues a registration the upstream authenticated, and naming it takes the Call-ID and
// the push token of that REGISTER (secret under TLS).
#include <algorithm>
#include <utility>

#include "common/log.h"
#include "push/push_params.h"
#include "routing/edge.h"
#include "sip/chars.h"

namespace sipwake::routing {
namespace {

// Headers of the upstream's refusal the phone needs to act on it (its challenge above all).
bool relayedHeader(const sip::HeaderField& h) {
  switch (h.id) {
    case sip::HeaderId::kWwwAuthenticate:
    case sip::HeaderId::kProxyAuthenticate:
    case sip::HeaderId::kWarning:
      return true;
    case sip::HeaderId::kOther:
      return sip::detail::iequals(h.name, "Retry-After");
    default:
      return false;
  }
}

// REGISTERs of one source address, and of all, waiting for the upstream at once: a flood from one
// address (or many) is not passed on to the PBX, nor held in memory here, beyond these.
constexpr std::uint32_t kMaxRelaysPerSource = 16;
constexpr std::size_t kMaxRelays = 4096;

}  // namespace

EdgeUpstream::Verdict EdgeUpstream::unavailable(std::chrono::seconds retry_after) const {
  Verdict v;
  v.status = 503;
  v.reason = "Service Unavailable - Upstream Registrar Unreachable";
  v.headers.emplace_back("Retry-After",
                         std::to_string(std::max<long long>(1, retry_after.count())));
  return v;
}

void EdgeUpstream::relay(Request request, std::function<void(Verdict)> done) {
  std::weak_ptr<bool> alive = alive_;
  deps_.post([this, alive, request = std::move(request), done = std::move(done)]() mutable {
    if (alive.expired()) return;
    relayOnHome(std::move(request), std::move(done));
  });
}

void EdgeUpstream::relayOnHome(Request request, std::function<void(Verdict)> done) {
  const TimePoint now = deps_.layer->timers().now();
  if (!request.devices.empty() && !request.remove_all) {
    std::lock_guard lock(mu_);
    const bool here = std::all_of(
        request.devices.begin(), request.devices.end(), [&](const RegisterRelay::Device& rd) {
          auto it = devices_.find(rd.key);
          if (rd.removed || it == devices_.end()) return false;
          const Device& d = it->second;
          return d.aor == request.aor && !d.relay_source.empty() &&
                 d.relay_source == request.source && d.relay_call_id == request.call_id &&
                 request.cseq > d.relay_cseq && d.registered_at &&
                 !schedule_.due(now, d.registered_at, d.granted, std::nullopt);
        });
    if (here) {
      for (const RegisterRelay::Device& rd : request.devices) {
        devices_[rd.key].relay_cseq = request.cseq;
      }
      relay_local_.inc();
      Verdict ok;
      ok.accepted = true;
      done(std::move(ok));
      return;
    }
  }
  if (!reachable_ && probed_at_ && now < *probed_at_ + config_.retry_after_failure) {
    relay_unavailable_.inc();
    const auto left =
        std::chrono::ceil<std::chrono::seconds>(*probed_at_ + config_.retry_after_failure - now);
    done(unavailable(left));
    return;
  }
  std::uint32_t& from_source = relays_by_source_[request.source];
  if (from_source >= kMaxRelaysPerSource || relays_in_flight_ >= kMaxRelays) {
    if (from_source == 0) relays_by_source_.erase(request.source);
    relay_too_many_.inc();
    Verdict busy = unavailable(std::chrono::seconds(5));
    busy.reason = "Service Unavailable - Too Many Registrations In Progress";
    done(std::move(busy));
    return;
  }
  ++from_source;
  ++relays_in_flight_;
  if (!reachable_) probed_at_ = now;  // this REGISTER is the probe
  auto call = std::make_shared<RelayCall>();
  call->counted = true;
  call->request = std::move(request);
  call->done = std::move(done);
  relaySend(call);
  std::weak_ptr<bool> alive = alive_;
  deps_.layer->timers().schedule(config_.relay_timeout, [this, alive, call] {
    if (alive.expired() || call->answered) return;
    relay_unavailable_.inc();
    upstreamUnreachable("no answer to a relayed REGISTER within " +
                        std::to_string(config_.relay_timeout.count()) + " s");
    relayAnswer(*call, unavailable(config_.retry_after_failure));
  });
}

void EdgeUpstream::relayAnswer(RelayCall& call, Verdict verdict) {
  if (call.answered) return;
  call.answered = true;
  if (call.counted) {
    auto it = relays_by_source_.find(call.request.source);
    if (it != relays_by_source_.end() && --it->second == 0) relays_by_source_.erase(it);
    --relays_in_flight_;
  }
  call.done(std::move(verdict));
}

void EdgeUpstream::relaySend(std::shared_ptr<RelayCall> call) {
  const std::uint64_t seq = ++next_seq_;
  Sent sent;
  sent.relay = call;
  sent_[seq] = std::move(sent);
  withUpstream(
      [this, seq, call](const transport::SendTarget& hop) {
        const Request& r = call->request;
        // The devices this REGISTER is about, with the expiry asked for each.
        std::vector<std::pair<std::string, std::chrono::seconds>> contacts;  // user, expires
        {
          std::lock_guard lock(mu_);
          if (r.remove_all) {
            for (const auto& [key, d] : devices_) {
              if (d.aor == r.aor) contacts.emplace_back(d.user, std::chrono::seconds(0));
            }
          }
          for (const RegisterRelay::Device& rd : r.devices) {
            auto it = devices_.find(rd.key);
            std::chrono::seconds asked = call->asked.value_or(
                it != devices_.end() ? it->second.asked : config_.upstream_expires);
            contacts.emplace_back(edgeContactUser(rd.key),
                                  rd.removed ? std::chrono::seconds(0) : asked);
          }
        }
        call->users.clear();
        sip::Message m =
            sip::Message::makeRequest(sip::Method::kRegister, "REGISTER", r.request_uri);
        m.appendHeader("Max-Forwards", "70");
        m.appendHeader("From", r.from);
        m.appendHeader("To", r.to);
        m.appendHeader("Call-ID", r.call_id);
        m.appendHeader("CSeq", std::to_string(r.cseq) + " REGISTER");
        for (const auto& [user, expires] : contacts) {
          std::string why;
          std::optional<std::string> contact = contactFor(user, hop, &why);
          if (!contact) {
            relayFinished(seq, nullptr, why);
            return;
          }
          m.appendHeader("Contact", *contact + ";expires=" + std::to_string(expires.count()));
          call->users.push_back(user);
        }
        for (const std::string& v : r.authorization) m.appendHeader("Authorization", v);
        for (const std::string& v : r.proxy_authorization) {
          m.appendHeader("Proxy-Authorization", v);
        }
        if (!r.user_agent.empty()) m.appendHeader("User-Agent", r.user_agent);
        m.appendHeader("Content-Length", "0");
        transaction::RequestOptions options;
        options.user = this;
        options.user_data = seq;
        relay_upstream_.inc();
        SW_LOG_DEBUG("edge: relaying REGISTER {} (Call-ID {}, CSeq {}) upstream with {} contact(s)",
                     r.aor, r.call_id, r.cseq, contacts.size());
        auto out = deps_.layer->sendRequest(std::move(m), hop, options);
        if (!out) relayFinished(seq, nullptr, "not sent: " + out.status().message());
      },
      [this, seq](std::string why) { relayFinished(seq, nullptr, why); });
}

void EdgeUpstream::relayFinished(std::uint64_t seq, const sip::Message* response,
                                 const std::string& reason) {
  auto s = sent_.find(seq);
  if (s == sent_.end()) return;
  std::shared_ptr<RelayCall> call = std::move(s->second.relay);
  sent_.erase(s);
  const Request& r = call->request;
  if (response == nullptr || response->statusCode() == 503) {
    failed_.inc();
    upstreamUnreachable(response == nullptr ? reason : "503 from the upstream");
    relay_unavailable_.inc();
    relayAnswer(*call, unavailable(config_.retry_after_failure));
    return;
  }
  upstreamAnswered();
  const int status = response->statusCode();
  const TimePoint now = deps_.layer->timers().now();
  if (status >= 200 && status < 300) {
    registered_.inc();
    {
      std::lock_guard lock(mu_);
      if (r.remove_all) {
        std::vector<std::string> gone;
        for (const auto& [key, d] : devices_) {
          if (d.aor == r.aor) gone.push_back(key);
        }
        for (const std::string& key : gone) forget(key);
      }
      for (const RegisterRelay::Device& rd : r.devices) {
        if (rd.removed) {
          forget(rd.key);
          continue;
        }
        auto it = devices_.find(rd.key);
        if (it != devices_.end() && it->second.aor != r.aor) {
          // The device now belongs to another AOR: its old upstream binding lapses unrenewed.
          forget(rd.key);
          it = devices_.end();
        }
        Device& d = it != devices_.end() ? it->second : create(r.aor, rd.key, rd.push);
        d.push = d.push || rd.push;
        const std::chrono::seconds asked = call->asked.value_or(d.asked);
        d.asked = asked;
        std::optional<std::chrono::seconds> granted = grantedExpiry(*response, d.user, asked);
        if (!granted) {
          SW_LOG_WARN("edge: upstream {} answered 200 without sipwake's contact for {}",
                      config_.upstream_uri, d.aor);
        }
        d.granted = granted.value_or(asked);
        d.registered_at = now;
        d.failed_at.reset();
        d.relay_source = r.source;
        d.relay_call_id = r.call_id;
        d.relay_cseq = r.cseq;
      }
    }
    Verdict ok;
    ok.accepted = true;
    relayAnswer(*call, std::move(ok));
    return;
  }
  if (status == 423 && !call->asked) {
    // RFC 3261 §10.2.8: the upstream wants a longer expiry than sipwake asked for its contact
    // (the phone's own expiry is not at stake): asked again, once, with the same credentials.
    if (const sip::HeaderField* h = response->find(sip::HeaderId::kMinExpires)) {
      if (auto v = sip::parseDeltaSeconds(h->value); v && *v > 0) {
        too_brief_.inc();
        call->asked = std::chrono::seconds(*v);
        SW_LOG_INFO("edge: upstream {} wants expires >= {} (423); asking that for {}",
                    config_.upstream_uri, *v, r.aor);
        relaySend(call);
        return;
      }
    }
  }
  Verdict refused;
  if (status == 423) {
    // The Min-Expires is about sipwake's contact, not the phone's: not the phone's to act on.
    failed_.inc();
    refused.status = 500;
    refused.reason = "Server Internal Error - Upstream Refused The Expiry Of The Edge Contact";
  } else {
    if (status == 401 || status == 407) {
      relay_challenges_.inc();
    } else {
      failed_.inc();
      SW_LOG_INFO("edge: upstream {} answered {} {} to the REGISTER of {}", config_.upstream_uri,
                  status, response->reasonPhrase(), r.aor);
    }
    refused.status = status;
    refused.reason = std::string(response->reasonPhrase());
    if (refused.reason.empty()) refused.reason = "Refused By The Upstream Registrar";
    for (const sip::HeaderField& h : response->headers()) {
      if (!h.removed && relayedHeader(h)) refused.headers.emplace_back(h.name, h.value);
    }
  }
  relayAnswer(*call, std::move(refused));
}

void EdgeUpstream::sendProbe() {
  probed_at_ = deps_.layer->timers().now();
  const std::uint64_t seq = ++next_seq_;
  Sent sent;
  sent.probe = true;
  sent_[seq] = std::move(sent);
  withUpstream(
      [this, seq](const transport::SendTarget& hop) {
        auto uri = sip::parseUri(config_.upstream_uri);
        std::string target = "sip:" + std::string(uri->host);
        if (uri->port != 0) target += ":" + std::to_string(uri->port);
        std::string why;
        std::optional<std::string> contact = contactFor("sipwake", hop, &why);
        if (!contact) {
          finished(seq, Outcome{0, why, {}, {}});
          return;
        }
        sip::Message m = sip::Message::makeRequest(sip::Method::kOptions, "OPTIONS", target);
        const std::string self = contact->substr(1, contact->size() - 2);
        m.appendHeader("Max-Forwards", "70");
        m.appendHeader("From", "<" + self + ">;tag=" + deps_.layer->newTag());
        m.appendHeader("To", "<" + target + ">");
        m.appendHeader("Call-ID", deps_.layer->newTag() + deps_.layer->newTag() + "@edge.sipwake");
        m.appendHeader("CSeq", "1 OPTIONS");
        m.appendHeader("Content-Length", "0");
        transaction::RequestOptions options;
        options.user = this;
        options.user_data = seq;
        auto out = deps_.layer->sendRequest(std::move(m), hop, options);
        if (!out) finished(seq, Outcome{0, "not sent: " + out.status().message(), {}, {}});
      },
      [this, seq](std::string why) {
        finished(seq, Outcome{0, std::move(why), {}, {}});
      });
}

std::optional<push::PushTarget> EdgeUpstream::refreshDue(Device& d, TimePoint now) {
  // Once per upstream registration (the phone's next REGISTER through the upstream sets a new
  // registered_at).
  if (!d.registered_at || !schedule_.due(now, d.registered_at, d.granted, std::nullopt)) {
    return std::nullopt;
  }
  if (d.refresh_pushed_at && *d.refresh_pushed_at >= *d.registered_at) return std::nullopt;
  return refreshTarget(d, now);
}

std::optional<push::PushTarget> EdgeUpstream::refreshTarget(Device& d, TimePoint now) {
  // Never more often than Apple's background budget allows.
  if (deps_.sender == nullptr || !d.push) return std::nullopt;
  if (d.refresh_pushed_at && now < *d.refresh_pushed_at + push::kMinRefreshPushInterval) {
    return std::nullopt;
  }
  auto record = deps_.push_store->lookupPushDevice(d.key);
  if (!record || record->aor != d.aor) return std::nullopt;
  std::optional<push::PushBinding> binding = std::move(record->binding);
  d.refresh_pushed_at = now;
  push::PushTarget target;
  target.binding = std::move(*binding);
  target.aor = d.aor;
  target.device_key = d.key;
  return target;
}

void EdgeUpstream::sendRefresh(const push::PushTarget& target) {
  refresh_pushes_.inc();
  SW_LOG_INFO("edge: refresh push to device {} of {} (its binding at {})", target.device_key,
              target.aor, config_.upstream_uri);
  Counter& failed = refresh_push_failed_;
  deps_.sender->send(target, push::refreshEvent(target.aor), push::PushKind::kRefresh,
                     [&failed, key = target.device_key](push::PushOutcome outcome) {
                       if (outcome.kind == push::PushOutcome::Kind::kOk) return;
                       failed.inc();
                       SW_LOG_WARN(
                           "edge: refresh push to device {} failed ({}: {}); its binding "
                           "at the upstream lapses unless the phone registers",
                           key, push::pushOutcomeName(outcome.kind), outcome.reason);
                     });
}

void EdgeUpstream::refreshAfterOutage() {
  std::size_t n = 0;
  {
    std::lock_guard lock(mu_);
    for (auto& [key, d] : devices_) {
      // The upstream may have lost the binding: the device's next REGISTER goes there.
      d.registered_at.reset();
      if (!d.push) continue;
      refresh_queue_.push_back(key);
      ++n;
    }
  }
  SW_LOG_INFO("edge: upstream {} back; waking {} devices to register there again",
              config_.upstream_uri, n);
  pumpRefreshes();
}

void EdgeUpstream::pumpRefreshes() {
  const TimePoint now = deps_.layer->timers().now();
  std::vector<push::PushTarget> out;
  {
    std::lock_guard lock(mu_);
    while (!refresh_queue_.empty() && out.size() < config_.upstream_rate) {
      auto it = devices_.find(refresh_queue_.front());
      refresh_queue_.pop_front();
      if (it == devices_.end()) continue;
      if (auto target = refreshTarget(it->second, now)) out.push_back(std::move(*target));
    }
  }
  for (const push::PushTarget& t : out) sendRefresh(t);
  if (refresh_queue_.empty() || refresh_pump_armed_) return;
  refresh_pump_armed_ = true;
  std::weak_ptr<bool> alive = alive_;
  deps_.layer->timers().schedule(std::chrono::seconds(1), [this, alive] {
    if (alive.expired()) return;
    refresh_pump_armed_ = false;
    pumpRefreshes();
  });
}

}  // namespace sipwake::routing
