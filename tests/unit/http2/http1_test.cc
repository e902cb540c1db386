// The HTTP/1.1 codec of the webhook fallback: framing rules, split input, refusals.
#include "http2/http1.h"

#include <gtest/gtest.h>

#include <string>

namespace sipwake::http2::http1 {
namespace {

using State = Parser::State;

// Feeds `text` one byte at a time (every split point) and returns the final state.
State feedBytewise(Parser& p, std::string_view text) {
  State st = p.state();
  for (char c : text) st = p.feed(std::string_view(&c, 1));
  return st;
}

TEST(Http1, RequestRoundTrip) {
  Request req;
  req.method = "POST";
  req.path = "/push/v1?x=1";
  req.headers.push_back({"content-type", "application/json"});
  req.headers.push_back({"authorization", "Bearer s3cret"});
  req.headers.push_back({"content-length", "999"});  // framing is the codec's, not the caller's
  req.body = "{\"version\":1}";
  std::string wire = serializeRequest(req, "hooks.example.com:8443");
  EXPECT_EQ(wire.rfind("POST /push/v1?x=1 HTTP/1.1\r\nhost: hooks.example.com:8443\r\n", 0), 0u)
      << wire;
  EXPECT_EQ(wire.find("999"), std::string::npos);

  Parser p(Parser::Kind::kRequest, 1 << 20);
  ASSERT_EQ(feedBytewise(p, wire), State::kComplete) << p.error();
  EXPECT_EQ(p.request().method, "POST");
  EXPECT_EQ(p.request().path, "/push/v1?x=1");
  EXPECT_EQ(p.request().header("host"), "hooks.example.com:8443");
  EXPECT_EQ(p.request().header("authorization"), "Bearer s3cret");
  EXPECT_EQ(p.request().header("content-length"), std::to_string(req.body.size()));
  EXPECT_EQ(p.request().body, req.body);
  EXPECT_TRUE(p.keepAlive());
}

TEST(Http1, ResponseWithLengthThenNextOnSameStream) {
  Response r;
  r.status = 503;
  r.headers.push_back({"retry-after", "2"});
  r.body = "busy";
  std::string wire = serializeResponse(r, true) + serializeResponse(Response{204, {}, ""}, false);
  Parser p(Parser::Kind::kResponse, 1 << 20);
  ASSERT_EQ(p.feed(wire), State::kComplete) << p.error();
  EXPECT_EQ(p.response().status, 503);
  EXPECT_EQ(p.response().header("retry-after"), "2");
  EXPECT_EQ(p.response().body, "busy");
  EXPECT_TRUE(p.keepAlive());
  ASSERT_EQ(p.next(), State::kComplete);
  EXPECT_EQ(p.response().status, 204);
  EXPECT_TRUE(p.response().body.empty());
  EXPECT_FALSE(p.keepAlive());  // "connection: close"
  EXPECT_EQ(p.next(), State::kIncomplete);
  EXPECT_TRUE(p.idle());
}

TEST(Http1, ChunkedBodyWithExtensionsAndTrailers) {
  std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
      "4;ext=1\r\n{\"ok\r\n"
      "A\r\n\":true}   \r\n"
      "0\r\nX-Trailer: yes\r\n\r\n";
  Parser p(Parser::Kind::kResponse, 1 << 20);
  ASSERT_EQ(feedBytewise(p, wire), State::kComplete) << p.error();
  EXPECT_EQ(p.response().body, "{\"ok\":true}   ");
  EXPECT_EQ(p.response().header("content-type"), "application/json");  // names lower-cased
  EXPECT_TRUE(p.keepAlive());
}

TEST(Http1, InterimResponsesAreSkipped) {
  Parser p(Parser::Kind::kResponse, 1 << 20);
  ASSERT_EQ(
      p.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok"),
      State::kComplete)
      << p.error();
  EXPECT_EQ(p.response().status, 202);
  EXPECT_EQ(p.response().body, "ok");
}

TEST(Http1, BodyDelimitedByClose) {
  Parser p(Parser::Kind::kResponse, 1 << 20);
  EXPECT_EQ(p.feed("HTTP/1.0 200 OK\r\n\r\nhello "), State::kIncomplete);
  EXPECT_EQ(p.feed("world"), State::kIncomplete);
  ASSERT_EQ(p.finish(), State::kComplete);
  EXPECT_EQ(p.response().body, "hello world");
  EXPECT_FALSE(p.keepAlive());
}

TEST(Http1, KeepAliveRules) {
  Parser a(Parser::Kind::kResponse, 100);
  ASSERT_EQ(a.feed("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
            State::kComplete);
  EXPECT_TRUE(a.keepAlive());
  Parser b(Parser::Kind::kResponse, 100);
  ASSERT_EQ(b.feed("HTTP/1.1 200 OK\r\nConnection: upgrade, Close\r\nContent-Length: 0\r\n\r\n"),
            State::kComplete);
  EXPECT_FALSE(b.keepAlive());
  Parser c(Parser::Kind::kRequest, 100);
  ASSERT_EQ(c.feed("GET / HTTP/1.0\r\n\r\n"), State::kComplete);
  EXPECT_FALSE(c.keepAlive());
}

TEST(Http1, CloseMidMessageIsAnError) {
  Parser p(Parser::Kind::kResponse, 100);
  EXPECT_EQ(p.feed("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"), State::kIncomplete);
  EXPECT_EQ(p.finish(), State::kError);
  Parser idle(Parser::Kind::kResponse, 100);
  EXPECT_EQ(idle.finish(), State::kIncomplete);  // nothing started: a clean close
}

struct Bad {
  const char* wire;
  const char* why;
};

TEST(Http1, RefusesMalformedFraming) {
  const Bad cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       "both content-length and chunked"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
       "conflicting content-length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad content-length"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", "body too large"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       "unsupported transfer-encoding"},
      {"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\n\r\n", "obsolete line folding"},
      {"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", "bad header name"},
      {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "bad header line"},
      {"HTTP/2.0 200 OK\r\n\r\n", "bad start line"},
      {"HTTP/1.1 2x0 OK\r\n\r\n", "bad start line"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
       "chunk not followed by CRLF"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\n", "body too large"},
  };
  for (const auto& c : cases) {
    Parser p(Parser::Kind::kResponse, 100);
    EXPECT_EQ(p.feed(c.wire), State::kError) << c.wire;
    EXPECT_EQ(p.error(), c.why) << c.wire;
  }
  Parser req(Parser::Kind::kRequest, 100);
  EXPECT_EQ(req.feed("POST /a b HTTP/1.1\r\n\r\n"), State::kError);
  EXPECT_EQ(req.error(), "bad start line");
}

TEST(Http1, HeadTooLarge) {
  Parser p(Parser::Kind::kRequest, 100);
  std::string wire = "POST / HTTP/1.1\r\nx: " + std::string(kMaxHead, 'a');
  EXPECT_EQ(p.feed(wire), State::kError);
  EXPECT_EQ(p.error(), "message head too large");
}

}  // namespace
}  // namespace sipwake::http2::http1
