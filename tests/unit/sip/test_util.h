// Helpers shared by the SIP unit tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

#include "sip/message.h"

namespace sipwake::sip::testing {

inline std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::filesystem::path dataDir() { return SIPWAKE_TEST_DATA_DIR; }

// Lines joined with CRLF, plus the empty line and `body`.
inline std::string crlf(std::initializer_list<std::string_view> lines, std::string_view body = {}) {
  std::string out;
  for (std::string_view l : lines) out.append(l).append("\r\n");
  out.append("\r\n").append(body);
  return out;
}

inline ParseOutcome parse(std::string bytes, const ParseLimits& limits = ParseLimits{}) {
  return parseMessage(std::move(bytes), limits);
}

// Parses and requires kOk.
inline Message parseOk(std::string bytes) {
  ParseOutcome o = parseMessage(std::move(bytes), ParseLimits{});
  if (o.kind != ParseOutcome::Kind::kOk) {
    throw std::runtime_error("expected kOk, got " + o.reason + " / " + o.drop_reason);
  }
  return std::move(*o.message);
}

inline const char* kindName(ParseOutcome::Kind k) {
  switch (k) {
    case ParseOutcome::Kind::kOk:
      return "kOk";
    case ParseOutcome::Kind::kReject:
      return "kReject";
    case ParseOutcome::Kind::kDrop:
      return "kDrop";
  }
  return "?";
}

// A typical REGISTER with push parameters (RFC 8599 style and a legacy dialect) and digest
// credentials, as the benchmarks and several tests use it.
inline std::string typicalRegister() {
  return crlf(
      {"REGISTER sip:example.com SIP/2.0",
       "Via: SIP/2.0/TLS 192.0.2.10:51234;rport;branch=z9hG4bK-524287-1---a1b2c3d4e5f6",
       "Max-Forwards: 70",
       "Contact: <sip:alice@192.0.2.10:51234;transport=tls;pn-provider=apns;"
       "pn-param=ABCD1234.com.example.voip;pn-prid=00fc13adff78512%3a5a6c>"
       ";+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1;"
       "expires=3600;q=0.7",
       "To: <sip:alice@example.com>", "From: \"Alice\" <sip:alice@example.com>;tag=a73kszlfl",
       "Call-ID: 9aa5c2fe-4f5d-4a2b-9f0e-5e4a3c2b1a09", "CSeq: 2 REGISTER", "Expires: 3600",
       "Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE",
       "Supported: replaces, outbound, gruu, path", "User-Agent: ExamplePhone/5.2.0 (iOS 17.4)",
       "Authorization: Digest username=\"alice\", realm=\"example.com\", "
       "nonce=\"5f2b7c9e8d1a4b3c\", uri=\"sip:example.com\", "
       "response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", "
       "qop=auth, nc=00000001",
       "Content-Length: 0"});
}

// A typical INVITE with an SDP offer.
inline std::string typicalInvite() {
  const std::string sdp =
      "v=0\r\n"
      "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
      "s=-\r\n"
      "c=IN IP4 192.0.2.10\r\n"
      "t=0 0\r\n"
      "m=audio 49170 RTP/AVP 0 8 97 101\r\n"
      "a=rtpmap:0 PCMU/8000\r\n"
      "a=rtpmap:8 PCMA/8000\r\n"
      "a=rtpmap:97 opus/48000/2\r\n"
      "a=rtpmap:101 telephone-event/8000\r\n"
      "a=fmtp:101 0-16\r\n"
      "a=sendrecv\r\n";
  return crlf({"INVITE sip:bob@example.com SIP/2.0",
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
}

}  // namespace sipwake::sip::testing
