#include "push/apns.h"

#include <array>
#include <nlohmann/json.hpp>

namespace sipwake::push::apns {
namespace {

using Json = nlohmann::json;

// Apple's reason strings (HTTP/2 provider API) and what we do about each.
constexpr std::array<ReasonInfo, 34> kReasons = {{
    // 400: the request was malformed. Token problems remove the binding; our own request bugs
    // are dropped (and counted); topic problems are configuration.
    {"BadCollapseId", 400, PushAction::kDrop},
    {"BadDeviceToken", 400, PushAction::kRemoveBinding},  // also sandbox/production mismatch
    {"BadExpirationDate", 400, PushAction::kDrop},
    {"BadMessageId", 400, PushAction::kDrop},
    {"BadPriority", 400, PushAction::kDrop},
    {"BadTopic", 400, PushAction::kFatalConfig},
    {"DeviceTokenNotForTopic", 400, PushAction::kRemoveBinding},  // token of another app
    {"DuplicateHeaders", 400, PushAction::kDrop},
    {"IdleTimeout", 400, PushAction::kRetry},
    {"InvalidPushType", 400, PushAction::kDrop},
    {"MissingDeviceToken", 400, PushAction::kDrop},
    {"MissingTopic", 400, PushAction::kDrop},
    {"PayloadEmpty", 400, PushAction::kDrop},
    {"TopicDisallowed", 400, PushAction::kFatalConfig},
    // 403: authentication.
    {"BadCertificate", 403, PushAction::kFatalConfig},
    {"BadCertificateEnvironment", 403, PushAction::kFatalConfig},
    {"ExpiredProviderToken", 403, PushAction::kRefreshToken},
    {"Forbidden", 403, PushAction::kFatalConfig},
    {"InvalidProviderToken", 403, PushAction::kFatalConfig},
    {"MissingProviderToken", 403, PushAction::kFatalConfig},
    {"UnrelatedKeyIdInToken", 403, PushAction::kFatalConfig},
    {"BadEnvironmentKeyIdInToken", 403, PushAction::kFatalConfig},
    {"BadEnvironmentKeyInToken", 403, PushAction::kFatalConfig},  // older spelling
    // 404/405/413: our request is wrong.
    {"BadPath", 404, PushAction::kDrop},
    {"MethodNotAllowed", 405, PushAction::kDrop},
    // 410: the token is no longer valid for the topic.
    {"ExpiredToken", 410, PushAction::kRemoveBinding},
    {"Unregistered", 410, PushAction::kRemoveBinding},
    {"PayloadTooLarge", 413, PushAction::kDrop},
    // 429: too fast. TooManyProviderTokenUpdates cannot come from ApnsTokenCache's schedule; if
    // it does (several processes sharing a key), back off rather than mint again.
    {"TooManyProviderTokenUpdates", 429, PushAction::kRetry},
    {"TooManyRequests", 429, PushAction::kRetry},
    // 5xx: transient.
    {"InternalServerError", 500, PushAction::kRetry},
    {"ServiceUnavailable", 503, PushAction::kRetry},
    {"Shutdown", 503, PushAction::kRetry},
    {"BadProviderToken", 403, PushAction::kFatalConfig},  // seen in the wild, not documented
}};

std::string_view defaultTitle(CallEventKind k) {
  switch (k) {
    case CallEventKind::kCall:
      return "Incoming call";
    case CallEventKind::kMissed:
      return "Missed call";
    case CallEventKind::kCancel:
      return "Call ended";
    case CallEventKind::kAnsweredElsewhere:
      return "Answered elsewhere";
    case CallEventKind::kRefresh:
      return "";  // never an alert
    case CallEventKind::kMessage:
      return "Message";
  }
  return "";
}

std::string callerText(const CallEvent& ev) {
  return truncateUtf8(ev.caller_display_name.empty() ? ev.caller_uri : ev.caller_display_name,
                      kMaxDisplayNameBytes);
}

PushAction actionForStatus(int status) {
  if (status >= 200 && status < 300) return PushAction::kOk;
  if (status == 410) return PushAction::kRemoveBinding;
  if (status == 403) return PushAction::kFatalConfig;
  if (status == 429 || status >= 500) return PushAction::kRetry;
  return PushAction::kDrop;
}

}  // namespace

std::string_view pushTypeName(PushType t) {
  switch (t) {
    case PushType::kVoip:
      return "voip";
    case PushType::kAlert:
      return "alert";
    case PushType::kBackground:
      return "background";
  }
  return "?";
}

PushType defaultPushType(const PushBinding& b, CallEventKind kind) {
  switch (kind) {
    case CallEventKind::kCall:
      return b.voip_token.empty() ? PushType::kAlert : PushType::kVoip;
    case CallEventKind::kMissed:
    case CallEventKind::kMessage:
      return PushType::kAlert;
    case CallEventKind::kCancel:
    case CallEventKind::kAnsweredElsewhere:
    case CallEventKind::kRefresh:
      return PushType::kBackground;
  }
  return PushType::kAlert;
}

Result<PushRequest> buildRequest(const PushBinding& binding, const CallEvent& event,
                                 const RequestOptions& options) {
  if (binding.provider != Provider::kApns) {
    return Status(StatusCode::kFailedPrecondition, "apns: binding is not an APNs binding");
  }
  if (binding.app_id.empty()) {
    return Status(StatusCode::kFailedPrecondition, "apns: binding has no bundle id");
  }
  bool voip = options.type == PushType::kVoip;
  const std::string& token = voip ? binding.voip_token : binding.message_token;
  if (token.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  voip ? "apns: binding has no VoIP token" : "apns: binding has no remote token");
  }
  if (options.collapse_id.size() > kMaxCollapseIdBytes) {
    return invalidArgument("apns: apns-collapse-id longer than 64 bytes");
  }
  int priority = options.priority.value_or(options.type == PushType::kBackground ? 5 : 10);
  if (priority != 1 && priority != 5 && priority != 10) {
    return invalidArgument("apns: apns-priority must be 1, 5 or 10");
  }
  if (options.type == PushType::kBackground && priority == 10) {
    return invalidArgument("apns: background pushes must not use priority 10");
  }
  if (options.expiration_unix < 0) return invalidArgument("apns: negative apns-expiration");

  Json payload = callEventFields(event);
  Json aps = Json::object();
  if (options.type == PushType::kAlert) {
    Json alert = Json::object();
    alert["title"] =
        options.alert.title.empty() ? std::string(defaultTitle(event.kind)) : options.alert.title;
    const bool message = event.kind == CallEventKind::kMessage;
    std::string body = callerText(event);
    if (message && !event.preview.empty())
      body += ": " + truncateUtf8(event.preview, kMaxPreviewBytes);
    alert["body"] = options.alert.body.empty() ? body : options.alert.body;
    std::string loc_key = options.alert.loc_key;
    if (loc_key.empty() && event.kind == CallEventKind::kCall) loc_key = binding.linphone.call_str;
    if (loc_key.empty() && message) loc_key = binding.linphone.msg_str;
    if (!loc_key.empty()) {
      alert["loc-key"] = loc_key;
      alert["loc-args"] = Json::array({callerText(event)});
    }
    aps["alert"] = std::move(alert);
    std::string sound = options.sound;
    const std::string& own_sound = message ? binding.linphone.msg_snd : binding.linphone.call_snd;
    if (sound.empty()) sound = own_sound.empty() ? "default" : own_sound;
    aps["sound"] = sound;
    if (!options.thread_id.empty()) aps["thread-id"] = options.thread_id;
  } else if (options.type == PushType::kBackground) {
    aps["content-available"] = 1;
  }
  payload["aps"] = std::move(aps);  // VoIP: an empty "aps" and the call data at top level

  PushRequest req;
  req.authority = binding.sandbox ? kSandboxHost : kProductionHost;
  req.path = "/3/device/" + token;
  req.body = dumpJson(payload);
  std::size_t limit = voip ? kMaxVoipPayloadBytes : kMaxPayloadBytes;
  if (req.body.size() > limit) {
    return outOfRange("apns: payload of " + std::to_string(req.body.size()) + " bytes exceeds " +
                      std::to_string(limit));
  }
  if (!options.bearer_jwt.empty()) {
    req.headers.push_back({"authorization", "bearer " + options.bearer_jwt});
  }
  req.headers.push_back({"apns-push-type", std::string(pushTypeName(options.type))});
  req.headers.push_back({"apns-topic", voip ? binding.app_id + ".voip" : binding.app_id});
  req.headers.push_back({"apns-priority", std::to_string(priority)});
  req.headers.push_back({"apns-expiration", std::to_string(options.expiration_unix)});
  if (!options.collapse_id.empty())
    req.headers.push_back({"apns-collapse-id", options.collapse_id});
  req.headers.push_back({"apns-id", options.apns_id.empty() ? randomUuidV4() : options.apns_id});
  req.headers.push_back({"content-type", "application/json"});
  return req;
}

Response parseResponse(int status, std::string_view body, std::span<const HttpHeader> headers) {
  Response r;
  r.status = status;
  for (const HttpHeader& h : headers) {
    if (h.name == "apns-id") r.apns_id = h.value;
  }
  r.action = actionForStatus(status);
  if (r.action == PushAction::kOk) return r;
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto it = j.find("reason"); it != j.end() && it->is_string()) {
      r.reason = it->get<std::string>().substr(0, 64);
    }
    if (auto it = j.find("timestamp"); it != j.end() && it->is_number_integer()) {
      r.timestamp_ms = it->get<std::int64_t>();
    }
  }
  for (const ReasonInfo& info : kReasons) {
    if (info.reason == r.reason) {
      r.action = info.action;
      break;
    }
  }
  r.reconnect = r.reason == "Shutdown" || r.reason == "IdleTimeout" ||
                r.reason == "UnrelatedKeyIdInToken" || r.reason == "BadEnvironmentKeyIdInToken";
  return r;
}

std::span<const ReasonInfo> knownReasons() { return kReasons; }

}  // namespace sipwake::push::apns
