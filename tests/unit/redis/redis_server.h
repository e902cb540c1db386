// A real redis-server (or redis-server --sentinel) for tests: started on a free loopback port
// in a temporary directory, killed and removed at the end. Tests GTEST_SKIP when it is missing.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "../free_port.h"

namespace sipwake::redis::testing {

inline bool haveRedisServer() {
  return std::system("command -v redis-server >/dev/null 2>&1") == 0;
}

using testing_support::freeLoopbackPort;

// Sends `request` to 127.0.0.1:port and reads until `want` is seen or `timeout` passes.
inline bool exchange(std::uint16_t port, const std::string& request, const std::string& want,
                     std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!ok && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<std::size_t>(n));
      ok = got.find(want) != std::string::npos;
    }
  }
  ::close(fd);
  return ok;
}

class RedisServer {
 public:
  // `extra`: more redis-server arguments (e.g. {"--appendonly", "yes"}). `sentinel_conf`: when
  // non-empty, runs `redis-server <dir>/sentinel.conf --sentinel` with these lines + "port N".
  explicit RedisServer(std::vector<std::string> extra = {}, std::string sentinel_conf = "")
      : extra_(std::move(extra)), sentinel_conf_(std::move(sentinel_conf)) {
    char tmpl[] = "/tmp/sipwake-redis-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  ~RedisServer() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  const std::string& dir() const { return dir_; }
  std::uint16_t port() const { return port_; }
  // Starts on a fresh free port (or on the previous one after kill()), waits until it answers
  // PING (ready_request/ready_reply). Returns false on failure.
  bool start(bool same_port = false) {
    for (int tries = 0; tries < 5; ++tries) {
      if (!same_port || port_ == 0) port_ = freeLoopbackPort();
      if (launch() && waitReady()) return true;
      kill();
      if (same_port) return false;
    }
    return false;
  }
  // SIGKILL and reap. Idempotent.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool running() const { return pid_ > 0; }
  // SIGSTOP / SIGCONT: the process keeps its sockets open but answers nothing.
  void freeze() { ::kill(pid_, SIGSTOP); }
  void thaw() { ::kill(pid_, SIGCONT); }
  // Probe for readiness: a RESP request and the reply text that shows the server is ready.
  std::string ready_request = "*1\r\n$4\r\nPING\r\n";
  std::string ready_reply = "PONG";

 private:
  bool launch() {
    std::vector<std::string> args{"redis-server"};
    if (!sentinel_conf_.empty()) {
      std::string conf = dir_ + "/sentinel.conf";
      std::ofstream(conf) << "port " << port_ << "\nbind 127.0.0.1\ndir " << dir_ << "\n"
                          << sentinel_conf_;
      args.push_back(conf);
      args.push_back("--sentinel");
    } else {
      args.insert(args.end(), {"--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
                               "--dir", dir_, "--daemonize", "no"});
    }
    args.insert(args.end(), {"--logfile", dir_ + "/redis.log"});
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    return true;
  }
  bool waitReady() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return false;  // exited (port taken, bad option)
      }
      if (exchange(port_, ready_request, ready_reply, std::chrono::milliseconds(200))) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling, bounded
    }
    return false;
  }

  std::vector<std::string> extra_;
  std::string sentinel_conf_;
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace sipwake::redis::testing
