// HTTP/1.1 message codec (RFC 9112) for the fallback path of Http2Client (webhooks served by
// HTTP/1.1-only servers) and the HTTP/1.1 mode of Http2Server. No I/O; parses untrusted bytes.
//
// Supported: Content-Length and chunked bodies (trailers are read and dropped), responses
// delimited by connection close, 1xx interim responses (skipped), keep-alive rules of HTTP/1.0
// and 1.1. Refused (kError with a reason): obsolete line folding, bad or conflicting lengths,
// transfer codings other than "chunked", heads over kMaxHead bytes, bodies over the limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http2/message.h"

namespace sipwake::http2::http1 {

inline constexpr std::size_t kMaxHead = 64 * 1024;

// "METHOD path HTTP/1.1", host = `authority`, the request's headers, content-length, body.
// Header names are sent as given (lower case from our callers); values must not contain CR/LF
// (they come from our own builders).
std::string serializeRequest(const Request& request, std::string_view authority);
// "HTTP/1.1 <status> <reason>", headers, content-length, "connection: close" when !keep_alive.
std::string serializeResponse(const Response& response, bool keep_alive);

// Parses one message at a time from a byte stream; bytes after a complete message are kept for
// the next one (call next()).
class Parser {
 public:
  enum class Kind : std::uint8_t { kRequest, kResponse };
  enum class State : std::uint8_t { kIncomplete, kComplete, kError };

  Parser(Kind kind, std::size_t max_body);

  // Appends `data` and parses as far as possible. Returns the new state.
  State feed(std::string_view data);
  // The peer closed the connection: completes a response delimited by close, else kError
  // (kIncomplete stays only when nothing of a new message was received: a clean close).
  State finish();
  // After kComplete: forget the message, parse the next one from the leftover bytes.
  State next();

  State state() const { return state_; }
  // Nothing of the current message received yet (a close now is clean).
  bool idle() const { return state_ == State::kIncomplete && buf_.empty() && !head_done_; }
  const std::string& error() const { return error_; }
  // The message (valid after kComplete).
  const Request& request() const { return request_; }
  const Response& response() const { return response_; }
  Request& request() { return request_; }
  Response& response() { return response_; }
  // Whether the connection stays open after this message (HTTP version + Connection header;
  // false for a response delimited by close).
  bool keepAlive() const { return keep_alive_; }

 private:
  enum class Body : std::uint8_t { kNone, kLength, kChunked, kUntilClose };
  enum class Chunk : std::uint8_t { kSize, kData, kDataEnd, kTrailer };

  State fail(std::string why);
  State parse();
  bool parseHead(std::string_view head);
  bool parseStartLine(std::string_view line);
  State parseChunked();
  // Moves up to remaining_ buffered bytes into `body`; true once remaining_ is zero.
  bool takeBody(std::string& body);
  void reset();

  Kind kind_;
  std::size_t max_body_;
  State state_ = State::kIncomplete;
  std::string error_;
  std::string buf_;  // unparsed bytes
  bool head_done_ = false;
  Body body_ = Body::kNone;
  std::size_t remaining_ = 0;  // kLength: body bytes left; kChunked/kData: chunk bytes left
  Chunk chunk_ = Chunk::kSize;
  bool keep_alive_ = true;
  std::vector<Header> headers_;
  Request request_;
  Response response_;
};

}  // namespace sipwake::http2::http1
