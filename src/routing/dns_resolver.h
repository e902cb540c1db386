// RFC 3263 §4 client-side resolution of SIP URIs whose host is a name, with c-ares driven by the
// asio io_context of one EventLoop (no extra thread).
//
//   port in the URI       -> A (then AAAA) of the host, transport from the URI (UDP; sips: TLS)
//   transport= parameter  -> SRV _sip._udp / _sip._tcp / _sips._tcp, else A/AAAA, default port
//   neither               -> NAPTR (SIP+D2U / SIP+D2T / SIPS+D2T, by order then preference,
//                            only transports in Options::protocols; sips: SIPS+D2T only) -> SRV
//                            -> A/AAAA; no usable NAPTR -> SRV for each transport we have
//                            (sips: _sips._tcp only); no SRV -> A/AAAA, 5060 UDP (sips: 5061 TLS)
// SRV targets: lowest priority first, weighted random within a priority (RFC 2782). The first
// target that resolves to an address is returned (the proxy forwards to one next hop).
// Errors: kNotFound "DNS: no records for <name>" (NXDOMAIN / no usable records);
// kUnavailable "DNS: <why> for <name>" (timeout, SERVFAIL, refused, ...).
// No cache: every resolve() queries (c-ares keeps no answers either). A/AAAA come from DNS
// only (not /etc/hosts).
#pragma once

#include <ares.h>

#include <asio.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "routing/next_hop.h"

namespace sipwake::routing {

class CaresResolver final : public Resolver {
 public:
  struct Options {
    // "ip:port" (or "[v6]:port", port optional) name servers; empty = the system's resolv.conf.
    std::vector<std::string> servers;
    std::chrono::milliseconds timeout{2000};  // per try (c-ares doubles it on later tries)
    int tries = 2;
    // Transports we can send on (listeners); NAPTR/SRV candidates for others are skipped.
    std::vector<transport::Protocol> protocols = {
        transport::Protocol::kUdp, transport::Protocol::kTcp, transport::Protocol::kTls};
  };

  // InvalidArgument for a bad server list, Internal if c-ares cannot be initialised.
  // Thread: construct anywhere; afterwards use only on the thread running `io`.
  static Result<std::unique_ptr<CaresResolver>> create(asio::io_context& io, Options options);
  // Cancels every query; their `done` callbacks are dropped WITHOUT running (shutdown only).
  // REQUIRES: on the loop thread, or after the loop has stopped.
  ~CaresResolver() override;
  CaresResolver(const CaresResolver&) = delete;
  CaresResolver& operator=(const CaresResolver&) = delete;

  // See Resolver. `done` runs on the loop thread, possibly inside resolve() (URI errors).
  void resolve(const sip::Uri& uri, Done done) override;

  std::size_t pendingQueries() const { return pending_; }

 private:
  struct Job;
  struct Watch;
  struct QueryCtx;
  using ParseFn = void (*)(CaresResolver&, std::shared_ptr<Job>, int status,
                           const unsigned char* abuf, int alen);
  static void onQuery(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  CaresResolver(asio::io_context& io, Options options);

  // c-ares plumbing.
  static void onSockState(void* data, ares_socket_t fd, int readable, int writable);
  void armRead(const std::shared_ptr<Watch>& w);
  void armWrite(const std::shared_ptr<Watch>& w);
  void process(ares_socket_t read_fd, ares_socket_t write_fd);
  void armTimer();

  // Resolution steps.
  void queryNaptr(std::shared_ptr<Job> job);
  void nextSrvName(std::shared_ptr<Job> job);
  void querySrv(std::shared_ptr<Job> job, std::string name, transport::Protocol protocol);
  void nextAddressTarget(std::shared_ptr<Job> job);
  void queryAddress(std::shared_ptr<Job> job, int family);
  void finish(const std::shared_ptr<Job>& job, Result<transport::SendTarget> result);
  void query(const std::string& name, int type, std::shared_ptr<Job> job, ParseFn parse);
  bool allowed(transport::Protocol p) const;

  asio::io_context& io_;
  Options options_;
  ares_channel channel_ = nullptr;
  asio::steady_timer timer_;
  std::unordered_map<ares_socket_t, std::shared_ptr<Watch>> watches_;
  std::mt19937 rng_;
  std::size_t pending_ = 0;
  bool destroying_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sipwake::routing
