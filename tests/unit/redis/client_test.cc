// The client against a real redis-server (tests/unit/redis/redis_server.h).
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>

#include "http2/tls.h"
#include "redis/connection.h"
#include "redis/subscriber.h"
#include "redis_server.h"

namespace sipwake::redis {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

constexpr auto kWait = 10s;  // bound of every wait; a passing test waits far less

// What a state callback reported, in order; waits are bounded.
class StateLog {
 public:
  void add(bool up, const Status& why) {
    std::lock_guard lock(mu_);
    events_.emplace_back(up, why.message());
    cv_.notify_all();
  }
  // Waits until the latest event is `up`; returns its message.
  std::optional<std::string> waitFor(bool up) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kWait,
                      [&] { return !events_.empty() && events_.back().first == up; })) {
      return std::nullopt;
    }
    return events_.back().second;
  }
  std::size_t count() {
    std::lock_guard lock(mu_);
    return events_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<bool, std::string>> events_;
};

class RedisClientTest : public ::testing::Test {
 public:
  void SetUp() override {
    if (!testing::haveRedisServer()) GTEST_SKIP() << "redis-server is not installed";
    loop_.start();
  }
  void TearDown() override {
    if (!loop_.running()) return;
    onLoop([&] {
      for (auto& c : conns_) c->stop();
      for (auto& s : subs_) s->stop();
      conns_.clear();
      subs_.clear();
      return 0;
    });
    loop_.stop();
  }

  template <typename Fn>
  auto onLoop(Fn fn) -> decltype(fn()) {
    std::promise<decltype(fn())> p;
    auto f = p.get_future();
    loop_.post([&] { p.set_value(fn()); });
    SIPWAKE_CHECK(f.wait_for(kWait) == std::future_status::ready);
    return f.get();
  }

  ConnectionOptions options(const std::string& url) {
    auto cfg = parseRedisUrl(url);
    SIPWAKE_CHECK(cfg.isOk());
    ConnectionOptions o;
    o.config = *cfg;
    o.reconnect_max = 200ms;
    return o;
  }
  static std::string url(const RedisServer& s, const std::string& db = "0") {
    return "redis://127.0.0.1:" + std::to_string(s.port()) + "/" + db;
  }

  // A started connection; its state changes go to `log`.
  std::shared_ptr<Connection> open(ConnectionOptions o, StateLog& log) {
    return onLoop([&] {
      auto c = Connection::create(loop_, std::move(o));
      SIPWAKE_CHECK(c.isOk());
      auto conn = *c;
      conn->setStateCallback([&log](bool up, const Status& why) { log.add(up, why); });
      conn->start();
      conns_.push_back(conn);
      return conn;
    });
  }
  std::shared_ptr<Connection> openConnected(const std::string& u) {
    auto& log = logs_.emplace_back();
    auto c = open(options(u), log);
    EXPECT_TRUE(log.waitFor(true)) << c->lastError().message();
    return c;
  }

  Result<Reply> call(const std::shared_ptr<Connection>& c, std::vector<std::string> args) {
    std::promise<Result<Reply>> p;
    auto f = p.get_future();
    loop_.post([&] { c->command(args, [&p](Result<Reply> r) { p.set_value(std::move(r)); }); });
    SIPWAKE_CHECK(f.wait_for(kWait) == std::future_status::ready);
    return f.get();
  }

  transport::EventLoop loop_{0};
  std::vector<std::shared_ptr<Connection>> conns_;
  std::vector<std::shared_ptr<Subscriber>> subs_;
  std::deque<StateLog> logs_;
};

TEST_F(RedisClientTest, SetGetAndErrorReply) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto c = openConnected(url(server));
  auto set = call(c, {"SET", "k", std::string("v\0\r\n", 4)});
  ASSERT_TRUE(set) << set.status().message();
  EXPECT_TRUE(set->is("OK"));
  auto get = call(c, {"GET", "k"});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->str, std::string("v\0\r\n", 4));
  EXPECT_TRUE(call(c, {"GET", "missing"})->isNil());
  auto err = call(c, {"NOSUCHCOMMAND"});
  ASSERT_TRUE(err);  // a Redis error is a reply, not a failed call
  EXPECT_TRUE(err->isError());
  EXPECT_TRUE(call(c, {"PING"})->is("PONG"));  // the connection is still fine
}

TEST_F(RedisClientTest, Pipelines10kCommandsWithRepliesInOrder) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto c = openConnected(url(server));
  static constexpr int kCount = 10000;
  std::promise<int> done;
  auto f = done.get_future();
  loop_.post([&] {
    auto state = std::make_shared<std::pair<int, int>>(0, 0);  // replies seen, out of order
    for (int i = 1; i <= kCount; ++i) {
      c->command({"INCR", "counter"}, [state, i, &done](Result<Reply> r) {
        if (!r || r->integer != i) ++state->second;
        if (++state->first == kCount) done.set_value(state->second);
      });
    }
    // All were queued before the loop could read one reply: they really are in flight together.
  });
  ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(f.get(), 0);
  EXPECT_EQ(call(c, {"GET", "counter"})->str, std::to_string(kCount));
}

TEST_F(RedisClientTest, MultiExecAppliesAllOrNothing) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto c = openConnected(url(server));
  auto run = [&](std::vector<std::vector<std::string>> cmds) {
    std::promise<Result<Reply>> p;
    auto f = p.get_future();
    loop_.post([&] { c->transaction(cmds, [&p](Result<Reply> r) { p.set_value(std::move(r)); }); });
    SIPWAKE_CHECK(f.wait_for(kWait) == std::future_status::ready);
    return f.get();
  };
  auto ok = run({{"HSET", "aor", "c1", "x"}, {"PEXPIRE", "aor", "60000"}, {"HLEN", "aor"}});
  ASSERT_TRUE(ok) << ok.status().message();
  ASSERT_TRUE(ok->isArray());
  ASSERT_EQ(ok->elements.size(), 3u);
  EXPECT_EQ(ok->elements[0].integer, 1);
  EXPECT_EQ(ok->elements[1].integer, 1);
  EXPECT_EQ(ok->elements[2].integer, 1);

  // A command refused while queuing aborts the whole transaction: nothing is written.
  auto aborted = run({{"SET", "a", "1"}, {"HSET", "aor"}, {"SET", "b", "2"}});
  ASSERT_TRUE(aborted);
  ASSERT_TRUE(aborted->isError());
  EXPECT_NE(aborted->str.find("EXECABORT"), std::string::npos) << aborted->str;
  EXPECT_NE(aborted->str.find("wrong number of arguments"), std::string::npos) << aborted->str;
  EXPECT_TRUE(call(c, {"GET", "a"})->isNil());
  EXPECT_TRUE(call(c, {"PING"})->is("PONG"));
}

TEST_F(RedisClientTest, EvalShaFallsBackToEvalAfterScriptFlush) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto c = openConnected(url(server));
  static const Script kScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  auto eval = [&](const std::string& by) {
    std::promise<Result<Reply>> p;
    auto f = p.get_future();
    loop_.post([&] {
      c->eval(kScript, {"n"}, {by}, [&p](Result<Reply> r) { p.set_value(std::move(r)); });
    });
    SIPWAKE_CHECK(f.wait_for(kWait) == std::future_status::ready);
    return f.get();
  };
  EXPECT_EQ(eval("2")->integer, 2);  // EVAL: first use on this connection
  EXPECT_EQ(eval("3")->integer, 5);  // EVALSHA
  EXPECT_EQ(onLoop([&] { return c->stats().noscript_fallbacks; }), 0u);
  ASSERT_TRUE(call(c, {"SCRIPT", "FLUSH"})->is("OK"));
  auto after = eval("4");  // EVALSHA → NOSCRIPT → EVAL
  ASSERT_TRUE(after) << after.status().message();
  EXPECT_EQ(after->integer, 9);
  EXPECT_EQ(onLoop([&] { return c->stats().noscript_fallbacks; }), 1u);
  EXPECT_EQ(eval("1")->integer, 10);
  EXPECT_EQ(onLoop([&] { return c->stats().noscript_fallbacks; }), 1u);
}

TEST_F(RedisClientTest, CommandTimesOutAndTheConnectionStaysUsable) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto o = options(url(server));
  o.command_timeout = 100ms;
  auto& log = logs_.emplace_back();
  auto c = open(o, log);
  ASSERT_TRUE(log.waitFor(true));
  // BLPOP holds the reply for 1 s server-side: longer than the command timeout.
  auto start = std::chrono::steady_clock::now();
  auto blocked = call(c, {"BLPOP", "nothing", "1"});
  ASSERT_FALSE(blocked);
  EXPECT_EQ(blocked.status().code(), StatusCode::kTimedOut);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms);
  // The late nil reply is dropped, not handed to the next command.
  o.command_timeout = 5s;
  auto& log2 = logs_.emplace_back();
  auto c2 = open(o, log2);
  ASSERT_TRUE(log2.waitFor(true));
  ASSERT_TRUE(call(c2, {"RPUSH", "nothing", "item"}));
  auto pong = call(c, {"PING"});
  ASSERT_TRUE(pong) << pong.status().message();
  EXPECT_TRUE(pong->is("PONG"));
}

TEST_F(RedisClientTest, ServerKilledFailsFastThenReconnectsOnRestart) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto& log = logs_.emplace_back();
  auto c = open(options(url(server)), log);
  ASSERT_TRUE(log.waitFor(true));
  ASSERT_TRUE(call(c, {"SET", "k", "1"}));

  server.kill();
  auto why = log.waitFor(false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("lost"), std::string::npos) << *why;
  auto start = std::chrono::steady_clock::now();
  auto r = call(c, {"GET", "k"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);  // fails at once, nothing queued
  EXPECT_GE(onLoop([&] { return c->stats().unavailable; }), 1u);

  ASSERT_TRUE(server.start(/*same_port=*/true));
  ASSERT_TRUE(log.waitFor(true));
  ASSERT_TRUE(call(c, {"SET", "k", "2"})->is("OK"));
  EXPECT_EQ(call(c, {"GET", "k"})->str, "2");
  EXPECT_GE(onLoop([&] { return c->stats().connects; }), 2u);
}

TEST_F(RedisClientTest, HealthCheckNoticesAFrozenServer) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto o = options(url(server));
  o.health_check_interval = 100ms;
  o.command_timeout = 5s;
  auto& log = logs_.emplace_back();
  auto c = open(o, log);
  ASSERT_TRUE(log.waitFor(true));
  StateLog sub_log;
  onLoop([&] {
    auto s = *Subscriber::create(loop_, o);
    s->setStateCallback([&](bool up, const Status& why) { sub_log.add(up, why); });
    s->subscribe("node.a");
    s->start();
    subs_.push_back(s);
    return 0;
  });
  ASSERT_TRUE(sub_log.waitFor(true));

  server.freeze();  // TCP stays up; nothing answers
  auto why = log.waitFor(false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("did not answer PING within 100 ms"), std::string::npos) << *why;
  ASSERT_TRUE(sub_log.waitFor(false));
  EXPECT_EQ(call(c, {"PING"}).status().code(), StatusCode::kUnavailable);
  EXPECT_GE(onLoop([&] { return c->stats().health_check_failures; }), 1u);

  server.thaw();
  ASSERT_TRUE(log.waitFor(true));
  ASSERT_TRUE(sub_log.waitFor(true));
  EXPECT_TRUE(call(c, {"PING"})->is("PONG"));
}

TEST_F(RedisClientTest, StartWithServerDownReportsDownThenConnects) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  server.kill();
  auto& log = logs_.emplace_back();
  auto c = open(options(url(server)), log);
  auto why = log.waitFor(false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("connect 127.0.0.1:"), std::string::npos) << *why;
  ASSERT_TRUE(server.start(/*same_port=*/true));
  ASSERT_TRUE(log.waitFor(true));
  EXPECT_TRUE(call(c, {"PING"})->is("PONG"));
}

TEST_F(RedisClientTest, AppendOnlyKeepsAcknowledgedWritesAcrossKill9) {
  RedisServer server({"--appendonly", "yes", "--appendfsync", "always"});
  ASSERT_TRUE(server.start());
  auto& log = logs_.emplace_back();
  auto c = open(options(url(server)), log);
  ASSERT_TRUE(log.waitFor(true));
  ASSERT_TRUE(call(c, {"SET", "binding", "acked"})->is("OK"));
  server.kill();
  ASSERT_TRUE(log.waitFor(false));
  ASSERT_TRUE(server.start(/*same_port=*/true));
  ASSERT_TRUE(log.waitFor(true));
  EXPECT_EQ(call(c, {"GET", "binding"})->str, "acked");
}

TEST_F(RedisClientTest, AuthWithRequirepass) {
  RedisServer server(
      {"--requirepass", "s3cr%t", "--user", "alice", "on", ">alicepw", "~*", "&*", "+@all"});
  server.ready_reply = "NOAUTH";
  ASSERT_TRUE(server.start());
  auto good = openConnected("redis://:s3cr%25t@127.0.0.1:" + std::to_string(server.port()) + "/0");
  EXPECT_TRUE(call(good, {"SET", "k", "v"})->is("OK"));
  auto alice =
      openConnected("redis://alice:alicepw@127.0.0.1:" + std::to_string(server.port()) + "/0");
  EXPECT_EQ(call(alice, {"GET", "k"})->str, "v");
  EXPECT_EQ(call(alice, {"ACL", "WHOAMI"})->str, "alice");
  auto& log = logs_.emplace_back();
  auto bad = open(options("redis://:wrong@127.0.0.1:" + std::to_string(server.port()) + "/0"), log);
  auto why = log.waitFor(false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("AUTH on 127.0.0.1:"), std::string::npos) << *why;
  EXPECT_NE(why->find("WRONGPASS"), std::string::npos) << *why;
  EXPECT_EQ(call(bad, {"PING"}).status().code(), StatusCode::kUnavailable);
}

TEST_F(RedisClientTest, SelectsTheDatabaseOfTheUrl) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto db3 = openConnected(url(server, "3"));
  auto db0 = openConnected(url(server, "0"));
  ASSERT_TRUE(call(db3, {"SET", "k", "in3"})->is("OK"));
  EXPECT_TRUE(call(db0, {"GET", "k"})->isNil());
  EXPECT_EQ(call(db3, {"GET", "k"})->str, "in3");
  auto& log = logs_.emplace_back();
  auto bad = open(options(url(server, "99")), log);
  auto why = log.waitFor(false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("SELECT on"), std::string::npos) << *why;
}

TEST_F(RedisClientTest, PubSubDeliversAndResubscribesAfterRestart) {
  RedisServer server;
  ASSERT_TRUE(server.start());
  auto pub = openConnected(url(server));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<PubSubMessage> got;
  int confirmations = 0;
  StateLog sub_log;
  auto sub = onLoop([&] {
    auto s = *Subscriber::create(loop_, options(url(server)));
    s->setMessageCallback([&](const PubSubMessage& m) {
      std::lock_guard lock(mu);
      got.push_back(m);
      cv.notify_all();
    });
    s->setSubscribedCallback([&](std::string_view, bool) {
      std::lock_guard lock(mu);
      ++confirmations;
      cv.notify_all();
    });
    s->setStateCallback([&](bool up, const Status& why) { sub_log.add(up, why); });
    s->subscribe("node.b");
    s->psubscribe("aor.*");
    s->start();
    subs_.push_back(s);
    return s;
  });
  auto waitUntil = [&](auto pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, kWait, pred);
  };
  ASSERT_TRUE(waitUntil([&] { return confirmations == 2; }));
  EXPECT_EQ(call(pub, {"PUBLISH", "node.b", "wake alice"})->integer, 1);
  EXPECT_EQ(call(pub, {"PUBLISH", "aor.alice", "registered"})->integer, 1);
  ASSERT_TRUE(waitUntil([&] { return got.size() == 2; }));
  EXPECT_EQ(got[0].channel, "node.b");
  EXPECT_EQ(got[0].payload, "wake alice");
  EXPECT_TRUE(got[0].pattern.empty());
  EXPECT_EQ(got[1].channel, "aor.alice");
  EXPECT_EQ(got[1].pattern, "aor.*");

  // Unsubscribing one channel leaves the pattern.
  onLoop([&] {
    sub->unsubscribe("node.b");
    return 0;
  });
  EXPECT_EQ(onLoop([&] { return sub->subscriptions(); }), 1u);

  server.kill();
  ASSERT_TRUE(sub_log.waitFor(false));
  ASSERT_TRUE(server.start(/*same_port=*/true));
  ASSERT_TRUE(sub_log.waitFor(true));
  ASSERT_TRUE(waitUntil([&] { return confirmations == 3; }));  // aor.* renewed, node.b not
  auto& pub_log = logs_.front();
  ASSERT_TRUE(pub_log.waitFor(true));
  EXPECT_EQ(call(pub, {"PUBLISH", "aor.bob", "registered"})->integer, 1);
  EXPECT_EQ(call(pub, {"PUBLISH", "node.b", "x"})->integer, 0);
  ASSERT_TRUE(waitUntil([&] { return got.size() == 3; }));
  EXPECT_EQ(got[2].channel, "aor.bob");
}

TEST_F(RedisClientTest, TlsVerifiesTheServerCertificate) {
  char tmpl[] = "/tmp/sipwake-redis-tls-XXXXXX";
  std::string certs = ::mkdtemp(tmpl);
  ASSERT_TRUE(http2::writeSelfSignedCert(certs, {"127.0.0.1"}).isOk());
  const std::uint16_t tls_port = testing::freeLoopbackPort();
  RedisServer server({"--tls-port", std::to_string(tls_port), "--tls-cert-file",
                      certs + "/cert.pem", "--tls-key-file", certs + "/key.pem",
                      "--tls-auth-clients", "no"});
  ASSERT_TRUE(server.start());
  const std::string tls_url = "rediss://127.0.0.1:" + std::to_string(tls_port) + "/0";

  auto o = options(tls_url);
  o.config.tls_ca_file = certs + "/cert.pem";
  auto& log = logs_.emplace_back();
  auto c = open(o, log);
  ASSERT_TRUE(log.waitFor(true)) << c->lastError().message();
  ASSERT_TRUE(call(c, {"SET", "k", "over tls"})->is("OK"));
  EXPECT_EQ(call(c, {"GET", "k"})->str, "over tls");

  // The system trust store does not know the self-signed certificate: refused.
  auto& untrusted_log = logs_.emplace_back();
  open(options(tls_url), untrusted_log);
  auto why = untrusted_log.waitFor(false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("TLS handshake with 127.0.0.1:"), std::string::npos) << *why;
  EXPECT_NE(why->find("certificate"), std::string::npos) << *why;

  // TLS against the plain port: a handshake failure, not a hang.
  auto plain = options("rediss://127.0.0.1:" + std::to_string(server.port()) + "/0");
  plain.config.tls_ca_file = certs + "/cert.pem";
  plain.connect_timeout = 300ms;  // the server waits for a command line that never ends
  auto& plain_log = logs_.emplace_back();
  open(plain, plain_log);
  why = plain_log.waitFor(false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("TLS handshake"), std::string::npos) << *why;

  // A CA file that does not exist is a set-up error.
  auto missing = options(tls_url);
  missing.config.tls_ca_file = certs + "/nope.pem";
  auto created = onLoop([&] { return Connection::create(loop_, missing).status(); });
  EXPECT_NE(created.message().find("CA bundle '" + certs + "/nope.pem'"), std::string::npos)
      << created.message();
  std::error_code ec;
  std::filesystem::remove_all(certs, ec);
}

// Polls `pred` on the loop until it holds or the bound passes.
template <typename Fixture, typename Pred>
bool eventually(Fixture& f, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f.onLoop(pred)) return true;
    std::this_thread::sleep_for(20ms);  // polling an observable condition, bounded
  }
  return false;
}

class RedisSentinelTest : public RedisClientTest {};

TEST_F(RedisSentinelTest, FindsTheMasterAndFollowsAFailover) {
  RedisServer master;
  ASSERT_TRUE(master.start());
  RedisServer replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  ASSERT_TRUE(replica.start());
  RedisServer sentinel({}, "sentinel monitor mymaster 127.0.0.1 " + std::to_string(master.port()) +
                               " 1\nsentinel down-after-milliseconds mymaster 1000\n"
                               "sentinel failover-timeout mymaster 5000\n");
  ASSERT_TRUE(sentinel.start());
  const std::string sentinels = "127.0.0.1:" + std::to_string(sentinel.port());

  auto c = openConnected("redis-sentinel://" + sentinels + "/mymaster/0");
  ASSERT_TRUE(c->connected());
  EXPECT_EQ(onLoop([&] { return c->server()->port; }), master.port());
  ASSERT_TRUE(call(c, {"SET", "k", "before"})->is("OK"));

  auto& unknown_log = logs_.emplace_back();
  open(options("redis-sentinel://" + sentinels + "/nope/0"), unknown_log);
  auto why = unknown_log.waitFor(false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("no sentinel gave the address of master 'nope'"), std::string::npos) << *why;

  // Fail over by hand once the sentinel knows the replica and the replica is in sync.
  auto admin = openConnected("redis://" + sentinels + "/0");
  auto rep = openConnected(url(replica));
  auto ready = [&] {
    auto replicas = call(admin, {"SENTINEL", "replicas", "mymaster"});
    auto info = call(rep, {"INFO", "replication"});
    return replicas && replicas->isArray() && !replicas->elements.empty() && info &&
           info->str.find("master_link_status:up") != std::string::npos;
  };
  auto deadline = std::chrono::steady_clock::now() + 20s;
  bool in_sync = false;
  while (!(in_sync = ready()) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);  // the sentinel polls INFO; bounded
  }
  ASSERT_TRUE(in_sync);
  auto failover = call(admin, {"SENTINEL", "FAILOVER", "mymaster"});
  ASSERT_TRUE(failover);
  ASSERT_TRUE(failover->is("OK")) << failover->str;
  ASSERT_TRUE(eventually(
      *this, [&] { return c->connected() && c->server() && c->server()->port == replica.port(); }));
  EXPECT_GE(onLoop([&] { return c->stats().failovers; }), 1u);
  auto after = call(c, {"SET", "k", "after"});
  ASSERT_TRUE(after) << after.status().message();
  EXPECT_TRUE(after->is("OK")) << after->str;
  EXPECT_EQ(call(rep, {"GET", "k"})->str, "after");
}

}  // namespace
}  // namespace sipwake::redis
