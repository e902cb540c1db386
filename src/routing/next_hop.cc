#include "routing/next_hop.h"

#include <cctype>

#include "transport/response_routing.h"

namespace sipwake::routing {
namespace {

bool equalsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<transport::Protocol> uriProtocol(const sip::Uri& uri, transport::Protocol default_protocol) {
  if (const sip::Param* t = uri.param("transport"); t != nullptr && t->has_value) {
    if (equalsNoCase(t->value, "udp")) return transport::Protocol::kUdp;
    if (equalsNoCase(t->value, "tcp")) {
      return uri.scheme == sip::Uri::Scheme::kSips ? transport::Protocol::kTls
                                                   : transport::Protocol::kTcp;
    }
    if (equalsNoCase(t->value, "tls")) return transport::Protocol::kTls;
    return invalidArgument("unsupported transport " + std::string(t->value));
  }
  if (uri.scheme == sip::Uri::Scheme::kSips) return transport::Protocol::kTls;
  return default_protocol;
}

Result<transport::SendTarget> literalTarget(const sip::Uri& uri) {
  if (!uri.isSipOrSips()) return invalidArgument("not a sip/sips URI");
  auto protocol = uriProtocol(uri, transport::Protocol::kUdp);
  if (!protocol) return protocol.status();
  std::string_view host = uri.hostWithoutBrackets();
  if (const sip::Param* m = uri.param("maddr"); m != nullptr && m->has_value) host = m->value;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::uint16_t port = uri.has_port ? uri.port : transport::defaultPort(*protocol);
  if (port == 0) return invalidArgument("port 0");
  auto address = transport::Address::parse(host, port);
  if (!address) {
    bool ipish = host.find(':') != std::string_view::npos || sip::isIpv4Address(host);
    if (ipish) return address.status();
    return notFound("host name needs DNS: " + std::string(host));
  }
  transport::SendTarget target;
  target.protocol = *protocol;
  target.remote = *address;
  return target;
}

Result<std::string> outboundProxyUri(std::string_view spec) {
  while (!spec.empty() && std::isspace(static_cast<unsigned char>(spec.front()))) {
    spec.remove_prefix(1);
  }
  while (!spec.empty() && std::isspace(static_cast<unsigned char>(spec.back()))) {
    spec.remove_suffix(1);
  }
  if (spec.empty()) return invalidArgument("empty outbound proxy");
  std::string text;
  if (spec.starts_with("sip:") || spec.starts_with("sips:")) {
    text = std::string(spec);
  } else {
    text = "sip:" + std::string(spec);
  }
  auto uri = sip::parseUri(text);
  if (!uri)
    return invalidArgument("outbound proxy \"" + std::string(spec) +
                           "\": " + uri.status().message());
  if (!uri->isSipOrSips() || uri->host.empty() || !uri->user.empty()) {
    return invalidArgument("outbound proxy \"" + std::string(spec) +
                           "\": expected host[:port][;transport=udp|tcp|tls]");
  }
  if (auto p = uriProtocol(*uri, transport::Protocol::kUdp); !p) {
    return invalidArgument("outbound proxy \"" + std::string(spec) + "\": " + p.status().message());
  }
  return text;
}

}  // namespace sipwake::routing
