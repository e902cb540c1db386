// The core transaction user: what sipwake does with a request once the transaction layer has
// matched it. Every REGISTER goes to the registrar (when one is attached); otherwise the UAS
// behaviour of RFC 3261 §8.2 for requests addressed to the server itself (Identity::isForServer:
// OPTIONS → 200, other methods → 405/501, unsupported Require → 420); everything else goes to the
// proxy core (404 when none is attached).
//
// Thread: one CoreHandler per event loop, used only on that loop (like its TransactionLayer).
// The Identity it reads is immutable and shared by all loops.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/stats.h"
#include "sip/message.h"
#include "transaction/transaction_layer.h"

namespace sipwake::registrar {
class Registrar;
}  // namespace sipwake::registrar
namespace sipwake::routing {
class Proxy;
}  // namespace sipwake::routing

namespace sipwake::server {

// Which Request-URIs mean "this server". Immutable after construction; thread-safe to read.
class Identity {
 public:
  // `domains`: host names / IP literals (any case; IPv6 with or without brackets).
  // `addresses`: listener IP literals; wildcard ones (0.0.0.0, ::) are expanded to the
  // addresses of the local interfaces. `ports`: the listeners' ports (all transports).
  Identity(const std::vector<std::string>& domains, const std::vector<std::string>& addresses,
           std::vector<std::uint16_t> ports);

  // True if `host` (as in a URI: IPv6 with brackets) names this server.
  bool isLocalHost(std::string_view host) const;
  // True if `uri` reaches one of our listeners: a sip/sips URI whose host is ours and whose port
  // is one of ours. Without a port, one of our domain names is us (RFC 3263 finds the port), an
  // IP literal has the default port of its transport (5060, or 5061 for sips: and
  // transport=tls). A UA on our host at another port is not us.
  bool isSelfUri(const sip::Uri& uri) const;
  // True if the request is addressed to the server itself rather than to a user, a UA sharing
  // our host or another domain: a Request-URI without user part that isSelfUri() (RFC 3261 §11
  // OPTIONS "sip:example.com", REGISTER's "sip:registrar-domain"), and no Route value that is not
  // ours (§16.4: none remains once our own are removed). Everything else is the proxy's: an
  // in-dialog request to "sip:127.0.0.1:16080" with our Record-Route as Route is loose-routed.
  bool isForServer(const sip::Message& request) const;

 private:
  std::vector<std::string> names_;    // lower case; IP literals in canonical inet_ntop form
  std::vector<std::uint16_t> ports_;  // sorted
};

class CoreHandler final : public transaction::TransactionUser {
 public:
  // `identity` must outlive the handler. attach() must be called before any message arrives.
  // `server_header`: the Server header of our responses ("" = none).
  explicit CoreHandler(const Identity& identity,
                       std::string server_header = std::string(serverHeader()));

  // The layer this handler is the TU of (for fresh To-tags and stateless responses).
  void attach(transaction::TransactionLayer& layer) { layer_ = &layer; }
  // The registrar of this loop, which gets every REGISTER; nullptr (the default): REGISTER is 405.
  // It must outlive the handler's use (same loop, same lifetime).
  void setRegistrar(registrar::Registrar* registrar) { registrar_ = registrar; }
  // The proxy core of this loop: gets every request for a user or another domain, and the ACKs
  // and responses no transaction matched. nullptr (the default): such requests get 404.
  void setProxy(routing::Proxy* proxy) { proxy_ = proxy; }

  // Draining (SIGTERM): from now on, requests outside a dialog (INVITE, REGISTER, OPTIONS, ...,
  // no To-tag) get 503 Service Unavailable with Retry-After: kDrainingRetryAfterS; requests inside
  // a dialog go on as before. Call on this handler's loop.
  void startDraining() { draining_ = true; }
  static constexpr int kDrainingRetryAfterS = 5;

  void onRequest(transaction::ServerTransaction& tx, transport::ReceivedMessage&& request) override;
  void onAck(transport::ReceivedMessage&& ack) override;
  void onStrayResponse(transport::ReceivedMessage&& response) override;
  void onCancel(transaction::ServerTransaction& invite_tx,
                transport::ReceivedMessage&& cancel) override;
  void onTransportError(transaction::ServerTransaction& tx, const Status& error) override;

  // Header values we advertise, exposed for tests.
  static std::string_view allowHeader();      // methods we implement
  static std::string_view supportedHeader();  // option tags we implement
  static std::string_view serverHeader();     // the default: "sipwake/<version>"

 private:
  // Builds and sends a response on `tx` with our Server header and (for non-100) a To-tag.
  void respond(transaction::ServerTransaction& tx, const sip::Message& request, int code,
               std::string_view reason,
               const std::vector<std::pair<std::string_view, std::string>>& extra = {});
  void handleForServer(transaction::ServerTransaction& tx, const sip::Message& request);

  const Identity& identity_;
  const std::string server_header_;
  transaction::TransactionLayer* layer_ = nullptr;
  registrar::Registrar* registrar_ = nullptr;
  routing::Proxy* proxy_ = nullptr;
  bool draining_ = false;
  Counter& options_answered_;
  Counter& method_not_allowed_;
  Counter& not_implemented_;
  Counter& bad_extension_;
  Counter& not_found_;
  Counter& too_many_hops_;
  Counter& unsupported_scheme_;
  Counter& acks_absorbed_;
  Counter& stray_responses_;
  Counter& refused_draining_;
};

}  // namespace sipwake::server
