#include "push/http2_sender.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "common/log.h"
#include "common/stats.h"
#include "http2/client.h"
#include "push/apns.h"
#include "push/fcm.h"
#include "push/jwt.h"
#include "push/push_metrics.h"
#include "push/webhook.h"
#include "transport/event_loop.h"

namespace sipwake::push {

std::string_view pushServiceName(PushService s) {
  switch (s) {
    case PushService::kApns:
      return "apns";
    case PushService::kFcm:
      return "fcm";
    case PushService::kWebhook:
      return "webhook";
  }
  return "?";
}

namespace {

using Kind = PushOutcome::Kind;

struct Url {
  std::string host;
  std::uint16_t port = 443;
  std::string path = "/";
  std::string authority() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return port == 443 ? h : h + ":" + std::to_string(port);
  }
};

// "https://host[:port][/path]"; IPv6 literals in brackets.
Result<Url> parseHttpsUrl(std::string_view text) {
  constexpr std::string_view kScheme = "https://";
  if (text.substr(0, kScheme.size()) != kScheme) {
    std::string msg(1, '\'');  // appended: "'" + std::string(...) trips GCC 12's -Wrestrict
    msg.append(text).append("' is not an https:// URL");
    return invalidArgument(msg);
  }
  std::string_view rest = text.substr(kScheme.size());
  std::size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  Url u;
  if (slash != std::string_view::npos) u.path = std::string(rest.substr(slash));
  std::string_view port_text;
  if (!hostport.empty() && hostport.front() == '[') {
    std::size_t close = hostport.find(']');
    if (close == std::string_view::npos) return invalidArgument("bad IPv6 host in URL");
    u.host = std::string(hostport.substr(1, close - 1));
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return invalidArgument("bad host in URL");
      port_text = after.substr(1);
    }
  } else {
    std::size_t colon = hostport.rfind(':');
    u.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) port_text = hostport.substr(colon + 1);
  }
  if (u.host.empty()) return invalidArgument("URL '" + std::string(text) + "' has no host");
  if (!port_text.empty() || hostport.ends_with(':')) {
    unsigned long port = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c)) || port > 65535) {
        return invalidArgument("URL '" + std::string(text) + "' has a bad port");
      }
      port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (port == 0 || port > 65535) {
      return invalidArgument("URL '" + std::string(text) + "' has a bad port");
    }
    u.port = static_cast<std::uint16_t>(port);
  }
  return u;
}

Result<std::string> readSecretFile(const std::string& path, std::string_view what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return notFound(std::string(what) + " '" + path + "' cannot be read");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return unavailable(std::string(what) + " '" + path + "' cannot be read");
  return ss.str();
}

// Counter names take a reason straight from the provider: keep them short and tame.
std::string statusCodeKey(StatusCode c) {
  switch (c) {
    case StatusCode::kTimedOut:
      return "timed_out";
    case StatusCode::kUnavailable:
      return "unavailable";
    default:
      return "error";
  }
}

http2::Request toHttp2(const PushRequest& p, Duration timeout) {
  http2::Request r;
  r.method = p.method;
  r.path = p.path;
  // :authority defaults to the client's origin host (the endpoint actually used).
  for (const auto& h : p.headers) r.headers.push_back({h.name, h.value});
  r.body = p.body;
  r.timeout = timeout;
  return r;
}

PushOutcome outcome(Kind kind, std::string reason, int status = 0) {
  PushOutcome o;
  o.kind = kind;
  o.reason = std::move(reason);
  o.provider_status = status;
  return o;
}

Kind kindForAction(PushAction a) {
  switch (a) {
    case PushAction::kOk:
      return Kind::kOk;
    case PushAction::kRemoveBinding:
      return Kind::kRemoveBinding;
    case PushAction::kRetry:
    case PushAction::kRefreshToken:  // still failing after one renewal: try again later
      return Kind::kTransient;
    case PushAction::kFatalConfig:
    case PushAction::kDrop:
      return Kind::kPermanent;
  }
  return Kind::kPermanent;
}

}  // namespace

// One configured app: its credentials, token caches and connections. Lives on the sender's loop
// (the caches are not thread-safe); only `cfg` and the matching fields are read from other threads,
// and those never change after create().
struct App {
  PushAppConfig cfg;
  const PushClock* clock = nullptr;
  const PushCounters* counters = nullptr;  // of cfg.provider

  // APNs
  std::optional<ApnsTokenCache> apns_jwt;  // token auth; nullopt = certificate auth
  std::unique_ptr<http2::Http2Client> apns_production;
  std::unique_ptr<http2::Http2Client> apns_sandbox;  // null when `endpoint` overrides both

  // FCM
  ServiceAccount sa;
  std::unique_ptr<http2::Http2Client> fcm_client;
  std::unique_ptr<http2::Http2Client> token_client;  // null when token_uri is the FCM origin
  Url token_url;
  std::optional<OAuthTokenCache> oauth;
  bool fetching = false;
  std::vector<std::function<void(Result<std::string>)>> token_waiters;
  // After a failed token fetch no new fetch starts before token_retry_at; sends needing a token
  // fail fast (kTransient, retry_after = what is left). The backoff doubles per failure from
  // kTokenBackoffInitial to kTokenBackoffMax and resets on success.
  TimePoint token_retry_at{};
  Duration token_backoff{};

  // Webhook
  Url webhook_url;
  std::string webhook_secret;
  std::unique_ptr<http2::Http2Client> webhook_client;

  // push.connections.{provider}: this app's open connections (read at scrape time, from the
  // clients' atomic counters). Last member: unregistered before the clients go.
  Stats::GaugeFnHandle connections_gauge;

  std::int64_t openConnections() const {
    std::int64_t n = 0;
    for (const auto* c : {&apns_production, &apns_sandbox, &fcm_client, &token_client,
                          &webhook_client}) {
      if (*c) {
        n += static_cast<std::int64_t>((*c)->stats().connects.value()) -
             static_cast<std::int64_t>((*c)->stats().disconnects.value());
      }
    }
    return n;
  }

  void finish(PushOutcome o, const PushSender::Done& done) const {
    counters->count(o);
    done(std::move(o));
  }
};

class Http2PushSender::Impl {
 public:
  Impl(transport::EventLoop& loop, const PushClock* clock) : loop_(loop), clock_(clock) {
    if (clock_ == nullptr) clock_ = &system_clock_;
  }

  Status addApp(PushAppConfig cfg);
  std::shared_ptr<App> findApp(const PushBinding& b) const;
  // Whether an id = "*" app of this provider (APNs / FCM) is configured.
  bool servesAnyApp(Provider p) const {
    const PushService want = p == Provider::kApns ? PushService::kApns : PushService::kFcm;
    return std::any_of(apps_.begin(), apps_.end(), [want](const std::shared_ptr<App>& a) {
      return a->cfg.provider == want && a->cfg.id == "*";
    });
  }

  transport::EventLoop& loop_;
  SystemPushClock system_clock_;
  const PushClock* clock_;
  std::vector<std::shared_ptr<App>> apps_;  // immutable after create()
};

namespace {

Status appError(const PushAppConfig& cfg, const Status& s) {
  return Status(s.code(), std::string(pushServiceName(cfg.provider)) + " app '" + cfg.id +
                              "': " + s.message());
}

Result<std::unique_ptr<http2::Http2Client>> makeClient(transport::EventLoop& loop,
                                                       const PushAppConfig& cfg, const Url& url,
                                                       bool single_stream) {
  http2::ClientOptions o;
  o.host = url.host;
  o.port = url.port;
  o.ca_file = cfg.ca_file;
  if (cfg.provider == PushService::kApns && cfg.key_file.empty()) {
    o.client_cert_file = cfg.cert_file;
    o.client_key_file = cfg.cert_key_file;
  }
  o.max_queued = cfg.max_queued;
  // Operators' webhook servers are often HTTP/1.1 only; APNs and FCM speak h2.
  o.allow_http1 = cfg.provider == PushService::kWebhook;
  o.single_stream_until_success = single_stream;
  o.request_timeout = cfg.request_timeout;
  o.idle_ping = std::chrono::seconds(60);
  auto client = std::make_unique<http2::Http2Client>(loop, o);
  if (Status s = client->status(); !s) {
    return Status(s.code(), "endpoint " + url.authority() + ": " + s.message());
  }
  return client;
}

const StatCounter kOauthTokenFailures{"push.oauth_token_failures.fcm"};

constexpr Duration kTokenBackoffInitial = std::chrono::seconds(1);
constexpr Duration kTokenBackoffMax = std::chrono::minutes(5);

// Time left before the next token fetch may start (zero: now).
Duration tokenBackoffLeft(const App& app) {
  const TimePoint now = app.clock->monotonicNow();
  return app.token_retry_at > now ? app.token_retry_at - now : Duration::zero();
}

// Hands the fetch result to everyone waiting for a token. REQUIRES: on the sender's loop.
void completeTokenFetch(App& app, const Result<std::string>& r) {
  app.fetching = false;
  if (r) {
    app.token_backoff = Duration::zero();
    app.token_retry_at = TimePoint{};
  } else {
    app.token_backoff = app.token_backoff == Duration::zero()
                            ? kTokenBackoffInitial
                            : std::min(app.token_backoff * 2, kTokenBackoffMax);
    app.token_retry_at = app.clock->monotonicNow() + app.token_backoff;
    kOauthTokenFailures.inc();
    SW_LOG_WARN("fcm app '{}': access token fetch failed ({}); next attempt in {} ms", app.cfg.id,
                r.status().message(),
                std::chrono::duration_cast<std::chrono::milliseconds>(app.token_backoff).count());
  }
  auto waiters = std::move(app.token_waiters);
  app.token_waiters.clear();
  for (auto& w : waiters) w(r);
}

// Calls `cb` with a usable access token, fetching one first when none is held (one fetch at a
// time; concurrent sends wait for it). REQUIRES: on the sender's loop.
void withAccessToken(const std::shared_ptr<App>& app, std::function<void(Result<std::string>)> cb) {
  if (auto tok = app->oauth->accessToken(); tok && !app->oauth->refreshNeeded()) {
    cb(std::move(*tok));
    return;
  }
  // Still valid but due for refresh: use it now and refresh in the background.
  const Duration backoff_left = tokenBackoffLeft(*app);
  if (auto tok = app->oauth->accessToken()) {
    cb(std::move(*tok));
  } else if (backoff_left > Duration::zero() && !app->fetching) {
    cb(Status(StatusCode::kUnavailable, "token endpoint backing off"));
    return;
  } else {
    app->token_waiters.push_back(std::move(cb));
  }
  if (app->fetching || backoff_left > Duration::zero()) return;
  app->fetching = true;
  auto assertion = makeFcmAssertion(app->sa, app->clock->unixSeconds());
  if (!assertion) {
    completeTokenFetch(*app, Status(StatusCode::kPermissionDenied, assertion.status().message()));
    return;
  }
  http2::Request req;
  req.path = app->token_url.path;
  req.headers.push_back({"content-type", "application/x-www-form-urlencoded"});
  req.body = oauthTokenRequestBody(*assertion);
  req.timeout = app->cfg.request_timeout;
  http2::Http2Client& client = app->token_client ? *app->token_client : *app->fcm_client;
  std::weak_ptr<App> weak = app;
  client.submit(std::move(req), [weak](Result<http2::Response> r) {
    auto app = weak.lock();
    if (!app) return;  // the sender is gone; its waiters died with it
    if (!r) {
      completeTokenFetch(
          *app, Status(StatusCode::kUnavailable, "token endpoint: " + r.status().message()));
      return;
    }
    auto tok = parseOAuthTokenResponse(r->status, r->body);
    if (!tok) {
      completeTokenFetch(*app, tok.status());  // 429/5xx: kUnavailable (transient)
      return;
    }
    std::string access = tok->access_token;
    app->oauth->store(std::move(*tok));
    completeTokenFetch(*app, std::move(access));
  });
}

PushOutcome shutDown() { return outcome(Kind::kTransient, "push sender shut down"); }

PushOutcome transportFailure(const Status& s) {
  PushOutcome o = outcome(Kind::kTransient, statusCodeKey(s.code()));
  return o;
}

struct Job {
  PushTarget target;
  CallEvent event;
  PushKind kind;
  PushSender::Done done;
  bool retried = false;
};

// The binding can be reached by VoIP pushes only (no remote token for alert/background pushes).
bool voipOnly(const PushAppConfig& cfg, const PushBinding& b) {
  return cfg.use_voip && b.callsUseVoip() && b.message_token.empty();
}

void sendApns(const std::shared_ptr<App>& app, Job job) {
  const PushBinding& b = job.target.binding;
  apns::RequestOptions opt;
  std::int64_t now = app->clock->unixSeconds();
  switch (job.kind) {
    case PushKind::kCall:
      opt.type =
          app->cfg.use_voip && b.callsUseVoip() ? apns::PushType::kVoip : apns::PushType::kAlert;
      opt.expiration_unix = now + app->cfg.ring_time.count();
      break;
    case PushKind::kCancel:
      // A device that gave only a VoIP token (PushKit) can hear of the call's end only through a
      // VoIP push: the app reports the call UUID to CallKit and ends it at once, which PushKit
      // accepts. With a remote token it is a background push, which need not report a call.
      opt.type = voipOnly(app->cfg, b) ? apns::PushType::kVoip : apns::PushType::kBackground;
      opt.expiration_unix = now + app->cfg.ring_time.count();
      break;
    case PushKind::kMissedCall:
      if (voipOnly(app->cfg, b)) {  // no alert possible: stop the ringing (see kCancel)
        opt.type = apns::PushType::kVoip;
        opt.expiration_unix = now + app->cfg.ring_time.count();
        break;
      }
      opt.type = apns::PushType::kAlert;
      opt.expiration_unix = now + 24 * 3600;  // worth showing when the phone comes back
      break;
    case PushKind::kMessage:
      opt.type = apns::PushType::kAlert;
      opt.expiration_unix = now + 24 * 3600;  // worth showing when the phone comes back
      break;
    case PushKind::kRefresh:  // send() refused bindings without a remote token
      opt.type = apns::PushType::kBackground;
      opt.expiration_unix = now + kRefreshPushTtl.count();
      break;
  }
  if (job.event.call_uuid.size() <= apns::kMaxCollapseIdBytes) {
    opt.collapse_id = job.event.call_uuid;
  }
  if (app->apns_jwt) {
    auto jwt = app->apns_jwt->token();
    if (!jwt) {
      app->finish(outcome(Kind::kPermanent, "provider token: " + jwt.status().message()), job.done);
      return;
    }
    opt.bearer_jwt = std::move(*jwt);
  }
  job.event.sent_at_ms = app->clock->unixMillis();  // this attempt's hand-over to the connection
  auto req = apns::buildRequest(b, job.event, opt);
  if (!req) {
    SW_LOG_WARN("apns app '{}': cannot build {} push for device {}: {}", app->cfg.id,
                pushKindName(job.kind), job.target.device_key, req.status().message());
    app->finish(outcome(Kind::kPermanent, req.status().message()), job.done);
    return;
  }
  http2::Http2Client& client =
      b.sandbox && app->apns_sandbox ? *app->apns_sandbox : *app->apns_production;
  std::weak_ptr<App> weak = app;
  std::string used_jwt = opt.bearer_jwt;
  client.submit(toHttp2(*req, app->cfg.request_timeout), [weak, job = std::move(job), used_jwt](
                                                             Result<http2::Response> r) mutable {
    auto app = weak.lock();
    if (!app) return job.done(shutDown());
    if (!r) return app->finish(transportFailure(r.status()), job.done);
    std::vector<HttpHeader> headers;
    for (const auto& h : r->headers) headers.push_back({h.name, h.value});
    apns::Response resp = apns::parseResponse(r->status, r->body, headers);
    if (resp.action == PushAction::kRefreshToken && app->apns_jwt) {
      // Always marked stale (the next push renews it as soon as APNs' 20-minute floor allows);
      // this push is retried once.
      app->apns_jwt->invalidate(used_jwt);
      if (!job.retried) {
        job.retried = true;
        sendApns(app, std::move(job));
        return;
      }
    }
    PushOutcome o = outcome(kindForAction(resp.action), resp.reason, resp.status);
    if (o.kind == Kind::kRemoveBinding && resp.timestamp_ms) {
      o.invalid_since = std::chrono::sys_seconds(std::chrono::seconds(*resp.timestamp_ms / 1000));
    }
    if (resp.status == 403 && resp.action == PushAction::kFatalConfig) {
      // The provider token or certificate itself is refused: every push of this app will fail
      // until the operator fixes the credentials. Names the key, never its material or the JWT.
      SW_LOG_WARN(
          "apns app '{}': APNs refused our credentials ({}): check key_file/key_id '{}'/team_id "
          "'{}' (or cert_file); {} push for device {} failed permanently",
          app->cfg.id, resp.reason, app->cfg.key_id, app->cfg.team_id, pushKindName(job.kind),
          job.target.device_key);
    } else if (o.kind != Kind::kOk) {
      SW_LOG_INFO("apns app '{}': {} push for device {} (token {}): {} {}", app->cfg.id,
                  pushKindName(job.kind), job.target.device_key,
                  redactToken(job.target.binding.callToken()), resp.status, resp.reason);
    }
    if (o.reason.empty() && o.kind != Kind::kOk) {
      o.reason = "http_" + std::to_string(resp.status);
    }
    app->finish(std::move(o), job.done);
  });
}

// The project an FCM push goes to: the binding's own (RFC 8599 pn-param; the app matched it by id
// or, for "*", by its service account's project), else the service account's project (the app
// was matched by the name the client sent, e.g. ABTO "push-token-app=hero voip"), else the id.
std::string fcmProject(const App& app, const PushBinding& b) {
  if (!b.project_id.empty()) return b.project_id;
  if (!app.sa.project_id.empty()) return app.sa.project_id;
  return app.cfg.id;
}

void sendFcm(const std::shared_ptr<App>& app, Job job) {
  std::weak_ptr<App> weak = app;
  withAccessToken(app, [weak, job = std::move(job)](Result<std::string> token) mutable {
    auto app = weak.lock();
    if (!app) return job.done(shutDown());
    if (!token) {
      Kind k = token.status().code() == StatusCode::kPermissionDenied ||
                       token.status().code() == StatusCode::kInvalidArgument
                   ? Kind::kPermanent
                   : Kind::kTransient;
      PushOutcome o = outcome(k, "oauth_token");
      o.retry_after = std::chrono::ceil<std::chrono::milliseconds>(tokenBackoffLeft(*app));
      return app->finish(std::move(o), job.done);
    }
    fcm::RequestOptions opt;
    opt.project_id = fcmProject(*app, job.target.binding);
    opt.access_token = std::move(*token);
    opt.ttl = job.kind == PushKind::kRefresh ? kRefreshPushTtl : app->cfg.ring_time;
    job.event.sent_at_ms = app->clock->unixMillis();  // this attempt's hand-over
    auto req = fcm::buildRequest(job.target.binding, job.event, opt);
    if (!req) {
      return app->finish(outcome(Kind::kPermanent, req.status().message()), job.done);
    }
    app->fcm_client->submit(
        toHttp2(*req, app->cfg.request_timeout),
        [weak = std::weak_ptr<App>(app), job = std::move(job)](Result<http2::Response> r) mutable {
          auto app = weak.lock();
          if (!app) return job.done(shutDown());
          if (!r) return app->finish(transportFailure(r.status()), job.done);
          fcm::Response resp = fcm::parseResponse(r->status, r->body, r->header("retry-after"),
                                                  app->clock->unixSeconds());
          if (resp.action == PushAction::kRefreshToken && !job.retried) {
            app->oauth->invalidate();
            job.retried = true;
            sendFcm(app, std::move(job));
            return;
          }
          PushOutcome o = outcome(kindForAction(resp.action), "", resp.status);
          o.reason = !resp.error_code.empty()   ? resp.error_code
                     : !resp.rpc_status.empty() ? resp.rpc_status
                     : o.kind == Kind::kOk      ? std::string()
                                                : "http_" + std::to_string(resp.status);
          if (resp.retry_after) o.retry_after = *resp.retry_after;
          if (o.kind != Kind::kOk) {
            SW_LOG_INFO("fcm app '{}': {} push for device {} (token {}): {} {}", app->cfg.id,
                        pushKindName(job.kind), job.target.device_key,
                        redactToken(job.target.binding.message_token), resp.status, o.reason);
          }
          app->finish(std::move(o), job.done);
        });
  });
}

void sendWebhook(const std::shared_ptr<App>& app, Job job) {
  job.event.sent_at_ms = app->clock->unixMillis();  // this attempt's hand-over
  PushRequest req =
      webhook::buildRequest(job.target.binding, job.event, app->webhook_url.authority(),
                            app->webhook_url.path, app->webhook_secret);
  app->webhook_client->submit(
      toHttp2(req, app->cfg.request_timeout),
      [weak = std::weak_ptr<App>(app), job = std::move(job)](Result<http2::Response> r) mutable {
        auto app = weak.lock();
        if (!app) return job.done(shutDown());
        if (!r) return app->finish(transportFailure(r.status()), job.done);
        PushAction a = webhook::actionForStatus(r->status);
        PushOutcome o = outcome(kindForAction(a), "", r->status);
        if (o.kind != Kind::kOk) o.reason = "http_" + std::to_string(r->status);
        if (o.kind == Kind::kTransient) {
          if (auto ra = fcm::parseRetryAfter(r->header("retry-after"), app->clock->unixSeconds()))
            o.retry_after = *ra;
        }
        app->finish(std::move(o), job.done);
      });
}

}  // namespace

Status Http2PushSender::Impl::addApp(PushAppConfig cfg) {
  auto app = std::make_shared<App>();
  app->clock = clock_;
  if (cfg.id.empty()) {
    return invalidArgument(std::string(pushServiceName(cfg.provider)) + " app without an id");
  }
  if (cfg.ring_time.count() <= 0) return appError(cfg, invalidArgument("ring_time must be > 0"));
  if (!cfg.ca_file.empty()) {
    if (auto r = readSecretFile(cfg.ca_file, "ca_file"); !r) return appError(cfg, r.status());
  }
  std::optional<Url> endpoint;
  if (!cfg.endpoint.empty()) {
    auto u = parseHttpsUrl(cfg.endpoint);
    if (!u) return appError(cfg, invalidArgument("endpoint: " + u.status().message()));
    endpoint = *u;
  }

  switch (cfg.provider) {
    case PushService::kApns: {
      bool token_auth = !cfg.key_file.empty();
      if (token_auth) {
        auto pem = readSecretFile(cfg.key_file, "key_file");
        if (!pem) return appError(cfg, pem.status());
        auto key = Key::privateFromPem(*pem);
        if (!key || key->type() != Key::Type::kEcP256) {
          return appError(cfg, invalidArgument("key_file '" + cfg.key_file +
                                               "' is not a PKCS#8 P-256 private key (.p8)"));
        }
        if (cfg.key_id.empty() || cfg.team_id.empty()) {
          return appError(cfg, invalidArgument("token auth needs key_id and team_id"));
        }
        app->apns_jwt.emplace(std::move(*key), cfg.key_id, cfg.team_id, *clock_);
      } else if (!cfg.cert_file.empty()) {
        if (cfg.id == "*") {
          return appError(cfg, invalidArgument("id \"*\" needs token auth (key_file + key_id + "
                                               "team_id): a certificate is issued for one app"));
        }
        if (auto r = readSecretFile(cfg.cert_file, "cert_file"); !r)
          return appError(cfg, r.status());
        if (!cfg.cert_key_file.empty()) {
          if (auto r = readSecretFile(cfg.cert_key_file, "cert_key_file"); !r)
            return appError(cfg, r.status());
        }
      } else {
        return appError(cfg, invalidArgument("needs key_file (token auth) or cert_file"));
      }
      Url prod{std::string(apns::kProductionHost), 443, "/"};
      Url sandbox{std::string(apns::kSandboxHost), 443, "/"};
      auto c = makeClient(loop_, cfg, endpoint ? *endpoint : prod, token_auth);
      if (!c) return appError(cfg, c.status());
      app->apns_production = std::move(*c);
      if (!endpoint) {
        auto s = makeClient(loop_, cfg, sandbox, token_auth);
        if (!s) return appError(cfg, s.status());
        app->apns_sandbox = std::move(*s);
      }
      break;
    }
    case PushService::kFcm: {
      if (cfg.service_account_file.empty()) {
        return appError(cfg, invalidArgument("needs service_account_file"));
      }
      auto text = readSecretFile(cfg.service_account_file, "service_account_file");
      if (!text) return appError(cfg, text.status());
      auto sa = parseServiceAccount(*text);
      if (!sa) {
        return appError(
            cfg, Status(sa.status().code(), "service_account_file '" + cfg.service_account_file +
                                                "': " + sa.status().message()));
      }
      auto tu = parseHttpsUrl(sa->token_uri);
      if (!tu) {
        return appError(cfg, invalidArgument("service_account_file '" + cfg.service_account_file +
                                             "': token_uri: " + tu.status().message()));
      }
      if (cfg.id == "*" && sa->project_id.empty()) {
        return appError(cfg, invalidArgument("id \"*\" needs a service_account_file with a "
                                             "project_id ('" +
                                             cfg.service_account_file +
                                             "' has none): it picks the credentials by project"));
      }
      app->sa = std::move(*sa);
      app->token_url = *tu;
      Url fcm_url = endpoint ? *endpoint : Url{std::string(fcm::kHost), 443, "/"};
      auto c = makeClient(loop_, cfg, fcm_url, false);
      if (!c) return appError(cfg, c.status());
      app->fcm_client = std::move(*c);
      if (tu->host != fcm_url.host || tu->port != fcm_url.port) {
        auto t = makeClient(loop_, cfg, *tu, false);
        if (!t) return appError(cfg, t.status());
        app->token_client = std::move(*t);
      }
      app->oauth.emplace(*clock_);
      break;
    }
    case PushService::kWebhook: {
      auto u = parseHttpsUrl(cfg.url.empty() ? cfg.endpoint : cfg.url);
      if (!u) return appError(cfg, invalidArgument("url: " + u.status().message()));
      app->webhook_url = *u;
      if (!cfg.secret_file.empty()) {
        auto s = readSecretFile(cfg.secret_file, "secret_file");
        if (!s) return appError(cfg, s.status());
        std::string secret = std::move(*s);
        while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back())))
          secret.pop_back();
        app->webhook_secret = std::move(secret);
      }
      auto c = makeClient(loop_, cfg, *u, false);
      if (!c) return appError(cfg, c.status());
      app->webhook_client = std::move(*c);
      break;
    }
  }
  app->counters = &PushCounters::of(pushServiceName(cfg.provider));
  app->connections_gauge =
      Stats::global().gaugeFn("push.connections." + std::string(pushServiceName(cfg.provider)),
                              [a = app.get()] { return a->openConnections(); });
  app->cfg = std::move(cfg);
  apps_.push_back(std::move(app));
  return Status::ok();
}

// Order: an app named by the binding's id (APNs / FCM, then webhook), then a "*" APNs / FCM app
// (the binding's own topic / project with the credentials of its team / project; a binding that
// names no team / project takes the first), then a "*" webhook.
std::shared_ptr<App> Http2PushSender::Impl::findApp(const PushBinding& b) const {
  for (const auto& app : apps_) {
    const PushAppConfig& c = app->cfg;
    if (b.provider == Provider::kApns && c.provider == PushService::kApns && c.id == b.app_id)
      return app;
    if (b.provider == Provider::kFcm && c.provider == PushService::kFcm &&
        (c.id == b.project_id || (b.project_id.empty() && c.id == b.app_id)))
      return app;
  }
  const std::string_view key = b.appKey();
  for (const auto& app : apps_) {
    if (app->cfg.provider == PushService::kWebhook && app->cfg.id == key) return app;
  }
  for (const auto& app : apps_) {
    const PushAppConfig& c = app->cfg;
    if (c.id != "*") continue;
    if (b.provider == Provider::kApns && c.provider == PushService::kApns && !b.app_id.empty() &&
        (b.team_id.empty() || b.team_id == c.team_id))
      return app;
    if (b.provider == Provider::kFcm && c.provider == PushService::kFcm &&
        (b.project_id.empty() || b.project_id == app->sa.project_id))
      return app;
  }
  for (const auto& app : apps_) {
    if (app->cfg.provider == PushService::kWebhook && app->cfg.id == "*") return app;
  }
  return nullptr;
}

Http2PushSender::Http2PushSender(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

bool Http2PushSender::serves(const PushBinding& binding) const {
  return impl_->findApp(binding) != nullptr;
}

Http2PushSender::~Http2PushSender() = default;

Result<std::unique_ptr<Http2PushSender>> Http2PushSender::create(std::vector<PushAppConfig> apps,
                                                                 transport::EventLoop& loop,
                                                                 const PushClock* clock) {
  auto impl = std::make_shared<Impl>(loop, clock);
  // Every push counter and connection gauge exists from start-up, at 0.
  for (PushService s : {PushService::kApns, PushService::kFcm, PushService::kWebhook}) {
    (void)PushCounters::of(pushServiceName(s));
    (void)Stats::global().gauge("push.connections." + std::string(pushServiceName(s)));
  }
  for (auto& cfg : apps) {
    if (Status s = impl->addApp(std::move(cfg)); !s) return s;
  }
  return std::unique_ptr<Http2PushSender>(new Http2PushSender(std::move(impl)));
}

void Http2PushSender::send(const PushTarget& target, const CallEvent& event, PushKind kind,
                           Done done) {
  std::shared_ptr<App> app = impl_->findApp(target.binding);
  if (!app) {
    const PushBinding& b = target.binding;
    std::string id(b.appKey());
    std::string what =
        std::string(providerName(b.provider)) + " " + (id.empty() ? "(no app id)" : id);
    if (!b.team_id.empty() && b.provider == Provider::kApns && impl_->servesAnyApp(b.provider)) {
      what += " (team " + b.team_id + ")";  // why the "*" app did not take it
    }
    PushOutcome o = outcome(Kind::kPermanent, "no push app configured for " + what);
    PushCounters::of(providerName(b.provider)).count(o);
    SW_LOG_INFO("push: {} (device {})", o.reason, target.device_key);
    done(std::move(o));
    return;
  }
  if (kind == PushKind::kRefresh && !target.binding.canWakeWithoutCall()) {
    // Only a PushKit token: a VoIP push that reports no call gets the app killed (sender.h).
    PushOutcome o = outcome(Kind::kPermanent, std::string(kNoRefreshTokenReason));
    PushCounters::of(providerName(target.binding.provider)).count(o);
    SW_LOG_INFO("push: refresh for {} not sent: {} (device {})", target.aor,
                kNoRefreshTokenReason, target.device_key);
    done(std::move(o));
    return;
  }
  Job job{target, event, kind, std::move(done)};
  impl_->loop_.runOrPost([app = std::move(app), job = std::move(job)]() mutable {
    switch (app->cfg.provider) {
      case PushService::kApns:
        sendApns(app, std::move(job));
        break;
      case PushService::kFcm:
        sendFcm(app, std::move(job));
        break;
      case PushService::kWebhook:
        sendWebhook(app, std::move(job));
        break;
    }
  });
}

}  // namespace sipwake::push
