// Http2PushSender: the real PushSender. APNs (token auth with a .p8 key, or a TLS client
// certificate), FCM HTTP v1 (service account → OAuth2 access token) and the generic webhook, all
// over HTTP/2 + TLS with Http2Client (one long-lived multiplexed connection per endpoint and
// credentials, bounded queue, reconnect with backoff, peer verification always on). Webhooks
// may also be HTTP/1.1-only servers (ALPN fallback, keep-alive, one request at a time).
//
// Thread: send() may be called from any thread. All sender state (token caches, clients) lives on
// the EventLoop given to create(); `done` runs on that loop (or inline on the caller's thread when
// the push fails before anything is sent, e.g. no app configured).
// Ownership: the sender must be destroyed while its loop is still running (or after the loop was
// stopped for good); pushes still in flight then complete with kTransient "push sender shut down".
// Secrets (keys, JWTs, access tokens, webhook secrets) are never logged; device tokens only
// through redactToken().
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "push/sender.h"
#include "push/token_cache.h"

namespace sipwake::transport {
class EventLoop;
}

namespace sipwake::push {

// How the deployment reaches a push service for one app.
enum class PushService : std::uint8_t { kApns, kFcm, kWebhook };
std::string_view pushServiceName(PushService s);  // "apns", "fcm", "webhook"

struct PushAppConfig {
  PushService provider = PushService::kApns;
  // APNs: the bundle id (matched against PushBinding::app_id). FCM: the Firebase project id
  // (matched against the binding's project_id, else app_id: the name an ABTO / legacy client
  // sends). Webhook: a name matched against PushBinding::appKey().
  // "*": APNs (token auth only) serves any bundle id, as its topic, of a binding whose team id is
  // team_id or unknown; FCM serves any binding whose project id is the service account's
  // project_id or unknown (the service account must name its project).
  // FCM sends to the binding's project id, else the service account's project_id, else `id`.
  std::string id;

  // APNs token auth (preferred): the .p8 file, its 10-character key id and the team id.
  std::string key_file;
  std::string key_id;
  std::string team_id;
  // APNs certificate auth (when key_file is empty): PEM client certificate chain and its key
  // (cert_key_file empty = the key is in cert_file).
  std::string cert_file;
  std::string cert_key_file;
  // APNs: send calls as PushKit VoIP pushes when the binding has a VoIP token (set false for an
  // app that uses alert pushes for calls).
  bool use_voip = true;

  // FCM: the Google service-account JSON (client_email, private_key, token_uri).
  std::string service_account_file;

  // Webhook: https URL of the operator's push service: HTTP/2 (h2) when the server offers it,
  // else HTTP/1.1 with keep-alive, over TLS either way.
  std::string url;
  // Webhook: optional file holding a bearer secret ("authorization: Bearer <secret>").
  std::string secret_file;

  // "https://host[:port]" replacing the provider's endpoint (APNs: both environments). The FCM
  // token endpoint stays the service account's token_uri.
  std::string endpoint;
  // PEM CA bundle used to verify every endpoint of this app (token_uri included); empty = system.
  std::string ca_file;
  // How long a call rings: APNs apns-expiration of call pushes, FCM android.ttl.
  std::chrono::seconds ring_time{30};
  // Per-request deadline (queueing included).
  std::chrono::milliseconds request_timeout{10'000};
  std::size_t max_queued = 1000;  // per connection
};

class Http2PushSender final : public PushSender {
 public:
  // Validates every app at once: readable files, parsable keys (P-256 .p8, RSA service account),
  // required fields, endpoint URLs, the TLS set-up (CA / client certificate). The error names the
  // app and the offending file or field; key material never appears in it.
  // REQUIRES: `loop` is running (or will be) and outlives the sender; `clock` (nullptr = system
  // clock) outlives the sender.
  static Result<std::unique_ptr<Http2PushSender>> create(std::vector<PushAppConfig> apps,
                                                         transport::EventLoop& loop,
                                                         const PushClock* clock = nullptr);
  ~Http2PushSender() override;
  Http2PushSender(const Http2PushSender&) = delete;
  Http2PushSender& operator=(const Http2PushSender&) = delete;

  // See PushSender. Picks the app by the binding's provider + app/bundle/project id, then a "*"
  // app (PushAppConfig::id); none → kPermanent "no push app configured for <provider> <id>".
  // Each attempt stamps CallEvent::sent_at_ms with the clock's unixMillis() as the request is
  // handed to the connection (a caller's retry is a new attempt). APNs 403 ExpiredProviderToken and
  // FCM 401 renew the auth token and retry once; other failures are reported, not retried. A
  // failed OAuth2 token fetch backs off (1 s doubling to 5 min): FCM sends meanwhile fail fast
  // with kTransient "oauth_token" and retry_after = the time left.
  void send(const PushTarget& target, const CallEvent& event, PushKind kind, Done done) override;
  bool serves(const PushBinding& binding) const override;

  class Impl;

 private:
  explicit Http2PushSender(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace sipwake::push
