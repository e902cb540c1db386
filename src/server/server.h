// The composition root: builds the event loops, the transport layer, one transaction layer and
// one core handler per loop from a Config, and tears them down in the reverse order.
//
//   TransportLayer ──(message, on the loop owning its Call-ID)──▶ TransactionLayer[loop]
//                                                                 └─▶ CoreHandler[loop]
//
// Thread: start() and stop() are called from the main thread (never from a loop). Between
// them, all SIP work runs on the loops; the Server object itself is not touched by them except
// through the per-loop objects it owns.
#pragma once

#include <memory>
#include <vector>

#include "common/status.h"
#include "server/config.h"
#include "server/self_signed_cert.h"

namespace sipwake::transport {
class LoopPool;
class TransportLayer;
}  // namespace sipwake::transport

namespace sipwake::server {

class Identity;

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

 private:
  struct PerLoop;

  Config config_;
  std::unique_ptr<EphemeralCertificate> ephemeral_cert_;
  std::unique_ptr<Identity> identity_;
  std::unique_ptr<transport::LoopPool> loops_;
  std::unique_ptr<transport::TransportLayer> transport_;
  std::vector<std::unique_ptr<PerLoop>> per_loop_;  // index = loop index
  bool loops_running_ = false;
};

}  // namespace sipwake::server
