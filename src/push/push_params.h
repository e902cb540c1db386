// Push parameters in REGISTER Contacts (RFC 8599 and the dialects real clients send), normalised
// into one PushBinding. Pure logic: the caller hands over the Contact's parameters as
// (name, raw value) pairs, URI parameters and header parameters alike, so this does not depend
// on the SIP parser. Values are raw (still %-escaped); names are matched case-insensitively.
//
// Dialects (see docs/push.md for the exact rules):
//   RFC 8599 (+ Linphone/Flexisip extensions): pn-provider, pn-param, pn-prid, pn-purr,
//       pn-call-str/-snd, pn-msg-str/-snd, pn-groupchat-str, pn-timeout, pn-silent
//   ABTO SIP SDK: push-token-type, push-token-app, push-token-id
//   react-native-pjsip / mod_apn: app-id, pn-voip-tok, pn-im-tok, pn-platform
//   Linphone legacy / Kazoo: pn-type, pn-tok, app-id (".dev"/".prod" suffix)
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sipwake::push {

// One Contact parameter as it appeared on the wire. `has_value` is false for a bare flag
// (";+sip.pnsreg"); then `value` is empty.
struct RawParam {
  std::string_view name;
  std::string_view value;
  bool has_value = true;
};

// The push notification service that delivers to the device. How we reach it (directly or
// through the operator's webhook) is configuration, not part of the binding.
enum class Provider : std::uint8_t { kApns, kFcm, kWebpush };

// Which client dialect the binding was written in (for logs and metrics only).
enum class Dialect : std::uint8_t { kRfc8599, kAbto, kPjsip, kLinphoneLegacy };

// Linphone/Flexisip strings for alert pushes (loc-keys and sound names); empty when absent.
struct LinphoneStrings {
  std::string call_str;                  // pn-call-str: loc-key of the incoming-call alert
  std::string msg_str;                   // pn-msg-str
  std::string groupchat_str;             // pn-groupchat-str
  std::string call_snd;                  // pn-call-snd: sound file name
  std::string msg_snd;                   // pn-msg-snd
  std::optional<std::uint32_t> timeout;  // pn-timeout (seconds)
  bool silent = false;                   // pn-silent=1

  friend bool operator==(const LinphoneStrings&, const LinphoneStrings&) = default;
};

struct PushBinding {
  Provider provider = Provider::kApns;
  bool sandbox = false;  // APNs development environment (apns.dev, ".dev" app-id)
  Dialect dialect = Dialect::kRfc8599;
  // APNs: the bundle id (apns-topic without ".voip"). FCM: the app's name/package as the client
  // sent it (ABTO push-token-app, legacy app-id); may be empty. Webpush: empty.
  std::string app_id;
  std::string team_id;     // APNs team id (RFC 8599 pn-param); empty in other dialects
  std::string project_id;  // FCM project id (RFC 8599 pn-param); empty when the client sent none
  // Device tokens. APNs: lower-case hex; voip_token is a PushKit token, message_token a "remote"
  // (alert) token. FCM: the registration token is message_token (FCM has one token per app
  // instance). Webpush: message_token is the push subscription URI.
  std::string voip_token;
  std::string message_token;
  std::string purr;  // RFC 8599 pn-purr as sent (mid-dialog wake-up id); may be empty
  LinphoneStrings linphone;
  bool has_pnsreg = false;  // the Contact carried the +sip.pnsreg feature tag

  // Token to wake the device for a call: voip_token if any, else message_token.
  const std::string& callToken() const { return voip_token.empty() ? message_token : voip_token; }
  // True when calls go as PushKit VoIP pushes (APNs with a VoIP token).
  bool callsUseVoip() const { return provider == Provider::kApns && !voip_token.empty(); }
  // True when the app can be woken by a push that reports no call (a registration refresh): on
  // APNs that takes a remote token, since a PushKit token takes VoIP pushes only and iOS kills
  // an app whose VoIP push reports no call to CallKit. FCM and webpush: always.
  bool canWakeWithoutCall() const { return provider != Provider::kApns || !message_token.empty(); }
  // Name the service registry keys on: APNs bundle id; FCM project id, else app_id; webpush "".
  std::string_view appKey() const;
  // Stable identity of the device+app across re-registrations: a hash of provider, environment
  // and tokens (never the token itself), so it is safe in logs and as a store key. Two bindings
  // with equal deviceKey() are the same app instance on the same device.
  std::string deviceKey() const;

  friend bool operator==(const PushBinding&, const PushBinding&) = default;
};

struct PushParamError {
  int sip_code = 400;  // 400 (malformed) or 555 (service not supported, RFC 8599 §4.1.2)
  std::string reason;  // a complete reason phrase; names the parameter, never echoes a token
};

// Result of parsing: an error, or a binding, or "no push parameters at all" (nullopt).
class PushParamsResult {
 public:
  PushParamsResult(std::optional<PushBinding> b) : binding_(std::move(b)) {}  // NOLINT
  PushParamsResult(PushParamError e) : error_(std::move(e)) {}                // NOLINT

  bool isOk() const { return !error_.has_value(); }
  // REQUIRES: isOk().
  const std::optional<PushBinding>& value() const {
    SIPWAKE_CHECK(isOk());
    return binding_;
  }
  std::optional<PushBinding>& value() {
    SIPWAKE_CHECK(isOk());
    return binding_;
  }
  // REQUIRES: !isOk().
  const PushParamError& error() const {
    SIPWAKE_CHECK(!isOk());
    return *error_;
  }

 private:
  std::optional<PushBinding> binding_;
  std::optional<PushParamError> error_;
};

// Decides which bindings this deployment can push (PushSender::serves: the sender's own choice
// of app, so the registrar never accepts a binding the sender would then refuse). An empty
// function serves everything. Unserved → 555.
using ServesFn = std::function<bool(const PushBinding& binding)>;

// Parses the push parameters of one Contact. A parameter may appear as URI or header parameter;
// the same name twice with different values is a 400.
PushParamsResult parsePushParams(std::span<const RawParam> params, const ServesFn& serves = {});

// True for every parameter name this module reads (case-insensitive), i.e. the URI parameters to
// strip from a Request-URI forwarded to the phone and from anything other users can see.
bool isPushParamName(std::string_view name);

// The Feature-Caps header value for a 200 OK to a push REGISTER:
//   *;+sip.pns="apns"            and, when the Contact had +sip.pnsreg and pnsreg_secs > 120,
//   *;+sip.pns="apns";+sip.pnsreg="<secs>"
std::string featureCapsValue(const PushBinding& binding, std::optional<std::uint32_t> pnsreg_secs);

// RFC 8599 PNS name: "apns", "fcm", "webpush".
std::string_view providerName(Provider p);
std::string_view dialectName(Dialect d);

// JSON for the location Binding's opaque `push` field, and back.
std::string serialize(const PushBinding& binding);
Result<PushBinding> deserialize(std::string_view json);

// For logs: the first 6 characters of a token then "…"; never the whole token.
std::string redactToken(std::string_view token);

// %-unescapes `in` (RFC 3261 escaped = "%" HEXDIG HEXDIG). nullopt on a bad escape.
std::optional<std::string> percentDecode(std::string_view in);

}  // namespace sipwake::push
