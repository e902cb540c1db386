// Generic webhook: one JSON POST per push to an operator-run service that delivers it itself
// (its own APNs/FCM credentials, a UnifiedPush gateway, ...). Schema: docs/push.md#webhook.
// The body carries the device tokens (the webhook needs them): send it over TLS only, and never
// log it.
#pragma once

#include <string>
#include <string_view>

#include "push/payload.h"
#include "push/push_params.h"
#include "push/push_request.h"

namespace sipwake::push::webhook {

inline constexpr int kSchemaVersion = 1;

// The JSON body (docs/push.md#webhook). Always valid JSON; strings are truncated like the other
// payloads (display name 128 bytes, URIs 512 bytes).
std::string buildBody(const PushBinding& binding, const CallEvent& event);

// A POST to `authority` + `path` with the body, content-type and (when non-empty) an
// "authorization: Bearer <secret>" header.
PushRequest buildRequest(const PushBinding& binding, const CallEvent& event,
                         std::string_view authority, std::string_view path,
                         std::string_view bearer_secret);

// 2xx → kOk; 404/410 → kRemoveBinding (the webhook says the device is gone); 401/403 →
// kFatalConfig; 408/429/5xx → kRetry; other 4xx → kDrop.
PushAction actionForStatus(int status);

}  // namespace sipwake::push::webhook
