// Http2PushSender against the real sipwake-fakepns (strict fake APNs + FCM + OAuth2) on loopback,
// with keys generated at test time. Every wait is bounded (10 s).
#include "push/http2_sender.h"

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
#include <vector>

#include "push/jwt.h"
#include "push/payload.h"
#include "transport/event_loop.h"

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

std::uint16_t freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

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

    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    std::vector<std::string> args = {SIPWAKE_FAKEPNS_PATH,
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(port_),
                                     "--make-cert",
                                     dir_ + "/cert",
                                     "--apns-key",
                                     std::string(kKeyId) + ":" + kTeamId + ":" + dir_ + "/apns.pub",
                                     "--apns-topic",
                                     kBundle,
                                     "--fcm-service-account",
                                     dir_ + "/sa.json",
                                     "--control",
                                     "127.0.0.1:0"};
    std::string log = dir_ + "/fake.log";
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
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
    out_fd_ = out[0];
    std::string buf, line;
    bool ready = false;
    while (!ready && readLine(out_fd_, buf, line, kWait)) {
      auto sp = line.find(' ');
      std::string word = line.substr(0, sp);
      std::string rest = sp == std::string::npos ? "" : line.substr(sp + 1);
      if (word == "ca") ca_ = rest;
      if (word == "control") control_port_ = std::stoi(rest.substr(rest.rfind(':') + 1));
      if (word == "listening") port_ = std::stoi(rest.substr(rest.rfind(':') + 1));
      if (word == "ready") ready = true;
    }
    ASSERT_TRUE(ready) << "sipwake-fakepns did not start; see " << log;
    ASSERT_FALSE(ca_.empty());
  }

  static void TearDownTestSuite() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  void SetUp() override {
    ASSERT_GT(pid_, 0);
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

  static inline std::string dir_;
  static inline std::string ca_;
  static inline int port_ = 0;
  static inline int control_port_ = 0;
  static inline pid_t pid_ = -1;
  static inline int out_fd_ = -1;

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

}  // namespace
}  // namespace sipwake::push
