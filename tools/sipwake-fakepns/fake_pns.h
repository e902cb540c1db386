// The strict fake push service behind sipwake-fakepns: APNs provider API, FCM HTTP v1, the
// OAuth2 token endpoint and sipwake's generic webhook (docs/push.md#webhook) on one HTTP/2 (or
// HTTP/1.1) server, plus a line-JSON control port (tools/README.md).
//
// Thread: everything (HTTP/2 handler, control connections, timers) runs on one EventLoop, so the
// state below needs no locks.
#pragma once

#include <asio.hpp>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "http2/server.h"
#include "push/jwt.h"

namespace sipwake::transport {
class EventLoop;
}

namespace sipwake::tools {

struct ApnsKey {
  std::string key_id;
  std::string team_id;
  push::Key public_key;
};

struct FakePnsConfig {
  std::vector<ApnsKey> apns_keys;
  std::set<std::string> apns_topics;  // allowed bundle ids (".voip" etc. are derived)
  std::vector<push::ServiceAccount> service_accounts;
  std::set<std::string> fcm_projects;     // extra known projects (the accounts' are known anyway)
  std::string webhook_path = "/webhook";  // POSTs here are checked as sipwake webhook bodies
  std::string webhook_secret;             // non-empty: "authorization: Bearer <secret>" required
  http2::AlpnProtocols protocols = http2::AlpnProtocols::kH2;
  // Delivery faults, as the real services show them: a share of the accepted pushes is lost
  // (answered 200, never delivered to the token's subscribers), and each delivery is late by a
  // uniform random delay in [delay_min_ms, delay_max_ms].
  double lose_share = 0.0;
  int delay_min_ms = 0;
  int delay_max_ms = 0;
};

class ControlConnection;

class FakePns {
 public:
  FakePns(transport::EventLoop& loop, FakePnsConfig config);
  ~FakePns();

  // Binds both ports (port 0 = any). `cert_file`/`key_file`: the HTTP/2 server's TLS identity.
  Status start(const std::string& host, std::uint16_t port, const std::string& cert_file,
               const std::string& key_file, const std::string& control_host,
               std::uint16_t control_port);
  std::uint16_t port() const { return server_ ? server_->port() : 0; }
  std::uint16_t controlPort() const { return control_port_; }
  void stop();

  // For the control connections (on the loop).
  nlohmann::json handleControl(const nlohmann::json& op,
                               const std::shared_ptr<ControlConnection>& from);
  void dropSubscriber(ControlConnection* conn);

 private:
  // CLOCK_MONOTONIC (steady_clock) ns when the request being handled was complete in the fake,
  // before any check: sent with each control-port push event as "rx_mono_ns", so a client on
  // the same machine can time "its request → the push reached the fake" without the fake's
  // JWT/payload checks and its control-port write.
  std::int64_t current_rx_ns_ = 0;
  struct Verdict {
    int status = 200;
    std::string reason;  // APNs reason or FCM errorCode/rpc status
  };
  void onRequest(const http2::Request& req, http2::Responder responder);
  void handleApns(const http2::Request& req, const http2::Responder& responder, std::string token);
  void checkApnsRequest(const http2::Request& req, const http2::Responder& responder,
                        std::string token, const std::string& reply_id, const std::string& jwt);
  void handleFcm(const http2::Request& req, const http2::Responder& responder, std::string project);
  void handleToken(const http2::Request& req, const http2::Responder& responder);
  void handleWebhook(const http2::Request& req, const http2::Responder& responder);
  // Pops the next scripted step for `key` (a device token, or kTokenEndpointScript).
  std::optional<nlohmann::json> nextScriptStep(const std::string& key);

  void apnsError(const http2::Responder& r, const std::string& apns_id, int status,
                 const std::string& reason, const std::string& token);
  void fcmError(const http2::Responder& r, int status, const std::string& rpc_status,
                const std::string& message, const std::string& error_code,
                const std::string& token);
  void reject(const std::string& provider, const std::string& reason, const std::string& token);
  // Tells the token's subscribers about a push ("event":"push"); `scripted_status` != 0: a
  // scripted failure the script step asked to record ("record": true), sent as "event":"refused"
  // with that status.
  void notify(const std::string& provider, const std::string& token, const nlohmann::json& headers,
              const nlohmann::json& payload, int scripted_status = 0,
              const std::string& key_id = {});
  void acceptControl();
  // Sends `ev` to the token's subscribers (now, or after the configured delivery delay).
  void deliver(const std::string& token, const nlohmann::json& ev);
  // An accepted push is lost: the "lose" op's count for the token first, then lose_share.
  bool loseThisPush(const std::string& token);

  transport::EventLoop& loop_;
  FakePnsConfig config_;
  std::unique_ptr<http2::Http2Server> server_;
  asio::ip::tcp::acceptor control_;
  std::uint16_t control_port_ = 0;
  std::vector<std::shared_ptr<ControlConnection>> control_conns_;

  struct ConnAuth {  // APNs: provider token in use on one connection
    std::string token;
    std::int64_t since_unix = 0;
    std::int64_t iat = 0;
  };
  std::map<std::uint64_t, ConnAuth> apns_conn_auth_;
  struct AccessToken {
    std::string project;
    std::int64_t expires_unix = 0;
  };
  std::map<std::string, AccessToken> access_tokens_;
  std::set<std::string> expired_jwts_;  // provider tokens answered with ExpiredProviderToken
  std::map<std::string, std::deque<nlohmann::json>> scripts_;  // device token → responses
  std::multimap<std::string, std::weak_ptr<ControlConnection>> subscribers_;
  std::map<std::string, std::string> token_topic_;  // subscribe "topic": for DeviceTokenNotForTopic
  std::map<std::string, std::string> token_project_;  // subscribe "project": SENDER_ID_MISMATCH
  std::uint64_t accepted_apns_ = 0;
  std::uint64_t accepted_fcm_ = 0;
  std::uint64_t accepted_webhook_ = 0;
  std::uint64_t lost_ = 0;
  std::map<std::string, std::uint64_t> lose_next_;  // "lose" op: token → pushes still to lose
  std::uint64_t tokens_issued_ = 0;
  std::uint64_t token_requests_ = 0;
  std::uint64_t message_seq_ = 0;
  std::map<std::string, std::uint64_t> rejected_;
};

}  // namespace sipwake::tools
