// The user part of the URI sipwake writes in Record-Route: a flow token (RFC 5626 §5.3 style)
// naming the connection/source address of each side of the dialog that talks to us directly, so
// that in-dialog requests reach a UA behind NAT or over its TCP/TLS connection instead of its
// (unreachable) Contact, and a signature that binds the value to one dialog. An in-dialog request
// is forwarded only along a Route of ours that verifies: without it sipwake would relay a
// stranger's BYE / MESSAGE / INVITE with a To-tag to any Request-URI (docs/security.md,
// "Relaying").
//
// Signature: HMAC-SHA256 (truncated to 64 bits) over the token body, the Call-ID and the tag of
// the dialog's caller (the From tag of the dialog-creating request). Requests from the callee
// carry that tag as their To tag, so decode() accepts either tag of the request.
//
// Keys rotate: the key of epoch n = floor(unix time / rotation) is HMAC(secret, epoch), and a
// token carries n mod 4096 (3 hex digits) as its key id. The key of epoch n signs during
// [n·rotation, (n+1)·rotation) and still verifies for `overlap` after that, so a Record-Route
// keeps working for at least `overlap` (longer than any call should last), and a value copied
// out of one dialog stops working after at most rotation + overlap.
//
// Node routes (several nodes on one store, docs/architecture.md "Several nodes"): the node that
// took a REGISTER puts <sip:<node route token>@<its address>;lr> in front of the binding's Path,
// so that another node's request for that binding reaches it and it sends the request over the
// phone's flow. That token names the phone's flow alone and is signed for no dialog (prefix "nr",
// part of the signed body, so neither kind of token passes for the other): every node holding the
// same secret ([proxy] route_secret_file) can verify it.
//
// Format: "ft" <upstream> "." <downstream> "." <key id: 3 hex> <MAC: 16 hex>, each side "x" or
// <u|t|s><hex address>-<hex port>-<hex flow id>. Unreserved characters only.
//
// Thread: immutable after construction; encode()/decode() may run on any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "transport/transport.h"

namespace sipwake::routing {

struct FlowRef {
  transport::Protocol protocol = transport::Protocol::kUdp;
  transport::Address remote;
  transport::FlowId flow = 0;  // 0 for UDP or unknown

  transport::SendTarget sendTarget() const;
  // True if a message that arrived over (protocol, remote, flow) came over this flow.
  bool matches(transport::Protocol p, const transport::Address& from, transport::FlowId f) const;
};

// The two ends of a dialog as seen from us: the caller side (upstream) and callee side.
struct FlowPair {
  std::optional<FlowRef> upstream;
  std::optional<FlowRef> downstream;
  bool empty() const { return !upstream && !downstream; }
};

// Key material for the signatures. A secret that survives restarts keeps the Record-Routes of
// calls set up before a restart valid.
struct RouteKeyConfig {
  std::string secret;  // >= 16 bytes; empty: a random one for this codec
  std::chrono::seconds rotation{3600};
  std::chrono::seconds overlap{86400};  // REQUIRES: overlap < kMaxOverlapEpochs * rotation
  static constexpr std::int64_t kMaxOverlapEpochs = 4000;
};

// The dialog a request belongs to, as the signature sees it.
struct DialogRef {
  std::string_view call_id;
  std::string_view from_tag;
  std::string_view to_tag;  // empty outside a dialog
};

class FlowTokenCodec {
 public:
  explicit FlowTokenCodec(RouteKeyConfig keys = {});
  // 32 random bytes: a secret for one process, to be shared by all its codecs.
  static std::string randomSecret();

  // The URI user part for a Record-Route of the dialog that `call_id` and the caller's tag
  // `caller_tag` name, signed with the key of `unix_now`'s epoch.
  std::string encode(const FlowPair& pair, std::string_view call_id, std::string_view caller_tag,
                     std::int64_t unix_now) const;

  enum class Verdict : std::uint8_t {
    kValid,
    kNotSigned,     // not a token at all (no user part, a user name, garbage)
    kBadSignature,  // a token whose MAC fits neither tag of the request (forged, other dialog)
    kExpired,       // a token whose key id names no key that verifies at `unix_now`
  };
  // Who sent the request, as the signature tells (the caller's tag is its From tag or its To
  // tag); kUnknown when both tags are the same or it is not kValid.
  enum class Sender : std::uint8_t { kUnknown, kCaller, kCallee };
  struct Decoded {
    Verdict verdict = Verdict::kNotSigned;
    FlowPair pair;  // when kValid
    Sender sender = Sender::kUnknown;
  };
  Decoded decode(std::string_view user, const DialogRef& dialog, std::int64_t unix_now) const;

  // The user part of a node route naming the phone's `flow` at this node.
  std::string encodeNodeRoute(const FlowRef& flow, std::int64_t unix_now) const;
  // The flow a node route names, when `user` is one signed with our secret and not expired.
  std::optional<FlowRef> decodeNodeRoute(std::string_view user, std::int64_t unix_now) const;
  // The same with the verdict: kNotSigned when `user` is no node route at all, kBadSignature
  // for a forged one or one of another secret, kExpired; kValid with pair.downstream the flow.
  Decoded verifyNodeRoute(std::string_view user, std::int64_t unix_now) const;

 private:
  static constexpr std::string_view kNodeRoutePrefix = "nr";
  std::string encodeWith(std::string_view prefix, const FlowPair& pair, std::string_view call_id,
                         std::string_view caller_tag, std::int64_t unix_now) const;
  Decoded decodeWith(std::string_view prefix, std::string_view user, const DialogRef& dialog,
                     std::int64_t unix_now) const;
  std::int64_t epochOf(std::int64_t unix_now) const;
  std::string keyFor(std::int64_t epoch) const;
  // 16 lower-case hex chars over `body`, `call_id` and `tag`.
  std::string mac(const std::string& key, std::string_view body, std::string_view call_id,
                  std::string_view tag) const;
  std::string secret_;
  std::int64_t rotation_s_;
  std::int64_t overlap_s_;
};

}  // namespace sipwake::routing
