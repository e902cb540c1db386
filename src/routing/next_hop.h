// Next-hop selection (RFC 3263 §4): which transport, address and port a request goes to when it
// is sent towards a URI (a Route value or a Request-URI).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "sip/uri.h"
#include "transport/transport.h"

namespace sipwake::routing {

// The transport a URI asks for: `transport` parameter (udp/tcp/tls), else TLS for sips:, else
// `default_protocol`. InvalidArgument for a transport we do not speak (sctp, ws, ...).
Result<transport::Protocol> uriProtocol(const sip::Uri& uri, transport::Protocol default_protocol);

// For a sip/sips URI whose host (or maddr) is an IP literal: the target, with the default port
// of the protocol (5060, TLS 5061) when the URI has none. kNotFound when the host is a name
// (needs DNS), InvalidArgument for anything else we cannot route to.
Result<transport::SendTarget> literalTarget(const sip::Uri& uri);

// Asynchronous RFC 3263 resolution for URIs whose host is a name.
// Thread: resolve() and `done` run on the loop of the Proxy that owns the resolver.
class Resolver {
 public:
  using Done = std::function<void(Result<transport::SendTarget>)>;
  virtual ~Resolver() = default;
  // Resolves `uri` (host is a name). `done` runs exactly once, possibly inside resolve().
  // The URI's views need not outlive the call.
  virtual void resolve(const sip::Uri& uri, Done done) = 0;
};

// Normalises the [proxy] outbound_proxy setting ("host", "host:port", "[v6]:port", optionally
// ";transport=tcp", or a full "sip:"/"sips:" URI) to a URI text ("sip:host:port;transport=tcp").
Result<std::string> outboundProxyUri(std::string_view spec);

}  // namespace sipwake::routing
