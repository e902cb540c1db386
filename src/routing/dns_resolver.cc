#include "routing/dns_resolver.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <mutex>

#include "transport/response_routing.h"

namespace sipwake::routing {

using transport::Protocol;

struct CaresResolver::Watch {
  explicit Watch(asio::io_context& io, ares_socket_t f) : sd(io, f), fd(f) {}
  asio::posix::stream_descriptor sd;  // released (never closed) by us: c-ares owns the fd
  ares_socket_t fd;
  bool want_read = false;
  bool want_write = false;
  bool reading = false;
  bool writing = false;
  bool closed = false;
};

struct CaresResolver::Job {
  std::string host;  // the name being resolved (maddr or URI host), no brackets
  bool sips = false;
  bool has_port = false;
  std::uint16_t port = 0;
  bool has_transport = false;
  Protocol protocol = Protocol::kUdp;  // from the URI (transport param / sips / UDP)
  Done done;
  bool finished = false;

  struct Srv {
    std::string name;
    Protocol protocol;
  };
  std::vector<Srv> srv_names;  // SRV owners still to try, in order
  std::size_t next_srv = 0;

  struct Host {
    std::string name;
    std::uint16_t port;
    Protocol protocol;
  };
  std::vector<Host> targets;  // A/AAAA owners still to try, in order
  std::size_t next_target = 0;
};

namespace {

std::string_view srvPrefix(Protocol p) {
  switch (p) {
    case Protocol::kUdp:
      return "_sip._udp.";
    case Protocol::kTcp:
      return "_sip._tcp.";
    case Protocol::kTls:
      return "_sips._tcp.";
  }
  return "_sip._udp.";
}

bool equalsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

Status dnsError(int status, const std::string& name) {
  if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
    return notFound("DNS: no records for " + name);
  }
  return unavailable("DNS: " + std::string(ares_strerror(status)) + " for " + name);
}

}  // namespace

Result<std::unique_ptr<CaresResolver>> CaresResolver::create(asio::io_context& io,
                                                             Options options) {
  static std::once_flag once;
  static int init_status = ARES_SUCCESS;
  std::call_once(once, [] { init_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (init_status != ARES_SUCCESS) {
    return internalError("c-ares init: " + std::string(ares_strerror(init_status)));
  }
  std::unique_ptr<CaresResolver> r(new CaresResolver(io, std::move(options)));
  ares_options opts{};
  opts.timeout = static_cast<int>(std::max<std::int64_t>(1, r->options_.timeout.count()));
  opts.tries = std::max(1, r->options_.tries);
  opts.sock_state_cb = &CaresResolver::onSockState;
  opts.sock_state_cb_data = r.get();
  int rc = ares_init_options(&r->channel_, &opts,
                             ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB);
  if (rc != ARES_SUCCESS) {
    r->channel_ = nullptr;
    return internalError("c-ares init: " + std::string(ares_strerror(rc)));
  }
  if (!r->options_.servers.empty()) {
    std::string csv;
    for (const auto& s : r->options_.servers) {
      if (!csv.empty()) csv.push_back(',');
      csv += s;
    }
    rc = ares_set_servers_ports_csv(r->channel_, csv.c_str());
    if (rc != ARES_SUCCESS) {
      return invalidArgument("DNS servers \"" + csv + "\": " + ares_strerror(rc));
    }
  }
  return r;
}

CaresResolver::CaresResolver(asio::io_context& io, Options options)
    : io_(io), options_(std::move(options)), timer_(io), rng_(std::random_device{}()) {}

CaresResolver::~CaresResolver() {
  destroying_ = true;
  alive_.reset();
  if (channel_ != nullptr) ares_destroy(channel_);  // callbacks see ARES_EDESTRUCTION
  for (auto& [fd, w] : watches_) {
    w->closed = true;
    asio::error_code ec;
    w->sd.cancel(ec);
    (void)w->sd.release();
  }
  watches_.clear();
  asio::error_code ec;
  timer_.cancel();
}

bool CaresResolver::allowed(Protocol p) const {
  return std::find(options_.protocols.begin(), options_.protocols.end(), p) !=
         options_.protocols.end();
}

// ---- c-ares <-> asio -------------------------------------------------------------------------

void CaresResolver::onSockState(void* data, ares_socket_t fd, int readable, int writable) {
  auto* self = static_cast<CaresResolver*>(data);
  auto it = self->watches_.find(fd);
  if (readable == 0 && writable == 0) {
    if (it == self->watches_.end()) return;
    std::shared_ptr<Watch> w = it->second;
    self->watches_.erase(it);
    w->closed = true;
    asio::error_code ec;
    w->sd.cancel(ec);
    (void)w->sd.release();
    return;
  }
  if (self->destroying_) return;
  if (it == self->watches_.end()) {
    it = self->watches_.emplace(fd, std::make_shared<Watch>(self->io_, fd)).first;
  }
  std::shared_ptr<Watch> w = it->second;
  w->want_read = readable != 0;
  w->want_write = writable != 0;
  if (w->want_read && !w->reading) self->armRead(w);
  if (w->want_write && !w->writing) self->armWrite(w);
}

void CaresResolver::armRead(const std::shared_ptr<Watch>& w) {
  w->reading = true;
  std::weak_ptr<bool> alive = alive_;
  w->sd.async_wait(asio::posix::stream_descriptor::wait_read,
                   [this, w, alive](const asio::error_code& ec) {
                     if (alive.expired()) return;
                     w->reading = false;
                     if (ec || w->closed) return;
                     process(w->fd, ARES_SOCKET_BAD);
                     if (!w->closed && w->want_read && !w->reading) armRead(w);
                   });
}

void CaresResolver::armWrite(const std::shared_ptr<Watch>& w) {
  w->writing = true;
  std::weak_ptr<bool> alive = alive_;
  w->sd.async_wait(asio::posix::stream_descriptor::wait_write,
                   [this, w, alive](const asio::error_code& ec) {
                     if (alive.expired()) return;
                     w->writing = false;
                     if (ec || w->closed) return;
                     process(ARES_SOCKET_BAD, w->fd);
                     if (!w->closed && w->want_write && !w->writing) armWrite(w);
                   });
}

void CaresResolver::process(ares_socket_t read_fd, ares_socket_t write_fd) {
  ares_process_fd(channel_, read_fd, write_fd);
  armTimer();
}

void CaresResolver::armTimer() {
  if (destroying_) return;
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
  std::weak_ptr<bool> alive = alive_;
  timer_.async_wait([this, alive](const asio::error_code& ec) {
    if (alive.expired() || ec) return;
    process(ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  });
}

// ---- queries ---------------------------------------------------------------------------------

struct CaresResolver::QueryCtx {
  CaresResolver* self;
  std::shared_ptr<Job> job;
  ParseFn parse;
};

void CaresResolver::onQuery(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                            int alen) {
  std::unique_ptr<QueryCtx> ctx(static_cast<QueryCtx*>(arg));
  --ctx->self->pending_;
  if (status == ARES_EDESTRUCTION) return;  // resolver going away: drop `done`
  ctx->parse(*ctx->self, std::move(ctx->job), status, abuf, alen);
}

void CaresResolver::query(const std::string& name, int type, std::shared_ptr<Job> job,
                          ParseFn parse) {
  auto* ctx = new QueryCtx{this, std::move(job), parse};
  ++pending_;
  ares_query(channel_, name.c_str(), ns_c_in, type, &CaresResolver::onQuery, ctx);
  armTimer();
}

void CaresResolver::resolve(const sip::Uri& uri, Done done) {
  auto job = std::make_shared<Job>();
  job->done = std::move(done);
  if (!uri.isSipOrSips()) {
    finish(job, invalidArgument("DNS: not a sip/sips URI"));
    return;
  }
  auto protocol = uriProtocol(uri, Protocol::kUdp);
  if (!protocol) {
    finish(job, protocol.status());
    return;
  }
  std::string_view host = uri.hostWithoutBrackets();
  if (const sip::Param* m = uri.param("maddr"); m != nullptr && m->has_value) host = m->value;
  while (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.empty()) {
    finish(job, invalidArgument("DNS: empty host"));
    return;
  }
  job->host = std::string(host);
  job->sips = uri.scheme == sip::Uri::Scheme::kSips;
  job->protocol = *protocol;
  job->has_port = uri.has_port;
  job->port = uri.port;
  const sip::Param* t = uri.param("transport");
  job->has_transport = t != nullptr && t->has_value;
  if (job->has_port) {  // §4.2: a port means A/AAAA only
    job->targets.push_back({job->host, job->port, job->protocol});
    nextAddressTarget(std::move(job));
  } else if (job->has_transport) {  // §4.2: SRV for that transport
    job->srv_names.push_back({std::string(srvPrefix(job->protocol)) + job->host, job->protocol});
    nextSrvName(std::move(job));
  } else {
    queryNaptr(std::move(job));
  }
}

void CaresResolver::queryNaptr(std::shared_ptr<Job> job) {
  std::string name = job->host;
  query(
      name, ns_t_naptr, std::move(job),
      [](CaresResolver& self, std::shared_ptr<Job> job, int status, const unsigned char* abuf,
         int alen) {
        if (status != ARES_SUCCESS && status != ARES_ENODATA) {
          self.finish(job, dnsError(status, job->host));  // NXDOMAIN, timeout, SERVFAIL
          return;
        }
        struct Entry {
          unsigned short order, preference;
          std::string replacement;
          Protocol protocol;
        };
        std::vector<Entry> entries;
        ares_naptr_reply* reply = nullptr;
        if (status == ARES_SUCCESS && ares_parse_naptr_reply(abuf, alen, &reply) == ARES_SUCCESS) {
          for (ares_naptr_reply* r = reply; r != nullptr; r = r->next) {
            std::string_view flags(reinterpret_cast<const char*>(r->flags));
            std::string_view service(reinterpret_cast<const char*>(r->service));
            if (!equalsNoCase(flags, "s") || r->replacement == nullptr ||
                r->replacement[0] == '\0') {
              continue;
            }
            Protocol p;
            if (equalsNoCase(service, "SIP+D2U")) {
              p = Protocol::kUdp;
            } else if (equalsNoCase(service, "SIP+D2T")) {
              p = Protocol::kTcp;
            } else if (equalsNoCase(service, "SIPS+D2T")) {
              p = Protocol::kTls;
            } else {
              continue;
            }
            if (!self.allowed(p) || (job->sips && p != Protocol::kTls)) continue;
            entries.push_back({r->order, r->preference, r->replacement, p});
          }
          ares_free_data(reply);
        }
        std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
          return a.order != b.order ? a.order < b.order : a.preference < b.preference;
        });
        for (auto& e : entries) job->srv_names.push_back({std::move(e.replacement), e.protocol});
        if (job->srv_names.empty()) {  // §4.1: no NAPTR -> SRV for the transports we have
          for (Protocol p : {Protocol::kUdp, Protocol::kTcp, Protocol::kTls}) {
            if (!self.allowed(p) || (job->sips && p != Protocol::kTls)) continue;
            job->srv_names.push_back({std::string(srvPrefix(p)) + job->host, p});
          }
        }
        self.nextSrvName(std::move(job));
      });
}

void CaresResolver::nextSrvName(std::shared_ptr<Job> job) {
  if (job->next_srv < job->srv_names.size()) {
    const Job::Srv& s = job->srv_names[job->next_srv++];
    querySrv(std::move(job), s.name, s.protocol);
    return;
  }
  // §4.2: no SRV records -> A/AAAA of the host, default port.
  Protocol p = job->has_transport ? job->protocol : (job->sips ? Protocol::kTls : Protocol::kUdp);
  job->targets.push_back({job->host, transport::defaultPort(p), p});
  nextAddressTarget(std::move(job));
}

void CaresResolver::querySrv(std::shared_ptr<Job> job, std::string name, Protocol protocol) {
  job->targets.clear();
  job->next_target = 0;
  job->targets.push_back({std::string(), 0, protocol});  // carries the protocol to the parser
  query(name, ns_t_srv, std::move(job),
        [](CaresResolver& self, std::shared_ptr<Job> job, int status, const unsigned char* abuf,
           int alen) {
          Protocol protocol = job->targets.front().protocol;
          job->targets.clear();
          if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
            self.nextSrvName(std::move(job));
            return;
          }
          if (status != ARES_SUCCESS) {
            self.finish(job, dnsError(status, job->host));
            return;
          }
          struct Rec {
            unsigned short priority, weight, port;
            std::string target;
          };
          std::vector<Rec> recs;
          ares_srv_reply* reply = nullptr;
          if (ares_parse_srv_reply(abuf, alen, &reply) == ARES_SUCCESS) {
            for (ares_srv_reply* r = reply; r != nullptr; r = r->next) {
              if (r->host == nullptr || r->host[0] == '\0' || r->port == 0) continue;  // "."
              recs.push_back({r->priority, r->weight, r->port, r->host});
            }
            ares_free_data(reply);
          }
          if (recs.empty()) {
            self.nextSrvName(std::move(job));
            return;
          }
          // RFC 2782: by priority; within one, weighted random (zero weights first, chance 0
          // unless all are zero).
          std::stable_sort(recs.begin(), recs.end(),
                           [](const Rec& a, const Rec& b) { return a.priority < b.priority; });
          std::size_t i = 0;
          while (i < recs.size()) {
            std::size_t end = i;
            while (end < recs.size() && recs[end].priority == recs[i].priority) ++end;
            std::stable_partition(recs.begin() + static_cast<std::ptrdiff_t>(i),
                                  recs.begin() + static_cast<std::ptrdiff_t>(end),
                                  [](const Rec& r) { return r.weight == 0; });
            for (; i < end; ++i) {
              std::uint32_t total = 0;
              for (std::size_t k = i; k < end; ++k) total += recs[k].weight;
              std::uint32_t pick =
                  std::uniform_int_distribution<std::uint32_t>(0, total)(self.rng_);
              std::size_t chosen = i;
              std::uint32_t running = 0;
              for (std::size_t k = i; k < end; ++k) {
                running += recs[k].weight;
                if (running >= pick) {
                  chosen = k;
                  break;
                }
              }
              std::swap(recs[i], recs[chosen]);
              job->targets.push_back({recs[i].target, recs[i].port, protocol});
            }
          }
          self.nextAddressTarget(std::move(job));
        });
}

void CaresResolver::nextAddressTarget(std::shared_ptr<Job> job) {
  if (job->next_target >= job->targets.size()) {
    finish(job, notFound("DNS: no records for " + job->host));
    return;
  }
  queryAddress(std::move(job), AF_INET);
}

void CaresResolver::queryAddress(std::shared_ptr<Job> job, int family) {
  std::string name = job->targets[job->next_target].name;
  auto parse = [](CaresResolver& self, std::shared_ptr<Job> job, int status,
                  const unsigned char* abuf, int alen, int family) {
    if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
      if (family == AF_INET) {
        self.queryAddress(std::move(job), AF_INET6);
      } else {
        ++job->next_target;
        self.nextAddressTarget(std::move(job));
      }
      return;
    }
    if (status != ARES_SUCCESS) {
      self.finish(job, dnsError(status, job->host));
      return;
    }
    const Job::Host& h = job->targets[job->next_target];
    Result<transport::Address> address = invalidArgument("no address");
    if (family == AF_INET) {
      ares_addrttl ttls[4];
      int n = 4;
      if (ares_parse_a_reply(abuf, alen, nullptr, ttls, &n) == ARES_SUCCESS && n > 0) {
        char text[INET_ADDRSTRLEN] = {};
        inet_ntop(AF_INET, &ttls[0].ipaddr, text, sizeof(text));
        address = transport::Address::parse(text, h.port);
      }
    } else {
      ares_addr6ttl ttls[4];
      int n = 4;
      if (ares_parse_aaaa_reply(abuf, alen, nullptr, ttls, &n) == ARES_SUCCESS && n > 0) {
        char text[INET6_ADDRSTRLEN] = {};
        inet_ntop(AF_INET6, &ttls[0].ip6addr, text, sizeof(text));
        address = transport::Address::parse(text, h.port);
      }
    }
    if (!address) {  // answer without a usable record of that type
      if (family == AF_INET) {
        self.queryAddress(std::move(job), AF_INET6);
      } else {
        ++job->next_target;
        self.nextAddressTarget(std::move(job));
      }
      return;
    }
    transport::SendTarget target;
    target.protocol = h.protocol;
    target.remote = *address;
    if (target.protocol == Protocol::kTls) target.tls_server_name = job->host;  // RFC 5922
    self.finish(job, std::move(target));
  };
  if (family == AF_INET) {
    query(name, ns_t_a, std::move(job),
          [](CaresResolver& self, std::shared_ptr<Job> job, int status, const unsigned char* abuf,
             int alen) { decltype(parse){}(self, std::move(job), status, abuf, alen, AF_INET); });
  } else {
    query(name, ns_t_aaaa, std::move(job),
          [](CaresResolver& self, std::shared_ptr<Job> job, int status, const unsigned char* abuf,
             int alen) { decltype(parse){}(self, std::move(job), status, abuf, alen, AF_INET6); });
  }
}

void CaresResolver::finish(const std::shared_ptr<Job>& job, Result<transport::SendTarget> result) {
  if (job->finished) return;
  job->finished = true;
  Done done = std::move(job->done);
  done(std::move(result));
}

}  // namespace sipwake::routing
