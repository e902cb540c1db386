// Re-push of accepted pushes that woke nobody. APNs and FCM accept a push and sometimes never
// deliver it; a device pushed for a parked request whose push was accepted but which has not
// registered within its provider's interval is pushed again, with the same call UUID (the app
// dedupes), a bounded number of times and only while the ring window leaves the device a whole
// interval to register (a re-push the device can no longer answer in time would only make an
// iOS app report a call that is cancelled at once).
//
// A re-push is scheduled only from an accepted answer: a refused push (APNs 429 per device, FCM
// QUOTA_EXCEEDED with Retry-After, 5xx) goes through the push retry path of WakeAndWait, which
// waits the provider's Retry-After (or its own backoff) and gives up when that ends after the
// ring window. So the providers' rate answers bound re-pushes too.
//
// Thread: a value type; RepushPolicy::next is pure.
#pragma once

#include <optional>

#include "common/clock.h"
#include "push/push_params.h"

namespace sipwake::routing {

struct RepushPolicy {
  // How long after a push was accepted the device has to register before it is pushed again.
  Duration apns_interval = seconds(5);
  Duration fcm_interval = seconds(5);
  Duration webpush_interval = seconds(5);
  int max_repushes = 2;  // per device and request; 0: no re-push

  Duration interval(push::Provider provider) const;

  // When to push a device again whose push (the first or the `done`-th re-push) the provider
  // accepted at `accepted_at`, for a request whose wait ends at `deadline`; nullopt: never.
  std::optional<TimePoint> next(push::Provider provider, int done, TimePoint accepted_at,
                                TimePoint deadline) const;
};

}  // namespace sipwake::routing
