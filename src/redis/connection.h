// Connection: a Redis client on one EventLoop — pipelined commands, MULTI/EXEC, scripts, and a
// connection that heals itself (reconnect with bounded exponential backoff, Sentinel failover).
//
// While it is not connected every command fails at once with kUnavailable (nothing is queued),
// so a caller can answer "503, try later" and count it; the state callback tells it when Redis
// goes away and comes back.
//
// Thread: created, used and destroyed on its EventLoop's thread; every callback runs there. Keep
// the shared_ptr while in use; stop() before dropping it ends the pending reconnect timer.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "redis/link.h"
#include "redis/resp.h"
#include "redis/url.h"
#include "transport/event_loop.h"

namespace sipwake::redis {

struct ConnectionOptions {
  RedisConfig config;
  Duration connect_timeout =
      std::chrono::seconds(2);  // TCP + TLS (AUTH/SELECT/ROLE: command timeout)
  Duration command_timeout = std::chrono::seconds(1);  // zero: none
  // A PING every interval; one unanswered by the next tick means the server is gone even when
  // TCP does not say so (host down, frozen process): the connection is dropped and remade.
  Duration health_check_interval = std::chrono::seconds(1);  // zero: none
  Duration reconnect_min = std::chrono::milliseconds(50);
  Duration reconnect_max = std::chrono::seconds(2);  // backoff doubles from min up to this
};

// A Lua script and its SHA-1 (what EVALSHA names).
struct Script {
  explicit Script(std::string source);
  std::string source;
  std::string sha1;  // lowercase hex
};

struct ConnectionStats {
  std::uint64_t commands = 0;               // sent to Redis
  std::uint64_t unavailable = 0;            // failed at once: not connected
  std::uint64_t connects = 0;               // successful (re)connections
  std::uint64_t connect_failures = 0;       // failed attempts
  std::uint64_t noscript_fallbacks = 0;     // EVALSHA answered NOSCRIPT, retried as EVAL
  std::uint64_t failovers = 0;              // +switch-master or READONLY seen (Sentinel mode)
  std::uint64_t health_check_failures = 0;  // PING unanswered for one interval
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // Fails only on a bad TLS set-up (unreadable CA file).
  static Result<std::shared_ptr<Connection>> create(transport::EventLoop& loop,
                                                    ConnectionOptions options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // `connected` flips: true once connected (AUTH/SELECT answered, and PING — or ROLE = master
  // under Sentinel),
  // false when the connection is lost or when the first attempt after start() fails; `why` says
  // what failed. Fires on changes only.
  void setStateCallback(std::function<void(bool connected, const Status& why)> cb) {
    state_cb_ = std::move(cb);
  }
  // Starts connecting (Sentinel: asks the sentinels first). REQUIRES: stopped.
  void start();
  // Closes everything; commands in flight get kUnavailable; no further callbacks of any kind.
  void stop();

  bool connected() const { return state_ == State::kConnected; }
  // The server in use (under Sentinel: the master last resolved), if any.
  std::optional<HostPort> server() const;
  const Status& lastError() const { return last_error_; }
  ConnectionStats stats() const;

  // One command. `cb` gets the reply (a Redis error is a Reply of type kError), kTimedOut after
  // the command timeout, or kUnavailable when not connected / when the connection drops first.
  // Commands are pipelined: replies come back in the order the commands were sent.
  // REQUIRES (command, transaction, eval): not in pub/sub mode.
  void command(std::vector<std::string> args, ReplyCallback cb);
  // MULTI, `commands`, EXEC sent back to back: `cb` gets EXEC's reply (an array with one reply
  // per command), or an error Reply when a command was refused while queuing (EXECABORT, with the
  // first refusal's text). REQUIRES: !commands.empty().
  void transaction(const std::vector<std::vector<std::string>>& commands, ReplyCallback cb);
  // EVALSHA, or EVAL the first time on this connection and after a NOSCRIPT (script cache
  // flushed, server restarted); the script cache is per connection. A NOSCRIPT fallback sends
  // the EVAL after the commands already in flight, so its reply may come after theirs.
  // REQUIRES: `script` outlives the reply (scripts are long-lived constants).
  void eval(const Script& script, const std::vector<std::string>& keys,
            const std::vector<std::string>& args, ReplyCallback cb);

  // Pub/sub mode (used by Subscriber): after each (re)connection every reply goes to `on_push`,
  // and `on_ready` runs (to subscribe again). REQUIRES: before start().
  void setPushMode(std::function<void(Reply)> on_push, std::function<void()> on_ready);
  // In pub/sub mode: sends a (P)(UN)SUBSCRIBE; dropped when not connected (on_ready resends).
  void sendPush(const std::vector<std::string>& args);

 private:
  enum class State : unsigned char { kStopped, kConnecting, kConnected, kWaiting };
  Connection(transport::EventLoop& loop, ConnectionOptions options,
             std::shared_ptr<asio::ssl::context> tls);

  LinkOptions linkOptions(const HostPort& to) const;
  void attempt();
  void askSentinel(std::size_t index, std::uint64_t gen, std::string errors);
  void connectTo(const HostPort& server, std::uint64_t gen, std::optional<std::size_t> sentinel);
  void handshake(std::uint64_t gen, std::optional<std::size_t> sentinel);
  void becomeConnected(std::optional<std::size_t> sentinel);
  void attemptFailed(std::uint64_t gen, const Status& why);
  void lost(const Status& why, bool reconnect_now);
  void scheduleReconnect(Duration delay);
  void watchSentinel(std::size_t index);
  void report(bool connected, const Status& why);
  void sendEval(const Script& script, std::vector<std::string> args, ReplyCallback cb);
  void failFast(ReplyCallback cb);
  ReplyCallback watchReadonly(ReplyCallback cb);
  void closeLinks(const Status& why);
  void armHealthCheck();
  void healthTick(std::uint64_t gen);

  transport::EventLoop& loop_;
  ConnectionOptions options_;
  std::shared_ptr<asio::ssl::context> tls_;
  State state_ = State::kStopped;
  std::uint64_t generation_ = 0;  // bumped per attempt: callbacks of older attempts are ignored
  std::shared_ptr<Link> link_;    // the data connection
  std::shared_ptr<Link> probe_;   // a sentinel being asked for the master
  std::shared_ptr<Link> watch_;   // a sentinel we hear +switch-master from
  std::optional<TimerService::TimerId> reconnect_timer_;
  std::optional<TimerService::TimerId> health_timer_;
  bool ping_outstanding_ = false;
  Duration backoff_;
  Status last_error_ = unavailable("not connected yet");
  std::optional<bool> reported_;
  std::function<void(bool, const Status&)> state_cb_;
  std::function<void(Reply)> push_handler_;
  std::function<void()> on_ready_;
  std::unordered_set<std::string> scripts_;  // SHA-1s loaded on the current connection
  ConnectionStats stats_;
};

}  // namespace sipwake::redis
