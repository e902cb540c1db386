// Apple Push Notification service provider API: request building and response interpretation.
// Pure logic; the HTTP/2 connection (one stream until a JWT is accepted) belongs to the sender.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "push/payload.h"
#include "push/push_params.h"
#include "push/push_request.h"

namespace sipwake::push::apns {

inline constexpr std::string_view kProductionHost = "api.push.apple.com";
inline constexpr std::string_view kSandboxHost = "api.sandbox.push.apple.com";
inline constexpr std::size_t kMaxPayloadBytes = 4096;
inline constexpr std::size_t kMaxVoipPayloadBytes = 5120;
inline constexpr std::size_t kMaxCollapseIdBytes = 64;

enum class PushType { kVoip, kAlert, kBackground };
std::string_view pushTypeName(PushType t);  // "voip", "alert", "background"

// Our policy (PushKit rules: every VoIP push must be reported to CallKit, so VoIP pushes are for
// ringing calls only): kCall → kVoip when the binding has a VoIP token, else kAlert; kMissed,
// kMessage → kAlert (to the remote token; never VoIP); kCancel / kAnsweredElsewhere → kBackground (silent; the app dismisses its UI); kRefresh →
// kBackground (the app registers again). kBackground needs the binding's remote token.
PushType defaultPushType(const PushBinding& b, CallEventKind kind);

struct AlertText {
  std::string title;
  std::string body;
  std::string loc_key;  // when set, the app localises: aps.alert.loc-key + loc-args [caller]
};

struct RequestOptions {
  PushType type = PushType::kVoip;
  // Token auth: the provider JWT ("authorization: bearer <jwt>"). Empty = certificate auth, no
  // authorization header.
  std::string bearer_jwt;
  std::int64_t expiration_unix = 0;  // apns-expiration; 0 = deliver now or never (do not store)
  std::string collapse_id;           // apns-collapse-id; empty = none; at most 64 bytes
  std::string apns_id;               // apns-id; empty = a fresh random UUID
  std::optional<int> priority;       // default 10 (voip, alert), 5 (background: APNs requires it)
  // kAlert only. Empty fields get defaults: title "Missed call"/"Incoming call"/"Message", body =
  // caller display name or URI (a message: followed by ": <preview>" when the event has one),
  // loc_key = the binding's Linphone pn-call-str for calls, pn-msg-str for messages.
  AlertText alert;
  std::string sound;      // kAlert: default the binding's pn-call-snd (messages: pn-msg-snd), else "default"
  std::string thread_id;  // kAlert: aps.thread-id; empty = none
};

// The POST /3/device/<token> request. kFailedPrecondition when the binding lacks the token the
// push type needs (VoIP vs remote) or is not APNs; kInvalidArgument for a bad option;
// kOutOfRange when the payload exceeds 4096 bytes (5120 for VoIP).
Result<PushRequest> buildRequest(const PushBinding& binding, const CallEvent& event,
                                 const RequestOptions& options);

struct Response {
  PushAction action = PushAction::kOk;
  int status = 0;
  std::string reason;                        // APNs reason string ("" on success)
  std::optional<std::int64_t> timestamp_ms;  // 410: when the token stopped being valid
  std::string apns_id;                       // echoed apns-id header
  bool reconnect = false;                    // retry on a new connection (Shutdown, IdleTimeout)
};

// Interprets an APNs answer. A 410 timestamp means the token is dead unless the device
// registered it again after that instant: compare with the binding's registration time.
Response parseResponse(int status, std::string_view body, std::span<const HttpHeader> headers);

struct ReasonInfo {
  std::string_view reason;
  int status;
  PushAction action;
};
// Every reason string in Apple's documentation with the action we take (for tests and docs).
std::span<const ReasonInfo> knownReasons();

}  // namespace sipwake::push::apns
