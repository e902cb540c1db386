#include "server/server.h"

#include "common/log.h"
#include "server/cli.h"
#include "server/core_handler.h"
#include "transaction/transaction_layer.h"
#include "transport/event_loop.h"
#include "transport/transport_layer.h"

namespace sipwake::server {

// The objects that live on one loop. Destroyed only after the loops have stopped.
struct Server::PerLoop {
  std::unique_ptr<CoreHandler> core;
  std::unique_ptr<transaction::TransactionLayer> transactions;
};

namespace {

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

}  // namespace

Server::Server(Config config) : config_(std::move(config)) {}

Server::~Server() { stop(); }

Status Server::start() {
  transport::TransportConfig tc;
  std::vector<std::string> addresses;
  for (const auto& l : config_.listeners) {
    auto addr = transport::Address::parse(l.address, l.port);
    if (!addr.isOk()) return invalidArgument(l.toString() + ": " + addr.status().message());
    tc.listeners.push_back({l.protocol, *addr});
    addresses.push_back(l.address);
  }

  tc.tls.certificate_file = config_.tls.certificate;
  tc.tls.private_key_file = config_.tls.private_key;
  tc.tls.ca_file = config_.tls.ca_file;
  tc.tls.verify = toTransportVerify(config_.tls.verify);
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
  tc.limits.max_message_bytes = config_.limits.max_message_bytes;
  tc.limits.max_headers = config_.limits.max_headers;
  tc.limits.max_line_bytes = config_.limits.max_line_bytes;

  transaction::LayerConfig lc;
  lc.timers.t1 = milliseconds(config_.timers.t1_ms);
  lc.timers.t2 = milliseconds(config_.timers.t2_ms);
  lc.timers.t4 = milliseconds(config_.timers.t4_ms);

  identity_ = std::make_unique<Identity>(config_.domains, addresses);
  loops_ = std::make_unique<transport::LoopPool>(config_.effectiveWorkers());
  // The handler runs on the loop that owns the message's Call-ID; that loop's transaction
  // layer takes it from there. per_loop_ is complete before start() lets any message in.
  transport_ = std::make_unique<transport::TransportLayer>(
      *loops_, std::move(tc), [this](transport::ReceivedMessage msg) {
        transport::EventLoop* loop = transport::EventLoop::current();
        SIPWAKE_CHECK(loop != nullptr && loop->index() < per_loop_.size());
        per_loop_[loop->index()]->transactions->receive(std::move(msg));
      });
  for (std::size_t i = 0; i < loops_->size(); ++i) {
    auto pl = std::make_unique<PerLoop>();
    pl->core = std::make_unique<CoreHandler>(*identity_);
    pl->transactions = std::make_unique<transaction::TransactionLayer>(loops_->at(i).timers(),
                                                                       *transport_, *pl->core, lc);
    pl->core->attach(*pl->transactions);
    per_loop_.push_back(std::move(pl));
  }

  loops_->start();
  loops_running_ = true;
  if (Status s = transport_->start(); !s) {
    stop();
    return s;
  }
  SW_LOG_INFO("sipwake {}: {} worker loop(s)", versionString(), loops_->size());
  for (const auto& l : config_.listeners) SW_LOG_INFO("listening on {}", l.toString());
  return Status::ok();
}

void Server::stop() {
  if (transport_) transport_->stop();
  if (loops_ && loops_running_) {
    loops_->stop();
    loops_running_ = false;
  }
  // Loops are stopped: the per-loop objects can go (their timers are never touched again).
  per_loop_.clear();
  transport_.reset();
  loops_.reset();
  identity_.reset();
  ephemeral_cert_.reset();
}

}  // namespace sipwake::server
