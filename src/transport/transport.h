// The seam between the SIP layers and the network. The real implementation (TransportLayer,
// transport_layer.h) runs UDP/TCP/TLS listeners on the event loops; tests use a fake.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "common/clock.h"
#include "common/status.h"
#include "sip/message.h"

namespace sipwake::transport {

enum class Protocol : std::uint8_t { kUdp, kTcp, kTls };
std::string_view protocolName(Protocol p);                 // "UDP", "TCP", "TLS" (as in Via)
Result<Protocol> protocolFromName(std::string_view name);  // case-insensitive

// An IPv4 or IPv6 address with a port. Value type; comparable and hashable.
struct Address {
  std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4 bytes
  bool v6 = false;
  std::uint16_t port = 0;

  static Result<Address> parse(std::string_view ip, std::uint16_t port);  // ip without brackets
  // "127.0.0.1:5060" / "[::1]:5060" (also accepts "[::1]" + default port via parseHostPort)
  static Result<Address> parseHostPort(std::string_view host_port, std::uint16_t default_port);
  std::string ip() const;          // "127.0.0.1" / "::1" (no brackets)
  std::string hostForUri() const;  // "127.0.0.1" / "[::1]"
  std::string toString() const;    // "127.0.0.1:5060" / "[::1]:5060"
  bool operator==(const Address&) const = default;
};
struct AddressHash {
  std::size_t operator()(const Address& a) const noexcept;
};

// Identifies one TCP/TLS connection for its whole life (never reused). 0 = no connection (UDP).
using FlowId = std::uint64_t;

// A message taken off the wire, with where it came from.
struct ReceivedMessage {
  sip::Message message;
  Protocol protocol = Protocol::kUdp;
  Address remote;   // source address:port of the packet / connection
  Address local;    // the listener's address
  FlowId flow = 0;  // the connection it arrived on (TCP/TLS), 0 for UDP
  TimePoint received_at{};
};

struct SendTarget {
  Protocol protocol = Protocol::kUdp;
  Address remote;
  FlowId flow = 0;              // TCP/TLS: use this connection if it is still open
  std::string tls_server_name;  // SNI / certificate name check for new TLS connections
};

// Thread-safe: send() may be called from any event loop.
class Transport {
 public:
  virtual ~Transport() = default;
  // Sends one serialized message. For TCP/TLS: the connection `flow` if still open, else any
  // open connection to `remote` on that protocol, else a new connection. `on_done` (optional)
  // reports the outcome (ok, or the transport error of RFC 3261 §8.1.3.1 / §18.4); it runs on
  // the event loop that called send().
  virtual void send(const SendTarget& target, std::string bytes,
                    std::function<void(Status)> on_done = {}) = 0;
  // Like send(), but a successful completion also names the TCP/TLS connection the bytes were
  // written to (0 for UDP), so the caller can react when that flow closes (§8.1.3.1, §18.4).
  // The default serves transports that always use target.flow.
  using FlowCompletion = std::function<void(Status, FlowId)>;
  virtual void sendOnFlow(const SendTarget& target, std::string bytes, FlowCompletion on_done) {
    send(target, std::move(bytes), [done = std::move(on_done), flow = target.flow](Status s) {
      FlowId used = s.isOk() ? flow : 0;
      done(std::move(s), used);
    });
  }
  // The address to put in our Via / Record-Route for this protocol (the listener's address).
  virtual Result<Address> localAddressFor(Protocol protocol, bool v6) const = 0;

  // INVITE server transaction affinity. A transport with several loops hands a request to the
  // loop that received it; an INVITE's CANCEL, ACK or retransmission normally arrives the same
  // way (same UDP 4-tuple, same connection), but when it does not (a new connection, a changed
  // source port) it must still reach the loop holding the INVITE. The transaction layer pins
  // each RFC 3261 INVITE server transaction (key: inviteAffinityKey) while it lives. Callable
  // from any loop. Default: nothing to do (one loop).
  virtual void pinInvite(std::string_view /*key*/) {}
  virtual void unpinInvite(std::string_view /*key*/) {}
};

// branch + sent-by of a request's top Via, the §17.2.3 match without the method.
inline std::string inviteAffinityKey(const sip::Via& via) {
  std::string k;
  k.reserve(via.branch().size() + via.host.size() + 8);
  k.append(via.branch());
  k.push_back('\n');
  k.append(via.host);
  k.push_back(':');
  k.append(std::to_string(via.port));
  return k;
}

}  // namespace sipwake::transport
