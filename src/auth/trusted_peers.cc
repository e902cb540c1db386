#include "auth/trusted_peers.h"

#include <arpa/inet.h>

#include <cstring>

namespace sipwake::auth {
namespace internal {

bool parseIp(std::string_view text, IpAddress* out) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, out->bytes.data()) != 1) return false;
    out->family = 4;
    return true;
  }
  if (inet_pton(AF_INET6, buf, out->bytes.data()) != 1) return false;
  out->family = 6;
  return true;
}

}  // namespace internal

namespace {

std::uint32_t v4Of(const std::uint8_t* b) {
  return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) |
         b[3];
}

bool isV4Mapped(const std::array<std::uint8_t, 16>& b) {
  for (int i = 0; i < 10; ++i) {
    if (b[i] != 0) return false;
  }
  return b[10] == 0xFF && b[11] == 0xFF;
}

}  // namespace

Result<TrustedPeers> TrustedPeers::parse(const std::vector<std::string>& entries) {
  TrustedPeers peers;
  for (const std::string& entry : entries) {
    std::string_view text = entry;
    std::string_view addr = text;
    int prefix = -1;
    if (std::size_t slash = text.find('/'); slash != std::string_view::npos) {
      addr = text.substr(0, slash);
      std::string_view p = text.substr(slash + 1);
      if (p.empty() || p.size() > 3)
        return invalidArgument("trusted peer '" + entry + "': bad prefix");
      prefix = 0;
      for (char c : p) {
        if (c < '0' || c > '9') return invalidArgument("trusted peer '" + entry + "': bad prefix");
        prefix = prefix * 10 + (c - '0');
      }
    }
    internal::IpAddress ip;
    if (!internal::parseIp(addr, &ip)) {
      return invalidArgument("trusted peer '" + entry + "': not an IP address");
    }
    if (ip.family == 4) {
      if (prefix < 0) prefix = 32;
      if (prefix > 32) return invalidArgument("trusted peer '" + entry + "': prefix above 32");
      std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
      peers.v4_.push_back({v4Of(ip.bytes.data()) & mask, mask});
    } else {
      if (prefix < 0) prefix = 128;
      if (prefix > 128) return invalidArgument("trusted peer '" + entry + "': prefix above 128");
      V6Range r{ip.bytes, static_cast<std::uint8_t>(prefix)};
      for (int i = 0; i < 16; ++i) {
        int keep = prefix - 8 * i;
        if (keep >= 8) continue;
        r.network[i] &= keep <= 0 ? 0 : static_cast<std::uint8_t>(0xFF << (8 - keep));
      }
      peers.v6_.push_back(r);
    }
  }
  return peers;
}

bool TrustedPeers::containsV4(std::uint32_t addr) const {
  for (const V4Range& r : v4_) {
    if ((addr & r.mask) == r.network) return true;
  }
  return false;
}

bool TrustedPeers::containsV6(const std::array<std::uint8_t, 16>& addr) const {
  for (const V6Range& r : v6_) {
    int full = r.prefix / 8;
    if (std::memcmp(addr.data(), r.network.data(), static_cast<std::size_t>(full)) != 0) continue;
    int rest = r.prefix % 8;
    if (rest != 0) {
      auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
      if ((addr[full] & mask) != r.network[full]) continue;
    }
    return true;
  }
  return false;
}

bool TrustedPeers::contains(std::string_view ip) const {
  if (empty()) return false;
  internal::IpAddress a;
  if (!internal::parseIp(ip, &a)) return false;
  if (a.family == 4) return containsV4(v4Of(a.bytes.data()));
  if (isV4Mapped(a.bytes) && containsV4(v4Of(a.bytes.data() + 12))) return true;
  return containsV6(a.bytes);
}

}  // namespace sipwake::auth
