// RFC 8599 §6: waking a device for a mid-dialog request that names it by its PURR (wake.h).
#include "common/log.h"
#include "common/stats.h"
#include "registrar/services.h"
#include "routing/wake.h"
#include "sip/uri.h"

namespace sipwake::routing {
namespace {

const StatCounter kPurrUnknown{"wake.purr_unknown"};
const StatCounter kPurrAwake{"wake.purr_awake"};
const StatCounter kPurrWakes{"wake.purr_wakes"};

Resolution unknownPushResource() {
  Resolution r;
  r.outcome = Resolution::Outcome::kRefused;
  r.status = 404;
  r.reason = "Not Found - Unknown Push Resource";
  return r;
}

}  // namespace

std::optional<Resolution> WakeAndWait::resolveMidDialog(ContextId context,
                                                        const sip::Message& request,
                                                        const RequestOrigin& origin) {
  if (deps_.purrs == nullptr) return std::nullopt;  // we issue none: not ours to interpret
  const sip::Param* param = request.requestUri().param("pn-purr");
  if (param == nullptr) return std::nullopt;
  const location::SysSeconds wall = deps_.wall_clock();
  std::optional<location::PurrRecord> purr;
  if (location::isPurrShaped(param->value)) purr = deps_.purrs->use(param->value, wall);
  // The PURR's device must still have its push binding, under the same AOR (not opted out,
  // removed as dead, or moved to another user since).
  std::optional<location::PushRecord> record;
  if (purr) record = deps_.push_store->lookupPushDevice(purr->device_key);
  if (!record || record->aor != purr->aor || record->expires_at <= wall) {
    kPurrUnknown.inc();
    SW_LOG_DEBUG("wake: {} (Call-ID {}): unknown or expired PURR", request.methodText(),
                 request.callId());
    return unknownPushResource();
  }
  auto aor_uri = sip::parseUri(record->aor);
  if (!aor_uri) return unknownPushResource();
  // Awake (a live SIP binding of this device): on to the dialog's remote target as usual.
  Resolution live = deps_.inner->resolve(context, *aor_uri);
  if (!liveKeysOf(*record, live.targets).empty()) {
    kPurrAwake.inc();
    return std::nullopt;
  }
  kPurrWakes.inc();
  const std::string aor = record->aor;
  std::vector<location::PushRecord> records;
  records.push_back(*std::move(record));
  Resolution r = park(context, request, origin, aor, std::move(records), Resolution{}, true);
  if (r.outcome == Resolution::Outcome::kTargets && !r.more_may_come && r.targets.empty()) {
    // Not parked (its push binding unreadable): nothing can reach it.
    r.outcome = Resolution::Outcome::kRefused;
    r.status = 480;
    r.reason = "Temporarily Unavailable - Device Cannot Be Woken";
  }
  return r;
}

}  // namespace sipwake::routing
