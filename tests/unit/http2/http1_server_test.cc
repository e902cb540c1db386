// Http1Server over real loopback sockets: answers, keep-alive, malformed and oversized requests,
// the connection cap and the idle timeout; asynchronous answers (order, idle timer, responder
// after close) and HTTPS.
#include "http2/http1_server.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http2/http1.h"
#include "http2/tls.h"
#include "transport/event_loop.h"

namespace sipwake::http2 {
namespace {

using namespace std::chrono_literals;

class Http1ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { loop_.start(); }
  void TearDown() override {
    server_.reset();
    loop_.stop();
  }

  void startServer(Http1ServerOptions o = {}) {
    server_ = std::make_unique<Http1Server>(loop_, std::move(o), [](const Request& r) {
      Response resp;
      resp.status = 200;
      resp.body = r.method + " " + r.path + " " + std::to_string(r.body.size());
      return resp;
    });
    ASSERT_TRUE(server_->start().isOk());
  }

  // A blocking client socket with a receive timeout, so that a test never hangs.
  std::unique_ptr<asio::ip::tcp::socket> connect() {
    auto s = std::make_unique<asio::ip::tcp::socket>(io_);
    s->connect({asio::ip::make_address("127.0.0.1"), server_->port()});
    struct timeval tv {
      5, 0
    };
    ::setsockopt(s->native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return s;
  }

  static void send(asio::ip::tcp::socket& s, const std::string& data) {
    asio::write(s, asio::buffer(data));
  }

  // Reads until `until` appears, or the peer closes (then returns what came), or 5 s pass.
  static std::string readUntil(asio::ip::tcp::socket& s, const std::string& until) {
    std::string got;
    char buf[4096];
    while (until.empty() || got.find(until) == std::string::npos) {
      asio::error_code ec;
      std::size_t n = s.read_some(asio::buffer(buf), ec);
      if (ec) break;
      got.append(buf, n);
    }
    return got;
  }
  static bool closedByPeer(asio::ip::tcp::socket& s) {
    char buf[256];
    asio::error_code ec;
    while (true) {
      s.read_some(asio::buffer(buf), ec);
      if (ec) return ec == asio::error::eof || ec == asio::error::connection_reset;
    }
  }

  transport::EventLoop loop_{0};
  asio::io_context io_;
  std::unique_ptr<Http1Server> server_;
};

TEST_F(Http1ServerTest, AnswersKeepAliveRequestsInOrder) {
  startServer();
  auto s = connect();
  send(*s,
       "GET /a HTTP/1.1\r\nhost: x\r\n\r\nPOST /b HTTP/1.1\r\nhost: x\r\ncontent-length: "
       "3\r\n\r\nabc");
  std::string got = readUntil(*s, "POST /b 3");
  EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
  EXPECT_LT(got.find("GET /a 0"), got.find("POST /b 3")) << got;
  EXPECT_EQ(server_->stats().requests.value(), 2u);
}

TEST_F(Http1ServerTest, GarbageGets400AndCloseAndTheServerStillAnswers) {
  startServer();
  const std::vector<std::string> garbage = {
      std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 15),  // TLS hello
      "GET\r\n\r\n",
      "GET / HTTP/9.9\r\n\r\n",
      "GET / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
      "GET / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
      "GET / HTTP/1.1\r\nno-colon\r\n\r\n",
      "GET / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
      "GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
  };
  for (const std::string& g : garbage) {
    auto s = connect();
    send(*s, g);
    std::string got = readUntil(*s, "");
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u)
        << "for " << ::testing::PrintToString(g) << ": " << got;
  }
  auto s = connect();
  send(*s, "GET /ok HTTP/1.1\r\nhost: x\r\n\r\n");
  EXPECT_NE(readUntil(*s, "GET /ok 0").find("GET /ok 0"), std::string::npos);
}

TEST_F(Http1ServerTest, OversizedBodyAndHeadAreRefused) {
  Http1ServerOptions o;
  o.max_request_body = 16;
  startServer(o);
  auto s = connect();
  send(*s, "POST / HTTP/1.1\r\ncontent-length: 17\r\n\r\n");
  EXPECT_EQ(readUntil(*s, "").rfind("HTTP/1.1 400", 0), 0u);

  auto h = connect();
  std::string head = "GET / HTTP/1.1\r\nx: " + std::string(http1::kMaxHead + 10, 'a') + "\r\n\r\n";
  asio::error_code ec;
  asio::write(*h, asio::buffer(head), ec);  // the server may close before it has read it all
  EXPECT_EQ(readUntil(*h, "").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(server_->stats().bad_requests.value(), 2u);
}

TEST_F(Http1ServerTest, ConnectionsOverTheCapAreClosed) {
  Http1ServerOptions o;
  o.max_connections = 2;
  startServer(o);
  auto a = connect();
  auto b = connect();
  // Both are served (so both are counted) before the third arrives.
  send(*a, "GET /a HTTP/1.1\r\n\r\n");
  send(*b, "GET /b HTTP/1.1\r\n\r\n");
  readUntil(*a, "GET /a 0");
  readUntil(*b, "GET /b 0");
  auto c = connect();
  EXPECT_TRUE(closedByPeer(*c));
  EXPECT_EQ(server_->stats().connections_refused.value(), 1u);
  // Once one goes, a new connection is served again.
  a.reset();
  auto d = connect();
  send(*d, "GET /d HTTP/1.1\r\n\r\n");
  std::string got = readUntil(*d, "GET /d 0");
  for (int i = 0; i < 50 && got.find("GET /d 0") == std::string::npos; ++i) {
    // The close of `a` may not have been seen yet when `d` was accepted.
    d = connect();
    send(*d, "GET /d HTTP/1.1\r\n\r\n");
    got = readUntil(*d, "GET /d 0");
  }
  EXPECT_NE(got.find("GET /d 0"), std::string::npos);
}

TEST_F(Http1ServerTest, AnIncompleteRequestIsClosedAfterTheIdleTimeout) {
  Http1ServerOptions o;
  o.idle_timeout = 200ms;
  startServer(o);
  auto s = connect();
  send(*s, "GET / HTTP/1.1\r\n");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(closedByPeer(*s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
}

// The requests an asynchronous handler holds, answered by the test thread.
struct HeldRequests {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, Http1Server::Responder>> held;

  Http1Server::AsyncHandler handler() {
    return [this](const Request& r, Http1Server::Responder respond) {
      std::lock_guard lock(mu);
      held.emplace_back(r.path, std::move(respond));
      cv.notify_all();
    };
  }
  // Waits (bounded) until `n` requests arrived.
  bool waitFor(std::size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 5s, [&] { return held.size() >= n; });
  }
  Http1Server::Responder take(std::size_t i) {
    std::lock_guard lock(mu);
    return held.at(i).second;
  }
};

Response textResponse(std::string body) {
  Response r;
  r.status = 200;
  r.body = std::move(body);
  return r;
}

TEST_F(Http1ServerTest, AsyncAnswersKeepOrderAndOutliveTheIdleTimeout) {
  HeldRequests requests;
  Http1ServerOptions o;
  o.idle_timeout = 100ms;
  server_ = std::make_unique<Http1Server>(loop_, o, requests.handler());
  ASSERT_TRUE(server_->start().isOk());
  auto s = connect();
  send(*s, "GET /slow HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(requests.waitFor(1));
  // Pending for three idle timeouts: the connection stays, the next request waits its turn.
  std::this_thread::sleep_for(300ms);
  {
    std::lock_guard lock(requests.mu);
    EXPECT_EQ(requests.held.size(), 1u);
  }
  std::thread([r = requests.take(0)] { r(textResponse("slow answer")); }).join();
  ASSERT_TRUE(requests.waitFor(2));
  auto second = requests.take(1);
  second(textResponse("fast answer"));
  second(textResponse("answered twice"));  // ignored
  std::string got = readUntil(*s, "fast answer");
  EXPECT_NE(got.find("slow answer"), std::string::npos) << got;
  EXPECT_LT(got.find("slow answer"), got.find("fast answer")) << got;
  EXPECT_EQ(got.find("answered twice"), std::string::npos) << got;
}

TEST_F(Http1ServerTest, ARespondererCalledAfterTheConnectionClosedDoesNothing) {
  HeldRequests requests;
  server_ = std::make_unique<Http1Server>(loop_, Http1ServerOptions{}, requests.handler());
  ASSERT_TRUE(server_->start().isOk());
  auto s = connect();
  send(*s, "GET /pending HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(requests.waitFor(1));
  server_->stop();
  EXPECT_TRUE(closedByPeer(*s));
  requests.take(0)(textResponse("too late"));
  server_.reset();
  // The loop still runs and is not harmed: a round trip through it completes.
  std::promise<void> ran;
  loop_.post([&ran] { ran.set_value(); });
  EXPECT_EQ(ran.get_future().wait_for(5s), std::future_status::ready);
}

TEST_F(Http1ServerTest, ServesHttpsWithTheGivenCertificate) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("http1-tls-" + std::to_string(::getpid())))
          .string();
  ASSERT_TRUE(writeSelfSignedCert(dir, {"127.0.0.1"}).isOk());
  auto ctx = makeServerTlsContext(dir + "/cert.pem", dir + "/key.pem", AlpnProtocols::kHttp1);
  ASSERT_TRUE(ctx.isOk()) << ctx.status().toString();
  Http1ServerOptions o;
  o.tls = *ctx;
  startServer(o);

  asio::ssl::context client_ctx(asio::ssl::context::tls_client);
  client_ctx.load_verify_file(dir + "/cert.pem");
  client_ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::ssl::stream<asio::ip::tcp::socket> tls(io_, client_ctx);
  tls.next_layer().connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  struct timeval tv {
    5, 0
  };
  ::setsockopt(tls.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  tls.handshake(asio::ssl::stream_base::client);
  asio::write(tls, asio::buffer(std::string("GET /secure HTTP/1.1\r\nconnection: close\r\n\r\n")));
  std::string got;
  char buf[4096];
  asio::error_code ec;
  while (!ec) {
    std::size_t n = tls.read_some(asio::buffer(buf), ec);
    got.append(buf, n);
  }
  EXPECT_NE(got.find("GET /secure 0"), std::string::npos) << got;

  // Plain HTTP to the HTTPS listener fails the handshake and is closed.
  auto plain = connect();
  send(*plain, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(closedByPeer(*plain));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sipwake::http2
