// Listener plumbing shared by Http2Server and Http1Server.
#pragma once

#include <algorithm>
#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace sipwake::transport {
class EventLoop;
}

namespace sipwake::http2 {

// Opens, binds (SO_REUSEADDR) and listens `acceptor` on host:port (port 0: any free one) and
// sets `bound_port`. On error the acceptor is closed and the status names the address.
Status bindAndListen(asio::ip::tcp::acceptor& acceptor, const std::string& host, std::uint16_t port,
                     std::uint16_t& bound_port);

// Runs `fn` on `loop` and returns once it has run; runs it here when called on the loop or when
// the loop is not running.
void runOnLoopAndWait(transport::EventLoop& loop, const std::function<void()>& fn);

// Accepts on `acceptor` until `stopped()` says so, handing each accepted socket to `serve`, on
// the acceptor's loop. The callables keep their owner (and so the acceptor) alive.
void acceptLoop(asio::ip::tcp::acceptor& acceptor, std::function<bool()> stopped,
                std::function<void(asio::ip::tcp::socket)> serve);

// The open connections of a server, on its loop: each removes itself when it closes (through
// remover(), safe after the set is gone); closeAll() closes the rest at stop.
template <typename Conn>
class ConnectionSet : public std::enable_shared_from_this<ConnectionSet<Conn>> {
 public:
  std::function<void(Conn*)> remover() {
    std::weak_ptr<ConnectionSet> weak = this->shared_from_this();
    return [weak](Conn* c) {
      if (auto set = weak.lock()) {
        auto& v = set->conns_;
        v.erase(std::remove_if(v.begin(), v.end(), [c](auto& p) { return p.get() == c; }), v.end());
      }
    };
  }
  void add(std::shared_ptr<Conn> conn) { conns_.push_back(std::move(conn)); }
  std::size_t size() const { return conns_.size(); }
  void closeAll() {
    auto conns = std::move(conns_);
    conns_.clear();
    for (auto& c : conns) c->close();
  }

 private:
  std::vector<std::shared_ptr<Conn>> conns_;
};

}  // namespace sipwake::http2
