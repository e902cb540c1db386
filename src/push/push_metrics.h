// The push counters: push.sent.{provider} and push.failed.{provider}.{reason}, counted once per
// push by the sender (the layer that knows the provider's answer). The reason label comes from a
// fixed vocabulary (kFailReasons): a provider's reason string outside it counts as "other", so
// the number of series is bounded whatever the network sends.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "common/stats.h"
#include "push/sender.h"

namespace sipwake::push {

// APNs reasons, FCM error codes, then sipwake's own (no provider answer), then "other".
inline constexpr std::string_view kFailReasons[] = {
    // APNs (Apple's HTTP/2 provider API reason strings)
    "BadCollapseId", "BadDeviceToken", "BadExpirationDate", "BadMessageId", "BadPriority",
    "BadTopic", "DeviceTokenNotForTopic", "DuplicateHeaders", "IdleTimeout", "InvalidPushType",
    "MissingDeviceToken", "MissingTopic", "PayloadEmpty", "TopicDisallowed", "BadCertificate",
    "BadCertificateEnvironment", "ExpiredProviderToken", "Forbidden", "InvalidProviderToken",
    "MissingProviderToken", "UnrelatedKeyIdInToken", "BadEnvironmentKeyIdInToken",
    "BadEnvironmentKeyInToken", "BadProviderToken", "BadPath", "MethodNotAllowed", "ExpiredToken",
    "Unregistered", "PayloadTooLarge", "TooManyProviderTokenUpdates", "TooManyRequests",
    "InternalServerError", "ServiceUnavailable", "Shutdown",
    // FCM (HTTP v1 error codes)
    "UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH", "THIRD_PARTY_AUTH_ERROR",
    "PERMISSION_DENIED", "UNAUTHENTICATED", "QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED", "UNAVAILABLE",
    "INTERNAL", "UNSPECIFIED_ERROR", "NOT_FOUND",
    // sipwake: no provider answer, or an answer with a status but no reason
    "timed_out", "unavailable", "error", "no_app", "refresh_voip_only", "shut_down", "credentials",
    "http_4xx", "http_5xx", "other"};
inline constexpr std::size_t kFailReasonCount = std::size(kFailReasons);

// The index in kFailReasons of a PushOutcome's reason; kFailReasonCount - 1 ("other") for any
// string outside the vocabulary.
std::size_t failReasonIndex(std::string_view reason);

// push.sent.{provider} and every push.failed.{provider}.{reason}, resolved at construction (the
// Stats registry's lock and lookup), then counted lock-free. Thread: count() any.
class PushCounters {
 public:
  explicit PushCounters(std::string_view provider);
  // The process's counters of "apns", "fcm", "webhook" or "webpush" (any other name: "webpush"),
  // resolved on first use.
  static const PushCounters& of(std::string_view provider);
  void count(const PushOutcome& o) const;

 private:
  Counter* sent_;
  std::array<Counter*, kFailReasonCount> failed_{};
};

}  // namespace sipwake::push
