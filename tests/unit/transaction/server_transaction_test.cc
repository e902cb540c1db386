// Server transactions (RFC 3261 §17.2, RFC 6026) under a fake clock.
#include <gtest/gtest.h>

#include "transaction_test_util.h"

namespace sipwake::transaction {
namespace {

using transport::Protocol;

class ServerTransactionTest : public TransactionTest {
 protected:
  // The TU answers every request synchronously with `code`.
  void answerWith(int code, const char* reason) {
    tu_.answer = [code, reason](ServerTransaction& tx, const sip::Message& request) {
      ASSERT_TRUE(tx.respond(sip::makeResponseTo(request, code, reason, "uas-tag")).isOk());
    };
  }
  Status respond(int code, const char* reason, std::size_t i = 0) {
    return tu_.request_txs.at(i)->respond(
        sip::makeResponseTo(tu_.requests.at(i), code, reason, "uas-tag"));
  }
};

TEST_F(ServerTransactionTest, InviteGets100TryingAfter200ms) {
  Msg invite;
  deliver(invite.request());
  ASSERT_EQ(tu_.requests.size(), 1u);
  EXPECT_EQ(tu_.request_txs[0]->state(), ServerState::kProceeding);
  EXPECT_EQ(sendsDuring(milliseconds(199)), 0u);
  EXPECT_EQ(sendsDuring(milliseconds(1)), 1u);
  sip::Message trying = lastSent();
  EXPECT_EQ(trying.statusCode(), 100);
  EXPECT_EQ(trying.callId(), "call-1@10.0.0.1");
  auto to = trying.to();
  ASSERT_TRUE(to.isOk());
  EXPECT_EQ(to->tag(), "");  // a 100 never adds a To tag
  auto via = trying.topVia();
  ASSERT_TRUE(via.isOk());
  EXPECT_EQ(via->branch(), "z9hG4bKclient1");
  auto cseq = trying.cseq();
  ASSERT_TRUE(cseq.isOk());
  EXPECT_EQ(cseq->number, 1u);
  EXPECT_EQ(cseq->method_text, "INVITE");
  // Back to the source (rport-less Via sent-by equals source here).
  EXPECT_EQ(transport_.sent.back().target.remote, remote_);
  EXPECT_EQ(sendsDuring(seconds(60)), 0u);  // never repeated on its own
}

TEST_F(ServerTransactionTest, No100TryingWhenTuAnswersWithin200ms) {
  deliver(Msg{}.request());
  timers_.advance(milliseconds(150));
  ASSERT_TRUE(respond(180, "Ringing").isOk());
  ASSERT_EQ(sentCount(), 1u);
  EXPECT_EQ(sent(0).statusCode(), 180);
  EXPECT_EQ(sendsDuring(seconds(1)), 0u);  // no 100 after a provisional from the TU
}

TEST_F(ServerTransactionTest, TryingDelayConfigurableAndDisable) {
  LayerConfig config;
  config.trying_delay = Duration::zero();
  makeLayer(config);
  deliver(Msg{}.request());
  ASSERT_EQ(sentCount(), 1u);
  EXPECT_EQ(sent(0).statusCode(), 100);

  config.auto_trying = false;
  makeLayer(config);
  Msg other;
  other.branch = "z9hG4bKother";
  deliver(other.request());
  EXPECT_EQ(sendsDuring(seconds(5)), 0u);
}

TEST_F(ServerTransactionTest, InviteRetransmissionResendsLastProvisional) {
  Msg invite;
  deliver(invite.request());
  ASSERT_TRUE(respond(180, "Ringing").isOk());
  ASSERT_EQ(sentCount(), 1u);
  deliver(invite.request());
  ASSERT_EQ(sentCount(), 2u);
  EXPECT_EQ(sent(1).statusCode(), 180);
  EXPECT_EQ(transport_.sent[0].bytes, transport_.sent[1].bytes);
  EXPECT_EQ(tu_.requests.size(), 1u);  // the TU never sees a retransmission
  EXPECT_EQ(layer_->serverTransactionCount(), 1u);
}

TEST_F(ServerTransactionTest, InviteRetransmissionBefore200msSends100AtOnce) {
  Msg invite;
  deliver(invite.request());
  timers_.advance(milliseconds(50));
  deliver(invite.request());
  ASSERT_EQ(sentCount(), 1u);
  EXPECT_EQ(sent(0).statusCode(), 100);
  EXPECT_EQ(sendsDuring(seconds(1)), 0u);
}

TEST_F(ServerTransactionTest, InviteNonTwoXxRetransmittedWithTimerGUntilTimerH) {
  answerWith(486, "Busy Here");
  deliver(Msg{}.request());
  ASSERT_EQ(sentCount(), 1u);
  ServerTransaction* tx = tu_.request_txs[0];
  EXPECT_EQ(tx->state(), ServerState::kCompleted);
  // Timer G: T1, 2*T1, 4*T1, then capped at T2 = 4 s.
  const int expected_at_ms[] = {500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500};
  Duration elapsed{};
  for (int at : expected_at_ms) {
    EXPECT_EQ(sendsDuring(milliseconds(at) - elapsed - milliseconds(1)), 0u) << at;
    EXPECT_EQ(sendsDuring(milliseconds(1)), 1u) << at;
    EXPECT_EQ(lastSent().statusCode(), 486);
    elapsed = milliseconds(at);
  }
  EXPECT_TRUE(tu_.ack_timeouts.empty());
  // Timer H = 64*T1 = 32 s.
  timers_.advance(seconds(32) - elapsed - milliseconds(1));
  EXPECT_TRUE(tu_.ack_timeouts.empty());
  timers_.advance(milliseconds(1));
  EXPECT_EQ(tu_.ack_timeouts.size(), 1u);
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
  EXPECT_EQ(tu_.terminated, 1);
  EXPECT_EQ(timers_.pending(), 0u);
}

TEST_F(ServerTransactionTest, AckForNonTwoXxIsAbsorbedAndConfirms) {
  answerWith(486, "Busy Here");
  Msg invite;
  deliver(invite.request());
  ServerTransaction* tx = tu_.request_txs[0];
  Msg ack = invite;
  ack.method = "ACK";
  ack.to_tag = "uas-tag";
  timers_.advance(milliseconds(600));  // one Timer G retransmission
  ASSERT_EQ(sentCount(), 2u);
  deliver(ack.request());
  EXPECT_EQ(tx->state(), ServerState::kConfirmed);
  EXPECT_TRUE(tu_.acks.empty());  // absorbed: the TU never sees the non-2xx ACK
  deliver(ack.request());         // retransmitted ACK absorbed in Confirmed
  EXPECT_TRUE(tu_.acks.empty());
  // No more retransmissions; Timer I = T4 = 5 s, then gone. No Timer H timeout.
  EXPECT_EQ(sendsDuring(milliseconds(4999)), 0u);
  EXPECT_EQ(layer_->serverTransactionCount(), 1u);
  timers_.advance(milliseconds(1));
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
  EXPECT_TRUE(tu_.ack_timeouts.empty());
}

// The transport keeps an INVITE's CANCEL/ACK on the INVITE's loop while the transaction lives.
TEST_F(ServerTransactionTest, InviteIsPinnedOnTheTransportWhileItLives) {
  answerWith(486, "Busy Here");
  Msg invite;
  deliver(invite.request());
  ASSERT_EQ(transport_.pinned.size(), 1u);
  EXPECT_EQ(*transport_.pinned.begin(), invite.branch + "\n" + invite.sent_by)
      << "key = branch + sent-by";
  Msg options = invite;
  options.method = "OPTIONS";
  options.branch = "z9hG4bKopt";
  deliver(options.request());  // non-INVITE: not pinned
  EXPECT_EQ(transport_.pinned.size(), 1u);
  Msg ack = invite;
  ack.method = "ACK";
  ack.to_tag = "uas-tag";
  deliver(ack.request());
  timers_.advance(seconds(5));                      // Timer I
  EXPECT_EQ(layer_->serverTransactionCount(), 1u);  // the OPTIONS (Timer J) still lives
  EXPECT_TRUE(transport_.pinned.empty());
}

TEST_F(ServerTransactionTest, RetransmittedInviteInCompletedResendsFinal) {
  answerWith(404, "Not Found");
  Msg invite;
  deliver(invite.request());
  deliver(invite.request());
  ASSERT_EQ(sentCount(), 2u);
  EXPECT_EQ(sent(1).statusCode(), 404);
  EXPECT_EQ(tu_.requests.size(), 1u);
}

TEST_F(ServerTransactionTest, TwoXxMovesToAcceptedPerRfc6026) {
  answerWith(200, "OK");
  Msg invite;
  deliver(invite.request());
  ServerTransaction* tx = tu_.request_txs[0];
  EXPECT_EQ(tx->state(), ServerState::kAccepted);
  ASSERT_EQ(sentCount(), 1u);
  // Retransmitted INVITE: absorbed, not passed up, nothing re-sent (the TU owns 2xx
  // retransmission).
  deliver(invite.request());
  EXPECT_EQ(sentCount(), 1u);
  EXPECT_EQ(tu_.requests.size(), 1u);
  // No Timer G in Accepted.
  EXPECT_EQ(sendsDuring(seconds(2)), 0u);
  // The TU may send 2xx retransmissions through the transaction.
  EXPECT_TRUE(tx->respond(sip::makeResponseTo(tu_.requests[0], 200, "OK", "uas-tag")).isOk());
  EXPECT_EQ(sentCount(), 2u);
  EXPECT_FALSE(tx->respond(sip::makeResponseTo(tu_.requests[0], 486, "Busy", "uas-tag")).isOk());
  // The 2xx ACK (new branch) goes to the TU; so does one that matches the transaction.
  Msg ack = invite;
  ack.method = "ACK";
  ack.to_tag = "uas-tag";
  ack.branch = "z9hG4bKack2xx";
  deliver(ack.request());
  EXPECT_EQ(tu_.acks.size(), 1u);
  ack.branch = invite.branch;
  deliver(ack.request());
  EXPECT_EQ(tu_.acks.size(), 2u);
  // Timer L = 64*T1 from the 2xx.
  timers_.advance(seconds(30) - milliseconds(1));
  EXPECT_EQ(layer_->serverTransactionCount(), 1u);
  timers_.advance(milliseconds(1));
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
  // Afterwards a retransmitted INVITE is a new request again.
  deliver(invite.request());
  EXPECT_EQ(tu_.requests.size(), 2u);
}

TEST_F(ServerTransactionTest, ReliableInviteHasNoTimerGAndZeroTimerI) {
  answerWith(486, "Busy Here");
  Msg invite;
  invite.transport = "TCP";
  deliver(invite.request(), Protocol::kTcp);
  ASSERT_EQ(sentCount(), 1u);
  EXPECT_EQ(transport_.sent[0].target.protocol, Protocol::kTcp);
  EXPECT_EQ(transport_.sent[0].target.flow, 7u);
  EXPECT_EQ(sendsDuring(seconds(10)), 0u);
  Msg ack = invite;
  ack.method = "ACK";
  ack.to_tag = "uas-tag";
  deliver(ack.request(), Protocol::kTcp);
  EXPECT_EQ(tu_.request_txs.size(), 1u);
  timers_.advance(Duration::zero());
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
  EXPECT_TRUE(tu_.acks.empty());
}

TEST_F(ServerTransactionTest, NonInviteTryingProceedingCompletedTimerJ) {
  Msg reg;
  reg.method = "REGISTER";
  deliver(reg.request());
  ServerTransaction* tx = tu_.request_txs.at(0);
  EXPECT_EQ(tx->state(), ServerState::kTrying);
  EXPECT_FALSE(tx->isInvite());
  deliver(reg.request());  // Trying: absorbed, nothing to send
  EXPECT_EQ(sentCount(), 0u);
  EXPECT_EQ(sendsDuring(seconds(1)), 0u);  // no automatic 100 for non-INVITE
  ASSERT_TRUE(respond(100, "Trying").isOk());
  EXPECT_EQ(tx->state(), ServerState::kProceeding);
  deliver(reg.request());
  ASSERT_EQ(sentCount(), 2u);
  EXPECT_EQ(sent(1).statusCode(), 100);
  ASSERT_TRUE(respond(200, "OK").isOk());
  EXPECT_EQ(tx->state(), ServerState::kCompleted);
  EXPECT_FALSE(respond(200, "OK").isOk());  // one final response only
  deliver(reg.request());
  ASSERT_EQ(sentCount(), 4u);
  EXPECT_EQ(sent(3).statusCode(), 200);
  EXPECT_EQ(tu_.requests.size(), 1u);
  // Timer J = 64*T1 = 32 s; no retransmissions of its own.
  EXPECT_EQ(sendsDuring(seconds(32) - milliseconds(1)), 0u);
  EXPECT_EQ(layer_->serverTransactionCount(), 1u);
  timers_.advance(milliseconds(1));
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
  EXPECT_EQ(tu_.terminated, 1);
}

TEST_F(ServerTransactionTest, ReliableNonInviteTimerJIsZero) {
  answerWith(200, "OK");
  Msg reg;
  reg.method = "REGISTER";
  reg.transport = "TLS";
  deliver(reg.request(), Protocol::kTls);
  ASSERT_EQ(sentCount(), 1u);
  timers_.advance(Duration::zero());
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
}

TEST_F(ServerTransactionTest, StatelessAnswerEndsTheTransactionAndARetransmissionIsNew) {
  Msg reg;
  reg.method = "REGISTER";
  deliver(reg.request());
  ServerTransaction* tx = tu_.request_txs.at(0);
  ASSERT_TRUE(tx->respondStateless(sip::makeResponseTo(tu_.requests.at(0), 401, "Unauthorized",
                                                       "uas-tag"))
                  .isOk());
  ASSERT_EQ(sentCount(), 1u);
  EXPECT_EQ(sent(0).statusCode(), 401);
  EXPECT_EQ(tx->state(), ServerState::kTerminated);
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
  deliver(reg.request());  // the retransmission is a new request for the TU, not absorbed
  EXPECT_EQ(tu_.requests.size(), 2u);
  EXPECT_EQ(sentCount(), 1u);
  // onTerminated at the lazy reap, not on a zero-delay timer of its own.
  timers_.advance(Duration::zero());
  EXPECT_EQ(tu_.terminated, 0);
  timers_.advance(milliseconds(200));
  EXPECT_EQ(tu_.terminated, 1);
}

TEST_F(ServerTransactionTest, StatelessAnswerOnlyForANonInviteFinalResponse) {
  Msg invite;
  deliver(invite.request());
  EXPECT_FALSE(tu_.request_txs.at(0)
                   ->respondStateless(sip::makeResponseTo(tu_.requests.at(0), 486, "Busy", "t"))
                   .isOk());
  Msg reg;
  reg.method = "REGISTER";
  reg.branch = "z9hG4bKreg";
  deliver(reg.request());
  ServerTransaction* tx = tu_.request_txs.at(1);
  EXPECT_FALSE(
      tx->respondStateless(sip::makeResponseTo(tu_.requests.at(1), 100, "Trying", "t")).isOk());
  ASSERT_TRUE(respond(200, "OK", 1).isOk());
  EXPECT_FALSE(
      tx->respondStateless(sip::makeResponseTo(tu_.requests.at(1), 500, "Error", "t")).isOk());
}

TEST_F(ServerTransactionTest, SameBranchDifferentSentByOrMethodAreDifferentTransactions) {
  Msg a;
  a.method = "OPTIONS";
  deliver(a.request());
  Msg b = a;
  b.sent_by = "10.0.0.2:5060";
  deliver(b.request());
  Msg c = a;
  c.method = "INFO";
  deliver(c.request());
  EXPECT_EQ(tu_.requests.size(), 3u);
  EXPECT_EQ(layer_->serverTransactionCount(), 3u);
}

TEST_F(ServerTransactionTest, CancelMatchingInviteGets200AndTuIsTold) {
  Msg invite;
  deliver(invite.request());
  ServerTransaction* invite_tx = tu_.request_txs[0];
  Msg cancel = invite;
  cancel.method = "CANCEL";
  deliver(cancel.request());
  ASSERT_EQ(sentCount(), 1u);
  sip::Message ok = sent(0);
  EXPECT_EQ(ok.statusCode(), 200);
  EXPECT_EQ(ok.cseq()->method_text, "CANCEL");
  ASSERT_EQ(tu_.cancelled.size(), 1u);
  EXPECT_EQ(tu_.cancelled[0], invite_tx);
  EXPECT_EQ(tu_.cancels[0].method(), sip::Method::kCancel);
  EXPECT_EQ(tu_.requests.size(), 1u);  // the CANCEL is not a new request for the TU
  // The UAS ends the INVITE with 487.
  ASSERT_TRUE(respond(487, "Request Terminated").isOk());
  EXPECT_EQ(lastSent().statusCode(), 487);
  // A retransmitted CANCEL gets the 200 again and does not reach the TU twice.
  deliver(cancel.request());
  EXPECT_EQ(lastSent().statusCode(), 200);
  EXPECT_EQ(tu_.cancelled.size(), 1u);
}

TEST_F(ServerTransactionTest, UnmatchedCancelGets481) {
  auto& c481 = Stats::global().counter("transaction.cancel_481");
  auto before = c481.value();
  Msg cancel;
  cancel.method = "CANCEL";
  deliver(cancel.request());
  ASSERT_EQ(sentCount(), 1u);
  EXPECT_EQ(sent(0).statusCode(), 481);
  EXPECT_TRUE(tu_.cancelled.empty());
  EXPECT_TRUE(tu_.requests.empty());
  EXPECT_EQ(c481.value(), before + 1);
}

TEST_F(ServerTransactionTest, CancelAfterFinalResponseHasNoEffect) {
  answerWith(486, "Busy Here");
  Msg invite;
  deliver(invite.request());
  Msg cancel = invite;
  cancel.method = "CANCEL";
  deliver(cancel.request());
  EXPECT_EQ(lastSent().statusCode(), 200);
  EXPECT_TRUE(tu_.cancelled.empty());
}

TEST_F(ServerTransactionTest, CancelWithDifferentBranchDoesNotMatch) {
  deliver(Msg{}.request());
  Msg cancel;
  cancel.method = "CANCEL";
  cancel.branch = "z9hG4bKsomethingelse";
  deliver(cancel.request());
  EXPECT_EQ(lastSent().statusCode(), 481);
  EXPECT_TRUE(tu_.cancelled.empty());
}

TEST_F(ServerTransactionTest, Rfc2543FallbackMatching) {
  Msg invite;
  invite.branch = "old-style-1";  // no magic cookie
  deliver(invite.request());
  ASSERT_EQ(tu_.requests.size(), 1u);
  ServerTransaction* tx = tu_.request_txs[0];
  deliver(invite.request());  // retransmission matched by RURI/From tag/Call-ID/CSeq/Via
  EXPECT_EQ(tu_.requests.size(), 1u);
  Msg next_cseq = invite;
  next_cseq.cseq = 2;
  deliver(next_cseq.request());  // a new request
  EXPECT_EQ(tu_.requests.size(), 2u);

  // CANCEL: same matching, method aside.
  Msg cancel = invite;
  cancel.method = "CANCEL";
  deliver(cancel.request());
  EXPECT_EQ(lastSent().statusCode(), 200);
  ASSERT_EQ(tu_.cancelled.size(), 1u);
  EXPECT_EQ(tu_.cancelled[0], tx);

  ASSERT_TRUE(respond(487, "Request Terminated").isOk());
  // An ACK whose To tag is not the one of our response is not for this transaction.
  Msg ack = invite;
  ack.method = "ACK";
  ack.to_tag = "someone-else";
  deliver(ack.request());
  EXPECT_EQ(tu_.acks.size(), 1u);
  EXPECT_EQ(tx->state(), ServerState::kCompleted);
  ack.to_tag = "uas-tag";
  deliver(ack.request());
  EXPECT_EQ(tu_.acks.size(), 1u);
  EXPECT_EQ(tx->state(), ServerState::kConfirmed);
}

TEST_F(ServerTransactionTest, Rfc2543WithoutBranchAtAll) {
  Msg reg;
  reg.method = "REGISTER";
  reg.branch = "";
  deliver(reg.request());
  deliver(reg.request());
  EXPECT_EQ(tu_.requests.size(), 1u);
}

TEST_F(ServerTransactionTest, TransportErrorTerminatesAndTellsTu) {
  deliver(Msg{}.request());
  transport_.fail_sends = 1;
  ASSERT_TRUE(respond(180, "Ringing").isOk());
  EXPECT_TRUE(tu_.transport_errors.empty());  // reported from the loop, not inside respond()
  timers_.advance(Duration::zero());
  ASSERT_EQ(tu_.transport_errors.size(), 1u);
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
  EXPECT_EQ(tu_.terminated, 1);
}

TEST_F(ServerTransactionTest, OverloadRefusesWith503) {
  LayerConfig config;
  config.max_transactions = 1;
  makeLayer(config);
  Msg a;
  a.method = "OPTIONS";
  deliver(a.request());
  Msg b = a;
  b.branch = "z9hG4bKsecond";
  deliver(b.request());
  EXPECT_EQ(tu_.requests.size(), 1u);
  ASSERT_EQ(sentCount(), 1u);
  EXPECT_EQ(sent(0).statusCode(), 503);
}

TEST_F(ServerTransactionTest, InjectedResponseRouterIsUsed) {
  LayerConfig config;
  transport::Address elsewhere = testing::FakeTransport::address(198, 51, 100, 7, 5070);
  config.response_router = [elsewhere](const transport::ReceivedMessage&, const sip::Via&) {
    transport::SendTarget t;
    t.remote = elsewhere;
    return Result<transport::SendTarget>(t);
  };
  makeLayer(config);
  answerWith(200, "OK");
  Msg opt;
  opt.method = "OPTIONS";
  deliver(opt.request());
  ASSERT_EQ(sentCount(), 1u);
  EXPECT_EQ(transport_.sent[0].target.remote, elsewhere);
  EXPECT_EQ(tu_.request_txs[0]->responseTarget().remote, elsewhere);
}

TEST_F(ServerTransactionTest, DetachedTransactionRunsSilently) {
  deliver(Msg{}.request());
  ServerTransaction* tx = tu_.request_txs[0];
  tx->setUser(nullptr);
  ASSERT_TRUE(respond(603, "Decline").isOk());
  timers_.advance(seconds(40));
  EXPECT_TRUE(tu_.ack_timeouts.empty());
  EXPECT_EQ(tu_.terminated, 0);
  EXPECT_EQ(layer_->serverTransactionCount(), 0u);
}

TEST_F(ServerTransactionTest, CountersTrackCreationRetransmissionsAndTermination) {
  auto value = [](const char* name) { return Stats::global().counter(name).value(); };
  auto created = value("transaction.server_non_invite_created");
  auto terminated = value("transaction.server_non_invite_terminated");
  auto absorbed = value("transaction.retransmissions_absorbed");
  answerWith(200, "OK");
  Msg opt;
  opt.method = "OPTIONS";
  deliver(opt.request());
  deliver(opt.request());
  deliver(opt.request());
  timers_.advance(seconds(33));
  EXPECT_EQ(value("transaction.server_non_invite_created"), created + 1);
  EXPECT_EQ(value("transaction.server_non_invite_terminated"), terminated + 1);
  EXPECT_EQ(value("transaction.retransmissions_absorbed"), absorbed + 2);
}

TEST_F(ServerTransactionTest, RespondAfterTerminationIsRefusedNotFatal) {
  Msg opt;
  opt.method = "OPTIONS";
  opt.transport = "TCP";
  deliver(opt.request(), Protocol::kTcp);
  ServerTransaction* tx = tu_.request_txs[0];
  ASSERT_TRUE(respond(200, "OK").isOk());
  // Still inside the same turn of the loop: the reference is valid, a second final refused.
  EXPECT_FALSE(respond(500, "Oops").isOk());
  EXPECT_EQ(tx->state(), ServerState::kCompleted);
  timers_.advance(Duration::zero());
  EXPECT_EQ(tu_.terminated, 1);
}

TEST_F(ServerTransactionTest, DestroyingTheLayerCancelsEveryTimer) {
  answerWith(486, "Busy Here");
  deliver(Msg{}.request());
  Msg opt;
  opt.method = "OPTIONS";
  deliver(opt.request());
  EXPECT_GT(timers_.pending(), 0u);
  layer_.reset();
  EXPECT_EQ(timers_.pending(), 0u);
  timers_.advance(seconds(100));
  EXPECT_TRUE(tu_.ack_timeouts.empty());
}

}  // namespace
}  // namespace sipwake::transaction
