#include "http2/listen_util.h"

#include <asio.hpp>
#include <future>

#include "transport/event_loop.h"

namespace sipwake::http2 {

Status bindAndListen(asio::ip::tcp::acceptor& acceptor, const std::string& host, std::uint16_t port,
                     std::uint16_t& bound_port) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return invalidArgument("bad listen address '" + host + "'");
  asio::ip::tcp::endpoint ep(addr, port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    asio::error_code ignored;
    acceptor.close(ignored);
    return unavailable("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                       ec.message());
  }
  bound_port = acceptor.local_endpoint(ec).port();
  return Status::ok();
}

void runOnLoopAndWait(transport::EventLoop& loop, const std::function<void()>& fn) {
  if (loop.isCurrent() || !loop.running()) {
    fn();
    return;
  }
  std::promise<void> done;
  loop.post([&fn, &done] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

void acceptLoop(asio::ip::tcp::acceptor& acceptor, std::function<bool()> stopped,
                std::function<void(asio::ip::tcp::socket)> serve) {
  if (stopped()) return;
  acceptor.async_accept([&acceptor, stopped = std::move(stopped), serve = std::move(serve)](
                            const asio::error_code& ec, asio::ip::tcp::socket socket) mutable {
    if (stopped()) return;
    if (!ec) serve(std::move(socket));
    acceptLoop(acceptor, std::move(stopped), std::move(serve));
  });
}

}  // namespace sipwake::http2
