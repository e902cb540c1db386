// sipwake-pushprobe: sends ONE push exactly as sipwake would (src/push builders + Http2Client)
// and prints the service's answer as one JSON line. An operator's "does my push config work?"
// tool, and the driver of the fake push service's integration test.
//
//   sipwake-pushprobe apns --key-file AuthKey.p8 --key-id K --team-id T --bundle com.ex.app
//                          --token HEX [--type voip|alert|background] [--sandbox]
//                          [--set-header NAME=VALUE]... (test: replaces a built header)
//   sipwake-pushprobe fcm  --service-account sa.json --token TOKEN [--project ID]
//   sipwake-pushprobe send --service apns|fcm|webhook ... --count N --concurrency C
//     (through Http2PushSender, exactly sipwake's sending path; prints each outcome and a
//     summary with pushes/s and CPU seconds per 1000 pushes)
// --target HOST:PORT overrides the endpoint (TLS name = --host, default the target's host);
// --ca FILE the CA bundle. Exit: 0 = an HTTP answer was printed, 1 = no answer, 2 = usage.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "common/log.h"
#include "http2/client.h"
#include "push/apns.h"
#include "push/fcm.h"
#include "push/http2_sender.h"
#include "push/jwt.h"
#include "push/payload.h"
#include "push/token_cache.h"
#include "transport/event_loop.h"

namespace sipwake::tools {
namespace {

using nlohmann::json;

struct Endpoint {
  std::string host;
  std::uint16_t port = 443;
};

std::optional<Endpoint> parseHostPort(const std::string& s, std::uint16_t default_port) {
  Endpoint e;
  auto colon = s.rfind(':');
  if (colon == std::string::npos) {
    e.host = s;
    e.port = default_port;
  } else {
    e.host = s.substr(0, colon);
    try {
      e.port = static_cast<std::uint16_t>(std::stoi(s.substr(colon + 1)));
    } catch (...) {
      return std::nullopt;
    }
  }
  if (e.host.empty()) return std::nullopt;
  return e;
}

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::int64_t nowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

http2::Request toHttp2(const push::PushRequest& p) {
  http2::Request r;
  r.method = p.method;
  r.path = p.path;
  for (const auto& h : p.headers) r.headers.push_back({h.name, h.value});
  r.body = p.body;
  return r;
}

// One request on a fresh client; waits for the answer (bounded by the request timeout).
Result<http2::Response> exchange(transport::EventLoop& loop, const Endpoint& target,
                                 const std::string& tls_host, const std::string& ca,
                                 http2::Request req) {
  http2::ClientOptions o;
  o.host = tls_host.empty() ? target.host : tls_host;
  o.connect_address = target.host;
  o.port = target.port;
  o.ca_file = ca;
  o.request_timeout = std::chrono::seconds(15);
  auto client = std::make_unique<http2::Http2Client>(loop, o);
  std::promise<Result<http2::Response>> p;
  auto f = p.get_future();
  client->submit(std::move(req), [&p](Result<http2::Response> r) { p.set_value(std::move(r)); });
  auto r = f.get();
  client.reset();
  return r;
}

void print(const std::string& step, const Result<http2::Response>& r) {
  json out = {{"step", step}};
  if (!r) {
    out["error"] = r.status().toString();
  } else {
    out["status"] = r->status;
    out["body"] = r->body;
    json h = json::object();
    for (const auto& x : r->headers) h[x.name] = x.value;
    out["headers"] = h;
  }
  std::cout << out.dump() << std::endl;
}

push::CallEvent probeEvent() {
  push::CallEvent ev;
  ev.kind = push::CallEventKind::kCall;
  ev.call_id = "pushprobe-" + push::randomUuidV4();
  ev.call_uuid = push::randomUuidV4();
  ev.caller_uri = "sip:pushprobe@sipwake.invalid";
  ev.caller_display_name = "sipwake push probe";
  ev.callee_aor = "sip:device@sipwake.invalid";
  ev.sent_at_ms = nowUnix() * 1000;
  return ev;
}

double cpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

struct SendOptions {
  std::string service = "apns";  // which PushAppConfig: apns | fcm | webhook
  std::string device;            // binding provider: apns | fcm (default: by service)
  std::string endpoint, url, secret_file, ca;
  std::string key_file, key_id, team_id, bundle, sa_file, project, token;
  std::string kind = "call";
  int count = 1;
  int concurrency = 1;
  int retry_transient = 0;  // per push: resend after retry_after (or 200 ms), like the caller
  bool quiet = false;       // summary only
};

// Pushes through the real sender; one JSON line per outcome, then a summary.
int runSend(transport::EventLoop& loop, const SendOptions& so) {
  push::PushAppConfig app;
  const std::string device = so.device.empty()
                                 ? (so.service == "fcm" ? std::string("fcm") : std::string("apns"))
                                 : so.device;
  if (so.service == "apns") {
    app.provider = push::PushService::kApns;
    app.id = so.bundle;
    app.key_file = so.key_file;
    app.key_id = so.key_id;
    app.team_id = so.team_id;
  } else if (so.service == "fcm") {
    app.provider = push::PushService::kFcm;
    app.id = so.project;
    app.service_account_file = so.sa_file;
  } else {
    app.provider = push::PushService::kWebhook;
    app.id = "*";
    app.url = so.url;
    app.secret_file = so.secret_file;
  }
  app.endpoint = so.endpoint;
  app.ca_file = so.ca;
  app.max_queued = static_cast<std::size_t>(std::max(so.concurrency, 1)) + 16;
  auto sender = push::Http2PushSender::create({app}, loop);
  if (!sender) return std::cerr << sender.status().toString() << "\n", 2;

  push::PushTarget target;
  push::PushBinding& b = target.binding;
  if (device == "fcm") {
    b.provider = push::Provider::kFcm;
    b.project_id = so.project;
    b.message_token = so.token;
  } else {
    b.provider = push::Provider::kApns;
    b.app_id = so.bundle;
    b.team_id = so.team_id;
    (so.kind == "call" ? b.voip_token : b.message_token) = so.token;
  }
  target.aor = "sip:device@sipwake.invalid";
  target.device_key = b.deviceKey();
  const push::PushKind kind = so.kind == "call"      ? push::PushKind::kCall
                              : so.kind == "cancel"  ? push::PushKind::kCancel
                              : so.kind == "refresh" ? push::PushKind::kRefresh
                                                     : push::PushKind::kMissedCall;
  push::CallEvent ev = probeEvent();
  if (kind == push::PushKind::kRefresh) {
    ev = push::refreshEvent(target.aor);
  } else if (kind != push::PushKind::kCall) {
    ev.kind = push::CallEventKind::kCancel;
  }

  std::mutex mu;
  std::condition_variable cv;
  int started = 0, finished = 0;
  std::map<std::string, int> by_kind;
  std::function<void(int, int)> sendOne;  // (push number, attempt)
  sendOne = [&](int n, int attempt) {
    (*sender)->send(target, ev, kind, [&, n, attempt](push::PushOutcome o) {
      if (o.kind == push::PushOutcome::Kind::kTransient && attempt < so.retry_transient) {
        auto delay = o.retry_after > std::chrono::milliseconds::zero()
                         ? o.retry_after
                         : std::chrono::milliseconds(200);
        if (!so.quiet) {
          std::cout << json{{"step", "push"},
                            {"n", n},
                            {"attempt", attempt},
                            {"outcome", "transient"},
                            {"status", o.provider_status},
                            {"reason", o.reason},
                            {"retry_after_ms", delay.count()}}
                           .dump()
                    << std::endl;
        }
        loop.timers().schedule(delay, [&, n, attempt] { sendOne(n, attempt + 1); });
        return;
      }
      bool more = false;
      {
        std::lock_guard lock(mu);
        ++finished;
        ++by_kind[std::string(push::pushOutcomeName(o.kind))];
        if (!so.quiet) {
          json line = {{"step", "push"},
                       {"n", n},
                       {"attempt", attempt},
                       {"outcome", push::pushOutcomeName(o.kind)},
                       {"status", o.provider_status},
                       {"reason", o.reason},
                       {"retry_after_ms", o.retry_after.count()}};
          std::cout << line.dump() << std::endl;
        }
        more = started < so.count;
        if (more) ++started;
      }
      if (more) sendOne(started, 0);
      cv.notify_all();
    });
  };
  const double cpu0 = cpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  const int first = std::min(so.concurrency, so.count);
  {
    std::lock_guard lock(mu);
    started = first;
  }
  for (int i = 1; i <= first; ++i) sendOne(i, 0);
  {
    std::unique_lock lock(mu);
    const auto bound = std::chrono::seconds(60) + std::chrono::milliseconds(so.count);
    if (!cv.wait_for(lock, bound, [&] { return finished >= so.count; })) {
      std::cerr << "timed out with " << finished << " of " << so.count << " pushes done\n";
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpuSeconds() - cpu0;
  json summary = {{"step", "summary"},
                  {"count", so.count},
                  {"concurrency", so.concurrency},
                  {"outcomes", by_kind},
                  {"seconds", seconds},
                  {"pushes_per_s", seconds > 0 ? finished / seconds : 0.0},
                  {"cpu_seconds", cpu},
                  {"cpu_s_per_1000", finished > 0 ? cpu * 1000.0 / finished : 0.0}};
  std::cout << summary.dump() << std::endl;
  sender->reset();
  std::lock_guard lock(mu);
  return finished >= so.count ? 0 : 1;
}

int run(int argc, char** argv) {
  CLI::App app{"sipwake-pushprobe: send one push as sipwake would and print the answer"};
  app.require_subcommand(1);
  std::string target, tls_host, ca, token, log_level = "warn";
  app.add_option("--target", target, "HOST:PORT to connect to (default: the production endpoint)");
  app.add_option("--host", tls_host, "TLS server name to verify (default: the target host)");
  app.add_option("--ca", ca, "CA bundle (default: system trust store)");
  app.add_option("--log-level", log_level);

  auto* apns = app.add_subcommand("apns", "APNs provider API (token auth)");
  std::string key_file, key_id, team_id, bundle, type = "voip";
  bool sandbox = false, forge = false;
  std::int64_t iat_offset = 0;
  apns->add_option("--key-file", key_file, "the .p8 signing key")->required();
  apns->add_option("--key-id", key_id)->required();
  apns->add_option("--team-id", team_id)->required();
  apns->add_option("--bundle", bundle, "app bundle id (apns-topic; .voip is added for voip)")
      ->required();
  apns->add_option("--token", token, "device token (hex)")->required();
  apns->add_option("--type", type, "voip|alert|background")
      ->check(CLI::IsMember({"voip", "alert", "background"}));
  apns->add_flag("--sandbox", sandbox, "development endpoint");
  apns->add_option("--iat-offset", iat_offset, "test: shift the JWT iat by SECS");
  apns->add_flag("--forge", forge, "test: sign the JWT with a random key");
  std::vector<std::string> set_headers;
  apns->add_option("--set-header", set_headers, "test: NAME=VALUE replaces a request header");

  auto* fcm = app.add_subcommand("fcm", "FCM HTTP v1");
  std::string sa_file, project, token_target;
  bool bad_data = false;
  fcm->add_option("--service-account", sa_file)->required();
  fcm->add_option("--token", token, "registration token")->required();
  fcm->add_option("--project", project, "project id (default: the service account's)");
  fcm->add_option("--token-target", token_target,
                  "HOST:PORT for the token endpoint (default: token_uri's)");
  fcm->add_flag("--bad-data", bad_data, "test: send a non-string data value");

  SendOptions so;
  auto* send = app.add_subcommand("send", "N pushes through sipwake's Http2PushSender");
  send->add_option("--service", so.service, "apns|fcm|webhook")
      ->check(CLI::IsMember({"apns", "fcm", "webhook"}));
  send->add_option("--device", so.device, "binding provider apns|fcm (default: by service)")
      ->check(CLI::IsMember({"apns", "fcm"}));
  send->add_option("--endpoint", so.endpoint, "https://HOST:PORT replacing APNs/FCM's host");
  send->add_option("--url", so.url, "webhook URL (https://...)");
  send->add_option("--secret-file", so.secret_file, "webhook bearer secret file");
  send->add_option("--key-file", so.key_file, "APNs .p8 key");
  send->add_option("--key-id", so.key_id);
  send->add_option("--team-id", so.team_id);
  send->add_option("--bundle", so.bundle, "APNs bundle id");
  send->add_option("--service-account", so.sa_file, "FCM service-account JSON");
  send->add_option("--project", so.project, "FCM project id");
  send->add_option("--token", so.token, "device token")->required();
  send->add_option("--kind", so.kind, "call|cancel|missed|refresh")
      ->check(CLI::IsMember({"call", "cancel", "missed", "refresh"}));
  send->add_option("--count", so.count, "pushes to send")->check(CLI::Range(1, 10'000'000));
  send->add_option("--concurrency", so.concurrency, "pushes in flight")
      ->check(CLI::Range(1, 100'000));
  send->add_option("--retry-transient", so.retry_transient,
                   "resend a push up to N times after a transient outcome (after retry_after)");
  send->add_flag("--quiet", so.quiet, "print the summary only");
  CLI11_PARSE(app, argc, argv);
  configureLogging(log_level, "text");

  transport::EventLoop loop(0);
  loop.start();
  struct Stopper {
    transport::EventLoop& l;
    ~Stopper() { l.stop(); }
  } stopper{loop};

  if (*send) {
    if (so.ca.empty()) so.ca = ca;
    return runSend(loop, so);
  }

  if (*apns) {
    auto pem = readFile(key_file);
    if (!pem) return std::cerr << "cannot read " << key_file << "\n", 2;
    auto key = push::Key::privateFromPem(*pem);
    if (!key) return std::cerr << key.status().toString() << "\n", 2;
    if (forge) key = push::Key::generateEcP256();
    auto jwt = push::makeApnsJwt(*key, key_id, team_id, nowUnix() + iat_offset);
    if (!jwt) return std::cerr << jwt.status().toString() << "\n", 2;
    push::PushBinding b;
    b.provider = push::Provider::kApns;
    b.sandbox = sandbox;
    b.app_id = bundle;
    b.team_id = team_id;
    (type == "voip" ? b.voip_token : b.message_token) = token;
    push::apns::RequestOptions opt;
    opt.type = type == "voip"    ? push::apns::PushType::kVoip
               : type == "alert" ? push::apns::PushType::kAlert
                                 : push::apns::PushType::kBackground;
    opt.bearer_jwt = *jwt;
    auto req = push::apns::buildRequest(b, probeEvent(), opt);
    if (!req) return std::cerr << req.status().toString() << "\n", 2;
    for (const std::string& nv : set_headers) {  // test: a request sipwake would never build
      std::size_t eq = nv.find('=');
      if (eq == std::string::npos) return std::cerr << "--set-header wants NAME=VALUE\n", 2;
      std::string name = nv.substr(0, eq);
      std::erase_if(req->headers, [&](const push::HttpHeader& h) { return h.name == name; });
      req->headers.push_back({name, nv.substr(eq + 1)});
    }
    auto ep = parseHostPort(target.empty() ? std::string(sandbox ? push::apns::kSandboxHost
                                                                 : push::apns::kProductionHost)
                                           : target,
                            443);
    if (!ep) return std::cerr << "bad --target\n", 2;
    auto r = exchange(loop, *ep, tls_host.empty() && target.empty() ? ep->host : tls_host, ca,
                      toHttp2(*req));
    print("apns", r);
    return r ? 0 : 1;
  }

  // FCM: OAuth2 token, then the send.
  auto text = readFile(sa_file);
  if (!text) return std::cerr << "cannot read " << sa_file << "\n", 2;
  auto sa = push::parseServiceAccount(*text);
  if (!sa) return std::cerr << sa.status().toString() << "\n", 2;
  auto assertion = push::makeFcmAssertion(*sa, nowUnix());
  if (!assertion) return std::cerr << assertion.status().toString() << "\n", 2;
  // token_uri = https://host[:port]/path
  std::string rest = sa->token_uri.substr(std::string("https://").size());
  std::string authority = rest.substr(0, rest.find('/'));
  std::string path = rest.find('/') == std::string::npos ? "/" : rest.substr(rest.find('/'));
  auto token_ep = parseHostPort(token_target.empty() ? authority : token_target, 443);
  if (!token_ep) return std::cerr << "bad token endpoint\n", 2;
  http2::Request treq;
  treq.path = path;
  treq.headers.push_back({"content-type", "application/x-www-form-urlencoded"});
  treq.body = push::oauthTokenRequestBody(*assertion);
  auto tr =
      exchange(loop, *token_ep, tls_host.empty() && token_target.empty() ? std::string() : tls_host,
               ca, std::move(treq));
  print("token", tr);
  if (!tr) return 1;
  auto oauth = push::parseOAuthTokenResponse(tr->status, tr->body);
  if (!oauth) return std::cerr << oauth.status().toString() << "\n", 0;

  push::PushBinding b;
  b.provider = push::Provider::kFcm;
  b.project_id = project.empty() ? sa->project_id : project;
  b.message_token = token;
  push::fcm::RequestOptions opt;
  opt.project_id = b.project_id;
  opt.access_token = oauth->access_token;
  auto req = push::fcm::buildRequest(b, probeEvent(), opt);
  if (!req) return std::cerr << req.status().toString() << "\n", 2;
  http2::Request hreq = toHttp2(*req);
  if (bad_data) {
    json body = json::parse(hreq.body);
    body["message"]["data"]["probe_number"] = 42;
    hreq.body = body.dump();
  }
  auto ep = parseHostPort(target.empty() ? std::string(push::fcm::kHost) : target, 443);
  if (!ep) return std::cerr << "bad --target\n", 2;
  auto r = exchange(loop, *ep, tls_host, ca, std::move(hreq));
  print("fcm", r);
  return r ? 0 : 1;
}

}  // namespace
}  // namespace sipwake::tools

int main(int argc, char** argv) { return sipwake::tools::run(argc, argv); }
