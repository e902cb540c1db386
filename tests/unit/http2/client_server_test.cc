// Http2Client against Http2Server over loopback TLS, with certificates generated per test.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http2/client.h"
#include "http2/server.h"
#include "http2/tls.h"
#include "transport/event_loop.h"

namespace sipwake::http2 {
namespace {

using namespace std::chrono_literals;

// Waits (bounded) for the client's answer.
Result<Response> call(Http2Client& client, Request req, std::chrono::seconds bound = 10s) {
  auto p = std::make_shared<std::promise<Result<Response>>>();
  auto f = p->get_future();
  client.submit(std::move(req), [p](Result<Response> r) { p->set_value(std::move(r)); });
  if (f.wait_for(bound) != std::future_status::ready) {
    return Status(StatusCode::kInternal, "test: no answer within bound");
  }
  return f.get();
}

Request post(std::string path, std::string body = "") {
  Request r;
  r.path = std::move(path);
  r.body = std::move(body);
  r.headers.push_back({"content-type", "application/json"});
  return r;
}

class Http2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sipwake-http2-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_TRUE(writeSelfSignedCert(dir_ + "/good", {"localhost", "127.0.0.1"}).isOk());
    ASSERT_TRUE(writeSelfSignedCert(dir_ + "/other", {"localhost", "127.0.0.1"}).isOk());
    server_loop_.start();
    client_loop_.start();
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    // Let the client's shutdown run before the loops stop.
    std::promise<void> drained;
    client_loop_.post([&] { drained.set_value(); });
    drained.get_future().wait_for(5s);
    client_loop_.stop();
    server_loop_.stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  Status startServer(Http2Server::Handler handler, std::uint16_t port = 0,
                     std::uint32_t max_streams = 100,
                     AlpnProtocols protocols = AlpnProtocols::kH2) {
    ServerOptions o;
    o.protocols = protocols;
    o.port = port;
    o.cert_file = dir_ + "/good/cert.pem";
    o.key_file = dir_ + "/good/key.pem";
    o.max_concurrent_streams = max_streams;
    server_ = std::make_unique<Http2Server>(server_loop_, o, std::move(handler));
    return server_->start();
  }

  ClientOptions clientOptions(std::uint16_t port) {
    ClientOptions o;
    o.host = "127.0.0.1";
    o.port = port;
    o.ca_file = dir_ + "/good/cert.pem";
    o.backoff_initial = 50ms;
    o.backoff_max = 200ms;
    return o;
  }

  static Http2Server::Handler echo() {
    return [](const Request& req, Responder r) {
      Response resp;
      resp.status = 200;
      resp.headers.push_back({"x-conn", std::to_string(req.connection_id)});
      resp.body = req.method + " " + req.path + " " + req.body;
      r.respond(std::move(resp));
    };
  }

  std::string dir_;
  transport::EventLoop server_loop_{100};
  transport::EventLoop client_loop_{101};
  std::unique_ptr<Http2Server> server_;
  std::unique_ptr<Http2Client> client_;
};

TEST_F(Http2Test, RequestResponse) {
  ASSERT_TRUE(startServer(echo()).isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, clientOptions(server_->port()));
  ASSERT_TRUE(client_->status().isOk());
  auto r = call(*client_, post("/3/device/abc", "{\"aps\":{}}"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /3/device/abc {\"aps\":{}}");
  EXPECT_EQ(r->header("x-conn"), "1");
  auto r2 = call(*client_, post("/again"));
  ASSERT_TRUE(r2.isOk());
  EXPECT_EQ(r2->header("x-conn"), "1");  // same connection reused
  EXPECT_EQ(client_->stats().connects.value(), 1u);
}

TEST_F(Http2Test, LargeBodiesBothWays) {
  ASSERT_TRUE(startServer(echo()).isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, clientOptions(server_->port()));
  std::string big(200'000, 'x');
  auto r = call(*client_, post("/big", big));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->body.size(), std::string("POST /big ").size() + big.size());
}

TEST_F(Http2Test, HonoursMaxConcurrentStreams) {
  std::mutex mu;
  std::vector<Responder> outstanding;
  std::size_t max_seen = 0;
  ASSERT_TRUE(startServer(
                  [&](const Request&, Responder r) {
                    std::lock_guard lock(mu);
                    outstanding.push_back(r);
                    max_seen = std::max(max_seen, outstanding.size());
                    if (outstanding.size() == 2) {  // answer in pairs
                      for (auto& o : outstanding) o.respond(Response{200, {}, "ok"});
                      outstanding.clear();
                    }
                  },
                  0, 2)
                  .isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, clientOptions(server_->port()));
  constexpr int kRequests = 10;
  std::vector<std::future<Result<Response>>> futures;
  for (int i = 0; i < kRequests; ++i) {
    auto p = std::make_shared<std::promise<Result<Response>>>();
    futures.push_back(p->get_future());
    client_->submit(post("/n/" + std::to_string(i)),
                    [p](Result<Response> r) { p->set_value(std::move(r)); });
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ(r->status, 200);
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(max_seen, 2u);
  EXPECT_EQ(client_->stats().retried.value(), 0u);  // no stream was refused for excess
  EXPECT_EQ(client_->stats().connects.value(), 1u);
}

TEST_F(Http2Test, GoawayRetriesUnprocessedStreamsOnNewConnection) {
  std::mutex mu;
  std::vector<Responder> first_conn;
  ASSERT_TRUE(startServer([&](const Request& req, Responder r) {
                if (req.connection_id != 1) {
                  r.respond(Response{200, {}, "new"});
                  return;
                }
                std::lock_guard lock(mu);
                first_conn.push_back(r);
                if (first_conn.size() == 3) {
                  std::sort(first_conn.begin(), first_conn.end(),
                            [](auto& a, auto& b) { return a.streamId() < b.streamId(); });
                  first_conn[0].respond(Response{200, {}, "old"});
                  first_conn[1].respond(Response{200, {}, "old"});
                  first_conn[2].goaway();  // last_stream_id = the second stream
                }
              }).isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, clientOptions(server_->port()));
  std::vector<std::future<Result<Response>>> futures;
  for (int i = 0; i < 3; ++i) {
    auto p = std::make_shared<std::promise<Result<Response>>>();
    futures.push_back(p->get_future());
    client_->submit(post("/g"), [p](Result<Response> r) { p->set_value(std::move(r)); });
  }
  int old_count = 0, new_count = 0;
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    (r->body == "old" ? old_count : new_count)++;
  }
  EXPECT_EQ(old_count, 2);
  EXPECT_EQ(new_count, 1);
  EXPECT_EQ(client_->stats().goaways.value(), 1u);
  EXPECT_EQ(client_->stats().retried.value(), 1u);
  EXPECT_EQ(client_->stats().connects.value(), 2u);
}

TEST_F(Http2Test, ReconnectsAfterServerRestart) {
  ASSERT_TRUE(startServer(echo()).isOk());
  const std::uint16_t port = server_->port();
  client_ = std::make_unique<Http2Client>(client_loop_, clientOptions(port));
  ASSERT_TRUE(call(*client_, post("/1")).isOk());
  server_->stop();
  server_.reset();
  auto down = call(*client_, post("/2"));
  EXPECT_FALSE(down.isOk());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().toString();
  ASSERT_TRUE(startServer(echo(), port).isOk());
  auto up = call(*client_, post("/3"));
  ASSERT_TRUE(up.isOk()) << up.status().toString();
  EXPECT_EQ(up->status, 200);
  EXPECT_EQ(client_->stats().connects.value(), 2u);
}

TEST_F(Http2Test, QueueIsBoundedWhileConnecting) {
  // A TCP listener that never speaks TLS: the client stays "connecting".
  asio::io_context io;
  asio::ip::tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto opts = clientOptions(silent.local_endpoint().port());
  opts.max_queued = 2;
  opts.request_timeout = 300ms;
  client_ = std::make_unique<Http2Client>(client_loop_, opts);
  std::vector<std::future<Result<Response>>> futures;
  for (int i = 0; i < 3; ++i) {
    auto p = std::make_shared<std::promise<Result<Response>>>();
    futures.push_back(p->get_future());
    client_->submit(post("/q"), [p](Result<Response> r) { p->set_value(std::move(r)); });
  }
  ASSERT_EQ(futures[2].wait_for(5s), std::future_status::ready);
  auto third = futures[2].get();
  EXPECT_EQ(third.status().code(), StatusCode::kUnavailable);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(futures[i].wait_for(5s), std::future_status::ready);
    EXPECT_EQ(futures[i].get().status().code(), StatusCode::kTimedOut);
  }
  EXPECT_EQ(client_->stats().queue_full.value(), 1u);
  EXPECT_EQ(client_->stats().timeouts.value(), 2u);
}

TEST_F(Http2Test, WrongCaFailsVerification) {
  ASSERT_TRUE(startServer(echo()).isOk());
  auto opts = clientOptions(server_->port());
  opts.ca_file = dir_ + "/other/cert.pem";
  client_ = std::make_unique<Http2Client>(client_loop_, opts);
  auto r = call(*client_, post("/x"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("TLS"), std::string::npos) << r.status().message();
  EXPECT_EQ(client_->stats().connect_failures.value(), 1u);
  EXPECT_EQ(server_->stats().requests.value(), 0u);
}

TEST_F(Http2Test, WrongHostNameFailsVerification) {
  ASSERT_TRUE(startServer(echo()).isOk());
  auto opts = clientOptions(server_->port());
  opts.host = "push.example.com";  // the certificate names localhost and 127.0.0.1 only
  opts.connect_address = "127.0.0.1";
  client_ = std::make_unique<Http2Client>(client_loop_, opts);
  auto r = call(*client_, post("/x"));
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(server_->stats().requests.value(), 0u);
}

TEST_F(Http2Test, MissingCaFileIsReported) {
  auto opts = clientOptions(1);
  opts.ca_file = dir_ + "/nope.pem";
  client_ = std::make_unique<Http2Client>(client_loop_, opts);
  EXPECT_FALSE(client_->status().isOk());
  auto r = call(*client_, post("/x"));
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(Http2Test, TimeoutInFlightThenConnectionStillUsable) {
  std::mutex mu;
  std::vector<Responder> held;
  ASSERT_TRUE(startServer([&](const Request& req, Responder r) {
                if (req.path == "/slow") {
                  std::lock_guard lock(mu);
                  held.push_back(r);  // never answered
                } else {
                  r.respond(Response{204, {}, ""});
                }
              }).isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, clientOptions(server_->port()));
  Request slow = post("/slow");
  slow.timeout = 200ms;
  auto r = call(*client_, slow);
  EXPECT_EQ(r.status().code(), StatusCode::kTimedOut);
  auto ok = call(*client_, post("/fast"));
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  EXPECT_EQ(ok->status, 204);
  EXPECT_EQ(client_->stats().connects.value(), 1u);
}

TEST_F(Http2Test, SingleStreamUntilFirstSuccess) {
  std::mutex mu;
  std::vector<Responder> outstanding;
  std::size_t max_seen = 0;
  int calls = 0;
  ASSERT_TRUE(startServer([&](const Request&, Responder r) {
                std::lock_guard lock(mu);
                outstanding.push_back(r);
                max_seen = std::max(max_seen, outstanding.size());
                // Answer the first alone; later ones once three are outstanding together.
                if (++calls == 1 || outstanding.size() == 3) {
                  for (auto& o : outstanding) o.respond(Response{200, {}, "ok"});
                  outstanding.clear();
                }
              }).isOk());
  auto opts = clientOptions(server_->port());
  opts.single_stream_until_success = true;
  client_ = std::make_unique<Http2Client>(client_loop_, opts);
  std::vector<std::future<Result<Response>>> futures;
  for (int i = 0; i < 4; ++i) {
    auto p = std::make_shared<std::promise<Result<Response>>>();
    futures.push_back(p->get_future());
    client_->submit(post("/s"), [p](Result<Response> r) { p->set_value(std::move(r)); });
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(f.get().isOk());
  }
  std::lock_guard lock(mu);
  EXPECT_EQ(max_seen, 3u);  // one alone first, then the other three together
}

TEST_F(Http2Test, IdlePingKeepsConnection) {
  ASSERT_TRUE(startServer(echo()).isOk());
  auto opts = clientOptions(server_->port());
  opts.idle_ping = 20ms;
  opts.connect_timeout = 2s;
  client_ = std::make_unique<Http2Client>(client_loop_, opts);
  ASSERT_TRUE(call(*client_, post("/1")).isOk());
  // Observable event with a bound: at least three PINGs sent (and answered, or we would have
  // reconnected).
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (client_->stats().pings.value() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_GE(client_->stats().pings.value(), 3u);
  ASSERT_TRUE(call(*client_, post("/2")).isOk());
  EXPECT_EQ(client_->stats().connects.value(), 1u);
}

// Failed connection attempts are spaced by the backoff: requests submitted meanwhile wait for
// the next attempt instead of each opening (and failing) a connection of their own.
TEST_F(Http2Test, BackoffSpacesReconnectAttempts) {
  asio::io_context io;
  asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
  const std::uint16_t port = probe.local_endpoint().port();
  probe.close();  // nothing listens there now: every connect is refused
  auto opts = clientOptions(port);
  opts.backoff_initial = 300ms;
  opts.backoff_max = 300ms;
  client_ = std::make_unique<Http2Client>(client_loop_, opts);
  EXPECT_EQ(call(*client_, post("/first")).status().code(), StatusCode::kUnavailable);
  std::vector<std::future<Result<Response>>> futures;
  for (int i = 0; i < 5; ++i) {
    auto p = std::make_shared<std::promise<Result<Response>>>();
    futures.push_back(p->get_future());
    client_->submit(post("/later"), [p](Result<Response> r) { p->set_value(std::move(r)); });
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(f.get().status().code(), StatusCode::kUnavailable);
  }
  EXPECT_EQ(client_->stats().connect_failures.value(), 2u);  // not 6
}

// ---- HTTP/1.1 fallback (webhook servers without h2) ----

ClientOptions withHttp1(ClientOptions o) {
  o.allow_http1 = true;
  return o;
}

TEST_F(Http2Test, Http1OnlyServerKeepAlive) {
  ASSERT_TRUE(startServer(echo(), 0, 100, AlpnProtocols::kHttp1).isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, withHttp1(clientOptions(server_->port())));
  auto r = call(*client_, post("/hook", "{\"a\":1}"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /hook {\"a\":1}");
  std::string big(300'000, 'y');
  auto r2 = call(*client_, post("/big", big));
  ASSERT_TRUE(r2.isOk()) << r2.status().toString();
  EXPECT_EQ(r2->body, "POST /big " + big);
  EXPECT_EQ(r2->header("x-conn"), r->header("x-conn"));  // kept alive
  EXPECT_EQ(client_->stats().connects.value(), 1u);
  EXPECT_EQ(client_->stats().http1_connects.value(), 1u);
}

TEST_F(Http2Test, Http1RequestsAreSerialisedOnOneConnection) {
  std::mutex mu;
  int in_handler = 0, max_in_handler = 0;
  std::string host_seen;
  ASSERT_TRUE(startServer(
                  [&](const Request& req, Responder r) {
                    std::lock_guard lock(mu);
                    host_seen = req.authority;
                    max_in_handler = std::max(max_in_handler, ++in_handler);
                    --in_handler;  // answered below; the next request comes after it
                    r.respond(Response{204, {}, ""});
                  },
                  0, 100, AlpnProtocols::kHttp1)
                  .isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, withHttp1(clientOptions(server_->port())));
  std::vector<std::future<Result<Response>>> futures;
  for (int i = 0; i < 8; ++i) {
    auto p = std::make_shared<std::promise<Result<Response>>>();
    futures.push_back(p->get_future());
    client_->submit(post("/s/" + std::to_string(i)),
                    [p](Result<Response> r) { p->set_value(std::move(r)); });
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    EXPECT_EQ(r->status, 204);
  }
  EXPECT_EQ(client_->stats().connects.value(), 1u);
  std::lock_guard lock(mu);
  EXPECT_EQ(max_in_handler, 1);
  EXPECT_EQ(host_seen, "127.0.0.1:" + std::to_string(server_->port()));
}

TEST_F(Http2Test, Http1ServerRefusedWithoutOptIn) {
  ASSERT_TRUE(startServer(echo(), 0, 100, AlpnProtocols::kHttp1).isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, clientOptions(server_->port()));
  auto r = call(*client_, post("/hook"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().toString();
  EXPECT_EQ(client_->stats().connects.value(), 0u);
}

TEST_F(Http2Test, H2PreferredWhenServerSpeaksBoth) {
  ASSERT_TRUE(startServer(echo(), 0, 100, AlpnProtocols::kH2OrHttp1).isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, withHttp1(clientOptions(server_->port())));
  auto r = call(*client_, post("/x"));
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(client_->stats().connects.value(), 1u);
  EXPECT_EQ(client_->stats().http1_connects.value(), 0u);
}

TEST_F(Http2Test, Http1VerifiesPeerCertificate) {
  ASSERT_TRUE(startServer(echo(), 0, 100, AlpnProtocols::kHttp1).isOk());
  auto opts = withHttp1(clientOptions(server_->port()));
  opts.ca_file = dir_ + "/other/cert.pem";
  client_ = std::make_unique<Http2Client>(client_loop_, opts);
  auto r = call(*client_, post("/x"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("TLS handshake"), std::string::npos) << r.status().toString();
}

// A timed-out HTTP/1.1 request closes its connection (its late answer must not be taken for the
// next request's); the next request gets a new connection. A server that closes the connection
// instead of answering (Responder::goaway in HTTP/1.1) fails the request as kUnavailable.
TEST_F(Http2Test, Http1TimeoutAndServerCloseUseNewConnection) {
  std::mutex mu;
  std::vector<Responder> held;
  ASSERT_TRUE(startServer(
                  [&](const Request& req, Responder r) {
                    if (req.path == "/slow") {
                      std::lock_guard lock(mu);
                      held.push_back(r);  // answered too late, below
                    } else if (req.path == "/drop") {
                      r.goaway();
                    } else {
                      r.respond(Response{200, {}, req.path});
                    }
                  },
                  0, 100, AlpnProtocols::kHttp1)
                  .isOk());
  client_ = std::make_unique<Http2Client>(client_loop_, withHttp1(clientOptions(server_->port())));
  Request slow = post("/slow");
  slow.timeout = 200ms;
  EXPECT_EQ(call(*client_, slow).status().code(), StatusCode::kTimedOut);
  {
    std::lock_guard lock(mu);
    for (auto& h : held) h.respond(Response{200, {}, "/slow"});
  }
  auto ok = call(*client_, post("/fast"));
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  EXPECT_EQ(ok->body, "/fast");
  EXPECT_EQ(client_->stats().connects.value(), 2u);
  auto dropped = call(*client_, post("/drop"));
  EXPECT_EQ(dropped.status().code(), StatusCode::kUnavailable) << dropped.status().toString();
  auto again = call(*client_, post("/again"));
  ASSERT_TRUE(again.isOk()) << again.status().toString();
  EXPECT_EQ(again->body, "/again");
}

}  // namespace
}  // namespace sipwake::http2
