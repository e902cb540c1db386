#include "fake_pns.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <regex>

#include "common/log.h"
#include "push/push_params.h"
#include "transport/event_loop.h"

namespace sipwake::tools {
namespace {

using nlohmann::json;

std::int64_t nowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
std::int64_t nowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string randomHex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string newUuid() {
  std::string h = randomHex(16);
  h[12] = '4';
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

bool isUuid(std::string_view s) {
  static const std::regex re(
      "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
  return std::regex_match(s.begin(), s.end(), re);
}

bool isHex(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

bool isDecimal(std::string_view s) {
  return !s.empty() && s.size() <= 18 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string formDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() + 0 && isHex(s.substr(i + 1, 2))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> parseForm(std::string_view body) {
  std::map<std::string, std::string> out;
  while (!body.empty()) {
    std::size_t amp = body.find('&');
    std::string_view item = body.substr(0, amp);
    std::size_t eq = item.find('=');
    if (eq != std::string_view::npos) {
      out[formDecode(item.substr(0, eq))] = formDecode(item.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    body.remove_prefix(amp + 1);
  }
  return out;
}

// The JWT's header without verifying it (to find the key).
std::optional<json> peekJwtPart(std::string_view jwt, int index) {
  std::size_t d1 = jwt.find('.');
  if (d1 == std::string_view::npos) return std::nullopt;
  std::size_t d2 = jwt.find('.', d1 + 1);
  if (d2 == std::string_view::npos) return std::nullopt;
  std::string_view part = index == 0 ? jwt.substr(0, d1) : jwt.substr(d1 + 1, d2 - d1 - 1);
  auto raw = push::base64UrlDecode(part);
  if (!raw) return std::nullopt;
  json j = json::parse(*raw, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

http2::Response jsonResponse(int status, const json& body) {
  http2::Response r;
  r.status = status;
  r.body = body.dump();
  r.headers.push_back({"content-type", "application/json; charset=UTF-8"});
  return r;
}

const std::set<std::string>& apnsPushTypes() {
  static const std::set<std::string> k{"alert",        "background",   "location", "voip",
                                       "complication", "fileprovider", "mdm",      "liveactivity",
                                       "pushtotalk",   "controls",     "widgets"};
  return k;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The topic suffix each push type requires ("" = the bare bundle id).
std::string requiredSuffix(const std::string& type) {
  if (type == "voip") return ".voip";
  if (type == "complication") return ".complication";
  if (type == "fileprovider") return ".pushkit.fileprovider";
  if (type == "location") return ".location-query";
  if (type == "liveactivity") return ".push-type.liveactivity";
  if (type == "pushtotalk") return ".voip-ptt";
  return "";
}

// Script key of the OAuth2 token endpoint (device tokens never contain spaces).
const std::string kTokenEndpointScript = "token endpoint";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Control port: one JSON object per line, each answered by one line; subscribers also receive
// {"event":"push",...} lines.
class ControlConnection : public std::enable_shared_from_this<ControlConnection> {
 public:
  ControlConnection(asio::ip::tcp::socket socket, FakePns& owner)
      : socket_(std::move(socket)), owner_(owner) {}
  void start() { read(); }
  void send(const json& j) {
    bool idle = out_.empty();
    out_.push_back(j.dump() + "\n");
    if (idle) write();
  }
  void close() {
    asio::error_code ec;
    socket_.close(ec);
    closed_ = true;
  }
  bool closed() const { return closed_; }

 private:
  void read() {
    auto self = shared_from_this();
    asio::async_read_until(socket_, asio::dynamic_buffer(in_, 1 << 20), '\n',
                           [self](const asio::error_code& ec, std::size_t n) {
                             if (ec || self->closed_) {
                               self->closed_ = true;
                               self->owner_.dropSubscriber(self.get());
                               return;
                             }
                             std::string line = self->in_.substr(0, n);
                             self->in_.erase(0, n);
                             json op = json::parse(line, nullptr, false);
                             json reply;
                             try {
                               reply = op.is_discarded() || !op.is_object()
                                           ? json{{"ok", false}, {"error", "not a JSON object"}}
                                           : self->owner_.handleControl(op, self);
                             } catch (const json::exception& e) {  // a field of the wrong type
                               reply = {{"ok", false}, {"error", e.what()}};
                             }
                             self->send(reply);
                             self->read();
                           });
  }
  void write() {
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_.front()),
                      [self](const asio::error_code& ec, std::size_t) {
                        if (ec) {
                          self->closed_ = true;
                          return;
                        }
                        self->out_.pop_front();
                        if (!self->out_.empty()) self->write();
                      });
  }

  asio::ip::tcp::socket socket_;
  FakePns& owner_;
  std::string in_;
  std::deque<std::string> out_;
  bool closed_ = false;
};

FakePns::FakePns(transport::EventLoop& loop, FakePnsConfig config)
    : loop_(loop), config_(std::move(config)), control_(loop.io()) {
  for (const auto& sa : config_.service_accounts) {
    if (!sa.project_id.empty()) config_.fcm_projects.insert(sa.project_id);
  }
}

FakePns::~FakePns() { stop(); }

Status FakePns::start(const std::string& host, std::uint16_t port, const std::string& cert_file,
                      const std::string& key_file, const std::string& control_host,
                      std::uint16_t control_port) {
  http2::ServerOptions o;
  o.listen_host = host;
  o.port = port;
  o.cert_file = cert_file;
  o.key_file = key_file;
  o.max_concurrent_streams = 1000;
  o.protocols = config_.protocols;
  server_ = std::make_unique<http2::Http2Server>(
      loop_, o,
      [this](const http2::Request& req, http2::Responder r) { onRequest(req, std::move(r)); });
  Status s = server_->start();
  if (!s) return s;
  if (!control_host.empty()) {
    asio::error_code ec;
    auto addr = asio::ip::make_address(control_host, ec);
    if (ec) return invalidArgument("bad control address " + control_host);
    asio::ip::tcp::endpoint ep(addr, control_port);
    control_.open(ep.protocol(), ec);
    if (!ec) control_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) control_.bind(ep, ec);
    if (!ec) control_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return unavailable("control port: " + ec.message());
    control_port_ = control_.local_endpoint(ec).port();
    loop_.post([this] { acceptControl(); });
  }
  return Status::ok();
}

void FakePns::stop() {
  if (server_) server_->stop();
  asio::error_code ec;
  control_.close(ec);
  for (auto& c : control_conns_) c->close();
  control_conns_.clear();
}

void FakePns::acceptControl() {
  control_.async_accept([this](const asio::error_code& ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !control_.is_open()) return;
    if (!ec) {
      auto c = std::make_shared<ControlConnection>(std::move(socket), *this);
      control_conns_.push_back(c);
      c->start();
    }
    acceptControl();
  });
}

void FakePns::dropSubscriber(ControlConnection* conn) {
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    auto sp = it->second.lock();
    it = (!sp || sp.get() == conn) ? subscribers_.erase(it) : std::next(it);
  }
  control_conns_.erase(std::remove_if(control_conns_.begin(), control_conns_.end(),
                                      [conn](auto& c) { return c.get() == conn; }),
                       control_conns_.end());
}

json FakePns::handleControl(const json& op, const std::shared_ptr<ControlConnection>& from) {
  std::string name = op.value("op", "");
  if (name == "subscribe") {
    std::string token = op.value("token", "");
    if (token.empty()) return {{"ok", false}, {"error", "subscribe needs a token"}};
    subscribers_.emplace(token, from);
    if (op.contains("topic") && op["topic"].is_string()) token_topic_[token] = op["topic"];
    if (op.contains("project") && op["project"].is_string()) token_project_[token] = op["project"];
    return {{"ok", true}};
  }
  if (name == "script" || name == "script_token_endpoint") {
    const bool endpoint = name == "script_token_endpoint";
    const std::string key = endpoint ? kTokenEndpointScript : op.value("token", "");
    if (key.empty() || !op.contains("responses") || !op["responses"].is_array()) {
      return {{"ok", false},
              {"error", endpoint ? "script_token_endpoint needs responses[]"
                                 : "script needs token and responses[]"}};
    }
    for (const auto& r : op["responses"]) {
      if (!r.is_object()) return {{"ok", false}, {"error", "each response is an object"}};
      scripts_[key].push_back(r);
    }
    return {{"ok", true}, {"queued", scripts_[key].size()}};
  }
  if (name == "lose") {
    // The next `count` pushes accepted for the token are answered 200 and never delivered.
    std::string token = op.value("token", "");
    const std::int64_t count = op.value("count", std::int64_t{1});
    if (token.empty() || count < 0)
      return {{"ok", false}, {"error", "lose needs a token and count >= 0"}};
    lose_next_[token] = static_cast<std::uint64_t>(count);
    return {{"ok", true}};
  }
  if (name == "expire_provider_tokens") {
    // Every APNs provider token seen so far is now older than an hour: the next request bearing
    // one gets 403 ExpiredProviderToken, and its connection may take a new token at once.
    std::size_t n = 0;
    for (auto& [conn, auth] : apns_conn_auth_) {
      if (!auth.token.empty()) {
        expired_jwts_.insert(auth.token);
        ++n;
      }
      auth = ConnAuth{};
    }
    return {{"ok", true}, {"expired", n}};
  }
  if (name == "expire_access_tokens") {
    // Every OAuth2 access token issued so far expires now: FCM answers 401 UNAUTHENTICATED.
    for (auto& [token, at] : access_tokens_) at.expires_unix = 0;
    return {{"ok", true}, {"expired", access_tokens_.size()}};
  }
  if (name == "stats") {
    json rejected = json::object();
    std::uint64_t total = 0;
    for (auto& [reason, n] : rejected_) {
      rejected[reason] = n;
      total += n;
    }
    return {{"ok", true},
            {"accepted", accepted_apns_ + accepted_fcm_ + accepted_webhook_},
            {"accepted_apns", accepted_apns_},
            {"accepted_fcm", accepted_fcm_},
            {"accepted_webhook", accepted_webhook_},
            {"lost", lost_},
            {"tokens_issued", tokens_issued_},
            {"token_requests", token_requests_},
            {"rejected_total", total},
            {"rejected", rejected}};
  }
  return {{"ok", false}, {"error", "unknown op"}};
}

void FakePns::reject(const std::string& provider, const std::string& reason,
                     const std::string& token) {
  rejected_[provider + ":" + reason]++;
  SW_LOG_WARN("fakepns: rejected {} request (token {}): {}", provider,
              token.empty() ? std::string("-") : push::redactToken(token), reason);
}

void FakePns::notify(const std::string& provider, const std::string& token, const json& headers,
                     const json& payload, int scripted_status, const std::string& key_id) {
  json ev = {{"event", "push"},    {"provider", provider}, {"token", token},
             {"headers", headers}, {"payload", payload},   {"rx_mono_ns", current_rx_ns_}};
  if (!key_id.empty()) ev["key_id"] = key_id;
  if (scripted_status != 0) {  // not a "push": a phone listening for its token must not wake
    ev["event"] = "refused";
    ev["scripted_status"] = scripted_status;
  }
  if (scripted_status == 0 && loseThisPush(token)) {
    // Accepted and lost: subscribers hear of it as "lost" (a phone waiting for "push" sleeps on).
    ev["event"] = "lost";
    return deliver(token, ev);
  }
  if (scripted_status == 0 && config_.delay_max_ms > 0) {
    std::uint32_t r = 0;
    RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r);
    const int span = config_.delay_max_ms - config_.delay_min_ms;
    const int delay =
        config_.delay_min_ms + static_cast<int>(r % static_cast<std::uint32_t>(span + 1));
    if (delay > 0) {
      loop_.timers().schedule(std::chrono::milliseconds(delay),
                              [this, token, ev] { deliver(token, ev); });
      return;
    }
  }
  deliver(token, ev);
}

bool FakePns::loseThisPush(const std::string& token) {
  bool lose = false;
  if (auto it = lose_next_.find(token); it != lose_next_.end() && it->second > 0) {
    --it->second;
    lose = true;
  } else if (config_.lose_share > 0) {
    std::uint64_t r = 0;
    RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r);
    lose = static_cast<double>(r >> 11) / static_cast<double>(1ULL << 53) < config_.lose_share;
  }
  if (lose) {
    lost_++;
    SW_LOG_INFO("fakepns: push for {} accepted and lost", push::redactToken(token));
  }
  return lose;
}

void FakePns::deliver(const std::string& token, const json& ev) {
  auto range = subscribers_.equal_range(token);
  for (auto it = range.first; it != range.second; ++it) {
    if (auto c = it->second.lock(); c && !c->closed()) c->send(ev);
  }
}

void FakePns::onRequest(const http2::Request& req, http2::Responder responder) {
  current_rx_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  static const std::string kApns = "/3/device/";
  static const std::regex kFcm("^/v1/projects/([^/]+)/messages:send$");
  std::smatch m;
  if (!config_.webhook_path.empty() && req.path == config_.webhook_path) {
    return handleWebhook(req, responder);
  }
  if (req.path.rfind(kApns, 0) == 0 || req.path == "/3/device") {
    std::string token = req.path.size() > kApns.size() ? req.path.substr(kApns.size()) : "";
    return handleApns(req, responder, std::move(token));
  }
  if (std::regex_match(req.path, m, kFcm)) return handleFcm(req, responder, m[1].str());
  if (req.path == "/token") return handleToken(req, responder);
  if (req.path.rfind("/3/", 0) == 0) {
    reject("apns", "BadPath", "");
    return responder.respond(jsonResponse(404, {{"reason", "BadPath"}}));
  }
  reject("http", "NotFound", "");
  fcmError(responder, 404, "NOT_FOUND", "Requested entity was not found.", "", "");
}

// ---------------------------------------------------------------------------------------------
// APNs (developer.apple.com: "Sending notification requests to APNs", "Handling notification
// responses from APNs", "Establishing a token-based connection to APNs").

void FakePns::apnsError(const http2::Responder& r, const std::string& apns_id, int status,
                        const std::string& reason, const std::string& token) {
  reject("apns", reason, token);
  json body = {{"reason", reason}};
  if (status == 410) body["timestamp"] = nowUnixMs();
  http2::Response resp = jsonResponse(status, body);
  resp.headers.push_back({"apns-id", apns_id});
  r.respond(std::move(resp));
}

void FakePns::handleApns(const http2::Request& req, const http2::Responder& r, std::string token) {
  std::string apns_id(req.header("apns-id"));
  const std::string reply_id = apns_id.empty() || !isUuid(apns_id) ? newUuid() : apns_id;
  auto fail = [&](int status, const std::string& reason) {
    apnsError(r, reply_id, status, reason, token);
  };
  if (req.method != "POST") return fail(405, "MethodNotAllowed");
  if (token.empty()) return fail(400, "MissingDeviceToken");
  if (!isHex(token) || token.size() < 32 || token.size() > 200) return fail(400, "BadDeviceToken");
  for (const char* h : {"authorization", "apns-id", "apns-topic", "apns-push-type", "apns-priority",
                        "apns-expiration", "apns-collapse-id"}) {
    if (req.headerCount(h) > 1) return fail(400, "DuplicateHeaders");
  }
  if (!apns_id.empty() && !isUuid(apns_id)) return fail(400, "BadMessageId");

  // Provider token.
  std::string auth(req.header("authorization"));
  if (auth.empty()) return fail(403, "MissingProviderToken");
  if (lower(auth.substr(0, 7)) != "bearer ") return fail(403, "InvalidProviderToken");
  std::string jwt = auth.substr(7);
  const std::int64_t now = nowUnix();
  // The token this connection already proved (signature, claims): only its age is re-checked,
  // as APNs validates a provider token once per connection.
  if (auto known = apns_conn_auth_.find(req.connection_id); known != apns_conn_auth_.end() &&
                                                            !known->second.token.empty() &&
                                                            known->second.token == jwt) {
    if (known->second.iat < now - 3600) return fail(403, "ExpiredProviderToken");
    return checkApnsRequest(req, r, std::move(token), reply_id, jwt);
  }
  auto jwt_header = peekJwtPart(jwt, 0);
  if (!jwt_header || !(*jwt_header)["kid"].is_string()) return fail(403, "InvalidProviderToken");
  const std::string kid = (*jwt_header)["kid"];
  const ApnsKey* key = nullptr;
  for (const auto& k : config_.apns_keys) {
    if (k.key_id == kid) key = &k;
  }
  if (key == nullptr) return fail(403, "InvalidProviderToken");
  if (jwt_header->value("alg", "") != "ES256") return fail(403, "InvalidProviderToken");
  auto verified = push::verifyJwt(jwt, key->public_key);
  if (!verified) return fail(403, "InvalidProviderToken");
  const json& claims = verified->claims;
  if (!claims.contains("iss") || !claims["iss"].is_string() || claims["iss"] != key->team_id) {
    return fail(403, "InvalidProviderToken");
  }
  if (!claims.contains("iat") || !claims["iat"].is_number_integer()) {
    return fail(403, "InvalidProviderToken");
  }
  const std::int64_t iat = claims["iat"].get<std::int64_t>();
  if (iat > now + 60) return fail(403, "InvalidProviderToken");  // issued in the future
  if (iat < now - 3600 || expired_jwts_.contains(jwt)) return fail(403, "ExpiredProviderToken");
  ConnAuth& ca = apns_conn_auth_[req.connection_id];
  if (ca.token != jwt) {
    if (!ca.token.empty() && now - ca.since_unix < 20 * 60) {
      return fail(429, "TooManyProviderTokenUpdates");
    }
    ca.token = jwt;
    ca.since_unix = now;
    ca.iat = iat;
  }
  checkApnsRequest(req, r, std::move(token), reply_id, jwt);
}

// Everything after the provider token: topic, push type, headers, payload, scripts.
void FakePns::checkApnsRequest(const http2::Request& req, const http2::Responder& r,
                               std::string token, const std::string& reply_id,
                               const std::string& jwt) {
  auto fail = [&](int status, const std::string& reason) {
    apnsError(r, reply_id, status, reason, token);
  };

  // Topic and push type.
  const std::string topic(req.header("apns-topic"));
  if (topic.empty()) return fail(400, "MissingTopic");  // mandatory with token auth
  const std::string type(req.header("apns-push-type"));
  if (type.empty() || !apnsPushTypes().contains(type)) return fail(400, "InvalidPushType");
  const std::string suffix = requiredSuffix(type);
  if (!suffix.empty() && !endsWith(topic, suffix)) return fail(400, "InvalidPushType");
  std::string bundle = suffix.empty() ? topic : topic.substr(0, topic.size() - suffix.size());
  if (suffix.empty() && endsWith(topic, ".voip")) return fail(400, "InvalidPushType");
  if (bundle.empty() || bundle.find(' ') != std::string::npos ||
      !config_.apns_topics.contains(bundle)) {
    return fail(400, "BadTopic");
  }
  if (auto it = token_topic_.find(token); it != token_topic_.end() && it->second != topic) {
    return fail(400, "DeviceTokenNotForTopic");
  }

  // Priority, expiration, collapse id.
  int priority = 10;
  if (std::string p(req.header("apns-priority")); !p.empty()) {
    if (p != "10" && p != "5" && p != "1") return fail(400, "BadPriority");
    priority = std::stoi(p);
  }
  if (type == "background" && priority != 5) return fail(400, "BadPriority");
  if (std::string e(req.header("apns-expiration")); !e.empty() && !isDecimal(e)) {
    return fail(400, "BadExpirationDate");
  }
  if (req.header("apns-collapse-id").size() > 64) return fail(400, "BadCollapseId");

  // Payload.
  if (req.body.empty()) return fail(400, "PayloadEmpty");
  const std::size_t limit = type == "voip" ? 5120 : 4096;
  if (req.body.size() > limit) return fail(413, "PayloadTooLarge");
  json payload = json::parse(req.body, nullptr, false);
  if (payload.is_discarded() || !payload.is_object() || !payload.contains("aps") ||
      !payload["aps"].is_object()) {
    return fail(400, "BadPayload");  // fake-only: Apple documents no reason for malformed JSON
  }
  const json& aps = payload["aps"];
  if (type == "alert" && !aps.contains("alert") && !aps.contains("badge") &&
      !aps.contains("sound")) {
    return fail(400, "BadPayload");
  }
  if (type == "alert" && aps.contains("alert") && !aps["alert"].is_string() &&
      !aps["alert"].is_object()) {
    return fail(400, "BadPayload");
  }
  if (type == "background" && (aps.value("content-available", 0) != 1 || aps.contains("alert") ||
                               aps.contains("sound") || aps.contains("badge"))) {
    return fail(400, "BadPayload");
  }

  json headers = json::object();
  for (const auto& h : req.headers) {
    if (h.name.rfind("apns-", 0) == 0) headers[h.name] = h.value;
  }
  // Which provider key signed the token (the JWT header's kid; checked by handleApns).
  std::string key_id;
  if (auto jwt_header = peekJwtPart(jwt, 0); jwt_header && (*jwt_header)["kid"].is_string()) {
    key_id = (*jwt_header)["kid"];
  }
  auto accept = [this, r, reply_id, token, headers, payload, key_id] {
    accepted_apns_++;
    SW_LOG_INFO("fakepns: accepted APNs {} push for {}", headers.value("apns-push-type", ""),
                push::redactToken(token));
    http2::Response resp;
    resp.status = 200;
    resp.headers.push_back({"apns-id", reply_id});
    r.respond(std::move(resp));
    notify("apns", token, headers, payload, 0, key_id);
  };
  // Scripted behaviour for this device token.
  if (auto next = nextScriptStep(token)) {
    const json& step = *next;
    if (step.value("goaway", false)) {
      reject("apns", "goaway", token);
      return r.goaway();
    }
    if (int status = step.value("status", 200); status != 200) {
      std::string reason = step.value("reason", "");
      if (reason.empty()) {
        reason = status == 410   ? "Unregistered"
                 : status == 429 ? "TooManyRequests"
                 : status == 500 ? "InternalServerError"
                 : status == 503 ? "ServiceUnavailable"
                 : status == 403 ? "InvalidProviderToken"
                                 : "BadDeviceToken";
      }
      if (reason == "ExpiredProviderToken") {
        // As if the token had aged: it stays refused, and a new one may replace it at once.
        expired_jwts_.insert(jwt);
        apns_conn_auth_.erase(req.connection_id);
      }
      if (step.value("record", false)) notify("apns", token, headers, payload, status);
      return fail(status, reason);
    }
    if (int delay = step.value("delay_ms", 0); delay > 0) {
      loop_.timers().schedule(std::chrono::milliseconds(delay), accept);
      return;
    }
  }
  accept();
}

// ---------------------------------------------------------------------------------------------
// FCM HTTP v1 (firebase.google.com: "REST Resource: projects.messages", "Send a message using
// FCM HTTP v1 API") and the OAuth2 JWT-bearer grant (RFC 7523, Google's token endpoint).

void FakePns::fcmError(const http2::Responder& r, int status, const std::string& rpc_status,
                       const std::string& message, const std::string& error_code,
                       const std::string& token) {
  reject("fcm", error_code.empty() ? rpc_status : error_code, token);
  json err = {{"code", status}, {"message", message}, {"status", rpc_status}};
  if (!error_code.empty()) {
    err["details"] = json::array({{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"},
                                   {"errorCode", error_code}}});
  }
  http2::Response resp = jsonResponse(status, {{"error", err}});
  if (status == 429 || status == 503) resp.headers.push_back({"retry-after", "1"});
  r.respond(std::move(resp));
}

void FakePns::handleFcm(const http2::Request& req, const http2::Responder& r, std::string project) {
  auto invalid = [&](const std::string& message, const std::string& token = "") {
    fcmError(r, 400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT", token);
  };
  if (req.method != "POST") {
    return fcmError(r, 405, "METHOD_NOT_ALLOWED", "Method not allowed.", "", "");
  }
  std::string auth(req.header("authorization"));
  std::string access = lower(auth.substr(0, 7)) == "bearer " ? auth.substr(7) : "";
  auto at = access_tokens_.find(access);
  if (access.empty() || at == access_tokens_.end() || at->second.expires_unix <= nowUnix()) {
    return fcmError(r, 401, "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                    "", "");
  }
  if (!config_.fcm_projects.contains(project) || at->second.project != project) {
    return fcmError(r, 403, "PERMISSION_DENIED",
                    "Permission 'cloudmessaging.messages.create' denied on resource "
                    "'//cloudresourcemanager.googleapis.com/projects/" +
                        project + "' (or it may not exist).",
                    "", "");
  }
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return invalid("Invalid JSON payload received.");
  }
  for (auto& [k, v] : body.items()) {
    if (k != "message" && k != "validate_only" && k != "validateOnly") {
      return invalid("Invalid JSON payload received. Unknown name \"" + k +
                     "\": Cannot find field.");
    }
  }
  if (!body.contains("message") || !body["message"].is_object()) {
    return invalid("Request contains an invalid argument.");
  }
  const json& msg = body["message"];
  static const std::set<std::string> kMessageFields{
      "name",        "data",       "notification", "android", "webpush",  "apns",
      "fcm_options", "fcmOptions", "token",        "topic",   "condition"};
  for (auto& [k, v] : msg.items()) {
    if (!kMessageFields.contains(k)) {
      return invalid("Invalid JSON payload received. Unknown name \"" + k +
                     "\" at 'message': Cannot find field.");
    }
  }
  int targets = 0;
  std::string token;
  for (const char* t : {"token", "topic", "condition"}) {
    if (msg.contains(t)) {
      if (!msg[t].is_string() || msg[t].get<std::string>().empty()) {
        return invalid(std::string("Invalid value at 'message.") + t + "'");
      }
      ++targets;
    }
  }
  if (msg.contains("token")) token = msg["token"];
  if (targets != 1) {
    return invalid(
        "Request contains an invalid argument: exactly one of token, topic or condition");
  }
  auto checkData = [&](const json& data, const std::string& where) -> bool {
    if (!data.is_object()) {
      invalid("Invalid value at '" + where + "' (type.googleapis.com/google.protobuf.Struct)",
              token);
      return false;
    }
    std::size_t bytes = 0;
    for (auto& [k, v] : data.items()) {
      if (!v.is_string()) {
        invalid("Invalid value at '" + where + "[" + k + "].value' (TYPE_STRING)", token);
        return false;
      }
      bytes += k.size() + v.get<std::string>().size();
    }
    if (bytes > 4096) {
      invalid("Android message is too big", token);
      return false;
    }
    return true;
  };
  if (msg.contains("data") && !checkData(msg["data"], "message.data")) return;
  if (msg.contains("android")) {
    const json& android = msg["android"];
    if (!android.is_object()) return invalid("Invalid value at 'message.android'", token);
    static const std::set<std::string> kAndroidFields{"collapse_key",
                                                      "collapseKey",
                                                      "priority",
                                                      "ttl",
                                                      "restricted_package_name",
                                                      "restrictedPackageName",
                                                      "data",
                                                      "notification",
                                                      "fcm_options",
                                                      "fcmOptions",
                                                      "direct_boot_ok",
                                                      "directBootOk"};
    for (auto& [k, v] : android.items()) {
      if (!kAndroidFields.contains(k)) {
        return invalid("Invalid JSON payload received. Unknown name \"" + k +
                           "\" at 'message.android': Cannot find field.",
                       token);
      }
    }
    if (android.contains("priority")) {
      const json& p = android["priority"];
      std::string pv = p.is_string() ? lower(p.get<std::string>()) : "";
      if (pv != "normal" && pv != "high") {
        return invalid(
            "Invalid value at 'message.android.priority' "
            "(type.googleapis.com/google.firebase.fcm.v1.AndroidConfig.AndroidMessagePriority)",
            token);
      }
    }
    if (android.contains("ttl")) {
      static const std::regex kTtl("^[0-9]+(\\.[0-9]{1,9})?s$");
      const json& t = android["ttl"];
      if (!t.is_string() || !std::regex_match(t.get<std::string>(), kTtl)) {
        return invalid(
            "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)",
            token);
      }
    }
    if (android.contains("data") && !checkData(android["data"], "message.android.data")) return;
  }
  if (auto it = token_project_.find(token);
      !token.empty() && it != token_project_.end() && it->second != project) {
    return fcmError(r, 403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH", token);
  }

  json headers = json::object();
  for (const auto& h : req.headers) {
    if (h.name != "authorization") headers[h.name] = h.value;
  }
  auto accept = [this, r, project, token, headers, msg] {
    accepted_fcm_++;
    SW_LOG_INFO("fakepns: accepted FCM message for {}",
                token.empty() ? std::string("(topic)") : push::redactToken(token));
    r.respond(jsonResponse(
        200, {{"name", "projects/" + project + "/messages/0:" + std::to_string(nowUnixMs()) + "%" +
                           std::to_string(++message_seq_)}}));
    if (!token.empty()) notify("fcm", token, headers, msg);
  };
  if (auto next = token.empty() ? std::nullopt : nextScriptStep(token)) {
    const json& step = *next;
    if (step.value("goaway", false)) {
      reject("fcm", "goaway", token);
      return r.goaway();
    }
    if (int status = step.value("status", 200); status != 200) {
      std::string code = step.value("reason", "");
      std::string rpc;
      switch (status) {
        case 400:
          rpc = "INVALID_ARGUMENT";
          if (code.empty()) code = "INVALID_ARGUMENT";
          break;
        case 401:
          rpc = "UNAUTHENTICATED";
          if (code.empty()) code = "THIRD_PARTY_AUTH_ERROR";
          break;
        case 403:
          rpc = "PERMISSION_DENIED";
          if (code.empty()) code = "SENDER_ID_MISMATCH";
          break;
        case 404:
          rpc = "NOT_FOUND";
          if (code.empty()) code = "UNREGISTERED";
          break;
        case 429:
          rpc = "RESOURCE_EXHAUSTED";
          if (code.empty()) code = "QUOTA_EXCEEDED";
          break;
        case 503:
          rpc = "UNAVAILABLE";
          if (code.empty()) code = "UNAVAILABLE";
          break;
        default:
          rpc = "INTERNAL";
          if (code.empty()) code = "INTERNAL";
          break;
      }
      if (status == 410) status = 404;  // FCM's "unregistered" is 404
      if (step.value("record", false)) notify("fcm", token, headers, msg, status);
      if (status == 401 && code == "UNAUTHENTICATED") {
        // As Google answers a dead access token: no FcmError detail, and the token stays dead.
        access_tokens_.erase(access);
        return fcmError(r, 401, "UNAUTHENTICATED",
                        "Request had invalid authentication credentials.", "", token);
      }
      return fcmError(
          r, status, rpc,
          code == "UNREGISTERED" ? "Requested entity was not found." : "Scripted failure", code,
          token);
    }
    if (int delay = step.value("delay_ms", 0); delay > 0) {
      loop_.timers().schedule(std::chrono::milliseconds(delay), accept);
      return;
    }
  }
  accept();
}

void FakePns::handleToken(const http2::Request& req, const http2::Responder& r) {
  auto oauthError = [&](int status, const std::string& error, const std::string& description) {
    reject("oauth", error, "");
    r.respond(jsonResponse(status, {{"error", error}, {"error_description", description}}));
  };
  token_requests_++;
  if (req.method != "POST") return oauthError(405, "invalid_request", "POST required");
  std::string ctype = lower(req.header("content-type"));
  if (ctype.rfind("application/x-www-form-urlencoded", 0) != 0) {
    return oauthError(400, "invalid_request",
                      "Content-Type must be application/x-www-form-urlencoded");
  }
  auto form = parseForm(req.body);
  const std::string grant = form["grant_type"];
  if (grant != "urn:ietf:params:oauth:grant-type:jwt-bearer") {
    return oauthError(400, "unsupported_grant_type", "Invalid grant_type: " + grant);
  }
  const std::string assertion = form["assertion"];
  auto claims_peek = peekJwtPart(assertion, 1);
  if (!claims_peek) return oauthError(400, "invalid_grant", "Invalid JWT.");
  std::string iss = claims_peek->value("iss", "");
  const push::ServiceAccount* sa = nullptr;
  for (const auto& s : config_.service_accounts) {
    if (s.client_email == iss) sa = &s;
  }
  if (sa == nullptr) return oauthError(400, "invalid_grant", "Invalid JWT Signature.");
  auto verified = push::verifyJwt(assertion, sa->private_key);
  if (!verified || verified->header.value("alg", "") != "RS256") {
    return oauthError(400, "invalid_grant", "Invalid JWT Signature.");
  }
  const json& c = verified->claims;
  if (c.value("aud", "") != sa->token_uri) {
    return oauthError(400, "invalid_grant", "Invalid JWT: Failed audience check.");
  }
  std::string scope = c.value("scope", "");
  bool has_scope = false;
  for (std::size_t pos = 0; pos <= scope.size();) {
    std::size_t sp = scope.find(' ', pos);
    if (scope.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos) ==
        push::kFcmScope) {
      has_scope = true;
    }
    if (sp == std::string::npos) break;
    pos = sp + 1;
  }
  if (!has_scope)
    return oauthError(400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.");
  if (!c.contains("iat") || !c["iat"].is_number_integer() || !c.contains("exp") ||
      !c["exp"].is_number_integer()) {
    return oauthError(400, "invalid_grant", "Invalid JWT: iat and exp are required.");
  }
  const std::int64_t iat = c["iat"], exp = c["exp"], now = nowUnix();
  if (exp - iat > 3600 || exp <= iat || iat > now + 60 || exp < now) {
    return oauthError(400, "invalid_grant",
                      "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                      "reasonable timeframe. Check your iat and exp values in the JWT claim.");
  }
  auto issue = [this, r, project = sa->project_id, email = sa->client_email] {
    std::string token = "ya29.fake-" + randomHex(24);
    access_tokens_[token] = AccessToken{project, nowUnix() + 3599};
    tokens_issued_++;
    SW_LOG_INFO("fakepns: issued an access token to {}", email);
    r.respond(jsonResponse(
        200, {{"access_token", token}, {"expires_in", 3599}, {"token_type", "Bearer"}}));
  };
  // Scripted behaviour of the token endpoint (after the checks: a bad assertion stays an error).
  if (auto step = nextScriptStep(kTokenEndpointScript)) {
    if (int status = step->value("status", 200); status != 200) {
      std::string error = step->value("reason", "");
      if (error.empty()) error = status >= 500 ? "internal_failure" : "invalid_grant";
      return oauthError(status, error, "Scripted failure");
    }
    if (int delay = step->value("delay_ms", 0); delay > 0) {
      loop_.timers().schedule(std::chrono::milliseconds(delay), issue);
      return;
    }
  }
  issue();
}

std::optional<json> FakePns::nextScriptStep(const std::string& key) {
  auto it = scripts_.find(key);
  if (it == scripts_.end() || it->second.empty()) return std::nullopt;
  json step = std::move(it->second.front());
  it->second.pop_front();
  return step;
}

// ---------------------------------------------------------------------------------------------
// sipwake's generic webhook (docs/push.md#webhook): the body must be exactly the documented
// schema, the bearer secret right when one is configured.

namespace {

// Why `body` is not a valid webhook body, or "" when it is.
std::string webhookBodyError(const json& body) {
  if (!body.is_object()) return "body is not a JSON object";
  struct Field {
    const char* name;
    json::value_t type;
  };
  static const Field kTop[] = {{"version", json::value_t::number_unsigned},
                               {"event", json::value_t::string},
                               {"call_id", json::value_t::string},
                               {"call_uuid", json::value_t::string},
                               {"caller", json::value_t::object},
                               {"callee_aor", json::value_t::string},
                               {"provider", json::value_t::string},
                               {"sandbox", json::value_t::boolean},
                               {"app", json::value_t::object},
                               {"tokens", json::value_t::object},
                               {"device_key", json::value_t::string},
                               {"sent_at", json::value_t::number_unsigned}};
  auto checkObject = [](const json& obj, const std::string& where, auto begin,
                        auto end) -> std::string {
    for (auto it = begin; it != end; ++it) {
      if (!obj.contains(it->name)) return "missing " + where + it->name;
      const json& v = obj[it->name];
      const bool int_ok = it->type == json::value_t::number_unsigned && v.is_number_integer() &&
                          v.get<std::int64_t>() >= 0;
      if (v.type() != it->type && !int_ok) return "wrong type of " + where + it->name;
    }
    for (auto& [k, v] : obj.items()) {
      bool known = false;
      for (auto it = begin; it != end; ++it) known = known || k == it->name;
      if (!known) return "unknown field " + where + k;
    }
    return "";
  };
  // A message event may carry "preview" and "loc_key" (strings) on top of the common fields.
  json top = body;
  if (top.is_object() && top.value("event", json()) == "message") {
    for (const char* optional : {"preview", "loc_key"}) {
      if (!top.contains(optional)) continue;
      if (!top[optional].is_string()) return std::string("wrong type of ") + optional;
      top.erase(optional);
    }
  }
  if (auto e = checkObject(top, "", std::begin(kTop), std::end(kTop)); !e.empty()) return e;
  static const Field kCaller[] = {{"uri", json::value_t::string},
                                  {"display_name", json::value_t::string}};
  if (auto e = checkObject(body["caller"], "caller.", std::begin(kCaller), std::end(kCaller));
      !e.empty())
    return e;
  static const Field kApp[] = {{"id", json::value_t::string},
                               {"team_id", json::value_t::string},
                               {"project_id", json::value_t::string},
                               {"apns_topic", json::value_t::string}};
  if (auto e = checkObject(body["app"], "app.", std::begin(kApp), std::end(kApp)); !e.empty())
    return e;
  static const Field kTokens[] = {{"voip", json::value_t::string},
                                  {"message", json::value_t::string}};
  if (auto e = checkObject(body["tokens"], "tokens.", std::begin(kTokens), std::end(kTokens));
      !e.empty())
    return e;
  if (body["version"] != 1) return "version must be 1";
  static const std::set<std::string> kEvents{"call",    "cancel", "missed", "answered_elsewhere",
                                             "refresh", "message"};
  const std::string event = body["event"];
  if (!kEvents.contains(event)) return "unknown event";
  const std::string call_id = body["call_id"];
  const std::string call_uuid = body["call_uuid"];
  if (event == "refresh") {  // no call: a registration refresh
    if (!call_id.empty() || !call_uuid.empty()) return "refresh with a call_id or call_uuid";
  } else {
    if (call_id.empty() || call_id.size() > 512) return "call_id empty or over 512 bytes";
    if (!isUuid(call_uuid)) return "call_uuid is not a UUID";
  }
  if (body["caller"]["display_name"].get<std::string>().size() > 128)
    return "caller.display_name over 128 bytes";
  if (body["caller"]["uri"].get<std::string>().size() > 512) return "caller.uri over 512 bytes";
  if (body["callee_aor"].get<std::string>().empty()) return "callee_aor empty";
  const std::string provider = body["provider"];
  if (provider != "apns" && provider != "fcm" && provider != "webpush") return "unknown provider";
  const std::string voip = body["tokens"]["voip"], message = body["tokens"]["message"];
  if (voip.empty() && message.empty()) return "no device token";
  const std::string topic = body["app"]["apns_topic"];
  if (provider != "apns" && !topic.empty()) return "app.apns_topic set for a non-APNs device";
  if (provider == "apns" && topic.empty()) return "app.apns_topic missing for an APNs device";
  if ((event == "refresh" || event == "message") && provider == "apns" &&
      (message.empty() || endsWith(topic, ".voip"))) {
    return event + " for an APNs device needs tokens.message and a non-VoIP app.apns_topic";
  }
  const std::string key = body["device_key"];
  if (key.size() != provider.size() + 33 || key.compare(0, provider.size() + 1, provider + ":") ||
      !isHex(key.substr(provider.size() + 1))) {
    return "device_key is not <provider>:<32 hex>";
  }
  if (body["sent_at"].get<std::int64_t>() < 1'000'000'000'000) return "sent_at is not unix ms";
  return "";
}

}  // namespace

void FakePns::handleWebhook(const http2::Request& req, const http2::Responder& r) {
  auto fail = [&](int status, const std::string& error) {
    reject("webhook", error.substr(0, error.find(' ')), "");
    SW_LOG_WARN("fakepns: webhook request refused: {} {}", status, error);
    r.respond(jsonResponse(status, {{"error", error}}));
  };
  if (req.method != "POST") return fail(405, "method_not_allowed");
  if (lower(req.header("content-type")).rfind("application/json", 0) != 0) {
    return fail(415, "unsupported_media_type");
  }
  if (!config_.webhook_secret.empty()) {
    std::string auth(req.header("authorization"));
    if (req.headerCount("authorization") != 1 || auth != "Bearer " + config_.webhook_secret) {
      return fail(401, "unauthorized");
    }
  }
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) return fail(400, "bad_body: not JSON");
  if (std::string why = webhookBodyError(body); !why.empty()) return fail(400, "bad_body: " + why);
  const std::string voip = body["tokens"]["voip"];
  const std::string token = voip.empty() ? body["tokens"]["message"].get<std::string>() : voip;
  json headers = json::object();
  for (const auto& h : req.headers) {
    if (h.name != "authorization") headers[h.name] = h.value;
  }
  auto accept = [this, r, token, headers, body] {
    accepted_webhook_++;
    SW_LOG_INFO("fakepns: accepted webhook {} push for {}", body.value("event", ""),
                push::redactToken(token));
    r.respond(jsonResponse(200, {{"ok", true}}));
    notify("webhook", token, headers, body);
  };
  if (auto step = nextScriptStep(token)) {
    if (step->value("goaway", false)) {
      reject("webhook", "goaway", token);
      return r.goaway();
    }
    if (int status = step->value("status", 200); status != 200) {
      reject("webhook", "http_" + std::to_string(status), token);
      http2::Response resp =
          jsonResponse(status, {{"error", step->value("reason", "scripted failure")}});
      if (step->contains("retry_after")) {
        resp.headers.push_back({"retry-after", std::to_string(step->value("retry_after", 1))});
      }
      return r.respond(std::move(resp));
    }
    if (int delay = step->value("delay_ms", 0); delay > 0) {
      loop_.timers().schedule(std::chrono::milliseconds(delay), accept);
      return;
    }
  }
  accept();
}

}  // namespace sipwake::tools
