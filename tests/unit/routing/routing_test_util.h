// Fixture for the proxy tests: a real TransactionLayer over a fake clock and a fake transport
// (with one listener address per protocol), a MemoryLocationStore, and builders for the
// messages the UAs on either side send.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "location/memory_location_store.h"
#include "routing/proxy.h"
#include "sip/message.h"
#include "transaction/transaction_layer.h"

namespace sipwake::routing::testing {

inline transport::Address addr(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                               std::uint16_t port) {
  transport::Address x;
  x.bytes[0] = a;
  x.bytes[1] = b;
  x.bytes[2] = c;
  x.bytes[3] = d;
  x.port = port;
  return x;
}

// Records every send; UDP on 192.0.2.1:5060, TCP on :5060, TLS on :5061.
class FakeTransport final : public transport::Transport {
 public:
  struct Sent {
    transport::SendTarget target;
    std::string bytes;
  };
  void send(const transport::SendTarget& target, std::string bytes,
            std::function<void(Status)> on_done) override {
    sent.push_back(Sent{target, std::move(bytes)});
    if (on_done) on_done(Status::ok());
  }
  Result<transport::Address> localAddressFor(transport::Protocol protocol, bool v6) const override {
    if (v6) return unavailable("no IPv6 listener");
    return addr(192, 0, 2, 1, protocol == transport::Protocol::kTls ? 5061 : 5060);
  }
  std::vector<Sent> sent;
};

inline sip::Message parse(std::string text) {
  sip::ParseOutcome out = sip::parseMessage(std::move(text), sip::ParseLimits{});
  if (out.kind != sip::ParseOutcome::Kind::kOk || !out.message) {
    ADD_FAILURE() << "message did not parse: " << out.reason << " / " << out.drop_reason << "\n"
                  << text;
    return sip::Message::makeResponse(500, "unparsable test message");
  }
  return std::move(*out.message);
}

inline const location::SysSeconds kNow{std::chrono::seconds(1'700'000'000)};

// The core handler's role: new requests to the proxy, the rest as the server does it.
class ProxyTu final : public transaction::TransactionUser {
 public:
  void onRequest(transaction::ServerTransaction& tx,
                 transport::ReceivedMessage&& request) override {
    proxy->onRequest(tx, std::move(request));
  }
  void onAck(transport::ReceivedMessage&& ack) override { proxy->onAck(std::move(ack)); }
  void onStrayResponse(transport::ReceivedMessage&& response) override {
    proxy->onStrayResponse(std::move(response));
  }
  void onCancel(transaction::ServerTransaction&, transport::ReceivedMessage&&) override {}
  void onTransportError(transaction::ServerTransaction&, const Status&) override {}
  Proxy* proxy = nullptr;
};

struct Ua {
  transport::Address address;
  transport::Protocol protocol = transport::Protocol::kUdp;
  transport::FlowId flow = 0;
};

inline const Ua kAlice{addr(10, 0, 0, 1, 5060)};

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(store_.load(kNow).isOk());
    build({});
  }

  void build(ProxyConfig config, TargetResolver* resolver = nullptr,
             auth::Authenticator* authenticator = nullptr,
             const auth::TrustedPeers* trusted = nullptr,
             auth::SourceThrottle* stranger_throttle = nullptr) {
    proxy_.reset();
    layer_.reset();
    transaction::LayerConfig lc;
    lc.auto_trying = false;
    layer_ = std::make_unique<transaction::TransactionLayer>(timers_, transport_, tu_, lc);
    if (config.route_keys.secret.empty()) config.route_keys.secret = kRouteSecret;
    ProxyDeps deps;
    deps.unix_now = [this] { return unix_now_; };
    deps.layer = layer_.get();
    deps.transport = &transport_;
    deps.targets = resolver != nullptr ? resolver : &locations_;
    deps.authenticator = authenticator;
    deps.trusted = trusted;
    deps.stranger_throttle = stranger_throttle;
    deps.is_local_host = [](std::string_view host) {
      return host == "example.com" || host == "192.0.2.1";
    };
    proxy_ = std::make_unique<Proxy>(std::move(deps), std::move(config));
    tu_.proxy = proxy_.get();
  }

  void registerBinding(const std::string& aor, const std::string& contact, const Ua& ua,
                       int q_milli = 1000, std::vector<std::string> path = {}) {
    location::RegistrationChange c;
    c.aor = aor;
    c.call_id = "reg-" + contact;
    c.cseq = 1;
    c.now = kNow;
    location::Binding b;
    b.contact_uri = contact;
    b.expires_at = kNow + std::chrono::seconds(3600);
    b.q_milli = q_milli;
    b.path = std::move(path);
    b.received.protocol = std::string(ua.protocol == transport::Protocol::kUdp   ? "udp"
                                      : ua.protocol == transport::Protocol::kTcp ? "tcp"
                                                                                 : "tls");
    b.received.source_ip = ua.address.ip();
    b.received.source_port = ua.address.port;
    b.received.flow_id = ua.flow;
    c.upserts.push_back(b);
    bool done = false;
    store_.applyRegistration(
        std::move(c), [](std::function<void()> f) { f(); },
        [&](Result<std::vector<location::Binding>> r) {
          EXPECT_TRUE(r.isOk()) << r.status().toString();
          done = true;
        });
    ASSERT_TRUE(done);
  }

  // A request from `from` (UA alice@example.com at `ua` unless overridden).
  std::string request(const std::string& method, const std::string& ruri,
                      const std::string& extra = "", const Ua& ua = kAlice,
                      const std::string& call_id = "call-1", int cseq = 1,
                      const std::string& to_tag = "", const std::string& branch = "z9hG4bKa1") {
    std::string proto(transport::protocolName(ua.protocol));
    std::string s = method + " " + ruri + " SIP/2.0\r\n";
    s += "Via: SIP/2.0/" + proto + " " + ua.address.toString() + ";branch=" + branch + "\r\n";
    s += "Max-Forwards: 70\r\n";
    s += "From: <sip:alice@example.com>;tag=fa\r\n";
    s += "To: <sip:bob@example.com>" + (to_tag.empty() ? "" : ";tag=" + to_tag) + "\r\n";
    s += "Call-ID: " + call_id + "\r\n";
    s += "CSeq: " + std::to_string(cseq) + " " + method + "\r\n";
    s += "Contact: <sip:alice@" + ua.address.toString() + ">\r\n";
    s += extra;
    s += "Content-Length: 0\r\n\r\n";
    return s;
  }

  void deliver(const std::string& text, const Ua& ua) {
    transport::ReceivedMessage r{
        parse(text), ua.protocol,
        ua.address,  transport_.localAddressFor(ua.protocol, false).value(),
        ua.flow,     timers_.now()};
    layer_->receive(std::move(r));
  }
  void deliver(sip::Message&& m, const Ua& ua) { deliver(m.serialize(), ua); }

  // The caller's ACK (CSeq 1) and BYE (CSeq 2) in the dialog `call_id` (callee's tag "bt") to
  // `ruri`, sent by `hop`; `headers`: their Route and any Via below the hop's.
  void ackAndBye(const std::string& ruri, const std::string& headers, const Ua& hop,
                 const std::string& call_id) {
    deliver(request("ACK", ruri, headers, hop, call_id, 1, "bt", "z9hG4bKack" + call_id), hop);
    deliver(request("BYE", ruri, headers, hop, call_id, 2, "bt", "z9hG4bKbye" + call_id), hop);
  }

  // Messages sent to `remote` since the test start (or since `from`).
  std::vector<sip::Message> sentTo(const transport::Address& remote, std::size_t from = 0) {
    std::vector<sip::Message> out;
    for (std::size_t i = from; i < transport_.sent.size(); ++i) {
      if (transport_.sent[i].target.remote == remote)
        out.push_back(parse(transport_.sent[i].bytes));
    }
    return out;
  }
  std::vector<int> codesTo(const transport::Address& remote) {
    std::vector<int> codes;
    for (auto& m : sentTo(remote)) {
      if (m.isResponse()) codes.push_back(m.statusCode());
    }
    return codes;
  }
  std::vector<sip::Message> requestsTo(const transport::Address& remote, std::string_view method) {
    std::vector<sip::Message> out;
    for (auto& m : sentTo(remote)) {
      if (m.isRequest() && m.methodText() == method) out.push_back(std::move(m));
    }
    return out;
  }
  // The downstream UA at `ua` answers the last `method` request it got.
  void answer(const Ua& ua, std::string_view method, int code, const std::string& reason,
              const std::string& to_tag = "bt", const std::string& extra_header = "") {
    auto reqs = requestsTo(ua.address, method);
    ASSERT_FALSE(reqs.empty()) << "no " << method << " reached " << ua.address.toString();
    sip::Message resp = sip::makeResponseTo(reqs.back(), code, reason, code > 100 ? to_tag : "");
    if (code > 100 && code < 300) {  // a UAS copies the Record-Route (§12.1.1)
      for (std::string_view rr : reqs.back().values(sip::HeaderId::kRecordRoute)) {
        resp.appendHeader("Record-Route", std::string(rr));
      }
    }
    if (!extra_header.empty()) {
      auto colon = extra_header.find(':');
      resp.appendHeader(extra_header.substr(0, colon), extra_header.substr(colon + 2));
    }
    deliver(std::move(resp), ua);
  }

  // "Route: <sip:TOKEN@192.0.2.1:5060;lr>\r\n" with a token we signed for the dialog of
  // `call_id` whose caller's tag is `caller_tag`, as our Record-Route would carry it.
  std::string signedRoute(std::string_view call_id, std::string_view caller_tag = "fa") const {
    RouteKeyConfig keys;
    keys.secret = kRouteSecret;
    std::string token = FlowTokenCodec(keys).encode({}, call_id, caller_tag, unix_now_);
    return "Route: <sip:" + token + "@192.0.2.1:5060;lr>\r\n";
  }

  static constexpr const char* kRouteSecret = "proxy test route secret, 32 b..";
  std::int64_t unix_now_ = 1'700'000'000;  // what the proxy reads as wall-clock time
  FakeTimerService timers_;
  FakeTransport transport_;
  ProxyTu tu_;
  location::MemoryLocationStore store_;
  LocationTargetResolver locations_{
      store_, [](std::string_view user, std::string_view) { return user != "nobody"; },
      [] { return kNow; }};
  std::unique_ptr<transaction::TransactionLayer> layer_;
  std::unique_ptr<Proxy> proxy_;

  Ua alice_ = kAlice;
  Ua bob_{addr(10, 0, 0, 2, 5060)};
  Ua bob2_{addr(10, 0, 0, 3, 5070)};
};

}  // namespace sipwake::routing::testing
