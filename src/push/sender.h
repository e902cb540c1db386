// The seam between call routing and the push services: "deliver this call event to that device".
// Implementations: the HTTP/2 sender for APNs / FCM / webhook (src/push, built separately),
// NullPushSender (push not configured: every send fails permanently) and test fakes.
//
// Which wire form a PushKind becomes is the sender's business, with one rule every implementation
// must keep: only PushKind::kCall may go out as an APNs PushKit VoIP push (iOS terminates apps
// whose VoIP pushes do not report a new call to CallKit). Cancels, missed calls and messages go as
// alert (or background) pushes; a registration refresh goes as a background push, never VoIP.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/log.h"
#include "push/payload.h"
#include "push/push_params.h"

namespace sipwake::push {

enum class PushKind : std::uint8_t {
  kCall,        // incoming call: VoIP push on iOS (callsUseVoip), high-priority data on FCM
  kCancel,      // the call the device was woken for is over (answered elsewhere / cancelled)
  kMissedCall,  // alert: the caller gave up before the device answered
  kMessage,     // alert for a MESSAGE (never VoIP)
  // Registration refresh (RFC 8599 §5.5): wakes the app so it REGISTERs again before its binding
  // lapses. Send it with refreshEvent(aor). APNs: a background push (apns-push-type background,
  // priority 5, aps.content-available=1, topic = the bundle id) to the remote token; iOS throttles
  // these to a few per hour and drops them for an app the user force-quit. A binding with only a
  // VoIP token cannot be refreshed (!PushBinding::canWakeWithoutCall()): the send fails kPermanent
  // with kNoRefreshTokenReason and nothing goes out. FCM: a data-only, high-priority message.
  // Webhook: the usual body with event "refresh". Stale after kRefreshPushTtl on APNs and FCM.
  kRefresh,
};

std::string_view pushKindName(PushKind k);

// How long APNs / FCM keep trying to deliver a refresh push: a caller sends it at least this long
// before the registration lapses.
inline constexpr std::chrono::seconds kRefreshPushTtl{60};

// Apple throttles background pushes to two or three an hour per device: one device is never sent
// refresh pushes closer together than this (edge relay and registration refresh alike).
inline constexpr std::chrono::minutes kMinRefreshPushInterval{20};

// PushOutcome::reason of a refresh push refused because the binding has no non-VoIP token.
inline constexpr std::string_view kNoRefreshTokenReason = "no non-VoIP token for a refresh push";

// The CallEvent to send with PushKind::kRefresh for the registration of `aor`: kind kRefresh,
// callee_aor = aor, no call (call_id, call_uuid and the caller empty).
inline CallEvent refreshEvent(std::string_view aor) {
  CallEvent ev;
  ev.kind = CallEventKind::kRefresh;
  ev.callee_aor = std::string(aor);
  return ev;
}

// One device to push: the normalised binding plus where it is registered (for logs / payload).
struct PushTarget {
  PushBinding binding;
  std::string aor;
  std::string device_key;  // binding.deviceKey(): safe to log
};

struct PushOutcome {
  enum class Kind : std::uint8_t {
    kOk,             // accepted by the push service
    kRemoveBinding,  // the token is dead (APNs 410 / 400 BadDeviceToken, FCM UNREGISTERED...)
    kTransient,      // 429, 5xx, connection loss: may be retried after retry_after
    kPermanent,      // any other error (configuration, payload): do not retry this call
  };
  Kind kind = Kind::kOk;
  std::string reason;       // provider reason ("Unregistered", "UNAVAILABLE", ...); no tokens
  int provider_status = 0;  // HTTP status from the provider; 0 when none (not sent)
  // kRemoveBinding: the provider's "token invalid since" time (APNs 410 timestamp); the binding
  // must only be removed if it was not registered again after it. nullopt: remove regardless.
  std::optional<std::chrono::sys_seconds> invalid_since;
  // kTransient: how long to wait before retrying (Retry-After); zero: caller picks a backoff.
  std::chrono::milliseconds retry_after{0};

  static PushOutcome ok() { return {}; }
};

std::string_view pushOutcomeName(PushOutcome::Kind k);

class PushSender {
 public:
  using Done = std::function<void(PushOutcome)>;
  virtual ~PushSender() = default;
  // Sends one push. `done` runs exactly once, on ANY thread (possibly inline, before send()
  // returns): callers that live on an event loop post it back to their loop themselves.
  // Thread: any; implementations are thread-safe.
  virtual void send(const PushTarget& target, const CallEvent& event, PushKind kind, Done done) = 0;
  // Whether send() would find an app (credentials, endpoint) for `binding`: the registrar asks
  // this before it accepts a push binding (else 555). Thread: any.
  virtual bool serves(const PushBinding& /*binding*/) const { return true; }
};

// Push not configured: logs once per send ("push not configured") and fails permanently.
class NullPushSender final : public PushSender {
 public:
  void send(const PushTarget& target, const CallEvent& event, PushKind kind, Done done) override {
    SW_LOG_INFO("push not configured: dropping {} push for {} (device {})", pushKindName(kind),
                event.callee_aor, target.device_key);
    PushOutcome out;
    out.kind = PushOutcome::Kind::kPermanent;
    out.reason = "push not configured";
    done(std::move(out));
  }
  bool serves(const PushBinding& /*binding*/) const override { return false; }
};

inline std::string_view pushKindName(PushKind k) {
  switch (k) {
    case PushKind::kCall:
      return "call";
    case PushKind::kCancel:
      return "cancel";
    case PushKind::kMissedCall:
      return "missed_call";
    case PushKind::kMessage:
      return "message";
    case PushKind::kRefresh:
      return "refresh";
  }
  return "?";
}

inline std::string_view pushOutcomeName(PushOutcome::Kind k) {
  switch (k) {
    case PushOutcome::Kind::kOk:
      return "ok";
    case PushOutcome::Kind::kRemoveBinding:
      return "remove_binding";
    case PushOutcome::Kind::kTransient:
      return "transient";
    case PushOutcome::Kind::kPermanent:
      return "permanent";
  }
  return "?";
}

}  // namespace sipwake::push
