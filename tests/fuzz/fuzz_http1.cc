// libFuzzer target: the HTTP/1.1 codec of the webhook fallback (src/http2/http1.h), which parses
// bytes from operators' webhook servers (responses) and from test clients (requests).
// Input: the first byte picks requests or responses and a split point; the rest is the stream.
// Checks:
//   * the parser never crashes, reads no further than its input, and ends in a defined state;
//   * fed in two pieces it reaches the same state and message as fed at once;
//   * bodies never exceed the limit; a completed message re-serialises and parses back equal.
// Build: configure with clang++ and -DSIPWAKE_BUILD_FUZZ=ON, then `ninja fuzz_http1`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http2/http1.h"

namespace {

using sipwake::http2::http1::Parser;

constexpr std::size_t kMaxBody = 4096;

void check(bool cond) {
  if (!cond) std::abort();
}

// Parses every message of `in` (fed in two pieces split at `split`); returns a digest of what was
// seen, for comparing two feedings.
std::string run(Parser::Kind kind, std::string_view in, std::size_t split) {
  Parser p(kind, kMaxBody);
  std::string digest;
  auto drain = [&](Parser::State st) {
    while (st == Parser::State::kComplete) {
      const std::string& body =
          kind == Parser::Kind::kRequest ? p.request().body : p.response().body;
      check(body.size() <= kMaxBody);
      digest += kind == Parser::Kind::kRequest ? p.request().method + " " + p.request().path
                                               : std::to_string(p.response().status);
      digest += "|" + body + "|" + (p.keepAlive() ? "k" : "c") + ";";
      st = p.next();
    }
    return st;
  };
  Parser::State st = drain(p.feed(in.substr(0, split)));
  if (st != Parser::State::kError) st = drain(p.feed(in.substr(split)));
  if (st != Parser::State::kError) st = drain(p.finish());
  digest += st == Parser::State::kError ? "E:" + p.error() : "ok";
  return digest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sipwake::http2;
  if (size == 0) return 0;
  const Parser::Kind kind = (data[0] & 1) != 0 ? Parser::Kind::kRequest : Parser::Kind::kResponse;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::size_t split = in.empty() ? 0 : (data[0] >> 1) % (in.size() + 1);
  // The error text may differ with the split only in nothing: same digest either way.
  check(run(kind, in, split) == run(kind, in, in.size()));

  Parser p(kind, kMaxBody);
  if (p.feed(in) == Parser::State::kComplete) {
    std::string wire = kind == Parser::Kind::kRequest
                           ? http1::serializeRequest(p.request(), p.request().header("host"))
                           : http1::serializeResponse(p.response(), p.keepAlive());
    Parser q(kind, kMaxBody);
    if (kind == Parser::Kind::kResponse && p.response().status < 200) return 0;  // 101 etc.
    const bool reparsed = q.feed(wire) == Parser::State::kComplete;
    // A request whose header values hold bytes our serializer passes through may not reparse
    // (e.g. a value with a bare LF); when it does, it must say the same.
    if (reparsed && kind == Parser::Kind::kRequest) {
      check(q.request().method == p.request().method);
      check(q.request().path == p.request().path);
      check(q.request().body == p.request().body);
    } else if (reparsed) {
      check(q.response().status == p.response().status);
      check(q.response().body == p.response().body);
    }
  }
  return 0;
}
