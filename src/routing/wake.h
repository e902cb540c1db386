// Wake-and-wait (RFC 8599 §4.1.3 "push bucket"): an INVITE (or MESSAGE) for an AOR whose
// push-bound devices have no live SIP contact is forked at once to the live contacts, the sleeping
// devices are pushed, and the request is parked in its ProxyContext (Resolution::more_may_come).
// When a pushed device's REGISTER gets its 200 OK, the registrar's observer (WakeHub) finds the
// parked request and the request is forked to the new binding: once per device, never per
// REGISTER attempt. The caller gets a provisional response with a proxy To-tag as soon as the
// pushes are handed to the sender (WakeConfig::parked_provisional, default 180: ringback while
// the phone wakes). The ring timeout (or every push failing) ends the wait for sleeping devices
// only: the proxy then sends the best response once the branches already forked (live contacts,
// woken devices) have finished — they ring on until their own answer, CANCEL or Timer C; with
// nothing ringing the caller gets 480 at once. A pushed device that registers after the ring
// timeout while the call still rings elsewhere is still forked to (once).
//
// push_connected_devices (default, RFC 8599 §5.6.2): a push-bound device with a live-looking
// contact gets the INVITE there at once AND a push (an app the OS killed leaves a contact that
// looks alive and answers nothing). When it registers again, it gets one INVITE, never two: if
// the device already answered its old branch (any response but 100: it rang or declined),
// nothing more is forked; if it registered from the old branch's address (same transport,
// address and port or the same connection) while that branch still waits for a first response,
// that branch is taken over (retransmitted at once over UDP: it is the INVITE to the woken app);
// otherwise the old branch's retransmissions stop at once, it is CANCELled once a provisional
// allows, its final response is ignored, and the request is forked to the new binding.
//
// Pieces:
//   WakeAndWait  one per event loop; the Proxy's TargetResolver (wraps the location lookup). Owns
//                the parked-call state, the ring / retry timers and the push bookkeeping.
//   WakeHub      one per process; thread-safe. The "waiting devices" registry: device match key
//                → (loop, context). The woken phone's REGISTER has its own Call-ID, so it is
//                handled on whichever loop owns THAT Call-ID; the hub posts the news to the loop
//                that parked the call. It is the RegistrationObserver of every loop's Registrar.
//
// Matching a REGISTER to a pushed device: "i:<aor>\n<+sip.instance>" when the push binding was
// registered with an instance id, and always "d:<deviceKey>" (the push token hash), so a device
// that re-registers without its instance id, or whose contact changed, still matches.
//
// MESSAGE: an alert push (event "message"). If no pushed device registered within the wait
// (non_invite_timeout) and a MessageStore is configured, the MESSAGE is stored for the devices
// that did not get it and the sender gets 202 Accepted at once (Proxy::Fallback::at_once: a live
// branch still silent then is retransmitted no more and not waited for); a full store answers 486
// Busy Here - Message Store Full (the user's bound) or 503 Service Unavailable - Message Store Full
// (the total bound, Retry-After). A device registering after that gets it from the store, not from
// this request. A MESSAGE whose every device is over its push budget is kept at once, without a
// push (202).
//
// Cancel pushes: when the call ends, every pushed device that did not answer gets a non-VoIP push
// of the same call_uuid: "answered_elsewhere" (another branch sent 2xx), else "missed" (caller
// CANCEL, ring timeout, every branch failed).
//
// Push flood protection (routing/wake_limits.h): before pushing, the request's devices are
// admitted by the process-wide WakeLimits with the request's origin (RequestOrigin, from the
// proxy): a device already pushed for this Call-ID is waited for without a new push, devices over
// their budget (or not pushable for this origin, `wake_for`) are left out, and the parked request
// holds a slot of the parked bounds until its Parked state goes. With every device left out by a
// limit and no live contact, the caller gets the limit's answer (480 push budget, 503 parked
// bound, with Retry-After). The missed-call / cancel push goes once per device per call.
//
// Re-push (routing/repush.h): a pushed device whose push the provider accepted and that has not
// registered within its provider's interval is pushed again (same call UUID), while the request
// still waits for it, at most RepushPolicy::max_repushes times; a REGISTER, the ring timeout or
// the end of the request stops it. A refused re-push never ends the wait for a device an earlier
// push reached the provider for. Each re-push is on the call's timeline and counted.
// Mid-dialog wake (RFC 8599 §6, resolveMidDialog in routing/purr_wake.cc): a request in a dialog
// whose Request-URI carries the PURR of a sleeping device parks the same way, for that one
// device, with no provisional; docs/push.md tells the push kinds and answers.
//
// CallKit rule for late registrations: an iOS device woken by a VoIP push must report the call to
// CallKit and will then register. If it registers after its call ended (within
// `late_register_grace`), it is sent the cancel push again, now that its app runs, so it ends the
// CallKit call it reported; it is never sent an INVITE for a call that is over (an INVITE then
// CANCEL would race with the user pressing "answer"). Documented in docs/life-of-a-call.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/stats.h"
#include "location/location_store.h"
#include "location/message_store.h"
#include "location/purr_store.h"
#include "location/location_store.h"
#include "push/sender.h"
#include "registrar/registrar.h"
#include "routing/repush.h"
#include "routing/target_resolver.h"
#include "routing/timeline.h"
#include "routing/wake_limits.h"

namespace sipwake::routing {

class Proxy;
class WakeAndWait;

struct WakeConfig {
  Duration ring_timeout = seconds(30);  // how long a parked INVITE waits for pushed devices
  // Non-INVITE (MESSAGE) requests must end before the sender's Timer F (32 s).
  Duration non_invite_timeout = seconds(25);
  // RFC 8599 §5.6.2: push every push-bound device, also one with a live-looking contact (the
  // request goes there too, at once); false: push only devices without a SIP contact.
  bool push_connected_devices = true;
  Duration late_register_grace = seconds(30);
  Duration retry_backoff = seconds(1);  // first retry of a transient push failure; doubles
  int parked_provisional = 180;         // to the caller of a parked INVITE: 180, 183 or 0 (none)
  std::string uuid_salt;                // push::deriveCallUuid salt (per deployment)
  RepushPolicy repush;                  // pushing again a device an accepted push did not wake
  // A MESSAGE's push carries the start of its text/* body (CallEvent::preview).
  bool message_preview = false;
  // With a MessageStore: how long a MESSAGE kept for later delivery waits for its devices.
  Duration message_ttl = std::chrono::hours(24 * 7);
};

// The waiting-devices registry. Thread: every method is thread-safe.
class WakeHub final : public registrar::RegistrationObserver {
 public:
  // REQUIRES: called for every loop before traffic; `wake` lives until the loops stopped.
  // `post` runs a closure on loop `loop`.
  void attach(std::size_t loop, location::Executor post, WakeAndWait* wake);

  void expect(const std::string& key, std::size_t loop, ContextId id);
  void forget(const std::string& key, std::size_t loop, ContextId id);

  // Registrar hook (any loop): posts onDeviceRegistered to each loop waiting for this device.
  void onRegistered(std::string_view aor, const location::Binding& binding,
                    const transport::ReceivedMessage& request) override;

  // Cross-node source (any thread): push devices `device_keys` of `aor` registered at another
  // node sharing `store` (its "registered" event, delivered once this node's copy of the AOR is
  // up to date). Each device's binding as `store` holds it now — another node's node route in
  // front of its Path — is released like a local REGISTER's; a device without a live binding is
  // skipped. Returns how many bindings were released to waiting loops.
  std::size_t onRegisteredElsewhere(const location::LocationStore& store, std::string_view aor,
                                    const std::vector<std::string>& device_keys,
                                    location::SysSeconds now);

  static std::string instanceKey(std::string_view aor, std::string_view instance);
  static std::string deviceKey(std::string_view device_key);

 private:
  struct Waiter {
    std::size_t loop;
    ContextId id;
  };
  struct Loop {
    location::Executor post;
    WakeAndWait* wake = nullptr;
  };
  // Posts onDeviceRegistered to each loop waiting for this binding; how many were waiting.
  std::size_t release(std::string_view aor, const location::Binding& binding);

  std::mutex mu_;
  std::vector<Loop> loops_;
  std::unordered_multimap<std::string, Waiter> waiting_;
};

class WakeAndWait final : public TargetResolver {
 public:
  using WallClock = std::function<location::SysSeconds()>;
  struct Deps {
    TargetResolver* inner = nullptr;                   // the location lookup; required
    location::LocationStore* push_store = nullptr;  // its push bindings  // required
    location::PurrStore* purrs = nullptr;  // RFC 8599 §6 mid-dialog wake; nullptr: none
    push::PushSender* sender = nullptr;    // required
    WakeHub* hub = nullptr;                // required
    WakeLimits* limits = nullptr;          // shared by every loop; required
    std::size_t loop = 0;                  // this loop's index in the hub
    location::Executor post;               // runs a closure later on this loop; required
    TimerService* timers = nullptr;        // this loop's timers; required
    WallClock wall_clock;                  // empty: system clock
    // A MESSAGE whose pushed devices did not register within the wait is kept here and answered
    // 202 (routing/message_delivery.h delivers it); nullptr: it gets 480.
    location::MessageStore* message_store = nullptr;
    // Every ended wake's timeline is recorded here (GET /api/timelines); nullptr: only logged.
    TimelineRecorder* timelines = nullptr;
  };

  // Thread: constructed anywhere, then used only on loop `deps.loop`. Attaches itself to the hub.
  // The Proxy is set afterwards (it takes this resolver in its deps). The Proxy must be destroyed
  // before this object; no closure posted by this object may run after it is destroyed (the
  // owner stops the loop first).
  WakeAndWait(WakeConfig config, Deps deps);
  ~WakeAndWait() override;
  WakeAndWait(const WakeAndWait&) = delete;
  WakeAndWait& operator=(const WakeAndWait&) = delete;

  void setProxy(Proxy* proxy) { proxy_ = proxy; }

  Resolution resolve(ContextId context, const sip::Uri& uri) override;
  Resolution resolveRequest(ContextId context, const sip::Message& request,
                            const RequestOrigin& origin) override;
  // RFC 8599 §6 (routing/purr_wake.cc): the device the request's `pn-purr` names is woken when
  // it has no live SIP binding, and the request is parked until it registers, then sent to the
  // new binding. Awake: nullopt (on to the dialog's remote target). An unknown or expired PURR,
  // or one whose push binding is gone: 404 Not Found - Unknown Push Resource.
  std::optional<Resolution> resolveMidDialog(ContextId context, const sip::Message& request,
                                             const RequestOrigin& origin) override;
  void onContextEnded(ContextId context, const ContextEnd& end) override;

  // From the hub, on this loop: a device this loop waits for under `key` registered `binding`.
  void onDeviceRegistered(ContextId context, const std::string& key,
                          const location::Binding& binding);

  std::size_t parkedCount() const { return parked_.size(); }
  // Draining (SIGTERM): every parked request still waiting for its devices stops waiting now,
  // as at its ring timeout (an INVITE gets its best answer or 480, a MESSAGE is stored: 202).
  // Returns how many stopped waiting.
  std::size_t stopWaitingAll();

 private:
  struct Device;
  struct Parked;
  struct Ended;

  // Pushes the devices of `records` (push bindings of `aor`; `live`: the AOR's live contacts,
  // already in r.targets) and parks the request; returns what the proxy forks now.
  // `mid_dialog`: RFC 8599 §6 (no provisional; admitted per transaction, not per Call-ID).
  Resolution park(ContextId context, const sip::Message& request, const RequestOrigin& origin,
                  const std::string& aor, std::vector<location::PushRecord> records, Resolution r,
                  bool mid_dialog);
  // The keys of `targets` that are live contacts of the device of `record`.
  static std::vector<std::string> liveKeysOf(const location::PushRecord& record,
                                             const std::vector<Target>& targets);
  void sendPush(ContextId id, std::size_t device, push::PushKind kind);
  void onPushDone(ContextId id, std::size_t device, push::PushKind kind, push::PushOutcome out);
  void scheduleRepush(Parked& p, std::size_t device, push::PushKind kind);
  void repush(ContextId id, std::size_t device, push::PushKind kind);
  void onRingTimeout(ContextId id);
  void endWait(ContextId id, bool draining);
  // Keeps the parked MESSAGE for its devices and tells the proxy what the sender gets unless a
  // branch sends 2xx (202, or the full store's answer). May end the context.
  void storeMessageAndStop(Parked& p);
  void scheduleCleanup(Parked& p);
  void maybeStopWaiting(Parked& p);
  void cancelPushes(Parked& p, const ContextEnd& end);
  void forgetKeys(const Parked& p);
  bool timelineOn() const;
  // Appends a step (what: TimelineStep's vocabulary; text: the log's words; d: the device).
  TimelineStep& mark(Parked& p, std::string what, std::string text, const Device* d = nullptr);
  static std::string outcomeOf(const Parked& p, const ContextEnd& end);
  // wake.latency.request_out and .total: the woken device `d` gets the request now.
  void observeRequestOut(const Parked& p, const Device& d);

  WakeConfig config_;
  Deps deps_;
  Proxy* proxy_ = nullptr;
  std::map<ContextId, std::unique_ptr<Parked>> parked_;
  std::map<ContextId, std::unique_ptr<Ended>> ended_;  // CallKit grace window
  std::shared_ptr<bool> alive_;
  Counter& parked_total_;
  Counter& forked_;
  Counter& duplicate_registers_;
  Counter& ring_timeouts_;
  Counter& late_registers_;
  Counter& superseded_;
  Counter& taken_over_;
  Counter& repushes_;
  Counter& woken_after_repush_;
};

}  // namespace sipwake::routing
