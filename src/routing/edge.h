// Edge mode (docs/edge-mode.md): sipwake is the push front end of another registrar (the upstream
// PBX) for the users of some of its domains. The upstream sees each DEVICE once, for its AOR, with
// one contact of sipwake's own:
//
//   Contact: <sip:edge-<device user>@<sipwake listener host:port>;transport=...>
//
// In mode "own" phones register at sipwake and are authenticated by sipwake, and sipwake registers
// each device upstream itself (below). In mode "relay" (edge_relay.cc) the upstream authenticates:
// a phone's REGISTER is relayed with its own digest answer (registrar::RegisterRelay), the
// upstream's challenge goes back unchanged, and only its 2xx lets the registrar write the binding.
//
// where the device is the push binding (push::PushBinding::deviceKey()) or, for a device that
// registered without push params, its SIP binding (location::bindingKey()). The upstream sees a
// stable expiry (`upstream_expires` asked; a 423 raises it to the Min-Expires) renewed by sipwake
// at half of what the upstream granted in its 200, or `refresh_before` it lapses if that is
// sooner; never because the phone re-registered: a phone's refreshes and REGISTER retries cause
// no upstream REGISTER. REGISTERs wait in a queue drained at `upstream_rate` per second (a burst
// of one second's worth), so a start-up or a recovery does not send thousands in one tick.
//
// Credentials: the upstream trusts sipwake by its address, or challenges (401/407) each REGISTER
// and sipwake answers from its own user store (Deps::users): the HA1 of the device's AOR for
// realm = its domain, MD5 or SHA-256, qop auth or none; same Call-ID, CSeq + 1, a fresh cnonce.
// The challenge is kept per device and answers its later REGISTERs (nc + 1 each) until the
// upstream challenges again (e.g. stale=true), which is answered once more. A challenge to the
// answer itself is a failure (logged with the AOR, edge.upstream_auth_failed), retried after
// `retry_after_failure` like any failure; so is a challenge sipwake has no credentials for
// (logged once per device).
//
// Upstream state: a REGISTER that gets no answer (timeout, transport error, no address) or a 503
// marks the upstream unreachable (logged once, counted in edge.upstream_unreachable); while it is,
// devices wait and one REGISTER probes it every `retry_after_failure`. The first answer marks it
// back (logged once, edge.upstream_back) and every device is registered again, paced, since the
// upstream may have lost its bindings (a restarted registrar with an in-memory location table).
// Phones keep registering at sipwake meanwhile (own mode: sipwake is their registrar).
// The phone's background un-REGISTER that keeps its push binding keeps the upstream binding; the
// device's removal (push binding gone: opt-out REGISTER without push params, dead token, TTL;
// SIP binding gone for a device without push) un-REGISTERs it upstream (Expires: 0) at the next
// reconcile tick.
//
// Requests the upstream sends to that contact are mapped back to the device's AOR by the proxy
// (EdgeRouting::aorForContactUser) and take the whole wake path of a call to that AOR. Requests of
// our users for users of the edge domains that are not registered here go to the upstream
// (EdgeRouting::upstreamRoute).
//
// State: in memory, per device (its upstream Call-ID, From-tag, CSeq, last success). At start-up
// it is rebuilt from the push binding store (every live push binding of an edge domain is
// registered upstream again: a restart needs no phone to act). Devices without push params are
// registered again upstream at their next REGISTER.
//
// Thread: EdgeUpstream lives on one "home" loop: its TransactionLayer, Resolver and timers are
// that loop's. onRegistered() (any registrar loop) posts to it; aorForContactUser() and
// isEdgeDomain() may be called from any loop (a mutex guards the table).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "auth/digest.h"
#include "common/clock.h"
#include "common/stats.h"
#include "location/location_store.h"
#include "location/location_store.h"
#include "location/user_store.h"
#include "push/sender.h"
#include "registrar/registrar.h"
#include "routing/next_hop.h"
#include "transaction/transaction_layer.h"

namespace sipwake::routing {

// What the proxy asks edge mode. Thread-safe.
class EdgeRouting {
 public:
  virtual ~EdgeRouting() = default;
  // The AOR ("sip:user@domain") of the device whose upstream contact has the user part `user`
  // ("edge-..."); nullopt for any other user part.
  virtual std::optional<std::string> aorForContactUser(std::string_view user) const = 0;
  // True if `host` (lower-case, no port) is a domain fronted for the upstream.
  virtual bool isEdgeDomain(std::string_view host) const = 0;
  // The upstream as a loose Route URI ("sip:pbx:5080;transport=tcp;lr").
  virtual const std::string& upstreamRoute() const = 0;
  // Mode "relay": the upstream authenticates the phones, so their requests go to it unchallenged
  // here, credentials and all.
  virtual bool relaysCredentials() const = 0;
};

struct EdgeConfig {
  std::string upstream_uri;          // outboundProxyUri() form, e.g. "sip:127.0.0.1:5080"
  std::vector<std::string> domains;  // lower case
  std::chrono::seconds upstream_expires{3600};
  std::chrono::seconds refresh_before{1800};
  // After a failed upstream REGISTER (error response, timeout, transport error, challenge).
  // Also the probe interval while the upstream is unreachable.
  std::chrono::seconds retry_after_failure{30};
  // Upstream REGISTERs per second when many are due at once (start-up, upstream back).
  std::uint32_t upstream_rate = 50;
  // How often devices are checked for renewal and removal.
  std::chrono::seconds reconcile_interval{5};
  std::string advertised_host;  // contact host when the listener is bound to 0.0.0.0 / ::
  // Mode "relay" (else "own").
  bool relay = false;
  // Relay: a phone's REGISTER the upstream has not answered within this gets 503 + Retry-After
  // (before the phone's own transaction times out).
  std::chrono::seconds relay_timeout{8};
};

// The contact user part for a device key: "edge-" + the key when it is made of [a-z0-9:] (':'
// becomes '-', e.g. "edge-apns-3f..."), else "edge-h" + 16 hex digits of its FNV-1a hash.
std::string edgeContactUser(std::string_view device_key);

// When a device's upstream registration must be sent again. Pure: the throttle rule.
struct EdgeSchedule {
  std::chrono::seconds refresh_before;
  std::chrono::seconds retry_after_failure;
  // How long after a 2xx granting `granted` it is renewed: half of it, or `refresh_before` it
  // lapses when that is sooner.
  std::chrono::seconds renewAfter(std::chrono::seconds granted) const;
  // `registered_at`: the last 2xx (nullopt: never), which granted `granted`; `failed_at`: the
  // last failure after it.
  bool due(TimePoint now, std::optional<TimePoint> registered_at, std::chrono::seconds granted,
           std::optional<TimePoint> failed_at) const;
};

// The expiry an upstream 2xx to a REGISTER grants the contact whose user part is `user`: its
// contact's expires param, else the Expires header, else `asked`. nullopt when the 2xx lists
// contacts but not that one (the upstream did not keep it).
std::optional<std::chrono::seconds> grantedExpiry(const sip::Message& response,
                                                  std::string_view user,
                                                  std::chrono::seconds asked);

class EdgeUpstream final : public EdgeRouting,
                           public registrar::RegistrationObserver,
                           public registrar::RegisterRelay,
                           public transaction::ClientTransactionUser {
 public:
  using WallClock = std::function<location::SysSeconds()>;
  struct Deps {
    transaction::TransactionLayer* layer = nullptr;  // the home loop's; required
    transport::Transport* transport = nullptr;       // required (local addresses)
    Resolver* resolver = nullptr;                    // the home loop's; nullptr: IP literals only
    location::Executor post;                         // runs a closure on the home loop; required
    const location::LocationStore* push_store = nullptr;  // its push bindings  // required
    const location::LocationStore* locations = nullptr;      // required
    WallClock wall_clock;                                    // empty: system clock
    // Relay: wakes a device to REGISTER again before its upstream binding lapses (RFC 8599
    // §5.5). nullptr: no refresh pushes.
    push::PushSender* sender = nullptr;
    // sipwake's per-user credentials: a 401/407 from the upstream is answered from the HA1 of
    // the device's AOR (realm = its domain). nullptr: no credentials (a challenge fails).
    const location::UserStore* users = nullptr;
  };

  // REQUIRES: config.upstream_uri parses. Constructed anywhere; start() and everything after
  // run on the home loop. Must be destroyed after the home loop stopped.
  EdgeUpstream(EdgeConfig config, Deps deps);
  ~EdgeUpstream() override;
  EdgeUpstream(const EdgeUpstream&) = delete;
  EdgeUpstream& operator=(const EdgeUpstream&) = delete;

  // On the home loop: registers every live push binding of an edge domain upstream and starts
  // the reconcile timer.
  void start();

  // EdgeRouting (any thread).
  std::optional<std::string> aorForContactUser(std::string_view user) const override;
  bool isEdgeDomain(std::string_view host) const override;
  const std::string& upstreamRoute() const override { return route_; }
  bool relaysCredentials() const override { return config_.relay; }

  // RegisterRelay (any thread; mode "relay" only).
  bool relays(std::string_view domain) const override {
    return config_.relay && isEdgeDomain(domain);
  }
  void relay(Request request, std::function<void(Verdict)> done) override;

  // RegistrationObserver (any registrar loop): a binding of `aor` was added or refreshed.
  void onRegistered(std::string_view aor, const location::Binding& binding,
                    const transport::ReceivedMessage& request) override;

  // ClientTransactionUser (home loop).
  void onResponse(transaction::ClientTransaction& tx,
                  transport::ReceivedMessage&& response) override;
  void onTimeout(transaction::ClientTransaction& tx) override;
  void onTransportError(transaction::ClientTransaction& tx, const Status& error) override;

  std::size_t deviceCount() const;
  // False from a REGISTER that got no answer (or a 503) until the next answer. Home loop.
  bool upstreamReachable() const { return reachable_; }

 private:
  struct Device {
    std::string key;   // push device key or SIP binding key
    std::string user;  // edgeContactUser(key)
    std::string aor;
    bool push = false;
    std::string call_id;
    std::string from_tag;
    std::uint32_t cseq = 0;
    std::optional<TimePoint> registered_at;
    std::chrono::seconds asked{0};    // the expiry requested (upstream_expires, or a Min-Expires)
    std::chrono::seconds granted{0};  // the expiry the last 2xx granted
    std::optional<TimePoint> failed_at;
    bool in_flight = false;
    bool queued = false;  // in pending_
    // Relay: the phone's REGISTER the upstream last accepted for it (its source, Call-ID, CSeq).
    std::string relay_source;
    std::string relay_call_id;
    std::uint32_t relay_cseq = 0;
    std::optional<TimePoint> refresh_pushed_at;  // relay: the last refresh push
  };
  // Relay: one phone REGISTER on its way upstream.
  struct RelayCall {
    Request request;
    bool counted = false;  // in relays_by_source_
    std::function<void(Verdict)> done;
    bool answered = false;                      // done() ran
    std::optional<std::chrono::seconds> asked;  // after a 423: its Min-Expires
    std::vector<std::string> users;             // the contact users sent (for grantedExpiry)
  };
  // How an upstream REGISTER ended: the upstream's final response, or none (`reason` says why).
  struct Outcome {
    int status = 0;                               // 0: no response
    std::string reason;                           // for the log when there is no response
    std::optional<std::chrono::seconds> granted;  // 2xx: grantedExpiry()
    std::optional<std::uint32_t> min_expires;     // 423: its Min-Expires
  };
  // One upstream REGISTER on its way: what it was for.
  struct Sent {
    std::string key;  // device key; empty for an un-REGISTER of a device already forgotten
    bool unregister = false;
    std::string user;  // its contact user
    std::chrono::seconds asked{0};
    std::shared_ptr<RelayCall> relay;  // a relayed phone REGISTER (edge_relay.cc)
    bool probe = false;                // relay: an OPTIONS asking whether the upstream is there
    Device device;                     // as sent: a challenge's answer sends it again
  };
  // The upstream's digest challenge for one device (by its Call-ID), kept to answer its later
  // REGISTERs with the same nonce (nc + 1 each) until the upstream challenges again.
  struct UpstreamAuth {
    std::string aor;
    auth::DigestChallenge challenge;
    bool proxy = false;  // 407: Proxy-Authorization
    std::string cnonce;
    std::uint32_t nc = 0;           // the last nc sent
    std::uint32_t answer_cseq = 0;  // the CSeq of the REGISTER that answered the challenge
  };

  void touch(const std::string& aor, const std::string& key, bool push);
  void reconcile();
  // REQUIRES: mu_ held. Puts `d` in pending_ unless it is there or in flight.
  void enqueue(Device& d, bool front = false);
  // Sends pending REGISTERs within the rate (none while the upstream is unreachable) and arms
  // the pacing timer for the rest.
  void pump();
  // While unreachable: one pending (or any) device's REGISTER, every retry_after_failure.
  void probe(TimePoint now);
  void upstreamAnswered();
  void upstreamUnreachable(const std::string& reason);
  bool alive(const Device& d, location::SysSeconds wall) const;
  // Sends REGISTER for `d` with `expires` (0: un-REGISTER). `d` is copied: the device may be
  // forgotten before the upstream address is resolved.
  void send(const Device& d, std::chrono::seconds expires);
  void sendTo(std::uint64_t seq, const Device& d, std::chrono::seconds expires,
              const transport::SendTarget& hop);
  void finished(std::uint64_t seq, Outcome outcome);
  // A 401/407 to the upstream REGISTER `seq`: answers it (one retry per challenge, same Call-ID,
  // CSeq + 1) with sipwake's credentials for the AOR and returns true; false (logged, counted)
  // when it cannot or the REGISTER was itself the answer: the REGISTER failed.
  bool answerChallenge(std::uint64_t seq, const sip::Message& response);
  // Authorization / Proxy-Authorization for `d` from its kept challenge, if any.
  void addCredentials(sip::Message& m, const Device& d);
  Device& create(const std::string& aor, const std::string& key, bool push);
  void forget(const std::string& key);  // REQUIRES: mu_ held
  location::SysSeconds wallNow() const;
  // The upstream's address (IP literal, else resolved), then `then`; `failed` with a reason.
  void withUpstream(std::function<void(const transport::SendTarget&)> then,
                    std::function<void(std::string)> failed);
  // "<sip:user@host:port;transport=...>" for a contact of ours reached over `hop`; nullopt (with
  // the reason in *why) when no listener of that protocol exists.
  std::optional<std::string> contactFor(const std::string& user, const transport::SendTarget& hop,
                                        std::string* why) const;

  // Relay (edge_relay.cc), home loop.
  void relayOnHome(Request request, std::function<void(Verdict)> done);
  void relaySend(std::shared_ptr<RelayCall> call);
  void relayFinished(std::uint64_t seq, const sip::Message* response, const std::string& reason);
  void relayAnswer(RelayCall& call, Verdict verdict);
  Verdict unavailable(std::chrono::seconds retry_after) const;
  void sendProbe();
  // Relay, under mu_: a refresh push for `d` when its upstream binding is due and the phone has
  // not registered since; returns the push to send (outside the lock), if any.
  std::optional<push::PushTarget> refreshDue(Device& d, TimePoint now);
  // Under mu_: the refresh push for `d` unless it cannot have one (no sender, no push binding)
  // or had one within push::kMinRefreshPushInterval.
  std::optional<push::PushTarget> refreshTarget(Device& d, TimePoint now);
  void sendRefresh(const push::PushTarget& target);
  // Relay, upstream back: every push device is woken to register there again (the upstream
  // may have lost its bindings), paced at upstream_rate per second.
  void refreshAfterOutage();
  void pumpRefreshes();

  EdgeConfig config_;
  Deps deps_;
  EdgeSchedule schedule_;
  std::string route_;
  mutable std::mutex mu_;                                 // guards devices_ and by_user_
  std::unordered_map<std::string, Device> devices_;       // by device key
  std::unordered_map<std::string, std::string> by_user_;  // contact user -> device key
  std::map<std::uint64_t, Sent> sent_;                    // home loop only
  std::uint64_t next_seq_ = 0;
  std::deque<std::string> pending_;  // home loop only: device keys whose REGISTER waits
  double tokens_ = 0;                // home loop only: the rate's bucket
  TimePoint refilled_{};
  bool pump_armed_ = false;
  bool reachable_ = true;  // home loop only
  std::optional<TimePoint> probed_at_;
  // Relay: REGISTERs on their way upstream, per source address and in all (home loop only).
  std::unordered_map<std::string, std::uint32_t> relays_by_source_;
  std::size_t relays_in_flight_ = 0;
  std::deque<std::string> refresh_queue_;  // home loop only: relay, devices to wake after an outage
  bool refresh_pump_armed_ = false;
  std::unordered_map<std::string, UpstreamAuth> auth_;     // home loop only: by Call-ID
  std::unordered_set<std::string> no_credentials_logged_;  // home loop only: Call-IDs
  TimerService::TimerId tick_ = 0;
  std::shared_ptr<bool> alive_;
  Counter& registers_;
  Counter& unregisters_;
  Counter& registered_;
  Counter& challenged_;
  Counter& failed_;
  Counter& unreachable_;
  Counter& back_;
  Counter& too_brief_;
  Counter& relay_upstream_;
  Counter& relay_local_;
  Counter& relay_challenges_;
  Counter& relay_unavailable_;
  Counter& relay_too_many_;
  Counter& refresh_pushes_;
  Counter& refresh_push_failed_;
  Counter& auth_failed_;
};

}  // namespace sipwake::routing
