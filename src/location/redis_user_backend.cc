// UserBackend on Redis. Key layout and protocol: user_store.h and docs/architecture.md
// "Redis store".
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <tuple>

#include "common/log.h"
#include "location/redis_support.h"
#include "location/user_backend.h"
#include "redis/connection.h"
#include "redis/subscriber.h"
#include "transport/event_loop.h"

namespace sipwake::location {
namespace {

// KEYS[1] = the domain set; ARGV = hash key prefix, channel, mode, then (domain, user, value)
// per row. Checks every row first (mode 'add': absent; 'replace', 'remove': present; 'upsert':
// nothing), returning the 1-based index of the first row that fails without writing anything;
// else writes every row, keeps the domain set true, PUBLISHes the number of rows and returns 0.
const redis::Script& writeScript() {
  static const redis::Script kScript(R"lua(
local domains, hprefix, channel, mode = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local n = (#ARGV - 3) / 3
if mode ~= 'upsert' then
  for r = 0, n - 1 do
    local exists = redis.call('HEXISTS', hprefix .. ARGV[4 + 3 * r], ARGV[5 + 3 * r]) == 1
    if exists == (mode == 'add') then return r + 1 end
  end
end
for r = 0, n - 1 do
  local d, u, v = ARGV[4 + 3 * r], ARGV[5 + 3 * r], ARGV[6 + 3 * r]
  if mode == 'remove' then
    redis.call('HDEL', hprefix .. d, u)
    if redis.call('EXISTS', hprefix .. d) == 0 then redis.call('SREM', domains, d) end
  else
    redis.call('HSET', hprefix .. d, u, v)
    redis.call('SADD', domains, d)
  end
end
redis.call('PUBLISH', channel, tostring(n))
return 0
)lua");
  return kScript;
}

// KEYS[1] = the domain set; ARGV[1] = hash key prefix. Returns {domain, {user, value, ...}, ...}
// read atomically.
const redis::Script& readScript() {
  static const redis::Script kScript(R"lua(
local out = {}
for _, d in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = d
  out[#out + 1] = redis.call('HGETALL', ARGV[1] .. d)
end
return out
)lua");
  return kScript;
}

const char* modeName(UserBackend::Mode mode) {
  switch (mode) {
    case UserBackend::Mode::kAdd:
      return "add";
    case UserBackend::Mode::kUpsert:
      return "upsert";
    case UserBackend::Mode::kReplace:
      return "replace";
    case UserBackend::Mode::kRemove:
      return "remove";
  }
  return "";
}

Status replyError(const Result<redis::Reply>& r, std::string_view what) {
  if (!r) return Status(r.status().code(), fmt::format("Redis {}: {}", what, r.status().message()));
  return Status(StatusCode::kInternal, fmt::format("Redis {}: {}", what, r->str));
}

class RedisUserBackend final : public UserBackend {
 public:
  explicit RedisUserBackend(RedisUserOptions options)
      : options_(std::move(options)),
        domains_key_(options_.prefix + "user-domains"),
        hash_prefix_(options_.prefix + "users:"),
        channel_(options_.prefix + "users-changed") {}

  ~RedisUserBackend() override { stopRedisOnLoop(loop_, conn_, sub_); }

  Status init() {
    redis::ConnectionOptions o;
    o.config = options_.redis;
    o.command_timeout = options_.command_timeout;
    o.connect_timeout = options_.connect_timeout;
    o.reconnect_max = std::chrono::milliseconds(500);
    loop_.start();
    auto ready = std::make_shared<RedisReady>();
    ready->subscribed = !options_.follow_changes;
    auto up = ready->up.get_future();
    std::promise<Status> made;
    loop_.post([&, ready] {
      auto c = redis::Connection::create(loop_, o);
      if (!c) return made.set_value(c.status());
      conn_ = *c;
      conn_->setStateCallback([this, ready](bool connected, const Status& why) {
        ready->connected = ready->connected || connected;
        ready->check();
        if (!connected) SW_LOG_WARN("users: Redis unreachable: {}", why.message());
      });
      if (options_.follow_changes) {
        auto s = redis::Subscriber::create(loop_, o);
        if (!s) return made.set_value(s.status());
        sub_ = *s;
        sub_->setMessageCallback([this](const redis::PubSubMessage&) { readAsync(); });
        sub_->setSubscribedCallback([this, ready](std::string_view, bool) {
          ready->subscribed = true;
          ready->check();
          // A renewed subscription: changes may have been published while it was down.
          if (subscribed_once_) readAsync();
          subscribed_once_ = true;
        });
        sub_->subscribe(channel_);
        sub_->start();
      }
      conn_->start();
      made.set_value(Status::ok());
    });
    if (Status s = made.get_future().get(); !s) return s;
    if (up.wait_for(options_.load_wait) == std::future_status::ready) return Status::ok();
    std::promise<Status> why;
    loop_.post([&] { why.set_value(conn_->lastError()); });
    return unavailable(fmt::format(
        "cannot reach Redis (store url) for the users within {} ms: {}",
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.load_wait).count(),
        why.get_future().get().message()));
  }

  Status write(Mode mode, const std::vector<UserCredentials>& rows,
               std::size_t* bad_index) override {
    if (rows.empty()) return Status::ok();
    std::vector<std::string> args{hash_prefix_, channel_, modeName(mode)};
    args.reserve(3 + 3 * rows.size());
    for (const UserCredentials& u : rows) {
      args.push_back(u.domain);
      args.push_back(u.user);
      args.push_back(mode == Mode::kRemove ? std::string() : u.ha1_md5 + ":" + u.ha1_sha256);
    }
    std::promise<Result<redis::Reply>> reply;
    loop_.post([&] {
      conn_->eval(writeScript(), {domains_key_}, args,
                  [&reply](Result<redis::Reply> r) { reply.set_value(std::move(r)); });
    });
    Result<redis::Reply> r = reply.get_future().get();
    if (!r || r->type != redis::Reply::Type::kInteger) return replyError(r, "write users");
    if (r->integer == 0) return Status::ok();
    const auto index = static_cast<std::size_t>(r->integer - 1);
    if (index >= rows.size()) return replyError(r, "write users: bad row index");
    if (bad_index != nullptr) *bad_index = index;
    const UserCredentials& u = rows[index];
    if (mode == Mode::kAdd) {
      return {StatusCode::kAlreadyExists,
              fmt::format("user {}@{} already exists", u.user, u.domain)};
    }
    return notFound(fmt::format("no user {}@{}", u.user, u.domain));
  }

  Result<Read> readAll() override {
    std::promise<Result<Read>> done;
    loop_.post([&] { read([&done](Result<Read> r) { done.set_value(std::move(r)); }); });
    return done.get_future().get();
  }

  void setChangeListener(std::function<void(Read)> on_read) override {
    std::promise<void> set;
    loop_.post([&] {
      on_read_ = std::move(on_read);
      set.set_value();
    });
    set.get_future().wait();
  }

 private:
  // On the loop: one read script; its sequence number is taken when it is sent.
  void read(std::function<void(Result<Read>)> done) {
    const std::uint64_t sequence = ++sequence_;
    conn_->eval(readScript(), {domains_key_}, {hash_prefix_},
                [sequence, done = std::move(done)](Result<redis::Reply> r) {
                  if (!r || !r->isArray()) return done(replyError(r, "read users"));
                  Read out;
                  out.sequence = sequence;
                  const auto& e = r->elements;
                  for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
                    const std::string& domain = e[i].str;
                    const auto& fields = e[i + 1].elements;
                    for (std::size_t j = 0; j + 1 < fields.size(); j += 2) {
                      const std::string& value = fields[j + 1].str;
                      std::size_t colon = value.find(':');
                      if (colon == std::string::npos) {
                        SW_LOG_WARN("users: skipping {}@{} in Redis: bad value", fields[j].str,
                                    domain);
                        continue;
                      }
                      out.users.push_back(
                          {fields[j].str, domain, value.substr(0, colon), value.substr(colon + 1)});
                    }
                  }
                  std::sort(out.users.begin(), out.users.end(), [](const auto& a, const auto& b) {
                    return std::tie(a.domain, a.user) < std::tie(b.domain, b.user);
                  });
                  done(std::move(out));
                });
  }

  // On the loop: a change was published (or may have been missed): read again and hand the
  // result to the listener. A failed read leaves the copy as it is (the periodic reload or the
  // next change retries).
  void readAsync() {
    if (!on_read_) return;
    read([this](Result<Read> r) {
      if (!r) {
        SW_LOG_WARN("users: re-read after a change failed: {}", r.status().message());
        return;
      }
      on_read_(std::move(*r));
    });
  }

  const RedisUserOptions options_;
  const std::string domains_key_, hash_prefix_, channel_;
  transport::EventLoop loop_{0};
  std::shared_ptr<redis::Connection> conn_;
  std::shared_ptr<redis::Subscriber> sub_;
  std::function<void(Read)> on_read_;
  bool subscribed_once_ = false;
  std::uint64_t sequence_ = 0;  // loop thread only
};

}  // namespace

Result<std::unique_ptr<UserBackend>> openRedisUserBackend(const RedisUserOptions& options) {
  auto backend = std::make_unique<RedisUserBackend>(options);
  if (Status s = backend->init(); !s) return s;
  return std::unique_ptr<UserBackend>(std::move(backend));
}

}  // namespace sipwake::location
