#include "location/redis_location_store.h"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <atomic>
#include <charconv>
#include <deque>
#include <future>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/log.h"
#include "common/stats.h"
#include "redis/connection.h"
#include "location/redis_support.h"
#include "redis/subscriber.h"
#include "transport/event_loop.h"

namespace sipwake::location {
namespace {

// Applies one change to one AOR hash if its version is still the expected one. See
// docs/architecture.md "Redis store" for the key layout and the argument list. Returns 1 when
// applied, 0 when the AOR changed since the caller read it (nothing written).
const redis::Script& applyScript() {
  static const redis::Script kScript(R"lua(
local key = KEYS[1]
local expected, newv, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local prefix, node, aor = ARGV[4], ARGV[5], ARGV[6]
if (redis.call('HGET', key, 'v') or '') ~= expected then return 0 end
local i = 7
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HDEL', key, ARGV[i]); i = i + 1 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HSET', key, ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local d = ARGV[i]; i = i + 1
  redis.call('HDEL', key, 'p:' .. d)
  if redis.call('GET', prefix .. 'dev:' .. d) == aor then redis.call('DEL', prefix .. 'dev:' .. d) end
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local d, value, dttl = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]); i = i + 3
  local owner = redis.call('GET', prefix .. 'dev:' .. d)
  if owner and owner ~= aor then
    local okey = prefix .. 'aor:' .. owner
    if redis.call('HDEL', okey, 'p:' .. d) == 1 then
      redis.call('HSET', okey, 'v', newv .. '>' .. d)
      redis.call('PUBLISH', prefix .. 'aor-changed', node .. '\n' .. owner)
    end
  end
  redis.call('HSET', key, 'p:' .. d, value)
  redis.call('SET', prefix .. 'dev:' .. d, aor, 'PX', math.max(dttl, 1))
end
if ttl > 0 then
  redis.call('HSET', key, 'v', newv)
  redis.call('PEXPIRE', key, ttl)
else
  redis.call('DEL', key)
end
redis.call('PUBLISH', prefix .. 'aor-changed', node .. '\n' .. aor)
if ARGV[i] ~= '' then
  redis.call('PUBLISH', prefix .. 'registered', node .. '\n' .. aor .. '\n' .. ARGV[i])
end
return 1
)lua");
  return kScript;
}

// Compact value encoding: "<length>:<bytes>" per field, the first field the format version.
void field(std::string& out, std::string_view v) {
  out += std::to_string(v.size());
  out += ':';
  out += v;
}
void field(std::string& out, std::int64_t v) { field(out, std::to_string(v)); }

class FieldReader {
 public:
  explicit FieldReader(std::string_view s) : s_(s) {}
  bool ok() const { return ok_; }
  std::string_view text() {
    std::size_t colon = s_.find(':');
    std::size_t len = 0;
    if (colon == std::string_view::npos ||
        std::from_chars(s_.data(), s_.data() + colon, len).ec != std::errc() ||
        colon + 1 + len > s_.size()) {
      ok_ = false;
      s_ = {};
      return {};
    }
    std::string_view v = s_.substr(colon + 1, len);
    s_.remove_prefix(colon + 1 + len);
    return v;
  }
  std::int64_t number() {
    std::string_view t = text();
    std::int64_t v = 0;
    if (ok_ && std::from_chars(t.data(), t.data() + t.size(), v).ec != std::errc()) ok_ = false;
    return v;
  }

 private:
  std::string_view s_;
  bool ok_ = true;
};

std::int64_t toUnix(SysSeconds t) { return t.time_since_epoch().count(); }
SysSeconds fromUnix(std::int64_t s) { return SysSeconds(std::chrono::seconds(s)); }

std::string encodeBinding(const Binding& b) {
  std::string out;
  field(out, "1");
  field(out, b.contact_uri);
  field(out, b.instance_id);
  field(out, b.reg_id ? std::to_string(*b.reg_id) : std::string());
  field(out, b.call_id);
  field(out, std::int64_t{b.cseq});
  field(out, toUnix(b.expires_at));
  field(out, std::int64_t{b.q_milli});
  std::string path;
  for (std::size_t i = 0; i < b.path.size(); ++i) {
    if (i != 0) path.push_back('\n');
    path.append(b.path[i]);
  }
  field(out, path);
  field(out, b.received.protocol);
  field(out, b.received.source_ip);
  field(out, std::int64_t{b.received.source_port});
  field(out, b.received.local_listener);
  field(out, b.user_agent);
  field(out, toUnix(b.registered_at));
  field(out, b.push ? push::serialize(*b.push) : std::string());
  field(out, b.contact_params);
  return out;
}

std::optional<Binding> decodeBinding(std::string_view aor, std::string_view value) {
  FieldReader r(value);
  if (r.text() != "1") return std::nullopt;
  Binding b;
  b.aor = aor;
  b.contact_uri = r.text();
  b.instance_id = r.text();
  if (std::string_view reg = r.text(); !reg.empty()) {
    std::uint32_t v = 0;
    std::from_chars(reg.data(), reg.data() + reg.size(), v);
    b.reg_id = v;
  }
  b.call_id = r.text();
  b.cseq = static_cast<std::uint32_t>(r.number());
  b.expires_at = fromUnix(r.number());
  b.q_milli = static_cast<int>(r.number());
  std::string_view path = r.text();
  while (!path.empty()) {
    std::size_t nl = path.find('\n');
    b.path.emplace_back(path.substr(0, nl));
    if (nl == std::string_view::npos) break;
    path.remove_prefix(nl + 1);
  }
  b.received.protocol = r.text();
  b.received.source_ip = r.text();
  b.received.source_port = static_cast<std::uint16_t>(r.number());
  b.received.local_listener = r.text();
  b.user_agent = r.text();
  b.registered_at = fromUnix(r.number());
  if (std::string_view pj = r.text(); !pj.empty()) {
    auto pb = push::deserialize(pj);
    if (pb) b.push = std::move(*pb);
  }
  b.contact_params = r.text();
  if (!r.ok()) return std::nullopt;
  return b;
}

std::string encodePush(const PushRecord& p) {
  std::string out;
  field(out, "1");
  field(out, p.identity);
  field(out, p.binding_key);
  field(out, push::serialize(p.binding));
  field(out, toUnix(p.registered_at));
  field(out, toUnix(p.expires_at));
  return out;
}

std::optional<PushRecord> decodePush(std::string_view aor, std::string_view device_key,
                                     std::string_view value) {
  FieldReader r(value);
  if (r.text() != "1") return std::nullopt;
  PushRecord p;
  p.aor = aor;
  p.device_key = device_key;
  p.identity = r.text();
  p.binding_key = r.text();
  auto pb = push::deserialize(r.text());
  p.registered_at = fromUnix(r.number());
  p.expires_at = fromUnix(r.number());
  if (!r.ok() || !pb) return std::nullopt;
  p.binding = std::move(*pb);
  return p;
}

std::string randomNodeId() {
  unsigned char bytes[6];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return "node";
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

std::int64_t millisUntil(SysSeconds at, SysSeconds now) {
  return at > now ? std::chrono::duration_cast<std::chrono::milliseconds>(at - now).count() : 0;
}

}  // namespace

class RedisLocationStore::Impl {
 public:
  Impl(RedisLocationOptions options, BindingIndex& index, PushIndex& push)
      : options_(std::move(options)), index_(index), push_(push) {
    if (options_.node_id.empty()) options_.node_id = randomNodeId();
    changed_channel_ = options_.prefix + "aor-changed";
    registered_channel_ = options_.prefix + "registered";
  }

  ~Impl() { stopRedisOnLoop(loop_, conn_, sub_); }

  Status init() {
    redis::ConnectionOptions o = connectionOptions();
    loop_.start();
    std::promise<Status> made;
    loop_.post([&] {
      auto c = redis::Connection::create(loop_, o);
      if (!c) return made.set_value(c.status());
      auto s = redis::Subscriber::create(loop_, o);
      if (!s) return made.set_value(s.status());
      conn_ = *c;
      sub_ = *s;
      made.set_value(Status::ok());
    });
    return made.get_future().get();
  }

  Result<LoadReport> load(SysSeconds now) {
    auto start = std::chrono::steady_clock::now();
    // Ready when the connection is up AND the subscription is confirmed: the full read comes
    // after both, so a change published meanwhile is either in what it reads or heard.
    auto ready = std::make_shared<RedisReady>();
    auto up_future = ready->up.get_future();
    loop_.post([this, ready] {
      conn_->setStateCallback([this, ready](bool connected, const Status& why) {
        ready->connected = ready->connected || connected;
        ready->check();
        onState(connected, why);
      });
      sub_->setMessageCallback([this](const redis::PubSubMessage& m) { onMessage(m); });
      sub_->setSubscribedCallback([this, ready](std::string_view name, bool) {
        if (name != changed_channel_) return;
        ready->subscribed = true;
        ready->check();
        // A renewed subscription: messages may have been missed while it was down.
        if (subscribed_once_) fullRead(nullptr);
        subscribed_once_ = true;
      });
      sub_->subscribe(changed_channel_);
      sub_->subscribe(registered_channel_);
      conn_->start();
      sub_->start();
    });
    if (up_future.wait_for(options_.load_wait) != std::future_status::ready) {
      std::promise<Status> why;
      loop_.post([&] {
        conn_->setStateCallback([this](bool c, const Status& w) { onState(c, w); });
        why.set_value(conn_->lastError());
      });
      Status last = why.get_future().get();
      return unavailable(fmt::format("cannot reach Redis (store url) within {} ms: {}",
                                     std::chrono::duration_cast<std::chrono::milliseconds>(
                                         options_.load_wait)
                                         .count(),
                                     last.message()));
    }
    std::promise<Status> read;
    loop_.post([&] { fullRead([&read](Status s) { read.set_value(std::move(s)); }); });
    if (Status s = read.get_future().get(); !s) return s;
    LoadReport report;
    report.bindings = index_.size();
    report.aors = index_.aorCount();
    for (const auto& [aor, v] : versions_) {
      (void)v;
      auto snap = index_.get(aor);
      if (!snap) continue;
      for (const Binding& b : *snap) {
        if (b.expires_at <= now) ++report.expired_skipped;
      }
    }
    report.duration = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    loaded_.store(true);
    SW_LOG_INFO("location: loaded {} bindings of {} AORs and {} push bindings from Redis in {} ms "
                "(node {})",
                report.bindings, report.aors, push_.size(), report.duration.count() / 1000,
                options_.node_id);
    return report;
  }

  void enqueue(RegistrationChange change, Executor reply_on, Done done) {
    if (!loaded_.load()) {
      reply_on([done = std::move(done)] {
        done(Status(StatusCode::kFailedPrecondition, "location store used before load()"));
      });
      return;
    }
    loop_.post([this, job = Job{std::move(change), std::move(reply_on), std::move(done), 0,
                                false}]() mutable {
      if (pending_ >= options_.max_pending) {
        return finish(job, unavailable(fmt::format("Redis store: {} registrations pending",
                                                   pending_)));
      }
      ++pending_;
      std::string aor = job.change.aor;
      std::deque<Job>& q = queues_[aor];
      q.push_back(std::move(job));
      if (q.size() == 1) attempt(aor);
    });
  }

  // Every cached AOR holding an expired binding or push record, and no change in flight (that
  // change removes them itself), gets a prune: an empty change through the same script, which
  // deletes the expired fields in Redis and then in the cache. Blocks until every prune is
  // answered; returns the bindings removed. An AOR whose prune fails keeps its expired entries
  // in the cache (never served) for the next sweep to try again.
  std::size_t sweep(SysSeconds now) {
    if (!loaded_.load()) return 0;
    auto result = std::make_shared<std::promise<std::size_t>>();
    auto future = result->get_future();
    loop_.post([this, now, result] {
      struct Tally {
        std::shared_ptr<std::promise<std::size_t>> result;
        std::size_t removed = 0;
        ~Tally() { result->set_value(removed); }
      };
      auto tally = std::make_shared<Tally>();
      tally->result = result;
      std::vector<std::string> due;
      for (const auto& [aor, v] : versions_) {
        (void)v;
        if (!queues_.contains(aor) && holdsExpired(aor, now)) due.push_back(aor);
      }
      for (const std::string& aor : due) {
        RegistrationChange prune;
        prune.aor = aor;
        prune.now = now;
        BindingIndex::Snapshot before = index_.get(aor);
        const std::size_t had = before ? before->size() : 0;
        ++pending_;
        queues_[aor].push_back(Job{std::move(prune), [](std::function<void()> f) { f(); },
                                   [tally, had](Result<std::vector<Binding>> r) {
                                     if (r && had >= r->size()) tally->removed += had - r->size();
                                   },
                                   0, /*prune=*/true});
        attempt(aor);
      }
    });
    return future.get();
  }

  void setObserver(std::function<void(const RegisteredEvent&)> o) { observer_ = std::move(o); }

  RedisLocationOptions options_;
  std::atomic<bool> up_{false};
  std::atomic<std::size_t> full_reads_{0};

 private:
  struct Job {
    RegistrationChange change;
    Executor reply_on;
    Done done;
    int attempts = 0;
    bool prune = false;  // the sweep's: drops expired entries, not counted as a registration
  };

  // Whether the cached AOR holds a binding or push record expired at `now`.
  bool holdsExpired(const std::string& aor, SysSeconds now) const {
    if (BindingIndex::Snapshot b = index_.get(aor)) {
      for (const Binding& x : *b) {
        if (x.expires_at <= now) return true;
      }
    }
    PushIndex::Batch batch(push_);
    for (const PushRecord& p : batch.staged(aor)) {
      if (p.expires_at <= now) return true;
    }
    return false;
  }

  redis::ConnectionOptions connectionOptions() const {
    redis::ConnectionOptions o;
    o.config = options_.redis;
    o.command_timeout = options_.command_timeout;
    o.connect_timeout = options_.connect_timeout;
    o.reconnect_max = std::chrono::milliseconds(500);
    return o;
  }
  std::string aorKey(std::string_view aor) const {
    return options_.prefix + "aor:" + std::string(aor);
  }

  void finish(Job& job, Result<std::vector<Binding>> result) {
    job.reply_on(
        [done = std::move(job.done), result = std::move(result)]() mutable { done(std::move(result)); });
  }

  // The front job of `aor`'s queue is done: reply and start the next one.
  void complete(const std::string& aor, Result<std::vector<Binding>> result) {
    auto it = queues_.find(aor);
    Job job = std::move(it->second.front());
    it->second.pop_front();
    --pending_;
    if (job.prune) {
      if (!result.isOk()) {
        SW_LOG_DEBUG("location: prune of {} failed: {}", aor, result.status().message());
      }
    } else if (result.isOk()) {
      committed_.inc();
    } else if (result.status().code() != StatusCode::kUnavailable) {
      rejected_.inc();
    }
    finish(job, std::move(result));
    if (it->second.empty()) {
      queues_.erase(it);
    } else {
      attempt(aor);
    }
  }

  // Computes the front change of `aor` against the cache and sends it to the script.
  void attempt(const std::string& aor) {
    Job& job = queues_[aor].front();
    const RegistrationChange& change = job.change;
    static const std::vector<Binding> kEmpty;
    BindingIndex::Snapshot cur = index_.get(aor);
    Result<AppliedChange> applied = applyRegistrationChange(cur ? *cur : kEmpty, change);
    if (!applied) return complete(aor, applied.status());

    PushIndex::Batch batch(push_);
    std::vector<PushRecord> old_push = batch.staged(aor);
    for (const PushOp& op : change.push_ops) batch.apply(aor, op);
    std::vector<PushRecord> new_push = batch.staged(aor);
    // Expired push records leave Redis with any change of their AOR (SIP bindings likewise:
    // applyRegistrationChange lists expired ones in removed_keys).
    std::erase_if(new_push, [&](const PushRecord& p) { return p.expires_at <= change.now; });

    SysSeconds latest{};
    for (const Binding& b : applied->bindings) latest = std::max(latest, b.expires_at);
    for (const PushRecord& p : new_push) latest = std::max(latest, p.expires_at);
    const std::int64_t ttl = millisUntil(latest, change.now);

    std::string version = ttl > 0 ? fmt::format("{}:{}", options_.node_id, ++version_seq_) : "";
    auto vit = versions_.find(aor);
    std::vector<std::string> args{vit == versions_.end() ? std::string() : vit->second, version,
                                  std::to_string(ttl), options_.prefix, options_.node_id, aor};
    args.push_back(std::to_string(applied->removed_keys.size()));
    for (const std::string& k : applied->removed_keys) args.push_back("b:" + k);
    args.push_back(std::to_string(applied->written.size()));
    for (const Binding& b : applied->written) {
      args.push_back("b:" + bindingKey(b));
      args.push_back(encodeBinding(b));
    }
    std::vector<std::string> pdel;
    for (const PushRecord& o : old_push) {
      bool kept = std::any_of(new_push.begin(), new_push.end(),
                              [&](const PushRecord& p) { return p.device_key == o.device_key; });
      if (!kept) pdel.push_back(o.device_key);
    }
    if (job.prune && applied->removed_keys.empty() && pdel.empty()) {
      // Nothing expired any more (another node pruned it, seen on re-read): no write.
      return complete(aor, std::move(applied->bindings));
    }
    args.push_back(std::to_string(pdel.size()));
    args.insert(args.end(), pdel.begin(), pdel.end());
    std::vector<const PushRecord*> pset;
    for (const PushRecord& p : new_push) {
      bool same = std::any_of(old_push.begin(), old_push.end(),
                              [&](const PushRecord& o) { return o == p; });
      if (!same) pset.push_back(&p);
    }
    args.push_back(std::to_string(pset.size()));
    for (const PushRecord* p : pset) {
      args.push_back(p->device_key);
      args.push_back(encodePush(*p));
      args.push_back(std::to_string(millisUntil(p->expires_at, change.now)));
    }
    std::string registered;
    for (const PushOp& op : change.push_ops) {
      if (op.kind != PushOp::Kind::kUpsert) continue;
      if (!registered.empty()) registered.push_back(' ');
      registered += op.record.device_key.empty() ? op.record.binding.deviceKey()
                                                 : op.record.device_key;
    }
    args.push_back(registered);

    conn_->eval(applyScript(), {aorKey(aor)}, args,
                [this, aor, version, bindings = std::move(applied->bindings),
                 new_push = std::move(new_push)](Result<redis::Reply> r) mutable {
                  onApplied(aor, version, std::move(bindings), std::move(new_push), std::move(r));
                });
  }

  void onApplied(const std::string& aor, const std::string& version,
                 std::vector<Binding> bindings, std::vector<PushRecord> new_push,
                 Result<redis::Reply> r) {
    if (!r || r->isError()) {
      errors_.inc();
      std::string why = r ? r->str : r.status().message();
      if (!r && r.status().code() == StatusCode::kTimedOut) refresh(aor, nullptr);  // unknown
      return complete(aor, unavailable("Redis store: " + why));
    }
    if (r->integer != 1) {
      // The AOR changed on another node since we cached it: re-read it, apply again.
      conflicts_.inc();
      Job& job = queues_[aor].front();
      if (++job.attempts > kMaxAttempts) {
        return complete(aor, unavailable("Redis store: AOR changed concurrently too often"));
      }
      return refresh(aor, [this, aor](bool ok) {
        if (!ok) return complete(aor, unavailable("Redis store: re-read failed"));
        attempt(aor);
      });
    }
    std::vector<Binding> reply = bindings;
    publish(aor, version, std::move(bindings), std::move(new_push));
    complete(aor, std::move(reply));
  }

  // Makes the cache entry of `aor` what Redis holds / what this node just wrote.
  void publish(const std::string& aor, const std::string& version, std::vector<Binding> bindings,
               std::vector<PushRecord> push) {
    if (version.empty()) {
      versions_.erase(aor);
    } else {
      versions_[aor] = version;
    }
    index_.put(aor, bindings.empty()
                        ? nullptr
                        : std::make_shared<const std::vector<Binding>>(std::move(bindings)));
    PushIndex::Batch batch(push_);
    batch.replaceAor(aor, std::move(push));
    batch.publish(push_);
  }

  // Applies an HGETALL reply of `aor` to the cache.
  void applyHash(const std::string& aor, const redis::Reply& hash) {
    std::string version;
    std::vector<Binding> bindings;
    std::vector<PushRecord> push;
    for (std::size_t i = 0; i + 1 < hash.elements.size(); i += 2) {
      std::string_view f = hash.elements[i].str;
      const std::string& value = hash.elements[i + 1].str;
      if (f == "v") {
        version = value;
      } else if (f.starts_with("b:")) {
        if (auto b = decodeBinding(aor, value)) bindings.push_back(std::move(*b));
      } else if (f.starts_with("p:")) {
        if (auto p = decodePush(aor, f.substr(2), value)) push.push_back(std::move(*p));
      }
    }
    publish(aor, version, std::move(bindings), std::move(push));
  }

  void refresh(const std::string& aor, std::function<void(bool)> then) {
    conn_->command({"HGETALL", aorKey(aor)},
                   [this, aor, then = std::move(then)](Result<redis::Reply> r) {
                     bool ok = r && r->isArray();
                     if (ok) {
                       applyHash(aor, *r);
                     } else {
                       errors_.inc();
                     }
                     if (then) then(ok);
                   });
  }

  // SCAN every AOR key, HGETALL each; AORs cached but gone from Redis are dropped.
  void fullRead(std::function<void(Status)> done) {
    auto seen = std::make_shared<std::unordered_set<std::string>>();
    scanFrom("0", seen, std::move(done));
  }

  void scanFrom(std::string cursor, std::shared_ptr<std::unordered_set<std::string>> seen,
                std::function<void(Status)> done) {
    conn_->command(
        {"SCAN", cursor, "MATCH", options_.prefix + "aor:*", "COUNT", "1000"},
        [this, seen, done = std::move(done)](Result<redis::Reply> r) mutable {
          if (!r || !r->isArray() || r->elements.size() != 2) {
            errors_.inc();
            std::string why = r ? r->str : r.status().message();
            SW_LOG_WARN("location: Redis full read failed: {}", why);
            if (done) done(unavailable("Redis store: full read failed: " + why));
            return;
          }
          const std::size_t strip = options_.prefix.size() + 4;
          for (const redis::Reply& k : r->elements[1].elements) {
            std::string aor = k.str.substr(strip);
            seen->insert(aor);
            refresh(aor, nullptr);
          }
          if (r->elements[0].str != "0") return scanFrom(r->elements[0].str, seen, std::move(done));
          // Replies arrive in order: a PING after the last HGETALL answers after it.
          conn_->command({"PING"}, [this, seen, done = std::move(done)](Result<redis::Reply>) {
            std::vector<std::string> gone;
            for (const auto& [aor, v] : versions_) {
              (void)v;
              if (!seen->contains(aor)) gone.push_back(aor);
            }
            for (const std::string& aor : gone) publish(aor, "", {}, {});
            full_reads_.fetch_add(1);
            if (done) done(Status::ok());
          });
        });
  }

  void onState(bool connected, const Status& why) {
    up_.store(connected);
    up_gauge_.set(connected ? 1 : 0);
    if (!connected) {
      errors_.inc();
      SW_LOG_WARN("location: Redis is down ({}); REGISTERs get 503 until it is back, lookups are "
                  "served from the cache",
                  why.message());
      was_down_ = true;
      return;
    }
    if (!was_down_) return;
    was_down_ = false;
    SW_LOG_INFO("location: Redis is back; re-reading every AOR into the cache");
    fullRead(nullptr);
  }

  void onMessage(const redis::PubSubMessage& m) {
    std::string_view p = m.payload;
    std::size_t nl = p.find('\n');
    if (nl == std::string_view::npos) return;
    std::string_view node = p.substr(0, nl);
    std::string_view rest = p.substr(nl + 1);
    if (m.channel == changed_channel_) {
      if (node == options_.node_id) return;  // our own echo: the cache already has it
      refresh(std::string(rest), nullptr);
      return;
    }
    if (m.channel == registered_channel_ && observer_) {
      RegisteredEvent e;
      e.node_id = node;
      std::size_t nl2 = rest.find('\n');
      e.aor = rest.substr(0, nl2);
      std::string_view keys = nl2 == std::string_view::npos ? "" : rest.substr(nl2 + 1);
      while (!keys.empty()) {
        std::size_t sp = keys.find(' ');
        e.device_keys.emplace_back(keys.substr(0, sp));
        if (sp == std::string_view::npos) break;
        keys.remove_prefix(sp + 1);
      }
      if (e.node_id == options_.node_id) return observer_(e);
      // Another node's: its "aor-changed" came first and its HGETALL is on the way; replies come
      // in sending order, so once this PING is answered the cache holds the new binding.
      conn_->command({"PING"}, [this, e = std::move(e)](Result<redis::Reply>) { observer_(e); });
    }
  }

  // A retry takes two round trips (HGETALL, script) and another node's write of the same AOR
  // one: enough attempts to outlast a burst of its writes, not only a single one.
  static constexpr int kMaxAttempts = 32;

  BindingIndex& index_;
  PushIndex& push_;
  std::string changed_channel_;
  std::string registered_channel_;
  std::atomic<bool> loaded_{false};
  Gauge& up_gauge_ = Stats::global().gauge("store.redis_up");
  Counter& errors_ = Stats::global().counter("store.redis_errors");
  Counter& conflicts_ = Stats::global().counter("store.redis_conflicts");
  Counter& committed_ = Stats::global().counter("location.registrations_committed");
  Counter& rejected_ = Stats::global().counter("location.registrations_rejected");

  // Store loop only:
  std::unordered_map<std::string, std::string> versions_;  // cached AOR -> its version token
  std::unordered_map<std::string, std::deque<Job>> queues_;  // per AOR: front is in flight
  std::size_t pending_ = 0;
  std::uint64_t version_seq_ = 0;
  bool was_down_ = false;
  bool subscribed_once_ = false;
  std::function<void(const RegisteredEvent&)> observer_;

  // Last: stopped in ~Impl before the fields above go.
  std::shared_ptr<redis::Connection> conn_;
  std::shared_ptr<redis::Subscriber> sub_;
  transport::EventLoop loop_{0};
};

Result<std::unique_ptr<RedisLocationStore>> RedisLocationStore::open(
    RedisLocationOptions options) {
  std::unique_ptr<RedisLocationStore> store(new RedisLocationStore());
  store->impl_ = std::make_unique<Impl>(std::move(options), store->index_, store->push_);
  if (Status s = store->impl_->init(); !s) return s;
  return store;
}

RedisLocationStore::~RedisLocationStore() = default;

Result<LoadReport> RedisLocationStore::load(SysSeconds now) { return impl_->load(now); }

void RedisLocationStore::applyRegistration(RegistrationChange change, Executor reply_on,
                                           Done done) {
  impl_->enqueue(std::move(change), std::move(reply_on), std::move(done));
}

std::size_t RedisLocationStore::sweepExpired(SysSeconds now) { return impl_->sweep(now); }

const std::string& RedisLocationStore::nodeId() const { return impl_->options_.node_id; }
bool RedisLocationStore::redisUp() const { return impl_->up_.load(); }
std::size_t RedisLocationStore::fullReads() const { return impl_->full_reads_.load(); }
void RedisLocationStore::setRegisteredObserver(
    std::function<void(const RegisteredEvent&)> observer) {
  impl_->setObserver(std::move(observer));
}

}  // namespace sipwake::location
