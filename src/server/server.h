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

#include <cstdint>
#include <memory>
#include <vector>

#include "common/stats.h"
#include "common/status.h"
#include "server/config.h"
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

class Identity;
struct PushShared;

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

  // Re-reads the users from the store (SIGHUP). Thread: any; never blocks a loop.
  Status reloadUsers();

  // The admin listener's port ([admin] listen; 0 when off). Valid after a successful start().
  std::uint16_t adminPort() const;

  // The shared services (location store, authenticator, domain check) for the proxy core.
  // Valid between a successful start() and stop().
  const registrar::Services& services() const { return *services_; }

 private:
  struct PerLoop;

  Status openStores();

  Config config_;
  std::unique_ptr<EphemeralCertificate> ephemeral_cert_;
  std::unique_ptr<location::LocationStore> locations_;
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
  std::unique_ptr<http2::Http1Server> admin_;  // [admin] listen, on loop 0
  // location.bindings and location.push_bindings, read from the stores at scrape time.
  std::vector<Stats::GaugeFnHandle> store_gauges_;
  bool loops_running_ = false;
};

}  // namespace sipwake::server
