#include "server/server.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <cstring>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <shared_mutex>

#include "auth/authenticator.h"
#include "auth/source_throttle.h"
#include "common/allocator.h"
#include "common/log.h"
#include "common/stats.h"
#include "http2/http1_server.h"
#include "http2/tls.h"
#include "location/purr_store.h"
#include "location/redis_location_store.h"
#include "location/sqlite_location_store.h"
#include "location/user_store.h"
#include "push/http2_sender.h"
#include "push/sender.h"
#include "registrar/maintenance.h"
#include "registrar/registrar.h"
#include "registrar/services.h"
#include "routing/dns_resolver.h"
#include "routing/edge.h"
#include "routing/message_delivery.h"
#include "routing/proxy.h"
#include "routing/refresh_pushes.h"
#include "routing/target_resolver.h"
#include "routing/timeline.h"
#include "routing/wake.h"
#include "server/admin.h"
#include "server/cli.h"
#include "server/core_handler.h"
#include "transaction/transaction_layer.h"
#include "transport/event_loop.h"
#include "transport/transport_layer.h"

namespace sipwake::server {

namespace {

// Connections are file descriptors: raises the soft open-file limit to the hard one and returns
// the connection cap, `configured` or (0) the limit less what listeners, the store, DNS and push
// connections need.
std::size_t connectionCap(std::uint32_t configured) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return configured != 0 ? configured : 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  constexpr rlim_t kReserve = 128;
  const rlim_t files = rl.rlim_cur == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_cur;
  const std::size_t from_limit =
      static_cast<std::size_t>(files > 2 * kReserve ? files - kReserve : files / 2);
  const std::size_t cap = configured != 0 ? configured : from_limit;
  if (cap > from_limit) {
    SW_LOG_WARN(
        "[limits] max_connections = {} but the open-file limit is {}: accept(2) will fail with "
        "EMFILE before the cap is reached (raise the hard limit, e.g. LimitNOFILE=)",
        cap, files);
  }
  SW_LOG_INFO("open-file limit {}: at most {} TCP/TLS connections", files, cap);
  return cap;
}

// The sender every loop calls: forwards to the real one until shutdown() destroys it (while the
// loops still run, as Http2PushSender requires); later pushes fail at once, inline.
class ShutdownPushSender final : public push::PushSender {
 public:
  void set(std::unique_ptr<push::PushSender> inner) {
    std::unique_lock lock(mu_);
    inner_ = std::move(inner);
  }
  void shutdown() {
    std::unique_ptr<push::PushSender> gone;
    std::vector<std::unique_ptr<push::PushSender>> retired;
    {
      std::unique_lock lock(mu_);
      gone = std::move(inner_);
      retired = std::move(retired_);
    }
  }
  // A reload: later sends go to `next`; the sender it replaces is kept (its pushes in flight
  // finish on it) until retireOld() or shutdown(). Returns a handle for retireOld().
  const void* replace(std::unique_ptr<push::PushSender> next) {
    std::unique_lock lock(mu_);
    const void* old = inner_.get();
    if (inner_) retired_.push_back(std::move(inner_));
    inner_ = std::move(next);
    return old;
  }
  void retireOld(const void* old) {
    std::unique_ptr<push::PushSender> gone;
    std::unique_lock lock(mu_);
    for (auto it = retired_.begin(); it != retired_.end(); ++it) {
      if (it->get() == old) {
        gone = std::move(*it);
        retired_.erase(it);
        break;
      }
    }
    lock.unlock();  // `gone` is destroyed without the lock
  }
  void send(const push::PushTarget& target, const push::CallEvent& event, push::PushKind kind,
            Done done) override {
    std::shared_lock lock(mu_);
    if (inner_) {
      inner_->send(target, event, kind, std::move(done));
      return;
    }
    lock.unlock();
    push::PushOutcome o;
    o.kind = push::PushOutcome::Kind::kTransient;
    o.reason = "push sender shut down";
    done(std::move(o));
  }
  bool serves(const push::PushBinding& binding) const override {
    std::shared_lock lock(mu_);
    return inner_ != nullptr && inner_->serves(binding);
  }

 private:
  mutable std::shared_mutex mu_;
  std::unique_ptr<push::PushSender> inner_;
  std::vector<std::unique_ptr<push::PushSender>> retired_;  // replaced by a reload
};

}  // namespace

// Several nodes on one store: the store reports other nodes' "registered" events from before
// load() on; the wake-up hub that takes them exists only later. Thread: any.
struct RemoteRegistrations {
  std::mutex mu;
  std::function<void(const location::RegisteredEvent&)> to;  // guarded by mu
  void deliver(const location::RegisteredEvent& e) {
    std::lock_guard lock(mu);
    if (to) to(e);
  }
};

// Push wake-up objects every loop shares (thread-safe). Held by every PerLoop, so they go with
// the last of them, after the loops stopped.
struct PushShared {
  std::unique_ptr<location::MessageStore> messages;    // MESSAGEs kept for sleeping devices
  std::unique_ptr<routing::MessageDelivery> delivery;  // hands them out at registration
  std::unique_ptr<location::PurrStore> purrs;          // RFC 8599 §6, same file
  ShutdownPushSender sender;
  transport::EventLoop* sender_loop = nullptr;  // where the real sender lives (if any)
  routing::WakeHub hub;
  std::unique_ptr<routing::WakeLimits> limits;  // push flood protection, shared by every loop
  std::unique_ptr<routing::EdgeUpstream> edge;  // [edge]: lives on loop 0; nullptr: off
  // Wake timelines of every loop ([admin] timelines; GET /api/timelines); nullptr: admin off.
  std::unique_ptr<routing::TimelineRecorder> timelines;
  // [push] refresh = "wake": lives on loop 0; nullptr: push-only.
  std::unique_ptr<routing::RefreshPushes> refresh;
  // What every loop's registrar tells about new bindings: the hub, then edge mode.
  struct Observers final : registrar::RegistrationObserver {
    std::vector<registrar::RegistrationObserver*> list;
    void onRegistered(std::string_view aor, const location::Binding& binding,
                      const transport::ReceivedMessage& request) override {
      for (auto* o : list) o->onRegistered(aor, binding, request);
    }
  } observers;
};

// The objects that live on one loop. Destroyed only after the loops have stopped.
struct Server::PerLoop {
  std::shared_ptr<PushShared> push;  // declared first: destroyed after everything using it
  std::unique_ptr<CoreHandler> core;
  std::unique_ptr<transaction::TransactionLayer> transactions;
  std::unique_ptr<registrar::Registrar> registrar;
  // The proxy core and what it reads; destroyed before the transaction layer it detaches from.
  std::unique_ptr<routing::LocationTargetResolver> targets;
  auth::TrustedPeers trusted;
  std::unique_ptr<routing::CaresResolver> resolver;  // RFC 3263 DNS; outlives the proxy
  std::unique_ptr<routing::WakeAndWait> wake;        // the proxy's resolver; outlives it
  std::unique_ptr<routing::Proxy> proxy;
};

namespace {

// The secret that signs our Record-Route values: the file's bytes, without trailing white space
// (a newline an editor added), at least 16 of them.
Result<std::string> readRouteSecret(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalidArgument("cannot read \"" + path + "\"");
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r' ||
                             secret.back() == ' ' || secret.back() == '\t')) {
    secret.pop_back();
  }
  if (secret.size() < 16) {
    return invalidArgument("\"" + path + "\" holds " + std::to_string(secret.size()) +
                           " bytes; at least 16 are needed (e.g. head -c 32 /dev/urandom | "
                           "base64 > file)");
  }
  return secret;
}

// No [proxy] route_secret_file: the secret lives beside the store ("<store>.route-key", 0600,
// 64 hex digits written at the first start), so the calls of a restarted server keep their
// in-dialog requests. An in-memory store gets a secret for this process only.
Result<std::string> storeRouteSecret(const std::string& store_path) {
  if (store_path.empty() || store_path == ":memory:" || store_path.rfind("file:", 0) == 0) {
    return routing::FlowTokenCodec::randomSecret();
  }
  const std::string path = store_path + ".route-key";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string text;
    for (unsigned char c : routing::FlowTokenCodec::randomSecret()) {
      text += kHex[c >> 4];
      text += kHex[c & 0xf];
    }
    text += '\n';
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!written || !synced) {
      ::unlink(path.c_str());
      return unavailable("cannot write \"" + path + "\": " + std::strerror(errno));
    }
    SW_LOG_INFO("proxy: Record-Route signing secret created in {}", path);
  } else if (errno != EEXIST) {
    return unavailable("cannot create \"" + path + "\": " + std::strerror(errno));
  }
  return readRouteSecret(path);
}

auth::AuthConfig authConfigFrom(const AuthSettings& a) {
  auth::AuthConfig c;
  c.algorithms.clear();
  for (const auto& name : a.algorithms) {
    if (auto alg = auth::parseAlgorithm(name)) c.algorithms.push_back(*alg);
  }
  c.md5_only_user_agents = a.md5_only_user_agents;
  c.md5_only_without_user_agent = a.md5_only_without_user_agent;
  c.uri_check = a.uri_check == "strict" ? auth::UriCheck::kStrict
                : a.uri_check == "off"  ? auth::UriCheck::kOff
                                        : auth::UriCheck::kEquivalent;
  c.nonce.lifetime = seconds(a.nonce_ttl_s);
  c.rate_limit.max_failures = a.max_failures;
  c.rate_limit.window = seconds(a.failure_window_s);
  c.rate_limit.block = seconds(a.block_s);
  c.user_limit.max_failures = a.user_max_failures;
  c.user_limit.delay = seconds(a.user_delay_s);
  c.user_limit.max_delay = seconds(a.user_max_delay_s);
  c.log_failures = a.log_failures;
  return c;
}

transport::TlsConfig::Verify toTransportVerify(TlsVerify v) {
  switch (v) {
    case TlsVerify::kNone:
      return transport::TlsConfig::Verify::kNone;
    case TlsVerify::kPeer:
      return transport::TlsConfig::Verify::kPeer;
    case TlsVerify::kRequire:
      return transport::TlsConfig::Verify::kRequire;
  }
  return transport::TlsConfig::Verify::kPeer;
}

routing::WakeLimitsConfig wakeLimitsFrom(const PushSettings& p) {
  routing::WakeLimitsConfig c;
  c.wake_for = p.wake_for == "trusted"         ? routing::WakeFor::kTrusted
               : p.wake_for == "authenticated" ? routing::WakeFor::kAuthenticated
                                               : routing::WakeFor::kAnyone;
  c.device = {p.device_pushes_per_minute, p.device_push_burst};
  c.aor = {p.aor_pushes_per_minute, p.aor_push_burst};
  c.stranger = {p.stranger_pushes_per_minute, p.stranger_push_burst};
  c.max_parked = p.max_parked;
  c.max_parked_per_source = p.max_parked_per_source;
  c.max_parked_per_aor = p.max_parked_per_aor;
  c.parked_retry_after_s = p.ring_timeout_s;  // a parked request ends within it
  return c;
}

// [[push.app]] → the sender's app configs; every call rings for [push] ring_timeout.
std::vector<push::PushAppConfig> pushAppConfigs(const PushSettings& settings) {
  std::vector<push::PushAppConfig> out;
  for (const PushApp& a : settings.apps) {
    push::PushAppConfig c;
    c.provider = a.provider == "apns"  ? push::PushService::kApns
                 : a.provider == "fcm" ? push::PushService::kFcm
                                       : push::PushService::kWebhook;
    c.id = a.id;
    c.key_file = a.key_file;
    c.key_id = a.key_id;
    c.team_id = a.team_id;
    c.cert_file = a.cert_file;
    c.cert_key_file = a.cert_key_file;
    c.use_voip = a.use_voip;
    c.service_account_file = a.service_account_file;
    c.url = a.url;
    c.secret_file = a.secret_file;
    c.endpoint = a.endpoint;
    c.ca_file = a.ca_file;
    c.ring_time = std::chrono::seconds(settings.ring_timeout_s);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

Server::Server(Config config)
    : config_(std::move(config)), drain_timeout_s_(config_.drain_timeout_s) {
  // Before the store's writer and the loops exist (see common/allocator.h).
  if (!tuneAllocatorForServer()) SW_LOG_DEBUG("allocator tuning not available");
}

Server::~Server() { stop(); }

namespace {

// Where [store] url points, for the log: servers (or sentinels and master), db, TLS; never the
// credentials.
std::string redisWhere(const std::string& url) {
  auto c = redis::parseRedisUrl(url);
  if (!c) return "(bad url)";
  std::string hosts;
  for (const redis::HostPort& hp : c->hosts) {
    if (!hosts.empty()) hosts += ',';
    hosts += redis::toString(hp);
  }
  return fmt::format("{}{}{} db {}",
                     c->sentinel() ? "master " + c->sentinel_master + " via sentinels " : "", hosts,
                     c->tls ? " (TLS)" : "", c->db);
}

Result<redis::RedisConfig> storeRedisConfig(const StoreConfig& store) {
  auto redis = redis::parseRedisUrl(store.url);
  if (!redis) return invalidArgument("[store] url: " + redis.status().message());
  redis->tls_ca_file = store.redis_ca_file;
  return redis;
}

}  // namespace

Result<std::unique_ptr<location::UserStore>> openUserStore(const Config& config,
                                                           bool follow_changes) {
  if (config.store.url.empty()) return location::UserStore::open(config.store.path);
  auto redis = storeRedisConfig(config.store);
  if (!redis) return redis.status();
  location::RedisUserOptions options;
  options.redis = std::move(*redis);
  options.prefix = config.store.redis_prefix;
  options.follow_changes = follow_changes;
  return location::UserStore::openRedis(options);
}

// SQLite at [store] path, or Redis when [store] url is set (bindings, push bindings and users).
Result<std::unique_ptr<location::LocationStore>> Server::openLocationStore() {
  if (!config_.store.url.empty()) {
    auto redis = storeRedisConfig(config_.store);
    if (!redis) return redis.status();
    location::RedisLocationOptions options;
    options.redis = std::move(*redis);
    options.prefix = config_.store.redis_prefix;
    auto store = location::RedisLocationStore::open(std::move(options));
    if (!store) return store.status();
    remote_registrations_ = std::make_shared<RemoteRegistrations>();
    (*store)->setRegisteredObserver(
        [sink = remote_registrations_](const location::RegisteredEvent& e) { sink->deliver(e); });
    return std::unique_ptr<location::LocationStore>(std::move(*store));
  }
  location::SqliteLocationOptions options;
  options.synchronous_full = config_.store.synchronous_full;
  auto store = location::SqliteLocationStore::open(config_.store.path, options);
  if (!store) return store.status();
  return std::unique_ptr<location::LocationStore>(std::move(*store));
}

Status Server::openStores() {
  Result<std::unique_ptr<location::LocationStore>> store = openLocationStore();
  if (!store.isOk()) return store.status();
  // Every binding in memory before any listener exists: a restarted server serves every binding
  // it acknowledged from its first message on.
  auto report = (*store)->load(registrar::systemWallClock());
  if (!report.isOk()) return report.status();
  locations_ = std::move(*store);
  store_gauges_.push_back(Stats::global().gaugeFn(
      "location.bindings",
      [s = locations_.get()] { return static_cast<std::int64_t>(s->size()); }));
  auto users = openUserStore(config_, /*follow_changes=*/true);
  if (!users.isOk()) return users.status();
  users_ = std::move(*users);
  if (config_.store.url.empty()) {
    SW_LOG_INFO("store {}: {} bindings of {} AORs, {} users", config_.store.path, report->bindings,
                report->aors, users_->size());
  } else {
    SW_LOG_INFO("store: Redis {}: {} bindings of {} AORs, {} users", redisWhere(config_.store.url),
                report->bindings, report->aors, users_->size());
  }

  auto trusted = auth::TrustedPeers::parse(config_.auth.trusted_peers);
  if (!trusted.isOk()) return trusted.status();
  auth::AuthConfig auth_config = authConfigFrom(config_.auth);
  // start() makes identity_ before calling openStores(); stop() resets it after the loops end.
  auth_config.is_local_host = [this](std::string_view host) {
    return identity_->isLocalHost(host);
  };
  authenticator_ = std::make_unique<auth::Authenticator>(
      std::move(auth_config), registrar::credentialLookup(*users_), std::move(*trusted));
  services_ = std::make_unique<registrar::Services>(
      registrar::Services{*locations_, *authenticator_,
                          [this](std::string_view host) { return identity_->isLocalHost(host); }});

  maintenance_ = std::make_unique<registrar::Maintenance>();
  maintenance_->add({"sweep", seconds(config_.registrar.sweep_interval_s), [this] {
                       std::size_t n = locations_->sweepExpired(registrar::systemWallClock());
                       if (n > 0) SW_LOG_DEBUG("registrar: swept {} expired bindings", n);
                     }});
  certificates_ = certificateFiles(config_);
  maintenance_->add({"certificate expiry", std::chrono::hours(24), [this] {
                       std::vector<CertificateFile> files;
                       {
                         std::lock_guard lock(reload_mu_);
                         files = certificates_;
                       }
                       const auto now = static_cast<std::int64_t>(std::time(nullptr));
                       for (const std::string& w : certificateWarnings(files, now)) {
                         SW_LOG_WARN("certificates: {}", w);
                       }
                     }});
  maintenance_->add({"user reload", seconds(config_.auth.user_reload_interval_s), [this] {
                       if (Status s = users_->reload(); !s) {
                         SW_LOG_WARN("users: reload failed: {}", s.message());
                       }
                     }});
  return Status::ok();
}

Status Server::reloadUsers() {
  if (!users_) return Status(StatusCode::kFailedPrecondition, "server not started");
  Status s = users_->reload();
  if (s) SW_LOG_INFO("users: reloaded, {} users", users_->size());
  return s;
}

namespace {

// How long a replaced push sender lives on for the pushes still in flight on it: longer than a
// request's deadline (PushAppConfig::request_timeout) plus an OAuth2 token fetch before it.
constexpr Duration kRetiredSenderLife = seconds(30);

// Keys a reload applies (as Config::given names them); a changed key elsewhere needs a restart.
bool reloadableKey(const std::string& key) {
  static const char* const kExact[] = {"[server] log_level",
                                       "[server] log_format",
                                       "[server] drain_timeout",
                                       "[tls] certificate",
                                       "[tls] private_key",
                                       "[tls] ca_file",
                                       "[tls] verify",
                                       "[tls] ciphers",
                                       "[push] app",
                                       "[push] wake_for",
                                       "[push] device_pushes_per_minute",
                                       "[push] device_push_burst",
                                       "[push] aor_pushes_per_minute",
                                       "[push] aor_push_burst",
                                       "[push] stranger_pushes_per_minute",
                                       "[push] stranger_push_burst",
                                       "[push] max_parked",
                                       "[push] max_parked_per_source",
                                       "[push] max_parked_per_aor"};
  for (const char* k : kExact) {
    if (key == k) return true;
  }
  return key.rfind("[[push.app]] ", 0) == 0;
}

// "file:line: " for a key of `c` (just "file: " when the key is not in the file).
std::string whereIs(const Config& c, const std::string& key) {
  std::string w = c.source.empty() ? std::string() : c.source;
  auto it = c.given.find(key);
  if (it != c.given.end() && it->second.line != 0) w += ":" + std::to_string(it->second.line);
  return w.empty() ? std::string() : w + ": ";
}

// The Http2PushSender::create error names "<provider> app '<id>'": the line of that app.
std::string pushAppWhere(const Config& c, const std::string& message) {
  for (const PushApp& a : c.push.apps) {
    const std::string provider = a.provider == "webpush" ? "webhook" : a.provider;
    if (message.rfind(provider + " app '" + a.id + "'", 0) == 0) {
      std::string w = c.source.empty() ? std::string() : c.source;
      if (a.line != 0) w += ":" + std::to_string(a.line);
      return (w.empty() ? std::string() : w + ": ") + "[[push.app]]: ";
    }
  }
  return (c.source.empty() ? std::string() : c.source + ": ") + "[[push.app]]: ";
}

}  // namespace

void Server::setConfigLoader(std::function<Result<Config>()> load) {
  std::lock_guard lock(reload_mu_);
  config_loader_ = std::move(load);
}

Status Server::reload(ReloadReport* out) {
  std::function<Result<Config>()> load;
  {
    std::lock_guard lock(reload_mu_);
    load = config_loader_;
  }
  if (!load) {
    Status s = reloadUsers();
    if (s && out != nullptr) out->reloaded = {"users"};
    return s;
  }
  Result<Config> next = load();
  if (!next) return next.status();
  return reload(*next, out);
}

Status Server::reload(const Config& next, ReloadReport* out) {
  std::lock_guard lock(reload_mu_);
  if (!transport_ || !push_) return Status(StatusCode::kFailedPrecondition, "server not started");
  ReloadReport report;
  // Changed keys that a reload does not apply: kept old, named.
  {
    std::vector<std::string> keys;
    for (const auto& [k, v] : config_.given) keys.push_back(k);
    for (const auto& [k, v] : next.given) {
      if (config_.given.count(k) == 0) keys.push_back(k);
    }
    for (const std::string& k : keys) {
      auto a = config_.given.find(k);
      auto b = next.given.find(k);
      const bool same =
          a != config_.given.end() && b != next.given.end() && a->second.value == b->second.value;
      if (!same && !reloadableKey(k)) report.restart_needed.push_back(k);
    }
    // Overrides from the command line (--listen, --domain) are not in `given`.
    if (next.listeners != config_.listeners) report.restart_needed.push_back("[[listen]]");
    if (next.domains != config_.domains &&
        std::find(report.restart_needed.begin(), report.restart_needed.end(), "[server] domains") ==
            report.restart_needed.end()) {
      report.restart_needed.push_back("[server] domains");
    }
  }
  // 1. Check everything; nothing changes before all of it passed.
  if (Status s = validateConfig(next); !s) {
    return invalidArgument((next.source.empty() ? "" : next.source + ": ") + s.message());
  }
  // TLS: every certificate, key and CA file is read into new contexts.
  std::shared_ptr<transport::detail::TlsContexts> tls;
  bool tls_restart = false;
  {
    transport::TlsConfig tc;
    tc.certificate_file = next.tls.certificate;
    tc.private_key_file = next.tls.private_key;
    tc.ca_file = next.tls.ca_file;
    tc.verify = toTransportVerify(next.tls.verify);
    tc.ciphers = next.tls.ciphers;
    if (tc.certificate_file.empty() && ephemeral_cert_) {
      tc.certificate_file = ephemeral_cert_->certificatePath();
      tc.private_key_file = ephemeral_cert_->privateKeyPath();
    } else if (tc.certificate_file.empty() && config_.hasTlsListener()) {
      // From a configured certificate back to none: the ephemeral one is made at start-up.
      tls_restart = true;
    }
    if (!tls_restart) {
      auto prepared = transport_->prepareTls(tc);
      if (!prepared) {
        const std::string m = prepared.status().message();
        const std::string key = m.find("private key") != std::string::npos ? "[tls] private_key"
                                : m.find("CA file") != std::string::npos   ? "[tls] ca_file"
                                : m.find("ciphers") != std::string::npos   ? "[tls] ciphers"
                                                                           : "[tls] certificate";
        return invalidArgument(whereIs(next, key) + key + ": " + m);
      }
      tls = std::move(*prepared);
    } else {
      report.restart_needed.push_back("[tls] certificate");
    }
  }
  // Push: a whole new sender (every app's files and keys read and checked). Push off at start-up
  // (no app: REGISTERs' push params were not captured) stays off until a restart.
  std::unique_ptr<push::PushSender> sender;
  const bool push_was_on = !config_.push.apps.empty();
  if (push_was_on && !next.push.apps.empty()) {
    PushSettings ps = next.push;
    ps.ring_timeout_s = config_.push.ring_timeout_s;  // a restart-only key
    auto created = push::Http2PushSender::create(pushAppConfigs(ps), *push_->sender_loop);
    if (!created) {
      return invalidArgument(pushAppWhere(next, created.status().message()) +
                             created.status().message());
    }
    sender = std::move(*created);
  } else if (push_was_on) {
    sender = std::make_unique<push::NullPushSender>();
  } else if (!next.push.apps.empty()) {
    report.restart_needed.push_back("[push] app");
  }

  // 2. Apply.
  if (tls) {
    transport_->swapTls(std::move(tls));
    report.reloaded.push_back("tls");
  }
  if (sender) {
    const void* old = push_->sender.replace(std::move(sender));
    std::weak_ptr<PushShared> weak = push_;
    transport::EventLoop* loop = push_->sender_loop;
    loop->post([loop, weak, old] {
      loop->timers().schedule(kRetiredSenderLife, [weak, old] {
        if (auto push = weak.lock()) push->sender.retireOld(old);
      });
    });
    for (const PushApp& a : next.push.apps) {
      SW_LOG_INFO("push: {} app '{}' configured", a.provider, a.id);
    }
    report.reloaded.push_back("push");
  }
  for (const std::string& w : next.warnings) SW_LOG_WARN("reload: configuration: {}", w);
  certificates_ = certificateFiles(next);
  configureLogging(next.log_level, next.log_format);  // checked by the parser
  report.reloaded.push_back("log_level");
  drain_timeout_s_.store(next.drain_timeout_s);
  push_->limits->reconfigure(wakeLimitsFrom(next.push));
  report.reloaded.push_back("limits");
  if (Status s = reloadUsers(); s) {
    report.reloaded.push_back("users");
  } else {
    SW_LOG_WARN("reload: users not re-read: {}", s.message());
  }
  for (const std::string& k : report.restart_needed) {
    SW_LOG_WARN("reload: {}{}: changed, restart needed (the old value stays in use)",
                whereIs(next, k), k);
  }
  if (out != nullptr) *out = std::move(report);
  return Status::ok();
}

void Server::startDraining() {
  if (transport_) transport_->stopAccepting();
  if (!loops_ || !loops_running_) return;
  for (std::size_t i = 0; i < per_loop_.size(); ++i) {
    PerLoop* pl = per_loop_[i].get();
    loops_->at(i).post([pl] {
      pl->core->startDraining();
      std::size_t n = pl->wake->stopWaitingAll();
      if (n > 0) SW_LOG_INFO("drain: {} parked request(s) stopped waiting for their devices", n);
    });
  }
}

DrainProgress Server::drainProgress() {
  DrainProgress total;
  if (!loops_ || !loops_running_) return total;
  for (std::size_t i = 0; i < per_loop_.size(); ++i) {
    PerLoop* pl = per_loop_[i].get();
    auto done = std::make_shared<std::promise<DrainProgress>>();
    std::future<DrainProgress> f = done->get_future();
    loops_->at(i).post([pl, done] {
      DrainProgress p;
      p.unanswered = pl->transactions->unansweredServerCount();
      p.parked = pl->wake->parkedCount();
      done->set_value(p);
    });
    if (f.wait_for(seconds(1)) != std::future_status::ready) {
      total.unanswered += 1;  // a loop that does not answer is not idle
      continue;
    }
    DrainProgress p = f.get();
    total.unanswered += p.unanswered;
    total.parked += p.parked;
  }
  if (transport_) total.connections = transport_->connectionCount();
  return total;
}

Status Server::start() {
  transport::TransportConfig tc;
  std::vector<std::string> addresses;
  std::vector<std::uint16_t> ports;
  for (const auto& l : config_.listeners) {
    auto addr = transport::Address::parse(l.address, l.port);
    if (!addr.isOk()) return invalidArgument(l.toString() + ": " + addr.status().message());
    tc.listeners.push_back({l.protocol, *addr});
    addresses.push_back(l.address);
    ports.push_back(l.port);
  }

  tc.tls.certificate_file = config_.tls.certificate;
  tc.tls.private_key_file = config_.tls.private_key;
  tc.tls.ca_file = config_.tls.ca_file;
  tc.tls.verify = toTransportVerify(config_.tls.verify);
  tc.tls.ciphers = config_.tls.ciphers;
  if (config_.hasTlsListener() && config_.tls.certificate.empty()) {
    // validateConfig() guarantees every TLS listener is on loopback here.
    auto cert = EphemeralCertificate::generate({"localhost"}, {"127.0.0.1", "::1"});
    if (!cert.isOk()) return cert.status();
    ephemeral_cert_ = std::move(*cert);
    tc.tls.certificate_file = ephemeral_cert_->certificatePath();
    tc.tls.private_key_file = ephemeral_cert_->privateKeyPath();
    SW_LOG_WARN(
        "tls: no [tls] certificate configured; using an ephemeral self-signed certificate for "
        "localhost/127.0.0.1/::1 (loopback only; clients must not verify it)");
  }
  tc.idle_timeout = seconds(config_.limits.connection_idle_timeout_s);
  tc.max_connections_per_ip = config_.limits.max_connections_per_ip;
  tc.max_connections = connectionCap(config_.limits.max_connections);
  tc.message_timeout = seconds(config_.limits.message_timeout_s);
  tc.max_tls_handshakes = config_.limits.max_tls_handshakes;
  tc.max_tls_handshakes_per_ip = config_.limits.max_tls_handshakes_per_ip;
  tc.limits.max_message_bytes = config_.limits.max_message_bytes;
  tc.limits.max_headers = config_.limits.max_headers;
  tc.limits.max_line_bytes = config_.limits.max_line_bytes;

  transaction::LayerConfig lc;
  lc.timers.t1 = milliseconds(config_.timers.t1_ms);
  lc.timers.t2 = milliseconds(config_.timers.t2_ms);
  lc.timers.t4 = milliseconds(config_.timers.t4_ms);

  identity_ = std::make_unique<Identity>(config_.domains, addresses, std::move(ports));
  if (Status s = openStores(); !s) {
    stop();
    return s;
  }
  registrar::RegistrarConfig rc;
  rc.min_expires = config_.registrar.min_expires;
  rc.max_expires = config_.registrar.max_expires;
  rc.default_expires = config_.registrar.default_expires;
  rc.max_contacts_per_aor = config_.registrar.max_contacts_per_aor;
  rc.require_auth = config_.auth.require_auth_for_register;
  const std::string server_header =
      config_.server_header ? *config_.server_header : std::string(CoreHandler::serverHeader());
  rc.server_header = server_header;

  routing::ProxyConfig pc;
  pc.timer_c = seconds(config_.proxy.timer_c_s);
  pc.record_route = config_.proxy.record_route ? routing::RecordRouteMode::kAlways
                                               : routing::RecordRouteMode::kNever;
  pc.max_forks = config_.proxy.max_forks;
  pc.advertised_host = config_.proxy.advertised_host;
  pc.server_header = server_header;
  pc.unknown_user_answer =
      config_.proxy.unknown_user_response == "404"        ? routing::UnknownUserAnswer::k404
      : config_.proxy.unknown_user_response == "distinct" ? routing::UnknownUserAnswer::kDistinct
                                                          : routing::UnknownUserAnswer::k480;
  stranger_throttle_ = std::make_unique<auth::SourceThrottle>(auth::SourceThrottleConfig{
      .rate = config_.proxy.stranger_rate, .burst = config_.proxy.stranger_burst});
  if (!config_.proxy.outbound_proxy.empty()) {
    auto uri = routing::outboundProxyUri(config_.proxy.outbound_proxy);
    if (!uri) {
      stop();
      return invalidArgument("[proxy] outbound_proxy: " + uri.status().message());
    }
    pc.outbound_proxy = *uri;
  }
  // [edge]: checked here, after --domain overrides, and before anything starts.
  std::optional<routing::EdgeConfig> edge_config;
  std::vector<std::string> trusted_peers = config_.auth.trusted_peers;
  if (config_.edge.enabled) {
    const EdgeSettings& e = config_.edge;
    for (const std::string& d : e.domains) {
      if (std::find(config_.domains.begin(), config_.domains.end(), d) == config_.domains.end()) {
        stop();
        return invalidArgument("[edge] domains: \"" + d +
                               "\" is not one of [server] domains (nor a --domain)");
      }
    }
    auto uri = routing::outboundProxyUri(e.upstream);
    if (!uri) {
      stop();
      return invalidArgument("[edge] upstream: " + uri.status().message());
    }
    routing::EdgeConfig ec;
    ec.upstream_uri = *uri;
    ec.domains = e.domains;
    ec.upstream_expires = seconds(e.upstream_expires);
    ec.refresh_before = seconds(e.refresh_before);
    ec.upstream_rate = e.upstream_rate;
    ec.relay = e.mode == "relay";
    ec.advertised_host = config_.proxy.advertised_host;
    // The PBX's requests to the phones are not challenged and may push: an IP upstream is a
    // trusted peer of the proxy (not of the registrar: phones behind it still authenticate).
    auto parsed = sip::parseUri(ec.upstream_uri);
    if (parsed && isIpLiteral(parsed->hostWithoutBrackets())) {
      trusted_peers.emplace_back(parsed->hostWithoutBrackets());
    } else {
      SW_LOG_WARN("edge: upstream {} is a host name: list its addresses in [auth] trusted_peers",
                  e.upstream);
    }
    edge_config = std::move(ec);
  }
  static_assert(kMaxRouteKeyOverlapEpochs <= routing::RouteKeyConfig::kMaxOverlapEpochs);
  pc.route_keys.rotation = seconds(config_.proxy.route_key_rotation_s);
  pc.route_keys.overlap = seconds(config_.proxy.route_key_overlap_s);
  // One secret for every loop's proxy: an in-dialog request may arrive on any loop.
  if (config_.proxy.route_secret_file.empty()) {
    auto secret = storeRouteSecret(config_.store.path);
    if (!secret) {
      stop();
      return Status(secret.status().code(), "[proxy] route secret: " + secret.status().message());
    }
    pc.route_keys.secret = std::move(*secret);
  } else {
    auto secret = readRouteSecret(config_.proxy.route_secret_file);
    if (!secret) {
      stop();
      return invalidArgument("[proxy] route_secret_file: " + secret.status().message());
    }
    pc.route_keys.secret = std::move(*secret);
  }
  if (remote_registrations_) {
    // Several nodes: each binding records the node route back to this node and the phone's flow
    // (docs/architecture.md, "Several nodes").
    auto codec = std::make_shared<routing::FlowTokenCodec>(pc.route_keys);
    rc.node_route = [codec, advertised = config_.proxy.advertised_host](
                        const location::ReceivedFlow&, const transport::ReceivedMessage& r) {
      routing::FlowRef flow;
      flow.protocol = r.protocol;
      flow.remote = r.remote;
      flow.flow = r.flow;
      const bool unspecified = r.local.ip() == "0.0.0.0" || r.local.ip() == "::";
      if (unspecified && advertised.empty()) return std::string();
      std::string v = "sip:" + codec->encodeNodeRoute(flow, std::chrono::duration_cast<seconds>(
                                                                std::chrono::system_clock::now()
                                                                    .time_since_epoch())
                                                                .count());
      v += '@';
      v += unspecified ? advertised : r.local.hostForUri();
      v += ':' + std::to_string(r.local.port);
      if (r.protocol == transport::Protocol::kTcp) v += ";transport=tcp";
      if (r.protocol == transport::Protocol::kTls) v += ";transport=tls";
      v += ";lr";
      return v;
    };
  }
  auto proxy_trusted = auth::TrustedPeers::parse(trusted_peers);
  if (!proxy_trusted) {
    stop();
    return proxy_trusted.status();
  }

  // Push wake-up: push bindings live in the location store; messages and PURRs (same SQLite
  // file, own tables), the sender and the hub.
  auto push = std::make_shared<PushShared>();
  {
    location::MessageStoreLimits ml;
    ml.max_per_aor = config_.push.message_store_per_user;
    ml.max_total = config_.push.message_store_total;
    auto messages = location::openSqliteMessageStore(config_.store.path, ml);
    if (!messages) {
      stop();
      return messages.status();
    }
    auto kept = (*messages)->load();
    if (!kept) {
      stop();
      return kept.status();
    }
    push->messages = std::move(*messages);
    SW_LOG_INFO("store {}: {} stored messages", config_.store.path, *kept);
    routing::MessageDelivery::Deps dd;
    dd.store = push->messages.get();
    dd.current_loop = [] { return transport::EventLoop::current()->index(); };
    push->delivery = std::make_unique<routing::MessageDelivery>(std::move(dd));
    auto purrs = location::openSqlitePurrStore(config_.store.path);
    if (!purrs) {
      stop();
      return purrs.status();
    }
    if (auto valid = (*purrs)->load(registrar::systemWallClock()); !valid) {
      stop();
      return valid.status();
    }
    push->purrs = std::move(*purrs);
  }
  // No [[push.app]]: push is off and the null sender stands in; otherwise the HTTP/2 sender is
  // created below, on a loop of the pool.
  if (config_.push.apps.empty()) {
    push->sender.set(std::make_unique<push::NullPushSender>());
    SW_LOG_INFO("push not configured (no [[push.app]]): push params in REGISTERs are ignored");
  }
  registrar::PushCaptureConfig capture;
  capture.enabled = !config_.push.apps.empty();
  capture.ttl = seconds(config_.push.push_ttl_s);
  // The sender decides (its app choice, "*" rules included); it is set before traffic starts.
  capture.serves = [push](const push::PushBinding& b) { return push->sender.serves(b); };
  routing::WakeConfig wc;
  wc.ring_timeout = seconds(config_.push.ring_timeout_s);
  wc.push_connected_devices = config_.push.push_connected_devices;
  wc.parked_provisional = config_.push.parked_provisional;
  wc.uuid_salt = config_.push.call_uuid_salt;
  wc.repush.apns_interval = seconds(config_.push.repush_interval_apns_s);
  wc.repush.fcm_interval = seconds(config_.push.repush_interval_fcm_s);
  wc.repush.webpush_interval = seconds(config_.push.repush_interval_webpush_s);
  wc.repush.max_repushes = static_cast<int>(config_.push.max_repushes);
  wc.non_invite_timeout = seconds(config_.push.message_wait_s);
  wc.message_preview = config_.push.message_preview;
  wc.message_ttl = seconds(config_.push.message_store_ttl_s);
  push->limits = std::make_unique<routing::WakeLimits>(wakeLimitsFrom(config_.push));
  if (config_.admin.enabled) {
    push->timelines = std::make_unique<routing::TimelineRecorder>(config_.admin.timelines);
  }
  maintenance_->add({"push sweep", seconds(config_.registrar.sweep_interval_s), [push] {
                       // Expired push bindings go with the location store's sweep.
                       push->delivery->sweepExpired();
                       std::size_t n = push->purrs->sweep(registrar::systemWallClock());
                       if (n > 0) SW_LOG_DEBUG("registrar: forgot {} unused PURRs", n);
                     }});

  loops_ = std::make_unique<transport::LoopPool>(config_.effectiveWorkers());
  push_ = push;
  store_gauges_.push_back(Stats::global().gaugeFn(
      "location.push_bindings",
      [s = locations_.get()] { return static_cast<std::int64_t>(s->pushSize()); }));
  push->observers.list.push_back(&push->hub);
  if (remote_registrations_) {
    auto* redis = static_cast<location::RedisLocationStore*>(locations_.get());
    std::lock_guard lock(remote_registrations_->mu);
    remote_registrations_->to = [push, redis](const location::RegisteredEvent& e) {
      if (e.node_id == redis->nodeId()) return;  // the registrar told the hub already
      push->hub.onRegisteredElsewhere(*redis, e.aor, e.device_keys, registrar::systemWallClock());
    };
  }
  push->observers.list.push_back(push->delivery.get());
  if (!config_.push.apps.empty()) {
    auto sender = push::Http2PushSender::create(pushAppConfigs(config_.push), loops_->at(0));
    if (!sender) {
      stop();
      return Status(sender.status().code(), "[push] " + sender.status().message());
    }
    push->sender.set(std::move(*sender));
    push->sender_loop = &loops_->at(0);
    for (const PushApp& a : config_.push.apps) {
      SW_LOG_INFO("push: {} app '{}' configured", a.provider, a.id);
    }
  }
  // The handler runs on the loop the transport picked for the message; that loop's transaction
  // layer takes it from there. per_loop_ is complete before start() lets any message in.
  transport_ = std::make_unique<transport::TransportLayer>(
      *loops_, std::move(tc), [this](transport::ReceivedMessage msg) {
        transport::EventLoop* loop = transport::EventLoop::current();
        SIPWAKE_CHECK(loop != nullptr && loop->index() < per_loop_.size());
        per_loop_[loop->index()]->transactions->receive(std::move(msg));
      });
  // Runs on every loop when a TCP/TLS connection closes: that loop's client transactions
  // written to it fail now (503 to the TU, §8.1.3.1) instead of waiting for Timer B/F.
  transport_->setFlowClosedHandler([this](transport::FlowId flow, const Status& why) {
    transport::EventLoop* loop = transport::EventLoop::current();
    SIPWAKE_CHECK(loop != nullptr && loop->index() < per_loop_.size());
    per_loop_[loop->index()]->transactions->onFlowClosed(flow, why);
  });
  for (std::size_t i = 0; i < loops_->size(); ++i) {
    // RFC 3263 resolver on this loop (before anything that would have to be unwound).
    routing::CaresResolver::Options dns;
    dns.servers = config_.proxy.dns_servers;
    dns.timeout = std::chrono::milliseconds(config_.proxy.dns_timeout_ms);
    dns.protocols.clear();
    for (const auto& l : config_.listeners) {
      if (std::find(dns.protocols.begin(), dns.protocols.end(), l.protocol) == dns.protocols.end())
        dns.protocols.push_back(l.protocol);
    }
    auto resolver = routing::CaresResolver::create(loops_->at(i).io(), std::move(dns));
    if (!resolver) {
      stop();
      return Status(resolver.status().code(), "[proxy] DNS: " + resolver.status().message());
    }
    auto pl = std::make_unique<PerLoop>();
    pl->push = push;
    pl->core = std::make_unique<CoreHandler>(*identity_, server_header);
    pl->transactions = std::make_unique<transaction::TransactionLayer>(loops_->at(i).timers(),
                                                                       *transport_, *pl->core, lc);
    pl->core->attach(*pl->transactions);
    push->delivery->attach(i, pl->transactions.get());
    transport::EventLoop* loop = &loops_->at(i);
    pl->registrar = std::make_unique<registrar::Registrar>(
        rc, *services_, *pl->transactions,
        [loop](std::function<void()> fn) { loop->post(std::move(fn)); });
    pl->registrar->setObserver(&push->observers);
    pl->registrar->setPushCapture(capture);
    pl->registrar->setPurrs(push->purrs.get());

    pl->core->setRegistrar(pl->registrar.get());
    // Edge relay mode: the users of the edge domains are the upstream's, not in our user table.
    std::vector<std::string> upstream_users_domains;
    if (edge_config && edge_config->relay) upstream_users_domains = edge_config->domains;
    pl->targets = std::make_unique<routing::LocationTargetResolver>(
        *locations_,
        [this, upstream_users_domains](std::string_view user, std::string_view domain) {
          return users_->lookup(user, domain).has_value() ||
                 std::find(upstream_users_domains.begin(), upstream_users_domains.end(),
                           registrar::canonicalDomain(domain)) != upstream_users_domains.end();
        });
    pl->trusted = *proxy_trusted;
    routing::ProxyDeps pd;
    pd.layer = pl->transactions.get();
    pd.transport = transport_.get();
    routing::WakeAndWait::Deps wd;
    wd.inner = pl->targets.get();
    wd.push_store = locations_.get();
    wd.purrs = push->purrs.get();
    wd.sender = &push->sender;
    wd.hub = &push->hub;
    wd.limits = push->limits.get();
    wd.loop = i;
    wd.post = [loop](std::function<void()> fn) { loop->post(std::move(fn)); };
    wd.timers = &loops_->at(i).timers();
    wd.message_store = push->messages.get();
    wd.timelines = push->timelines.get();
    pl->wake = std::make_unique<routing::WakeAndWait>(wc, std::move(wd));
    pd.targets = pl->wake.get();
    pd.authenticator = authenticator_.get();
    pd.trusted = &pl->trusted;
    pd.stranger_throttle = stranger_throttle_.get();
    pl->resolver = std::move(*resolver);
    pd.resolver = pl->resolver.get();
    pd.is_local_host = [this](std::string_view host) { return identity_->isLocalHost(host); };
    if (edge_config && i == 0) {
      routing::EdgeUpstream::Deps ed;
      ed.layer = pl->transactions.get();
      ed.transport = transport_.get();
      ed.resolver = pl->resolver.get();
      ed.post = [loop](std::function<void()> fn) { loop->post(std::move(fn)); };
      ed.push_store = locations_.get();
      ed.locations = locations_.get();
      ed.users = users_.get();
      ed.sender = &push->sender;
      push->edge = std::make_unique<routing::EdgeUpstream>(*edge_config, std::move(ed));
      push->observers.list.push_back(push->edge.get());
    }
    if (config_.push.refresh == "wake" && config_.push.apps.empty() && i == 0) {
      SW_LOG_WARN("[push] refresh = \"wake\" without a [[push.app]]: no refresh pushes");
    }
    if (config_.push.refresh == "wake" && !config_.push.apps.empty() && i == 0) {
      routing::RefreshPushes::Deps rd;
      rd.timers = &pl->transactions->timers();
      rd.post = [loop](std::function<void()> fn) { loop->post(std::move(fn)); };
      rd.push_store = locations_.get();
      rd.locations = locations_.get();
      rd.sender = &push->sender;
      routing::RefreshConfig rc;
      rc.lead = seconds(config_.push.refresh_lead_s);
      push->refresh = std::make_unique<routing::RefreshPushes>(rc, std::move(rd));
      push->observers.list.push_back(push->refresh.get());
    }
    pd.edge = push->edge.get();
    pl->proxy = std::make_unique<routing::Proxy>(std::move(pd), pc);
    pl->wake->setProxy(pl->proxy.get());
    pl->core->setProxy(pl->proxy.get());
    per_loop_.push_back(std::move(pl));
  }

  // Edge relay mode: every loop's registrar asks the upstream (before any loop runs).
  if (push->edge && edge_config->relay) {
    for (auto& pl : per_loop_) pl->registrar->setRelay(push->edge.get());
  }
  loops_->start();
  loops_running_ = true;
  if (Status s = transport_->start(); !s) {
    stop();
    return s;
  }
  if (push->edge) {
    routing::EdgeUpstream* edge = push->edge.get();
    loops_->at(0).post([edge] { edge->start(); });
  }
  if (push->refresh) {
    routing::RefreshPushes* refresh = push->refresh.get();
    loops_->at(0).post([refresh] { refresh->start(); });
  }
  if (config_.admin.enabled) {
    http2::Http1ServerOptions ao;
    ao.listen_host = config_.admin.address;
    ao.port = config_.admin.port;
    const bool https = !config_.admin.tls_certificate.empty();
    if (https) {
      auto tls = http2::makeServerTlsContext(config_.admin.tls_certificate,
                                             config_.admin.tls_private_key,
                                             http2::AlpnProtocols::kHttp1);
      if (!tls) {
        stop();
        return invalidArgument("[admin] tls_certificate: " + tls.status().message());
      }
      ao.tls = std::move(*tls);
    }
    AdminDeps ad;
    ad.token = config_.admin.token;
    ad.locations = locations_.get();
    ad.push_store = locations_.get();
    ad.sender = &push->sender;
    ad.timelines = push->timelines.get();
    routing::WakeLimits* limits = push->limits.get();
    ad.parked = [limits] { return limits->parked(); };
    ad.reload = [this]() -> Result<ReloadReport> {
      ReloadReport report;
      if (Status s = reload(&report); !s) return s;
      return report;
    };
    transport::EventLoop* admin_loop = &loops_->at(0);
    ad.post = [admin_loop](std::function<void()> fn) { admin_loop->post(std::move(fn)); };
    ad.after = [admin_loop](std::chrono::milliseconds delay, std::function<void()> fn) {
      admin_loop->timers().schedule(delay, std::move(fn));
    };
    admin_api_ = std::make_unique<AdminApi>(std::move(ad));
    AdminApi* api = admin_api_.get();
    admin_ = std::make_unique<http2::Http1Server>(
        loops_->at(0), std::move(ao),
        [api](const http2::Request& r, http2::Http1Server::Responder respond) {
          api->handle(r, std::move(respond));
        });
    if (Status s = admin_->start(); !s) {
      stop();
      return unavailable("[admin] listen: " + s.message());
    }
    SW_LOG_INFO("admin listener on {}://{}:{}/metrics", https ? "https" : "http",
                config_.admin.address, admin_->port());
  }
  maintenance_->start();
  SW_LOG_INFO("sipwake {}: {} worker loop(s)", versionString(), loops_->size());
  for (const auto& l : config_.listeners) SW_LOG_INFO("listening on {}", l.toString());
  return Status::ok();
}

std::uint16_t Server::adminPort() const { return admin_ ? admin_->port() : 0; }

void Server::stop() {
  store_gauges_.clear();  // they read the stores
  if (admin_) admin_->stop();
  if (transport_) transport_->stop();
  if (remote_registrations_) {
    std::lock_guard lock(remote_registrations_->mu);
    remote_registrations_->to = nullptr;  // no more wake-ups from other nodes
  }
  if (push_) {
    // The push senders (and those a reload replaced) go while their loop still runs (its HTTP/2
    // clients shut down there); a barrier posted after it waits (bounded) until that shutdown has
    // run.
    push_->sender.shutdown();
    if (loops_ && loops_running_ && push_->sender_loop != nullptr) {
      auto done = std::make_shared<std::promise<void>>();
      std::future<void> barrier = done->get_future();
      push_->sender_loop->post([done] { done->set_value(); });
      barrier.wait_for(std::chrono::seconds(2));
    }
    push_.reset();
  }
  if (loops_ && loops_running_) {
    loops_->stop();
    loops_running_ = false;
  }
  if (maintenance_) maintenance_->stop();
  // The store commits what is queued and posts the completions to the stopped loops, where they
  // are dropped unrun: so it goes while the loops (their queues) still exist.
  locations_.reset();
  // Loops are stopped: the per-loop objects can go (their timers are never touched again).
  per_loop_.clear();
  admin_.reset();
  admin_api_.reset();
  transport_.reset();
  loops_.reset();
  maintenance_.reset();
  services_.reset();
  authenticator_.reset();
  stranger_throttle_.reset();
  users_.reset();
  identity_.reset();
  ephemeral_cert_.reset();
}

}  // namespace sipwake::server
