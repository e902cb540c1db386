// Test helpers: a blocking loopback socket with bounded waits, and an inbox for received messages.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "../wait_until.h"
#include "transport/event_loop.h"
#include "transport/transport.h"

namespace sipwake::transport::testing {

inline sockaddr_storage toSockaddr(const Address& a, socklen_t* len) {
  sockaddr_storage ss{};
  if (a.v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    std::memcpy(&s6->sin6_addr, a.bytes.data(), 16);
    s6->sin6_port = htons(a.port);
    *len = sizeof(sockaddr_in6);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    std::memcpy(&s4->sin_addr, a.bytes.data(), 4);
    s4->sin_port = htons(a.port);
    *len = sizeof(sockaddr_in);
  }
  return ss;
}

// A plain POSIX socket for playing the peer. Every wait is bounded.
class RawSocket {
 public:
  RawSocket() = default;
  explicit RawSocket(int fd) : fd_(fd) {}
  RawSocket(RawSocket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }

  static RawSocket udp(const Address& bind_to) {
    int fd = ::socket(bind_to.v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    socklen_t len;
    auto ss = toSockaddr(bind_to, &len);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      ::close(fd);
      return RawSocket();
    }
    return RawSocket(fd);
  }
  static RawSocket tcpConnect(const Address& to) {
    int fd = ::socket(to.v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    socklen_t len;
    auto ss = toSockaddr(to, &len);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      ::close(fd);
      return RawSocket();
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return RawSocket(fd);
  }

  Address localAddress() const {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    Address a;
    if (ss.ss_family == AF_INET6) {
      auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
      a.v6 = true;
      std::memcpy(a.bytes.data(), &s6->sin6_addr, 16);
      a.port = ntohs(s6->sin6_port);
    } else {
      auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
      std::memcpy(a.bytes.data(), &s4->sin_addr, 4);
      a.port = ntohs(s4->sin_port);
    }
    return a;
  }

  bool sendTo(const Address& to, const std::string& data) {
    socklen_t len;
    auto ss = toSockaddr(to, &len);
    return ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&ss), len) ==
           static_cast<ssize_t>(data.size());
  }
  bool send(const std::string& data) {
    return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
  }
  // One read: nullopt on timeout, "" on EOF/reset, else the bytes.
  std::optional<std::string> recv(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return std::string();
    return std::string(buf, static_cast<std::size_t>(n));
  }
  // Reads until `want` bytes are buffered (or EOF/timeout); returns what was read.
  std::string recvAtLeast(std::size_t want,
                          std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < want) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto got = recv(left);
      if (!got || got->empty()) break;
      out += *got;
    }
    return out;
  }
  // True if the peer closed the connection within `timeout`.
  bool waitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      auto got = recv(left);
      if (!got) return false;
      if (got->empty()) return true;
    }
  }

 private:
  int fd_ = -1;
};

// Collects messages handed to the TransportLayer handler.
class Inbox {
 public:
  struct Item {
    ReceivedMessage msg;
    bool on_call_id_loop = false;  // the loop LoopPool::forCallId names
    std::size_t loop = SIZE_MAX;   // the loop that ran the handler
  };
  explicit Inbox(LoopPool& pool) : pool_(pool) {}

  void push(ReceivedMessage m) {
    EventLoop* here = EventLoop::current();
    bool owner = here == &pool_.forCallId(m.message.callId());
    std::lock_guard lock(mu_);
    items_.push_back(Item{std::move(m), owner, here != nullptr ? here->index() : SIZE_MAX});
    cv_.notify_all();
  }
  std::optional<Item> pop(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !items_.empty(); })) return std::nullopt;
    Item it = std::move(items_.front());
    items_.pop_front();
    return it;
  }

 private:
  LoopPool& pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> items_;
};

using testing_support::waitUntil;

}  // namespace sipwake::transport::testing
