// Transaction matching (src/transaction): TransactionLayer::receive() of a message that matches
// one of N live transactions, N = 10k and 100k.
//   BM_ServerTransactionMatch: a retransmitted REGISTER reaches its server transaction (Trying:
//     absorbed, §17.2.2) — the §17.2.3 branch + sent-by + method lookup.
//   BM_ClientTransactionMatch: a 100 (Trying) reaches its non-INVITE client transaction
//     (Proceeding) — the §17.1.3 branch + CSeq method lookup.
// The messages are parsed outside the timed region (in batches, with the timer paused); what is
// timed is receive() itself: top Via/CSeq access, key building, the hash lookup and the state
// machine's handling. Timers never fire (a null TimerService) and nothing goes on the wire.
// Run: build-release/bench/micro/sipwake_bench_micro --benchmark_filter=TransactionMatch
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "sip/message.h"
#include "transaction/transaction_layer.h"
#include "transport/transport.h"

namespace sipwake::transaction {
namespace {

// Timers are scheduled and cancelled but never run: the benchmark measures matching only.
class NullTimers final : public TimerService {
 public:
  TimePoint now() const override { return TimePoint{}; }
  TimerId schedule(Duration /*delay*/, std::function<void()> /*fn*/) override { return ++next_; }
  void cancel(TimerId /*id*/) override {}

 private:
  TimerId next_ = 0;
};

class NullTransport final : public transport::Transport {
 public:
  void send(const transport::SendTarget& /*target*/, std::string /*bytes*/,
            std::function<void(Status)> on_done) override {
    if (on_done) on_done(Status::ok());
  }
  Result<transport::Address> localAddressFor(transport::Protocol /*protocol*/,
                                             bool /*v6*/) const override {
    transport::Address a;
    a.bytes[0] = 192;
    a.bytes[1] = 0;
    a.bytes[2] = 2;
    a.bytes[3] = 1;
    a.port = 5060;
    return a;
  }
};

// Keeps every server transaction open (never answers) and ignores everything else.
class SilentTu final : public TransactionUser {
 public:
  void onRequest(ServerTransaction& /*tx*/, transport::ReceivedMessage&& /*request*/) override {
    ++requests;
  }
  void onAck(transport::ReceivedMessage&& /*ack*/) override {}
  void onStrayResponse(transport::ReceivedMessage&& /*response*/) override { ++strays; }
  void onCancel(ServerTransaction& /*tx*/, transport::ReceivedMessage&& /*cancel*/) override {}
  void onTransportError(ServerTransaction& /*tx*/, const Status& /*error*/) override {}
  std::int64_t requests = 0;
  std::int64_t strays = 0;
};

class CountingClient final : public ClientTransactionUser {
 public:
  void onResponse(ClientTransaction& /*tx*/, transport::ReceivedMessage&& /*response*/) override {
    ++responses;
  }
  void onTimeout(ClientTransaction& /*tx*/) override {}
  void onTransportError(ClientTransaction& /*tx*/, const Status& /*error*/) override {}
  std::int64_t responses = 0;
};

std::string branchOf(char side, std::int64_t i) {
  return "z9hG4bK-bench-" + std::string(1, side) + std::to_string(i);
}

std::string registerText(std::int64_t i) {
  const std::string n = std::to_string(i);
  return "REGISTER sip:example.com SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 198.51.100.7:5060;rport;branch=" +
         branchOf('s', i) +
         "\r\n"
         "Max-Forwards: 70\r\n"
         "From: <sip:user" +
         n + "@example.com>;tag=f" + n +
         "\r\n"
         "To: <sip:user" +
         n +
         "@example.com>\r\n"
         "Call-ID: reg-" +
         n +
         "@198.51.100.7\r\n"
         "CSeq: 1 REGISTER\r\n"
         "Contact: <sip:user" +
         n +
         "@198.51.100.7:5060>;expires=3600\r\n"
         "Content-Length: 0\r\n\r\n";
}

std::string trying100Text(std::int64_t i) {
  const std::string n = std::to_string(i);
  return "SIP/2.0 100 Trying\r\n"
         "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=" +
         branchOf('c', i) +
         "\r\n"
         "From: <sip:proxy@example.com>;tag=p" +
         n +
         "\r\n"
         "To: <sip:user" +
         n +
         "@example.com>\r\n"
         "Call-ID: opt-" +
         n +
         "@192.0.2.1\r\n"
         "CSeq: 1 OPTIONS\r\n"
         "Content-Length: 0\r\n\r\n";
}

transport::ReceivedMessage received(std::string text) {
  sip::ParseOutcome o = sip::parseMessage(std::move(text), sip::ParseLimits{});
  if (o.kind != sip::ParseOutcome::Kind::kOk) std::abort();
  transport::Address remote;
  remote.bytes[0] = 198;
  remote.bytes[1] = 51;
  remote.bytes[2] = 100;
  remote.bytes[3] = 7;
  remote.port = 5060;
  return transport::ReceivedMessage{std::move(*o.message),
                                    transport::Protocol::kUdp,
                                    remote,
                                    transport::Address{},
                                    0,
                                    TimePoint{}};
}

// Pseudo-random transaction indices (fixed seed): lookups spread over the whole table.
struct Picker {
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  std::int64_t next(std::int64_t n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return static_cast<std::int64_t>(x % static_cast<std::uint64_t>(n));
  }
};

// Parsed messages for the timed loop, refilled in batches with the timer paused.
template <typename MakeText>
class Batch {
 public:
  explicit Batch(MakeText make) : make_(std::move(make)) {}
  transport::ReceivedMessage&& next(benchmark::State& state, std::int64_t n) {
    if (next_ == messages_.size()) {
      state.PauseTiming();
      messages_.clear();
      for (int k = 0; k < 1024; ++k) messages_.push_back(received(make_(picker_.next(n))));
      next_ = 0;
      state.ResumeTiming();
    }
    return std::move(messages_[next_++]);
  }

 private:
  MakeText make_;
  Picker picker_;
  std::vector<transport::ReceivedMessage> messages_;
  std::size_t next_ = 0;
};

// A transaction layer with `n` live transactions' worth of room, on null timers and transport.
struct Layer {
  explicit Layer(std::int64_t n) : layer(timers, transport, tu, configFor(n)) {}
  static LayerConfig configFor(std::int64_t n) {
    LayerConfig config;
    config.max_transactions = static_cast<std::size_t>(n) + 1;
    return config;
  }
  NullTimers timers;
  NullTransport transport;
  SilentTu tu;
  TransactionLayer layer;
};

// receive() of one parsed message per iteration, each matching one of the n transactions.
template <typename MakeText>
void receiveMatching(benchmark::State& state, TransactionLayer& layer, std::int64_t n,
                     MakeText make) {
  Batch batch(make);
  for (auto _ : state) layer.receive(batch.next(state, n));
  state.SetItemsProcessed(state.iterations());
}

void BM_ServerTransactionMatch(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Layer l(n);
  for (std::int64_t i = 0; i < n; ++i) l.layer.receive(received(registerText(i)));
  if (l.layer.serverTransactionCount() != static_cast<std::size_t>(n)) std::abort();
  receiveMatching(state, l.layer, n, registerText);
  // Every retransmission was absorbed: none reached the TU as a new request.
  if (l.tu.requests != n) state.SkipWithError("a retransmission did not match its transaction");
}
BENCHMARK(BM_ServerTransactionMatch)->Arg(10'000)->Arg(100'000);

void BM_ClientTransactionMatch(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Layer l(n);
  CountingClient client;
  transport::SendTarget target;
  target.remote.port = 5060;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::string num = std::to_string(i);
    sip::Message req =
        sip::Message::makeRequest(sip::Method::kOptions, {}, "sip:user" + num + "@example.com");
    req.appendHeader("Max-Forwards", "70");
    req.appendHeader("From", "<sip:proxy@example.com>;tag=p" + num);
    req.appendHeader("To", "<sip:user" + num + "@example.com>");
    req.appendHeader("Call-ID", "opt-" + num + "@192.0.2.1");
    req.appendHeader("CSeq", "1 OPTIONS");
    const std::string branch = branchOf('c', i);
    RequestOptions options;
    options.branch = branch;
    options.user = &client;
    if (!l.layer.sendRequest(std::move(req), target, options).isOk()) std::abort();
  }
  if (l.layer.clientTransactionCount() != static_cast<std::size_t>(n)) std::abort();
  receiveMatching(state, l.layer, n, trying100Text);
  if (l.tu.strays != 0 || client.responses != state.iterations()) {
    state.SkipWithError("a response did not match its client transaction");
  }
}
BENCHMARK(BM_ClientTransactionMatch)->Arg(10'000)->Arg(100'000);

}  // namespace
}  // namespace sipwake::transaction
