#include "push/webhook.h"

#include <nlohmann/json.hpp>

namespace sipwake::push::webhook {
namespace {

// The topic the webhook should push to: the VoIP topic when the device has a VoIP token, except
// for a refresh or a message (a background or alert push, which goes to the bundle id); "" for a
// non-APNs device.
std::string apnsTopic(const PushBinding& b, CallEventKind kind) {
  if (b.provider != Provider::kApns) return {};
  if (!b.voip_token.empty() && kind != CallEventKind::kRefresh && kind != CallEventKind::kMessage)
    return b.app_id + ".voip";
  return b.app_id;
}

}  // namespace

std::string buildBody(const PushBinding& b, const CallEvent& ev) {
  using Json = nlohmann::json;
  Json body = {
      {"version", kSchemaVersion},
      {"event", callEventName(ev.kind)},
      {"call_id", truncateUtf8(ev.call_id, kMaxUriBytes)},
      {"call_uuid", ev.call_uuid},
      {"caller",
       {{"uri", truncateUtf8(ev.caller_uri, kMaxUriBytes)},
        {"display_name", truncateUtf8(ev.caller_display_name, kMaxDisplayNameBytes)}}},
      {"callee_aor", truncateUtf8(ev.callee_aor, kMaxUriBytes)},
      {"provider", providerName(b.provider)},
      {"sandbox", b.sandbox},
      {"app",
       {{"id", b.app_id},
        {"team_id", b.team_id},
        {"project_id", b.project_id},
        {"apns_topic", apnsTopic(b, ev.kind)}}},
      {"tokens", {{"voip", b.voip_token}, {"message", b.message_token}}},
      {"device_key", b.deviceKey()},
      {"sent_at", ev.sent_at_ms},
  };
  if (ev.kind == CallEventKind::kMessage) {
    if (!ev.preview.empty()) body["preview"] = truncateUtf8(ev.preview, kMaxPreviewBytes);
    if (!b.linphone.msg_str.empty()) body["loc_key"] = b.linphone.msg_str;
  }
  return dumpJson(body);
}

PushRequest buildRequest(const PushBinding& binding, const CallEvent& event,
                         std::string_view authority, std::string_view path,
                         std::string_view bearer_secret) {
  PushRequest req;
  req.authority = std::string(authority);
  req.path = std::string(path);
  req.body = buildBody(binding, event);
  req.headers.push_back({"content-type", "application/json"});
  if (!bearer_secret.empty()) {
    req.headers.push_back({"authorization", "Bearer " + std::string(bearer_secret)});
  }
  return req;
}

PushAction actionForStatus(int status) {
  if (status >= 200 && status < 300) return PushAction::kOk;
  if (status == 404 || status == 410) return PushAction::kRemoveBinding;
  if (status == 401 || status == 403) return PushAction::kFatalConfig;
  if (status == 408 || status == 429 || status >= 500) return PushAction::kRetry;
  return PushAction::kDrop;
}

}  // namespace sipwake::push::webhook
