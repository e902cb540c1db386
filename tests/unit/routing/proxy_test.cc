// RFC 3261 §16 behaviour of the proxy core, end to end through a real TransactionLayer.
#include <gtest/gtest.h>

#include "routing_test_util.h"

namespace sipwake::routing::testing {
namespace {

std::string header(const sip::Message& m, sip::HeaderId id) {
  const sip::HeaderField* f = m.find(id);
  return f == nullptr ? std::string() : std::string(f->value);
}

std::string allValues(const sip::Message& m, sip::HeaderId id) {
  std::string out;
  for (std::string_view v : m.values(id)) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

TEST_F(ProxyTest, ForwardsInviteToBindingWithRecordRouteAndAnswers) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);

  EXPECT_EQ(codesTo(alice_.address), std::vector<int>{100});
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  const sip::Message& inv = invites[0];
  EXPECT_EQ(inv.requestUriText(), "sip:bob@10.0.0.2:5060");
  EXPECT_EQ(*inv.maxForwards(), 69);
  ASSERT_EQ(inv.vias()->size(), 2u);
  EXPECT_EQ(inv.topVia()->host, "192.0.2.1");
  auto rr = inv.recordRoutes();
  ASSERT_TRUE(rr.isOk());
  ASSERT_EQ(rr->size(), 1u);
  EXPECT_EQ(rr->front().uri.host, "192.0.2.1");
  EXPECT_EQ(rr->front().uri.port, 5060);
  EXPECT_TRUE(rr->front().uri.hasLr());

  answer(bob_, "INVITE", 180, "Ringing");
  answer(bob_, "INVITE", 200, "OK");
  auto to_alice = sentTo(alice_.address);
  ASSERT_EQ(to_alice.size(), 3u);
  EXPECT_EQ(to_alice[1].statusCode(), 180);
  EXPECT_EQ(to_alice[2].statusCode(), 200);
  EXPECT_EQ(to_alice[2].vias()->size(), 1u);
  EXPECT_EQ(to_alice[2].recordRoutes()->size(), 1u);

  // ACK for the 2xx and the BYE follow the Route set built from the Record-Route.
  std::string route = "Route: " + std::string(rr->front().text) + "\r\n";
  deliver(request("ACK", "sip:bob@10.0.0.2:5060", route, alice_, "call-1", 1, "bt", "z9hG4bKack1"),
          alice_);
  auto acks = requestsTo(bob_.address, "ACK");
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].find(sip::HeaderId::kRoute), nullptr);
  EXPECT_EQ(acks[0].vias()->size(), 2u);

  deliver(request("BYE", "sip:bob@10.0.0.2:5060", route, alice_, "call-1", 2, "bt", "z9hG4bKb1"),
          alice_);
  auto byes = requestsTo(bob_.address, "BYE");
  ASSERT_EQ(byes.size(), 1u);
  EXPECT_EQ(byes[0].find(sip::HeaderId::kRoute), nullptr);
  EXPECT_EQ(byes[0].find(sip::HeaderId::kRecordRoute), nullptr);
  answer(bob_, "BYE", 200, "OK");
  EXPECT_EQ(codesTo(alice_.address).back(), 200);

  // Everything is cleaned up once the transactions are gone.
  timers_.advance(seconds(64));
  EXPECT_EQ(proxy_->contextCount(), 0u);
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
}

TEST_F(ProxyTest, PushParamsAreStrippedFromTheForwardedRequestUri) {
  registerBinding("sip:bob@example.com",
                  "sip:bob@10.0.0.2:5060;transport=udp;pn-provider=apns;"
                  "pn-param=TEAM.com.example.voip;pn-prid=00fc13adff78;push-token-id=e-3a%3aAPA",
                  bob_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_EQ(invites[0].requestUriText(), "sip:bob@10.0.0.2:5060;transport=udp");
}

// Linphone's dialog Contact: RFC 8599 params as URI params, one more as a header param.
constexpr std::string_view kPushContact =
    "<sip:10.0.0.2:5060;transport=udp;pn-provider=apns;pn-param=TEAM.org.app.voip;"
    "pn-prid=00fc13adff78;pn-silent=1>;+sip.instance=\"<urn:uuid:1>\";pn-timeout=0";

std::string withContact(std::string request, std::string_view contact) {
  std::size_t at = request.find("Contact: ");
  std::size_t end = request.find("\r\n", at);
  return request.replace(at, end - at, "Contact: " + std::string(contact));
}

// RFC 8599 §6: a PURR reaches the other party only in a dialog we record-route; a caller's
// Contact with pn-purr makes us record-route even with record_route = "never".
TEST_F(ProxyTest, PurrInTheCallersContactForcesRecordRouteAndIsKept) {
  ProxyConfig config;
  config.record_route = RecordRouteMode::kNever;
  build(config);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  const std::string purr(32, 'c');
  deliver(withContact(request("INVITE", "sip:bob@example.com"),
                      "<sip:alice@10.0.0.1:5060;pn-provider=fcm;pn-prid=tok;pn-purr=" + purr + ">"),
          alice_);
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_NE(invites[0].find(sip::HeaderId::kRecordRoute), nullptr);
  EXPECT_EQ(header(invites[0], sip::HeaderId::kContact),
            "<sip:alice@10.0.0.1:5060;pn-purr=" + purr + ">");
}

TEST_F(ProxyTest, PurrInTheCalleesContactIsStrippedWhenTheDialogIsNotRecordRouted) {
  ProxyConfig config;
  config.record_route = RecordRouteMode::kNever;
  build(config);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  answer(bob_, "INVITE", 200, "OK", "bt",
         "Contact: <sip:bob@10.0.0.2:5060;pn-provider=fcm;pn-purr=" + std::string(32, 'c') + ">");
  auto to_alice = sentTo(alice_.address);
  ASSERT_EQ(to_alice.back().statusCode(), 200);
  EXPECT_EQ(header(to_alice.back(), sip::HeaderId::kContact), "<sip:bob@10.0.0.2:5060>");
}

TEST_F(ProxyTest, PushParamsAreStrippedFromContactsBothWays) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(withContact(request("INVITE", "sip:bob@example.com"), kPushContact), alice_);
  auto invites = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_EQ(header(invites[0], sip::HeaderId::kContact),
            "<sip:10.0.0.2:5060;transport=udp>;+sip.instance=\"<urn:uuid:1>\"");
  answer(bob_, "INVITE", 180, "Ringing", "bt", "Contact: " + std::string(kPushContact));
  answer(bob_, "INVITE", 200, "OK", "bt", "Contact: " + std::string(kPushContact));
  auto to_alice = sentTo(alice_.address);
  ASSERT_EQ(to_alice.size(), 3u);
  for (std::size_t i : {1u, 2u}) {
    EXPECT_EQ(header(to_alice[i], sip::HeaderId::kContact),
              "<sip:10.0.0.2:5060;transport=udp>;+sip.instance=\"<urn:uuid:1>\"")
        << to_alice[i].statusCode();
  }
  // In-dialog, in both directions (the Route is our Record-Route).
  std::string route = "Route: " + std::string(to_alice[2].recordRoutes()->front().text) + "\r\n";
  deliver(withContact(request("INFO", "sip:bob@10.0.0.2:5060", route, alice_, "call-1", 2, "bt",
                              "z9hG4bKi1"),
                      kPushContact),
          alice_);
  auto infos = requestsTo(bob_.address, "INFO");
  ASSERT_EQ(infos.size(), 1u);
  EXPECT_EQ(header(infos[0], sip::HeaderId::kContact).find("pn-"), std::string::npos);
  answer(bob_, "INFO", 200, "OK", "bt", "Contact: " + std::string(kPushContact));
  EXPECT_EQ(header(sentTo(alice_.address).back(), sip::HeaderId::kContact).find("pn-"),
            std::string::npos);
  EXPECT_EQ(Stats::global().counter("proxy.push_params_stripped").value() > 0, true);
}

TEST_F(ProxyTest, InDialogRequestToAUaOnOurHostIsLooseRouted) {
  // The callee shares our address (192.0.2.1) on another port; the caller's BYE carries our
  // Record-Route as Route.
  deliver(request("BYE", "sip:192.0.2.1:16080;transport=UDP", signedRoute("call-1"), alice_,
                  "call-1", 2, "bt"),
          alice_);
  auto byes = requestsTo(addr(192, 0, 2, 1, 16080), "BYE");
  ASSERT_EQ(byes.size(), 1u);
  EXPECT_EQ(byes[0].requestUriText(), "sip:192.0.2.1:16080;transport=UDP");
  EXPECT_EQ(byes[0].find(sip::HeaderId::kRoute), nullptr);
}

TEST_F(ProxyTest, EventStateOfOurUsersIsNotServedHere) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  Counter& bad_event = Stats::global().counter("proxy.bad_event");
  const auto before = bad_event.value();
  deliver(request("PUBLISH", "sip:bob@example.com", "Event: presence\r\n"), alice_);
  deliver(request("SUBSCRIBE", "sip:bob@example.com", "Event: message-summary\r\n", alice_,
                  "call-2", 1, "", "z9hG4bKs2"),
          alice_);
  deliver(request("SUBSCRIBE", "sip:bob@example.com", "o: Presence;id=7\r\n", alice_, "call-3", 1,
                  "", "z9hG4bKs3"),
          alice_);
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{489, 489, 489}));
  EXPECT_EQ(sentTo(alice_.address)[0].find("Allow-Events"), nullptr);
  EXPECT_EQ(bad_event.value() - before, 3u);
  EXPECT_TRUE(sentTo(bob_.address).empty());
  // A package a UA serves itself (RFC 4235 dialog), another domain, and in-dialog requests go on.
  deliver(request("SUBSCRIBE", "sip:bob@example.com", "Event: dialog\r\n", alice_, "call-4", 1, "",
                  "z9hG4bKs4"),
          alice_);
  EXPECT_EQ(requestsTo(bob_.address, "SUBSCRIBE").size(), 1u);
  deliver(request("SUBSCRIBE", "sip:carol@10.0.0.9", "Event: presence\r\n", alice_, "call-5", 1, "",
                  "z9hG4bKs5"),
          alice_);
  EXPECT_EQ(requestsTo(addr(10, 0, 0, 9, 5060), "SUBSCRIBE").size(), 1u);
  deliver(request("NOTIFY", "sip:bob@10.0.0.2:5060", "Event: presence\r\n" + signedRoute("call-6"),
                  alice_, "call-6", 1, "bt", "z9hG4bKs6"),
          alice_);
  EXPECT_EQ(requestsTo(bob_.address, "NOTIFY").size(), 1u);
}

TEST_F(ProxyTest, TooManyHops) {
  std::string r = request("MESSAGE", "sip:bob@example.com");
  r.replace(r.find("Max-Forwards: 70"), 16, "Max-Forwards: 0");
  deliver(r, alice_);
  auto out = sentTo(alice_.address);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].statusCode(), 483);
  EXPECT_EQ(out[0].reasonPhrase(), "Too Many Hops");
}

TEST_F(ProxyTest, LoopDetected) {
  deliver(request("MESSAGE", "sip:carol@10.0.0.9"), alice_);
  auto fwd = requestsTo(addr(10, 0, 0, 9, 5060), "MESSAGE");
  ASSERT_EQ(fwd.size(), 1u);
  // The request comes back to us unchanged (e.g. 10.0.0.9 routes it back).
  Ua loopback{addr(10, 0, 0, 9, 5060)};
  deliver(fwd[0].serialize(), loopback);
  auto out = sentTo(loopback.address);
  ASSERT_EQ(out.back().statusCode(), 482);
}

TEST_F(ProxyTest, SpiralIsNotALoop) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  // Same Call-ID but a different Request-URI after retargeting: not a loop (§16.3 step 4).
  deliver(request("MESSAGE", "sip:carol@10.0.0.9"), alice_);
  auto fwd = requestsTo(addr(10, 0, 0, 9, 5060), "MESSAGE");
  ASSERT_EQ(fwd.size(), 1u);
  fwd[0].setRequestUri("sip:bob@example.com");
  Ua other{addr(10, 0, 0, 9, 5060)};
  deliver(fwd[0].serialize(), other);
  EXPECT_EQ(requestsTo(bob_.address, "MESSAGE").size(), 1u);
}

TEST_F(ProxyTest, ProxyRequireGets420) {
  deliver(request("MESSAGE", "sip:bob@example.com", "Proxy-Require: foo, bar\r\n"), alice_);
  auto out = sentTo(alice_.address);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].statusCode(), 420);
  EXPECT_EQ(header(out[0], sip::HeaderId::kUnsupported), "foo, bar");
}

TEST_F(ProxyTest, TelUriWithoutOutboundProxyGets416) {
  deliver(request("MESSAGE", "tel:+15551234"), alice_);
  EXPECT_EQ(codesTo(alice_.address), std::vector<int>{416});
}

TEST_F(ProxyTest, UnknownUser404KnownUserWithoutBinding480) {
  deliver(request("MESSAGE", "sip:nobody@example.com"), alice_);
  deliver(request("MESSAGE", "sip:bob@example.com", "", alice_, "call-2", 1, "", "z9hG4bKa2"),
          alice_);
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{404, 480}));
}

TEST_F(ProxyTest, LooseRoutingRemovesOurRouteOnly) {
  deliver(request("MESSAGE", "sip:carol@other.example",
                  "Route: <sip:192.0.2.1:5060;lr>, <sip:10.0.0.7:5060;lr>\r\n"),
          alice_);
  auto fwd = requestsTo(addr(10, 0, 0, 7, 5060), "MESSAGE");
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0].requestUriText(), "sip:carol@other.example");
  EXPECT_EQ(allValues(fwd[0], sip::HeaderId::kRoute), "<sip:10.0.0.7:5060;lr>");
}

TEST_F(ProxyTest, StrictRouterUpstreamIsFixedUp) {
  // A strict router put our Record-Route URI in the Request-URI (§16.4).
  deliver(request("MESSAGE", "sip:192.0.2.1:5060;lr", "Route: <sip:carol@10.0.0.8>\r\n"), alice_);
  auto fwd = requestsTo(addr(10, 0, 0, 8, 5060), "MESSAGE");
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0].requestUriText(), "sip:carol@10.0.0.8");
  EXPECT_EQ(fwd[0].find(sip::HeaderId::kRoute), nullptr);
}

TEST_F(ProxyTest, StrictRouterDownstream) {
  deliver(request("MESSAGE", "sip:carol@other.example", "Route: <sip:10.0.0.7:5060>\r\n"), alice_);
  auto fwd = requestsTo(addr(10, 0, 0, 7, 5060), "MESSAGE");
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0].requestUriText(), "sip:10.0.0.7:5060");
  EXPECT_EQ(allValues(fwd[0], sip::HeaderId::kRoute), "<sip:carol@other.example>");
}

TEST_F(ProxyTest, RecordRouteDoubledOnTransportChange) {
  Ua bob_tls{addr(10, 0, 0, 2, 40000), transport::Protocol::kTls, 77};
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5061;transport=tls", bob_tls);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  auto invites = requestsTo(bob_tls.address, "INVITE");
  ASSERT_EQ(invites.size(), 1u);
  EXPECT_EQ(transport_.sent.back().target.flow, 77u);
  EXPECT_EQ(transport_.sent.back().target.protocol, transport::Protocol::kTls);
  auto rr = invites[0].recordRoutes();
  ASSERT_TRUE(rr.isOk());
  ASSERT_EQ(rr->size(), 2u);
  EXPECT_EQ(rr->at(0).uri.port, 5061);  // facing bob (TLS) on top
  EXPECT_NE(rr->at(0).uri.param("transport"), nullptr);
  EXPECT_EQ(rr->at(1).uri.port, 5060);  // facing alice (UDP)
  EXPECT_EQ(rr->at(1).uri.param("transport"), nullptr);

  // Bob's BYE (over his TLS flow) goes back to alice's UDP source; alice's BYE goes over
  // bob's flow, not to his Contact.
  answer(bob_tls, "INVITE", 200, "OK");
  std::string routes =
      "Route: " + std::string(rr->at(0).text) + ", " + std::string(rr->at(1).text) + "\r\n";
  deliver(
      request("BYE", "sip:alice@10.0.0.1:5060", routes, bob_tls, "call-1", 5, "fa", "z9hG4bKbye-b"),
      bob_tls);
  EXPECT_EQ(requestsTo(alice_.address, "BYE").size(), 1u);
  std::string back =
      "Route: " + std::string(rr->at(1).text) + ", " + std::string(rr->at(0).text) + "\r\n";
  std::size_t before = transport_.sent.size();
  deliver(request("BYE", "sip:bob@unreachable.invalid", back, alice_, "call-1", 2, "bt",
                  "z9hG4bKbye-a"),
          alice_);
  ASSERT_GT(transport_.sent.size(), before);
  EXPECT_EQ(transport_.sent[before].target.flow, 77u);
}

TEST_F(ProxyTest, ForksToEveryBindingOrderedByQ) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.3:5070", bob2_, 500);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_, 1000);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  std::vector<transport::Address> order;
  for (auto& s : transport_.sent) {
    if (parse(s.bytes).isRequest()) order.push_back(s.target.remote);
  }
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], bob_.address);
  EXPECT_EQ(order[1], bob2_.address);
}

TEST_F(ProxyTest, OneAnswersTheOtherIsCancelled) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.3:5070", bob2_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  answer(bob_, "INVITE", 180, "Ringing", "t1");
  answer(bob2_, "INVITE", 180, "Ringing", "t2");
  answer(bob2_, "INVITE", 200, "OK", "t2");
  auto cancels = requestsTo(bob_.address, "CANCEL");
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_NE(header(cancels[0], sip::HeaderId::kReason).find("cause=200"), std::string::npos);
  EXPECT_EQ(requestsTo(bob2_.address, "CANCEL").size(), 0u);
  answer(bob_, "INVITE", 487, "Request Terminated", "t1");
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 180, 180, 200}));
}

TEST_F(ProxyTest, EveryTwoHundredIsForwarded) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.3:5070", bob2_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  answer(bob_, "INVITE", 200, "OK", "t1");
  answer(bob2_, "INVITE", 200, "OK", "t2");
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 200, 200}));
}

TEST_F(ProxyTest, SixHundredCancelsOthersAndWins) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.3:5070", bob2_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  answer(bob_, "INVITE", 180, "Ringing", "t1");
  answer(bob2_, "INVITE", 603, "Decline", "t2");
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 1u);
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 180}));
  answer(bob_, "INVITE", 487, "Request Terminated", "t1");
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 180, 603}));
}

TEST_F(ProxyTest, BestOfFourAndFiveHundred) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.3:5070", bob2_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  answer(bob_, "INVITE", 500, "Server Internal Error", "t1");
  answer(bob2_, "INVITE", 486, "Busy Here", "t2");
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 486}));
}

TEST_F(ProxyTest, ChallengesAreMergedAnd503BecomesFiveHundred) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.3:5070", bob2_);
  deliver(request("MESSAGE", "sip:bob@example.com"), alice_);
  answer(bob_, "MESSAGE", 401, "Unauthorized", "t1", "WWW-Authenticate: Digest realm=\"a\"");
  answer(bob2_, "MESSAGE", 401, "Unauthorized", "t2", "WWW-Authenticate: Digest realm=\"b\"");
  auto out = sentTo(alice_.address);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].statusCode(), 401);
  EXPECT_EQ(out[0].values(sip::HeaderId::kWwwAuthenticate).size(), 2u);

  deliver(request("MESSAGE", "sip:bob@example.com", "", alice_, "call-2", 1, "", "z9hG4bKa2"),
          alice_);
  answer(bob_, "MESSAGE", 503, "Service Unavailable", "t1");
  answer(bob2_, "MESSAGE", 503, "Service Unavailable", "t2");
  EXPECT_EQ(codesTo(alice_.address).back(), 500);
}

TEST_F(ProxyTest, CancelCancelsEveryBranchAnd487IsForwarded) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.3:5070", bob2_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  answer(bob_, "INVITE", 180, "Ringing", "t1");
  answer(bob2_, "INVITE", 180, "Ringing", "t2");
  deliver(request("CANCEL", "sip:bob@example.com"), alice_);
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 1u);
  EXPECT_EQ(requestsTo(bob2_.address, "CANCEL").size(), 1u);
  answer(bob_, "INVITE", 487, "Request Terminated", "t1");
  answer(bob2_, "INVITE", 487, "Request Terminated", "t2");
  auto codes = codesTo(alice_.address);
  // 100, 180, 180, 200 (CANCEL), 487 (INVITE)
  ASSERT_EQ(codes.size(), 5u);
  EXPECT_EQ(codes[3], 200);
  EXPECT_EQ(codes[4], 487);
}

// A branch that never answered (e.g. its TCP flow died after the INVITE was written) must not
// hold up the caller's 487 until Timer B; if it rings after all, it is CANCELled then.
TEST_F(ProxyTest, CancelDoesNotWaitForABranchThatNeverAnswered) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.3:5070", bob2_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  answer(bob_, "INVITE", 180, "Ringing", "t1");
  deliver(request("CANCEL", "sip:bob@example.com"), alice_);
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 1u);
  EXPECT_EQ(requestsTo(bob2_.address, "CANCEL").size(), 0u);  // §9.1: not before a provisional
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 180, 200}));
  answer(bob_, "INVITE", 487, "Request Terminated", "t1");
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 180, 200, 487}));  // no timer ran

  answer(bob2_, "INVITE", 180, "Ringing", "t2");  // late: gets its CANCEL, the caller nothing
  EXPECT_EQ(requestsTo(bob2_.address, "CANCEL").size(), 1u);
  answer(bob2_, "INVITE", 487, "Request Terminated", "t2");
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 180, 200, 487}));
}

// The only branch has not answered yet: the caller's CANCEL gets its 487 at once.
TEST_F(ProxyTest, CancelBeforeAnyResponseIs487AtOnce) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  deliver(request("CANCEL", "sip:bob@example.com"), alice_);
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 200, 487}));
  answer(bob_, "INVITE", 100, "Trying");
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 1u);
}

TEST_F(ProxyTest, TimerCCancelsARingingBranch) {
  ProxyConfig config;
  config.timer_c = seconds(200);
  build(config);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  answer(bob_, "INVITE", 180, "Ringing");
  timers_.advance(seconds(199));
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 0u);
  answer(bob_, "INVITE", 183, "Session Progress");  // restarts Timer C
  timers_.advance(seconds(199));
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 0u);
  timers_.advance(milliseconds(1001));
  EXPECT_EQ(requestsTo(bob_.address, "CANCEL").size(), 1u);
  answer(bob_, "INVITE", 487, "Request Terminated");
  EXPECT_EQ(codesTo(alice_.address).back(), 487);
}

TEST_F(ProxyTest, NoResponseAtAllIs408) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  timers_.advance(seconds(40));  // Timer B
  EXPECT_EQ(codesTo(alice_.address).back(), 408);
}

TEST_F(ProxyTest, RequestsForOtherDomainsGoToTheOutboundProxy) {
  ProxyConfig config;
  config.outbound_proxy = *outboundProxyUri("10.9.9.9:5080");
  build(config);
  deliver(request("MESSAGE", "sip:carol@other.example"), alice_);
  auto fwd = requestsTo(addr(10, 9, 9, 9, 5080), "MESSAGE");
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(fwd[0].requestUriText(), "sip:carol@other.example");
}

TEST_F(ProxyTest, NameWithoutResolverIsUnroutable) {
  deliver(request("MESSAGE", "sip:carol@other.example"), alice_);
  auto codes = codesTo(alice_.address);
  ASSERT_EQ(codes.size(), 1u);
  EXPECT_EQ(codes[0], 500);
}

TEST_F(ProxyTest, PathIsFollowed) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_, 1000,
                  {"<sip:10.5.5.5:5060;lr>"});
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  auto fwd = requestsTo(addr(10, 5, 5, 5, 5060), "INVITE");
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(allValues(fwd[0], sip::HeaderId::kRoute), "<sip:10.5.5.5:5060;lr>");
  EXPECT_EQ(fwd[0].requestUriText(), "sip:bob@10.0.0.2:5060");
}

// A Record-Route token that names one end only (the other end is behind another proxy, e.g.
// another node: the INVITE came with two Vias, or the binding had a Path) still sends the far
// end's in-dialog requests over that end's flow, not to its unreachable (NATed) Contact.
TEST_F(ProxyTest, RequestsFromBehindAnotherProxyGoOverTheFlowOfTheOneEndTheTokenNames) {
  // The caller is behind node A (two Vias); bob's Contact is not where his connection is.
  const Ua bob_tcp{addr(10, 0, 0, 2, 40000), transport::Protocol::kTcp, 7};
  const transport::Address bob_contact = addr(10, 0, 0, 99, 5060);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.99:5060;transport=tcp", bob_tcp);
  const Ua node_a{addr(10, 0, 0, 50, 5060)};
  const std::string caller_via = "Via: SIP/2.0/UDP 10.0.0.77:5060;branch=z9hG4bKc1\r\n";
  deliver(
      request("INVITE", "sip:bob@example.com", caller_via, node_a, "call-1", 1, "", "z9hG4bKn1"),
      node_a);
  auto inv = requestsTo(bob_tcp.address, "INVITE");
  ASSERT_EQ(inv.size(), 1u);
  const std::string route = "Route: " + std::string(inv[0].recordRoutes()->front().text) + "\r\n";
  answer(bob_tcp, "INVITE", 200, "OK");
  const std::size_t mark = transport_.sent.size();
  ackAndBye("sip:bob@10.0.0.99:5060;transport=tcp", route + caller_via, node_a, "call-1");
  EXPECT_TRUE(sentTo(bob_contact).empty());
  std::vector<std::string> over_flow;
  for (std::size_t i = mark; i < transport_.sent.size(); ++i) {
    const FakeTransport::Sent& s = transport_.sent[i];
    if (s.target.remote == bob_tcp.address && s.target.flow == bob_tcp.flow) {
      over_flow.emplace_back(parse(s.bytes).methodText());
    }
  }
  EXPECT_EQ(over_flow, (std::vector<std::string>{"ACK", "BYE"}));

  // The mirror: alice calls directly, bob is behind a proxy (Path); bob's BYE from that proxy
  // goes over alice's flow, not to the Contact she put in her INVITE.
  registerBinding("sip:carol@example.com", "sip:carol@10.0.0.3:5070", bob2_, 1000,
                  {"<sip:10.5.5.5:5060;lr>"});
  const Ua edge{addr(10, 5, 5, 5, 5060)};
  std::string call =
      request("INVITE", "sip:carol@example.com", "", alice_, "call-2", 1, "", "z9hG4bKn4");
  call.replace(call.find("Contact: <sip:alice@10.0.0.1:5060>"), 34,
               "Contact: <sip:alice@10.0.0.88:5060>");
  deliver(call, alice_);
  auto inv2 = requestsTo(edge.address, "INVITE");
  ASSERT_EQ(inv2.size(), 1u);
  const std::string route2 = "Route: " + std::string(inv2[0].recordRoutes()->front().text) + "\r\n";
  std::string bye = "BYE sip:alice@10.0.0.88:5060 SIP/2.0\r\n";
  bye += "Via: SIP/2.0/UDP 10.5.5.5:5060;branch=z9hG4bKe1\r\n";
  bye += "Via: SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bKe0\r\n";
  bye += "Max-Forwards: 69\r\nFrom: <sip:carol@example.com>;tag=ct\r\n";
  bye += "To: <sip:alice@example.com>;tag=fa\r\nCall-ID: call-2\r\nCSeq: 5 BYE\r\n" + route2;
  bye += "Content-Length: 0\r\n\r\n";
  deliver(bye, edge);
  EXPECT_TRUE(sentTo(addr(10, 0, 0, 88, 5060)).empty());
  EXPECT_EQ(requestsTo(alice_.address, "BYE").size(), 1u);
}

// A resolver that parks the request: no target now, more may come (the push wake-up case).
class ParkingResolver final : public TargetResolver {
 public:
  Resolution resolve(ContextId context, const sip::Uri&) override {
    last = context;
    Resolution r;
    r.more_may_come = true;
    return r;
  }
  ContextId last = 0;
};

TEST_F(ProxyTest, BranchAddedLater) {
  ParkingResolver parking;
  build({}, &parking);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  EXPECT_EQ(codesTo(alice_.address), std::vector<int>{100});
  ASSERT_NE(parking.last, 0u);
  Target t;
  t.uri = "sip:bob@10.0.0.2:5060";
  t.flow = transport::SendTarget{transport::Protocol::kUdp, bob_.address, 0, {}};
  ASSERT_TRUE(proxy_->addBranch(parking.last, t).isOk());
  answer(bob_, "INVITE", 486, "Busy Here");
  // More may still come: no final yet.
  EXPECT_EQ(codesTo(alice_.address), std::vector<int>{100});
  proxy_->noMoreBranches(parking.last);
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 486}));
  EXPECT_FALSE(proxy_->addBranch(parking.last, t).isOk());
}

TEST_F(ProxyTest, ParkedAndGivenUpIs480ParkedAndCancelledIs487) {
  ParkingResolver parking;
  build({}, &parking);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  proxy_->noMoreBranches(parking.last);
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 480}));

  deliver(request("INVITE", "sip:bob@example.com", "", alice_, "call-2", 1, "", "z9hG4bKc2"),
          alice_);
  deliver(request("CANCEL", "sip:bob@example.com", "", alice_, "call-2", 1, "", "z9hG4bKc2"),
          alice_);
  auto codes = codesTo(alice_.address);
  EXPECT_EQ(codes.back(), 487);
}

// An authenticator that knows no user, with 10.0.0.50 as a trusted peer.
struct NoUsersAuth {
  static auth::AuthConfig config() {
    auth::AuthConfig ac;
    ac.secret = "0123456789abcdef0123456789abcdef";
    return ac;
  }
  auth::TrustedPeers trusted = auth::TrustedPeers::parse({"10.0.0.50"}).value();
  auth::Authenticator authenticator{
      config(), [](std::string_view, std::string_view) { return std::optional<auth::UserHa1>(); },
      trusted};
};

TEST_F(ProxyTest, AuthenticationChallengesLocalUsersButNotTrustedPeers) {
  NoUsersAuth a;
  build({}, nullptr, &a.authenticator, &a.trusted);
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  auto out = sentTo(alice_.address);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].statusCode(), 407);
  EXPECT_NE(out[0].find(sip::HeaderId::kProxyAuthenticate), nullptr);
  EXPECT_TRUE(requestsTo(bob_.address, "INVITE").empty());

  Ua pbx{addr(10, 0, 0, 50, 5060)};
  deliver(request("INVITE", "sip:bob@example.com", "", pbx, "call-2"), pbx);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);

  // A stranger may not relay through us to another domain.
  Ua stranger{addr(203, 0, 113, 5, 5060)};
  std::string r = request("MESSAGE", "sip:carol@10.0.0.9", "", stranger, "call-3");
  r.replace(r.find("sip:alice@example.com"), 21, "sip:eve@evil.example");
  deliver(r, stranger);
  EXPECT_EQ(codesTo(stranger.address), std::vector<int>{403});
}

// A stranger's requests to a user who does not exist and to one who is not reachable get the
// same answer (the operator's choice), with the same headers; our users and trusted peers
// still hear the difference.
TEST_F(ProxyTest, StrangersCannotTellUnknownUsersFromUnreachableOnes) {
  NoUsersAuth a;
  Ua stranger{addr(203, 0, 113, 5, 5060)};
  // The answer's status and every header but the Via/From/To/Call-ID/CSeq echo.
  auto shape = [](const sip::Message& m) {
    std::string s = std::to_string(m.statusCode()) + " " + std::string(m.reasonPhrase());
    for (const sip::HeaderField& h : m.headers()) {
      const bool echo = h.id == sip::HeaderId::kVia || h.id == sip::HeaderId::kFrom ||
                        h.id == sip::HeaderId::kTo || h.id == sip::HeaderId::kCallId ||
                        h.id == sip::HeaderId::kCSeq;
      s += "|" + std::string(h.name) + (echo ? "" : "=" + std::string(h.value));
    }
    return s;
  };
  auto probe = [&](const std::string& method, const std::string& ruri, const Ua& ua, int n) {
    std::string r = request(method, ruri, "", ua, "probe-" + std::to_string(n), 1, "",
                            "z9hG4bKp" + std::to_string(n));
    r.replace(r.find("sip:alice@example.com"), 21, "sip:eve@evil.example");
    deliver(r, ua);
    auto out = sentTo(ua.address);
    return out.empty() ? std::string("no answer") : shape(out.back());
  };
  int n = 0;
  for (UnknownUserAnswer mode :
       {UnknownUserAnswer::k480, UnknownUserAnswer::k404, UnknownUserAnswer::kDistinct}) {
    ProxyConfig pc;
    pc.unknown_user_answer = mode;
    build(pc, nullptr, &a.authenticator, &a.trusted);
    for (const char* method : {"INVITE", "MESSAGE", "OPTIONS"}) {
      const std::string unknown = probe(method, "sip:nobody@example.com", stranger, ++n);
      const std::string known = probe(method, "sip:bob@example.com", stranger, ++n);
      if (mode == UnknownUserAnswer::kDistinct) {
        EXPECT_EQ(unknown.substr(0, 3), "404") << method;
        EXPECT_EQ(known.substr(0, 3), "480") << method;
      } else {
        EXPECT_EQ(unknown.substr(0, 3), mode == UnknownUserAnswer::k404 ? "404" : "480");
        EXPECT_EQ(unknown, known) << method;
      }
    }
    // A trusted peer hears the truth.
    Ua pbx{addr(10, 0, 0, 50, 5060)};
    EXPECT_EQ(probe("MESSAGE", "sip:nobody@example.com", pbx, ++n).substr(0, 3), "404");
    EXPECT_EQ(probe("MESSAGE", "sip:bob@example.com", pbx, ++n).substr(0, 3), "480");
  }
}

// Out-of-dialog requests from one stranger to our users: a burst, then 503 + Retry-After;
// another stranger and a trusted peer are not affected.
TEST_F(ProxyTest, StrangerRequestsToOurUsersThrottledPerSource) {
  NoUsersAuth a;
  auth::SourceThrottle throttle(auth::SourceThrottleConfig{.rate = 1, .burst = 3});
  build({}, nullptr, &a.authenticator, &a.trusted, &throttle);
  const std::uint64_t before = Stats::global().counter("proxy.stranger_throttled").value();
  auto send = [&](const Ua& ua, int n) {
    std::string r = request("OPTIONS", "sip:user" + std::to_string(n) + "@example.com", "", ua,
                            "scan-" + std::to_string(n), 1, "", "z9hG4bKs" + std::to_string(n));
    r.replace(r.find("sip:alice@example.com"), 21, "sip:eve@evil.example");
    deliver(r, ua);
  };
  Ua scanner{addr(203, 0, 113, 5, 5060)};
  for (int i = 0; i < 10; ++i) send(scanner, i);
  std::vector<int> codes = codesTo(scanner.address);
  EXPECT_EQ(codes, (std::vector<int>{480, 480, 480, 503, 503, 503, 503, 503, 503, 503}));
  auto out = sentTo(scanner.address);
  ASSERT_NE(out.back().find("Retry-After"), nullptr);
  EXPECT_EQ(out.back().find("Retry-After")->value, "1");
  EXPECT_EQ(Stats::global().counter("proxy.stranger_throttled").value() - before, 7u);
  Ua other{addr(203, 0, 113, 6, 5060)};
  send(other, 20);
  EXPECT_EQ(codesTo(other.address), std::vector<int>{480});
  Ua pbx{addr(10, 0, 0, 50, 5060)};
  for (int i = 0; i < 10; ++i) send(pbx, 30 + i);
  for (int c : codesTo(pbx.address)) EXPECT_NE(c, 503);
}

TEST_F(ProxyTest, StrayTwoHundredIsForwardedStatelessly) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(request("INVITE", "sip:bob@example.com"), alice_);
  auto inv = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(inv.size(), 1u);
  answer(bob_, "INVITE", 200, "OK");
  timers_.advance(seconds(64));  // client transaction gone (Timer M)
  EXPECT_EQ(layer_->clientTransactionCount(), 0u);
  deliver(sip::makeResponseTo(inv[0], 200, "OK", "bt"), bob_);
  EXPECT_EQ(codesTo(alice_.address), (std::vector<int>{100, 200, 200}));
}

// No relaying (docs/security.md): the probe of a stranger who sends in-dialog requests (To-tag)
// through a Route naming us, toward a phone on another host, against a proxy that authenticates
// its users as the server's does.
class RelayTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    auth::AuthConfig ac;
    ac.secret = "0123456789abcdef0123456789abcdef";
    auto trusted = auth::TrustedPeers::parse({"10.0.0.50"});
    ASSERT_TRUE(trusted.isOk());
    trusted_ = *trusted;
    authenticator_ = std::make_unique<auth::Authenticator>(
        ac, [](std::string_view, std::string_view) { return std::optional<auth::UserHa1>(); },
        trusted_);
    build({}, nullptr, authenticator_.get(), &trusted_);
  }

  // A request of mallory@evil.example (the stranger) at `stranger_`.
  std::string strangers(const std::string& method, const std::string& route,
                        const std::string& call_id, const std::string& branch,
                        const Ua& from = kStranger) {
    std::string r =
        request(method, "sip:carol@10.0.0.9:5060", route, from, call_id, 1, "xx", branch);
    const std::string alice = "<sip:alice@example.com>;tag=fa";
    r.replace(r.find(alice), alice.size(), "<sip:mallory@evil.example>;tag=mm");
    return r;
  }

  std::string reasonTo(const transport::Address& remote) {
    auto out = sentTo(remote);
    for (auto it = out.rbegin(); it != out.rend(); ++it) {
      if (it->isResponse() && it->statusCode() >= 200) {
        return std::to_string(it->statusCode()) + " " + std::string(it->reasonPhrase());
      }
    }
    return "no final response";
  }

  static inline const Ua kStranger{addr(203, 0, 113, 5, 5060)};
  const transport::Address carol_ = addr(10, 0, 0, 9, 5060);  // a phone on another host
  auth::TrustedPeers trusted_;
  std::unique_ptr<auth::Authenticator> authenticator_;
};

TEST_F(RelayTest, InDialogRequestThroughAnUnsignedRouteOfOursIs403AndGoesNowhere) {
  Counter& rejected = Stats::global().counter("proxy.route_rejected");
  const auto before = rejected.value();
  int n = 0;
  for (const char* method : {"BYE", "MESSAGE", "INVITE", "INFO"}) {
    for (const char* route :
         {"Route: <sip:192.0.2.1:5060;lr>\r\n", "Route: <sip:example.com;lr>\r\n",
          "Route: <sip:alice@192.0.2.1;lr>\r\n",
          "Route: <sip:192.0.2.1;lr>, <sip:example.com;lr>\r\n"}) {
      std::string branch = "z9hG4bKm" + std::to_string(++n);
      deliver(strangers(method, route, "evil-" + std::to_string(n), branch), kStranger);
      EXPECT_EQ(reasonTo(kStranger.address), "403 Forbidden - Route Not Signed") << method << route;
    }
  }
  EXPECT_TRUE(sentTo(carol_).empty());
  EXPECT_EQ(rejected.value() - before, static_cast<std::uint64_t>(n));
}

TEST_F(RelayTest, SignatureCopiedFromAnotherDialogOrTamperedIs403) {
  // A real dialog: alice calls bob; the stranger copies its Record-Route.
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  deliver(request("INVITE", "sip:bob@example.com", "", alice_, "call-1", 1, "", "z9hG4bKi1"),
          kAlice);  // challenged: alice is ours and must authenticate
  EXPECT_EQ(codesTo(alice_.address), std::vector<int>{407});
  Ua pbx{addr(10, 0, 0, 50, 5060)};  // a trusted PBX sets the call up instead
  deliver(request("INVITE", "sip:bob@example.com", "", pbx, "call-1", 1, "", "z9hG4bKi2"), pbx);
  auto inv = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(inv.size(), 1u);
  const std::string copied = "Route: " + std::string(inv[0].recordRoutes()->front().text) + "\r\n";
  ASSERT_NE(copied.find("ft"), std::string::npos);

  Counter& rejected = Stats::global().counter("proxy.route_rejected");
  const auto before = rejected.value();
  deliver(strangers("BYE", copied, "evil-call", "z9hG4bKf1"), kStranger);
  EXPECT_EQ(reasonTo(kStranger.address), "403 Forbidden - Route Signature Invalid");
  // The right Call-ID, other tags (From and To): still not that dialog.
  deliver(strangers("MESSAGE", copied, "call-1", "z9hG4bKf2"), kStranger);
  EXPECT_EQ(reasonTo(kStranger.address), "403 Forbidden - Route Signature Invalid");
  std::string tampered = copied;
  std::size_t at = tampered.find('@');
  tampered[at - 1] = tampered[at - 1] == '0' ? '1' : '0';
  deliver(strangers("INVITE", tampered, "call-1", "z9hG4bKf3"), kStranger);
  EXPECT_EQ(reasonTo(kStranger.address), "403 Forbidden - Route Signature Invalid");
  EXPECT_EQ(codesTo(kStranger.address), (std::vector<int>{403, 403, 403}));
  EXPECT_EQ(rejected.value() - before, 3u);
  EXPECT_TRUE(sentTo(carol_).empty());
}

TEST_F(RelayTest, AckThroughAForgedOrMissingRouteIsDroppedAndCounted) {
  Counter& dropped = Stats::global().counter("proxy.acks_dropped");
  Counter& rejected = Stats::global().counter("proxy.route_rejected");
  const auto dropped_before = dropped.value();
  const auto rejected_before = rejected.value();
  deliver(strangers("ACK", "Route: <sip:192.0.2.1:5060;lr>\r\n", "evil-ack", "z9hG4bKa1"),
          kStranger);
  deliver(strangers("ACK", signedRoute("another-call"), "evil-ack", "z9hG4bKa2"), kStranger);
  deliver(strangers("ACK", "", "evil-ack", "z9hG4bKa3"), kStranger);  // no Route at all
  deliver(strangers("ACK", "Route: <sip:10.0.0.9;lr>\r\n", "evil-ack", "z9hG4bKa4"), kStranger);
  EXPECT_TRUE(sentTo(carol_).empty());
  EXPECT_TRUE(sentTo(kStranger.address).empty());
  EXPECT_EQ(dropped.value() - dropped_before, 4u);
  EXPECT_EQ(rejected.value() - rejected_before, 2u);
  // Signed for its dialog, the ACK goes on.
  deliver(strangers("ACK", signedRoute("evil-ack", "xx"), "evil-ack", "z9hG4bKa5"), kStranger);
  EXPECT_EQ(requestsTo(carol_, "ACK").size(), 1u);
}

TEST_F(RelayTest, ADialogThroughUsWorksBothWaysUntilItsKeyExpires) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  Ua pbx{addr(10, 0, 0, 50, 5060)};
  std::string invite =
      request("INVITE", "sip:bob@example.com", "", pbx, "call-1", 1, "", "z9hG4bKi1");
  deliver(invite, pbx);
  auto inv = requestsTo(bob_.address, "INVITE");
  ASSERT_EQ(inv.size(), 1u);
  const std::string route = "Route: " + std::string(inv[0].recordRoutes()->front().text) + "\r\n";
  answer(bob_, "INVITE", 200, "OK");

  // The callee's requests carry the caller's tag as their To tag.
  auto fromBob = [&](const std::string& method, int cseq, const std::string& branch) {
    std::string s = method + " sip:pbx@10.0.0.50:5060 SIP/2.0\r\n";
    s += "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=" + branch + "\r\n";
    s += "Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=bt\r\n";
    s += "To: <sip:alice@example.com>;tag=fa\r\nCall-ID: call-1\r\n";
    s += "CSeq: " + std::to_string(cseq) + " " + method + "\r\n" + route;
    s += "Content-Length: 0\r\n\r\n";
    return s;
  };
  deliver(fromBob("MESSAGE", 10, "z9hG4bKbm1"), bob_);
  EXPECT_EQ(requestsTo(pbx.address, "MESSAGE").size(), 1u);
  deliver(request("INFO", "sip:bob@10.0.0.2:5060", route, pbx, "call-1", 2, "bt", "z9hG4bKpi1"),
          pbx);
  EXPECT_EQ(requestsTo(bob_.address, "INFO").size(), 1u);

  // A day and an hour later (rotation 1 h, overlap 24 h by default) its key verifies no more.
  unix_now_ += 25 * 3600;
  deliver(fromBob("BYE", 11, "z9hG4bKbb1"), bob_);
  EXPECT_EQ(reasonTo(bob_.address), "403 Forbidden - Route Signature Expired");
  EXPECT_EQ(requestsTo(pbx.address, "BYE").size(), 0u);
}

// Node routes (docs/architecture.md "Several nodes"): another node's request for a phone
// registered here, along the node route this node put in front of the binding's Path.
class NodeRouteTest : public RelayTest {
 protected:
  // "sip:nr…@192.0.2.1:5060;transport=tcp;lr" (as the registrar puts it in front of a Path)
  // naming bob's flow, signed with `secret` at `t`.
  std::string nodeRoute(std::int64_t t, const std::string& secret = kRouteSecret) const {
    RouteKeyConfig keys;
    keys.secret = secret;
    FlowRef flow;
    flow.protocol = bob_tcp_.protocol;
    flow.remote = bob_tcp_.address;
    flow.flow = bob_tcp_.flow;
    return "sip:" + FlowTokenCodec(keys).encodeNodeRoute(flow, t) +
           "@192.0.2.1:5060;transport=tcp;lr";
  }
  // Node A's INVITE for bob's binding: the caller's Via below A's, bob's Contact as Request-URI.
  std::string fromNodeA(const std::string& route, const std::string& call_id,
                        const std::string& branch) {
    return request("INVITE", "sip:bob@10.0.0.99:5060;transport=tcp",
                   "Route: <" + route + ">\r\nVia: SIP/2.0/UDP 10.0.0.77:5060;branch=z9hG4bKc\r\n",
                   node_a_, call_id, 1, "", branch);
  }
  std::size_t overBobsFlow(std::string_view method) {
    std::size_t n = 0;
    for (const FakeTransport::Sent& s : transport_.sent) {
      if (s.target.remote == bob_tcp_.address && s.target.flow == bob_tcp_.flow &&
          parse(s.bytes).methodText() == method) {
        ++n;
      }
    }
    return n;
  }

  const Ua bob_tcp_{addr(10, 0, 0, 2, 40000), transport::Protocol::kTcp, 7};
  const transport::Address bob_contact_ = addr(10, 0, 0, 99, 5060);
  const Ua node_a_{addr(10, 0, 0, 60, 5060)};  // another node: not a trusted peer
};

TEST_F(NodeRouteTest, AValidNodeRouteGoesOverTheFlowWithoutAChallenge) {
  deliver(fromNodeA(nodeRoute(unix_now_ - 600), "call-1", "z9hG4bKn1"), node_a_);
  EXPECT_EQ(overBobsFlow("INVITE"), 1u);
  EXPECT_TRUE(sentTo(bob_contact_).empty());
  EXPECT_EQ(codesTo(node_a_.address), std::vector<int>{100});  // no 407, no 403
  auto inv = requestsTo(bob_tcp_.address, "INVITE");
  ASSERT_EQ(inv.size(), 1u);
  EXPECT_EQ(inv[0].find(sip::HeaderId::kRoute), nullptr);
  EXPECT_EQ(inv[0].requestUriText(), "sip:bob@10.0.0.99:5060;transport=tcp");
  // The caller's ACK and BYE, from node A along our Record-Route: over bob's flow too.
  const std::string route = "Route: " + std::string(inv[0].recordRoutes()->front().text) + "\r\n";
  answer(bob_tcp_, "INVITE", 200, "OK");
  const std::string caller_via = "Via: SIP/2.0/UDP 10.0.0.77:5060;branch=z9hG4bKc2\r\n";
  ackAndBye("sip:bob@10.0.0.99:5060;transport=tcp", route + caller_via, node_a_, "call-1");
  EXPECT_EQ(overBobsFlow("ACK"), 1u);
  EXPECT_EQ(overBobsFlow("BYE"), 1u);
  EXPECT_TRUE(sentTo(bob_contact_).empty());
}

TEST_F(NodeRouteTest, AForgedExpiredOrOtherSecretNodeRouteIs403AndReachesNoFlow) {
  Counter& rejected = Stats::global().counter("proxy.route_rejected");
  const auto before = rejected.value();
  std::string forged = nodeRoute(unix_now_);
  const std::size_t at = forged.find('@');
  forged[at - 1] = forged[at - 1] == '0' ? '1' : '0';
  const std::string other_secret = nodeRoute(unix_now_, "another cluster's secret, 32 b..");
  const std::string expired = nodeRoute(unix_now_ - 30 * 3600);  // rotation 1 h + overlap 24 h
  deliver(fromNodeA(forged, "call-f", "z9hG4bKf1"), node_a_);
  EXPECT_EQ(reasonTo(node_a_.address), "403 Forbidden - Node Route Signature Invalid");
  deliver(fromNodeA(other_secret, "call-o", "z9hG4bKf2"), node_a_);
  EXPECT_EQ(reasonTo(node_a_.address), "403 Forbidden - Node Route Signature Invalid");
  deliver(fromNodeA(expired, "call-e", "z9hG4bKf3"), node_a_);
  EXPECT_EQ(reasonTo(node_a_.address), "403 Forbidden - Node Route Expired");
  // In a dialog, and as an ACK (dropped), the same.
  deliver(request("BYE", "sip:bob@10.0.0.99:5060;transport=tcp", "Route: <" + forged + ">\r\n",
                  node_a_, "call-f", 2, "bt", "z9hG4bKf4"),
          node_a_);
  EXPECT_EQ(reasonTo(node_a_.address), "403 Forbidden - Node Route Signature Invalid");
  deliver(request("ACK", "sip:bob@10.0.0.99:5060;transport=tcp", "Route: <" + expired + ">\r\n",
                  node_a_, "call-e", 1, "bt", "z9hG4bKf5"),
          node_a_);
  EXPECT_EQ(codesTo(node_a_.address), (std::vector<int>{403, 403, 403, 403}));
  EXPECT_EQ(rejected.value() - before, 5u);
  EXPECT_TRUE(sentTo(bob_tcp_.address).empty());
  EXPECT_TRUE(sentTo(bob_contact_).empty());
}

TEST_F(NodeRouteTest, OurOwnNodeRouteInFrontOfABindingIsDroppedAndAnotherNodesIsFollowed) {
  // Registered here (the node route is ours): straight over the flow, no Route.
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.99:5060;transport=tcp", bob_tcp_, 1000,
                  {nodeRoute(unix_now_)});
  // Registered at another node (10.0.0.60): its node route is the Route to that node.
  const std::string theirs = "sip:nrt0a00003c-9c40-7.x.001aaaaaaaaaaaaaaaa@10.0.0.60:5060;lr";
  registerBinding("sip:carol@example.com", "sip:carol@10.0.0.98:5060", bob2_, 1000, {theirs});
  Ua pbx{addr(10, 0, 0, 50, 5060)};  // trusted: no challenge
  deliver(request("INVITE", "sip:bob@example.com", "", pbx, "call-1", 1, "", "z9hG4bKo1"), pbx);
  EXPECT_EQ(overBobsFlow("INVITE"), 1u);
  auto inv = requestsTo(bob_tcp_.address, "INVITE");
  ASSERT_EQ(inv.size(), 1u);
  EXPECT_EQ(inv[0].find(sip::HeaderId::kRoute), nullptr);
  EXPECT_TRUE(sentTo(bob_contact_).empty());
  std::string to_carol =
      request("INVITE", "sip:carol@example.com", "", pbx, "call-2", 1, "", "z9hG4bKo2");
  to_carol.replace(to_carol.find("<sip:bob@example.com>"), 21, "<sip:carol@example.com>");
  deliver(to_carol, pbx);
  auto fwd = requestsTo(addr(10, 0, 0, 60, 5060), "INVITE");
  ASSERT_EQ(fwd.size(), 1u);
  EXPECT_EQ(allValues(fwd[0], sip::HeaderId::kRoute), "<" + theirs + ">");
  EXPECT_EQ(fwd[0].requestUriText(), "sip:carol@10.0.0.98:5060");
}

TEST_F(RelayTest, PreloadedRouteOutOfDialogIsNormalAndTrustedPeersMayUseAnyRoute) {
  registerBinding("sip:bob@example.com", "sip:bob@10.0.0.2:5060", bob_);
  // A phone using us as outbound proxy: pre-loaded Route, no To-tag. Strangers may call our
  // users; our own users are challenged as usual; nobody may relay elsewhere unauthenticated.
  std::string call = strangers("INVITE", "Route: <sip:192.0.2.1;lr>\r\n", "out-1", "z9hG4bKo1");
  call.replace(call.find("sip:carol@10.0.0.9:5060"), 23, "sip:bob@example.com");
  call.replace(call.find(";tag=xx"), 7, "");  // out of dialog
  deliver(call, kStranger);
  EXPECT_EQ(requestsTo(bob_.address, "INVITE").size(), 1u);
  deliver(request("MESSAGE", "sip:carol@10.0.0.9:5060", "Route: <sip:192.0.2.1;lr>\r\n", alice_,
                  "out-2", 1, "", "z9hG4bKo2"),
          alice_);
  EXPECT_EQ(codesTo(alice_.address), std::vector<int>{407});
  std::string relay = strangers("MESSAGE", "Route: <sip:192.0.2.1;lr>\r\n", "out-3", "z9hG4bKo3");
  relay.replace(relay.find(";tag=xx"), 7, "");
  deliver(relay, kStranger);
  EXPECT_EQ(reasonTo(kStranger.address), "403 Relaying Denied");
  EXPECT_TRUE(sentTo(carol_).empty());
  // A trusted peer may relay anyway: its in-dialog requests need no signature.
  Ua pbx{addr(10, 0, 0, 50, 5060)};
  deliver(strangers("BYE", "Route: <sip:192.0.2.1;lr>\r\n", "pbx-1", "z9hG4bKo4", pbx), pbx);
  EXPECT_EQ(requestsTo(carol_, "BYE").size(), 1u);
}

}  // namespace
}  // namespace sipwake::routing::testing
