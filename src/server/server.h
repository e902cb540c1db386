// The composition root: builds the event loops, the transport layer, one transaction layer,
// core handler and registrar per loop, and the shared services (location store, user store,
// authenticator) from a Config, and tears them down in the reverse order.
//
//   TransportLayer ──(message, on the loop owning its Call-ID)──▶ TransactionLayer[loop]
//                                                                 └─▶ CoreHandler[loop]
//                                              REGISTER ─▶ Registrar[loop] ─▶ LocationStore
//
// The location store is opened and every binding loaded BEFORE any listener is bound, so the
// first request already sees every binding acknowledged before a restart (or a kill -9).
//
// Thread: start() and stop() are called from the main thread (never from a loop). Between
// them, all SIP work runs on the loops; the Server object itself is not touched by them except
// through the per-loop objects it owns.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/stats.h"
#include "common/status.h"
#include "server/cert_expiry.h"
#include "server/config.h"
#include "server/reload_report.h"
#include "server/self_signed_cert.h"

namespace sipwake::transport {
class LoopPool;
class TransportLayer;
}  // namespace sipwake::transport

namespace sipwake::location {
class LocationStore;
class UserStore;
}  // namespace sipwake::location
namespace sipwake::auth {
class Authenticator;
class SourceThrottle;
}  // namespace sipwake::auth
namespace sipwake::registrar {
struct Services;
class Maintenance;
}  // namespace sipwake::registrar

namespace sipwake::http2 {
class Http1Server;
}  // namespace sipwake::http2

namespace sipwake::server {

class AdminApi;
class Identity;
struct PushShared;
struct RemoteRegistrations;

// How far a drain is (Server::drainProgress).
// The users of `config`'s store: in Redis when [store] url is set (`follow_changes`: subscribe
// to other processes' edits — the server does, a one-shot CLI command need not), else in the
// SQLite file at [store] path.
Result<std::unique_ptr<location::UserStore>> openUserStore(const Config& config,
                                                           bool follow_changes);

struct DrainProgress {
  std::size_t unanswered = 0;   // server transactions still owing a final response
  std::size_t parked = 0;       // requests parked for woken devices
  std::size_t connections = 0;  // open TCP/TLS connections
};

class Server {
 public:
  // REQUIRES: validateConfig(config) is ok.
  explicit Server(Config config);
  ~Server();  // calls stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Generates the ephemeral TLS certificate if needed, binds every listener and starts the
  // loops. On error nothing keeps running.
  Status start();
  // Closes listeners and connections, stops the loops. Idempotent.
  void stop();

  const Config& config() const { return config_; }

  // Re-reads the users from the store. Thread: any; never blocks a loop.
  Status reloadUsers();

  // Reload (SIGHUP, POST /api/reload): applies `next` without dropping calls or connections.
  // Re-read and applied: [[push.app]] (apps and credentials: new pushes use the new apps, pushes
  // in flight finish on the old ones, a removed app's bindings then fail "no push app"), the TLS
  // certificate, key, CA file, verify and ciphers (new handshakes, inbound and outbound; existing
  // connections keep theirs), [server] log_level / log_format / drain_timeout, the [push] wake
  // limits (wake_for, *_pushes_per_minute, *_push_burst, max_parked*) and the users. Every other
  // changed key keeps its old value and is listed in out->restart_needed (and logged).
  // Everything is checked first (the config's cross-key rules, the certificate and key files,
  // every push app's files and keys); on any error nothing changes and the error names the file,
  // the line and the key. Thread: any (also a loop: it never waits for one); calls serialize.
  // REQUIRES: start() succeeded.
  Status reload(const Config& next, ReloadReport* out);
  // The configuration a reload without an argument applies (run.cc: the --config file with the
  // command-line overrides). Unset: a reload re-reads the users only.
  void setConfigLoader(std::function<Result<Config>()> load);
  Status reload(ReloadReport* out);
  // [server] drain_timeout as last applied.
  std::uint32_t drainTimeoutSeconds() const { return drain_timeout_s_.load(); }

  // Drain (SIGTERM): the TCP/TLS listeners close, requests outside a dialog get 503 with
  // Retry-After, and parked requests stop waiting for their devices (the caller gets its final
  // answer); transactions in progress go on. Returns at once; stop() ends it.
  // Thread: not a loop thread.
  void startDraining();
  // Counted on every loop (waits for each, bounded). Thread: not a loop thread.
  DrainProgress drainProgress();

  // The admin listener's port ([admin] listen; 0 when off). Valid after a successful start().
  std::uint16_t adminPort() const;

  // The shared services (location store, authenticator, domain check) for the proxy core.
  // Valid between a successful start() and stop().
  const registrar::Services& services() const { return *services_; }

 private:
  struct PerLoop;

  Status openStores();
  Result<std::unique_ptr<location::LocationStore>> openLocationStore();

  Config config_;
  std::unique_ptr<EphemeralCertificate> ephemeral_cert_;
  std::unique_ptr<location::LocationStore> locations_;
  // A shared (Redis) store: other nodes' "registered" events, for the wake-up hub; else nullptr.
  std::shared_ptr<RemoteRegistrations> remote_registrations_;
  std::unique_ptr<location::UserStore> users_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<auth::SourceThrottle> stranger_throttle_;  // shared by the loops' proxies
  std::unique_ptr<registrar::Services> services_;
  std::unique_ptr<registrar::Maintenance> maintenance_;
  std::unique_ptr<Identity> identity_;
  std::unique_ptr<transport::LoopPool> loops_;
  std::unique_ptr<transport::TransportLayer> transport_;
  std::vector<std::unique_ptr<PerLoop>> per_loop_;  // index = loop index
  // Push wake-up state shared by the loops; its sender is shut down first in stop().
  std::shared_ptr<PushShared> push_;
  std::unique_ptr<AdminApi> admin_api_;        // what admin_ answers; goes after it
  std::unique_ptr<http2::Http1Server> admin_;  // [admin] listen, on loop 0
  // location.bindings and location.push_bindings, read from the stores at scrape time.
  std::vector<Stats::GaugeFnHandle> store_gauges_;
  bool loops_running_ = false;
  std::mutex reload_mu_;                           // one reload at a time
  std::function<Result<Config>()> config_loader_;  // guarded by reload_mu_
  // The certificates in use (start-up, then each reload), checked daily; guarded by reload_mu_.
  std::vector<CertificateFile> certificates_;
  std::atomic<std::uint32_t> drain_timeout_s_{10};
};

}  // namespace sipwake::server
