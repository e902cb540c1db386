#include "server/core_handler.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "registrar/registrar.h"
#include "routing/next_hop.h"
#include "routing/proxy.h"
#include "server/cli.h"
#include "transport/response_routing.h"

namespace sipwake::server {
namespace {

// Methods this server implements as a UAS (CANCEL and ACK are handled with the transactions
// they belong to; REGISTER by the registrar).
constexpr std::string_view kAllow = "OPTIONS, REGISTER, ACK, CANCEL";
// Option tags (RFC 3261 §19.2) we implement: RFC 3327 Path and RFC 5626 outbound (registrar).
constexpr std::string_view kSupported = "path, outbound";
const std::vector<std::string_view> kSupportedTags = {"path", "outbound"};

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Canonical text of an IP literal ("0:0::1" → "::1"), or the lower-cased name otherwise.
std::string canonicalHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string s(host);
  unsigned char buf[16];
  char text[INET6_ADDRSTRLEN];
  if (::inet_pton(AF_INET, s.c_str(), buf) == 1) {
    return ::inet_ntop(AF_INET, buf, text, sizeof text) ? std::string(text) : s;
  }
  if (::inet_pton(AF_INET6, s.c_str(), buf) == 1) {
    return ::inet_ntop(AF_INET6, buf, text, sizeof text) ? std::string(text) : s;
  }
  return lowerAscii(s);
}

void addInterfaceAddresses(int family, std::vector<std::string>& out) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return;
  char text[INET6_ADDRSTRLEN];
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != family) continue;
    const void* a =
        family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr)
            : static_cast<const void*>(
                  &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr);
    if (::inet_ntop(family, a, text, sizeof text)) out.emplace_back(text);
  }
  ::freeifaddrs(list);
}

}  // namespace

Identity::Identity(const std::vector<std::string>& domains,
                   const std::vector<std::string>& addresses, std::vector<std::uint16_t> ports)
    : ports_(std::move(ports)) {
  std::sort(ports_.begin(), ports_.end());
  for (const auto& d : domains) names_.push_back(canonicalHost(d));
  for (const auto& a : addresses) {
    std::string c = canonicalHost(a);
    if (c == "0.0.0.0") {
      addInterfaceAddresses(AF_INET, names_);
    } else if (c == "::") {
      addInterfaceAddresses(AF_INET6, names_);
    } else {
      names_.push_back(c);
    }
  }
  std::sort(names_.begin(), names_.end());
  names_.erase(std::unique(names_.begin(), names_.end()), names_.end());
}

bool Identity::isLocalHost(std::string_view host) const {
  return std::binary_search(names_.begin(), names_.end(), canonicalHost(host));
}

bool Identity::isSelfUri(const sip::Uri& uri) const {
  if (!uri.isSipOrSips() || !isLocalHost(uri.host)) return false;
  const bool ip_literal = sip::isIpv4Address(uri.host) || uri.host.starts_with('[');
  // Our domain name without a port: whichever port RFC 3263 (SRV) finds for it is ours.
  if (!uri.has_port && !ip_literal) return true;
  std::uint16_t port = uri.port;
  if (!uri.has_port) {
    auto protocol = routing::uriProtocol(uri, transport::Protocol::kUdp);
    port = transport::defaultPort(protocol ? *protocol : transport::Protocol::kUdp);
  }
  return std::binary_search(ports_.begin(), ports_.end(), port);
}

bool Identity::isForServer(const sip::Message& request) const {
  const sip::Uri& uri = request.requestUri();
  if (!uri.user.empty() || !isSelfUri(uri)) return false;
  if (request.find(sip::HeaderId::kRoute) == nullptr) return true;
  auto routes = request.routes();
  if (!routes) return false;  // the proxy answers a malformed Route (400)
  return std::all_of(routes->begin(), routes->end(),
                     [this](const sip::NameAddr& r) { return isSelfUri(r.uri); });
}

CoreHandler::CoreHandler(const Identity& identity, std::string server_header)
    : identity_(identity),
      server_header_(std::move(server_header)),
      options_answered_(Stats::global().counter("core.options_answered")),
      method_not_allowed_(Stats::global().counter("core.method_not_allowed")),
      not_implemented_(Stats::global().counter("core.not_implemented")),
      bad_extension_(Stats::global().counter("core.bad_extension")),
      not_found_(Stats::global().counter("core.not_found")),
      too_many_hops_(Stats::global().counter("core.too_many_hops")),
      unsupported_scheme_(Stats::global().counter("core.unsupported_uri_scheme")),
      acks_absorbed_(Stats::global().counter("core.acks_absorbed")),
      stray_responses_(Stats::global().counter("core.stray_responses_dropped")),
      refused_draining_(Stats::global().counter("core.refused_draining")) {}

std::string_view CoreHandler::allowHeader() { return kAllow; }
std::string_view CoreHandler::supportedHeader() { return kSupported; }
std::string_view CoreHandler::serverHeader() {
  static const std::string kServer = "sipwake/" + std::string(versionString());
  return kServer;
}

void CoreHandler::respond(transaction::ServerTransaction& tx, const sip::Message& request, int code,
                          std::string_view reason,
                          const std::vector<std::pair<std::string_view, std::string>>& extra) {
  std::string tag = code > 100 && layer_ != nullptr ? layer_->newTag() : std::string();
  sip::Message response = sip::makeResponseTo(request, code, reason, tag);
  for (const auto& [name, value] : extra) response.appendHeader(name, value);
  if (!server_header_.empty()) response.appendHeader("Server", server_header_);
  if (Status s = tx.respond(std::move(response)); !s) {
    SW_LOG_DEBUG("core: cannot send {} for {} (Call-ID {}): {}", code, request.methodText(),
                 request.callId(), s.toString());
  }
}

void CoreHandler::onRequest(transaction::ServerTransaction& tx,
                            transport::ReceivedMessage&& received) {
  const sip::Message& request = received.message;
  const sip::Uri& uri = request.requestUri();

  // §8.2.2.1: a scheme we do not understand.
  if (!uri.isSipOrSips()) {
    unsupported_scheme_.inc();
    respond(tx, request, 416, "Unsupported URI Scheme");
    return;
  }
  // Stopping: a request that starts something new (no To-tag: not inside a dialog) is sent
  // elsewhere; in-dialog requests (BYE, re-INVITE, ...) still end or change their calls.
  if (draining_ && !(request.to().isOk() && !request.to()->tag().empty())) {
    refused_draining_.inc();
    respond(tx, request, 503, "Service Unavailable - Shutting Down",
            {{"Retry-After", std::to_string(kDrainingRetryAfterS)}});
    return;
  }
  if (request.method() == sip::Method::kRegister && registrar_ != nullptr) {
    registrar_->handle(tx, std::move(received));
    return;
  }
  if (identity_.isForServer(request)) {
    handleForServer(tx, request);
    return;
  }
  if (proxy_ != nullptr && request.method() != sip::Method::kRegister) {
    proxy_->onRequest(tx, std::move(received));
    return;
  }
  // Addressed to a user or another domain with no proxy attached (unit tests of the core alone):
  // nobody is reachable. §16.3 step 3: a request that may not be forwarded any further gets 483
  // first.
  auto max_forwards = request.maxForwards();
  if (max_forwards.isOk() && *max_forwards == 0) {
    too_many_hops_.inc();
    respond(tx, request, 483, "Too Many Hops");
    return;
  }
  not_found_.inc();
  respond(tx, request, 404, "Not Found");
}

void CoreHandler::handleForServer(transaction::ServerTransaction& tx, const sip::Message& request) {
  // §8.2.1 method inspection. An unknown method is 501 (§21.5.2); a method we know but do not
  // implement as a UAS is 405 with Allow.
  if (request.method() == sip::Method::kUnknown) {
    not_implemented_.inc();
    respond(tx, request, 501, "Not Implemented", {{"Allow", std::string(kAllow)}});
    return;
  }
  if (request.method() != sip::Method::kOptions) {
    method_not_allowed_.inc();
    respond(tx, request, 405, "Method Not Allowed", {{"Allow", std::string(kAllow)}});
    return;
  }
  // §8.2.2.3: every option tag in Require must be one we support, else 420 listing the others.
  if (request.find(sip::HeaderId::kRequire) != nullptr) {
    auto tags = request.optionTags(sip::HeaderId::kRequire);
    if (!tags.isOk()) {
      respond(tx, request, 400, "Bad Request: malformed Require");
      return;
    }
    std::string unsupported;
    for (std::string_view t : *tags) {
      bool known = std::any_of(kSupportedTags.begin(), kSupportedTags.end(),
                               [&](std::string_view s) { return lowerAscii(t) == s; });
      if (known) continue;
      if (!unsupported.empty()) unsupported += ", ";
      unsupported += t;
    }
    if (!unsupported.empty()) {
      bad_extension_.inc();
      respond(tx, request, 420, "Bad Extension", {{"Unsupported", unsupported}});
      return;
    }
  }
  // §11.2: OPTIONS answered as a UA would answer it outside a dialog. Max-Forwards 0 is fine:
  // the limit applies to forwarding (§16.3), and an OPTIONS addressed to us is not forwarded.
  options_answered_.inc();
  respond(tx, request, 200, "OK",
          {{"Allow", std::string(kAllow)},
           {"Supported", std::string(kSupported)},
           {"Accept", "application/sdp"}});
}

void CoreHandler::onAck(transport::ReceivedMessage&& ack) {
  if (proxy_ != nullptr) {
    proxy_->onAck(std::move(ack));
    return;
  }
  // An ACK outside a transaction would be for a 2xx to an INVITE; we never send one, so there
  // is nothing to do (and an ACK is never answered).
  acks_absorbed_.inc();
}

void CoreHandler::onStrayResponse(transport::ReceivedMessage&& response) {
  if (proxy_ != nullptr) {
    proxy_->onStrayResponse(std::move(response));
    return;
  }
  // No proxy attached: nothing forwards a stray response, so it is dropped.
  stray_responses_.inc();
  SW_LOG_DEBUG("core: dropping stray {} response (Call-ID {})", response.message.statusCode(),
               response.message.callId());
}

void CoreHandler::onCancel(transaction::ServerTransaction& invite_tx,
                           transport::ReceivedMessage&& /*cancel*/) {
  // Every INVITE gets its final response inside onRequest, so no INVITE of ours is still
  // Proceeding when a CANCEL can match it. Nothing to end.
  SW_LOG_DEBUG("core: CANCEL for INVITE transaction {} in state {}", invite_tx.id(),
               transaction::stateName(invite_tx.state()));
}

void CoreHandler::onTransportError(transaction::ServerTransaction& tx, const Status& error) {
  SW_LOG_DEBUG("core: transport error on transaction {}: {}", tx.id(), error.toString());
}

}  // namespace sipwake::server
