#include "server/admin.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/log.h"
#include "common/metrics_summary.h"
#include "common/prometheus.h"
#include "common/stats.h"
#include "push/push_params.h"
#include "push/sender.h"
#include "registrar/registrar.h"
#include "registrar/services.h"
#include "routing/timeline.h"
#include "server/cli.h"
#include "server/dashboard_files.h"
#include "sip/uri.h"

namespace sipwake::server {

using json = nlohmann::json;

bool bearerTokenMatches(std::string_view authorization, std::string_view token) {
  constexpr std::string_view kScheme = "Bearer ";
  if (token.empty() || authorization.size() < kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {  // the scheme is case-insensitive
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return false;
    }
  }
  std::string_view given = authorization.substr(kScheme.size());
  // The length is not secret (a file of at least 16 bytes); the bytes are compared in full.
  if (given.size() != token.size()) return false;
  return CRYPTO_memcmp(given.data(), token.data(), token.size()) == 0;
}

std::string truncatedToken(std::string_view token) {
  if (token.empty()) return "";
  if (token.size() <= 12)
    return "…" + std::string(token.substr(token.size() - std::min<std::size_t>(2, token.size())));
  return std::string(token.substr(0, 4)) + "…" + std::string(token.substr(token.size() - 4));
}

std::string redactedContact(std::string_view contact) {
  // The Contact parameters that carry a device token (or, pn-purr, a value that wakes one).
  static constexpr std::string_view kTokenParams[] = {"pn-prid", "pn-tok",  "pn-voip-tok",
                                                      "pn-im-tok", "pn-purr", "push-token-id"};
  std::string out;
  out.reserve(contact.size());
  std::size_t i = 0;
  while (i < contact.size()) {
    const std::size_t semi = contact.find(';', i);
    if (semi == std::string_view::npos) break;
    out.append(contact.substr(i, semi + 1 - i));
    std::size_t end = contact.find_first_of(";>?", semi + 1);
    if (end == std::string_view::npos) end = contact.size();
    std::string_view param = contact.substr(semi + 1, end - semi - 1);
    const std::size_t eq = param.find('=');
    std::string name(param.substr(0, eq));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    bool secret = false;
    for (std::string_view t : kTokenParams) secret = secret || name == t;
    if (secret && eq != std::string_view::npos) {
      out.append(param.substr(0, eq + 1));
      out.append(truncatedToken(param.substr(eq + 1)));
    } else {
      out.append(param);
    }
    i = end;
  }
  out.append(contact.substr(std::min(i, contact.size())));
  return out;
}

namespace {

http2::Response jsonResponse(int status, const json& body) {
  http2::Response r;
  r.status = status;
  r.headers.push_back({"content-type", "application/json"});
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  return r;
}

http2::Response error(int status, std::string text) {
  return jsonResponse(status, json{{"error", std::move(text)}});
}

http2::Response metrics(const http2::Request& request) {
  if (request.method != "GET") {
    http2::Response r = error(405, "method not allowed; /metrics answers GET");
    r.headers.push_back({"allow", "GET"});
    return r;
  }
  http2::Response r;
  r.status = 200;
  r.headers.push_back({"content-type", std::string(prometheus::kContentType)});
  r.body = prometheus::render(Stats::global().full());
  return r;
}

// The dashboard's static files: "/" and "/dashboard/" are its index.html, "/dashboard/NAME" the
// embedded file NAME. nullptr for any other path.
const DashboardFile* dashboardFileFor(std::string_view path) {
  std::string_view name;
  if (path == "/" || path == "/dashboard" || path == "/dashboard/") {
    name = "index.html";
  } else if (path.rfind("/dashboard/", 0) == 0) {
    name = path.substr(11);
  } else {
    return nullptr;
  }
  for (const DashboardFile& f : dashboardFiles()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// A static file with the headers that keep the page to its own scripts and styles: no inline
// script or style runs, nothing loads from elsewhere, the browser does not guess content types.
http2::Response dashboardResponse(const http2::Request& request, const DashboardFile& file) {
  if (request.method != "GET") {
    http2::Response r = error(405, "method not allowed; the dashboard answers GET");
    r.headers.push_back({"allow", "GET"});
    return r;
  }
  http2::Response r;
  r.status = 200;
  r.headers.push_back({"content-type", std::string(file.content_type)});
  r.headers.push_back(
      {"content-security-policy",
       "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'"});
  r.headers.push_back({"x-content-type-options", "nosniff"});
  r.headers.push_back({"cache-control", "no-cache"});
  r.headers.push_back({"referrer-policy", "no-referrer"});
  r.body = std::string(file.body);
  return r;
}

const std::string* header(const http2::Request& r, std::string_view name) {
  for (const http2::Header& h : r.headers) {
    if (h.name.size() == name.size() &&
        std::equal(h.name.begin(), h.name.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == b;
        })) {
      return &h.value;
    }
  }
  return nullptr;
}

// The query's parameters, %-decoded; nullopt when an escape is bad.
std::optional<std::map<std::string, std::string>> queryOf(std::string_view path) {
  std::map<std::string, std::string> out;
  const auto q = path.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view rest = path.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    auto key = sip::unescape(pair.substr(0, eq));
    auto value = sip::unescape(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (!key || !value) return std::nullopt;
    out[*key] = *value;
  }
  return out;
}

// "alice@example.com" or "sip:alice@example.com" → the canonical AOR ("sip:alice@example.com").
Result<std::string> aorOf(const std::string& given) {
  std::string text = given;
  if (text.rfind("sip:", 0) != 0 && text.rfind("sips:", 0) != 0) text = "sip:" + text;
  auto uri = sip::parseUri(text);
  if (!uri) return invalidArgument("aor: \"" + given + "\" is not user@domain");
  auto aor = registrar::canonicalAor(*uri);
  if (!aor) return invalidArgument("aor: \"" + given + "\": " + aor.status().message());
  return aor;
}

// The AOR as the API shows it: user@domain.
std::string shownAor(std::string_view aor) {
  if (aor.rfind("sip:", 0) == 0) aor.remove_prefix(4);
  return std::string(aor);
}

std::int64_t secondsLeft(location::SysSeconds expires, location::SysSeconds now) {
  return std::max<std::int64_t>(0, (expires - now).count());
}

// The push device a SIP binding belongs to ("" when it carries no push binding).
std::string deviceKeyOf(const location::Binding& b) {
  return b.push ? b.push->deviceKey() : "";
}

// The RFC 8599 parameters of a push binding as a Contact would carry them (tokens truncated).
std::string pushParamsText(const push::PushBinding& b) {
  std::string s = "pn-provider=" + std::string(push::providerName(b.provider));
  const std::string& token = b.callToken();
  if (!b.app_id.empty()) s += ";pn-param=" + b.app_id;
  if (!token.empty()) s += ";pn-prid=" + truncatedToken(token);
  return s;
}

json bindingsJson(const location::LocationStore& locations,
                  const location::LocationStore& push_store, const std::string& aor) {
  const location::SysSeconds now = registrar::systemWallClock();
  json sip = json::array();
  for (const location::Binding& b : locations.lookup(aor, now)) {
    std::string source = b.received.source_ip.find(':') != std::string::npos
                             ? "[" + b.received.source_ip + "]"
                             : b.received.source_ip;
    sip.push_back({{"contact", redactedContact(b.contact_uri)},
                   {"device_key", deviceKeyOf(b)},
                   {"expires_in", secondsLeft(b.expires_at, now)},
                   {"transport", b.received.protocol},
                   {"source", source + ":" + std::to_string(b.received.source_port)},
                   {"user_agent", b.user_agent},
                   {"call_id", b.call_id},
                   {"cseq", b.cseq}});
  }
  json pushes = json::array();
  for (const location::PushRecord& r : push_store.lookupPush(aor, now)) {
    const push::PushBinding* pb = &r.binding;
    pushes.push_back(
        {{"device_key", r.device_key},
         {"provider", std::string(push::providerName(pb->provider))},
         {"app", std::string(pb->appKey())},
         {"token", truncatedToken(pb->message_token.empty() ? pb->voip_token : pb->message_token)},
         {"voip_token",
          pb->voip_token.empty() ? json(nullptr) : json(truncatedToken(pb->voip_token))},
         {"expires_in", secondsLeft(r.expires_at, now)},
         {"params", pushParamsText(*pb)}});
  }
  return {
      {"aor", shownAor(aor)}, {"bindings", std::move(sip)}, {"push_bindings", std::move(pushes)}};
}

json timelineJson(const routing::Timeline& t) {
  json steps = json::array();
  for (const routing::TimelineStep& s : t.steps) {
    json step = {{"ms", s.ms}, {"what", s.what}, {"text", s.text}};
    if (!s.device_key.empty()) step["device_key"] = s.device_key;
    if (!s.provider.empty()) step["provider"] = s.provider;
    if (s.what == "provider answered") {
      step["status"] = s.status;
      step["reason"] = s.reason;
      step["outcome"] = s.outcome;
    } else if (s.status != 0) {
      step["status"] = s.status;
    }
    steps.push_back(std::move(step));
  }
  return {{"call_id", t.call_id},  {"caller", t.caller},       {"callee", shownAor(t.callee)},
          {"method", t.method},    {"start_ms", t.start_ms},   {"outcome", t.outcome},
          {"final", t.final_code}, {"steps", std::move(steps)}};
}

// Wake-latency percentiles (wake.latency.total, ms) as the status shows them.
json latencyJson(const MetricsSummary::Latency& l) {
  auto value = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  return {{"count", l.count}, {"p50", value(l.p50)}, {"p90", value(l.p90)}, {"p99", value(l.p99)}};
}

// One push test: every device's answer, collected from the sender's threads; answered once,
// when the last comes or at the bound.
struct PushTest {
  std::mutex mu;
  json results = json::array();
  std::size_t pending = 0;
  std::string aor;
  http2::Http1Server::Responder respond;
  std::atomic<bool> answered{false};

  void finish() {
    if (answered.exchange(true)) return;
    json body;
    {
      std::lock_guard lock(mu);
      for (json& r : results) {
        if (r["outcome"].is_null()) {
          r["outcome"] = "unreachable";
          r["reason"] = "no answer within the bound";
        }
      }
      body = {{"aor", shownAor(aor)}, {"results", results}};
    }
    respond(jsonResponse(200, body));
  }
};

std::string testOutcome(const push::PushOutcome& out) {
  switch (out.kind) {
    case push::PushOutcome::Kind::kOk:
      return "accepted";
    case push::PushOutcome::Kind::kTransient:
      return out.provider_status == 0 ? "unreachable" : "rejected";
    case push::PushOutcome::Kind::kRemoveBinding:
    case push::PushOutcome::Kind::kPermanent:
      return "rejected";
  }
  return "rejected";
}

}  // namespace

AdminApi::AdminApi(AdminDeps deps)
    : deps_(std::move(deps)), started_(std::chrono::steady_clock::now()) {}

void AdminApi::handle(const http2::Request& request, http2::Http1Server::Responder respond) {
  std::string_view path = request.path;
  path = path.substr(0, path.find('?'));
  if (path == "/metrics") return respond(metrics(request));
  if (const DashboardFile* file = dashboardFileFor(path)) {
    return respond(dashboardResponse(request, *file));
  }
  if (path.rfind("/api/", 0) != 0) {
    return respond(error(404, "no such path: " + std::string(path) +
                                  " (the admin listener serves /, /dashboard/, /metrics and "
                                  "/api/...)"));
  }
  if (deps_.token.empty()) return respond(error(403, "admin API disabled: set [admin] token_file"));
  const std::string* auth = header(request, "authorization");
  if (auth == nullptr || !bearerTokenMatches(*auth, deps_.token)) {
    http2::Response r =
        error(401, auth == nullptr ? "missing Authorization: Bearer token" : "wrong admin token");
    r.headers.push_back({"www-authenticate", "Bearer realm=\"sipwake-admin\""});
    return respond(std::move(r));
  }
  auto method_not_allowed = [&](std::string allow) {
    http2::Response r =
        error(405, "method not allowed; " + std::string(path) + " answers " + allow);
    r.headers.push_back({"allow", std::move(allow)});
    return r;
  };
  auto query = queryOf(request.path);
  if (!query) return respond(error(400, "bad %-escape in the query"));
  auto param = [&](const char* name) -> const std::string* {
    auto it = query->find(name);
    return it == query->end() ? nullptr : &it->second;
  };
  auto required_aor = [&]() -> Result<std::string> {
    const std::string* a = param("aor");
    if (a == nullptr || a->empty()) return invalidArgument("aor is required (aor=user@domain)");
    return aorOf(*a);
  };
  const location::SysSeconds now = registrar::systemWallClock();

  if (path == "/api/status") {
    if (request.method != "GET") return respond(method_not_allowed("GET"));
    const MetricsSummary summary = summarizeMetrics(Stats::global().full());
    json pushes = json::object();
    for (const auto& [provider, p] : summary.pushes) {
      pushes[provider] = {{"sent", p.sent}, {"failed", p.failed}};
    }
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::steady_clock::now() - started_);
    json connections = json::object();
    std::int64_t total = 0;
    for (const auto& [transport, n] : summary.connections) {
      connections[transport] = n;
      total += n;
    }
    connections["total"] = total;
    return respond(jsonResponse(
        200, {{"version", std::string(versionString())},
              {"uptime_s", uptime.count()},
              {"bindings", deps_.locations->size()},
              {"push_bindings", deps_.push_store->pushSize()},
              {"parked", deps_.parked ? deps_.parked() : 0},
              {"connections", std::move(connections)},
              {"pushes", std::move(pushes)},
              {"wake_latency_ms", latencyJson(summary.wake_latency_ms)},
              {"timelines", deps_.timelines != nullptr ? deps_.timelines->size() : 0}}));
  }

  if (path == "/api/bindings") {
    if (request.method != "GET" && request.method != "DELETE") {
      return respond(method_not_allowed("GET, DELETE"));
    }
    auto aor = required_aor();
    if (!aor) return respond(error(400, aor.status().message()));
    if (request.method == "GET") {
      return respond(jsonResponse(200, bindingsJson(*deps_.locations, *deps_.push_store, *aor)));
    }
    const std::string* device_key = param("device_key");
    const std::string* contact = param("contact");
    // What goes: the SIP bindings of the device (or the contact, or all), and its push binding.
    std::vector<location::PushRecord> records = deps_.push_store->lookupPush(*aor, now);
    location::RegistrationChange change;
    change.aor = *aor;
    static std::atomic<std::uint64_t> drops{0};
    change.call_id = "sipwake-admin-drop-" + std::to_string(drops.fetch_add(1)) + "-" +
                     std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
    change.cseq = 1;
    change.now = now;
    std::vector<std::string> push_drops;
    std::vector<std::string> removed_binding_keys;
    for (const location::Binding& b : deps_.locations->lookup(*aor, now)) {
      const std::string key = location::bindingKey(b);
      bool drop = device_key == nullptr && contact == nullptr;
      if (contact != nullptr && b.contact_uri == *contact) drop = true;
      if (device_key != nullptr) {
        drop = deviceKeyOf(b) == *device_key ||
               std::any_of(records.begin(), records.end(), [&](const location::PushRecord& r) {
                 return r.device_key == *device_key && r.binding_key == key;
               });
      }
      if (!drop) continue;
      change.removals.push_back(b);
      removed_binding_keys.push_back(key);
    }
    for (const location::PushRecord& r : records) {
      const bool drop = device_key != nullptr ? r.device_key == *device_key
                        : contact != nullptr
                            ? std::find(removed_binding_keys.begin(), removed_binding_keys.end(),
                                        r.binding_key) != removed_binding_keys.end()
                            : true;
      if (drop) push_drops.push_back(r.device_key);
    }
    // SIP and push bindings go in one change: one transaction through the location writer.
    const std::size_t removed_push = push_drops.size();
    for (std::string& k : push_drops) {
      location::PushOp& op = change.push_ops.emplace_back();
      op.kind = location::PushOp::Kind::kRemoveDevice;
      op.record.device_key = std::move(k);
    }
    const std::size_t to_remove = change.removals.size();
    SW_LOG_INFO("admin: dropping {} bindings and {} push bindings of {}", to_remove, removed_push,
                *aor);
    if (to_remove == 0 && removed_push == 0) {
      return respond(
          jsonResponse(200, {{"removed_bindings", 0}, {"removed_push_bindings", 0}}));
    }
    const std::size_t before = deps_.locations->lookup(*aor, now).size();
    deps_.locations->applyRegistration(
        std::move(change), deps_.post,
        [respond, before, removed_push](Result<std::vector<location::Binding>> after) {
          if (!after) {
            return respond(error(503, "location store: " + after.status().message()));
          }
          const std::size_t removed = before >= after->size() ? before - after->size() : 0;
          respond(jsonResponse(
              200, {{"removed_bindings", removed}, {"removed_push_bindings", removed_push}}));
        });
    return;
  }

  if (path == "/api/timelines") {
    if (request.method != "GET") return respond(method_not_allowed("GET"));
    std::size_t limit = 20;
    if (const std::string* l = param("limit")) {
      char* end = nullptr;
      const long v = std::strtol(l->c_str(), &end, 10);
      if (l->empty() || *end != '\0' || v < 1 || v > 200) {
        return respond(error(400, "limit: expected an integer from 1 to 200, got \"" + *l + "\""));
      }
      limit = static_cast<std::size_t>(v);
    }
    std::vector<routing::Timeline> found;
    if (deps_.timelines != nullptr) {
      if (const std::string* call_id = param("call_id")) {
        found = deps_.timelines->byCallId(*call_id, limit);
      } else if (param("aor") != nullptr) {
        auto aor = required_aor();
        if (!aor) return respond(error(400, aor.status().message()));
        found = deps_.timelines->byAor(*aor, limit);
      } else {
        found = deps_.timelines->recent(limit);
      }
    }
    json list = json::array();
    for (const routing::Timeline& t : found) list.push_back(timelineJson(t));
    return respond(jsonResponse(200, {{"timelines", std::move(list)}}));
  }

  if (path == "/api/push-test") {
    if (request.method != "POST") return respond(method_not_allowed("POST"));
    auto aor = required_aor();
    if (!aor) return respond(error(400, aor.status().message()));
    const std::string* kind_param = param("kind");
    if (kind_param != nullptr && *kind_param != "voip" && *kind_param != "refresh") {
      return respond(
          error(400, "kind: expected \"refresh\" or \"voip\", got \"" + *kind_param + "\""));
    }
    const bool voip = kind_param != nullptr && *kind_param == "voip";
    std::vector<location::PushRecord> records = deps_.push_store->lookupPush(*aor, now);
    if (records.empty()) return respond(error(404, "no push binding for " + shownAor(*aor)));
    auto test = std::make_shared<PushTest>();
    test->aor = *aor;
    test->respond = std::move(respond);
    push::CallEvent event = push::refreshEvent(*aor);
    if (voip) {
      event.kind = push::CallEventKind::kCall;
      event.call_id = "sipwake-push-test-" + std::to_string(now.time_since_epoch().count());
      event.caller_uri = "sip:sipwake-push-test@invalid";
      event.caller_display_name = "sipwake test push";
    }
    std::vector<std::pair<std::size_t, push::PushTarget>> to_send;
    for (const location::PushRecord& r : records) {
      const push::PushBinding* pb = &r.binding;
      json result = {{"device_key", r.device_key}, {"provider", nullptr}, {"app", nullptr},
                     {"token", nullptr},           {"outcome", nullptr},  {"status", nullptr},
                     {"reason", nullptr},          {"apns_id", nullptr}};
      if (!pb) {
        result["outcome"] = "no_app";
        result["reason"] = "unreadable push binding";
        test->results.push_back(std::move(result));
        continue;
      }
      result["provider"] = std::string(push::providerName(pb->provider));
      result["app"] = std::string(pb->appKey());
      result["token"] =
          truncatedToken(voip ? pb->callToken()
                              : (pb->message_token.empty() ? pb->voip_token : pb->message_token));
      if (!deps_.sender->serves(*pb)) {
        result["outcome"] = "no_app";
        result["reason"] = "no [[push.app]] serves this binding";
        test->results.push_back(std::move(result));
        continue;
      }
      test->results.push_back(std::move(result));
      push::PushTarget target;
      target.binding = std::move(*pb);
      target.aor = *aor;
      target.device_key = r.device_key;
      to_send.emplace_back(test->results.size() - 1, std::move(target));
    }
    test->pending = to_send.size();
    SW_LOG_INFO("admin: test push ({}) to {} devices of {}", voip ? "voip" : "refresh",
                to_send.size(), *aor);
    if (to_send.empty()) return test->finish();
    std::weak_ptr<PushTest> weak = test;
    deps_.after(deps_.push_test_timeout, [weak] {
      if (auto t = weak.lock()) t->finish();
    });
    const push::PushKind kind = voip ? push::PushKind::kCall : push::PushKind::kRefresh;
    for (auto& [index, target] : to_send) {
      deps_.sender->send(target, event, kind, [test, index = index](push::PushOutcome out) {
        bool last = false;
        {
          std::lock_guard lock(test->mu);
          json& r = test->results[index];
          r["outcome"] = testOutcome(out);
          r["status"] = out.provider_status == 0 ? json(nullptr) : json(out.provider_status);
          r["reason"] = out.reason;
          last = --test->pending == 0;
        }
        if (last) test->finish();
      });
    }
    return;
  }

  if (path == "/api/reload") {
    if (request.method != "POST") return respond(method_not_allowed("POST"));
    if (!deps_.reload) return respond(error(503, "reload is not available"));
    auto report = deps_.reload();
    if (!report) return respond(error(400, report.status().message()));
    return respond(jsonResponse(
        200, {{"reloaded", report->reloaded}, {"restart_needed", report->restart_needed}}));
  }
  return respond(error(404, "no such path: " + std::string(path)));
}

}  // namespace sipwake::server
