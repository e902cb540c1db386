#include "transport/transport_layer.h"

#include <gtest/gtest.h>
#include <linux/filter.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/stats.h"
#include "test_util.h"
#include "transport/reuseport_steer.h"

namespace sipwake::transport {
namespace {

using testing::Inbox;
using testing::RawSocket;
using testing::waitUntil;
using namespace std::chrono_literals;

Address loopback4() { return *Address::parse("127.0.0.1", 0); }

std::string request(const std::string& method, const std::string& call_id, const std::string& via,
                    const std::string& extra = "") {
  return method +
         " sip:service@127.0.0.1 SIP/2.0\r\n"
         "Via: " +
         via +
         "\r\n"
         "From: <sip:alice@example.com>;tag=f1\r\n"
         "To: <sip:service@example.com>\r\n"
         "Call-ID: " +
         call_id +
         "\r\n"
         "CSeq: 1 " +
         method +
         "\r\n"
         "Max-Forwards: 70\r\n" +
         extra + "Content-Length: 0\r\n\r\n";
}

std::uint64_t counter(const char* name) { return Stats::global().counter(name).value(); }

// Waits for `send`'s on_done.
struct DoneWaiter {
  std::promise<Status> p;
  std::future<Status> f = p.get_future();
  std::function<void(Status)> cb() {
    return [this](Status s) { p.set_value(std::move(s)); };
  }
  std::optional<Status> wait(std::chrono::milliseconds bound = 10s) {
    if (f.wait_for(bound) != std::future_status::ready) return std::nullopt;
    return f.get();
  }
};

class TransportLayerTest : public ::testing::Test {
 protected:
  TransportLayerTest() : inbox_(pool_) { pool_.start(); }
  ~TransportLayerTest() override {
    for (auto& l : layers_) l->stop();
    pool_.stop();
  }

  TransportLayer& startLayer(TransportConfig config, Inbox* inbox = nullptr) {
    if (inbox == nullptr) inbox = &inbox_;
    layers_.push_back(std::make_unique<TransportLayer>(
        pool_, std::move(config), [inbox](ReceivedMessage m) { inbox->push(std::move(m)); }));
    Status s = layers_.back()->start();
    EXPECT_TRUE(s.isOk()) << s.toString();
    return *layers_.back();
  }
  static TransportConfig config(std::initializer_list<Protocol> protocols,
                                Address where = loopback4()) {
    TransportConfig c;
    for (Protocol p : protocols) c.listeners.push_back({p, where});
    return c;
  }

  LoopPool pool_{2};
  Inbox inbox_;
  std::vector<std::unique_ptr<TransportLayer>> layers_;
};

TEST_F(TransportLayerTest, BindsRealPortsAndReportsLocalAddress) {
  auto& t = startLayer(config({Protocol::kUdp, Protocol::kTcp}));
  auto udp = t.localAddressFor(Protocol::kUdp, false);
  ASSERT_TRUE(udp.isOk());
  EXPECT_NE(udp->port, 0);
  EXPECT_EQ(udp->ip(), "127.0.0.1");
  EXPECT_TRUE(t.localAddressFor(Protocol::kTcp, false).isOk());
  EXPECT_FALSE(t.localAddressFor(Protocol::kTls, false).isOk());
  EXPECT_FALSE(t.localAddressFor(Protocol::kUdp, true).isOk());
}

TEST_F(TransportLayerTest, BindConflictIsAnError) {
  RawSocket blocker = RawSocket::udp(loopback4());
  ASSERT_TRUE(blocker.ok());
  TransportConfig c;
  c.listeners.push_back({Protocol::kUdp, blocker.localAddress()});
  TransportLayer t(pool_, c, [](ReceivedMessage) {});
  EXPECT_FALSE(t.start().isOk());
}

TEST_F(TransportLayerTest, UdpOptionsIsStampedAndHandledOnTheReceivingLoop) {
  auto& t = startLayer(config({Protocol::kUdp}));
  Address server = *t.localAddressFor(Protocol::kUdp, false);
  RawSocket client = RawSocket::udp(loopback4());
  Address me = client.localAddress();
  std::uint64_t before = counter("transport.udp.received");
  std::uint64_t crossed = counter("transport.cross_loop_dispatch");
  std::set<std::size_t> loops;
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(client.sendTo(
        server, request("OPTIONS", "udp-" + std::to_string(i),
                        "SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKu" + std::to_string(i))));
  }
  for (int i = 0; i < 8; ++i) {
    auto item = inbox_.pop();
    ASSERT_TRUE(item.has_value());
    loops.insert(item->loop);
    const ReceivedMessage& rm = item->msg;
    EXPECT_EQ(rm.protocol, Protocol::kUdp);
    EXPECT_EQ(rm.remote, me);
    EXPECT_EQ(rm.local.port, server.port);
    EXPECT_EQ(rm.flow, 0u);
    auto via = rm.message.topVia();
    ASSERT_TRUE(via.isOk());
    ASSERT_NE(via->received(), nullptr);
    EXPECT_EQ(via->received()->value, "127.0.0.1");
    ASSERT_NE(via->rport(), nullptr);
    EXPECT_EQ(via->rport()->value, std::to_string(me.port));
  }
  EXPECT_GE(counter("transport.udp.received") - before, 8u);
  // One source: one SO_REUSEPORT socket, one loop, and no hand-off whatever the Call-IDs.
  EXPECT_EQ(loops.size(), 1u);
  EXPECT_EQ(counter("transport.cross_loop_dispatch"), crossed);
}

// A response goes to the loop its top Via branch names (our client transactions' branches),
// whichever socket received it; a foreign branch stays where it arrived.
TEST_F(TransportLayerTest, ResponseIsHandledOnTheLoopItsBranchNames) {
  auto& t = startLayer(config({Protocol::kUdp}));
  Address server = *t.localAddressFor(Protocol::kUdp, false);
  RawSocket client = RawSocket::udp(loopback4());
  auto response = [](std::string_view branch, std::string_view call_id) {
    return std::string("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=") +
           std::string(branch) + "\r\nFrom: <sip:a@example.com>;tag=1\r\n" +
           "To: <sip:b@example.com>;tag=2\r\nCall-ID: " + std::string(call_id) +
           "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
  };
  std::uint64_t crossed = counter("transport.cross_loop_dispatch");
  for (int round = 0; round < 4; ++round) {
    for (std::size_t loop : {0u, 1u}) {
      std::string branch = "z9hG4bKw00" + std::to_string(loop) + "abc" + std::to_string(round);
      ASSERT_TRUE(client.sendTo(server, response(branch, "r-" + std::to_string(round))));
      auto item = inbox_.pop();
      ASSERT_TRUE(item.has_value());
      EXPECT_EQ(item->loop, loop) << branch;
    }
  }
  // The kernel delivered each to its loop's socket (reuseport_steer.h): nothing was posted.
  EXPECT_EQ(counter("transport.cross_loop_dispatch"), crossed);
  // Not one of ours (no loop mark, or a loop that does not exist): handled where received.
  ASSERT_TRUE(client.sendTo(server, response("z9hG4bKforeign", "f-1")));
  auto a = inbox_.pop();
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(client.sendTo(server, response("z9hG4bKw7ffabc", "f-2")));
  auto b = inbox_.pop();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->loop, b->loop);
}

// An INVITE server transaction pinned on a loop gets its CANCEL/ACK/retransmission there even
// when they come from another source (another socket, maybe another loop); other requests and
// RFC 2543 requests (no magic cookie: matched by Call-ID) follow their own rules.
// Spreading (reuseport_steer.h): the kernel puts each request on the loop its Call-ID hashes
// to, whatever the source: one source's calls use both loops, and no message is posted across.
TEST_F(TransportLayerTest, SpreadSteeringPutsEachCallIdOnItsLoopWhateverTheSource) {
  TransportConfig c = config({Protocol::kUdp});
  c.udp_steering = TransportConfig::UdpSteering::kSpread;
  auto& t = startLayer(c);
  Address server = *t.localAddressFor(Protocol::kUdp, false);
  std::uint64_t crossed = counter("transport.cross_loop_dispatch");
  RawSocket client = RawSocket::udp(loopback4());
  std::set<std::size_t> used;
  for (int i = 0; i < 16; ++i) {
    std::string call_id = "spread-" + std::to_string(1000 + i * 7) + "@host";
    ASSERT_TRUE(client.sendTo(
        server, request("OPTIONS", call_id,
                        "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKsp" + std::to_string(i))));
    auto item = inbox_.pop();
    ASSERT_TRUE(item.has_value());
    EXPECT_EQ(item->loop, steeredLoopForCallId(call_id, 2)) << call_id;
    used.insert(item->loop);
  }
  EXPECT_EQ(used.size(), 2u);
  // The same Call-ID from several sources (several 4-tuples): always the same loop.
  const std::string call_id = "same-call-from-everywhere";
  for (int i = 0; i < 6; ++i) {
    RawSocket other = RawSocket::udp(loopback4());
    ASSERT_TRUE(other.sendTo(
        server, request("OPTIONS", call_id,
                        "SIP/2.0/UDP 127.0.0.1:5998;branch=z9hG4bKsame" + std::to_string(i))));
    auto item = inbox_.pop();
    ASSERT_TRUE(item.has_value());
    EXPECT_EQ(item->loop, steeredLoopForCallId(call_id, 2));
  }
  EXPECT_EQ(counter("transport.cross_loop_dispatch"), crossed);
}

// Adaptive: above spread_above datagrams/s the transport switches to spreading, below
// spread_below back to the source's loop (checked every second).
TEST_F(TransportLayerTest, AdaptiveSteeringSpreadsABusySourceAndComesBack) {
  TransportConfig c = config({Protocol::kUdp});
  c.spread_above = 30;
  c.spread_below = 5;
  auto& t = startLayer(c);
  Address server = *t.localAddressFor(Protocol::kUdp, false);
  RawSocket client = RawSocket::udp(loopback4());
  std::uint64_t switches = counter("transport.udp_steering_switches");
  auto burst = [&](const std::string& prefix, int n) {
    std::set<std::size_t> loops;
    for (int i = 0; i < n; ++i) {
      std::string call_id = prefix + std::to_string(10000 + i * 13) + "@h";
      EXPECT_TRUE(client.sendTo(server, request("OPTIONS", call_id,
                                                "SIP/2.0/UDP 127.0.0.1:5997;branch=z9hG4bKad" +
                                                    prefix + std::to_string(i))));
      auto item = inbox_.pop();
      EXPECT_TRUE(item.has_value());
      if (item) loops.insert(item->loop);
    }
    return loops;
  };
  EXPECT_EQ(burst("quiet-", 8).size(), 1u);  // affinity: one source, one loop
  // Busy: keep the rate above 30/s until the next check has switched.
  EXPECT_TRUE(waitUntil(
      [&] {
        burst("busy-", 20);
        return counter("transport.udp_steering_switches") > switches;
      },
      std::chrono::seconds(5)));
  EXPECT_EQ(burst("spread-", 16).size(), 2u);
  // Quiet again: back to the source's loop after a check below 5/s.
  EXPECT_TRUE(waitUntil([&] { return counter("transport.udp_steering_switches") > switches + 1; },
                        std::chrono::seconds(5)));
  EXPECT_EQ(burst("calm-", 8).size(), 1u);
}

TEST(SteeringProgramTest, FitsTheClassicBpfLimitAndHashesEveryLoop) {
  for (std::size_t loops : {2u, 3u, 8u, 64u}) {
    EXPECT_LE(steeringProgram(loops, true).size(), 4096u);
    EXPECT_LT(steeringProgram(loops, false).size(), steeringProgram(loops, true).size());
    std::set<std::size_t> seen;
    for (int i = 0; i < 2000; ++i) {
      std::size_t l = steeredLoopForCallId(std::to_string(100000 + i) + "-77@127.0.0.1", loops);
      EXPECT_LT(l, loops);
      seen.insert(l);
    }
    EXPECT_EQ(seen.size(), loops);  // sipp-like Call-IDs reach every loop
  }
}

TEST_F(TransportLayerTest, PinnedInviteDrawsItsCancelAndAckFromAnySource) {
  auto& t = startLayer(config({Protocol::kUdp}));
  Address server = *t.localAddressFor(Protocol::kUdp, false);
  const std::string via = "SIP/2.0/UDP 192.0.2.7:5062;branch=z9hG4bKpinned1";
  auto parsed = sip::parseMessage(request("INVITE", "pin-1", via), sip::ParseLimits{});
  ASSERT_TRUE(parsed.message);
  std::string key = inviteAffinityKey(*parsed.message->topVia());
  for (std::size_t pinned_on : {0u, 1u}) {
    std::promise<void> pinned;
    pool_.at(pinned_on).post([&] {
      t.pinInvite(key);
      pinned.set_value();
    });
    pinned.get_future().wait();
    for (int i = 0; i < 6; ++i) {  // several sources: the kernel spreads them over both sockets
      RawSocket client = RawSocket::udp(loopback4());
      for (const char* method : {"CANCEL", "ACK", "INVITE"}) {
        ASSERT_TRUE(client.sendTo(server, request(method, "pin-1", via)));
        auto item = inbox_.pop();
        ASSERT_TRUE(item.has_value());
        EXPECT_EQ(item->loop, pinned_on) << method << " from source " << i;
      }
    }
    std::promise<void> unpinned;
    pool_.at(pinned_on).post([&] {
      t.unpinInvite(key);
      unpinned.set_value();
    });
    unpinned.get_future().wait();
  }
  // A request without the magic cookie goes to the loop of its Call-ID.
  for (int i = 0; i < 6; ++i) {
    RawSocket client = RawSocket::udp(loopback4());
    ASSERT_TRUE(client.sendTo(
        server, request("OPTIONS", "legacy-" + std::to_string(i), "SIP/2.0/UDP 192.0.2.7:5062")));
    auto item = inbox_.pop();
    ASSERT_TRUE(item.has_value());
    EXPECT_TRUE(item->on_call_id_loop);
  }
}

TEST_F(TransportLayerTest, UdpSendReachesPeer) {
  auto& t = startLayer(config({Protocol::kUdp}));
  RawSocket client = RawSocket::udp(loopback4());
  DoneWaiter done;
  t.send({Protocol::kUdp, client.localAddress(), 0, {}}, "SIP/2.0 200 OK\r\n\r\n", done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->isOk()) << st->toString();
  auto got = client.recv();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, "SIP/2.0 200 OK\r\n\r\n");
}

TEST_F(TransportLayerTest, MalformedUdpRequestGets400) {
  auto& t = startLayer(config({Protocol::kUdp}));
  Address server = *t.localAddressFor(Protocol::kUdp, false);
  RawSocket client = RawSocket::udp(loopback4());
  std::uint64_t before = counter("transport.parse_rejects");
  std::string bad =
      "OPTIONS sip:service@127.0.0.1 SIP/2.0\r\n"
      "Via: SIP/2.0/UDP 10.1.1.1:5060;rport;branch=z9hG4bKbad\r\n"
      "From: <sip:alice@example.com>;tag=f1\r\n"
      "To: <sip:service@example.com>\r\n"
      "Call-ID: bad-1\r\n"
      "CSeq: notanumber OPTIONS\r\n"
      "Max-Forwards: 70\r\n"
      "Content-Length: 0\r\n\r\n";
  ASSERT_TRUE(client.sendTo(server, bad));
  auto got = client.recv();  // reaches us via rport although sent-by says 10.1.1.1
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->rfind("SIP/2.0 400", 0), 0u) << *got;
  EXPECT_NE(got->find("Call-ID: bad-1"), std::string::npos);
  EXPECT_EQ(counter("transport.parse_rejects") - before, 1u);
  EXPECT_FALSE(inbox_.pop(50ms).has_value());
}

TEST_F(TransportLayerTest, UdpGarbageIsDroppedAndCounted) {
  auto& t = startLayer(config({Protocol::kUdp}));
  Address server = *t.localAddressFor(Protocol::kUdp, false);
  RawSocket client = RawSocket::udp(loopback4());
  std::uint64_t before = counter("transport.parse_drops");
  ASSERT_TRUE(client.sendTo(server, "\x01\x02garbage"));
  EXPECT_TRUE(waitUntil([&] { return counter("transport.parse_drops") > before; }));
  // The loop is still alive.
  ASSERT_TRUE(client.sendTo(
      server, request("OPTIONS", "after-garbage", "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKg")));
  EXPECT_TRUE(inbox_.pop().has_value());
}

TEST_F(TransportLayerTest, TcpFramesCoalescedAndSplitMessages) {
  auto& t = startLayer(config({Protocol::kTcp}));
  Address server = *t.localAddressFor(Protocol::kTcp, false);
  RawSocket c = RawSocket::tcpConnect(server);
  ASSERT_TRUE(c.ok());
  std::string m1 = request("OPTIONS", "tcp-1", "SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKt1");
  std::string m2 = request("OPTIONS", "tcp-2", "SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKt2");
  std::string m3 = request("REGISTER", "tcp-3", "SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKt3");
  ASSERT_TRUE(c.send(m1 + m2));
  ASSERT_TRUE(c.send(m3.substr(0, 40)));
  auto a = inbox_.pop();
  auto b = inbox_.pop();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(inbox_.pop(50ms).has_value());  // m3 is incomplete
  ASSERT_TRUE(c.send(m3.substr(40)));
  auto d = inbox_.pop();
  ASSERT_TRUE(d.has_value());
  std::set<std::string> ids{std::string(a->msg.message.callId()),
                            std::string(b->msg.message.callId()),
                            std::string(d->msg.message.callId())};
  EXPECT_EQ(ids, (std::set<std::string>{"tcp-1", "tcp-2", "tcp-3"}));
  EXPECT_NE(a->msg.flow, 0u);
  EXPECT_EQ(a->msg.flow, b->msg.flow);
  EXPECT_EQ(a->msg.flow, d->msg.flow);
  EXPECT_EQ(d->msg.protocol, Protocol::kTcp);
  EXPECT_EQ(d->msg.remote, c.localAddress());
  // Everything read from a connection is handled on the loop that owns it (FlowId low bits).
  EXPECT_EQ(a->loop, a->msg.flow & 0xff);
  EXPECT_EQ(b->loop, a->loop);
  EXPECT_EQ(d->loop, a->loop);
}

TEST_F(TransportLayerTest, CrlfPingGetsPong) {
  auto& t = startLayer(config({Protocol::kTcp}));
  RawSocket c = RawSocket::tcpConnect(*t.localAddressFor(Protocol::kTcp, false));
  ASSERT_TRUE(c.ok());
  std::uint64_t before = counter("transport.keepalive_pongs");
  ASSERT_TRUE(c.send("\r\n\r\n"));
  EXPECT_EQ(c.recvAtLeast(2), "\r\n");
  EXPECT_EQ(counter("transport.keepalive_pongs") - before, 1u);
}

TEST_F(TransportLayerTest, FramingErrorClosesConnection) {
  auto& t = startLayer(config({Protocol::kTcp}));
  RawSocket c = RawSocket::tcpConnect(*t.localAddressFor(Protocol::kTcp, false));
  ASSERT_TRUE(c.ok());
  // No Content-Length on a stream: unframeable.
  ASSERT_TRUE(
      c.send("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKx"
             "\r\nCall-ID: x\r\n\r\n"));
  EXPECT_TRUE(c.waitClosed());
  EXPECT_TRUE(waitUntil([&] { return t.connectionCount() == 0; }));
}

TEST_F(TransportLayerTest, PerIpConnectionCap) {
  TransportConfig cfg = config({Protocol::kTcp});
  cfg.max_connections_per_ip = 2;
  auto& t = startLayer(cfg);
  Address server = *t.localAddressFor(Protocol::kTcp, false);
  std::uint64_t before = counter("transport.connections_refused");
  RawSocket a = RawSocket::tcpConnect(server);
  RawSocket b = RawSocket::tcpConnect(server);
  ASSERT_TRUE(waitUntil([&] { return t.connectionCount() == 2; }));
  RawSocket c = RawSocket::tcpConnect(server);
  EXPECT_TRUE(c.waitClosed());
  EXPECT_EQ(counter("transport.connections_refused") - before, 1u);
  EXPECT_EQ(t.connectionCount(), 2u);
  // Closing one makes room again.
  { RawSocket gone(std::move(a)); }
  ASSERT_TRUE(waitUntil([&] { return t.connectionCount() == 1; }));
  RawSocket d = RawSocket::tcpConnect(server);
  ASSERT_TRUE(d.send("\r\n\r\n"));
  EXPECT_EQ(d.recvAtLeast(2), "\r\n");
}

TEST_F(TransportLayerTest, IdleConnectionIsClosed) {
  TransportConfig cfg = config({Protocol::kTcp});
  cfg.idle_timeout = 200ms;
  auto& t = startLayer(cfg);
  RawSocket c = RawSocket::tcpConnect(*t.localAddressFor(Protocol::kTcp, false));
  ASSERT_TRUE(c.ok());
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.waitClosed(5s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_TRUE(waitUntil([&] { return t.connectionCount() == 0; }));
}

TEST_F(TransportLayerTest, SendReusesInboundFlow) {
  auto& t = startLayer(config({Protocol::kTcp}));
  RawSocket phone = RawSocket::tcpConnect(*t.localAddressFor(Protocol::kTcp, false));
  ASSERT_TRUE(
      phone.send(request("REGISTER", "reg-1", "SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bKr")));
  auto reg = inbox_.pop();
  ASSERT_TRUE(reg.has_value());
  FlowId flow = reg->msg.flow;
  ASSERT_NE(flow, 0u);
  // Towards the phone's registered (unreachable, NATed) address, but with its flow.
  std::string invite = request("INVITE", "inv-1", "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKi");
  Address nat_private = *Address::parse("10.0.0.5", 5060);
  DoneWaiter done;
  t.send({Protocol::kTcp, nat_private, flow, {}}, invite, done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->isOk()) << st->toString();
  EXPECT_EQ(phone.recvAtLeast(invite.size()), invite);
  // Without a flow id: found by the remote address the connection came from.
  std::string second = request("MESSAGE", "msg-1", "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKm");
  DoneWaiter done2;
  t.send({Protocol::kTcp, reg->msg.remote, 0, {}}, second, done2.cb());
  ASSERT_TRUE(done2.wait().has_value());
  EXPECT_EQ(phone.recvAtLeast(second.size()), second);
  EXPECT_EQ(t.connectionCount(), 1u);
}

// §8.1.3.1 / §18.4: the transaction layer must learn which flow a request went out on and when
// that flow dies. The completion names the connection; its close is announced on every loop.
TEST_F(TransportLayerTest, SendOnFlowNamesConnectionAndCloseIsAnnouncedOnEveryLoop) {
  std::mutex mu;
  std::vector<std::pair<FlowId, std::size_t>> closed;  // flow, loop index
  std::string why;
  layers_.push_back(std::make_unique<TransportLayer>(
      pool_, config({Protocol::kTcp}), [this](ReceivedMessage m) { inbox_.push(std::move(m)); }));
  TransportLayer& t = *layers_.back();
  t.setFlowClosedHandler([&](FlowId flow, const Status& status) {
    std::lock_guard lock(mu);
    EventLoop* loop = EventLoop::current();
    closed.emplace_back(flow, loop == nullptr ? 99 : loop->index());
    why = status.message();
  });
  ASSERT_TRUE(t.start().isOk());
  FlowId flow = 0;
  {
    RawSocket phone = RawSocket::tcpConnect(*t.localAddressFor(Protocol::kTcp, false));
    ASSERT_TRUE(
        phone.send(request("REGISTER", "reg-1", "SIP/2.0/TCP 10.0.0.5:5060;branch=z9hG4bKr")));
    auto reg = inbox_.pop();
    ASSERT_TRUE(reg.has_value());
    flow = reg->msg.flow;
    ASSERT_NE(flow, 0u);
    // No flow given: the transport picks the phone's connection and says so.
    std::string invite = request("INVITE", "inv-1", "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKi");
    std::promise<std::pair<Status, FlowId>> sent;
    t.sendOnFlow({Protocol::kTcp, reg->msg.remote, 0, {}}, invite, [&sent](Status s, FlowId used) {
      sent.set_value({std::move(s), used});
    });
    auto f = sent.get_future();
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    auto [status, used] = f.get();
    EXPECT_TRUE(status.isOk()) << status.toString();
    EXPECT_EQ(used, flow);
    EXPECT_EQ(phone.recvAtLeast(invite.size()), invite);
    std::lock_guard lock(mu);
    EXPECT_TRUE(closed.empty());
  }  // the phone goes away after receiving the INVITE
  ASSERT_TRUE(waitUntil([&] {
    std::lock_guard lock(mu);
    return closed.size() >= pool_.size();
  }));
  std::lock_guard lock(mu);
  ASSERT_EQ(closed.size(), pool_.size());
  std::set<std::size_t> loops;
  for (auto& [f, loop] : closed) {
    EXPECT_EQ(f, flow);
    loops.insert(loop);
  }
  EXPECT_EQ(loops.size(), pool_.size());  // once on each loop, on that loop
  EXPECT_TRUE(why == "peer closed" || why.rfind("read: ", 0) == 0) << why;
}

TEST_F(TransportLayerTest, WriteQueueOverflowClosesConnection) {
  TransportConfig cfg = config({Protocol::kTcp});
  cfg.max_write_queue_bytes = 1000;
  auto& t = startLayer(cfg);
  RawSocket phone = RawSocket::tcpConnect(*t.localAddressFor(Protocol::kTcp, false));
  ASSERT_TRUE(phone.send(request("REGISTER", "wq-1", "SIP/2.0/TCP 10.0.0.5;branch=z9hG4bKw")));
  auto reg = inbox_.pop();
  ASSERT_TRUE(reg.has_value());
  std::uint64_t before = counter("transport.write_queue_overflows");
  DoneWaiter done;
  t.send({Protocol::kTcp, reg->msg.remote, reg->msg.flow, {}}, std::string(2000, 'x'), done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), StatusCode::kUnavailable);
  EXPECT_EQ(counter("transport.write_queue_overflows") - before, 1u);
  EXPECT_TRUE(phone.waitClosed());
}

TEST_F(TransportLayerTest, OutgoingTcpConnectionCarriesBothWays) {
  Inbox server_inbox(pool_);
  auto& server = startLayer(config({Protocol::kTcp}), &server_inbox);
  auto& client = startLayer(config({Protocol::kUdp}));
  Address where = *server.localAddressFor(Protocol::kTcp, false);
  DoneWaiter done;
  client.send({Protocol::kTcp, where, 0, {}},
              request("OPTIONS", "out-1", "SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKo"), done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  ASSERT_TRUE(st->isOk()) << st->toString();
  auto got = server_inbox.pop();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->msg.message.callId(), "out-1");
  // The server answers on the same flow; the client's handler gets it.
  server.send({Protocol::kTcp, got->msg.remote, got->msg.flow, {}},
              "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKo\r\n"
              "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: out-1\r\n"
              "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
  auto resp = inbox_.pop();
  ASSERT_TRUE(resp.has_value());
  EXPECT_TRUE(resp->msg.message.isResponse());
  EXPECT_EQ(resp->msg.message.statusCode(), 200);
  EXPECT_NE(resp->msg.flow, 0u);
  EXPECT_EQ(client.connectionCount(), 1u);
}

TEST_F(TransportLayerTest, SendToClosedPortReportsUnavailable) {
  auto& t = startLayer(config({Protocol::kUdp}));
  // A bound UDP socket reserves the port number; nothing listens on TCP there.
  RawSocket reserve = RawSocket::udp(loopback4());
  Address dead = reserve.localAddress();
  std::uint64_t before = counter("transport.connections_closed");
  DoneWaiter done;
  t.send({Protocol::kTcp, dead, 0, {}}, request("OPTIONS", "dead", "SIP/2.0/TCP x;branch=z9hG4bK"),
         done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), StatusCode::kUnavailable);
  EXPECT_TRUE(waitUntil([&] { return t.connectionCount() == 0; }));
  EXPECT_GE(counter("transport.connections_closed") - before, 1u);
}

TEST_F(TransportLayerTest, SendAfterStopReportsUnavailable) {
  auto& t = startLayer(config({Protocol::kUdp}));
  t.stop();
  DoneWaiter done;
  t.send({Protocol::kUdp, *Address::parse("127.0.0.1", 9), 0, {}}, "x", done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), StatusCode::kUnavailable);
}

TEST_F(TransportLayerTest, Ipv6LoopbackUdpAndTcp) {
  Address v6 = *Address::parse("::1", 0);
  RawSocket probe = RawSocket::udp(v6);
  if (!probe.ok()) GTEST_SKIP() << "::1 unavailable";
  auto& t = startLayer(config({Protocol::kUdp, Protocol::kTcp}, v6));
  Address server = *t.localAddressFor(Protocol::kUdp, true);
  EXPECT_TRUE(server.v6);
  ASSERT_TRUE(probe.sendTo(
      server, request("OPTIONS", "v6-udp", "SIP/2.0/UDP [::1]:5060;rport;branch=z9hG4bK6")));
  auto got = inbox_.pop();
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->msg.remote.v6);
  EXPECT_EQ(got->msg.remote, probe.localAddress());
  auto via = got->msg.message.topVia();
  ASSERT_TRUE(via.isOk());
  ASSERT_NE(via->rport(), nullptr);
  EXPECT_EQ(via->rport()->value, std::to_string(probe.localAddress().port));
  // Reply through the layer to the v6 peer.
  DoneWaiter done;
  t.send({Protocol::kUdp, probe.localAddress(), 0, {}}, "SIP/2.0 200 OK\r\n\r\n", done.cb());
  ASSERT_TRUE(done.wait().has_value());
  EXPECT_TRUE(probe.recv().has_value());
  RawSocket c = RawSocket::tcpConnect(*t.localAddressFor(Protocol::kTcp, true));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c.send("\r\n\r\n"));
  EXPECT_EQ(c.recvAtLeast(2), "\r\n");
}

// ---------------------------------------------------------------------------------------------
// TLS, with a self-signed certificate for localhost / 127.0.0.1 made at test time.

class TlsTest : public TransportLayerTest {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/sipwake-tls-XXXXXX";
    char* dir = ::mkdtemp(tmpl);
    ASSERT_NE(dir, nullptr);
    dir_ = dir;
    cert_ = dir_ + "/cert.pem";
    key_ = dir_ + "/key.pem";
    std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
        key_ + " -out " + cert_ + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  TransportConfig tlsConfig(TlsConfig::Verify verify, bool with_cert, bool listen) {
    TransportConfig c;
    if (listen) c.listeners.push_back({Protocol::kTls, loopback4()});
    c.tls.verify = verify;
    c.tls.ca_file = cert_;
    if (with_cert) {
      c.tls.certificate_file = cert_;
      c.tls.private_key_file = key_;
    }
    return c;
  }

  static inline std::string dir_, cert_, key_;
};

TEST_F(TlsTest, RequestAndResponseOverTls) {
  Inbox server_inbox(pool_);
  auto& server = startLayer(tlsConfig(TlsConfig::Verify::kNone, true, true), &server_inbox);
  auto& client = startLayer(tlsConfig(TlsConfig::Verify::kPeer, false, false));
  Address where = *server.localAddressFor(Protocol::kTls, false);
  DoneWaiter done;
  client.send({Protocol::kTls, where, 0, "localhost"},
              request("OPTIONS", "tls-1", "SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKs"), done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  ASSERT_TRUE(st->isOk()) << st->toString();
  auto got = server_inbox.pop();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->msg.protocol, Protocol::kTls);
  EXPECT_EQ(got->msg.message.callId(), "tls-1");
  server.send({Protocol::kTls, got->msg.remote, got->msg.flow, {}},
              "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKs\r\n"
              "From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: tls-1\r\n"
              "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
  auto resp = inbox_.pop();
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->msg.message.statusCode(), 200);
  EXPECT_EQ(resp->msg.protocol, Protocol::kTls);
}

TEST_F(TlsTest, ClientVerifiesByIpWithoutServerName) {
  Inbox server_inbox(pool_);
  auto& server = startLayer(tlsConfig(TlsConfig::Verify::kNone, true, true), &server_inbox);
  auto& client = startLayer(tlsConfig(TlsConfig::Verify::kPeer, false, false));
  DoneWaiter done;
  client.send({Protocol::kTls, *server.localAddressFor(Protocol::kTls, false), 0, {}},
              request("OPTIONS", "tls-ip", "SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKs"), done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->isOk()) << st->toString();
  EXPECT_TRUE(server_inbox.pop().has_value());
}

TEST_F(TlsTest, WrongServerNameFails) {
  Inbox server_inbox(pool_);
  auto& server = startLayer(tlsConfig(TlsConfig::Verify::kNone, true, true), &server_inbox);
  auto& client = startLayer(tlsConfig(TlsConfig::Verify::kPeer, false, false));
  std::uint64_t before = counter("transport.tls_handshake_failures");
  DoneWaiter done;
  client.send({Protocol::kTls, *server.localAddressFor(Protocol::kTls, false), 0, "wrong.example"},
              request("OPTIONS", "tls-bad", "SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKs"), done.cb());
  auto st = done.wait();
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), StatusCode::kUnavailable);
  EXPECT_GE(counter("transport.tls_handshake_failures") - before, 1u);
}

TEST_F(TlsTest, RequireModeAcceptsClientWithCertificate) {
  Inbox server_inbox(pool_);
  auto& server = startLayer(tlsConfig(TlsConfig::Verify::kRequire, true, true), &server_inbox);
  auto& client = startLayer(tlsConfig(TlsConfig::Verify::kPeer, true, false));
  DoneWaiter done;
  client.send({Protocol::kTls, *server.localAddressFor(Protocol::kTls, false), 0, "localhost"},
              request("OPTIONS", "tls-mutual", "SIP/2.0/TLS 127.0.0.1;branch=z9hG4bKs"), done.cb());
  ASSERT_TRUE(done.wait().has_value());
  auto got = server_inbox.pop();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->msg.message.callId(), "tls-mutual");
}

TEST_F(TlsTest, CrlfPingOverTls) {
  Inbox server_inbox(pool_);
  auto& server = startLayer(tlsConfig(TlsConfig::Verify::kNone, true, true), &server_inbox);
  std::uint64_t before = counter("transport.keepalive_pongs");
  auto& client = startLayer(tlsConfig(TlsConfig::Verify::kPeer, false, false));
  DoneWaiter done;
  client.send({Protocol::kTls, *server.localAddressFor(Protocol::kTls, false), 0, "localhost"},
              "\r\n\r\n", done.cb());
  ASSERT_TRUE(done.wait().has_value());
  EXPECT_TRUE(waitUntil([&] { return counter("transport.keepalive_pongs") > before; }));
}

TEST_F(TlsTest, MissingCertificateFailsStart) {
  TransportConfig c = tlsConfig(TlsConfig::Verify::kNone, false, true);
  c.tls.certificate_file = dir_ + "/missing.pem";
  c.tls.private_key_file = key_;
  TransportLayer t(pool_, c, [](ReceivedMessage) {});
  Status s = t.start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sipwake::transport
