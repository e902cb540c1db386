// The call event every push carries (APNs, FCM, webhook): what the app needs to show CallKit /
// its call screen and to match the push to the INVITE that follows.
//
// call_uuid: derived deterministically from (salt, Call-ID, callee AOR) — see deriveCallUuid() —
// so the "call" push and the later "cancel" push for the same call carry the same UUID without
// shared state, on every node, and after a restart. The salt is a per-deployment secret so a
// caller cannot predict (and spoof a cancel for) another call's UUID from its Call-ID alone.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sipwake::push {

// kRefresh is no call: it asks the app to REGISTER again (RFC 8599 §5.5), so call_id, call_uuid
// and the caller are empty and every builder sends them as empty strings.
// kMessage is a SIP MESSAGE for the device: caller_* name its sender, call_id its Call-ID.
enum class CallEventKind { kCall, kCancel, kMissed, kAnsweredElsewhere, kRefresh, kMessage };

// "call", "cancel", "missed", "answered_elsewhere", "refresh", "message"
std::string_view callEventName(CallEventKind k);

struct CallEvent {
  CallEventKind kind = CallEventKind::kCall;
  std::string call_id;
  std::string call_uuid;  // lower-case 8-4-4-4-12
  std::string caller_uri;
  std::string caller_display_name;  // may be empty
  std::string callee_aor;
  // kMessage only: the start of the message text, when the operator allows previews ([push]
  // message_preview); empty: no preview (the payload then carries none).
  std::string preview;
  // Unix milliseconds at which this push request was handed to the connection: set by the
  // sender for each attempt (retries included), not by the caller.
  std::int64_t sent_at_ms = 0;
};

// RFC 9562 version-8 UUID from SHA-256(salt | 0 | call_id | 0 | callee_aor).
std::string deriveCallUuid(std::string_view call_id, std::string_view callee_aor,
                           std::string_view salt = {});
// Random RFC 9562 version-4 UUID from the OpenSSL CSPRNG (apns-id, request ids).
std::string randomUuidV4();

// Field limits applied by every builder before sizing (bytes, cut on a UTF-8 boundary).
inline constexpr std::size_t kMaxDisplayNameBytes = 128;
inline constexpr std::size_t kMaxUriBytes = 512;
inline constexpr std::size_t kMaxPreviewBytes = 120;

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string truncateUtf8(std::string_view s, std::size_t max);

// The common fields as a flat JSON object of strings (FCM needs string values; APNs and the
// webhook reuse it): event, call_id, call_uuid, caller_uri, caller_name, callee_aor, sent_at, and
// preview when the event has one.
nlohmann::json callEventFields(const CallEvent& ev);

// Serialises JSON without throwing: invalid UTF-8 is replaced, never an exception.
std::string dumpJson(const nlohmann::json& j);

}  // namespace sipwake::push
