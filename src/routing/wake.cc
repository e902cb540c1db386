#include "routing/wake.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <utility>

#include "common/log.h"
#include "registrar/services.h"
#include "routing/proxy.h"
#include "sip/chars.h"

namespace sipwake::routing {
namespace {

// RFC 3994 "is typing" indication: a passing state of a conversation in progress, not a message
// to wake a phone for or to keep.
bool isComposingIndication(const sip::Message& request) {
  const sip::HeaderField* type = request.find(sip::HeaderId::kContentType);
  if (type == nullptr) return false;
  std::string_view v = type->value;
  v = v.substr(0, v.find(';'));
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return sip::detail::iequals(v, "application/im-iscomposing+xml");
}

std::int64_t msSince(TimePoint start, TimePoint now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count();
}

const StatCounter kMessageStored{"message.stored"};
const StatCounter kMessageUserStoreFull{"message.refused.user_store_full"};
const StatCounter kMessageStoreFull{"message.refused.store_full"};

// push.{what}.{provider} of each binding provider (apns, fcm, webpush), resolved at start-up.
struct ProviderCounters {
  explicit ProviderCounters(std::string_view what)
      : by_provider{StatCounter(std::string(what) + ".apns"),
                    StatCounter(std::string(what) + ".fcm"),
                    StatCounter(std::string(what) + ".webpush")} {}
  const StatCounter& operator[](push::Provider p) const {
    return by_provider[static_cast<std::size_t>(p)];
  }
  StatCounter by_provider[3];
};
const ProviderCounters kBindingsRemoved{"push.bindings_removed"};
const ProviderCounters kRepushed{"push.repushed"};
// Requests held by every WakeAndWait (waiting for a device, or kept until their context ends).
Gauge& kParkedRequests = Stats::global().gauge("wake.parked_requests");
// The stages of a wake-up (wake.latency.{stage}), per device pushed by the parked request.
Histogram& kStagePushSent = Stats::global().histogram("wake.latency.push_sent");
Histogram& kStageAnswered = Stats::global().histogram("wake.latency.provider_answered");
Histogram& kStageRegistered = Stats::global().histogram("wake.latency.registered");
Histogram& kStageRequestOut = Stats::global().histogram("wake.latency.request_out");
Histogram& kStageTotal = Stats::global().histogram("wake.latency.total");

std::string shortKey(std::string_view device_key) { return std::string(device_key.substr(0, 8)); }

// The start of a text/* MESSAGE body for the push preview; empty for any other body.
std::string messagePreview(const sip::Message& request) {
  const sip::HeaderField* h = request.find(sip::HeaderId::kContentType);
  std::string_view type = h != nullptr ? h->value : std::string_view();
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  if (type.size() < 5 || !std::equal(type.begin(), type.begin() + 5, "text/", [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == b;
      }))
    return {};
  return push::truncateUtf8(request.body(), push::kMaxPreviewBytes);
}

std::string_view headerValue(const sip::Message& m, sip::HeaderId id) {
  const sip::HeaderField* h = m.find(id);
  return h != nullptr ? h->value : std::string_view();
}

// What the store keeps of a MESSAGE (devices and times are filled when it is stored).
location::StoredMessage storedMessage(const sip::Message& request, const std::string& aor) {
  location::StoredMessage m;
  m.aor = aor;
  m.from = std::string(headerValue(request, sip::HeaderId::kFrom));
  m.to = std::string(headerValue(request, sip::HeaderId::kTo));
  m.call_id = std::string(request.callId());
  m.content_type = std::string(headerValue(request, sip::HeaderId::kContentType));
  m.body = std::string(request.body());
  return m;
}

// Stores `m` (devices set) for `ttl`; the answer for its sender: 202, the full store's answer,
// or none (Fallback code 0) when the store failed.
Proxy::Fallback keepMessage(location::MessageStore& store, location::StoredMessage m, Duration ttl,
                            Duration wait, location::SysSeconds now, std::int64_t& stored_id) {
  m.stored_at = now;
  m.expires_at = now + std::chrono::duration_cast<std::chrono::seconds>(ttl);
  auto id = store.add(std::move(m));
  if (id) {
    stored_id = *id;
    kMessageStored.inc();
    return Proxy::Fallback{202, "Accepted", 0};
  }
  if (id.status().code() != StatusCode::kOutOfRange) {
    SW_LOG_WARN("wake: MESSAGE not stored: {}", id.status().toString());
    return {};
  }
  if (id.status().message() == location::kMessageStoreUserFull) {
    kMessageUserStoreFull.inc();
    return Proxy::Fallback{486, "Busy Here - Message Store Full", 0};
  }
  kMessageStoreFull.inc();
  return Proxy::Fallback{
      503, "Service Unavailable - Message Store Full",
      static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(wait).count())};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// WakeHub

std::string WakeHub::instanceKey(std::string_view aor, std::string_view instance) {
  std::string k = "i:";
  k.append(aor).push_back('\n');
  k.append(instance);
  return k;
}

std::string WakeHub::deviceKey(std::string_view device_key) {
  return "d:" + std::string(device_key);
}

void WakeHub::attach(std::size_t loop, location::Executor post, WakeAndWait* wake) {
  std::lock_guard lock(mu_);
  if (loops_.size() <= loop) loops_.resize(loop + 1);
  loops_[loop] = Loop{std::move(post), wake};
}

void WakeHub::expect(const std::string& key, std::size_t loop, ContextId id) {
  std::lock_guard lock(mu_);
  waiting_.emplace(key, Waiter{loop, id});
}

void WakeHub::forget(const std::string& key, std::size_t loop, ContextId id) {
  std::lock_guard lock(mu_);
  auto [b, e] = waiting_.equal_range(key);
  for (auto it = b; it != e; ++it) {
    if (it->second.loop == loop && it->second.id == id) {
      waiting_.erase(it);
      return;
    }
  }
}

void WakeHub::onRegistered(std::string_view aor, const location::Binding& binding,
                           const transport::ReceivedMessage& /*request*/) {
  release(aor, binding);
}

std::size_t WakeHub::onRegisteredElsewhere(const location::LocationStore& store,
                                           std::string_view aor,
                                           const std::vector<std::string>& device_keys,
                                           location::SysSeconds now) {
  std::vector<location::Binding> bindings;  // read once, only when a device is waited for
  std::size_t released = 0;
  for (const std::string& device : device_keys) {
    {
      std::lock_guard lock(mu_);
      if (!waiting_.contains(deviceKey(device))) continue;
    }
    std::optional<location::PushRecord> rec = store.lookupPushDevice(device);
    if (!rec || rec->aor != aor || rec->expires_at <= now) continue;
    if (bindings.empty()) bindings = store.lookup(aor, now);
    for (const location::Binding& b : bindings) {
      if (location::bindingKey(b) == rec->binding_key) released += release(aor, b);
    }
  }
  return released;
}

std::size_t WakeHub::release(std::string_view aor, const location::Binding& binding) {
  std::vector<std::string> keys;
  if (!binding.instance_id.empty()) keys.push_back(instanceKey(aor, binding.instance_id));
  if (binding.push) keys.push_back(deviceKey(binding.push->deviceKey()));
  if (keys.empty()) return 0;
  struct Hit {
    Loop loop;
    ContextId id;
    std::string key;
  };
  std::vector<Hit> hits;
  {
    std::lock_guard lock(mu_);
    for (const std::string& k : keys) {
      auto [b, e] = waiting_.equal_range(k);
      for (auto it = b; it != e; ++it) {
        const Waiter& w = it->second;
        if (w.loop >= loops_.size() || loops_[w.loop].wake == nullptr) continue;
        bool dup = std::any_of(hits.begin(), hits.end(), [&](const Hit& h) {
          return h.loop.wake == loops_[w.loop].wake && h.id == w.id;
        });
        if (!dup) hits.push_back(Hit{loops_[w.loop], w.id, k});
      }
    }
  }
  // Posted, never called inline: the registrar is mid-callback and the parked call may live on
  // another loop.
  for (Hit& h : hits) {
    WakeAndWait* wake = h.loop.wake;
    h.loop.post([wake, id = h.id, key = std::move(h.key), binding] {
      wake->onDeviceRegistered(id, key, binding);
    });
  }
  return hits.size();
}

// ---------------------------------------------------------------------------------------------
// WakeAndWait

struct WakeAndWait::Device {
  enum class State : std::uint8_t { kPushing, kWaiting, kForked, kFailed };
  push::PushTarget target;
  std::vector<std::string> keys;  // hub keys
  State state = State::kPushing;
  int attempts = 0;
  int repushes = 0;       // re-pushes sent (RepushPolicy)
  bool accepted = false;  // the provider accepted a push for it
  TimePoint pushed_at{};
  std::optional<TimePoint> answered_at;  // the provider's first answer
  TimePoint registered_at{};  // its REGISTER
  TimerService::TimerId retry_timer = 0;
  std::string branch_key;  // kForked: Target::binding_key of its branch
  // This request pushed it; false: another copy of the call (same Call-ID) did, this one only
  // waits for its REGISTER and sends it no missed-call / cancel push.
  bool pushed = false;
  // push_connected_devices: binding keys of the live contacts the request was forked to at once.
  std::vector<std::string> live_keys;

  bool answered(const ContextEnd& end) const {
    if (end.answered_by.empty()) return false;
    if (state == State::kForked && branch_key == end.answered_by) return true;
    return std::find(live_keys.begin(), live_keys.end(), end.answered_by) != live_keys.end();
  }
};

struct WakeAndWait::Parked {
  ContextId id = 0;
  bool invite = true;
  push::CallEvent event;
  TimePoint start{};
  TimePoint deadline{};
  bool waiting = true;  // the proxy still expects branches from us
  TimerService::TimerId ring_timer = 0;
  TimerService::TimerId cleanup_timer = 0;
  std::vector<Device> devices;
  Timeline timeline;
  bool ring_timed_out = false;
  bool drained = false;  // the server stopped waiting for it (SIGTERM)
  WakeLimits::Slot slot;  // its share of the parked bounds
  std::optional<location::StoredMessage> message;  // MESSAGE with a store: what to keep
  std::int64_t stored_id = 0;                      // kept in the store under this id
};

// A finished call whose VoIP-pushed devices never registered (CallKit grace window).
struct WakeAndWait::Ended {
  push::CallEvent event;
  std::vector<Device> devices;
  std::vector<bool> resent;
  TimerService::TimerId grace_timer = 0;
};

WakeAndWait::WakeAndWait(WakeConfig config, Deps deps)
    : config_(std::move(config)),
      deps_(std::move(deps)),
      alive_(std::make_shared<bool>(true)),
      parked_total_(Stats::global().counter("wake.parked")),
      forked_(Stats::global().counter("wake.forked_to_woken_device")),
      duplicate_registers_(Stats::global().counter("wake.duplicate_registers")),
      ring_timeouts_(Stats::global().counter("wake.ring_timeouts")),
      late_registers_(Stats::global().counter("wake.late_registers")),
      superseded_(Stats::global().counter("wake.superseded_live_branches")),
      taken_over_(Stats::global().counter("wake.taken_over_live_branches")),
      repushes_(Stats::global().counter("wake.repushes")),
      woken_after_repush_(Stats::global().counter("wake.woken_after_repush")) {
  SIPWAKE_CHECK(deps_.inner != nullptr && deps_.push_store != nullptr && deps_.sender != nullptr &&
                deps_.hub != nullptr && deps_.limits != nullptr && deps_.post != nullptr &&
                deps_.timers != nullptr);
  if (!deps_.wall_clock) deps_.wall_clock = registrar::systemWallClock;
  deps_.hub->attach(deps_.loop, deps_.post, this);
}

WakeAndWait::~WakeAndWait() {
  deps_.hub->attach(deps_.loop, deps_.post, nullptr);
  kParkedRequests.add(-static_cast<std::int64_t>(parked_.size()));
  for (auto& [id, p] : parked_) {
    if (p->ring_timer != 0) deps_.timers->cancel(p->ring_timer);
    if (p->cleanup_timer != 0) deps_.timers->cancel(p->cleanup_timer);
    for (Device& d : p->devices) {
      if (d.retry_timer != 0) deps_.timers->cancel(d.retry_timer);
    }
    forgetKeys(*p);
  }
  for (auto& [id, e] : ended_) {
    if (e->grace_timer != 0) deps_.timers->cancel(e->grace_timer);
    for (const Device& d : e->devices) {
      for (const std::string& k : d.keys) deps_.hub->forget(k, deps_.loop, id);
    }
  }
}

// The per-call timeline is logged at info and kept by the recorder: callers skip building its
// strings (a few allocations per event, ~10 µs per woken call) when neither wants it.
bool WakeAndWait::timelineOn() const {
  return deps_.timelines != nullptr ||
         spdlog::default_logger_raw()->should_log(spdlog::level::info);
}

TimelineStep& WakeAndWait::mark(Parked& p, std::string what, std::string text, const Device* d) {
  TimelineStep& s = p.timeline.steps.emplace_back();
  s.ms = msSince(p.start, deps_.timers->now());
  s.what = std::move(what);
  s.text = std::move(text);
  if (d != nullptr) {
    s.device_key = d->target.device_key;
    s.provider = std::string(push::providerName(d->target.binding.provider));
  }
  return s;
}

Resolution WakeAndWait::resolve(ContextId context, const sip::Uri& uri) {
  Resolution r = deps_.inner->resolve(context, uri);
  for (Target& t : r.targets) t.uri = registrar::stripPushUriParams(t.uri);
  return r;
}

Resolution WakeAndWait::resolveRequest(ContextId context, const sip::Message& request,
                                       const RequestOrigin& origin) {
  const sip::Uri& uri = request.requestUri();
  Resolution r = resolve(context, uri);
  if (r.outcome == Resolution::Outcome::kUnknownUser) return r;
  const bool invite = request.method() == sip::Method::kInvite;
  if (!invite && request.method() != sip::Method::kMessage) return r;
  if (!invite && isComposingIndication(request)) return r;
  auto aor = registrar::canonicalAor(uri);
  if (!aor) return r;
  const location::SysSeconds wall = deps_.wall_clock();
  std::vector<location::PushRecord> records = deps_.push_store->lookupPush(*aor, wall);
  if (records.empty()) return r;
  return park(context, request, origin, *aor, std::move(records), std::move(r), false);
}

std::vector<std::string> WakeAndWait::liveKeysOf(const location::PushRecord& rec,
                                                 const std::vector<Target>& targets) {
  const std::string instance =
      rec.identity.starts_with("i:") ? rec.identity.substr(2) : std::string();
  std::vector<std::string> out;
  for (const Target& t : targets) {
    if (t.binding_key == rec.binding_key ||
        (!instance.empty() && t.binding_key.starts_with("i:" + instance + "\n"))) {
      out.push_back(t.binding_key);
    }
  }
  return out;
}

Resolution WakeAndWait::park(ContextId context, const sip::Message& request,
                             const RequestOrigin& origin, const std::string& aor_text,
                             std::vector<location::PushRecord> records, Resolution r,
                             bool mid_dialog) {
  const std::string* aor = &aor_text;
  const bool invite = request.method() == sip::Method::kInvite;
  auto p = std::make_unique<Parked>();
  for (location::PushRecord& rec : records) {
    const std::string instance =
        rec.identity.starts_with("i:") ? rec.identity.substr(2) : std::string();
    Device d;
    d.live_keys = liveKeysOf(rec, r.targets);
    if (!d.live_keys.empty() && !config_.push_connected_devices) continue;
    d.target.binding = std::move(rec.binding);
    d.target.aor = *aor;
    d.target.device_key = rec.device_key;
    if (!instance.empty()) d.keys.push_back(WakeHub::instanceKey(*aor, instance));
    d.keys.push_back(WakeHub::deviceKey(rec.device_key));
    p->devices.push_back(std::move(d));
  }
  if (p->devices.empty()) return r;

  WakeLimits::Request ask;
  ask.aor = *aor;
  ask.call_id = request.callId();
  // Mid-dialog: every request of the dialog has the Call-ID of the call that may have pushed the
  // device already; one push per device per transaction of the dialog instead.
  std::string transaction_key;
  if (mid_dialog) {
    transaction_key = std::string(request.callId()) + "\ncseq ";
    if (const auto& cseq = request.cseq()) transaction_key += std::to_string(cseq->number);
    ask.call_id = transaction_key;
  }
  ask.trust = origin.trust;
  ask.source_ip = origin.source_ip;
  ask.now = deps_.timers->now();
  std::vector<std::string> device_keys;
  device_keys.reserve(p->devices.size());
  for (const Device& d : p->devices) device_keys.push_back(d.target.device_key);
  WakeLimits::Admission admitted = deps_.limits->admit(ask, device_keys);
  std::vector<Device> kept;
  for (std::size_t i = 0; i < p->devices.size(); ++i) {
    if (admitted.devices[i] == WakeLimits::Verdict::kSkip) continue;
    p->devices[i].pushed = admitted.devices[i] == WakeLimits::Verdict::kPush;
    if (!p->devices[i].pushed) p->devices[i].state = Device::State::kWaiting;
    kept.push_back(std::move(p->devices[i]));
  }
  p->devices = std::move(kept);
  if (p->devices.empty()) {
    // Live contacts still get the request; with none, the caller learns which limit it hit.
    if (!r.targets.empty() || admitted.status == 0) return r;
    Resolution refused;
    if (!invite && !mid_dialog && admitted.status == 480 && deps_.message_store != nullptr) {
      // A MESSAGE over the push budget is kept without a push, for the next registrations.
      location::StoredMessage m = storedMessage(request, *aor);
      m.devices = std::move(device_keys);
      std::int64_t stored_id = 0;
      Proxy::Fallback answer =
          keepMessage(*deps_.message_store, std::move(m), config_.message_ttl,
                      config_.non_invite_timeout, deps_.wall_clock(), stored_id);
      if (answer.code != 0) {
        refused.outcome = Resolution::Outcome::kRefused;  // answered here: 202 or a full store
        refused.status = answer.code;
        refused.reason = std::move(answer.reason);
        refused.retry_after_s = answer.retry_after_s;
        return refused;
      }
    }
    refused.outcome = Resolution::Outcome::kRefused;
    refused.status = admitted.status;
    refused.reason = std::move(admitted.reason);
    refused.retry_after_s = admitted.retry_after_s;
    return refused;
  }
  p->slot = std::move(admitted.slot);

  parked_total_.inc();
  p->id = context;
  p->invite = invite;
  p->start = deps_.timers->now();
  p->deadline = p->start + (invite ? config_.ring_timeout : config_.non_invite_timeout);
  p->event.kind = invite ? push::CallEventKind::kCall : push::CallEventKind::kMessage;
  if (mid_dialog && !invite) p->event = push::refreshEvent(*aor);  // the push kind: below
  if (!invite && !mid_dialog && config_.message_preview) p->event.preview = messagePreview(request);
  if (!invite && !mid_dialog && deps_.message_store != nullptr) {
    p->message = storedMessage(request, *aor);
  }
  p->event.call_id = std::string(request.callId());
  p->event.callee_aor = *aor;
  p->event.call_uuid = push::deriveCallUuid(p->event.call_id, *aor, config_.uuid_salt);
  if (auto from = request.from()) {
    p->event.caller_uri = std::string(from->uri.text);
    p->event.caller_display_name = std::string(from->display_name);
  }
  if (timelineOn()) {
    Timeline& t = p->timeline;
    t.call_id = p->event.call_id;
    t.caller = p->event.caller_uri;
    t.callee = *aor;
    t.method = std::string(request.methodText());
    t.start_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    mark(*p, t.method + " parked",
         (mid_dialog ? "mid-dialog " + t.method + " (PURR)" : t.method) + " in (" +
             std::to_string(r.targets.size()) + " live contacts)");
  }
  for (const Device& d : p->devices) {
    for (const std::string& k : d.keys) deps_.hub->expect(k, deps_.loop, context);
  }
  std::weak_ptr<bool> alive = alive_;
  p->ring_timer = deps_.timers->schedule(p->deadline - p->start, [this, alive, context] {
    if (!alive.expired()) onRingTimeout(context);
  });
  std::vector<std::size_t> to_push;
  for (std::size_t i = 0; i < p->devices.size(); ++i) {
    if (p->devices[i].pushed) to_push.push_back(i);
  }
  if (parked_.insert_or_assign(context, std::move(p)).second) kParkedRequests.add(1);
  // RFC 8599 §6, mid-dialog: a re-INVITE is the device's call (the VoIP push reports that call,
  // same call_uuid); any other request wakes the app with a refresh push (never VoIP), after
  // which it registers and gets the request.
  const push::PushKind kind = invite       ? push::PushKind::kCall
                              : mid_dialog ? push::PushKind::kRefresh
                                           : push::PushKind::kMessage;
  for (std::size_t i : to_push) sendPush(context, i, kind);
  r.outcome = Resolution::Outcome::kTargets;
  r.more_may_come = true;
  // The pushes are with the sender. Never inside a dialog: a 180 to a re-INVITE means nothing.
  if (invite && !mid_dialog) r.provisional = config_.parked_provisional;
  return r;
}

void WakeAndWait::sendPush(ContextId id, std::size_t index, push::PushKind kind) {
  auto it = parked_.find(id);
  if (it == parked_.end()) return;
  Parked& p = *it->second;
  Device& d = p.devices[index];
  d.retry_timer = 0;
  ++d.attempts;
  if (d.attempts == 1) {
    d.pushed_at = deps_.timers->now();
    kStagePushSent.observe(msSince(p.start, d.pushed_at));
  }
  if (timelineOn())
    mark(p, "push sent",
         "push " + std::string(push::pushKindName(kind)) + " sent to " +
             shortKey(d.target.device_key) +
             (d.attempts > 1 ? " (attempt " + std::to_string(d.attempts) + ")" : ""),
         &d);
  std::weak_ptr<bool> alive = alive_;
  location::Executor post = deps_.post;
  deps_.sender->send(d.target, p.event, kind,
                     [this, alive, post, id, index, kind](push::PushOutcome out) {
                       post([this, alive, id, index, kind, out = std::move(out)]() mutable {
                         if (!alive.expired()) onPushDone(id, index, kind, std::move(out));
                       });
                     });
}

void WakeAndWait::onPushDone(ContextId id, std::size_t index, push::PushKind kind,
                             push::PushOutcome out) {
  auto it = parked_.find(id);
  if (it == parked_.end()) return;  // the call ended meanwhile (its cancel push covers it)
  Parked& p = *it->second;
  Device& d = p.devices[index];
  if (timelineOn()) {
    TimelineStep& s =
        mark(p, "provider answered",
             "provider answer " + std::string(push::pushOutcomeName(out.kind)) +
                 (out.provider_status != 0 ? " " + std::to_string(out.provider_status) : "") +
                 (out.reason.empty() ? "" : " " + out.reason) + " for " +
                 shortKey(d.target.device_key),
             &d);
    s.status = out.provider_status;
    s.reason = out.reason;
    s.outcome = std::string(push::pushOutcomeName(out.kind));
  }
  if (!d.answered_at) {
    d.answered_at = deps_.timers->now();
    kStageAnswered.observe(msSince(d.pushed_at, *d.answered_at));
  }
  if (out.kind == push::PushOutcome::Kind::kOk) {
    if (d.state == Device::State::kPushing) d.state = Device::State::kWaiting;
    d.accepted = true;
    scheduleRepush(p, index, kind);
    return;
  }
  if (d.state == Device::State::kForked) return;  // it registered anyway
  if (out.kind == push::PushOutcome::Kind::kTransient && p.waiting) {
    Duration backoff = out.retry_after.count() > 0
                           ? Duration(out.retry_after)
                           : config_.retry_backoff * (1 << std::min(d.attempts - 1, 4));
    if (deps_.timers->now() + backoff < p.deadline) {
      std::weak_ptr<bool> alive = alive_;
      d.retry_timer = deps_.timers->schedule(backoff, [this, alive, id, index, kind] {
        if (!alive.expired()) sendPush(id, index, kind);
      });
      return;
    }
  }
  if (out.kind == push::PushOutcome::Kind::kRemoveBinding) {
    std::optional<location::SysSeconds> since;
    if (out.invalid_since) since = *out.invalid_since;
    // Through the location writer (committed with registrations, off this loop).
    deps_.push_store->removePushDevice(
        d.target.aor, d.target.device_key, since, deps_.wall_clock(), deps_.post,
        [provider = d.target.binding.provider, key = shortKey(d.target.device_key),
         aor = d.target.aor, reason = out.reason](Status s) {
          if (!s) {
            SW_LOG_WARN("wake: push binding {} of {} not removed: {}", key, aor, s.message());
            return;
          }
          kBindingsRemoved[provider].inc();
          SW_LOG_INFO("wake: push binding {} of {} removed: {}", key, aor, reason);
        });
  }
  // A refused re-push: the earlier accepted push may still wake the device.
  if (d.accepted && out.kind != push::PushOutcome::Kind::kRemoveBinding) return;
  d.state = Device::State::kFailed;
  maybeStopWaiting(p);  // may end the context: `p` must not be used afterwards
}

void WakeAndWait::scheduleRepush(Parked& p, std::size_t index, push::PushKind kind) {
  Device& d = p.devices[index];
  if (!p.waiting || !d.pushed || d.state != Device::State::kWaiting || d.retry_timer != 0) return;
  const TimePoint now = deps_.timers->now();
  auto at = config_.repush.next(d.target.binding.provider, d.repushes, now, p.deadline);
  if (!at) return;
  std::weak_ptr<bool> alive = alive_;
  const ContextId id = p.id;
  d.retry_timer = deps_.timers->schedule(*at - now, [this, alive, id, index, kind] {
    if (!alive.expired()) repush(id, index, kind);
  });
}

void WakeAndWait::repush(ContextId id, std::size_t index, push::PushKind kind) {
  auto it = parked_.find(id);
  if (it == parked_.end()) return;
  Parked& p = *it->second;
  Device& d = p.devices[index];
  d.retry_timer = 0;
  if (!p.waiting || d.state != Device::State::kWaiting) return;
  // push_connected_devices: a device that rings (or declined) on its old contact is awake.
  for (const std::string& live : d.live_keys) {
    if (proxy_ != nullptr && proxy_->branchProgress(id, live) == BranchProgress::kReached) return;
  }
  ++d.repushes;
  repushes_.inc();
  kRepushed[d.target.binding.provider].inc();
  if (timelineOn())
    mark(p, "re-push",
         "no REGISTER from " + shortKey(d.target.device_key) + ": re-push " +
             std::to_string(d.repushes) + " of " + std::to_string(config_.repush.max_repushes),
         &d);
  sendPush(id, index, kind);
}

void WakeAndWait::maybeStopWaiting(Parked& p) {
  if (!p.waiting) return;
  for (const Device& d : p.devices) {
    if (d.state == Device::State::kPushing || d.state == Device::State::kWaiting) return;
  }
  p.waiting = false;
  if (p.ring_timer != 0) deps_.timers->cancel(p.ring_timer);
  p.ring_timer = 0;
  const ContextId id = p.id;
  if (proxy_ != nullptr) proxy_->noMoreBranches(id);
}

void WakeAndWait::onRingTimeout(ContextId id) { endWait(id, false); }

std::size_t WakeAndWait::stopWaitingAll() {
  std::vector<ContextId> waiting;
  for (const auto& [id, p] : parked_) {
    if (p->waiting) waiting.push_back(id);
  }
  for (ContextId id : waiting) endWait(id, true);  // may end contexts (and erase from parked_)
  return waiting.size();
}

void WakeAndWait::endWait(ContextId id, bool draining) {
  auto it = parked_.find(id);
  if (it == parked_.end()) return;
  Parked& p = *it->second;
  if (p.ring_timer != 0) deps_.timers->cancel(p.ring_timer);
  p.ring_timer = 0;
  p.waiting = false;
  if (!draining) {
    ring_timeouts_.inc();
    p.ring_timed_out = true;
  } else {
    p.drained = true;
  }
  if (timelineOn()) {
    const char* what = draining ? "server stopping" : "ring timeout";
    mark(p, what, what);
  }
  for (Device& d : p.devices) {
    if (d.retry_timer != 0) deps_.timers->cancel(d.retry_timer);
    d.retry_timer = 0;
  }
  scheduleCleanup(p);
  if (proxy_ == nullptr) return;
  if (p.message) return storeMessageAndStop(p);  // may end the context
  proxy_->noMoreBranches(id);                    // may end the context
}

void WakeAndWait::storeMessageAndStop(Parked& p) {
  location::StoredMessage m = std::move(*p.message);
  p.message.reset();
  // Every push device of the user but those the request reached.
  for (const location::PushRecord& r : deps_.push_store->lookupPush(m.aor, deps_.wall_clock())) {
    const bool forked = std::any_of(p.devices.begin(), p.devices.end(), [&](const Device& d) {
      return d.state == Device::State::kForked && d.target.device_key == r.device_key;
    });
    if (!forked) m.devices.push_back(r.device_key);
  }
  const ContextId id = p.id;
  if (m.devices.empty()) return proxy_->noMoreBranches(id);
  Proxy::Fallback answer = keepMessage(*deps_.message_store, std::move(m), config_.message_ttl,
                                       config_.non_invite_timeout, deps_.wall_clock(), p.stored_id);
  answer.at_once = true;  // the wait is over: a silent live branch must not hold the answer
  if (timelineOn()) {
    mark(p, p.stored_id != 0 ? "stored" : "not stored",
         p.stored_id != 0 ? "stored as message " + std::to_string(p.stored_id)
                          : "not stored: " + std::to_string(answer.code));
  }
  proxy_->noMoreBranches(id, std::move(answer));  // may end the context
}

// Branches forked before the ring timeout may ring on (Timer C restarts with each provisional),
// and the context tells us when it ends. Only if the proxy has no such context (it answered
// the request itself after resolving) would nothing end it: then the state is dropped.
void WakeAndWait::scheduleCleanup(Parked& p) {
  std::weak_ptr<bool> alive = alive_;
  const ContextId id = p.id;
  p.cleanup_timer = deps_.timers->schedule(seconds(200), [this, alive, id] {
    if (alive.expired()) return;
    auto found = parked_.find(id);
    if (found == parked_.end()) return;
    Parked& parked = *found->second;
    parked.cleanup_timer = 0;
    if (proxy_ != nullptr && proxy_->hasContext(id)) return scheduleCleanup(parked);
    forgetKeys(parked);
    parked_.erase(found);
    kParkedRequests.add(-1);
  });
}

void WakeAndWait::onDeviceRegistered(ContextId id, const std::string& key,
                                     const location::Binding& binding) {
  auto it = parked_.find(id);
  if (it == parked_.end()) {
    auto e = ended_.find(id);
    if (e == ended_.end()) return;
    Ended& ended = *e->second;
    for (std::size_t i = 0; i < ended.devices.size(); ++i) {
      const Device& d = ended.devices[i];
      if (ended.resent[i] || std::find(d.keys.begin(), d.keys.end(), key) == d.keys.end()) continue;
      // CallKit rule: the app reported the call from its VoIP push and is now running; tell it
      // again that the call is over (same call_uuid), never as a VoIP push.
      ended.resent[i] = true;
      late_registers_.inc();
      push::CallEvent ev = ended.event;
      ev.kind = push::CallEventKind::kCancel;
      SW_LOG_INFO("wake: device {} registered after call {} ended: cancel push sent again",
                  shortKey(d.target.device_key), ev.call_id);
      deps_.sender->send(d.target, ev, push::PushKind::kCancel, [](push::PushOutcome) {});
    }
    return;
  }
  Parked& p = *it->second;
  auto dev = std::find_if(p.devices.begin(), p.devices.end(), [&](const Device& d) {
    return std::find(d.keys.begin(), d.keys.end(), key) != d.keys.end();
  });
  if (dev == p.devices.end()) return;
  Device& d = *dev;
  if (p.stored_id != 0) return;  // the store delivers it (MessageDelivery)
  if (d.state == Device::State::kForked) {
    duplicate_registers_.inc();  // once per device, never per REGISTER
    return;
  }
  // After the ring timeout the call may still ring on other branches: the device is still
  // offered the call (the proxy refuses the branch once the request is over).
  if (proxy_ == nullptr) return;
  const bool late = !p.waiting;
  // push_connected_devices: the request already went to this device's old contact.
  for (const std::string& live : d.live_keys) {
    // It rang (or was declined) there: the user has seen this call on this device.
    if (proxy_->branchProgress(id, live) != BranchProgress::kReached) continue;
    if (timelineOn())
      mark(p, "REGISTER",
           "REGISTER from " + shortKey(d.target.device_key) + " (reached on its old contact)", &d);
    d.state = Device::State::kForked;
    d.branch_key = live;
    if (d.retry_timer != 0) deps_.timers->cancel(d.retry_timer);
    d.retry_timer = 0;
    maybeStopWaiting(p);  // may end the context: `p` must not be used afterwards
    return;
  }
  std::vector<Target> targets = targetsFromBindings({binding});
  if (targets.empty()) return;
  Target t = std::move(targets.front());
  t.uri = registrar::stripPushUriParams(t.uri);
  // A device woken by another copy's push has its latency counted there.
  if (d.pushed) {
    d.registered_at = deps_.timers->now();
    if (d.answered_at) kStageRegistered.observe(msSince(*d.answered_at, d.registered_at));
  }
  if (d.repushes > 0) woken_after_repush_.inc();
  if (timelineOn())
    mark(p, "REGISTER",
         "REGISTER from " + shortKey(d.target.device_key) + (late ? " after ring timeout" : ""),
         &d);
  d.state = Device::State::kForked;
  d.branch_key = t.binding_key;
  if (d.retry_timer != 0) deps_.timers->cancel(d.retry_timer);
  d.retry_timer = 0;
  // Not rung yet on its old contact: one INVITE per device. Where the app registered again from
  // the old branch's address (a UDP port reused, the same connection) that branch is the INVITE
  // to the woken app; any other old branch is stopped before it can reach it.
  std::size_t taken_over = 0;
  for (const std::string& live : d.live_keys) {
    Proxy::Handover h = proxy_->handOverBranches(id, live, t);
    taken_over += h.taken_over;
    if (h.superseded != 0) {
      superseded_.inc();
      if (timelineOn())
        mark(p, "old contact stopped",
             "old contact of " + shortKey(d.target.device_key) + " stopped", &d);
    }
  }
  if (taken_over != 0) {
    taken_over_.inc();
    observeRequestOut(p, d);
    if (timelineOn())
      mark(p, "INVITE out",
           "INVITE to old contact of " + shortKey(d.target.device_key) + " taken over", &d);
    maybeStopWaiting(p);  // may end the context: `p` must not be used afterwards
    return;
  }
  Status s = proxy_->addBranch(id, std::move(t));
  if (!s) {
    SW_LOG_DEBUG("wake: context {}: branch to woken device not added: {}", id, s.toString());
    return;
  }
  forked_.inc();
  observeRequestOut(p, d);
  if (timelineOn())
    mark(p, p.invite ? "INVITE out" : "MESSAGE out",
         "INVITE out to " + shortKey(d.target.device_key), &d);
  maybeStopWaiting(p);  // may end the context: `p` must not be used afterwards
}

// How a parked request ended, for its timeline (routing/timeline.h).
std::string WakeAndWait::outcomeOf(const Parked& p, const ContextEnd& end) {
  if (p.stored_id != 0 && end.answered_by.empty()) return "stored";
  if (end.code >= 200 && end.code < 300) return "answered";
  if (end.cancelled) return "cancelled";
  const bool reached = std::any_of(p.devices.begin(), p.devices.end(), [](const Device& d) {
    return d.state == Device::State::kForked;
  });
  if (reached || !end.answered_by.empty()) return "forwarded";
  if (p.devices.empty()) return "no_device";
  const bool all_failed = std::all_of(p.devices.begin(), p.devices.end(), [](const Device& d) {
    return d.state == Device::State::kFailed;
  });
  if (all_failed) return "push_failed";
  if (p.drained) return "server_stopping";
  return p.ring_timed_out ? "ring_timeout" : "forwarded";
}

void WakeAndWait::observeRequestOut(const Parked& p, const Device& d) {
  if (!d.pushed) return;
  const TimePoint now = deps_.timers->now();
  kStageRequestOut.observe(msSince(d.registered_at, now));
  kStageTotal.observe(msSince(p.start, now));
}

void WakeAndWait::onContextEnded(ContextId id, const ContextEnd& end) {
  auto it = parked_.find(id);
  if (it == parked_.end()) return;
  std::unique_ptr<Parked> p = std::move(it->second);
  parked_.erase(it);
  kParkedRequests.add(-1);
  if (p->ring_timer != 0) deps_.timers->cancel(p->ring_timer);
  if (p->cleanup_timer != 0) deps_.timers->cancel(p->cleanup_timer);
  for (Device& d : p->devices) {
    if (d.retry_timer != 0) deps_.timers->cancel(d.retry_timer);
  }
  if (timelineOn()) {
    TimelineStep& s =
        mark(*p, "final",
             "final " + std::to_string(end.code) + (end.cancelled ? " (caller CANCEL)" : ""));
    s.status = end.code;
  }
  if (p->invite) cancelPushes(*p, end);
  if (p->stored_id != 0 && !end.answered_by.empty()) {
    (void)deps_.message_store->remove(p->stored_id);  // a live branch took it after all
  }
  if (timelineOn()) {
    p->timeline.final_code = end.code;
    p->timeline.outcome = outcomeOf(*p, end);
    SW_LOG_INFO("wake: call {} to {}:{}", p->event.call_id, p->event.callee_aor,
                timelineText(p->timeline));
    if (deps_.timelines != nullptr) deps_.timelines->record(std::move(p->timeline));
  }

  // CallKit grace window for VoIP-pushed devices that did not register.
  auto ended = std::make_unique<Ended>();
  ended->event = p->event;
  for (Device& d : p->devices) {
    bool keep = p->invite && d.pushed && d.target.binding.callsUseVoip() && !d.answered(end) &&
                (d.state == Device::State::kWaiting || d.state == Device::State::kPushing);
    if (keep) {
      ended->devices.push_back(d);
    } else {
      for (const std::string& k : d.keys) deps_.hub->forget(k, deps_.loop, id);
    }
  }
  if (ended->devices.empty()) return;
  ended->resent.assign(ended->devices.size(), false);
  std::weak_ptr<bool> alive = alive_;
  ended->grace_timer = deps_.timers->schedule(config_.late_register_grace, [this, alive, id] {
    if (alive.expired()) return;
    auto e = ended_.find(id);
    if (e == ended_.end()) return;
    for (const Device& d : e->second->devices) {
      for (const std::string& k : d.keys) deps_.hub->forget(k, deps_.loop, id);
    }
    ended_.erase(e);
  });
  ended_[id] = std::move(ended);
}

void WakeAndWait::cancelPushes(Parked& p, const ContextEnd& end) {
  const bool answered = end.code >= 200 && end.code < 300;
  push::CallEvent ev = p.event;
  ev.kind = answered ? push::CallEventKind::kAnsweredElsewhere : push::CallEventKind::kMissed;
  const push::PushKind kind = answered ? push::PushKind::kCancel : push::PushKind::kMissedCall;
  const TimePoint now = deps_.timers->now();
  for (const Device& d : p.devices) {
    if (!d.pushed || d.state == Device::State::kFailed) continue;
    if (d.answered(end)) continue;  // the device that answered
    if (!deps_.limits->firstCancel(d.target.device_key, p.event.call_id, now)) continue;
    if (timelineOn())
      mark(p, "push sent",
           "push " + std::string(push::pushKindName(kind)) + " sent to " +
               shortKey(d.target.device_key),
           &d);
    location::LocationStore* store = deps_.push_store;
    std::string device_key = d.target.device_key;
    std::string aor = d.target.aor;
    auto wall = deps_.wall_clock;
    // Runs on any thread: the store is thread-safe.
    deps_.sender->send(d.target, ev, kind, [store, device_key, aor, wall](push::PushOutcome out) {
      if (out.kind == push::PushOutcome::Kind::kRemoveBinding) {
        std::optional<location::SysSeconds> since;
        if (out.invalid_since) since = *out.invalid_since;
        store->removePushDevice(aor, device_key, since, wall(),
                                [](std::function<void()> f) { f(); }, [](Status) {});
      }
    });
  }
}

void WakeAndWait::forgetKeys(const Parked& p) {
  for (const Device& d : p.devices) {
    for (const std::string& k : d.keys) deps_.hub->forget(k, deps_.loop, p.id);
  }
}

}  // namespace sipwake::routing
