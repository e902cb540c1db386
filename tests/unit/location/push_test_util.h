// Push-binding writes for tests, through LocationStore::applyRegistration like the registrar's.
// For stores that complete inline (MemoryLocationStore with an inline executor).
#pragma once

#include <string>

#include "location/location_store.h"

namespace sipwake::location::testing {

inline Status applyPushOp(LocationStore& store, std::string aor, PushOp op) {
  RegistrationChange change;
  change.aor = std::move(aor);
  change.now = op.record.registered_at;
  change.push_ops.push_back(std::move(op));
  Status out = unavailable("not completed inline");
  store.applyRegistration(
      std::move(change), [](std::function<void()> f) { f(); },
      [&out](Result<std::vector<Binding>> r) { out = r.isOk() ? Status::ok() : r.status(); });
  return out;
}

inline Status upsertPush(LocationStore& store, PushRecord record) {
  PushOp op;
  op.record = std::move(record);
  std::string aor = op.record.aor;
  return applyPushOp(store, std::move(aor), std::move(op));
}

inline Status removePushIdentity(LocationStore& store, std::string aor, std::string identity) {
  PushOp op;
  op.kind = PushOp::Kind::kRemoveIdentity;
  op.record.identity = std::move(identity);
  return applyPushOp(store, std::move(aor), std::move(op));
}

inline Status removePushDevice(LocationStore& store, std::string device_key) {
  PushOp op;
  op.kind = PushOp::Kind::kRemoveDevice;
  op.record.device_key = std::move(device_key);
  return applyPushOp(store, "sip:any@invalid", std::move(op));
}

}  // namespace sipwake::location::testing
