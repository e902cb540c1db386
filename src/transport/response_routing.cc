#include "transport/response_routing.h"

#include <charconv>
#include <string>

namespace sipwake::transport {

namespace {

std::string_view stripBrackets(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

Result<Address> ipLiteral(std::string_view host, std::uint16_t port, const char* what) {
  auto a = Address::parse(stripBrackets(host), port);
  if (!a) {
    return invalidArgument(std::string(what) + " '" + std::string(host) +
                           "' is not an IP literal (needs RFC 3263 resolution)");
  }
  return a;
}

}  // namespace

std::uint16_t defaultPort(Protocol p) { return p == Protocol::kTls ? 5061 : 5060; }

Result<SendTarget> responseTarget(const sip::Via& via, Protocol protocol, const Address& remote,
                                  FlowId flow) {
  SendTarget t;
  t.protocol = protocol;
  std::uint16_t sent_by_port = via.has_port && via.port != 0 ? via.port : defaultPort(protocol);
  const sip::Param* received = via.received();

  if (protocol != Protocol::kUdp) {
    t.flow = flow;
    if (received != nullptr && received->has_value) {
      auto a = ipLiteral(received->value, sent_by_port, "received");
      if (!a) return a.status();
      t.remote = *a;
    } else {
      t.remote = remote;
      t.remote.port = sent_by_port;
    }
    return t;
  }

  if (const sip::Param* maddr = via.maddr(); maddr != nullptr && maddr->has_value) {
    auto a = ipLiteral(maddr->value, via.has_port && via.port != 0 ? via.port : 5060, "maddr");
    if (!a) return a.status();
    t.remote = *a;
    return t;
  }
  if (via.rport() != nullptr) {
    t.remote = remote;
    return t;
  }
  if (received != nullptr && received->has_value) {
    auto a = ipLiteral(received->value, sent_by_port, "received");
    if (!a) return a.status();
    t.remote = *a;
    return t;
  }
  auto a = ipLiteral(via.host, sent_by_port, "sent-by host");
  if (!a) return a.status();
  t.remote = *a;
  return t;
}

Status stampReceivedVia(sip::Message& request, const Address& source) {
  auto via_or = request.topVia();
  if (!via_or) return via_or.status();
  const sip::Via& via = *via_or;

  const sip::Param* rport = via.rport();
  bool fill_rport = rport != nullptr && (!rport->has_value || rport->value.empty());
  auto host_ip = Address::parse(stripBrackets(via.host), source.port);
  bool host_differs = !host_ip || host_ip->v6 != source.v6 || host_ip->bytes != source.bytes;
  bool need_received = host_differs || rport != nullptr;
  const sip::Param* old_received = via.received();
  std::string src_ip = source.ip();
  if (!fill_rport) {
    // Nothing to change if no received is due, or the right one is already there.
    if (!need_received && old_received == nullptr) return Status::ok();
    if (need_received && old_received != nullptr && old_received->value == src_ip) {
      return Status::ok();
    }
  }

  std::string v;
  v.reserve(via.text.size() + src_ip.size() + 24);
  v.append(via.protocol_name).append("/").append(via.protocol_version).append("/");
  v.append(via.transport).append(" ").append(via.host);
  if (via.has_port) v.append(":").append(std::to_string(via.port));
  bool wrote_received = false;
  for (const sip::Param& p : via.params) {
    if (equalsIgnoreCase(p.name, "received")) {
      if (!need_received || wrote_received) continue;  // drop a client-supplied one
      v.append(";received=").append(src_ip);
      wrote_received = true;
      continue;
    }
    v.append(";").append(p.name);
    if (&p == rport && fill_rport) {
      v.append("=").append(std::to_string(source.port));
    } else if (p.has_value) {
      v.append("=").append(p.value);
    }
  }
  if (need_received && !wrote_received) v.append(";received=").append(src_ip);
  request.popVia();
  request.pushVia(std::move(v));
  return Status::ok();
}

}  // namespace sipwake::transport
