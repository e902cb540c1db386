// Shared fixture for the transaction tests: a fake clock, a fake transport, recording users, and
// builders for the SIP messages the tests feed in.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "fake_transport.h"
#include "sip/message.h"
#include "transaction/transaction_layer.h"

namespace sipwake::transaction {

inline sip::Message parse(std::string text) {
  sip::ParseOutcome out = sip::parseMessage(std::move(text), sip::ParseLimits{});
  if (out.kind != sip::ParseOutcome::Kind::kOk || !out.message) {
    ADD_FAILURE() << "test message did not parse: " << out.reason << " / " << out.drop_reason;
    return sip::Message::makeResponse(500, "unparsable test message");
  }
  return std::move(*out.message);
}

struct Msg {
  std::string method = "INVITE";
  std::string cseq_method;  // defaults to method
  std::string branch = "z9hG4bKclient1";
  std::string sent_by = "10.0.0.1:5060";
  std::string transport = "UDP";
  std::string to_tag;
  std::string call_id = "call-1@10.0.0.1";
  std::string request_uri = "sip:bob@example.com";
  int cseq = 1;
  std::string extra;  // additional header lines, each ending in CRLF

  std::string via() const {
    std::string v = "Via: SIP/2.0/" + transport + " " + sent_by;
    if (!branch.empty()) v += ";branch=" + branch;
    return v + "\r\n";
  }
  std::string common() const {
    std::string s = via();
    s += "Max-Forwards: 70\r\n";
    s += "From: <sip:alice@example.com>;tag=from-1\r\n";
    s += "To: <sip:bob@example.com>";
    if (!to_tag.empty()) s += ";tag=" + to_tag;
    s += "\r\nCall-ID: " + call_id + "\r\n";
    s += "CSeq: " + std::to_string(cseq) + " " + (cseq_method.empty() ? method : cseq_method) +
         "\r\n";
    s += extra;
    return s;
  }
  std::string request() const {
    return method + " " + request_uri + " SIP/2.0\r\n" + common() +
           "Contact: <sip:alice@10.0.0.1>\r\nContent-Length: 0\r\n\r\n";
  }
  std::string response(int code, const std::string& reason) const {
    return "SIP/2.0 " + std::to_string(code) + " " + reason + "\r\n" + common() +
           "Content-Length: 0\r\n\r\n";
  }
};

class RecordingTu : public TransactionUser {
 public:
  void onRequest(ServerTransaction& tx, transport::ReceivedMessage&& request) override {
    request_txs.push_back(&tx);
    requests.push_back(std::move(request.message));
    if (answer) answer(tx, requests.back());
  }
  void onAck(transport::ReceivedMessage&& ack) override { acks.push_back(std::move(ack.message)); }
  void onStrayResponse(transport::ReceivedMessage&& response) override {
    strays.push_back(std::move(response.message));
  }
  void onCancel(ServerTransaction& invite_tx, transport::ReceivedMessage&& cancel) override {
    cancelled.push_back(&invite_tx);
    cancels.push_back(std::move(cancel.message));
  }
  void onTransportError(ServerTransaction& tx, const Status& /*error*/) override {
    transport_errors.push_back(&tx);
  }
  void onAckTimeout(ServerTransaction& tx) override { ack_timeouts.push_back(&tx); }
  void onTerminated(ServerTransaction& /*tx*/) override { ++terminated; }

  // Called from onRequest, e.g. to respond synchronously.
  std::function<void(ServerTransaction&, const sip::Message&)> answer;
  std::vector<ServerTransaction*> request_txs;
  std::vector<sip::Message> requests;
  std::vector<sip::Message> acks;
  std::vector<sip::Message> strays;
  std::vector<ServerTransaction*> cancelled;
  std::vector<sip::Message> cancels;
  std::vector<ServerTransaction*> transport_errors;
  std::vector<ServerTransaction*> ack_timeouts;
  int terminated = 0;
};

class RecordingClient : public ClientTransactionUser {
 public:
  void onResponse(ClientTransaction& /*tx*/, transport::ReceivedMessage&& response) override {
    codes.push_back(response.message.statusCode());
    responses.push_back(std::move(response.message));
  }
  void onTimeout(ClientTransaction& /*tx*/) override { ++timeouts; }
  void onTransportError(ClientTransaction& /*tx*/, const Status& /*error*/) override {
    ++transport_errors;
  }
  void onTerminated(ClientTransaction& /*tx*/) override { ++terminated; }

  std::vector<int> codes;
  std::vector<sip::Message> responses;
  int timeouts = 0;
  int transport_errors = 0;
  int terminated = 0;
};

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override { makeLayer(LayerConfig{}); }

  void makeLayer(LayerConfig config) {
    layer_.reset();
    layer_ = std::make_unique<TransactionLayer>(timers_, transport_, tu_, std::move(config));
  }

  transport::ReceivedMessage received(std::string text,
                                      transport::Protocol protocol = transport::Protocol::kUdp) {
    transport::ReceivedMessage r{parse(std::move(text)),
                                 protocol,
                                 remote_,
                                 transport_.local,
                                 protocol == transport::Protocol::kUdp ? 0u : 7u,
                                 timers_.now()};
    return r;
  }
  void deliver(std::string text, transport::Protocol protocol = transport::Protocol::kUdp) {
    layer_->receive(received(std::move(text), protocol));
  }

  std::size_t sentCount() const { return transport_.sent.size(); }
  sip::Message sent(std::size_t i) { return parse(transport_.sent.at(i).bytes); }
  sip::Message lastSent() { return sent(transport_.sent.size() - 1); }
  // Number of sends between now and `d` from now.
  std::size_t sendsDuring(Duration d) {
    std::size_t before = sentCount();
    timers_.advance(d);
    return sentCount() - before;
  }

  FakeTimerService timers_;
  testing::FakeTransport transport_;
  RecordingTu tu_;
  transport::Address remote_ = testing::FakeTransport::address(10, 0, 0, 1, 5060);
  std::unique_ptr<TransactionLayer> layer_;
};

}  // namespace sipwake::transaction
