#include "server/admin_client.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "http2/http1.h"

namespace sipwake::server {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxAnswerBody = 8 * 1024 * 1024;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string openSslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Connects with a deadline; the socket is left blocking with send/receive timeouts.
Result<int> connectTo(const AdminEndpoint& ep, std::chrono::milliseconds timeout) {
  const std::string where = ep.url();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(ep.port);
  if (int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return unavailable(
        fmt::format("cannot reach the admin listener at {}: {}", where, ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
  std::string why = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int flags = ::fcntl(fd, F_GETFL, 0);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
      if (rc == 0) {
        ::close(fd);
        why = "connection timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      why = std::strerror(errno);
      ::close(fd);
      continue;
    }
    ::fcntl(fd, F_SETFL, flags);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
  }
  for (char& c : why) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return unavailable(
      fmt::format("cannot reach the admin listener at {}: {} (is sipwake running?)", where, why));
}

// The byte pipe under the HTTP/1.1 exchange: the socket, or a TLS session on it.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  ~Channel() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  Status startTls(const AdminEndpoint& ep, const std::string& ca_file) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (ctx_ == nullptr) return unavailable(openSslError());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    int ok = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx_)
                             : SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
    if (ok != 1) return unavailable("cannot load the CA file " + ca_file + ": " + openSslError());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    ssl_ = SSL_new(ctx_);
    if (ssl_ == nullptr) return unavailable(openSslError());
    SSL_set_fd(ssl_, fd_);
    SSL_set_tlsext_host_name(ssl_, ep.host.c_str());
    SSL_set1_host(ssl_, ep.host.c_str());
    if (SSL_connect(ssl_) != 1) {
      long verify = SSL_get_verify_result(ssl_);
      std::string why =
          verify != X509_V_OK ? X509_verify_cert_error_string(verify) : openSslError();
      return unavailable(fmt::format("TLS handshake with {} failed: {}", ep.url(), why));
    }
    return Status::ok();
  }

  bool writeAll(std::string_view data) {
    while (!data.empty()) {
      long n = ssl_ != nullptr ? SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
                               : ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // > 0 bytes read, 0 closed, < 0 error (errno EAGAIN: timed out).
  long read(char* buf, std::size_t size) {
    if (ssl_ == nullptr) return ::recv(fd_, buf, size, 0);
    int n = SSL_read(ssl_, buf, static_cast<int>(size));
    if (n > 0) return n;
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    if (err == SSL_ERROR_SYSCALL && errno == 0) return 0;
    return -1;
  }

 private:
  int fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

std::string hostForHeader(const AdminEndpoint& ep) {
  bool v6 = ep.host.find(':') != std::string::npos;
  return fmt::format("{}{}{}:{}", v6 ? "[" : "", ep.host, v6 ? "]" : "", ep.port);
}

Result<json> parseBody(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return internalError("the admin listener's answer is not a JSON object");
  }
  return j;
}

// Member `key` of `j` as text: strings as they are, null as "-", numbers as JSON writes them.
std::string text(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

std::int64_t number(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  return it->get<std::int64_t>();
}

const json* array(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return nullptr;
  return &*it;
}

std::string clock(std::int64_t epoch_ms) {
  if (epoch_ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, epoch_ms % 1000);
}

}  // namespace

std::string AdminEndpoint::url() const {
  return (tls ? "https://" : "http://") + hostForHeader(*this);
}

Result<AdminEndpoint> parseAdminUrl(std::string_view url) {
  AdminEndpoint ep;
  auto bad = [&](std::string_view why) {
    return invalidArgument(fmt::format(
        "bad admin URL \"{}\": {} (expected http://IP:PORT or https://HOST:PORT)", url, why));
  };
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    ep.tls = true;
    rest.remove_prefix(8);
  } else {
    return bad("no http:// or https://");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) return bad("a path is not allowed");
  std::string_view port;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    ep.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.starts_with(':')) return bad("no port");
    port = rest.substr(1);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    ep.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  }
  if (ep.host.empty()) return bad("no host");
  unsigned value = 0;
  if (port.empty() || port.size() > 5) return bad("bad port");
  for (char c : port) {
    if (c < '0' || c > '9') return bad("bad port");
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) return bad("bad port");
  ep.port = static_cast<std::uint16_t>(value);
  return ep;
}

std::string queryEscape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~' || c == '@') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

Result<http2::Response> adminRequest(const AdminEndpoint& endpoint, std::string_view method,
                                     std::string_view path, const AdminClientOptions& options) {
  Result<int> fd = connectTo(endpoint, options.timeout);
  if (!fd.isOk()) return fd.status();
  Fd owner(*fd);
  Channel channel(*fd);
  if (endpoint.tls) {
    if (Status s = channel.startTls(endpoint, options.ca_file); !s) return s;
  }
  http2::Request request;
  request.method = std::string(method);
  request.path = std::string(path);
  request.headers.push_back({"accept", "application/json"});
  request.headers.push_back({"connection", "close"});
  if (!options.token.empty())
    request.headers.push_back({"authorization", "Bearer " + options.token});
  if (!channel.writeAll(http2::http1::serializeRequest(request, hostForHeader(endpoint)))) {
    return unavailable(fmt::format("sending to the admin listener at {} failed: {}", endpoint.url(),
                                   std::strerror(errno)));
  }
  http2::http1::Parser parser(http2::http1::Parser::Kind::kResponse, kMaxAnswerBody);
  char buf[16384];
  for (;;) {
    long n = channel.read(buf, sizeof buf);
    http2::http1::Parser::State state;
    if (n > 0) {
      state = parser.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    } else if (n == 0) {
      state = parser.finish();
      if (state == http2::http1::Parser::State::kIncomplete) {
        return unavailable(
            fmt::format("the admin listener at {} closed the connection without "
                        "an answer",
                        endpoint.url()));
      }
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return Status(StatusCode::kTimedOut,
                    fmt::format("no answer from the admin listener at {} within {} s",
                                endpoint.url(), options.timeout.count() / 1000));
    } else {
      return unavailable(fmt::format("reading from the admin listener at {} failed: {}",
                                     endpoint.url(), std::strerror(errno)));
    }
    if (state == http2::http1::Parser::State::kComplete) return std::move(parser.response());
    if (state == http2::http1::Parser::State::kError) {
      return unavailable(fmt::format("bad answer from the admin listener at {}: {}", endpoint.url(),
                                     parser.error()));
    }
  }
}

std::string describeAdminError(const http2::Response& response) {
  if (response.status == 401) return "the admin token was refused (check [admin] token_file)";
  json j = json::parse(response.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    return fmt::format("{} (HTTP {})", j["error"].get<std::string>(), response.status);
  }
  return fmt::format("the admin listener answered HTTP {}", response.status);
}

Result<std::string> renderStatus(std::string_view body) {
  Result<json> parsed = parseBody(body);
  if (!parsed.isOk()) return parsed.status();
  const json& j = *parsed;
  if (!j.contains("version")) return internalError("the status answer has no \"version\"");
  std::string out = fmt::format("sipwake {} up {} s\n", text(j, "version"), number(j, "uptime_s"));
  out += fmt::format("bindings {}  push bindings {}  parked {}\n", text(j, "bindings"),
                     text(j, "push_bindings"), text(j, "parked"));
  if (auto it = j.find("connections"); it != j.end() && it->is_object()) {
    out += "connections";
    for (const auto& [transport, n] : it->items())
      out += fmt::format("  {} {}", transport, n.dump());
    out += "\n";
  }
  if (auto it = j.find("pushes"); it != j.end() && it->is_object()) {
    for (const auto& [provider, counts] : it->items()) {
      out += fmt::format("pushes {}: sent {} failed {}\n", provider, text(counts, "sent"),
                         text(counts, "failed"));
    }
  }
  if (auto it = j.find("wake_latency_ms"); it != j.end() && it->is_object()) {
    out += fmt::format("wake latency ms: p50 {} p90 {} p99 {} (of {} calls)\n", text(*it, "p50"),
                       text(*it, "p90"), text(*it, "p99"), text(*it, "count"));
  }
  return out;
}

Result<std::string> renderBindings(std::string_view body) {
  Result<json> parsed = parseBody(body);
  if (!parsed.isOk()) return parsed.status();
  const json& j = *parsed;
  const json* bindings = array(j, "bindings");
  const json* pushes = array(j, "push_bindings");
  if (bindings == nullptr || pushes == nullptr) {
    return internalError("the bindings answer has no \"bindings\" or \"push_bindings\" list");
  }
  std::string out =
      fmt::format("{}: {} binding{}, {} push binding{}\n", text(j, "aor"), bindings->size(),
                  bindings->size() == 1 ? "" : "s", pushes->size(), pushes->size() == 1 ? "" : "s");
  for (const json& b : *bindings) {
    out += fmt::format("  contact {}\n    device {}  expires in {} s  {} from {}  {}\n",
                       text(b, "contact"), text(b, "device_key"), text(b, "expires_in"),
                       text(b, "transport"), text(b, "source"), text(b, "user_agent"));
  }
  for (const json& p : *pushes) {
    out += fmt::format("  push device {}  {} app {}  token {}", text(p, "device_key"),
                       text(p, "provider"), text(p, "app"), text(p, "token"));
    if (p.contains("voip_token") && !p["voip_token"].is_null()) {
      out += "  voip token " + text(p, "voip_token");
    }
    out += fmt::format("  expires in {} s\n", text(p, "expires_in"));
  }
  return out;
}

Result<std::string> renderDropped(std::string_view body) {
  Result<json> parsed = parseBody(body);
  if (!parsed.isOk()) return parsed.status();
  const json& j = *parsed;
  if (!j.contains("removed_bindings")) {
    return internalError("the drop answer has no \"removed_bindings\"");
  }
  return fmt::format("removed {} binding(s) and {} push binding(s)\n", text(j, "removed_bindings"),
                     text(j, "removed_push_bindings"));
}

Result<std::string> renderTimelines(std::string_view body) {
  Result<json> parsed = parseBody(body);
  if (!parsed.isOk()) return parsed.status();
  const json* timelines = array(*parsed, "timelines");
  if (timelines == nullptr) return internalError("the timeline answer has no \"timelines\" list");
  if (timelines->empty()) return std::string("no wake-up recorded\n");
  std::string out;
  for (const json& t : *timelines) {
    out +=
        fmt::format("{}  call {}  {} -> {}  outcome: {}\n", clock(number(t, "start_ms")),
                    text(t, "call_id"), text(t, "caller"), text(t, "callee"), text(t, "outcome"));
    if (const json* steps = array(t, "steps")) {
      for (const json& s : *steps) {
        out += fmt::format("  +{:>6} ms  {}", number(s, "ms"), text(s, "what"));
        for (const char* key : {"device_key", "provider", "status", "reason"}) {
          auto it = s.find(key);
          if (it == s.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()))
            continue;
          out += fmt::format("  {}={}", key, text(s, key));
        }
        out += "\n";
      }
    }
  }
  return out;
}

Result<std::string> renderPushTest(std::string_view body) {
  Result<json> parsed = parseBody(body);
  if (!parsed.isOk()) return parsed.status();
  const json* results = array(*parsed, "results");
  if (results == nullptr) return internalError("the push test answer has no \"results\" list");
  std::string out = fmt::format("{}: {} device(s) pushed\n", text(*parsed, "aor"), results->size());
  for (const json& r : *results) {
    out += fmt::format("  device {}  {} app {}  token {}: {}", text(r, "device_key"),
                       text(r, "provider"), text(r, "app"), text(r, "token"), text(r, "outcome"));
    if (r.contains("status") && !r["status"].is_null()) out += " HTTP " + text(r, "status");
    if (r.contains("reason") && r["reason"].is_string() &&
        !r["reason"].get<std::string>().empty()) {
      out += " " + text(r, "reason");
    }
    if (r.contains("apns_id") && r["apns_id"].is_string()) out += " apns-id " + text(r, "apns_id");
    out += "\n";
  }
  return out;
}

Result<std::string> renderReload(std::string_view body) {
  Result<json> parsed = parseBody(body);
  if (!parsed.isOk()) return parsed.status();
  const json* reloaded = array(*parsed, "reloaded");
  if (reloaded == nullptr) return internalError("the reload answer has no \"reloaded\" list");
  auto join = [](const json& list) {
    std::string s;
    for (const json& e : list)
      s += (s.empty() ? "" : ", ") + (e.is_string() ? e.get<std::string>() : e.dump());
    return s.empty() ? std::string("nothing") : s;
  };
  std::string out = "reloaded: " + join(*reloaded) + "\n";
  if (const json* restart = array(*parsed, "restart_needed");
      restart != nullptr && !restart->empty()) {
    out += "changed but kept until a restart: " + join(*restart) + "\n";
  }
  return out;
}

}  // namespace sipwake::server
