// Client transactions (RFC 3261 §17.1, §9.1, RFC 6026) under a fake clock.
#include <gtest/gtest.h>

#include <set>

#include "transaction_test_util.h"

namespace sipwake::transaction {
namespace {

using transport::Protocol;

class ClientTransactionTest : public TransactionTest {
 protected:
  ClientTransaction* start(const Msg& m, Protocol protocol = Protocol::kUdp,
                           RequestOptions options = {}) {
    transport::SendTarget target;
    target.protocol = protocol;
    target.remote = testing::FakeTransport::address(203, 0, 113, 5, 5060);
    if (options.user == nullptr) options.user = &client_;
    auto tx = layer_->sendRequest(parse(m.request()), target, options);
    EXPECT_TRUE(tx.isOk()) << tx.status().toString();
    return tx.isOk() ? *tx : nullptr;
  }
  // A response as the next hop would send it: our Via on top.
  std::string responseTo(const ClientTransaction& tx, Msg m, int code, const char* reason,
                         const std::string& to_tag = "uas-tag") {
    m.branch = std::string(tx.branch());
    m.sent_by = "192.0.2.1:5060";
    if (code > 100) m.to_tag = to_tag;
    return m.response(code, reason);
  }
  std::vector<Duration> retransmitTimes(Duration until) {
    std::vector<Duration> times;
    Duration elapsed{};
    std::size_t count = sentCount();
    while (elapsed < until) {
      timers_.advance(milliseconds(100));
      elapsed += milliseconds(100);
      for (; count < sentCount(); ++count) times.push_back(elapsed);
    }
    return times;
  }

  RecordingClient client_;
};

std::vector<Duration> ms(std::initializer_list<int> v) {
  std::vector<Duration> out;
  for (int x : v) out.push_back(milliseconds(x));
  return out;
}

TEST_F(ClientTransactionTest, LayerPushesViaWithFreshMagicCookieBranch) {
  Msg invite;
  ClientTransaction* a = start(invite);
  Msg other = invite;
  other.call_id = "call-2";
  ClientTransaction* b = start(other);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->branch().starts_with("z9hG4bK"));
  EXPECT_NE(a->branch(), b->branch());
  sip::Message sent_invite = sent(0);
  auto vias = sent_invite.vias();
  ASSERT_TRUE(vias.isOk());
  ASSERT_EQ(vias->size(), 2u);
  EXPECT_EQ((*vias)[0].branch(), a->branch());
  EXPECT_EQ((*vias)[0].transport, "UDP");
  EXPECT_EQ((*vias)[0].host, "192.0.2.1");
  EXPECT_EQ((*vias)[1].branch(), "z9hG4bKclient1");  // the previous hop's Via is kept

  RequestOptions given;
  given.branch = "z9hG4bKchosen";
  ClientTransaction* c = start(invite, Protocol::kUdp, given);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->branch(), "z9hG4bKchosen");
}

TEST_F(ClientTransactionTest, InviteTimerADoublesAndTimerBTimesOutAt32s) {
  ClientTransaction* tx = start(Msg{});
  ASSERT_TRUE(tx);
  EXPECT_EQ(tx->state(), ClientState::kCalling);
  ASSERT_EQ(sentCount(), 1u);
  auto times = retransmitTimes(seconds(32) - milliseconds(100));
  EXPECT_EQ(times, ms({500, 1500, 3500, 7500, 15500, 31500}));
  for (std::size_t i = 1; i < sentCount(); ++i) {
    EXPECT_EQ(transport_.sent[i].bytes, transport_.sent[0].bytes);
  }
  EXPECT_EQ(client_.timeouts, 0);
  timers_.advance(milliseconds(100));  // t = 32 s: Timer B
  EXPECT_EQ(client_.timeouts, 1);
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
  EXPECT_EQ(client_.terminated, 1);
  EXPECT_EQ(timers_.pending(), 0u);
}

TEST_F(ClientTransactionTest, NonInviteTimerECapsAtT2AndTimerFTimesOut) {
  Msg reg;
  reg.method = "REGISTER";
  ClientTransaction* tx = start(reg);
  ASSERT_TRUE(tx);
  EXPECT_EQ(tx->state(), ClientState::kTrying);
  auto times = retransmitTimes(seconds(32) - milliseconds(100));
  EXPECT_EQ(times, ms({500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500}));
  timers_.advance(milliseconds(100));
  EXPECT_EQ(client_.timeouts, 1);
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
}

TEST_F(ClientTransactionTest, NonInviteProceedingRetransmitsEveryT2) {
  Msg reg;
  reg.method = "REGISTER";
  ClientTransaction* tx = start(reg);
  timers_.advance(milliseconds(200));
  deliver(responseTo(*tx, reg, 100, "Trying"));
  EXPECT_EQ(tx->state(), ClientState::kProceeding);
  EXPECT_EQ(client_.codes, std::vector<int>({100}));
  auto times = retransmitTimes(milliseconds(12300));  // until t = 12.5 s
  // Timer E was due at 0.5 s; from then on it is reset to T2.
  EXPECT_EQ(times, ms({300, 4300, 8300, 12300}));
  // Timer F still fires in Proceeding.
  timers_.advance(seconds(20));
  EXPECT_EQ(client_.timeouts, 1);
}

TEST_F(ClientTransactionTest, NonInviteFinalThenTimerK) {
  Msg reg;
  reg.method = "REGISTER";
  ClientTransaction* tx = start(reg);
  std::string ok = responseTo(*tx, reg, 200, "OK");
  deliver(ok);
  EXPECT_EQ(tx->state(), ClientState::kCompleted);
  deliver(ok);  // retransmission absorbed
  EXPECT_EQ(client_.codes, std::vector<int>({200}));
  EXPECT_EQ(sendsDuring(seconds(5) - milliseconds(1)), 0u);  // no more retransmissions
  EXPECT_EQ(layer_->clientTransactionCount(), 1u);
  timers_.advance(milliseconds(1));  // Timer K = T4
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
  EXPECT_EQ(client_.timeouts, 0);
}

TEST_F(ClientTransactionTest, ReliableHasNoRetransmissionsAndZeroTimerK) {
  Msg reg;
  reg.method = "REGISTER";
  ClientTransaction* tx = start(reg, Protocol::kTcp);
  ASSERT_TRUE(tx);
  EXPECT_EQ(sendsDuring(seconds(31)), 0u);
  deliver(responseTo(*tx, reg, 200, "OK"), Protocol::kTcp);
  timers_.advance(Duration::zero());
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
  EXPECT_EQ(client_.codes, std::vector<int>({200}));
}

TEST_F(ClientTransactionTest, InviteProvisionalStopsTimersAAndB) {
  Msg invite;
  ClientTransaction* tx = start(invite);
  deliver(responseTo(*tx, invite, 100, "Trying"));
  deliver(responseTo(*tx, invite, 180, "Ringing"));
  EXPECT_EQ(tx->state(), ClientState::kProceeding);
  EXPECT_EQ(client_.codes, std::vector<int>({100, 180}));
  EXPECT_EQ(sendsDuring(seconds(120)), 0u);
  EXPECT_EQ(client_.timeouts, 0);  // Timer C is the proxy's business
  EXPECT_EQ(layer_->clientTransactionCount(), 1u);
}

TEST_F(ClientTransactionTest, InviteNonTwoXxGeneratesAckAndAbsorbsRetransmissions) {
  Msg invite;
  invite.extra = "Route: <sip:proxy1.example.com;lr>\r\nRoute: <sip:proxy2.example.com;lr>\r\n";
  ClientTransaction* tx = start(invite);
  deliver(responseTo(*tx, invite, 180, "Ringing"));
  std::string busy = responseTo(*tx, invite, 486, "Busy Here", "callee-tag");
  deliver(busy);
  EXPECT_EQ(tx->state(), ClientState::kCompleted);
  EXPECT_EQ(client_.codes, std::vector<int>({180, 486}));
  ASSERT_EQ(sentCount(), 2u);
  sip::Message ack = sent(1);
  ASSERT_TRUE(ack.isRequest());
  EXPECT_EQ(ack.method(), sip::Method::kAck);
  EXPECT_EQ(ack.requestUriText(), "sip:bob@example.com");
  auto vias = ack.vias();
  ASSERT_TRUE(vias.isOk());
  ASSERT_EQ(vias->size(), 1u);  // only the top Via of the INVITE
  EXPECT_EQ((*vias)[0].branch(), tx->branch());
  EXPECT_EQ(ack.to()->tag(), "callee-tag");
  EXPECT_EQ(ack.from()->tag(), "from-1");
  EXPECT_EQ(ack.callId(), "call-1@10.0.0.1");
  EXPECT_EQ(ack.cseq()->number, 1u);
  EXPECT_EQ(ack.cseq()->method_text, "ACK");
  auto routes = ack.routes();
  ASSERT_TRUE(routes.isOk());
  ASSERT_EQ(routes->size(), 2u);
  EXPECT_EQ((*routes)[0].uri.host, "proxy1.example.com");
  EXPECT_EQ(transport_.sent[1].target.remote, tx->target().remote);
  // A retransmitted 486 is re-ACKed and not passed up.
  deliver(busy);
  ASSERT_EQ(sentCount(), 3u);
  EXPECT_EQ(transport_.sent[2].bytes, transport_.sent[1].bytes);
  EXPECT_EQ(client_.codes.size(), 2u);
  // Timer D = 32 s on UDP.
  timers_.advance(seconds(32) - milliseconds(1));
  EXPECT_EQ(layer_->clientTransactionCount(), 1u);
  timers_.advance(milliseconds(1));
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
  EXPECT_EQ(client_.timeouts, 0);
}

TEST_F(ClientTransactionTest, ReliableInviteTimerDIsZero) {
  Msg invite;
  ClientTransaction* tx = start(invite, Protocol::kTcp);
  deliver(responseTo(*tx, invite, 404, "Not Found"), Protocol::kTcp);
  ASSERT_EQ(sentCount(), 2u);
  EXPECT_EQ(sent(1).method(), sip::Method::kAck);
  timers_.advance(Duration::zero());
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
}

TEST_F(ClientTransactionTest, InviteTwoXxAcceptedPassesEvery2xxUntilTimerM) {
  Msg invite;
  ClientTransaction* tx = start(invite);
  std::string ok = responseTo(*tx, invite, 200, "OK");
  deliver(ok);
  EXPECT_EQ(tx->state(), ClientState::kAccepted);
  EXPECT_EQ(sentCount(), 1u);  // no ACK for 2xx from the transaction layer
  deliver(ok);                 // retransmission: to the TU (RFC 6026)
  deliver(responseTo(*tx, invite, 200, "OK", "other-fork"));
  EXPECT_EQ(client_.codes, std::vector<int>({200, 200, 200}));
  deliver(responseTo(*tx, invite, 486, "Busy Here"));  // non-2xx in Accepted: dropped
  EXPECT_EQ(client_.codes.size(), 3u);
  EXPECT_EQ(sendsDuring(seconds(32) - milliseconds(1)), 0u);  // no Timer A after a final
  EXPECT_EQ(layer_->clientTransactionCount(), 1u);
  timers_.advance(milliseconds(1));  // Timer M = 64*T1
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
  EXPECT_EQ(client_.timeouts, 0);
  // Late 2xx after the transaction is gone: stray, for the proxy to forward statelessly.
  deliver(ok);
  EXPECT_EQ(tu_.strays.size(), 1u);
}

TEST_F(ClientTransactionTest, TransportErrorIsReportedAfterSendRequestReturns) {
  transport_.fail_sends = 1;
  Msg opt;
  opt.method = "OPTIONS";
  ClientTransaction* tx = start(opt);
  ASSERT_TRUE(tx);
  EXPECT_EQ(client_.transport_errors, 0);
  timers_.advance(Duration::zero());
  EXPECT_EQ(client_.transport_errors, 1);
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
  EXPECT_EQ(client_.terminated, 1);
  EXPECT_EQ(sendsDuring(seconds(40)), 0u);
  EXPECT_EQ(client_.timeouts, 0);
}

TEST_F(ClientTransactionTest, ResponsesMatchByBranchAndCSeqMethod) {
  Msg invite;
  ClientTransaction* tx = start(invite);
  // Same branch, CSeq method CANCEL: no CANCEL transaction exists, so it is stray.
  Msg cancel_resp = invite;
  cancel_resp.cseq_method = "CANCEL";
  deliver(responseTo(*tx, cancel_resp, 200, "OK"));
  EXPECT_EQ(tu_.strays.size(), 1u);
  EXPECT_TRUE(client_.codes.empty());
  // Unknown branch: stray.
  Msg other = invite;
  other.branch = "z9hG4bKunknown";
  other.sent_by = "192.0.2.1:5060";
  deliver(other.response(180, "Ringing"));
  EXPECT_EQ(tu_.strays.size(), 2u);
}

TEST_F(ClientTransactionTest, ParallelForkedTransactionsAreIndependent) {
  RecordingClient fork_a, fork_b;
  Msg invite;
  RequestOptions oa;
  oa.user = &fork_a;
  oa.user_data = 1;
  RequestOptions ob;
  ob.user = &fork_b;
  ob.user_data = 2;
  ClientTransaction* a = start(invite, Protocol::kUdp, oa);
  ClientTransaction* b = start(invite, Protocol::kUdp, ob);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->userData(), 1u);
  deliver(responseTo(*a, invite, 180, "Ringing"));
  deliver(responseTo(*b, invite, 486, "Busy Here"));
  EXPECT_EQ(fork_a.codes, std::vector<int>({180}));
  EXPECT_EQ(fork_b.codes, std::vector<int>({486}));
  EXPECT_EQ(a->state(), ClientState::kProceeding);
}

TEST_F(ClientTransactionTest, CancelWaitsForProvisionalThenMatchesOwnResponse) {
  Msg invite;
  invite.extra = "Route: <sip:proxy1.example.com;lr>\r\n";
  ClientTransaction* tx = start(invite);
  ASSERT_TRUE(layer_->cancel(*tx, "SIP;cause=200;text=\"Call completed elsewhere\"").isOk());
  EXPECT_TRUE(tx->cancelRequested());
  EXPECT_EQ(sentCount(), 1u);  // §9.1: not before a provisional response
  timers_.advance(milliseconds(100));
  deliver(responseTo(*tx, invite, 180, "Ringing"));
  ASSERT_EQ(sentCount(), 2u);
  sip::Message cancel = sent(1);
  EXPECT_EQ(cancel.method(), sip::Method::kCancel);
  EXPECT_EQ(cancel.requestUriText(), "sip:bob@example.com");
  auto vias = cancel.vias();
  ASSERT_TRUE(vias.isOk());
  ASSERT_EQ(vias->size(), 1u);
  EXPECT_EQ((*vias)[0].branch(), tx->branch());
  EXPECT_EQ(cancel.cseq()->number, 1u);
  EXPECT_EQ(cancel.cseq()->method_text, "CANCEL");
  EXPECT_EQ(cancel.to()->tag(), "");
  EXPECT_EQ(cancel.from()->tag(), "from-1");
  EXPECT_EQ(cancel.callId(), "call-1@10.0.0.1");
  EXPECT_EQ(cancel.count(sip::HeaderId::kRoute), 1u);
  ASSERT_NE(cancel.find(sip::HeaderId::kReason), nullptr);
  EXPECT_EQ(transport_.sent[1].target.remote, tx->target().remote);
  EXPECT_EQ(layer_->clientTransactionCount(), 2u);  // INVITE + CANCEL
  // 200 for the CANCEL is matched by the CANCEL transaction (not stray, not the INVITE's user).
  Msg cancel_resp = invite;
  cancel_resp.cseq_method = "CANCEL";
  deliver(responseTo(*tx, cancel_resp, 200, "OK"));
  EXPECT_TRUE(tu_.strays.empty());
  EXPECT_EQ(client_.codes, std::vector<int>({180}));
  // The INVITE ends with 487, which is ACKed.
  deliver(responseTo(*tx, invite, 487, "Request Terminated"));
  EXPECT_EQ(client_.codes, std::vector<int>({180, 487}));
  EXPECT_EQ(lastSent().method(), sip::Method::kAck);
  // Repeat cancel after the final response is refused.
  EXPECT_FALSE(layer_->cancel(*tx).isOk());
}

TEST_F(ClientTransactionTest, CancelNotSentWhenFinalArrivesFirst) {
  Msg invite;
  ClientTransaction* tx = start(invite);
  ASSERT_TRUE(layer_->cancel(*tx).isOk());
  deliver(responseTo(*tx, invite, 200, "OK"));
  EXPECT_EQ(sentCount(), 1u);
  EXPECT_EQ(client_.codes, std::vector<int>({200}));
}

TEST_F(ClientTransactionTest, CancelledInviteWithoutFinalTimesOutAfter64T1) {
  Msg invite;
  ClientTransaction* tx = start(invite);
  deliver(responseTo(*tx, invite, 180, "Ringing"));
  ASSERT_TRUE(layer_->cancel(*tx).isOk());
  ASSERT_EQ(sentCount(), 2u);
  timers_.advance(seconds(32) - milliseconds(1));
  EXPECT_EQ(client_.timeouts, 0);
  timers_.advance(milliseconds(1));
  EXPECT_EQ(client_.timeouts, 1);
  timers_.advance(seconds(10));
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
}

TEST_F(ClientTransactionTest, RetransmitNowSendsAgainAndKeepsTimerA) {
  Msg invite;
  ClientTransaction* tx = start(invite);
  timers_.advance(milliseconds(600));  // Timer A: once at 500 ms
  ASSERT_EQ(sentCount(), 2u);
  layer_->retransmitNow(*tx);
  ASSERT_EQ(sentCount(), 3u);
  EXPECT_EQ(transport_.sent[2].bytes, transport_.sent[0].bytes);
  EXPECT_EQ(retransmitTimes(seconds(1)), ms({900}));  // still 1500 ms after the start
  deliver(responseTo(*tx, invite, 180, "Ringing"));
  layer_->retransmitNow(*tx);  // it answered: nothing to send again
  EXPECT_EQ(sentCount(), 4u);
}

TEST_F(ClientTransactionTest, RetransmitNowIsANoOpOverReliableTransports) {
  ClientTransaction* tx = start(Msg{}, Protocol::kTcp);
  layer_->retransmitNow(*tx);
  EXPECT_EQ(sentCount(), 1u);
}

TEST_F(ClientTransactionTest, StopRetransmissionsLeavesTimerBAndResponses) {
  Msg invite;
  ClientTransaction* tx = start(invite);
  layer_->stopRetransmissions(*tx);
  EXPECT_EQ(sendsDuring(seconds(30)), 0u);
  deliver(responseTo(*tx, invite, 486, "Busy Here"));  // still matched (and ACKed)
  EXPECT_EQ(client_.codes, std::vector<int>({486}));
  EXPECT_EQ(lastSent().method(), sip::Method::kAck);

  ClientTransaction* silent = start(Msg{});
  layer_->stopRetransmissions(*silent);
  timers_.advance(seconds(32));  // Timer B
  EXPECT_EQ(client_.timeouts, 1);
}

TEST_F(ClientTransactionTest, DetachedInviteStillAcksSilently) {
  Msg invite;
  ClientTransaction* tx = start(invite);
  tx->setUser(nullptr);
  deliver(responseTo(*tx, invite, 503, "Service Unavailable"));
  EXPECT_TRUE(client_.codes.empty());
  ASSERT_EQ(sentCount(), 2u);
  EXPECT_EQ(sent(1).method(), sip::Method::kAck);
  timers_.advance(seconds(40));
  EXPECT_EQ(client_.terminated, 0);
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
}

TEST_F(ClientTransactionTest, RefusesAckAndFullTable) {
  Msg ack;
  ack.method = "ACK";
  transport::SendTarget target;
  EXPECT_FALSE(layer_->sendRequest(parse(ack.request()), target).isOk());
  LayerConfig config;
  config.max_transactions = 1;
  makeLayer(config);
  EXPECT_TRUE(start(Msg{}));
  Msg second;
  second.call_id = "call-2";
  auto r = layer_->sendRequest(parse(second.request()), target);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange);
}

TEST_F(ClientTransactionTest, CustomTimerValues) {
  LayerConfig config;
  config.timers.t1 = milliseconds(100);
  config.timers.t2 = milliseconds(400);
  config.timers.timer_f = seconds(2);
  makeLayer(config);
  Msg opt;
  opt.method = "OPTIONS";
  start(opt);
  auto times = retransmitTimes(milliseconds(1900));
  EXPECT_EQ(times, ms({100, 300, 700, 1100, 1500, 1900}));
  timers_.advance(milliseconds(100));
  EXPECT_EQ(client_.timeouts, 1);
}

// §8.1.3.1 / §17.1.4: a TCP/TLS connection that closes after the request was written is a
// transport error for every transaction still waiting for a final response on it, reported at
// once (the TU's 503), not after Timer B / F.
class FlowClosedTest : public ClientTransactionTest {
 protected:
  ClientTransaction* startOnFlow(const Msg& m, transport::FlowId flow,
                                 ClientTransactionUser* user) {
    transport::SendTarget target;
    target.protocol = Protocol::kTcp;
    target.remote = testing::FakeTransport::address(203, 0, 113, 5, 5060);
    target.flow = flow;  // the fake reports this flow as the one written to
    RequestOptions options;
    options.user = user;
    auto tx = layer_->sendRequest(parse(m.request()), target, options);
    EXPECT_TRUE(tx.isOk()) << tx.status().toString();
    return tx.isOk() ? *tx : nullptr;
  }
};

TEST_F(FlowClosedTest, InviteAndNonInviteOnClosedFlowFailAtOnce) {
  Msg invite;
  Msg options;
  options.method = "OPTIONS";
  options.call_id = "call-2";
  RecordingClient invite_user;
  RecordingClient options_user;
  ClientTransaction* inv = startOnFlow(invite, 0x105, &invite_user);
  ClientTransaction* opt = startOnFlow(options, 0x105, &options_user);
  ASSERT_TRUE(inv && opt);
  timers_.advance(seconds(1));
  EXPECT_EQ(invite_user.transport_errors + options_user.transport_errors, 0);
  std::size_t sends = sentCount();

  layer_->onFlowClosed(0x105, unavailable("peer closed"));
  EXPECT_EQ(invite_user.transport_errors, 0);  // never from inside the call
  timers_.advance(Duration::zero());
  EXPECT_EQ(invite_user.transport_errors, 1);
  EXPECT_EQ(options_user.transport_errors, 1);
  EXPECT_EQ(invite_user.timeouts + options_user.timeouts, 0);
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
  EXPECT_EQ(invite_user.terminated, 1);
  EXPECT_EQ(options_user.terminated, 1);
  EXPECT_EQ(sentCount(), sends);  // nothing is sent on a closed flow (no ACK, no CANCEL)
  timers_.advance(seconds(40));
  EXPECT_EQ(invite_user.transport_errors + options_user.transport_errors, 2);
  EXPECT_EQ(invite_user.timeouts + options_user.timeouts, 0);
  layer_->onFlowClosed(0x105, unavailable("peer closed"));  // again: nothing left to fail
  timers_.advance(Duration::zero());
  EXPECT_EQ(invite_user.transport_errors + options_user.transport_errors, 2);
}

TEST_F(FlowClosedTest, ProceedingInviteFailsButFinishedAndOtherFlowsDoNot) {
  Msg ringing;
  Msg answered;
  answered.call_id = "call-2";
  Msg elsewhere;
  elsewhere.call_id = "call-3";
  RecordingClient ringing_user;
  RecordingClient answered_user;
  RecordingClient elsewhere_user;
  ClientTransaction* a = startOnFlow(ringing, 0x205, &ringing_user);
  ClientTransaction* b = startOnFlow(answered, 0x205, &answered_user);
  ClientTransaction* c = startOnFlow(elsewhere, 0x305, &elsewhere_user);
  ASSERT_TRUE(a && b && c);
  deliver(responseTo(*a, ringing, 180, "Ringing"), Protocol::kTcp);
  deliver(responseTo(*b, answered, 200, "OK"), Protocol::kTcp);
  EXPECT_EQ(a->state(), ClientState::kProceeding);
  EXPECT_EQ(b->state(), ClientState::kAccepted);

  layer_->onFlowClosed(0x205, unavailable("connection reset"));
  layer_->onFlowClosed(0x999, unavailable("never used"));
  timers_.advance(Duration::zero());
  EXPECT_EQ(ringing_user.transport_errors, 1);
  EXPECT_EQ(answered_user.transport_errors, 0);  // has its final: Timer M runs on
  EXPECT_EQ(b->state(), ClientState::kAccepted);
  EXPECT_EQ(elsewhere_user.transport_errors, 0);
  EXPECT_EQ(c->state(), ClientState::kCalling);
  EXPECT_EQ(layer_->clientTransactionCount(), 2u);
  // The other flow's transaction still fails when its own flow goes.
  layer_->onFlowClosed(0x305, unavailable("idle timeout"));
  timers_.advance(Duration::zero());
  EXPECT_EQ(elsewhere_user.transport_errors, 1);
  EXPECT_EQ(elsewhere_user.timeouts, 0);
}

TEST_F(FlowClosedTest, UdpAndUnknownFlowTransactionsAreUntouched) {
  Msg invite;
  ClientTransaction* udp = start(invite);  // UDP: no flow
  ASSERT_TRUE(udp);
  layer_->onFlowClosed(0, unavailable("no such flow"));
  timers_.advance(Duration::zero());
  EXPECT_EQ(client_.transport_errors, 0);
  EXPECT_EQ(udp->state(), ClientState::kCalling);
  timers_.advance(seconds(32));  // Timer B still governs it
  EXPECT_EQ(client_.timeouts, 1);
}

}  // namespace
}  // namespace sipwake::transaction
