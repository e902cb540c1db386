// Trusted peers (a PBX, a trunk): source addresses whose requests skip digest authentication.
// Thread: immutable after parse(); contains() may be called from any thread concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sipwake::auth {

class TrustedPeers {
 public:
  TrustedPeers() = default;  // trusts nobody

  // Each entry is an IPv4 or IPv6 address, optionally "/prefix" ("10.0.0.0/8", "::1/128",
  // "192.0.2.7", "[2001:db8::1]"). Host bits below the prefix are ignored ("10.1.2.3/8" means
  // 10.0.0.0/8). InvalidArgument names the offending entry.
  static Result<TrustedPeers> parse(const std::vector<std::string>& entries);

  // `ip` is an address as text, with or without IPv6 brackets. IPv4-mapped IPv6 addresses
  // ("::ffff:10.1.2.3") match IPv4 ranges. Unparseable text is never trusted.
  bool contains(std::string_view ip) const;
  bool empty() const { return v4_.empty() && v6_.empty(); }

 private:
  struct V4Range {
    std::uint32_t network;  // host order, already masked
    std::uint32_t mask;
  };
  struct V6Range {
    std::array<std::uint8_t, 16> network;  // already masked
    std::uint8_t prefix;
  };
  bool containsV4(std::uint32_t addr) const;
  bool containsV6(const std::array<std::uint8_t, 16>& addr) const;

  std::vector<V4Range> v4_;
  std::vector<V6Range> v6_;
};

namespace internal {
// Parses an address (IPv4 dotted quad, or IPv6 with or without brackets) with no allocation.
// family is 4 or 6; for 4 the address is in bytes[0..4).
struct IpAddress {
  int family = 0;
  std::array<std::uint8_t, 16> bytes{};
};
bool parseIp(std::string_view text, IpAddress* out);
}  // namespace internal

}  // namespace sipwake::auth
