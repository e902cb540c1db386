#include "redis/connection.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>

#include "transport/tls_client.h"

namespace sipwake::redis {
namespace {

std::string sha1Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SIPWAKE_CHECK(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha1(), nullptr) == 1);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

bool startsWith(const std::string& s, std::string_view prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

Script::Script(std::string src) : source(std::move(src)), sha1(sha1Hex(source)) {}

Result<std::shared_ptr<Connection>> Connection::create(transport::EventLoop& loop,
                                                       ConnectionOptions options) {
  std::shared_ptr<asio::ssl::context> tls;
  if (options.config.tls) {
    auto ctx = transport::makeVerifyingClientTlsContext(options.config.tls_ca_file);
    if (!ctx) return ctx.status();
    tls = std::move(*ctx);
  }
  SIPWAKE_CHECK(!options.config.hosts.empty());
  return std::shared_ptr<Connection>(new Connection(loop, std::move(options), std::move(tls)));
}

Connection::Connection(transport::EventLoop& loop, ConnectionOptions options,
                       std::shared_ptr<asio::ssl::context> tls)
    : loop_(loop),
      options_(std::move(options)),
      tls_(std::move(tls)),
      backoff_(options_.reconnect_min) {}

Connection::~Connection() {
  if (reconnect_timer_) loop_.timers().cancel(*reconnect_timer_);
  closeLinks(unavailable("redis client destroyed"));
}

LinkOptions Connection::linkOptions(const HostPort& to) const {
  LinkOptions lo;
  lo.server = to;
  lo.tls = tls_;
  lo.connect_timeout = options_.connect_timeout;
  lo.command_timeout = options_.command_timeout;
  return lo;
}

std::optional<HostPort> Connection::server() const {
  if (link_) return link_->server();
  return std::nullopt;
}

ConnectionStats Connection::stats() const { return stats_; }

void Connection::start() {
  SIPWAKE_CHECK(state_ == State::kStopped);
  backoff_ = options_.reconnect_min;
  attempt();
}

void Connection::stop() {
  state_ = State::kStopped;
  ++generation_;
  if (reconnect_timer_) {
    loop_.timers().cancel(*reconnect_timer_);
    reconnect_timer_.reset();
  }
  closeLinks(unavailable("redis client stopped"));
}

void Connection::closeLinks(const Status& why) {
  if (health_timer_) {
    loop_.timers().cancel(*health_timer_);
    health_timer_.reset();
  }
  // Moved out first: a failed command's callback may call back into this object.
  auto link = std::move(link_);
  auto probe = std::move(probe_);
  auto watch = std::move(watch_);
  if (probe) probe->close(why);
  if (watch) watch->close(why);
  if (link) link->close(why);
}

void Connection::attempt() {
  reconnect_timer_.reset();
  state_ = State::kConnecting;
  std::uint64_t gen = ++generation_;
  if (options_.config.sentinel()) {
    askSentinel(0, gen, "");
  } else {
    connectTo(options_.config.hosts.front(), gen, std::nullopt);
  }
}

void Connection::askSentinel(std::size_t index, std::uint64_t gen, std::string errors) {
  const auto& sentinels = options_.config.hosts;
  const std::string& master = options_.config.sentinel_master;
  if (index == sentinels.size()) {
    return attemptFailed(
        gen, unavailable("no sentinel gave the address of master '" + master + "': " + errors));
  }
  auto probe = Link::create(loop_, linkOptions(sentinels[index]));
  probe_ = probe;
  std::weak_ptr<Connection> weak = weak_from_this();
  auto next = [weak, index, gen, errors](const std::string& why) {
    auto self = weak.lock();
    if (!self || gen != self->generation_) return;
    if (self->probe_) self->probe_->close(unavailable("sentinel probe done"));
    self->probe_.reset();
    self->askSentinel(index + 1, gen, errors + (errors.empty() ? "" : "; ") + why);
  };
  probe->connect(
      [weak, probe, gen, index, next, master](Status st) {
        auto self = weak.lock();
        if (!self || gen != self->generation_) return;
        if (!st.isOk()) return next(st.message());
        probe->send({"SENTINEL", "get-master-addr-by-name", master}, [weak, probe, gen, index, next,
                                                                      master](Result<Reply> r) {
          auto self = weak.lock();
          if (!self || gen != self->generation_) return;
          const std::string where = toString(probe->server());
          if (!r) return next(r.status().message());
          const Reply& rep = *r;
          if (rep.isError()) return next(where + ": " + rep.str);
          unsigned port = 0;
          if (!rep.isArray() || rep.elements.size() != 2 ||
              std::from_chars(rep.elements[1].str.data(),
                              rep.elements[1].str.data() + rep.elements[1].str.size(), port)
                      .ec != std::errc() ||
              port == 0 || port > 65535) {
            return next(where + " does not know master '" + master + "'");
          }
          HostPort hp{rep.elements[0].str, static_cast<std::uint16_t>(port)};
          probe->close(unavailable("sentinel probe done"));
          self->probe_.reset();
          self->connectTo(hp, gen, index);
        });
      },
      [](Status) {});
}

void Connection::connectTo(const HostPort& server, std::uint64_t gen,
                           std::optional<std::size_t> sentinel) {
  auto link = Link::create(loop_, linkOptions(server));
  link_ = link;
  std::weak_ptr<Connection> weak = weak_from_this();
  link->connect(
      [weak, gen, sentinel](Status st) {
        auto self = weak.lock();
        if (!self || gen != self->generation_) return;
        if (!st.isOk()) return self->attemptFailed(gen, st);
        self->handshake(gen, sentinel);
      },
      [weak, gen](Status why) {
        auto self = weak.lock();
        if (!self || gen != self->generation_) return;
        self->lost(why, false);
      });
}

void Connection::handshake(std::uint64_t gen, std::optional<std::size_t> sentinel) {
  const RedisConfig& cfg = options_.config;
  std::vector<std::vector<std::string>> cmds;
  if (!cfg.password.empty()) {
    if (cfg.user.empty()) {
      cmds.push_back({"AUTH", cfg.password});
    } else {
      cmds.push_back({"AUTH", cfg.user, cfg.password});
    }
  }
  if (cfg.db != 0) cmds.push_back({"SELECT", std::to_string(cfg.db)});
  // ROLE under Sentinel, else PING: "connected" means the server has answered, not only that
  // TCP accepted (a frozen server's kernel still does).
  cmds.push_back({sentinel ? "ROLE" : "PING"});
  std::weak_ptr<Connection> weak = weak_from_this();
  const std::string where = toString(link_->server());
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    const bool last = i + 1 == cmds.size();
    std::string name = cmds[i][0];
    link_->send(cmds[i], [weak, gen, sentinel, last, name, where](Result<Reply> r) {
      auto self = weak.lock();
      if (!self || gen != self->generation_ || self->state_ != State::kConnecting) return;
      if (!r)
        return self->attemptFailed(
            gen, Status(r.status().code(), name + " on " + where + ": " + r.status().message()));
      if (r->isError())
        return self->attemptFailed(gen, unavailable(name + " on " + where + " refused: " + r->str));
      if (name == "ROLE" &&
          (!r->isArray() || r->elements.empty() || !r->elements[0].is("master"))) {
        return self->attemptFailed(
            gen,
            unavailable(where + " is not the master (ROLE " +
                        (r->isArray() && !r->elements.empty() ? r->elements[0].str : "?") + ")"));
      }
      if (last) self->becomeConnected(sentinel);
    });
  }
}

void Connection::becomeConnected(std::optional<std::size_t> sentinel) {
  state_ = State::kConnected;
  backoff_ = options_.reconnect_min;
  scripts_.clear();
  ++stats_.connects;
  last_error_ = Status::ok();
  if (sentinel) watchSentinel(*sentinel);
  if (push_handler_) {
    std::weak_ptr<Connection> weak = weak_from_this();
    link_->enterPushMode([weak](Reply r) {
      auto self = weak.lock();
      if (!self) return;
      self->ping_outstanding_ = false;  // anything from the server shows it is alive
      self->push_handler_(std::move(r));
    });
    if (on_ready_) on_ready_();
  }
  ping_outstanding_ = false;
  armHealthCheck();
  report(true, Status::ok());
}

void Connection::armHealthCheck() {
  if (options_.health_check_interval.count() <= 0) return;
  std::weak_ptr<Connection> weak = weak_from_this();
  const std::uint64_t gen = generation_;
  health_timer_ = loop_.timers().schedule(options_.health_check_interval, [weak, gen] {
    if (auto self = weak.lock()) self->healthTick(gen);
  });
}

void Connection::healthTick(std::uint64_t gen) {
  health_timer_.reset();
  if (gen != generation_ || state_ != State::kConnected) return;
  if (ping_outstanding_) {
    ++stats_.health_check_failures;
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.health_check_interval);
    return lost(unavailable("redis " + toString(link_->server()) + " did not answer PING within " +
                            std::to_string(ms.count()) + " ms"),
                false);
  }
  ping_outstanding_ = true;
  if (push_handler_) {
    link_->sendPush({"PING"});
  } else {
    std::weak_ptr<Connection> weak = weak_from_this();
    link_->send({"PING"}, [weak, gen](Result<Reply> r) {
      auto self = weak.lock();
      if (self && gen == self->generation_ && r) self->ping_outstanding_ = false;
    });
  }
  armHealthCheck();
}

void Connection::watchSentinel(std::size_t index) {
  auto watch = Link::create(loop_, linkOptions(options_.config.hosts[index]));
  watch_ = watch;
  std::weak_ptr<Connection> weak = weak_from_this();
  const std::uint64_t gen = generation_;
  const std::string prefix = options_.config.sentinel_master + " ";
  watch->connect(
      [weak, watch, gen, prefix](Status st) {
        auto self = weak.lock();
        if (!self || gen != self->generation_ || !st.isOk()) return;
        watch->enterPushMode([weak, gen, prefix](Reply msg) {
          auto self = weak.lock();
          if (!self || gen != self->generation_) return;
          if (msg.isArray() && msg.elements.size() == 3 && msg.elements[0].is("message") &&
              msg.elements[1].is("+switch-master") && startsWith(msg.elements[2].str, prefix)) {
            ++self->stats_.failovers;
            self->lost(unavailable("sentinel: +switch-master " + msg.elements[2].str), true);
          }
        });
        watch->sendPush({"SUBSCRIBE", "+switch-master"});
      },
      // A sentinel that goes away stops the watch; the next reconnection starts a new one.
      [](Status) {});
}

void Connection::attemptFailed(std::uint64_t gen, const Status& why) {
  if (gen != generation_) return;
  ++stats_.connect_failures;
  ++generation_;
  closeLinks(why);
  state_ = State::kWaiting;
  last_error_ = why;
  report(false, why);
  scheduleReconnect(backoff_);
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
}

void Connection::lost(const Status& why, bool reconnect_now) {
  ++generation_;
  closeLinks(why);
  state_ = State::kWaiting;
  last_error_ = why;
  report(false, why);
  scheduleReconnect(reconnect_now ? Duration::zero() : backoff_);
}

void Connection::scheduleReconnect(Duration delay) {
  if (state_ == State::kStopped) return;
  std::weak_ptr<Connection> weak = weak_from_this();
  reconnect_timer_ = loop_.timers().schedule(delay, [weak] {
    if (auto self = weak.lock()) {
      if (self->state_ == State::kWaiting) self->attempt();
    }
  });
}

void Connection::report(bool connected, const Status& why) {
  if (reported_ == connected) return;
  reported_ = connected;
  if (state_cb_) state_cb_(connected, why);
}

void Connection::failFast(ReplyCallback cb) {
  ++stats_.unavailable;
  loop_.post([cb = std::move(cb), why = last_error_.message()] {
    cb(unavailable("redis not connected: " + why));
  });
}

ReplyCallback Connection::watchReadonly(ReplyCallback cb) {
  if (!options_.config.sentinel()) return cb;
  // A master demoted under us answers writes with READONLY: find the new one.
  std::weak_ptr<Connection> weak = weak_from_this();
  const std::uint64_t gen = generation_;
  return [weak, gen, cb = std::move(cb)](Result<Reply> r) {
    if (r && r->isError() && startsWith(r->str, "READONLY")) {
      if (auto self = weak.lock(); self && gen == self->generation_) {
        ++self->stats_.failovers;
        self->lost(unavailable("redis master became a replica: " + r->str), true);
      }
    }
    cb(std::move(r));
  };
}

void Connection::command(std::vector<std::string> args, ReplyCallback cb) {
  SIPWAKE_CHECK(!push_handler_);
  if (state_ != State::kConnected) return failFast(std::move(cb));
  ++stats_.commands;
  link_->send(args, watchReadonly(std::move(cb)));
}

void Connection::transaction(const std::vector<std::vector<std::string>>& commands,
                             ReplyCallback cb) {
  SIPWAKE_CHECK(!commands.empty());
  SIPWAKE_CHECK(!push_handler_);
  if (state_ != State::kConnected) return failFast(std::move(cb));
  stats_.commands += commands.size() + 2;
  auto refusal = std::make_shared<std::string>();
  auto note = [refusal](Result<Reply> r) {
    if (r && r->isError() && refusal->empty()) *refusal = r->str;
  };
  link_->send({"MULTI"}, note);
  for (const auto& c : commands) link_->send(c, note);
  link_->send({"EXEC"}, watchReadonly([refusal, cb = std::move(cb)](Result<Reply> r) {
                if (r && r->isError() && !refusal->empty()) {
                  return cb(Reply::error(r->str + " (" + *refusal + ")"));
                }
                cb(std::move(r));
              }));
}

void Connection::eval(const Script& script, const std::vector<std::string>& keys,
                      const std::vector<std::string>& args, ReplyCallback cb) {
  SIPWAKE_CHECK(!push_handler_);
  if (state_ != State::kConnected) return failFast(std::move(cb));
  std::vector<std::string> tail;
  tail.reserve(keys.size() + args.size() + 1);
  tail.push_back(std::to_string(keys.size()));
  tail.insert(tail.end(), keys.begin(), keys.end());
  tail.insert(tail.end(), args.begin(), args.end());
  if (!scripts_.count(script.sha1)) return sendEval(script, std::move(tail), std::move(cb));
  std::vector<std::string> cmd;
  cmd.reserve(tail.size() + 2);
  cmd.push_back("EVALSHA");
  cmd.push_back(script.sha1);
  cmd.insert(cmd.end(), tail.begin(), tail.end());
  ++stats_.commands;
  std::weak_ptr<Connection> weak = weak_from_this();
  const std::uint64_t gen = generation_;
  link_->send(cmd, watchReadonly([weak, gen, script = &script, tail = std::move(tail),
                                  cb = std::move(cb)](Result<Reply> r) mutable {
                auto self = weak.lock();
                if (self && gen == self->generation_ && self->state_ == State::kConnected && r &&
                    r->isError() && startsWith(r->str, "NOSCRIPT")) {
                  ++self->stats_.noscript_fallbacks;
                  self->scripts_.erase(script->sha1);
                  return self->sendEval(*script, std::move(tail), std::move(cb));
                }
                cb(std::move(r));
              }));
}

void Connection::sendEval(const Script& script, std::vector<std::string> tail, ReplyCallback cb) {
  std::vector<std::string> cmd;
  cmd.reserve(tail.size() + 2);
  cmd.push_back("EVAL");
  cmd.push_back(script.source);
  cmd.insert(cmd.end(), std::make_move_iterator(tail.begin()), std::make_move_iterator(tail.end()));
  ++stats_.commands;
  std::weak_ptr<Connection> weak = weak_from_this();
  const std::uint64_t gen = generation_;
  link_->send(cmd,
              watchReadonly([weak, gen, sha = script.sha1, cb = std::move(cb)](Result<Reply> r) {
                // EVAL loads the script whenever it compiles; a compile error just makes the next
                // call EVAL.
                if (r) {
                  if (auto self = weak.lock(); self && gen == self->generation_)
                    self->scripts_.insert(sha);
                }
                cb(std::move(r));
              }));
}

void Connection::setPushMode(std::function<void(Reply)> on_push, std::function<void()> on_ready) {
  SIPWAKE_CHECK(state_ == State::kStopped);
  push_handler_ = std::move(on_push);
  on_ready_ = std::move(on_ready);
}

void Connection::sendPush(const std::vector<std::string>& args) {
  if (state_ == State::kConnected) link_->sendPush(args);
}

}  // namespace sipwake::redis
