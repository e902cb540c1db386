// The typed push binding: how one app instance on one device is woken (provider, environment,
// tokens, Linphone alert strings). Plain data shared by the layers that parse it (src/push, from
// Contact parameters), store it (src/location, in memory as this type; on disk as the JSON of
// serialize()) and send to it (src/push, src/routing).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sipwake::push {

// pn-timeout upper bound (seconds), checked when parsing and when loading.
inline constexpr std::uint32_t kMaxPnTimeoutSecs = 3600;

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

// An optional PushBinding behind a shared immutable pointer, with value semantics for reading
// and comparing. A location Binding holds its push binding this way: the Binding is copied into
// every new snapshot of its AOR, and costs 16 bytes instead of ~400 when it has none.
class SharedPushBinding {
 public:
  SharedPushBinding() = default;
  SharedPushBinding(std::nullopt_t) {}  // NOLINT(google-explicit-constructor): like optional
  SharedPushBinding(PushBinding b)      // NOLINT(google-explicit-constructor)
      : p_(std::make_shared<const PushBinding>(std::move(b))) {}
  SharedPushBinding(std::optional<PushBinding> b) {  // NOLINT(google-explicit-constructor)
    if (b) p_ = std::make_shared<const PushBinding>(std::move(*b));
  }

  bool has_value() const { return p_ != nullptr; }
  explicit operator bool() const { return p_ != nullptr; }
  const PushBinding& operator*() const { return *p_; }
  const PushBinding* operator->() const { return p_.get(); }
  void reset() { p_.reset(); }

  friend bool operator==(const SharedPushBinding& a, const SharedPushBinding& b) {
    if (a.p_ == b.p_) return true;
    return a.p_ != nullptr && b.p_ != nullptr && *a.p_ == *b.p_;
  }
  friend bool operator==(const SharedPushBinding& a, std::nullopt_t) { return a.p_ == nullptr; }

 private:
  std::shared_ptr<const PushBinding> p_;
};

// RFC 8599 PNS name: "apns", "fcm", "webpush".
std::string_view providerName(Provider p);
std::string_view dialectName(Dialect d);

// JSON text of a binding, and back: the on-disk form (SQLite columns). Parsed only at load.
std::string serialize(const PushBinding& binding);
Result<PushBinding> deserialize(std::string_view json);

}  // namespace sipwake::push
