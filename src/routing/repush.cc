#include "routing/repush.h"

namespace sipwake::routing {

Duration RepushPolicy::interval(push::Provider provider) const {
  switch (provider) {
    case push::Provider::kApns:
      return apns_interval;
    case push::Provider::kFcm:
      return fcm_interval;
    case push::Provider::kWebpush:
      return webpush_interval;
  }
  return webpush_interval;
}

std::optional<TimePoint> RepushPolicy::next(push::Provider provider, int done,
                                            TimePoint accepted_at, TimePoint deadline) const {
  if (done >= max_repushes) return std::nullopt;
  const Duration wait = interval(provider);
  if (wait <= Duration::zero()) return std::nullopt;
  const TimePoint at = accepted_at + wait;
  // The re-pushed device needs a whole interval of the ring window to register.
  if (at + wait > deadline) return std::nullopt;
  return at;
}

}  // namespace sipwake::routing
