// Redis endpoint URLs → a typed configuration. No I/O.
//   redis://[[user]:password@]host[:port][/db]                     one server, plain TCP
//   rediss://...                                                   one server, TLS
//   redis-sentinel://[[user]:password@]h1[:port],h2[:port]/<master-name>[/db]   via Sentinel
//   rediss-sentinel://...                                          via Sentinel, TLS everywhere
// Defaults: port 6379 (26379 for a sentinel), db 0. User and password may be percent-encoded;
// they authenticate to the data nodes (AUTH), not to the sentinels. The CA file for TLS is not
// part of the URL (RedisConfig::tls_ca_file, set by the caller from its own option).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sipwake::redis {

struct HostPort {
  std::string host;  // name, IPv4, or IPv6 without brackets
  std::uint16_t port = 0;
  bool operator==(const HostPort&) const = default;
};

struct RedisConfig {
  bool tls = false;
  std::string tls_ca_file;  // empty: the system trust store
  std::string user;         // empty: AUTH <password> (the "default" user)
  std::string password;     // empty: no AUTH
  int db = 0;
  // Direct mode: exactly one entry, the server. Sentinel mode: the sentinels, in order.
  std::vector<HostPort> hosts;
  std::string sentinel_master;  // non-empty = Sentinel mode
  bool sentinel() const { return !sentinel_master.empty(); }
};

// Parses one URL. Errors (kInvalidArgument) name the part that is wrong and what is expected;
// the caller prefixes the config key.
Result<RedisConfig> parseRedisUrl(std::string_view url);

// "host:port" with IPv6 in brackets (for logs and errors).
std::string toString(const HostPort& hp);

}  // namespace sipwake::redis
