// SIP message layer micro-benchmarks: parse, parse+serialize, parse+proxy edits+serialize,
// serialize alone (unchanged / edited) for a typical INVITE (with SDP) and a typical REGISTER
// (push parameters + Authorization), parse + a registrar's typed reads, URI parse, framing.
// The other micro-benchmarks of this binary: bench_transaction.cc, bench_location_lookup.cc,
// bench_push.cc; digest/nonce figures are in bench/auth (bench_auth).
// Each parse iteration includes copying the wire bytes into the std::string parseMessage()
// takes ownership of, as a transport does for every datagram.
// Run: build (Release) then ./bench/micro/sipwake_bench_micro --benchmark_filter=Parse
#include <benchmark/benchmark.h>

#include <string>

#include "sip/message.h"
#include "sip/stream_framer.h"

namespace {

using sipwake::sip::HeaderId;
using sipwake::sip::Message;
using sipwake::sip::ParseLimits;
using sipwake::sip::ParseOutcome;

std::string lines(std::initializer_list<std::string_view> ls, std::string_view body = {}) {
  std::string out;
  for (std::string_view l : ls) out.append(l).append("\r\n");
  return out.append("\r\n").append(body);
}

const std::string& registerMessage() {
  static const std::string m = lines(
      {"REGISTER sip:example.com SIP/2.0",
       "Via: SIP/2.0/TLS 192.0.2.10:51234;rport;branch=z9hG4bK-524287-1---a1b2c3d4e5f6",
       "Max-Forwards: 70",
       "Contact: <sip:alice@192.0.2.10:51234;transport=tls;pn-provider=apns;"
       "pn-param=ABCD1234.com.example.voip;pn-prid=00fc13adff78512%3a5a6c>"
       ";+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1;expires=3600",
       "To: <sip:alice@example.com>", "From: \"Alice\" <sip:alice@example.com>;tag=a73kszlfl",
       "Call-ID: 9aa5c2fe-4f5d-4a2b-9f0e-5e4a3c2b1a09", "CSeq: 2 REGISTER", "Expires: 3600",
       "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE",
       "Supported: replaces, outbound, gruu, path", "User-Agent: ExamplePhone/5.2.0 (iOS 17.4)",
       "Authorization: Digest username=\"alice\", realm=\"example.com\", "
       "nonce=\"5f2b7c9e8d1a4b3c\", "
       "uri=\"sip:example.com\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, "
       "cnonce=\"0a4f113b\", qop=auth, nc=00000001",
       "Content-Length: 0"});
  return m;
}

const std::string& inviteMessage() {
  static const std::string sdp =
      "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
      "t=0 0\r\nm=audio 49170 RTP/AVP 0 8 97 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 "
      "PCMA/8000\r\n"
      "a=rtpmap:97 opus/48000/2\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
      "a=sendrecv\r\n";
  static const std::string m =
      lines({"INVITE sip:bob@example.com SIP/2.0",
             "Via: SIP/2.0/TLS 192.0.2.10:51234;rport;branch=z9hG4bK-524287-1---77ab2c3d",
             "Max-Forwards: 70", "Contact: <sip:alice@192.0.2.10:51234;transport=tls;ob>",
             "To: \"Bob\" <sip:bob@example.com>",
             "From: \"Alice\" <sip:alice@example.com>;tag=9fxced76sl",
             "Call-ID: 3848276298220188511@192.0.2.10", "CSeq: 1 INVITE",
             "Route: <sip:edge.example.com;transport=tls;lr>",
             "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, UPDATE",
             "Supported: replaces, timer, 100rel", "User-Agent: ExamplePhone/5.2.0",
             "Content-Type: application/sdp", "Content-Length: " + std::to_string(sdp.size())},
            sdp);
  return m;
}

const std::string& message(int which) { return which == 0 ? inviteMessage() : registerMessage(); }
const char* label(int which) { return which == 0 ? "INVITE+SDP" : "REGISTER+push+auth"; }

Message parseOrDie(std::string bytes) {
  ParseOutcome o = sipwake::sip::parseMessage(std::move(bytes), ParseLimits{});
  if (o.kind != ParseOutcome::Kind::kOk) std::abort();
  return std::move(*o.message);
}

void BM_Parse(benchmark::State& state) {
  const std::string& wire = message(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    ParseOutcome o = sipwake::sip::parseMessage(wire, ParseLimits{});
    benchmark::DoNotOptimize(o);
  }
  state.SetLabel(label(static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(wire.size()));
}

void BM_ParseSerialize(benchmark::State& state) {
  const std::string& wire = message(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    Message m = parseOrDie(wire);
    std::string out = m.serialize();
    benchmark::DoNotOptimize(out);
  }
  state.SetLabel(label(static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations());
}

void BM_ParseEditSerialize(benchmark::State& state) {
  const std::string& wire = message(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    Message m = parseOrDie(wire);
    m.pushVia("SIP/2.0/TLS 203.0.113.5:5061;branch=z9hG4bK-sipwake-7f3a9c21");
    m.prependHeader(HeaderId::kRecordRoute, "<sip:203.0.113.5:5061;transport=tls;lr>");
    m.decrementMaxForwards();
    std::string out = m.serialize();
    benchmark::DoNotOptimize(out);
  }
  state.SetLabel(label(static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations());
}

// Serialisation alone (the message parsed once, outside the loop): an unchanged message is
// copied range by range; an edited one (new top Via, Record-Route, Max-Forwards decremented, as
// the proxy forwards it) splices the owned values between the unchanged byte ranges.
void BM_Serialize(benchmark::State& state) {
  const Message m = parseOrDie(message(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    std::string out = m.serialize();
    benchmark::DoNotOptimize(out);
  }
  state.SetLabel(label(static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations());
}

void BM_SerializeEdited(benchmark::State& state) {
  Message m = parseOrDie(message(static_cast<int>(state.range(0))));
  m.pushVia("SIP/2.0/TLS 203.0.113.5:5061;branch=z9hG4bK-sipwake-7f3a9c21");
  m.prependHeader(HeaderId::kRecordRoute, "<sip:203.0.113.5:5061;transport=tls;lr>");
  m.decrementMaxForwards();
  for (auto _ : state) {
    std::string out = m.serialize();
    benchmark::DoNotOptimize(out);
  }
  state.SetLabel(label(static_cast<int>(state.range(0))));
  state.SetItemsProcessed(state.iterations());
}

// Parse + the typed reads a registrar makes on a REGISTER.
void BM_ParseRegisterTypedReads(benchmark::State& state) {
  const std::string& wire = registerMessage();
  for (auto _ : state) {
    Message m = parseOrDie(wire);
    const auto& via = m.topVia();
    const auto& to = m.to();
    const auto& contacts = m.contacts();
    auto expires = m.expires();
    benchmark::DoNotOptimize(via);
    benchmark::DoNotOptimize(to);
    benchmark::DoNotOptimize(contacts);
    benchmark::DoNotOptimize(expires);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ParseUri(benchmark::State& state) {
  const std::string uri =
      "sip:alice@192.0.2.10:51234;transport=tls;pn-provider=apns;"
      "pn-param=ABCD1234.com.example.voip;pn-prid=00fc13adff78512%3a5a6c";
  for (auto _ : state) {
    auto u = sipwake::sip::parseUri(uri);
    benchmark::DoNotOptimize(u);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_StreamFramer(benchmark::State& state) {
  const std::string stream = registerMessage() + inviteMessage() + "\r\n\r\n";
  std::string out;
  std::string error;
  for (auto _ : state) {
    sipwake::sip::StreamFramer f{ParseLimits{}};
    f.append(stream);
    while (f.next(&out, &error) != sipwake::sip::StreamFramer::Next::kNeedMore) {
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations() * 2);
}

BENCHMARK(BM_Parse)->Arg(0)->Arg(1);
BENCHMARK(BM_ParseSerialize)->Arg(0)->Arg(1);
BENCHMARK(BM_ParseEditSerialize)->Arg(0)->Arg(1);
BENCHMARK(BM_Serialize)->Arg(0)->Arg(1);
BENCHMARK(BM_SerializeEdited)->Arg(0)->Arg(1);
BENCHMARK(BM_ParseRegisterTypedReads);
BENCHMARK(BM_ParseUri);
BENCHMARK(BM_StreamFramer);

}  // namespace

BENCHMARK_MAIN();
