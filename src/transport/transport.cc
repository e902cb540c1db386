#include "transport/transport.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace sipwake::transport {

std::string_view protocolName(Protocol p) {
  switch (p) {
    case Protocol::kUdp:
      return "UDP";
    case Protocol::kTcp:
      return "TCP";
    case Protocol::kTls:
      return "TLS";
  }
  return "UDP";
}

namespace {
bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}
}  // namespace

Result<Protocol> protocolFromName(std::string_view name) {
  if (equalsIgnoreCase(name, "UDP")) return Protocol::kUdp;
  if (equalsIgnoreCase(name, "TCP")) return Protocol::kTcp;
  if (equalsIgnoreCase(name, "TLS")) return Protocol::kTls;
  return invalidArgument("unknown transport protocol '" + std::string(name) + "'");
}

Result<Address> Address::parse(std::string_view ip, std::uint16_t port) {
  // inet_pton needs a NUL-terminated string; 46 bytes is INET6_ADDRSTRLEN.
  char buf[64];
  if (ip.empty() || ip.size() >= sizeof(buf)) {
    return invalidArgument("not an IP address: '" + std::string(ip) + "'");
  }
  std::memcpy(buf, ip.data(), ip.size());
  buf[ip.size()] = '\0';
  Address a;
  a.port = port;
  if (ip.find(':') != std::string_view::npos) {
    if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) {
      return invalidArgument("not an IPv6 address: '" + std::string(ip) + "'");
    }
    a.v6 = true;
    return a;
  }
  if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) {
    return invalidArgument("not an IPv4 address: '" + std::string(ip) + "'");
  }
  return a;
}

Result<Address> Address::parseHostPort(std::string_view host_port, std::uint16_t default_port) {
  std::string_view host = host_port;
  std::string_view port_text;
  if (!host_port.empty() && host_port.front() == '[') {
    std::size_t close = host_port.find(']');
    if (close == std::string_view::npos) {
      return invalidArgument("unterminated '[' in '" + std::string(host_port) + "'");
    }
    host = host_port.substr(1, close - 1);
    std::string_view rest = host_port.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return invalidArgument("junk after ']' in '" + std::string(host_port) + "'");
      }
      port_text = rest.substr(1);
      if (port_text.empty())
        return invalidArgument("empty port in '" + std::string(host_port) + "'");
    }
  } else {
    std::size_t colon = host_port.rfind(':');
    if (colon != std::string_view::npos) {
      if (host_port.find(':') != colon) {
        // Several colons without brackets: a bare IPv6 address, no port.
        return parse(host_port, default_port);
      }
      host = host_port.substr(0, colon);
      port_text = host_port.substr(colon + 1);
      if (port_text.empty())
        return invalidArgument("empty port in '" + std::string(host_port) + "'");
    }
  }
  std::uint16_t port = default_port;
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || value > 65535) {
      return invalidArgument("bad port in '" + std::string(host_port) + "'");
    }
    port = static_cast<std::uint16_t>(value);
  }
  return parse(host, port);
}

std::string Address::ip() const {
  char buf[64];
  if (inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof(buf)) == nullptr) return {};
  return buf;
}

std::string Address::hostForUri() const {
  if (!v6) return ip();
  std::string out(1, '[');  // appended, not "[" + ip(): GCC 12 warns -Wrestrict at -O3 (PR105651)
  out += ip();
  out += ']';
  return out;
}

std::string Address::toString() const { return hostForUri() + ":" + std::to_string(port); }

std::size_t AddressHash::operator()(const Address& a) const noexcept {
  // FNV-1a over the significant bytes, family and port.
  std::uint64_t h = 1469598103934665603ull;
  std::size_t n = a.v6 ? 16 : 4;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= a.bytes[i];
    h *= 1099511628211ull;
  }
  h ^= (static_cast<std::uint64_t>(a.port) << 1) | (a.v6 ? 1u : 0u);
  h *= 1099511628211ull;
  return static_cast<std::size_t>(h);
}

}  // namespace sipwake::transport
