// Listener plumbing shared by Http2Server and Http1Server.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <asio/ip/tcp.hpp>

#include "common/status.h"

namespace sipwake::transport {
class EventLoop;
}

namespace sipwake::http2 {

// Opens, binds (SO_REUSEADDR) and listens `acceptor` on host:port (port 0: any free one) and
// sets `bound_port`. On error the acceptor is closed and the status names the address.
Status bindAndListen(asio::ip::tcp::acceptor& acceptor, const std::string& host,
                     std::uint16_t port, std::uint16_t& bound_port);

// Runs `fn` on `loop` and returns once it has run; runs it here when called on the loop or when
// the loop is not running.
void runOnLoopAndWait(transport::EventLoop& loop, const std::function<void()>& fn);

}  // namespace sipwake::http2
