#include "server/config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>
#include <tuple>
#include <utility>

#include "auth/trusted_peers.h"
#include "redis/url.h"
#include "server/cert_expiry.h"
#include "sip/uri.h"

namespace sipwake::server {
namespace {

constexpr std::uint32_t kMaxWorkers = 1024;

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// How a value looks in an error message: strings quoted, containers by kind.
std::string describe(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "\"" + std::string(n.as_string()->get()) + "\"";
    case toml::node_type::integer:
      return std::to_string(n.as_integer()->get());
    case toml::node_type::boolean:
      return n.as_boolean()->get() ? "true" : "false";
    case toml::node_type::floating_point: {
      std::ostringstream os;
      os << n.as_floating_point()->get();
      return os.str();
    }
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    default:
      return "a value";
  }
}

bool readableFile(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

// Collects problems with their source line; the caller reports the one that comes first in the
// file, so that "the first bad key" means what an operator reading the file expects.
// A node's value as comparable text (strings quoted, arrays and tables in full, keys in order).
void appendGivenValue(const toml::node& n, std::string& out) {
  if (const auto* t = n.as_table()) {
    out += '{';
    for (auto&& [k, v] : *t) {
      out += std::string(k.str()) + '=';
      appendGivenValue(v, out);
      out += ',';
    }
    out += '}';
  } else if (const auto* a = n.as_array()) {
    out += '[';
    for (const auto& v : *a) {
      appendGivenValue(v, out);
      out += ',';
    }
    out += ']';
  } else if (const auto* str = n.as_string()) {
    out += '"' + str->get() + '"';
  } else if (const auto* i = n.as_integer()) {
    out += std::to_string(i->get());
  } else if (const auto* f = n.as_floating_point()) {
    out += fmt::format("{}", f->get());
  } else if (const auto* b = n.as_boolean()) {
    out += b->get() ? "true" : "false";
  } else {
    out += "?";  // dates and times: no key takes them (the key's handler says so)
  }
}

class Checker {
 public:
  explicit Checker(std::string_view source) : source_(source) {}
  // walk() records every key it meets there (what reload compares).
  void recordGiven(std::map<std::string, GivenKey>* given) { given_ = given; }

  void error(std::uint32_t line, std::string_view where, std::string_view message) {
    std::string text = source_;
    if (line > 0) text += ":" + std::to_string(line);
    if (!text.empty()) text += ": ";
    if (!where.empty()) {
      text += where;
      text += ": ";
    }
    text += message;
    errors_.emplace_back(line, std::move(text));
  }
  void error(const toml::node& n, std::string_view where, std::string_view message) {
    error(n.source().begin.line, where, message);
  }

  bool ok() const { return errors_.empty(); }
  Status firstError() const {
    auto it = std::min_element(errors_.begin(), errors_.end(),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
    return invalidArgument(it->second);
  }

  // Accepts an integer in [lo, hi]; otherwise records an error and returns nullopt.
  std::optional<std::int64_t> integer(const toml::node& n, std::string_view where, std::int64_t lo,
                                      std::int64_t hi) {
    const auto* v = n.as_integer();
    if (v == nullptr || v->get() < lo || v->get() > hi) {
      std::string expected =
          lo == 1 && hi >= std::numeric_limits<std::uint32_t>::max()
              ? "expected a positive integer"
              : "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
      error(n, where, expected + ", got " + describe(n));
      return std::nullopt;
    }
    return v->get();
  }

  // Accepts true or false; otherwise records an error.
  std::optional<bool> boolean(const toml::node& n, std::string_view where) {
    const auto* b = n.as_boolean();
    if (b == nullptr) {
      error(n, where, "expected true or false, got " + describe(n));
      return std::nullopt;
    }
    return b->get();
  }

  // Accepts a string (non-empty unless allow_empty); otherwise records an error.
  std::optional<std::string> string(const toml::node& n, std::string_view where,
                                    bool allow_empty = false) {
    const auto* v = n.as_string();
    if (v == nullptr) {
      error(n, where, "expected a string, got " + describe(n));
      return std::nullopt;
    }
    if (!allow_empty && v->get().empty()) {
      error(n, where, "must not be empty");
      return std::nullopt;
    }
    return v->get();
  }

  // Accepts one of `choices` (exact, lower case).
  std::optional<std::string> choice(const toml::node& n, std::string_view where,
                                    std::initializer_list<std::string_view> choices) {
    auto s = string(n, where, true);
    if (!s) return std::nullopt;
    for (auto c : choices) {
      if (*s == c) return s;
    }
    std::string list;
    for (auto c : choices) {
      if (!list.empty()) list += ", ";
      list += "\"" + std::string(c) + "\"";
    }
    error(n, where, "expected one of " + list + ", got " + describe(n));
    return std::nullopt;
  }

  // A file that must exist and be readable.
  std::optional<std::string> file(const toml::node& n, std::string_view where) {
    auto s = string(n, where);
    if (!s) return std::nullopt;
    if (!readableFile(*s)) {
      error(n, where, "cannot read file \"" + *s + "\"");
      return std::nullopt;
    }
    return s;
  }

  // A file holding a secret (private key, credentials): its mode is checked once the whole file
  // is parsed ([server] key_file_permissions may come later in the file).
  void noteSecretFile(std::uint32_t line, std::string where, std::string path) {
    secret_files_.push_back({line, std::move(where), std::move(path)});
  }

  // Refuses (error) or reports (warning) the noted secret files that others can write or read.
  // A file that does not exist is left to whoever reads it.
  void checkSecretFiles(std::string_view policy, std::vector<std::string>& warnings) {
    for (const SecretFile& f : secret_files_) {
      struct stat st {};
      if (::stat(f.path.c_str(), &st) != 0) continue;
      const bool writable = (st.st_mode & (S_IWGRP | S_IWOTH)) != 0;
      const bool readable = (st.st_mode & S_IROTH) != 0;
      if (!writable && !readable) continue;
      std::string what =
          "\"" + f.path + "\" (mode " + fmt::format("{:04o}", st.st_mode & 07777) + ") can be " +
          (writable ? "written by group or others" : "read by others") + "; chmod 600 it";
      const bool refuse = policy == "strict" || (policy == "standard" && writable);
      if (refuse) {
        error(f.line, f.where, what + " (or set [server] key_file_permissions = \"warn\")");
      } else {
        std::string text = source_;
        if (f.line > 0) text += ":" + std::to_string(f.line);
        warnings.push_back(text + ": " + f.where + ": " + what);
      }
    }
  }

  using KeyHandler = std::function<void(const toml::node&, const std::string& where)>;

  // Dispatches every key of `table` to its handler; unknown keys are errors.
  void walk(const toml::table& table, std::string_view section,
            std::initializer_list<std::pair<std::string_view, KeyHandler>> handlers) {
    for (auto&& [key, node] : table) {
      std::string where = std::string(section) + " " + std::string(key.str());
      if (given_ != nullptr) {
        std::string value;
        appendGivenValue(node, value);
        std::uint32_t line = key.source().begin.line;
        if (line == 0) line = node.source().begin.line;
        (*given_)[where] = GivenKey{std::move(value), line};
      }
      bool found = false;
      for (const auto& [name, handler] : handlers) {
        if (key.str() == name) {
          handler(node, where);
          found = true;
          break;
        }
      }
      if (!found) {
        std::uint32_t line = key.source().begin.line;
        if (line == 0) line = node.source().begin.line;
        error(line, where, "unknown key");
      }
    }
  }

 private:
  struct SecretFile {
    std::uint32_t line;
    std::string where;
    std::string path;
  };
  std::string source_;
  std::map<std::string, GivenKey>* given_ = nullptr;
  std::vector<std::pair<std::uint32_t, std::string>> errors_;
  std::vector<SecretFile> secret_files_;
};

// Where in the file cross-key problems should point.
struct CrossCheckLines {
  std::uint32_t tls = 0;
  std::vector<std::uint32_t> listeners;  // parallel to Config::listeners
};

void crossCheck(const Config& c, const CrossCheckLines* lines, Checker& check) {
  auto tls_line = lines ? lines->tls : 0;
  auto listener_line = [&](std::size_t i) -> std::uint32_t {
    return lines && i < lines->listeners.size() ? lines->listeners[i] : 0;
  };
  if (c.tls.certificate.empty() != c.tls.private_key.empty()) {
    check.error(tls_line, "[tls]", "certificate and private_key must be given together");
  }
  if (c.listeners.empty()) {
    check.error(0, "[[listen]]", "at least one listener is needed");
  }
  for (std::size_t i = 0; i < c.listeners.size(); ++i) {
    const auto& l = c.listeners[i];
    for (std::size_t j = 0; j < i; ++j) {
      if (c.listeners[j] == l) {
        check.error(listener_line(i), "[[listen]] " + l.toString(), "listed twice");
      }
    }
    if (l.protocol == transport::Protocol::kTls && c.tls.certificate.empty() &&
        !isLoopbackAddress(l.address)) {
      check.error(listener_line(i), "[[listen]] " + l.toString(),
                  "a TLS listener on a non-loopback address needs [tls] certificate and "
                  "private_key (the generated self-signed certificate is for loopback only)");
    }
  }
}

// An array of domain names, lower-cased.
std::optional<std::vector<std::string>> domainList(const toml::node& n, const std::string& w,
                                                   Checker& check) {
  const auto* arr = n.as_array();
  if (arr == nullptr) {
    check.error(n, w, "expected an array of strings, got " + describe(n));
    return std::nullopt;
  }
  std::vector<std::string> domains;
  for (const auto& e : *arr) {
    if (auto s = check.string(e, w)) domains.push_back(lowerAscii(*s));
  }
  return domains;
}

// A next hop: "host[:port][;params]" (short for "sip:host...") or a sip:/sips: URI without user.
std::optional<std::string> nextHop(const toml::node& n, const std::string& w, Checker& check,
                                   bool allow_empty) {
  auto v = check.string(n, w, allow_empty);
  if (!v || v->empty()) return v;
  bool has_scheme = v->rfind("sip:", 0) == 0 || v->rfind("sips:", 0) == 0;
  auto uri = sip::parseUri(has_scheme ? *v : "sip:" + *v);
  if (!uri.isOk() || !uri->isSipOrSips() || !uri->user.empty()) {
    check.error(n, w, "expected host[:port] or a sip:/sips: URI, got " + describe(n));
    return std::nullopt;
  }
  return v;
}

void parseServer(const toml::table& t, Config& c, Checker& check) {
  check.walk(t, "[server]",
             {{"workers",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 1, kMaxWorkers))
                   c.workers = static_cast<unsigned>(*v);
               }},
              {"log_level",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.choice(
                         n, w, {"trace", "debug", "info", "warn", "error", "critical", "off"})) {
                   c.log_level = *v;
                 }
               }},
              {"log_format",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.choice(n, w, {"text", "json"})) c.log_format = *v;
               }},
              {"drain_timeout",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 0, 3600))
                   c.drain_timeout_s = static_cast<std::uint32_t>(*v);
               }},
              {"server_header",
               [&](const toml::node& n, const std::string& w) {
                 auto v = check.string(n, w, true);
                 if (!v) return;
                 if (v->find_first_of("\r\n") != std::string::npos) {
                   check.error(n, w, "must be one line");
                   return;
                 }
                 c.server_header = *v;
               }},
              {"key_file_permissions",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.choice(n, w, {"standard", "strict", "warn"})) {
                   c.key_file_permissions = *v;
                 }
               }},
              {"domains", [&](const toml::node& n, const std::string& w) {
                 if (auto domains = domainList(n, w, check)) c.domains = std::move(*domains);
               }}});
}

void parseListeners(const toml::node& node, Config& c, CrossCheckLines& lines, Checker& check) {
  const auto* arr = node.as_array();
  if (arr == nullptr || !arr->is_array_of_tables()) {
    check.error(node, "listen",
                "expected an array of tables ([[listen]] sections), got " + describe(node));
    return;
  }
  std::size_t index = 0;
  for (const auto& entry : *arr) {
    ++index;
    const auto& t = *entry.as_table();
    std::string section = "[[listen]] #" + std::to_string(index);
    ListenerConfig l;
    bool have_transport = false;
    bool have_port = false;
    bool good = true;
    check.walk(t, section,
               {{"transport",
                 [&](const toml::node& n, const std::string& w) {
                   auto v = check.choice(n, w, {"udp", "tcp", "tls"});
                   if (!v) {
                     good = false;
                     return;
                   }
                   have_transport = true;
                   l.protocol = *v == "udp"   ? transport::Protocol::kUdp
                                : *v == "tcp" ? transport::Protocol::kTcp
                                              : transport::Protocol::kTls;
                 }},
                {"address",
                 [&](const toml::node& n, const std::string& w) {
                   auto v = check.string(n, w);
                   if (!v) {
                     good = false;
                     return;
                   }
                   std::string ip = *v;
                   if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') {
                     ip = ip.substr(1, ip.size() - 2);
                   }
                   if (!isIpLiteral(ip)) {
                     check.error(n, w, "expected an IPv4 or IPv6 address, got " + describe(n));
                     good = false;
                     return;
                   }
                   l.address = ip;
                 }},
                {"port", [&](const toml::node& n, const std::string& w) {
                   auto v = check.integer(n, w, 1, 65535);
                   if (!v) {
                     good = false;
                     return;
                   }
                   have_port = true;
                   l.port = static_cast<std::uint16_t>(*v);
                 }}});
    if (!have_transport) {
      if (good) check.error(t.source().begin.line, section, "missing key transport");
      continue;
    }
    if (!have_port) l.port = l.protocol == transport::Protocol::kTls ? 5061 : 5060;
    if (good) {
      c.listeners.push_back(l);
      lines.listeners.push_back(t.source().begin.line);
    }
  }
  if (index == 0) check.error(node, "listen", "at least one listener is needed");
}

void parseTls(const toml::table& t, Config& c, Checker& check) {
  check.walk(t, "[tls]",
             {{"certificate",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.file(n, w)) c.tls.certificate = *v;
               }},
              {"private_key",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.file(n, w)) {
                   c.tls.private_key = *v;
                   check.noteSecretFile(n.source().begin.line, w, *v);
                 }
               }},
              {"ciphers",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.string(n, w)) c.tls.ciphers = *v;
               }},
              {"ca_file",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.file(n, w)) c.tls.ca_file = *v;
               }},
              {"verify", [&](const toml::node& n, const std::string& w) {
                 auto v = check.choice(n, w, {"none", "peer", "require"});
                 if (!v) return;
                 c.tls.verify = *v == "none"   ? TlsVerify::kNone
                                : *v == "peer" ? TlsVerify::kPeer
                                               : TlsVerify::kRequire;
               }}});
}

void parseLimits(const toml::table& t, Config& c, Checker& check) {
  auto u32 = [&](std::uint32_t& out, std::int64_t lo, std::int64_t hi) {
    return [&, lo, hi](const toml::node& n, const std::string& w) {
      if (auto v = check.integer(n, w, lo, hi)) out = static_cast<std::uint32_t>(*v);
    };
  };
  constexpr std::int64_t kU32Max = std::numeric_limits<std::uint32_t>::max();
  check.walk(t, "[limits]",
             {{"max_message_bytes", u32(c.limits.max_message_bytes, 1024, 16 * 1024 * 1024)},
              {"max_headers", u32(c.limits.max_headers, 1, kU32Max)},
              {"max_line_bytes", u32(c.limits.max_line_bytes, 256, 16 * 1024 * 1024)},
              {"max_connections_per_ip", u32(c.limits.max_connections_per_ip, 1, kU32Max)},
              {"connection_idle_timeout", u32(c.limits.connection_idle_timeout_s, 1, 86400)},
              {"message_timeout", u32(c.limits.message_timeout_s, 0, 3600)},
              {"max_connections", u32(c.limits.max_connections, 0, kU32Max)},
              {"max_tls_handshakes", u32(c.limits.max_tls_handshakes, 0, kU32Max)},
              {"max_tls_handshakes_per_ip", u32(c.limits.max_tls_handshakes_per_ip, 0, kU32Max)}});
}

void parseTimers(const toml::table& t, Config& c, Checker& check) {
  auto ms = [&](std::uint32_t& out) {
    return [&](const toml::node& n, const std::string& w) {
      if (auto v = check.integer(n, w, 1, 600000)) out = static_cast<std::uint32_t>(*v);
    };
  };
  check.walk(t, "[timers]",
             {{"t1_ms", ms(c.timers.t1_ms)},
              {"t2_ms", ms(c.timers.t2_ms)},
              {"t4_ms", ms(c.timers.t4_ms)}});
  if (c.timers.t2_ms < c.timers.t1_ms) {
    const toml::node* n = t.get("t2_ms");
    check.error(n ? n->source().begin.line : t.source().begin.line, "[timers] t2_ms",
                "must not be smaller than t1_ms (" + std::to_string(c.timers.t1_ms) + ")");
  }
}

void parseStore(const toml::table& t, Config& c, Checker& check) {
  check.walk(t, "[store]",
             {{"path",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.string(n, w)) c.store.path = *v;
               }},
              {"synchronous",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.choice(n, w, {"normal", "full"}))
                   c.store.synchronous_full = *v == "full";
               }},
              {"url",
               [&](const toml::node& n, const std::string& w) {
                 auto v = check.string(n, w);
                 if (!v) return;
                 if (auto parsed = redis::parseRedisUrl(*v); !parsed) {
                   check.error(n, w, parsed.status().message());
                   return;
                 }
                 c.store.url = *v;
               }},
              {"redis_ca_file",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.string(n, w)) c.store.redis_ca_file = *v;
               }},
              {"redis_prefix", [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.string(n, w)) c.store.redis_prefix = *v;
               }}});
}

// The admin API's bearer token: the file's bytes without trailing white space, at least 16.
std::optional<std::string> readAdminToken(const toml::node& n, const std::string& where,
                                          const std::string& path, Checker& check) {
  std::ifstream in(path, std::ios::binary);
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) {
    check.error(n, where, "cannot read file \"" + path + "\"");
    return std::nullopt;
  }
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
    token.pop_back();
  }
  if (token.size() < 16) {
    check.error(n, where,
                "\"" + path + "\" holds " + std::to_string(token.size()) +
                    " bytes; at least 16 are needed (e.g. head -c 32 /dev/urandom | base64 > file)");
    return std::nullopt;
  }
  return token;
}

void parseAdmin(const toml::table& t, Config& c, Checker& check) {
  std::uint32_t listen_line = 0;
  std::string listen_text;
  check.walk(t, "[admin]",
             {{"listen",
               [&](const toml::node& n, const std::string& w) {
                 auto v = check.string(n, w);
                 if (!v) return;
                 auto spec = parseListenSpec("tcp:" + *v);
                 if (!spec) {
                   check.error(n, w,
                               "expected \"IP:PORT\" (IPv6 as \"[::1]:9090\"), got \"" + *v + "\"");
                   return;
                 }
                 listen_line = n.source().begin.line;
                 listen_text = *v;
                 c.admin.enabled = true;
                 c.admin.address = spec->address;
                 c.admin.port = spec->port;
               }},
              {"token_file",
               [&](const toml::node& n, const std::string& w) {
                 auto v = check.file(n, w);
                 if (!v) return;
                 if (auto token = readAdminToken(n, w, *v, check)) {
                   c.admin.token_file = *v;
                   c.admin.token = std::move(*token);
                   check.noteSecretFile(n.source().begin.line, w, *v);
                 }
               }},
              {"tls_certificate",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.file(n, w)) c.admin.tls_certificate = *v;
               }},
              {"tls_private_key",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.file(n, w)) {
                   c.admin.tls_private_key = *v;
                   check.noteSecretFile(n.source().begin.line, w, *v);
                 }
               }},
              {"timelines", [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 0, 100000)) {
                   c.admin.timelines = static_cast<std::uint32_t>(*v);
                 }
               }}});
  const toml::node* cert = t.get("tls_certificate");
  const toml::node* key = t.get("tls_private_key");
  if ((cert != nullptr) != (key != nullptr)) {
    const toml::node* given = cert != nullptr ? cert : key;
    check.error(*given, cert != nullptr ? "[admin] tls_certificate" : "[admin] tls_private_key",
                "tls_certificate and tls_private_key go together: set both or neither");
  }
  if (c.admin.enabled && !isLoopbackAddress(c.admin.address) && (cert == nullptr || key == nullptr)) {
    check.error(listen_line, "[admin] listen",
                "\"" + listen_text +
                    "\" is not a loopback address: the admin listener serves other hosts only over "
                    "HTTPS (set tls_certificate and tls_private_key), else only on 127.0.0.0/8 or "
                    "::1");
  }
}

void parseRegistrar(const toml::table& t, Config& c, Checker& check) {
  auto u32 = [&](std::uint32_t& out, std::int64_t lo, std::int64_t hi) {
    return [&, lo, hi](const toml::node& n, const std::string& w) {
      if (auto v = check.integer(n, w, lo, hi)) out = static_cast<std::uint32_t>(*v);
    };
  };
  constexpr std::int64_t kMaxExpiry = 7 * 86400 * 52;  // a year: anything longer is a typo
  auto& r = c.registrar;
  check.walk(t, "[registrar]",
             {{"min_expires", u32(r.min_expires, 1, kMaxExpiry)},
              {"max_expires", u32(r.max_expires, 1, kMaxExpiry)},
              {"default_expires", u32(r.default_expires, 1, kMaxExpiry)},
              {"max_contacts_per_aor", u32(r.max_contacts_per_aor, 0, 100000)},
              {"sweep_interval", u32(r.sweep_interval_s, 1, 86400)}});
  auto line_of = [&](std::string_view key) {
    const toml::node* n = t.get(key);
    return n ? n->source().begin.line : t.source().begin.line;
  };
  if (r.max_expires < r.min_expires) {
    check.error(line_of("max_expires"), "[registrar] max_expires",
                "must not be smaller than min_expires (" + std::to_string(r.min_expires) + ")");
  } else if (r.default_expires < r.min_expires || r.default_expires > r.max_expires) {
    check.error(line_of("default_expires"), "[registrar] default_expires",
                "must be from min_expires (" + std::to_string(r.min_expires) +
                    ") to max_expires (" + std::to_string(r.max_expires) + ")");
  }
}

void parseAuth(const toml::table& t, Config& c, Checker& check) {
  auto u32 = [&](std::uint32_t& out, std::int64_t lo, std::int64_t hi) {
    return [&, lo, hi](const toml::node& n, const std::string& w) {
      if (auto v = check.integer(n, w, lo, hi)) out = static_cast<std::uint32_t>(*v);
    };
  };
  auto strings = [&](const toml::node& n,
                     const std::string& w) -> std::optional<std::vector<std::string>> {
    const auto* arr = n.as_array();
    if (arr == nullptr) {
      check.error(n, w, "expected an array of strings, got " + describe(n));
      return std::nullopt;
    }
    std::vector<std::string> out;
    for (const auto& e : *arr) {
      auto s = check.string(e, w);
      if (!s) return std::nullopt;
      out.push_back(*s);
    }
    return out;
  };
  auto& a = c.auth;
  check.walk(t, "[auth]",
             {{"algorithms",
               [&](const toml::node& n, const std::string& w) {
                 auto list = strings(n, w);
                 if (!list) return;
                 if (list->empty()) {
                   check.error(n, w, "must name at least one algorithm (\"SHA-256\", \"MD5\")");
                   return;
                 }
                 std::vector<std::string> out;
                 for (const auto& s : *list) {
                   std::string canon = lowerAscii(s) == "sha-256" ? "SHA-256"
                                       : lowerAscii(s) == "md5"   ? "MD5"
                                                                  : "";
                   if (canon.empty()) {
                     check.error(
                         n, w, "unknown algorithm \"" + s + "\" (expected \"SHA-256\" or \"MD5\")");
                     return;
                   }
                   if (std::find(out.begin(), out.end(), canon) != out.end()) {
                     check.error(n, w, "algorithm \"" + canon + "\" listed twice");
                     return;
                   }
                   out.push_back(canon);
                 }
                 a.algorithms = std::move(out);
               }},
              {"nonce_ttl", u32(a.nonce_ttl_s, 10, 86400)},
              {"trusted_peers",
               [&](const toml::node& n, const std::string& w) {
                 auto list = strings(n, w);
                 if (!list) return;
                 auto parsed = auth::TrustedPeers::parse(*list);
                 if (!parsed.isOk()) {
                   check.error(n, w, parsed.status().message());
                   return;
                 }
                 a.trusted_peers = std::move(*list);
               }},
              {"require_auth_for_register",
               [&](const toml::node& n, const std::string& w) {
                 if (auto b = check.boolean(n, w)) a.require_auth_for_register = *b;
               }},
              {"md5_only_user_agents",
               [&](const toml::node& n, const std::string& w) {
                 // strings() refuses "" (a prefix that would match every client).
                 if (auto list = strings(n, w)) a.md5_only_user_agents = std::move(*list);
               }},
              {"md5_only_without_user_agent",
               [&](const toml::node& n, const std::string& w) {
                 if (auto b = check.boolean(n, w)) a.md5_only_without_user_agent = *b;
               }},
              {"uri_check",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.choice(n, w, {"equivalent", "strict", "off"})) {
                   a.uri_check = *v;
                 }
               }},
              {"max_failures", u32(a.max_failures, 0, 1000000)},
              {"failure_window", u32(a.failure_window_s, 1, 86400)},
              {"block", u32(a.block_s, 1, 86400)},
              {"user_max_failures", u32(a.user_max_failures, 0, 1000000)},
              {"user_delay", u32(a.user_delay_s, 1, 86400)},
              {"user_max_delay", u32(a.user_max_delay_s, 1, 86400)},
              {"log_failures",
               [&](const toml::node& n, const std::string& w) {
                 if (auto b = check.boolean(n, w)) a.log_failures = *b;
               }},
              {"user_reload_interval", u32(a.user_reload_interval_s, 0, 86400)}});
}

// "1.2.3.4", "1.2.3.4:53", "[2001:db8::1]", "[2001:db8::1]:53" (the c-ares server syntax).
bool isDnsServer(const std::string& s) {
  std::string ip = s;
  std::string port;
  int family = AF_INET;
  if (!s.empty() && s.front() == '[') {
    std::size_t close = s.find(']');
    if (close == std::string::npos) return false;
    ip = s.substr(1, close - 1);
    family = AF_INET6;
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':') return false;
      port = s.substr(close + 2);
      if (port.empty()) return false;
    }
  } else if (std::size_t colon = s.find(':'); colon != std::string::npos) {
    ip = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  if (!port.empty() && (std::stoul(port) == 0 || std::stoul(port) > 65535)) return false;
  unsigned char buf[16];
  return inet_pton(family, ip.c_str(), buf) == 1;
}

void parseProxy(const toml::table& t, Config& c, Checker& check) {
  auto& p = c.proxy;
  std::uint32_t overlap_line = 0;
  auto u32 = [&](std::uint32_t& out, std::int64_t lo, std::int64_t hi) {
    return [&, lo, hi](const toml::node& n, const std::string& w) {
      if (auto v = check.integer(n, w, lo, hi)) out = static_cast<std::uint32_t>(*v);
    };
  };
  check.walk(t, "[proxy]",
             {{"outbound_proxy",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = nextHop(n, w, check, true)) p.outbound_proxy = *v;
               }},
              {"timer_c",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 1, 86400))
                   p.timer_c_s = static_cast<std::uint32_t>(*v);
               }},
              {"max_forks",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 1, 1024))
                   p.max_forks = static_cast<std::uint32_t>(*v);
               }},
              {"record_route",
               [&](const toml::node& n, const std::string& w) {
                 auto v = check.string(n, w, false);
                 if (!v) return;
                 if (*v == "always") {
                   p.record_route = true;
                 } else if (*v == "never") {
                   p.record_route = false;
                 } else {
                   check.error(n, w, "expected \"always\" or \"never\", got " + describe(n));
                 }
               }},
              {"advertised_host",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.string(n, w, true)) p.advertised_host = *v;
               }},
              {"route_secret_file",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.file(n, w)) {
                   p.route_secret_file = *v;
                   check.noteSecretFile(n.source().begin.line, w, *v);
                 }
               }},
              {"route_key_rotation",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 60, 31536000))
                   p.route_key_rotation_s = static_cast<std::uint32_t>(*v);
               }},
              {"route_key_overlap",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 0, 31536000))
                   p.route_key_overlap_s = static_cast<std::uint32_t>(*v);
                 overlap_line = n.source().begin.line;
               }},
              {"dns_servers",
               [&](const toml::node& n, const std::string& w) {
                 const auto* arr = n.as_array();
                 if (arr == nullptr) {
                   check.error(n, w, "expected an array of strings, got " + describe(n));
                   return;
                 }
                 std::vector<std::string> out;
                 for (const auto& e : *arr) {
                   auto s = check.string(e, w);
                   if (!s) return;
                   if (!isDnsServer(*s)) {
                     check.error(e, w, "expected \"ip[:port]\" or \"[v6]:port\"");
                     return;
                   }
                   out.push_back(*s);
                 }
                 p.dns_servers = std::move(out);
               }},
              {"dns_timeout_ms",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 10, 60000))
                   p.dns_timeout_ms = static_cast<std::uint32_t>(*v);
               }},
              {"unknown_user_response",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.choice(n, w, {"480", "404", "distinct"})) {
                   p.unknown_user_response = *v;
                 }
               }},
              {"stranger_rate", u32(p.stranger_rate, 0, 1000000)},
              {"stranger_burst", u32(p.stranger_burst, 1, 1000000)}});
  if (p.route_key_overlap_s / p.route_key_rotation_s >= kMaxRouteKeyOverlapEpochs) {
    check.error(
        overlap_line, "[proxy] route_key_overlap",
        "must be less than " + std::to_string(kMaxRouteKeyOverlapEpochs) + " x route_key_rotation");
  }
}

// Lines of the [[push.app]] credential keys (0 = absent), for the per-provider checks.
struct PushAppLines {
  std::uint32_t id = 0, key_file = 0, key_id = 0, team_id = 0, cert_file = 0, cert_key_file = 0,
                service_account_file = 0, url = 0, secret_file = 0, endpoint = 0, ca_file = 0;
};

// Which credential keys each provider needs / accepts. Files are only read by the push sender at
// start-up (Http2PushSender::create), so check-config names missing or misplaced keys only.
void checkPushApp(const PushApp& app, const PushAppLines& pos, const std::string& section,
                  Checker& check) {
  auto foreign = [&](std::uint32_t line, std::string_view key) {
    if (line != 0) {
      check.error(line, section + " " + std::string(key),
                  "not used by provider \"" + app.provider + "\"");
    }
  };
  auto missing = [&](std::string_view what) {
    check.error(app.line, section, "provider \"" + app.provider + "\" needs " + std::string(what));
  };
  if (app.id.empty()) missing("key id (the app id, or \"*\")");
  if (!app.endpoint.empty() && app.endpoint.rfind("https://", 0) != 0) {
    check.error(pos.endpoint, section + " endpoint", "expected \"https://host[:port]\"");
  }
  if (app.provider == "apns") {
    foreign(pos.service_account_file, "service_account_file");
    foreign(pos.url, "url");
    foreign(pos.secret_file, "secret_file");
    const bool token = pos.key_file || pos.key_id || pos.team_id;
    const bool cert = pos.cert_file || pos.cert_key_file;
    if (token && cert) {
      check.error(pos.cert_file ? pos.cert_file : pos.cert_key_file, section + " cert_file",
                  "use either key_file + key_id + team_id (token auth) or cert_file "
                  "(certificate auth), not both");
    } else if (token) {
      if (!pos.key_file) missing("key key_file with key_id and team_id");
      if (!pos.key_id) missing("key key_id with key_file and team_id");
      if (!pos.team_id) missing("key team_id with key_file and key_id");
    } else if (pos.cert_key_file && !pos.cert_file) {
      missing("key cert_file with cert_key_file");
    } else if (!cert) {
      missing("key_file + key_id + team_id (token auth) or cert_file [+ cert_key_file]");
    } else if (app.id == "*") {
      check.error(pos.id, section + " id",
                  "\"*\" needs token auth (key_file + key_id + team_id): a certificate is "
                  "issued for one app");
    }
  } else if (app.provider == "fcm") {
    foreign(pos.key_file, "key_file");
    foreign(pos.key_id, "key_id");
    foreign(pos.team_id, "team_id");
    foreign(pos.cert_file, "cert_file");
    foreign(pos.cert_key_file, "cert_key_file");
    foreign(pos.url, "url");
    foreign(pos.secret_file, "secret_file");
    if (!pos.service_account_file) missing("key service_account_file");
  } else {  // webpush: the generic webhook
    foreign(pos.key_file, "key_file");
    foreign(pos.key_id, "key_id");
    foreign(pos.team_id, "team_id");
    foreign(pos.cert_file, "cert_file");
    foreign(pos.cert_key_file, "cert_key_file");
    foreign(pos.service_account_file, "service_account_file");
    foreign(pos.endpoint, "endpoint");
    if (!pos.url) {
      missing("key url");
    } else if (app.url.rfind("https://", 0) != 0) {
      check.error(pos.url, section + " url", "expected an https:// URL");
    }
  }
}

void parsePush(const toml::table& t, Config& c, Checker& check) {
  auto& p = c.push;
  auto boolean = [&](bool& out) {
    return [&](const toml::node& n, const std::string& w) {
      const auto* b = n.as_boolean();
      if (b == nullptr) {
        check.error(n, w, "expected true or false, got " + describe(n));
        return;
      }
      out = b->get();
    };
  };
  auto u32 = [&](std::uint32_t& out, std::int64_t lo, std::int64_t hi) {
    return [&, lo, hi](const toml::node& n, const std::string& w) {
      if (auto v = check.integer(n, w, lo, hi)) out = static_cast<std::uint32_t>(*v);
    };
  };
  // A non-empty string key of [[push.app]]; remembers its line for the cross-key checks.
  auto text = [&](std::string& out, std::uint32_t& line) {
    return [&](const toml::node& n, const std::string& w) {
      if (auto v = check.string(n, w)) out = *v;
      line = n.source().begin.line;
    };
  };
  check.walk(
      t, "[push]",
      {{"push_ttl",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.integer(n, w, 60, 365 * 86400))
            p.push_ttl_s = static_cast<std::uint32_t>(*v);
        }},
       {"ring_timeout",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.integer(n, w, 1, 300))
            p.ring_timeout_s = static_cast<std::uint32_t>(*v);
        }},
       {"push_connected_devices", boolean(p.push_connected_devices)},
       {"refresh",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.choice(n, w, {"push-only", "wake"})) p.refresh = *v;
        }},
       {"refresh_lead", u32(p.refresh_lead_s, 120, 86400)},
       {"message_preview", boolean(p.message_preview)},
       {"message_wait",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.integer(n, w, 1, 30))
            p.message_wait_s = static_cast<std::uint32_t>(*v);
        }},
       {"message_store_ttl",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.integer(n, w, 1, 30 * 86400))
            p.message_store_ttl_s = static_cast<std::uint32_t>(*v);
        }},
       {"message_store_per_user",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.integer(n, w, 1, 10000))
            p.message_store_per_user = static_cast<std::uint32_t>(*v);
        }},
       {"message_store_total",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.integer(n, w, 1, 10000000))
            p.message_store_total = static_cast<std::uint32_t>(*v);
        }},
       {"parked_provisional",
        [&](const toml::node& n, const std::string& w) {
          const auto* i = n.as_integer();
          const auto* str = n.as_string();
          if (i != nullptr && (i->get() == 180 || i->get() == 183)) {
            p.parked_provisional = static_cast<int>(i->get());
          } else if (str != nullptr && str->get() == "none") {
            p.parked_provisional = 0;
          } else {
            check.error(n, w, "expected 180, 183 or \"none\", got " + describe(n));
          }
        }},
       {"call_uuid_salt",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.string(n, w, true)) p.call_uuid_salt = *v;
        }},
       {"repush_interval_apns", u32(p.repush_interval_apns_s, 1, 300)},
       {"repush_interval_fcm", u32(p.repush_interval_fcm_s, 1, 300)},
       {"repush_interval_webpush", u32(p.repush_interval_webpush_s, 1, 300)},
       {"max_repushes", u32(p.max_repushes, 0, 10)},
       {"wake_for",
        [&](const toml::node& n, const std::string& w) {
          if (auto v = check.choice(n, w, {"anyone", "authenticated", "trusted"})) p.wake_for = *v;
        }},
       {"device_pushes_per_minute", u32(p.device_pushes_per_minute, 1, 100000)},
       {"device_push_burst", u32(p.device_push_burst, 1, 100000)},
       {"aor_pushes_per_minute", u32(p.aor_pushes_per_minute, 1, 100000)},
       {"aor_push_burst", u32(p.aor_push_burst, 1, 100000)},
       {"stranger_pushes_per_minute", u32(p.stranger_pushes_per_minute, 1, 100000)},
       {"stranger_push_burst", u32(p.stranger_push_burst, 1, 100000)},
       {"max_parked", u32(p.max_parked, 1, 10000000)},
       {"max_parked_per_source", u32(p.max_parked_per_source, 1, 10000000)},
       {"max_parked_per_aor", u32(p.max_parked_per_aor, 1, 100000)},
       {"app", [&](const toml::node& n, const std::string& w) {
          const auto* arr = n.as_array();
          if (arr == nullptr || !arr->is_array_of_tables()) {
            check.error(n, w, "expected [[push.app]] sections, got " + describe(n));
            return;
          }
          std::size_t index = 0;
          for (const auto& entry : *arr) {
            ++index;
            PushApp app;
            PushAppLines pos;
            bool bad = false;
            std::string section = "[[push.app]] #" + std::to_string(index);
            check.walk(
                *entry.as_table(), section,
                {{"provider",
                  [&](const toml::node& pn, const std::string& pw) {
                    auto v = check.choice(pn, pw, {"apns", "fcm", "webpush"});
                    if (v) app.provider = *v;
                    bad = !v;
                  }},
                 {"id",
                  [&](const toml::node& pn, const std::string& pw) {
                    if (auto v = check.string(pn, pw, true)) app.id = *v;
                    pos.id = pn.source().begin.line;
                  }},
                 {"key_file", text(app.key_file, pos.key_file)},
                 {"key_id", text(app.key_id, pos.key_id)},
                 {"team_id", text(app.team_id, pos.team_id)},
                 {"cert_file", text(app.cert_file, pos.cert_file)},
                 {"cert_key_file", text(app.cert_key_file, pos.cert_key_file)},
                 {"use_voip", boolean(app.use_voip)},
                 {"service_account_file", text(app.service_account_file, pos.service_account_file)},
                 {"url", text(app.url, pos.url)},
                 {"secret_file", text(app.secret_file, pos.secret_file)},
                 {"endpoint", text(app.endpoint, pos.endpoint)},
                 {"ca_file", text(app.ca_file, pos.ca_file)}});
            if (app.provider.empty()) {
              if (!bad) check.error(entry, section, "missing key provider");
              continue;
            }
            app.line = entry.source().begin.line;
            checkPushApp(app, pos, section, check);
            // cert_file holds the key too when there is no cert_key_file.
            const std::string no_file;
            using SecretKey = std::tuple<const std::string*, std::uint32_t, const char*>;
            for (auto [path, line, key] :
                 {SecretKey{&app.key_file, pos.key_file, "key_file"},
                  {&app.cert_key_file, pos.cert_key_file, "cert_key_file"},
                  {app.cert_key_file.empty() ? &app.cert_file : &no_file, pos.cert_file,
                   "cert_file"},
                  {&app.service_account_file, pos.service_account_file, "service_account_file"},
                  {&app.secret_file, pos.secret_file, "secret_file"}}) {
              if (!path->empty() && line != 0) {
                check.noteSecretFile(line, section + " " + key, *path);
              }
            }
            p.apps.push_back(std::move(app));
          }
        }}});
}

// A top-level key that must be a table.
void parseEdge(const toml::table& t, Config& c, Checker& check) {
  auto& e = c.edge;
  e.enabled = true;
  std::uint32_t line = t.source().begin.line;
  std::uint32_t expires_line = 0;
  bool upstream_given = false;
  bool domains_given = false;
  check.walk(t, "[edge]",
             {{"upstream",
               [&](const toml::node& n, const std::string& w) {
                 upstream_given = true;
                 if (auto v = nextHop(n, w, check, false)) e.upstream = *v;
               }},
              {"domains",
               [&](const toml::node& n, const std::string& w) {
                 domains_given = true;
                 auto domains = domainList(n, w, check);
                 if (domains && domains->empty()) check.error(n, w, "must not be empty");
                 if (domains) e.domains = std::move(*domains);
               }},
              {"mode",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.choice(n, w, {"own", "relay"})) e.mode = *v;
               }},
              {"upstream_expires",
               [&](const toml::node& n, const std::string& w) {
                 expires_line = n.source().begin.line;
                 if (auto v = check.integer(n, w, 60, 86400))
                   e.upstream_expires = static_cast<std::uint32_t>(*v);
               }},
              {"refresh_before",
               [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 10, 86400))
                   e.refresh_before = static_cast<std::uint32_t>(*v);
               }},
              {"upstream_rate", [&](const toml::node& n, const std::string& w) {
                 if (auto v = check.integer(n, w, 1, 10000))
                   e.upstream_rate = static_cast<std::uint32_t>(*v);
               }}});
  if (!upstream_given) check.error(line, "[edge] upstream", "is required in [edge]");
  if (!domains_given) check.error(line, "[edge] domains", "is required in [edge]");
  if (e.refresh_before >= e.upstream_expires) {
    check.error(
        expires_line != 0 ? expires_line : line, "[edge] refresh_before",
        "must be less than upstream_expires (" + std::to_string(e.upstream_expires) + " s)");
  }
}

const toml::table* sectionTable(const toml::node& n, std::string_view name, Checker& check) {
  const auto* t = n.as_table();
  if (t == nullptr) {
    check.error(n, name, "expected a table ([" + std::string(name) + "]), got " + describe(n));
  }
  return t;
}

}  // namespace

std::string_view listenProtocolName(transport::Protocol p) {
  switch (p) {
    case transport::Protocol::kUdp:
      return "udp";
    case transport::Protocol::kTcp:
      return "tcp";
    case transport::Protocol::kTls:
      return "tls";
  }
  return "?";
}

std::string_view tlsVerifyName(TlsVerify v) {
  switch (v) {
    case TlsVerify::kNone:
      return "none";
    case TlsVerify::kPeer:
      return "peer";
    case TlsVerify::kRequire:
      return "require";
  }
  return "?";
}

std::string ListenerConfig::toString() const {
  std::string s(listenProtocolName(protocol));
  s += ':';
  s += v6() ? "[" + address + "]" : address;
  s += ':';
  s += std::to_string(port);
  return s;
}

unsigned Config::effectiveWorkers() const {
  if (workers > 0) return workers;
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? hw : 1;
}

bool Config::hasTlsListener() const {
  return std::any_of(listeners.begin(), listeners.end(), [](const ListenerConfig& l) {
    return l.protocol == transport::Protocol::kTls;
  });
}

std::vector<ListenerConfig> defaultListeners() {
  return {{transport::Protocol::kUdp, "127.0.0.1", 5060},
          {transport::Protocol::kTcp, "127.0.0.1", 5060},
          {transport::Protocol::kTls, "127.0.0.1", 5061}};
}

Config defaultConfig() {
  Config c;
  c.listeners = defaultListeners();
  return c;
}

bool isIpLiteral(std::string_view ip) {
  std::string s(ip);
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool isLoopbackAddress(std::string_view ip) {
  std::string s(ip);
  unsigned char buf[16];
  if (::inet_pton(AF_INET, s.c_str(), buf) == 1) return buf[0] == 127;
  if (::inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    static const unsigned char kLoop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::equal(buf, buf + 16, kLoop6);
  }
  return false;
}

Result<Config> parseConfig(std::string_view toml_text, std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    std::string msg(source_name);
    msg += ":" + std::to_string(e.source().begin.line) + ": TOML syntax error: ";
    msg += e.description();
    return invalidArgument(std::move(msg));
  }

  Config c = defaultConfig();
  Checker check(source_name);
  c.source = std::string(source_name);
  check.recordGiven(&c.given);
  CrossCheckLines lines;
  bool listeners_given = false;
  for (auto&& [key, node] : root) {
    std::string_view k = key.str();
    if (k == "server") {
      if (const auto* t = sectionTable(node, k, check)) parseServer(*t, c, check);
    } else if (k == "listen") {
      listeners_given = true;
      c.listeners.clear();
      parseListeners(node, c, lines, check);
    } else if (k == "tls") {
      if (const auto* t = sectionTable(node, k, check)) {
        lines.tls = t->source().begin.line;
        parseTls(*t, c, check);
      }
    } else if (k == "limits") {
      if (const auto* t = sectionTable(node, k, check)) parseLimits(*t, c, check);
    } else if (k == "timers") {
      if (const auto* t = sectionTable(node, k, check)) parseTimers(*t, c, check);
    } else if (k == "store") {
      if (const auto* t = sectionTable(node, k, check)) parseStore(*t, c, check);
    } else if (k == "registrar") {
      if (const auto* t = sectionTable(node, k, check)) parseRegistrar(*t, c, check);
    } else if (k == "auth") {
      if (const auto* t = sectionTable(node, k, check)) parseAuth(*t, c, check);
    } else if (k == "proxy") {
      if (const auto* t = sectionTable(node, k, check)) parseProxy(*t, c, check);
    } else if (k == "push") {
      if (const auto* t = sectionTable(node, k, check)) parsePush(*t, c, check);
    } else if (k == "edge") {
      if (const auto* t = sectionTable(node, k, check)) parseEdge(*t, c, check);
    } else if (k == "admin") {
      if (const auto* t = sectionTable(node, k, check)) parseAdmin(*t, c, check);
    } else {
      std::uint32_t line = key.source().begin.line;
      if (line == 0) line = node.source().begin.line;
      check.error(line, std::string(k),
                  "unknown key (sections are [server], [[listen]], [tls], [limits], [timers], "
                  "[store], [registrar], [auth], [proxy], [push], [edge], [admin])");
    }
  }
  if (!check.ok()) return check.firstError();
  check.checkSecretFiles(c.key_file_permissions, c.warnings);
  if (!check.ok()) return check.firstError();
  if (!listeners_given) c.listeners = defaultListeners();
  crossCheck(c, &lines, check);
  if (!check.ok()) return check.firstError();
  for (std::string& w : certificateWarnings(c, static_cast<std::int64_t>(std::time(nullptr)))) {
    c.warnings.push_back(std::string(source_name) + ": " + std::move(w));
  }
  return c;
}

Result<Config> loadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalidArgument(path + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return invalidArgument(path + ": read error");
  return parseConfig(ss.str(), path);
}

Status validateConfig(const Config& config) {
  Checker check("");  // not from a file: no "name:line:" prefix
  crossCheck(config, nullptr, check);
  if (!check.ok()) return check.firstError();
  return Status::ok();
}

Result<ListenerConfig> parseListenSpec(std::string_view spec) {
  auto bad = [&](std::string_view why) {
    return invalidArgument("--listen \"" + std::string(spec) + "\": " + std::string(why) +
                           " (expected udp:IP:PORT, tcp:IP:PORT or tls:IP:PORT; IPv6 as "
                           "tcp:[::1]:5060)");
  };
  auto colon = spec.find(':');
  if (colon == std::string_view::npos) return bad("missing transport");
  ListenerConfig l;
  std::string proto = lowerAscii(spec.substr(0, colon));
  if (proto == "udp") {
    l.protocol = transport::Protocol::kUdp;
  } else if (proto == "tcp") {
    l.protocol = transport::Protocol::kTcp;
  } else if (proto == "tls") {
    l.protocol = transport::Protocol::kTls;
  } else {
    return bad("unknown transport \"" + proto + "\"");
  }
  std::string_view rest = spec.substr(colon + 1);
  std::string_view host;
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after IPv6 address");
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (after.empty() || after.front() != ':') return bad("missing port");
    port_text = after.substr(1);
    if (host.find(':') == std::string_view::npos || !isIpLiteral(host)) {
      return bad("bad IPv6 address \"" + std::string(host) + "\"");
    }
  } else {
    auto last = rest.rfind(':');
    if (last == std::string_view::npos) return bad("missing port");
    host = rest.substr(0, last);
    port_text = rest.substr(last + 1);
    if (host.find(':') != std::string_view::npos) return bad("IPv6 addresses need brackets");
    if (!isIpLiteral(host)) return bad("bad IP address \"" + std::string(host) + "\"");
  }
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(),
                   [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return bad("bad port \"" + std::string(port_text) + "\"");
  }
  unsigned long port = std::stoul(std::string(port_text));
  if (port == 0 || port > 65535) return bad("port must be from 1 to 65535");
  l.address = std::string(host);
  l.port = static_cast<std::uint16_t>(port);
  return l;
}

}  // namespace sipwake::server
