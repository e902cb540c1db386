// sipwake-fakepns: a strict fake APNs + FCM v1 + OAuth2 token endpoint + sipwake webhook (see
// tools/README.md).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>

#include "common/log.h"
#include "fake_pns.h"
#include "http2/tls.h"
#include "transport/event_loop.h"

namespace sipwake::tools {
namespace {

bool splitHostPort(const std::string& s, std::string& host, std::uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  host = s.substr(0, colon);
  try {
    int p = std::stoi(s.substr(colon + 1));
    if (p < 0 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
  } catch (...) {
    return false;
  }
  return !host.empty();
}

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int run(int argc, char** argv) {
  CLI::App app{
      "sipwake-fakepns: strict fake APNs / FCM v1 / OAuth2 token endpoint / sipwake webhook over "
      "HTTP/2+TLS"};
  std::string listen = "127.0.0.1:0", control, cert, key, make_cert, log_level = "info";
  std::vector<std::string> apns_keys, apns_topics, service_accounts, fcm_projects;
  app.add_option("--listen", listen, "HOST:PORT for the HTTP/2+TLS port (port 0 = any)");
  app.add_option("--cert", cert, "TLS certificate chain (PEM)");
  app.add_option("--key", key, "TLS private key (PEM)");
  app.add_option("--make-cert", make_cert,
                 "generate a self-signed certificate into DIR (cert.pem = the CA to trust)");
  app.add_option("--apns-key", apns_keys, "KEYID:TEAMID:PUBKEY.pem (repeatable)");
  app.add_option("--apns-topic", apns_topics, "allowed APNs bundle id (repeatable)");
  app.add_option("--fcm-service-account", service_accounts,
                 "service-account JSON whose assertions /token accepts (repeatable)");
  app.add_option("--fcm-project", fcm_projects, "extra known FCM project id (repeatable)");
  app.add_option("--control", control, "HOST:PORT for the line-JSON control port");
  std::string webhook_path = "/webhook", webhook_secret_file;
  bool http1_only = false, allow_http1 = false;
  app.add_option("--webhook-path", webhook_path,
                 "path of the sipwake webhook endpoint (default /webhook; empty = none)");
  app.add_option("--webhook-secret-file", webhook_secret_file,
                 "file holding the webhook bearer secret (then required on every webhook POST)");
  app.add_flag("--http1-only", http1_only, "speak only HTTP/1.1 over TLS (ALPN http/1.1)");
  app.add_flag("--allow-http1", allow_http1, "also speak HTTP/1.1 to clients that do not offer h2");
  double lose_share = 0.0;
  std::string delay_ms;
  app.add_option("--lose-share", lose_share,
                 "share (0-1) of accepted pushes never delivered to the token's subscribers")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--delay-ms", delay_ms,
                 "MIN-MAX: each delivery to the subscribers is late by a uniform random delay");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off");
  CLI11_PARSE(app, argc, argv);

  if (!configureLogging(log_level, "text")) {
    std::cerr << "bad --log-level\n";
    return 2;
  }
  FakePnsConfig config;
  for (const auto& spec : apns_keys) {
    auto c1 = spec.find(':');
    auto c2 = c1 == std::string::npos ? c1 : spec.find(':', c1 + 1);
    if (c2 == std::string::npos) {
      std::cerr << "--apns-key wants KEYID:TEAMID:PUBKEY.pem\n";
      return 2;
    }
    auto pem = readFile(spec.substr(c2 + 1));
    if (!pem) {
      std::cerr << "cannot read " << spec.substr(c2 + 1) << "\n";
      return 2;
    }
    auto k = push::Key::publicFromPem(*pem);
    if (!k) {
      std::cerr << "bad APNs public key: " << k.status().toString() << "\n";
      return 2;
    }
    config.apns_keys.push_back({spec.substr(0, c1), spec.substr(c1 + 1, c2 - c1 - 1), *k});
  }
  config.apns_topics.insert(apns_topics.begin(), apns_topics.end());
  for (const auto& path : service_accounts) {
    auto text = readFile(path);
    if (!text) {
      std::cerr << "cannot read " << path << "\n";
      return 2;
    }
    auto sa = push::parseServiceAccount(*text);
    if (!sa) {
      std::cerr << path << ": " << sa.status().toString() << "\n";
      return 2;
    }
    // Only the public half is kept for verification.
    auto pub_pem = sa->private_key.publicPem();
    auto pub = pub_pem ? push::Key::publicFromPem(*pub_pem) : Result<push::Key>(pub_pem.status());
    if (!pub) {
      std::cerr << path << ": " << pub.status().toString() << "\n";
      return 2;
    }
    sa->private_key = *pub;
    config.service_accounts.push_back(std::move(*sa));
  }
  config.fcm_projects.insert(fcm_projects.begin(), fcm_projects.end());
  if (!webhook_path.empty() && webhook_path.front() != '/') {
    std::cerr << "--webhook-path must start with /\n";
    return 2;
  }
  config.webhook_path = webhook_path;
  if (!webhook_secret_file.empty()) {
    auto secret = readFile(webhook_secret_file);
    if (!secret) {
      std::cerr << "cannot read " << webhook_secret_file << "\n";
      return 2;
    }
    while (!secret->empty() && std::isspace(static_cast<unsigned char>(secret->back())))
      secret->pop_back();
    if (secret->empty()) {
      std::cerr << webhook_secret_file << " is empty\n";
      return 2;
    }
    config.webhook_secret = *secret;
  }
  config.lose_share = lose_share;
  if (!delay_ms.empty()) {
    int lo = -1, hi = -1;
    char dash = 0, extra = 0;
    if (std::sscanf(delay_ms.c_str(), "%d%c%d%c", &lo, &dash, &hi, &extra) != 3 || dash != '-' ||
        lo < 0 || hi < lo || hi > 600000) {
      std::cerr << "bad --delay-ms " << delay_ms << " (want MIN-MAX milliseconds, MIN <= MAX)\n";
      return 2;
    }
    config.delay_min_ms = lo;
    config.delay_max_ms = hi;
  }
  if (http1_only && allow_http1) {
    std::cerr << "--http1-only and --allow-http1 exclude each other\n";
    return 2;
  }
  config.protocols = http1_only    ? http2::AlpnProtocols::kHttp1
                     : allow_http1 ? http2::AlpnProtocols::kH2OrHttp1
                                   : http2::AlpnProtocols::kH2;

  std::string host, control_host;
  std::uint16_t port = 0, control_port = 0;
  if (!splitHostPort(listen, host, port)) {
    std::cerr << "bad --listen " << listen << "\n";
    return 2;
  }
  if (!control.empty() && !splitHostPort(control, control_host, control_port)) {
    std::cerr << "bad --control " << control << "\n";
    return 2;
  }
  if (!make_cert.empty()) {
    Status s = http2::writeSelfSignedCert(make_cert, {"localhost", host});
    if (!s) {
      std::cerr << s.toString() << "\n";
      return 1;
    }
    cert = make_cert + "/cert.pem";
    key = make_cert + "/key.pem";
    std::cout << "ca " << cert << std::endl;
  }
  if (cert.empty() || key.empty()) {
    std::cerr << "need --cert and --key, or --make-cert DIR\n";
    return 2;
  }

  // Signals are taken by sigwait() on this thread; the loop thread inherits the mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  transport::EventLoop loop(0);
  loop.start();
  FakePns fake(loop, std::move(config));
  Status s = fake.start(host, port, cert, key, control_host, control_port);
  if (!s) {
    std::cerr << s.toString() << "\n";
    loop.stop();
    return 1;
  }
  std::cout << "listening " << host << ":" << fake.port() << std::endl;
  if (!control.empty())
    std::cout << "control " << control_host << ":" << fake.controlPort() << std::endl;
  std::cout << "ready" << std::endl;
  int sig = 0;
  sigwait(&sigs, &sig);
  SW_LOG_INFO("fakepns: signal {}, stopping", sig);
  std::promise<void> stopped;
  loop.post([&] {
    fake.stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  loop.stop();
  return 0;
}

}  // namespace
}  // namespace sipwake::tools

int main(int argc, char** argv) { return sipwake::tools::run(argc, argv); }
