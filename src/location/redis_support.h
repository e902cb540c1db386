// Pieces the Redis-backed stores (bindings, users) share: each runs a Connection and a
// Subscriber on an EventLoop of its own. Private to the location library.
#pragma once

#include <future>
#include <memory>

#include "redis/connection.h"
#include "redis/subscriber.h"
#include "transport/event_loop.h"

namespace sipwake::location {

// Set on the loop as the connection comes up and the subscription is confirmed; `up` is
// fulfilled once both are true. A store reads Redis only after that: a change published
// meanwhile is either in what it reads or heard.
struct RedisReady {
  bool connected = false, subscribed = false, fulfilled = false;
  std::promise<void> up;
  void check() {
    if (fulfilled || !connected || !subscribed) return;
    fulfilled = true;
    up.set_value();
  }
};

// Stops and drops `conn` and `sub` on `loop` (their thread; replies in flight get kUnavailable),
// then stops the loop. REQUIRES: not called on `loop`.
inline void stopRedisOnLoop(transport::EventLoop& loop, std::shared_ptr<redis::Connection>& conn,
                            std::shared_ptr<redis::Subscriber>& sub) {
  if (!loop.running()) return;
  std::promise<void> stopped;
  loop.post([&] {
    if (conn) conn->stop();
    if (sub) sub->stop();
    conn.reset();
    sub.reset();
    stopped.set_value();
  });
  stopped.get_future().wait();
  loop.stop();
}

}  // namespace sipwake::location
