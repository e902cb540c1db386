// TransportLayer: the real Transport. UDP, TCP and TLS listeners (IPv4/IPv6, several per process)
// on the LoopPool's event loops, a connection table (flows), CRLF keep-alive answers, Via
// stamping on receive, and delivery of parsed messages to the loop that owns their transaction.
//
// Threading model (see also event_loop.h):
//  * Every listener socket exists once PER LOOP, bound to the same address with SO_REUSEPORT.
//    The kernel spreads datagrams / new connections over the loops by 4-tuple hash, so every
//    core receives, parses and stamps in parallel without a shared socket or lock. (One socket
//    read by one loop and dispatched would cap the server at one core's recvmsg+parse rate and
//    add a cross-thread hop to every packet.)
//  * A TCP/TLS connection lives on exactly one loop for its whole life; its FlowId carries that
//    loop index in the low 8 bits, so send(flow) finds the owner without any lookup table lock.
//  * A parsed request is handled on the loop that received it: a UAC's retransmissions, CANCEL
//    and ACK come the same way (same 4-tuple or connection). Exceptions, each one post():
//    a response goes to the loop named in its top Via branch (appendBranchCookie); an INVITE,
//    ACK or CANCEL whose INVITE server transaction is pinned on another loop (pinInvite: it
//    came over another connection or source port) goes there; a request without the RFC 3261
//    magic cookie goes to LoopPool::forCallId (RFC 2543 matching uses the Call-ID).
//    Call-ID sharding of every message cost a cross-thread post for half of the traffic of
//    any single source (one SO_REUSEPORT socket receives all of it): 25% more CPU per REGISTER.
//  * The only locks are 16-way sharded mutexes around the (protocol, remote) → FlowId index and
//    the per-source-IP connection counts; they are taken on connection open/close and on a
//    send() that has no live flow, never per received message.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/stats.h"
#include "common/status.h"
#include "common/tls_policy.h"
#include "sip/message.h"
#include "transport/event_loop.h"
#include "transport/transport.h"

namespace sipwake::transport {

struct ListenerConfig {
  Protocol protocol = Protocol::kUdp;
  Address address;  // port 0 = pick a free port (tests); see TransportLayer::localAddressFor
};

struct TlsConfig {
  std::string certificate_file;  // PEM chain; required when a TLS listener is configured
  std::string private_key_file;  // PEM
  std::string ca_file;           // PEM bundle used to verify peers (empty: system default paths)
  // kNone: no peer verification at all (server doesn't ask for client certs; client accepts any
  //        server cert). kPeer: server asks for and verifies a client cert if one is sent; client
  //        verifies the server cert and name. kRequire: like kPeer but a client MUST present a
  //        cert.
  enum class Verify : std::uint8_t { kNone, kPeer, kRequire };
  Verify verify = Verify::kPeer;
  // TLS 1.2 cipher list (OpenSSL syntax) for listeners and outgoing connections.
  std::string ciphers = kDefaultTls12Ciphers;
};

struct TransportConfig {
  std::vector<ListenerConfig> listeners;
  TlsConfig tls;
  // A connection with no bytes in either direction for this long is closed. 300 s is above the
  // RFC 5626 §4.4.1 recommended keep-alive interval for TCP (95-120 s), so a phone sending
  // CRLF keep-alives keeps its flow; dead connections still go away within minutes.
  Duration idle_timeout = seconds(300);
  Duration connect_timeout = seconds(10);   // TCP connect + TLS handshake (both directions)
  std::size_t max_connections_per_ip = 64;  // inbound connections per source IP
  std::size_t max_connections = 65536;      // all connections, inbound + outbound
  // A stream connection that holds part of a message for this long without completing it is
  // closed, however slowly bytes keep coming (slowloris). Zero: no deadline.
  Duration message_timeout = seconds(20);
  // Inbound TLS handshakes in progress at once, in total and per source IP (~70 kB each until
  // done); a new TLS connection beyond either is closed at once. Zero: no cap.
  std::size_t max_tls_handshakes = 512;
  std::size_t max_tls_handshakes_per_ip = 16;
  // An accept(2) that fails for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) is retried
  // after this delay, doubling up to accept_backoff_max; the failures are logged once per
  // accept_log_interval.
  Duration accept_backoff = milliseconds(10);
  Duration accept_backoff_max = seconds(1);
  Duration accept_log_interval = seconds(10);
  // Bytes queued on one connection but not yet written; beyond this the peer is not reading and
  // the connection is closed (every queued send reports kUnavailable).
  std::size_t max_write_queue_bytes = 4u << 20;
  sip::ParseLimits limits;
  // How the kernel picks the loop of a UDP datagram when there are several (reuseport_steer.h).
  // Responses always go to the loop named in their branch. Requests: kAffinity, the kernel's
  // 4-tuple hash (one source, one loop: fewest wake-ups per message); kSpread, a hash of the
  // Call-ID (a single busy source uses every loop); kAdaptive, affinity until the UDP rate
  // passes spread_above datagrams/s, back below spread_below (checked every second).
  enum class UdpSteering { kAdaptive, kAffinity, kSpread };
  // SO_RCVBUF asked for each UDP socket (the kernel caps it at net.core.rmem_max). The default
  // 208 KiB holds ~400 REGISTERs: at 6400 REGISTER/s a 30 ms hiccup of one loop dropped
  // datagrams and sipp's 500 ms retransmission became the p99.
  int udp_receive_buffer = 4 << 20;
  UdpSteering udp_steering = UdpSteering::kAdaptive;
  std::uint64_t spread_above = 6000;
  std::uint64_t spread_below = 3000;
};

// Called with every message received (requests with the top Via already stamped), on the loop
// the transport picked for it (see dispatch above).
using MessageHandler = std::function<void(ReceivedMessage msg)>;

namespace detail {
class Connection;
struct UdpEndpoint;
struct Acceptor;
struct LoopState;
struct TlsContexts;
}  // namespace detail

class TransportLayer final : public Transport {
 public:
  // `loops` must outlive this object. The handler is shared by all loops (must be callable
  // concurrently from different loops).
  TransportLayer(LoopPool& loops, TransportConfig config, MessageHandler handler);
  // Calls stop().
  ~TransportLayer() override;
  TransportLayer(const TransportLayer&) = delete;
  TransportLayer& operator=(const TransportLayer&) = delete;

  // Opens and binds every listener (errors are returned here, e.g. address in use or a bad TLS
  // certificate), then starts receiving on the loops. The loops may be started before or after.
  // REQUIRES: called once, not from a loop thread.
  Status start();
  // Closes listeners and connections on their loops and waits for that. Idempotent.
  // REQUIRES: not called from a loop thread. After stop(), send() reports kUnavailable.
  // Nothing may call send() once the object is destroyed while the loops still run.
  void stop();
  // Draining: closes the TCP/TLS listening sockets (new connections are refused by the kernel);
  // UDP sockets and open connections go on (transactions in progress still need them). Posted
  // to the loops; returns at once. Thread: any.
  void stopAccepting();

  void send(const SendTarget& target, std::string bytes,
            std::function<void(Status)> on_done = {}) override;
  // A successful completion names the connection written to (0 for UDP).
  void sendOnFlow(const SendTarget& target, std::string bytes, FlowCompletion on_done) override;
  // Called when a TCP/TLS connection closes for any reason (peer close, reset, read or write
  // error, idle or connect timeout, write queue overflow), once on EVERY loop (posted), with
  // the flow and why; not while stop() runs. Transaction layers live per loop and any of them
  // may have written on the flow. REQUIRES: set before start(); callable concurrently.
  using FlowClosedHandler = std::function<void(FlowId flow, const Status& why)>;
  void setFlowClosedHandler(FlowClosedHandler handler);
  // The bound address of the first listener of that protocol and family (the real port when
  // configured with port 0). An unspecified address (0.0.0.0 / ::) is returned as bound; the
  // server substitutes its advertised address for Via/Record-Route.
  Result<Address> localAddressFor(Protocol protocol, bool v6) const override;
  void pinInvite(std::string_view key) override;
  void unpinInvite(std::string_view key) override;

  // TLS reload in two steps, so that a caller can check everything before changing anything:
  // prepareTls() reads the certificate, key and CA files `tls` names (an error names the file),
  // swapTls() makes them the contexts of every later TLS handshake, inbound (listeners) and
  // outbound; connections already made keep theirs. Thread: any (swapTls is a pointer swap).
  // The listeners' set is fixed at start(): prepareTls builds a server context iff there is a
  // TLS listener. REQUIRES (swapTls): `next` came from prepareTls.
  Result<std::shared_ptr<detail::TlsContexts>> prepareTls(const TlsConfig& tls) const;
  void swapTls(std::shared_ptr<detail::TlsContexts> next);

  // Number of open TCP/TLS connections (inbound + outbound, including ones still connecting).
  std::size_t connectionCount() const { return total_connections_.load(); }

  // RFC 3261 §18.1.1: a request within 200 bytes of the path MTU (1500 assumed, i.e. larger than
  // 1300 bytes) MUST go over a congestion-controlled transport. The transaction layer asks this
  // before picking UDP; send() itself still sends large UDP datagrams (and counts them).
  static constexpr std::size_t kUdpMtuLimit = 1300;
  static bool requestNeedsCongestionControlledTransport(std::size_t bytes) {
    return bytes > kUdpMtuLimit;
  }

 private:
  friend class detail::Connection;
  friend struct detail::UdpEndpoint;
  friend struct detail::Acceptor;

  struct Counters;
  struct Listener {
    Protocol protocol;
    Address configured;
    Address bound;
  };
  struct RemoteKey {
    Protocol protocol;
    Address address;
    bool operator==(const RemoteKey&) const = default;
  };
  struct RemoteKeyHash {
    std::size_t operator()(const RemoteKey& k) const noexcept {
      return AddressHash()(k.address) * 31 + static_cast<std::size_t>(k.protocol);
    }
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<RemoteKey, FlowId, RemoteKeyHash> by_remote;
    std::unordered_map<Address, std::uint32_t, AddressHash> inbound_per_ip;     // port = 0
    std::unordered_map<Address, std::uint32_t, AddressHash> handshakes_per_ip;  // port = 0
  };
  static constexpr std::size_t kShards = 16;
  using Completion = FlowCompletion;

  Status openListener(std::size_t listener_index);
  bool wantsTlsServer() const;
  std::shared_ptr<detail::TlsContexts> currentTls() const;
  void onParsed(EventLoop& loop, sip::ParseOutcome outcome, Protocol protocol,
                const Address& remote, const Address& local, FlowId flow);
  void dispatch(ReceivedMessage msg);
  EventLoop& ownerOf(const ReceivedMessage& msg);
  // UDP steering (reuseport_steer.h); loop 0 only once started.
  void applySteering(bool spread);
  void steeringTick();
  void sendUdp(EventLoop& loop, const SendTarget& target, std::string bytes, Completion done,
               EventLoop* origin);
  void sendStreamOnLoop(EventLoop& loop, SendTarget target, FlowId flow, std::string bytes,
                        Completion done, EventLoop* origin, bool retried);
  FlowId lookupRemote(Protocol protocol, const Address& remote);
  FlowId newFlowId(std::size_t loop_index);
  // Connection table maintenance; called on the connection's loop.
  bool admitInbound(const Address& remote);    // per-IP and total caps; counts on success
  void releaseInbound(const Address& remote);  // undoes admitInbound
  // TLS handshake caps (total and per IP); counts on success. endHandshake undoes it once.
  bool admitHandshake(const Address& remote);
  void endHandshake(const Address& remote);
  // An accept(2) failed: counted, logged at most once per accept_log_interval. Returns the delay
  // before the acceptor may try again (zero for errors that do not mean "out of resources").
  Duration onAcceptError(const std::error_code& ec, Protocol protocol, Duration previous_backoff);
  // After a burst of closed connections, free heap goes back to the kernel (a second later, on
  // loop `loop_index`, the loop of the connection just closed).
  void maybeReleaseMemory(std::size_t loop_index);
  void registerConnection(const std::shared_ptr<detail::Connection>& conn);
  void unregisterConnection(detail::Connection& conn);
  static void complete(Completion& done, EventLoop* origin, Status status, bool may_run_inline,
                       FlowId flow = 0);
  void notifyFlowClosed(FlowId flow, const Status& why);

  LoopPool& loops_;
  TransportConfig config_;
  std::shared_ptr<MessageHandler> handler_;
  std::shared_ptr<FlowClosedHandler> flow_closed_;  // null: nobody listens
  std::vector<Listener> listeners_;
  std::vector<std::unique_ptr<detail::LoopState>> states_;  // index = loop index
  mutable std::mutex tls_mu_;
  std::shared_ptr<detail::TlsContexts> tls_;  // guarded by tls_mu_; replaced whole by swapTls
  std::array<Shard, kShards> shards_;
  struct Steering {
    std::vector<int> group_fds;  // one socket of each UDP listener's reuseport group
    bool spreading = false;
    std::uint64_t last_count = 0;
    TimerService::TimerId timer = 0;
  };
  Steering steering_;
  struct PinShard {
    std::mutex mu;
    std::unordered_map<std::string, std::size_t> loop_of;  // inviteAffinityKey -> loop index
  };
  std::array<PinShard, kShards> pins_;
  std::atomic<std::uint64_t> next_flow_seq_{1};
  std::atomic<std::size_t> total_connections_{0};
  std::atomic<std::size_t> tls_handshakes_{0};
  // Connections closed since free memory was last handed back to the kernel (after a burst).
  std::atomic<std::size_t> closed_since_trim_{0};
  std::atomic<bool> trim_pending_{false};
  std::mutex accept_log_mu_;
  TimePoint accept_log_at_{};
  std::uint64_t accept_failures_unlogged_ = 0;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
  std::unique_ptr<Counters> counters_;
};

}  // namespace sipwake::transport
