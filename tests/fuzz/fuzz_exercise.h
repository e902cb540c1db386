// One input through everything in src/sip that takes untrusted bytes, with the invariants that
// must hold for any input. Used by the libFuzzer target (fuzz_message.cc) and by the unit test
// that replays tests/fuzz/regressions/ and the seed corpus (so a fixed crash stays fixed).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sip/message.h"
#include "sip/stream_framer.h"

namespace sipwake::sip::fuzz {

[[noreturn]] inline void invariantFailed(const char* what, int line) {
  std::fprintf(stderr, "fuzz invariant violated (line %d): %s\n", line, what);
  std::abort();
}
#define SIPWAKE_FUZZ_CHECK(cond)                                         \
  do {                                                                   \
    if (!(cond)) ::sipwake::sip::fuzz::invariantFailed(#cond, __LINE__); \
  } while (0)

inline ParseLimits fuzzLimits() {
  ParseLimits l;
  l.max_message_bytes = 16384;
  l.max_headers = 64;
  l.max_line_bytes = 4096;
  return l;
}

// Serialization may add a Content-Length and edits add fields: give re-parses some room.
inline ParseLimits relaxed(ParseLimits l) {
  l.max_message_bytes += 4096;
  l.max_headers += 16;
  l.max_line_bytes += 1024;
  return l;
}

inline void touchAccessors(const Message& m) {
  if (auto v = m.vias()) {
    for (const Via& via : *v) {
      (void)via.branch();
      (void)via.hasMagicCookie();
      (void)via.received();
    }
  }
  (void)m.topVia();
  if (auto f = m.from()) (void)f->tag();
  if (auto t = m.to()) (void)t->uri.hostWithoutBrackets();
  (void)m.callId();
  (void)m.cseq();
  (void)m.maxForwards();
  if (auto c = m.contacts()) {
    for (const ContactValue& cv : *c) {
      (void)cv.expires();
      (void)cv.q();
      (void)cv.instance();
      (void)cv.regId();
      if (!cv.star) {
        Uri copy = cv.addr.uri;
        (void)uriEquivalent(copy, cv.addr.uri);
        (void)unescape(cv.addr.uri.user);
      }
    }
  }
  (void)m.routes();
  (void)m.recordRoutes();
  (void)m.paths();
  (void)m.expires();
  (void)m.minExpires();
  (void)m.optionTags(HeaderId::kRequire);
  (void)m.optionTags(HeaderId::kProxyRequire);
  (void)m.optionTags(HeaderId::kSupported);
  (void)m.find("X-Unknown");
  (void)m.values(HeaderId::kVia);
  if (m.isRequest()) (void)m.requestUri();
  for (const HeaderField& h : m.headers()) (void)splitHeaderList(h.value);
}

// An unquoted Contact param value may hold blanks (the ABTO "push-token-app=hero voip"), but
// only SP/HT between gen-value characters: never at either end, never a line break, ';' or ','.
inline void checkContactParams(const ContactValue& cv) {
  if (cv.star) return;
  for (const Param& p : cv.addr.params) {
    SIPWAKE_FUZZ_CHECK(!p.name.empty());
    if (!p.has_value || p.value.empty() || p.value.front() == '"') continue;
    SIPWAKE_FUZZ_CHECK(p.value.front() != ' ' && p.value.front() != '\t');
    SIPWAKE_FUZZ_CHECK(p.value.back() != ' ' && p.value.back() != '\t');
    for (char ch : p.value) {
      SIPWAKE_FUZZ_CHECK(ch != '\r' && ch != '\n' && ch != ';' && ch != ',' && ch != '"');
    }
  }
}

// What kOk promises: every field that validation looked at is readable through the typed API.
inline void checkOkMessage(const Message& m) {
  SIPWAKE_FUZZ_CHECK(m.vias().isOk());
  SIPWAKE_FUZZ_CHECK(m.topVia().isOk());
  SIPWAKE_FUZZ_CHECK(m.cseq().isOk());
  SIPWAKE_FUZZ_CHECK(m.from().isOk());
  SIPWAKE_FUZZ_CHECK(m.to().isOk());
  SIPWAKE_FUZZ_CHECK(!m.callId().empty());
  if (m.isRequest()) {
    SIPWAKE_FUZZ_CHECK(m.requestUri().scheme != Uri::Scheme::kOther);
    SIPWAKE_FUZZ_CHECK(m.contacts().isOk());
    for (const ContactValue& cv : *m.contacts()) checkContactParams(cv);
    SIPWAKE_FUZZ_CHECK(m.routes().isOk());
    SIPWAKE_FUZZ_CHECK(m.recordRoutes().isOk());
    SIPWAKE_FUZZ_CHECK(m.paths().isOk());
    if (m.find(HeaderId::kMaxForwards)) SIPWAKE_FUZZ_CHECK(m.maxForwards().isOk());
    if (m.find(HeaderId::kExpires)) SIPWAKE_FUZZ_CHECK(m.expires().isOk());
    SIPWAKE_FUZZ_CHECK(m.cseq()->method_text == m.methodText());
  }
}

inline void exerciseFramer(std::string_view input, const ParseLimits& limits) {
  StreamFramer framer(limits);
  std::size_t pos = 0;
  std::string frame;
  std::string error;
  int frames = 0;
  while (pos < input.size()) {
    // Chunk sizes come from the input itself, so the fuzzer explores split points.
    const std::size_t chunk = 1 + static_cast<unsigned char>(input[pos]) % 97;
    framer.append(input.substr(pos, chunk));
    pos += chunk;
    for (int i = 0; i < 64; ++i) {
      const StreamFramer::Next n = framer.next(&frame, &error);
      if (n == StreamFramer::Next::kMessage) {
        SIPWAKE_FUZZ_CHECK(frame.size() <= limits.max_message_bytes);
        ParseOutcome o = parseMessage(frame, limits);
        if (o.message) touchAccessors(*o.message);
        ++frames;
      } else if (n == StreamFramer::Next::kError) {
        SIPWAKE_FUZZ_CHECK(!error.empty());
        return;
      } else if (n == StreamFramer::Next::kNeedMore) {
        break;
      }
    }
    SIPWAKE_FUZZ_CHECK(framer.buffered() <= input.size());
  }
  (void)frames;
}

inline void exercise(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const ParseLimits limits = fuzzLimits();
  ParseOutcome o = parseMessage(input, limits);
  SIPWAKE_FUZZ_CHECK(o.message.has_value() == (o.kind != ParseOutcome::Kind::kDrop));
  if (o.kind == ParseOutcome::Kind::kReject) {
    SIPWAKE_FUZZ_CHECK(o.status_code >= 400 && o.status_code <= 599 && !o.reason.empty());
    SIPWAKE_FUZZ_CHECK(o.reason.find_first_of("\r\n") == std::string::npos);
    const Message resp = makeResponseTo(*o.message, o.status_code, o.reason, "fuzztag");
    ParseOutcome r = parseMessage(resp.serialize(), relaxed(limits));
    SIPWAKE_FUZZ_CHECK(r.kind != ParseOutcome::Kind::kReject);
  }
  if (o.message) touchAccessors(*o.message);
  if (o.kind == ParseOutcome::Kind::kOk) {
    const Message& m = *o.message;
    checkOkMessage(m);
    // Round trip: the serialization re-parses to an equivalent message, and is a fixed point.
    const std::string wire = m.serialize();
    ParseOutcome again = parseMessage(wire, relaxed(limits));
    SIPWAKE_FUZZ_CHECK(again.kind == ParseOutcome::Kind::kOk);
    Message& m2 = *again.message;
    SIPWAKE_FUZZ_CHECK(m2.serialize() == wire);
    SIPWAKE_FUZZ_CHECK(m2.body() == m.body());
    SIPWAKE_FUZZ_CHECK(m2.callId() == m.callId());
    SIPWAKE_FUZZ_CHECK(m2.isRequest() == m.isRequest());
    // Proxy edits keep a valid message valid: removing Contact params (push params), a Via, a
    // Record-Route, Max-Forwards.
    ParamFilter drop = [](std::string_view n) {
      return !n.empty() && (n[0] == 'p' || n[0] == 'P' || n[0] == 'x' || n[0] == 'q');
    };
    if (m2.count(HeaderId::kContact) == 1) {
      const std::string_view contact = m2.find(HeaderId::kContact)->value;
      std::string erased = eraseNameAddrParams(contact, drop);
      SIPWAKE_FUZZ_CHECK(erased.size() <= contact.size());
      if (erased.size() != contact.size()) m2.setHeader(HeaderId::kContact, std::move(erased));
    }
    if (m2.isRequest()) {
      std::string ruri = eraseUriParams(m2.requestUriText(), drop);
      SIPWAKE_FUZZ_CHECK(ruri.size() <= m2.requestUriText().size());
      SIPWAKE_FUZZ_CHECK(parseUri(ruri).isOk() == parseUri(m2.requestUriText()).isOk());
    }
    m2.pushVia("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz;rport");
    m2.prependHeader(HeaderId::kRecordRoute, "<sip:proxy.example.com;lr>");
    if (m2.isRequest()) {
      Result<int> mf = m2.maxForwards();
      if (mf.isOk() && *mf > 0) m2.decrementMaxForwards();
    }
    ParseOutcome edited = parseMessage(m2.serialize(), relaxed(relaxed(limits)));
    SIPWAKE_FUZZ_CHECK(edited.kind == ParseOutcome::Kind::kOk);
    Message& m3 = *edited.message;
    SIPWAKE_FUZZ_CHECK(m3.topVia().isOk() && m3.topVia()->branch() == "z9hG4bKfuzz");
    m3.popVia();
    ParseOutcome popped = parseMessage(m3.serialize(), relaxed(relaxed(limits)));
    SIPWAKE_FUZZ_CHECK(popped.kind == ParseOutcome::Kind::kOk);
    SIPWAKE_FUZZ_CHECK(popped.message->topVia()->text == m.topVia()->text);
  }
  exerciseFramer(input, limits);
}

}  // namespace sipwake::sip::fuzz
