#include "redis/url.h"

#include <charconv>

#include "sip/uri.h"

namespace sipwake::redis {
namespace {

constexpr std::uint16_t kDefaultPort = 6379;
constexpr std::uint16_t kDefaultSentinelPort = 26379;

Result<std::string> percentDecode(std::string_view in, const char* what) {
  auto out = sip::unescape(in);
  if (!out) {
    return invalidArgument(std::string("bad percent-encoding in the ") + what +
                           " (want %XX with two hex digits)");
  }
  return out;
}

template <typename Int>
bool parseDecimal(std::string_view s, Int& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

Result<HostPort> parseHostPort(std::string_view s, std::uint16_t default_port) {
  HostPort hp;
  std::string_view port_part;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos)
      return invalidArgument("IPv6 host '" + std::string(s) + "' lacks ']'");
    hp.host = std::string(s.substr(1, close - 1));
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return invalidArgument("unexpected '" + std::string(rest) + "' after IPv6 host");
      port_part = rest.substr(1);
      if (port_part.empty())
        return invalidArgument("empty port after '" + std::string(s.substr(0, close + 1)) + ":'");
    }
  } else {
    auto colon = s.find(':');
    hp.host = std::string(s.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_part = s.substr(colon + 1);
      if (port_part.empty()) return invalidArgument("empty port after '" + hp.host + ":'");
    }
  }
  if (hp.host.empty()) return invalidArgument("missing host");
  if (port_part.empty()) {
    hp.port = default_port;
  } else {
    unsigned port = 0;
    if (!parseDecimal(port_part, port) || port == 0 || port > 65535) {
      return invalidArgument("port '" + std::string(port_part) + "' is not a number in 1..65535");
    }
    hp.port = static_cast<std::uint16_t>(port);
  }
  return hp;
}

Result<int> parseDb(std::string_view s) {
  int db = 0;
  if (!parseDecimal(s, db) || db < 0) {
    return invalidArgument("database '" + std::string(s) + "' is not a non-negative number");
  }
  return db;
}

}  // namespace

std::string toString(const HostPort& hp) {
  if (hp.host.find(':') != std::string::npos) return "[" + hp.host + "]:" + std::to_string(hp.port);
  return hp.host + ":" + std::to_string(hp.port);
}

Result<RedisConfig> parseRedisUrl(std::string_view url) {
  RedisConfig cfg;
  auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    return invalidArgument(
        "'" + std::string(url) +
        "' is not a URL (want redis://host:port/db, rediss://, redis-sentinel:// "
        "or rediss-sentinel://)");
  }
  std::string_view scheme = url.substr(0, sep);
  bool sentinel = false;
  if (scheme == "redis") {
  } else if (scheme == "rediss") {
    cfg.tls = true;
  } else if (scheme == "redis-sentinel") {
    sentinel = true;
  } else if (scheme == "rediss-sentinel") {
    sentinel = cfg.tls = true;
  } else {
    return invalidArgument("unknown scheme '" + std::string(scheme) +
                           "' (want redis, rediss, redis-sentinel or rediss-sentinel)");
  }
  std::string_view rest = url.substr(sep + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return invalidArgument("query and fragment are not supported in a Redis URL");
  }
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path =
      authority.size() < rest.size() ? rest.substr(authority.size() + 1) : std::string_view();
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return invalidArgument("credentials must be 'user:password@' or ':password@'");
    }
    auto user = percentDecode(userinfo.substr(0, colon), "user");
    if (!user) return user.status();
    auto password = percentDecode(userinfo.substr(colon + 1), "password");
    if (!password) return password.status();
    if (password->empty()) return invalidArgument("empty password in the credentials");
    cfg.user = std::move(*user);
    cfg.password = std::move(*password);
  }
  if (authority.empty()) return invalidArgument("missing host");
  while (true) {
    auto comma = authority.find(',');
    auto hp =
        parseHostPort(authority.substr(0, comma), sentinel ? kDefaultSentinelPort : kDefaultPort);
    if (!hp) return hp.status();
    cfg.hosts.push_back(std::move(*hp));
    if (comma == std::string_view::npos) break;
    authority = authority.substr(comma + 1);
  }
  if (!sentinel && cfg.hosts.size() > 1) {
    return invalidArgument(
        "a redis:// URL names one server (use redis-sentinel:// for several sentinels)");
  }
  if (sentinel) {
    auto slash = path.find('/');
    cfg.sentinel_master = std::string(path.substr(0, slash));
    if (cfg.sentinel_master.empty()) {
      return invalidArgument("missing master name (want " + std::string(scheme) +
                             "://host:26379,.../<master-name>[/db])");
    }
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  if (!path.empty()) {
    if (path.find('/') != std::string_view::npos) {
      return invalidArgument("unexpected path '/" + std::string(path) + "' (want /db)");
    }
    auto db = parseDb(path);
    if (!db) return db.status();
    cfg.db = *db;
  }
  return cfg;
}

}  // namespace sipwake::redis
