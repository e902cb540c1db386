// Http2PushSender against the real sipwake-fakepns (strict fake APNs + FCM + OAuth2) on loopback,
// with keys generated at test time. Every wait is bounded (10 s).
#include "push/http2_sender.h"
#include "push/push_metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/stats.h"
#include "push/jwt.h"
#include "push/payload.h"
#include "transport/event_loop.h"

#include "../free_port.h"

#ifndef SIPWAKE_FAKEPNS_PATH
#error "SIPWAKE_FAKEPNS_PATH must name the sipwake-fakepns binary"
#endif

namespace sipwake::push {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kKeyId = "ABCDE12345";
constexpr const char* kTeamId = "TEAM123456";
constexpr const char* kBundle = "com.example.phone";
constexpr const char* kProject = "sipwake-demo";
constexpr auto kWait = 10s;

std::string hexToken(char c) { return std::string(64, c); }

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

std::uint16_t freePort() { return testing_support::freeLoopbackPort(); }

// Reads one '\n'-terminated line from `fd` into `line`, keeping leftovers in `buf`.
bool readLine(int fd, std::string& buf, std::string& line, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buf.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[4096];
    ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n <= 0) return false;
    buf.append(tmp, static_cast<std::size_t>(n));
  }
  std::size_t nl = buf.find('\n');
  line = buf.substr(0, nl);
  buf.erase(0, nl + 1);
  return true;
}

// One JSON-lines connection to the fake's control port.
class Control {
 public:
  bool connect(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Control() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::optional<json> line() {
    std::string l;
    if (!readLine(fd_, buf_, l, kWait)) return std::nullopt;
    return json::parse(l, nullptr, false);
  }
  json op(const json& request) {
    std::string text = request.dump() + "\n";
    ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL);
    auto reply = line();
    return reply ? *reply : json();
  }
  // The next push notification for `token` (other lines are skipped).
  std::optional<json> pushFor(const std::string& token) {
    for (int i = 0; i < 20; ++i) {
      auto l = line();
      if (!l) return std::nullopt;
      if ((*l)["event"] == "push" && (*l)["token"] == token) return l;
    }
    return std::nullopt;
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

// One sipwake-fakepns child process.
struct FakeProc {
  std::vector<std::string> args;  // after argv[0]
  pid_t pid = -1;
  int out_fd = -1;
  std::string ca;
  int port = 0;
  int control_port = 0;
};

class Http2SenderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/sipwake-sender-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto ec = Key::generateEcP256();
    ASSERT_TRUE(ec);
    writeFile(dir_ + "/apns.p8", *ec->privatePem());
    writeFile(dir_ + "/apns.pub", *ec->publicPem());
    auto rsa = Key::generateRsa(2048);
    ASSERT_TRUE(rsa);
    port_ = freePort();
    json sa = {{"type", "service_account"},
               {"project_id", kProject},
               {"private_key_id", "k1"},
               {"private_key", *rsa->privatePem()},
               {"client_email", std::string("pusher@") + kProject + ".iam.gserviceaccount.com"},
               {"client_id", "1"},
               {"token_uri", "https://127.0.0.1:" + std::to_string(port_) + "/token"}};
    writeFile(dir_ + "/sa.json", sa.dump());

    writeFile(dir_ + "/webhook.secret", "hook-secret-123\n");
    main_.args = {"--listen",
                  "127.0.0.1:" + std::to_string(port_),
                  "--make-cert",
                  dir_ + "/cert",
                  "--apns-key",
                  std::string(kKeyId) + ":" + kTeamId + ":" + dir_ + "/apns.pub",
                  "--apns-topic",
                  kBundle,
                  "--fcm-service-account",
                  dir_ + "/sa.json",
                  "--webhook-path",
                  "/hooks/push",
                  "--webhook-secret-file",
                  dir_ + "/webhook.secret",
                  "--control",
                  "127.0.0.1:0"};
    ASSERT_NO_FATAL_FAILURE(startFake(main_, dir_ + "/fake.log"));
    port_ = main_.port;
    control_port_ = main_.control_port;
    ca_ = main_.ca;
    // An HTTP/1.1-only webhook server (ALPN http/1.1), without a secret.
    h1_.args = {"--listen",       "127.0.0.1:0", "--make-cert", dir_ + "/cert1", "--http1-only",
                "--webhook-path", "/hook",       "--control",   "127.0.0.1:0"};
    ASSERT_NO_FATAL_FAILURE(startFake(h1_, dir_ + "/fake1.log"));
  }

  static void startFake(FakeProc& f, const std::string& log) {
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    std::vector<std::string> args = {SIPWAKE_FAKEPNS_PATH};
    args.insert(args.end(), f.args.begin(), f.args.end());
    f.pid = ::fork();
    ASSERT_GE(f.pid, 0);
    if (f.pid == 0) {
      ::dup2(out[1], 1);
      int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (err >= 0) ::dup2(err, 2);
      ::close(out[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    f.out_fd = out[0];
    std::string buf, line;
    bool ready = false;
    while (!ready && readLine(f.out_fd, buf, line, kWait)) {
      auto sp = line.find(' ');
      std::string word = line.substr(0, sp);
      std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
      if (word == "ca") f.ca = rest;
      if (word == "control") f.control_port = std::stoi(rest.substr(rest.rfind(':') + 1));
      if (word == "listening") f.port = std::stoi(rest.substr(rest.rfind(':') + 1));
      if (word == "ready") ready = true;
    }
    ASSERT_TRUE(ready) << "sipwake-fakepns did not start; see " << log;
    ASSERT_FALSE(f.ca.empty());
  }

  static void stopFake(FakeProc& f) {
    if (f.pid > 0) {
      ::kill(f.pid, SIGTERM);
      ::waitpid(f.pid, nullptr, 0);
      f.pid = -1;
    }
    if (f.out_fd >= 0) ::close(f.out_fd);
    f.out_fd = -1;
  }

  static void TearDownTestSuite() {
    stopFake(main_);
    stopFake(h1_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void SetUp() override {
    ASSERT_GT(main_.pid, 0);
    ASSERT_GT(h1_.pid, 0);
    loop_.start();
    ASSERT_TRUE(ctl_.connect(static_cast<std::uint16_t>(control_port_)));
  }
  void TearDown() override {
    sender_.reset();
    loop_.stop();
  }

  static std::string endpoint() { return "https://127.0.0.1:" + std::to_string(port_); }

  PushAppConfig apnsApp() const {
    PushAppConfig c;
    c.provider = PushService::kApns;
    c.id = kBundle;
    c.key_file = dir_ + "/apns.p8";
    c.key_id = kKeyId;
    c.team_id = kTeamId;
    c.endpoint = endpoint();
    c.ca_file = ca_;
    return c;
  }
  PushAppConfig fcmApp() const {
    PushAppConfig c;
    c.provider = PushService::kFcm;
    c.id = kProject;
    c.service_account_file = dir_ + "/sa.json";
    c.endpoint = endpoint();
    c.ca_file = ca_;
    return c;
  }
  void makeSender() {
    auto s = Http2PushSender::create({apnsApp(), fcmApp()}, loop_);
    ASSERT_TRUE(s) << s.status().toString();
    sender_ = std::move(*s);
  }

  static PushTarget apnsTarget(const std::string& voip, const std::string& remote) {
    PushTarget t;
    t.binding.provider = Provider::kApns;
    t.binding.app_id = kBundle;
    t.binding.team_id = kTeamId;
    t.binding.voip_token = voip;
    t.binding.message_token = remote;
    t.aor = "sip:alice@example.com";
    t.device_key = t.binding.deviceKey();
    return t;
  }
  static PushTarget fcmTarget(const std::string& token) {
    PushTarget t;
    t.binding.provider = Provider::kFcm;
    t.binding.project_id = kProject;
    t.binding.message_token = token;
    t.aor = "sip:bob@example.com";
    t.device_key = t.binding.deviceKey();
    return t;
  }
  static CallEvent event(CallEventKind kind) {
    CallEvent ev;
    ev.kind = kind;
    ev.call_id = "call-1@example.com";
    ev.callee_aor = "sip:alice@example.com";
    ev.call_uuid = deriveCallUuid(ev.call_id, ev.callee_aor, "salt");
    ev.caller_uri = "sip:carol@example.com";
    ev.caller_display_name = "Carol";
    ev.sent_at_ms = 1'700'000'000'000;
    return ev;
  }

  // Sends and waits (bounded) for the outcome.
  std::optional<PushOutcome> sendAndWait(const PushTarget& t, const CallEvent& ev, PushKind kind) {
    auto p = std::make_shared<std::promise<PushOutcome>>();
    auto f = p->get_future();
    sender_->send(t, ev, kind, [p](PushOutcome o) { p->set_value(std::move(o)); });
    if (f.wait_for(kWait) != std::future_status::ready) return std::nullopt;
    return f.get();
  }

  std::uint64_t tokensIssued() { return ctl_.op({{"op", "stats"}}).value("tokens_issued", 0u); }
  std::uint64_t fakeStat(const std::string& name) {
    return ctl_.op({{"op", "stats"}}).value(name, 0u);
  }
  std::uint64_t fakeRejected(const std::string& key) {
    return ctl_.op({{"op", "stats"}})["rejected"].value(key, 0u);
  }
  static std::uint64_t counter(const std::string& name) {
    return Stats::global().counter(name).value();
  }

  PushAppConfig webhookApp(bool http1) const {
    PushAppConfig c;
    c.provider = PushService::kWebhook;
    c.id = "*";
    if (http1) {
      c.url = "https://127.0.0.1:" + std::to_string(h1_.port) + "/hook";
      c.ca_file = h1_.ca;
    } else {
      c.url = endpoint() + "/hooks/push";
      c.ca_file = ca_;
      c.secret_file = dir_ + "/webhook.secret";
    }
    return c;
  }
  void makeWebhookSender(bool http1) {
    auto s = Http2PushSender::create({webhookApp(http1)}, loop_);
    ASSERT_TRUE(s) << s.status().toString();
    sender_ = std::move(*s);
  }

  static inline std::string dir_;
  static inline std::string ca_;
  static inline int port_ = 0;
  static inline int control_port_ = 0;
  static inline FakeProc main_;
  static inline FakeProc h1_;

  transport::EventLoop loop_{0};
  Control ctl_;
  std::unique_ptr<Http2PushSender> sender_;
};

TEST_F(Http2SenderTest, ApnsVoipCallAccepted) {
  makeSender();
  std::string tok = hexToken('a');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", tok}})["ok"], true);
  auto o =
      sendAndWait(apnsTarget(tok, hexToken('b')), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  EXPECT_EQ(o->provider_status, 200);
  auto ev = ctl_.pushFor(tok);
  ASSERT_TRUE(ev);
  const json& h = (*ev)["headers"];
  EXPECT_EQ(h["apns-topic"], std::string(kBundle) + ".voip");
  EXPECT_EQ(h["apns-push-type"], "voip");
  EXPECT_EQ(h["apns-priority"], "10");
  EXPECT_EQ(h["apns-collapse-id"], event(CallEventKind::kCall).call_uuid);
  EXPECT_NE(h["apns-expiration"], "0");
}

TEST_F(Http2SenderTest, ApnsCancelIsNotVoip) {
  makeSender();
  std::string voip = hexToken('c'), remote = hexToken('d');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", remote}})["ok"], true);
  auto o = sendAndWait(apnsTarget(voip, remote), event(CallEventKind::kCancel), PushKind::kCancel);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  auto ev = ctl_.pushFor(remote);
  ASSERT_TRUE(ev);
  EXPECT_EQ((*ev)["headers"]["apns-topic"], kBundle);
  EXPECT_NE((*ev)["headers"]["apns-push-type"], "voip");
  EXPECT_EQ((*ev)["headers"]["apns-priority"], "5");
}

TEST_F(Http2SenderTest, ApnsCancelAndMissedCallGoAsVoipWhenTheDeviceHasOnlyAVoipToken) {
  makeSender();
  std::string voip = hexToken('9');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", voip}})["ok"], true);
  for (auto [ev_kind, push_kind] : {std::pair{CallEventKind::kCancel, PushKind::kCancel},
                                    std::pair{CallEventKind::kMissed, PushKind::kMissedCall}}) {
    auto o = sendAndWait(apnsTarget(voip, ""), event(ev_kind), push_kind);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
    auto ev = ctl_.pushFor(voip);
    ASSERT_TRUE(ev);
    EXPECT_EQ((*ev)["headers"]["apns-topic"], std::string(kBundle) + ".voip");
    EXPECT_EQ((*ev)["headers"]["apns-push-type"], "voip");
    EXPECT_EQ((*ev)["headers"]["apns-collapse-id"], event(ev_kind).call_uuid);
  }
}

TEST_F(Http2SenderTest, ApnsRefreshIsABackgroundPushToTheRemoteToken) {
  makeSender();
  std::string voip = hexToken('3'), remote = hexToken('4');
  // Bound to the bare topic: the fake answers DeviceTokenNotForTopic to any other.
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", remote}, {"topic", kBundle}})["ok"], true);
  auto o = sendAndWait(apnsTarget(voip, remote), refreshEvent("sip:alice@example.com"),
                       PushKind::kRefresh);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  auto ev = ctl_.pushFor(remote);
  ASSERT_TRUE(ev);
  const json& h = (*ev)["headers"];
  EXPECT_EQ(h["apns-topic"], kBundle);
  EXPECT_EQ(h["apns-push-type"], "background");
  EXPECT_EQ(h["apns-priority"], "5");
  EXPECT_FALSE(h.contains("apns-collapse-id"));
  EXPECT_NE(h["apns-expiration"], "0");
  EXPECT_EQ((*ev)["payload"]["aps"], (json{{"content-available", 1}}));
  EXPECT_EQ((*ev)["payload"]["event"], "refresh");
  EXPECT_EQ((*ev)["payload"]["callee_aor"], "sip:alice@example.com");
}

TEST_F(Http2SenderTest, RefreshOfAVoipOnlyBindingFailsPermanentlyAndSendsNothing) {
  makeSender();
  std::string voip = hexToken('5');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", voip}})["ok"], true);
  std::uint64_t accepted = fakeStat("accepted_apns");
  std::uint64_t counted = counter("push.failed.apns.refresh_voip_only");
  auto o = sendAndWait(apnsTarget(voip, ""), refreshEvent("sip:alice@example.com"),
                       PushKind::kRefresh);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->reason, kNoRefreshTokenReason);
  EXPECT_EQ(o->provider_status, 0);
  EXPECT_EQ(counter("push.failed.apns.refresh_voip_only") - counted, 1u);
  // A call to the same device still goes (and is the next push the fake saw for it).
  o = sendAndWait(apnsTarget(voip, ""), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  auto ev = ctl_.pushFor(voip);
  ASSERT_TRUE(ev);
  EXPECT_EQ((*ev)["headers"]["apns-push-type"], "voip");
  EXPECT_EQ(fakeStat("accepted_apns") - accepted, 1u);
}

TEST_F(Http2SenderTest, FcmRefreshIsHighPriorityDataWithTheRefreshTtl) {
  makeSender();
  std::string tok = "fcm-refresh-token-" + std::string(30, 'r');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", tok}})["ok"], true);
  auto o = sendAndWait(fcmTarget(tok), refreshEvent("sip:bob@example.com"), PushKind::kRefresh);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  auto ev = ctl_.pushFor(tok);
  ASSERT_TRUE(ev);
  const json& m = (*ev)["payload"];
  EXPECT_EQ(m["android"]["priority"], "high");
  EXPECT_EQ(m["android"]["ttl"], std::to_string(kRefreshPushTtl.count()) + "s");
  EXPECT_FALSE(m.contains("notification"));
  EXPECT_EQ(m["data"]["event"], "refresh");
  EXPECT_EQ(m["data"]["callee_aor"], "sip:bob@example.com");
}

TEST_F(Http2SenderTest, ApnsScriptedFailures) {
  makeSender();
  std::string tok = hexToken('e');
  ASSERT_EQ(ctl_.op({{"op", "script"},
                     {"token", tok},
                     {"responses", json::array({{{"status", 410}, {"reason", "Unregistered"}},
                                                {{"status", 429}},
                                                {{"status", 500}}})}})["ok"],
            true);
  auto target = apnsTarget(tok, "");
  auto o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kRemoveBinding);
  EXPECT_EQ(o->provider_status, 410);
  EXPECT_EQ(o->reason, "Unregistered");
  ASSERT_TRUE(o->invalid_since.has_value());
  EXPECT_GT(o->invalid_since->time_since_epoch().count(), 1'600'000'000);

  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kTransient);
  EXPECT_EQ(o->provider_status, 429);

  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kTransient);
  EXPECT_EQ(o->provider_status, 500);
}

TEST_F(Http2SenderTest, FcmSendReusesAccessToken) {
  makeSender();
  std::string tok = "fcm-registration-token-" + std::string(40, 'x');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", tok}})["ok"], true);
  std::uint64_t before = tokensIssued();
  for (int i = 0; i < 2; ++i) {
    auto o = sendAndWait(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall);
    ASSERT_TRUE(o);
    EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
    auto ev = ctl_.pushFor(tok);
    ASSERT_TRUE(ev);
    EXPECT_EQ((*ev)["payload"]["android"]["priority"], "high");
    EXPECT_EQ((*ev)["payload"]["android"]["ttl"], "30s");
  }
  EXPECT_EQ(tokensIssued() - before, 1u);
}

TEST_F(Http2SenderTest, ConcurrentSendsShareOneTokenFetchAndConnection) {
  makeSender();
  std::string tok = "fcm-busy-token-" + std::string(40, 'z');
  std::uint64_t before = tokensIssued();
  constexpr int kSends = 20;
  std::vector<std::future<PushOutcome>> futures;
  for (int i = 0; i < kSends; ++i) {
    auto p = std::make_shared<std::promise<PushOutcome>>();
    futures.push_back(p->get_future());
    sender_->send(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall,
                  [p](PushOutcome o) { p->set_value(std::move(o)); });
  }
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(kWait), std::future_status::ready);
    PushOutcome o = f.get();
    EXPECT_EQ(o.kind, PushOutcome::Kind::kOk) << o.reason;
  }
  EXPECT_EQ(tokensIssued() - before, 1u);
}

TEST_F(Http2SenderTest, FcmUnregisteredRemovesBinding) {
  makeSender();
  std::string tok = "fcm-dead-token-" + std::string(40, 'y');
  ASSERT_EQ(ctl_.op({{"op", "script"},
                     {"token", tok},
                     {"responses", json::array({{{"status", 404}}})}})["ok"],
            true);
  auto o = sendAndWait(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kRemoveBinding) << o->reason;
  EXPECT_EQ(o->reason, "UNREGISTERED");
}

TEST_F(Http2SenderTest, MissingAppIsPermanent) {
  makeSender();
  auto t = apnsTarget(hexToken('f'), "");
  t.binding.app_id = "com.example.other";
  auto o = sendAndWait(t, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->reason, "no push app configured for apns com.example.other");
}

TEST_F(Http2SenderTest, BadKeyFileNamedByCreate) {
  writeFile(dir_ + "/bad.p8",
            "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
  PushAppConfig c = apnsApp();
  c.key_file = dir_ + "/bad.p8";
  auto s = Http2PushSender::create({c}, loop_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.status().message().find(c.key_file), std::string::npos) << s.status().toString();

  c.key_file = dir_ + "/missing.p8";
  s = Http2PushSender::create({c}, loop_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.status().message().find(c.key_file), std::string::npos) << s.status().toString();

  PushAppConfig f = fcmApp();
  f.service_account_file = dir_ + "/apns.p8";  // not JSON
  auto s2 = Http2PushSender::create({f}, loop_);
  ASSERT_FALSE(s2);
  EXPECT_NE(s2.status().message().find(f.service_account_file), std::string::npos);
}

// ---- sent_at: the clock at each hand-over to the connection, not the caller's value ----

TEST_F(Http2SenderTest, SentAtIsTheClockAtEachAttemptInMilliseconds) {
  FakePushClock clock(std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() +
                      123);  // not a whole second
  auto s = Http2PushSender::create({apnsApp(), fcmApp()}, loop_, &clock);
  ASSERT_TRUE(s) << s.status().toString();
  sender_ = std::move(*s);
  const CallEvent ev = event(CallEventKind::kCall);  // carries sent_at_ms 1'700'000'000'000
  std::string apns_tok = hexToken('5');
  std::string fcm_tok = "fcm-sent-at-token-" + std::string(30, 's');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", apns_tok}})["ok"], true);
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", fcm_tok}})["ok"], true);
  for (int attempt = 0; attempt < 2; ++attempt) {  // a caller's retry is a new attempt
    const std::string want = std::to_string(clock.unixMillis());
    auto o = sendAndWait(apnsTarget(apns_tok, ""), ev, PushKind::kCall);
    ASSERT_TRUE(o);
    ASSERT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
    auto pushed = ctl_.pushFor(apns_tok);
    ASSERT_TRUE(pushed);
    EXPECT_EQ((*pushed)["payload"]["sent_at"], want) << attempt;
    o = sendAndWait(fcmTarget(fcm_tok), ev, PushKind::kCall);
    ASSERT_TRUE(o);
    ASSERT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
    pushed = ctl_.pushFor(fcm_tok);
    ASSERT_TRUE(pushed);
    EXPECT_EQ((*pushed)["payload"]["data"]["sent_at"], want) << attempt;
    clock.advance(1501ms);
  }
  sender_.reset();  // before `clock`
}

// ---- id = "*" for APNs / FCM ----

TEST_F(Http2SenderTest, WildcardApnsAppServesAnyBundleOfItsTeam) {
  PushAppConfig c = apnsApp();
  c.id = "*";
  auto s = Http2PushSender::create({c}, loop_);
  ASSERT_TRUE(s) << s.status().toString();
  sender_ = std::move(*s);
  std::string tok = hexToken('6');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", tok}})["ok"], true);
  auto o = sendAndWait(apnsTarget(tok, ""), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  auto pushed = ctl_.pushFor(tok);
  ASSERT_TRUE(pushed);
  EXPECT_EQ((*pushed)["headers"]["apns-topic"], std::string(kBundle) + ".voip");

  auto no_team = apnsTarget(tok, "");  // dialects other than RFC 8599 carry no team id
  no_team.binding.team_id.clear();
  o = sendAndWait(no_team, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;

  auto other_team = apnsTarget(tok, "");  // this key cannot sign for another team's app
  other_team.binding.team_id = "OTHERTEAM9";
  o = sendAndWait(other_team, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->reason,
            std::string("no push app configured for apns ") + kBundle + " (team OTHERTEAM9)");
  // The registrar asks the same question before it accepts such a binding (else 555).
  EXPECT_TRUE(sender_->serves(apnsTarget(tok, "").binding));
  EXPECT_TRUE(sender_->serves(no_team.binding));
  EXPECT_FALSE(sender_->serves(other_team.binding));
  EXPECT_FALSE(sender_->serves(fcmTarget(tok).binding));
}

TEST_F(Http2SenderTest, WildcardFcmAppServesItsServiceAccountsProject) {
  PushAppConfig c = fcmApp();
  c.id = "*";
  auto s = Http2PushSender::create({c}, loop_);
  ASSERT_TRUE(s) << s.status().toString();
  sender_ = std::move(*s);
  std::string tok = "fcm-wildcard-token-" + std::string(30, 'w');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", tok}, {"project", kProject}})["ok"], true);
  auto o = sendAndWait(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  EXPECT_TRUE(ctl_.pushFor(tok));

  auto by_name = fcmTarget(tok);  // ABTO: an app name, no project id
  by_name.binding.project_id.clear();
  by_name.binding.app_id = "hero voip";
  o = sendAndWait(by_name, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;

  auto other = fcmTarget(tok);
  other.binding.project_id = "another-project";
  o = sendAndWait(other, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->reason, "no push app configured for fcm another-project");
  EXPECT_TRUE(sender_->serves(by_name.binding));
  EXPECT_FALSE(sender_->serves(other.binding));
}

TEST_F(Http2SenderTest, FcmAppNamedByTheClientsAppNameSendsToTheServiceAccountsProject) {
  PushAppConfig c = fcmApp();
  c.id = "hero voip";  // ABTO push-token-app as the client sends it
  auto s = Http2PushSender::create({c}, loop_);
  ASSERT_TRUE(s) << s.status().toString();
  sender_ = std::move(*s);
  std::string tok = "fcm-hero-voip-token-" + std::string(30, 'h');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", tok}, {"project", kProject}})["ok"], true);
  auto t = fcmTarget(tok);
  t.binding.project_id.clear();
  t.binding.app_id = "hero voip";
  auto o = sendAndWait(t, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  EXPECT_TRUE(ctl_.pushFor(tok));
}

TEST_F(Http2SenderTest, WildcardAppsCreateRefusesWhatCannotWork) {
  PushAppConfig a = apnsApp();
  a.id = "*";
  a.key_file.clear();
  a.key_id.clear();
  a.team_id.clear();
  a.cert_file = dir_ + "/apns.p8";  // never read: refused first
  auto s = Http2PushSender::create({a}, loop_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.status().message().find("needs token auth"), std::string::npos)
      << s.status().toString();

  json sa = json::parse(std::ifstream(dir_ + "/sa.json"));
  sa.erase("project_id");
  writeFile(dir_ + "/sa-no-project.json", sa.dump());
  PushAppConfig f = fcmApp();
  f.id = "*";
  f.service_account_file = dir_ + "/sa-no-project.json";
  s = Http2PushSender::create({f}, loop_);
  ASSERT_FALSE(s);
  EXPECT_NE(s.status().message().find("project_id"), std::string::npos) << s.status().toString();
  f.id = kProject;  // a named app sends to its id
  s = Http2PushSender::create({f}, loop_);
  EXPECT_TRUE(s) << s.status().toString();
}

// ---- webhook: documented body over h2 (with the bearer secret) and over HTTP/1.1 ----

TEST_F(Http2SenderTest, WebhookOverH2CarriesDocumentedBodyAndSecret) {
  makeWebhookSender(false);
  std::string tok = hexToken('1');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", tok}})["ok"], true);
  std::uint64_t before = fakeStat("accepted_webhook");
  auto o = sendAndWait(apnsTarget(tok, ""), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  EXPECT_EQ(o->provider_status, 200);
  auto ev = ctl_.pushFor(tok);
  ASSERT_TRUE(ev);
  EXPECT_EQ((*ev)["provider"], "webhook");
  const json& body = (*ev)["payload"];  // the fake checked it against the documented schema
  EXPECT_EQ(body["event"], "call");
  EXPECT_EQ(body["call_id"], "call-1@example.com");
  EXPECT_EQ(body["app"]["apns_topic"], std::string(kBundle) + ".voip");
  EXPECT_EQ(body["tokens"]["voip"], tok);
  EXPECT_FALSE((*ev)["headers"].contains("authorization"));  // never echoed
  EXPECT_EQ(fakeStat("accepted_webhook") - before, 1u);
}

TEST_F(Http2SenderTest, WebhookRefreshCarriesTheBundleTopicAndNoCall) {
  makeWebhookSender(false);
  std::string voip = hexToken('6'), remote = hexToken('7');
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", voip}})["ok"], true);  // webhook key: voip
  auto o = sendAndWait(apnsTarget(voip, remote), refreshEvent("sip:alice@example.com"),
                       PushKind::kRefresh);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  auto ev = ctl_.pushFor(voip);
  ASSERT_TRUE(ev);
  const json& body = (*ev)["payload"];  // the fake checked the refresh form of the schema
  EXPECT_EQ(body["event"], "refresh");
  EXPECT_EQ(body["call_id"], "");
  EXPECT_EQ(body["app"]["apns_topic"], kBundle);
  EXPECT_EQ(body["tokens"]["message"], remote);
  // A VoIP-only device is refused before the webhook, as with APNs directly.
  o = sendAndWait(apnsTarget(voip, ""), refreshEvent("sip:alice@example.com"), PushKind::kRefresh);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->reason, kNoRefreshTokenReason);
}

TEST_F(Http2SenderTest, WebhookWrongSecretIsPermanent) {
  writeFile(dir_ + "/wrong.secret", "not-the-secret");
  PushAppConfig c = webhookApp(false);
  c.secret_file = dir_ + "/wrong.secret";
  auto s = Http2PushSender::create({c}, loop_);
  ASSERT_TRUE(s) << s.status().toString();
  sender_ = std::move(*s);
  std::uint64_t before = fakeRejected("webhook:unauthorized");
  auto o = sendAndWait(fcmTarget("fcm-webhook-token-" + std::string(30, 'w')),
                       event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->provider_status, 401);
  EXPECT_EQ(fakeRejected("webhook:unauthorized") - before, 1u);
}

TEST_F(Http2SenderTest, WebhookOverHttp1RetryAfter5xxThenSuccessAnd4xxPermanent) {
  makeWebhookSender(true);
  Control h1ctl;
  ASSERT_TRUE(h1ctl.connect(static_cast<std::uint16_t>(h1_.control_port)));
  std::string tok = "fcm-http1-token-" + std::string(30, 'h');
  ASSERT_EQ(h1ctl.op({{"op", "subscribe"}, {"token", tok}})["ok"], true);
  ASSERT_EQ(h1ctl.op({{"op", "script"},
                      {"token", tok},
                      {"responses", json::array({{{"status", 503}, {"retry_after", 2}},
                                                 json::object(),
                                                 {{"status", 400}},
                                                 {{"status", 410}}})}})["ok"],
            true);
  auto target = fcmTarget(tok);
  auto o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kTransient);
  EXPECT_EQ(o->provider_status, 503);
  EXPECT_EQ(o->retry_after, 2s);
  // The caller retries after retry_after (not waited here: the fake does not hold it to it).
  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  auto ev = h1ctl.pushFor(tok);
  ASSERT_TRUE(ev);
  EXPECT_EQ((*ev)["payload"]["provider"], "fcm");
  EXPECT_EQ((*ev)["payload"]["tokens"]["message"], tok);
  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->reason, "http_400");
  o = sendAndWait(target, event(CallEventKind::kCancel), PushKind::kCancel);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kRemoveBinding);
  EXPECT_EQ(h1ctl.op({{"op", "stats"}}).value("accepted_webhook", 0u), 1u);
}

// ---- auth renewal paths ----

// APNs renews a provider token at most once per 20 minutes: the sender's clock says the token is
// 25 minutes old (renewal allowed, but not yet due by age) when APNs calls it expired.
TEST_F(Http2SenderTest, ApnsExpiredProviderTokenIsRenewedAndRetriedOnce) {
  FakePushClock clock(std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count());
  auto s = Http2PushSender::create({apnsApp()}, loop_, &clock);
  ASSERT_TRUE(s) << s.status().toString();
  sender_ = std::move(*s);
  std::string tok = hexToken('2');
  auto target = apnsTarget(tok, "");
  auto o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  ASSERT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  clock.advance(25min);  // monotonic only: the wall clock stays the fake's
  clock.jumpWall(-std::chrono::duration_cast<std::chrono::milliseconds>(25min));
  std::uint64_t expired_before = fakeRejected("apns:ExpiredProviderToken");
  ASSERT_EQ(ctl_.op({{"op", "expire_provider_tokens"}})["ok"], true);
  ASSERT_EQ(ctl_.op({{"op", "subscribe"}, {"token", tok}})["ok"], true);
  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;  // new JWT, same push
  EXPECT_TRUE(ctl_.pushFor(tok));
  EXPECT_EQ(fakeRejected("apns:ExpiredProviderToken") - expired_before, 1u);
  EXPECT_EQ(fakeRejected("apns:TooManyProviderTokenUpdates"), 0u);

  // Still expired after the renewal (scripted twice): reported, not retried again.
  clock.advance(25min);
  clock.jumpWall(-std::chrono::duration_cast<std::chrono::milliseconds>(25min));
  ASSERT_EQ(
      ctl_.op({{"op", "script"},
               {"token", tok},
               {"responses", json::array({{{"status", 403}, {"reason", "ExpiredProviderToken"}},
                                          {{"status", 403}, {"reason", "ExpiredProviderToken"}},
                                          {{"status", 410}}})}})["ok"],
      true);
  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kTransient);
  EXPECT_EQ(o->reason, "ExpiredProviderToken");
  clock.advance(25min);  // the token stays marked stale: renewed once the floor allows
  clock.jumpWall(-std::chrono::duration_cast<std::chrono::milliseconds>(25min));
  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kRemoveBinding);  // the third step was left for us
  sender_.reset();                                        // before `clock`
}

TEST_F(Http2SenderTest, ApnsInvalidProviderTokenIsPermanentAndCounted) {
  makeSender();
  std::string tok = hexToken('3');
  ASSERT_EQ(
      ctl_.op({{"op", "script"},
               {"token", tok},
               {"responses", json::array({{{"status", 403}, {"reason", "InvalidProviderToken"}},
                                          {{"status", 410}}})}})["ok"],
      true);
  const std::uint64_t before = counter("push.failed.apns.InvalidProviderToken");
  auto target = apnsTarget(tok, "");
  auto o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->reason, "InvalidProviderToken");
  EXPECT_EQ(o->provider_status, 403);
  EXPECT_EQ(counter("push.failed.apns.InvalidProviderToken") - before, 1u);
  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kRemoveBinding);  // not consumed by a retry
}

// A reason outside the fixed vocabulary counts as "other" (the label set stays bounded), and one
// push counts once.
TEST_F(Http2SenderTest, UnknownProviderReasonIsCountedAsOtherAndEachPushOnce) {
  makeSender();
  std::string tok = hexToken('8');
  ASSERT_EQ(ctl_.op({{"op", "script"},
                     {"token", tok},
                     {"responses", json::array({{{"status", 400}, {"reason", "BrandNewReason"}},
                                                {{"status", 200}}})}})["ok"],
            true);
  const std::uint64_t other = counter("push.failed.apns.other");
  const std::uint64_t sent = counter("push.sent.apns");
  auto target = apnsTarget(tok, "");
  auto o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->reason, "BrandNewReason");
  EXPECT_EQ(counter("push.failed.apns.other") - other, 1u);
  o = sendAndWait(target, event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk);
  EXPECT_EQ(counter("push.sent.apns") - sent, 1u);
  for (const auto& [name, v] : Stats::global().snapshot()) {
    EXPECT_EQ(name.find("BrandNewReason"), std::string::npos) << name;
  }
}

TEST(PushMetricsTest, ReasonsMapToTheFixedVocabulary) {
  auto word = [](std::string_view r) { return kFailReasons[failReasonIndex(r)]; };
  EXPECT_EQ(word("BadDeviceToken"), "BadDeviceToken");
  EXPECT_EQ(word("UNREGISTERED"), "UNREGISTERED");
  EXPECT_EQ(word("timed_out"), "timed_out");
  EXPECT_EQ(word("http_503"), "http_5xx");
  EXPECT_EQ(word("no push app configured for fcm x"), "no_app");
  EXPECT_EQ(word(kNoRefreshTokenReason), "refresh_voip_only");
  EXPECT_EQ(word("provider token: cannot read key"), "credentials");
  EXPECT_EQ(word("Unregistered\n{}\""), "other");
  EXPECT_EQ(word(""), "other");
  EXPECT_EQ(kFailReasons[kFailReasonCount - 1], "other");
}

TEST_F(Http2SenderTest, FcmUnauthenticatedRefreshesAccessTokenAndRetriesOnce) {
  makeSender();
  std::string tok = "fcm-expiring-token-" + std::string(30, 'e');
  auto o = sendAndWait(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  ASSERT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  const std::uint64_t issued = tokensIssued();
  const std::uint64_t unauth = fakeRejected("fcm:UNAUTHENTICATED");
  ASSERT_EQ(ctl_.op({{"op", "expire_access_tokens"}})["ok"], true);
  o = sendAndWait(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  EXPECT_EQ(tokensIssued() - issued, 1u);
  EXPECT_EQ(fakeRejected("fcm:UNAUTHENTICATED") - unauth, 1u);
}

TEST_F(Http2SenderTest, OAuthTokenEndpointFailureIsCountedAndRetriedWithBackoff) {
  makeSender();
  ASSERT_EQ(ctl_.op({{"op", "script_token_endpoint"},
                     {"responses", json::array({{{"status", 503}}})}})["ok"],
            true);
  const std::uint64_t requests = fakeStat("token_requests");
  const std::uint64_t failures = counter("push.oauth_token_failures.fcm");
  std::string tok = "fcm-backoff-token-" + std::string(30, 'b');
  auto o = sendAndWait(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kTransient);
  EXPECT_EQ(o->reason, "oauth_token");
  EXPECT_GT(o->retry_after.count(), 0);
  EXPECT_LE(o->retry_after, 1000ms);
  EXPECT_EQ(counter("push.oauth_token_failures.fcm") - failures, 1u);
  // Within the backoff: fails fast without asking the endpoint again.
  o = sendAndWait(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kTransient);
  EXPECT_EQ(fakeStat("token_requests") - requests, 1u);
  // After it: one new fetch, and the push goes through (bounded wait for the backoff to pass).
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (o->kind != PushOutcome::Kind::kOk && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::max<std::chrono::milliseconds>(o->retry_after, 20ms));
    o = sendAndWait(fcmTarget(tok), event(CallEventKind::kCall), PushKind::kCall);
    ASSERT_TRUE(o);
  }
  EXPECT_EQ(o->kind, PushOutcome::Kind::kOk) << o->reason;
  EXPECT_EQ(fakeStat("token_requests") - requests, 2u);
}

TEST_F(Http2SenderTest, OAuthInvalidGrantIsPermanent) {
  makeSender();
  ASSERT_EQ(
      ctl_.op({{"op", "script_token_endpoint"},
               {"responses", json::array({{{"status", 400}, {"reason", "invalid_grant"}}})}})["ok"],
      true);
  auto o = sendAndWait(fcmTarget("fcm-grant-token-" + std::string(30, 'g')),
                       event(CallEventKind::kCall), PushKind::kCall);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->kind, PushOutcome::Kind::kPermanent);
  EXPECT_EQ(o->reason, "oauth_token");
}

}  // namespace
}  // namespace sipwake::push
