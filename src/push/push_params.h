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

#include "common/push_binding.h"
#include "common/status.h"

namespace sipwake::push {

// One Contact parameter as it appeared on the wire. `has_value` is false for a bare flag
// (";+sip.pnsreg"); then `value` is empty.
struct RawParam {
  std::string_view name;
  std::string_view value;
  bool has_value = true;
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

// For logs: the first 6 characters of a token then "…"; never the whole token.
std::string redactToken(std::string_view token);

// %-unescapes `in` (RFC 3261 escaped = "%" HEXDIG HEXDIG). nullopt on a bad escape.
std::optional<std::string> percentDecode(std::string_view in);

}  // namespace sipwake::push
