// Flow tokens in our Record-Route URI (RFC 5626 §5.3 style): the user part of the URI we record
// names the connection/source address of each side of the dialog that talks to us directly, so
// that in-dialog requests reach a UA behind NAT or over its TCP/TLS connection instead of its
// (unreachable) Contact. HMAC-SHA256 protected (truncated to 64 bits) so a forged token is
// ignored rather than used to steer traffic.
//
// Thread: immutable after construction; encode()/decode() may run on any thread.
#pragma once

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

class FlowTokenCodec {
 public:
  // `secret`: at least 16 bytes, or empty for a random per-process secret (tokens then do not
  // survive a restart, which is fine: the connections they name do not either).
  explicit FlowTokenCodec(std::string secret = {});

  // A URI user part (unreserved characters only). Empty for an empty pair.
  std::string encode(const FlowPair& pair) const;
  // nullopt when `user` is not a token of ours or fails the MAC check.
  std::optional<FlowPair> decode(std::string_view user) const;

 private:
  std::string mac(std::string_view data) const;  // 16 lower-case hex chars
  std::string secret_;
};

}  // namespace sipwake::routing
