// Registrar bindings (RFC 3261 §10.3, RFC 5626 outbound, RFC 3327 Path) as plain data.
// No locking and no I/O here: a Binding is a value copied between the store, the registrar and
// the proxy core.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/push_binding.h"

namespace sipwake::location {

// Wall-clock seconds. Binding expiry survives restarts, so it is wall time, never steady_clock.
using SysSeconds = std::chrono::sys_seconds;

// The flow a REGISTER arrived on (RFC 5626 §3.2: the registrar must route back over it).
struct ReceivedFlow {
  std::string protocol;   // "udp", "tcp", "tls" (lower case)
  std::string source_ip;  // peer address, textual (IPv6 without brackets)
  std::uint16_t source_port = 0;
  std::string local_listener;  // "proto:ip:port" of the listener the request came in on
  // Connection/flow id of the transport layer. Process-local: it is NOT persisted and reads as 0
  // after a restart (the connection is gone; the device must re-register or be reached by push).
  std::uint64_t flow_id = 0;

  friend bool operator==(const ReceivedFlow&, const ReceivedFlow&) = default;
};

struct Binding {
  std::string aor;          // canonical address-of-record, e.g. "sip:alice@example.com"
  std::string contact_uri;  // Contact URI text, as the registrar canonicalised it
  std::string instance_id;  // +sip.instance value (e.g. "<urn:uuid:...>"); empty when absent
  std::optional<std::uint32_t> reg_id;  // RFC 5626 reg-id; ignored when instance_id is empty
  std::string call_id;                  // Call-ID of the REGISTER that last wrote this binding
  std::uint32_t cseq = 0;               // CSeq number of that REGISTER
  SysSeconds expires_at{};        // absolute expiry; the binding is dead at and after this instant
  int q_milli = 1000;             // q-value times 1000 (0..1000); integers so comparisons are exact
  std::vector<std::string> path;  // RFC 3327 Path URIs, in header order
  ReceivedFlow received;
  std::string user_agent;
  SysSeconds
      registered_at{};  // time of the REGISTER that last wrote this binding (set by the store)
  // The push binding the Contact carried (typed; stored as JSON on disk, parsed only at load).
  // Shared, not copied, between the snapshots of the AOR.
  push::SharedPushBinding push;
  // The Contact's header parameters as written (";+sip.instance=\"<urn:...>\";reg-id=1;..."),
  // except expires and q (held above); URI parameters are part of contact_uri. Empty if none.
  std::string contact_params;

  friend bool operator==(const Binding&, const Binding&) = default;
};

// Identity of a binding within its AOR. The rule:
//   * instance_id present  -> (instance_id, reg_id). RFC 5626 §6: a device re-registering with the
//     same +sip.instance and reg-id replaces its earlier binding even when its Contact URI changed
//     (new IP after a network change). An instance without reg-id (RFC 5627 style) keys on the
//     instance alone, so the device still replaces rather than piles up.
//   * instance_id absent   -> the Contact URI text (RFC 3261 §10.3 step 7 compares URIs). reg_id
//     without an instance is ignored, as RFC 5626 §6 requires.
// The key is a string so it can be the SQL primary key; "i:" / "c:" prefixes keep the two
// spaces disjoint. Contact URIs must be canonicalised by the caller for equal URIs to match.
std::string bindingKey(const Binding& b);

}  // namespace sipwake::location
