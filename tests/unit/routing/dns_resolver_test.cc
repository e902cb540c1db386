// CaresResolver against an in-process fake DNS server on 127.0.0.1 (random UDP port); the
// resolver runs on a real EventLoop. Never talks to a real name server.
#include "routing/dns_resolver.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "transport/event_loop.h"

namespace sipwake::routing {
namespace {

using transport::Protocol;
using Bytes = std::vector<std::uint8_t>;

constexpr int kA = 1, kAaaa = 28, kSrv = 33, kNaptr = 35;

void put16(Bytes& b, unsigned v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
void putName(Bytes& b, const std::string& name) {
  std::size_t start = 0;
  while (start < name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    b.push_back(static_cast<std::uint8_t>(dot - start));
    b.insert(b.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
             name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  b.push_back(0);
}
void putString(Bytes& b, const std::string& s) {
  b.push_back(static_cast<std::uint8_t>(s.size()));
  b.insert(b.end(), s.begin(), s.end());
}

// Authoritative-looking UDP server for a tiny zone. A name with no records but a descendant
// that has some answers NODATA (empty non-terminal); any other unknown name NXDOMAIN.
class FakeDns {
 public:
  FakeDns() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeDns() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  std::uint16_t port() const { return port_; }
  void setSilent(bool s) { silent_ = s; }

  void addA(const std::string& name, const std::string& ip) {
    Bytes r(4);
    inet_pton(AF_INET, ip.c_str(), r.data());
    add(name, kA, r);
  }
  void addAaaa(const std::string& name, const std::string& ip) {
    Bytes r(16);
    inet_pton(AF_INET6, ip.c_str(), r.data());
    add(name, kAaaa, r);
  }
  void addSrv(const std::string& name, unsigned prio, unsigned weight, unsigned port,
              const std::string& target) {
    Bytes r;
    put16(r, prio);
    put16(r, weight);
    put16(r, port);
    putName(r, target);
    add(name, kSrv, r);
  }
  void addNaptr(const std::string& name, unsigned order, unsigned pref, const std::string& service,
                const std::string& replacement) {
    Bytes r;
    put16(r, order);
    put16(r, pref);
    putString(r, "s");
    putString(r, service);
    putString(r, "");
    putName(r, replacement);
    add(name, kNaptr, r);
  }
  // Query types asked for `name`, in order.
  std::vector<int> asked(const std::string& name) {
    std::lock_guard lock(mu_);
    return asked_[name];
  }

 private:
  void add(const std::string& name, int type, Bytes rdata) {
    std::lock_guard lock(mu_);
    zone_[{name, type}].push_back(std::move(rdata));
  }
  bool exists(const std::string& name) {
    for (const auto& [key, v] : zone_) {
      const std::string& n = key.first;
      if (n == name || (n.size() > name.size() && n.ends_with("." + name))) return true;
    }
    return false;
  }
  void run() {
    std::uint8_t buf[1500];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      sockaddr_in from{};
      socklen_t flen = sizeof(from);
      ssize_t n = ::recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n < 17 || silent_) continue;
      std::size_t i = 12;
      std::string qname;
      while (i < static_cast<std::size_t>(n) && buf[i] != 0) {
        std::size_t len = buf[i];
        if (!qname.empty()) qname.push_back('.');
        for (std::size_t k = 1; k <= len && i + k < static_cast<std::size_t>(n); ++k) {
          qname.push_back(static_cast<char>(std::tolower(buf[i + k])));
        }
        i += len + 1;
      }
      std::size_t qend = i + 5;
      if (qend > static_cast<std::size_t>(n)) continue;
      int qtype = (buf[i + 1] << 8) | buf[i + 2];
      Bytes out;
      std::lock_guard lock(mu_);
      asked_[qname].push_back(qtype);
      const std::vector<Bytes>* answers = nullptr;
      if (auto it = zone_.find({qname, qtype}); it != zone_.end()) answers = &it->second;
      bool nx = !exists(qname);
      out.push_back(buf[0]);
      out.push_back(buf[1]);
      put16(out, 0x8580 | (nx ? 3 : 0));  // QR AA RD RA, rcode
      put16(out, 1);
      put16(out, answers ? static_cast<unsigned>(answers->size()) : 0);
      put16(out, 0);
      put16(out, 0);
      out.insert(out.end(), buf + 12, buf + qend);
      if (answers) {
        for (const Bytes& rd : *answers) {
          put16(out, 0xC00C);
          put16(out, static_cast<unsigned>(qtype));
          put16(out, 1);
          put16(out, 0);
          put16(out, 60);
          put16(out, static_cast<unsigned>(rd.size()));
          out.insert(out.end(), rd.begin(), rd.end());
        }
      }
      ::sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
    }
  }

  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false};
  std::thread thread_;
  std::mutex mu_;
  std::map<std::pair<std::string, int>, std::vector<Bytes>> zone_;
  std::map<std::string, std::vector<int>> asked_;
};

class DnsResolverTest : public ::testing::Test {
 protected:
  DnsResolverTest() : loop_(0) {
    dns_.addNaptr("example.test", 10, 10, "SIP+D2T", "_sip._tcp.example.test");
    dns_.addNaptr("example.test", 20, 10, "SIP+D2U", "_sip._udp.example.test");
    dns_.addNaptr("example.test", 30, 10, "SIPS+D2T", "_sips._tcp.example.test");
    dns_.addSrv("_sip._tcp.example.test", 10, 0, 5070, "pbx.example.test");
    dns_.addSrv("_sip._udp.example.test", 10, 0, 5080, "pbx.example.test");
    dns_.addSrv("_sips._tcp.example.test", 10, 0, 5071, "pbx.example.test");
    dns_.addA("pbx.example.test", "192.0.2.10");
    dns_.addA("example.test", "192.0.2.1");

    dns_.addSrv("_sip._udp.srv.test", 20, 0, 5063, "b.srv.test");
    dns_.addSrv("_sip._udp.srv.test", 10, 0, 5062, "a.srv.test");
    dns_.addA("a.srv.test", "192.0.2.20");
    dns_.addA("b.srv.test", "192.0.2.21");

    dns_.addA("aonly.test", "192.0.2.30");
    dns_.addAaaa("v6only.test", "2001:db8::5");
    loop_.start();
  }
  ~DnsResolverTest() override {
    loop_.stop();
    resolver_.reset();
  }

  void makeResolver(CaresResolver::Options o = {}) {
    o.servers = {"127.0.0.1:" + std::to_string(dns_.port())};
    if (o.timeout == CaresResolver::Options{}.timeout) o.timeout = std::chrono::milliseconds(1000);
    auto r = CaresResolver::create(loop_.io(), std::move(o));
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    resolver_ = std::move(*r);
  }

  Result<transport::SendTarget> resolve(const std::string& text) {
    if (!resolver_) makeResolver();
    std::promise<Result<transport::SendTarget>> p;
    auto f = p.get_future();
    loop_.post([this, text, &p] {
      auto uri = sip::parseUri(text);
      ASSERT_TRUE(uri.isOk());
      resolver_->resolve(*uri,
                         [&p](Result<transport::SendTarget> r) { p.set_value(std::move(r)); });
    });
    if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      ADD_FAILURE() << "no answer for " << text;
      return internalError("test timeout");
    }
    return f.get();
  }

  FakeDns dns_;
  transport::EventLoop loop_;
  std::unique_ptr<CaresResolver> resolver_;
};

TEST_F(DnsResolverTest, NaptrSrvAChainPicksLowestOrder) {
  auto r = resolve("sip:alice@example.test");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->protocol, Protocol::kTcp);
  EXPECT_EQ(r->remote.toString(), "192.0.2.10:5070");
}

TEST_F(DnsResolverTest, NaptrSkipsTransportsWithoutListener) {
  CaresResolver::Options o;
  o.protocols = {Protocol::kUdp};
  makeResolver(o);
  auto r = resolve("sip:alice@example.test");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->protocol, Protocol::kUdp);
  EXPECT_EQ(r->remote.toString(), "192.0.2.10:5080");
}

TEST_F(DnsResolverTest, SipsUsesOnlySipsNaptrAndSetsServerName) {
  auto r = resolve("sips:alice@example.test");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->protocol, Protocol::kTls);
  EXPECT_EQ(r->remote.toString(), "192.0.2.10:5071");
  EXPECT_EQ(r->tls_server_name, "example.test");
}

TEST_F(DnsResolverTest, SrvWithoutNaptrByPriority) {
  auto r = resolve("sip:bob@srv.test");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->protocol, Protocol::kUdp);
  EXPECT_EQ(r->remote.toString(), "192.0.2.20:5062");
  EXPECT_EQ(dns_.asked("srv.test"), std::vector<int>{kNaptr});
}

TEST_F(DnsResolverTest, WeightedSrvChoosesAmongEqualPriority) {
  dns_.addSrv("_sip._udp.w.test", 5, 10, 5001, "a.srv.test");
  dns_.addSrv("_sip._udp.w.test", 5, 10, 5002, "b.srv.test");
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    auto r = resolve("sip:w.test");
    ASSERT_TRUE(r.isOk()) << r.status().toString();
    seen.insert(r->remote.toString());
  }
  for (const auto& s : seen) EXPECT_TRUE(s == "192.0.2.20:5001" || s == "192.0.2.21:5002") << s;
  EXPECT_EQ(seen.size(), 2u);  // 2^-19 chance of a false failure
}

TEST_F(DnsResolverTest, NoSrvFallsBackToADefaultPort) {
  auto r = resolve("sip:carol@aonly.test");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->protocol, Protocol::kUdp);
  EXPECT_EQ(r->remote.toString(), "192.0.2.30:5060");
  auto s = resolve("sips:carol@aonly.test");
  ASSERT_TRUE(s.isOk()) << s.status().toString();
  EXPECT_EQ(s->protocol, Protocol::kTls);
  EXPECT_EQ(s->remote.toString(), "192.0.2.30:5061");
}

TEST_F(DnsResolverTest, PortGivenMeansAddressLookupOnly) {
  auto r = resolve("sip:example.test:5099;transport=tcp");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->protocol, Protocol::kTcp);
  EXPECT_EQ(r->remote.toString(), "192.0.2.1:5099");
  EXPECT_EQ(dns_.asked("example.test"), std::vector<int>{kA});
  EXPECT_TRUE(dns_.asked("_sip._tcp.example.test").empty());
}

TEST_F(DnsResolverTest, TransportGivenMeansSrvForIt) {
  auto r = resolve("sip:example.test;transport=udp");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->protocol, Protocol::kUdp);
  EXPECT_EQ(r->remote.toString(), "192.0.2.10:5080");
  EXPECT_TRUE(dns_.asked("example.test").empty());  // no NAPTR
}

TEST_F(DnsResolverTest, AaaaWhenNoA) {
  auto r = resolve("sip:v6only.test:5070");
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_TRUE(r->remote.v6);
  EXPECT_EQ(r->remote.toString(), "[2001:db8::5]:5070");
}

TEST_F(DnsResolverTest, NxdomainIsNotFound) {
  auto r = resolve("sip:nobody@nope.test");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "DNS: no records for nope.test");
}

TEST_F(DnsResolverTest, SilentServerIsUnavailableWithinBound) {
  dns_.setSilent(true);
  CaresResolver::Options o;
  o.timeout = std::chrono::milliseconds(200);
  o.tries = 1;
  makeResolver(o);
  auto start = std::chrono::steady_clock::now();
  auto r = resolve("sip:example.test");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().toString();
  EXPECT_TRUE(r.status().message().starts_with("DNS: ")) << r.status().message();
  EXPECT_TRUE(r.status().message().ends_with(" for example.test")) << r.status().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(DnsResolverTest, DestroyingWithAQueryInFlightDropsItsCallback) {
  dns_.setSilent(true);
  makeResolver();
  std::atomic<bool> called{false};
  std::promise<void> destroyed;
  loop_.post([this, &called, &destroyed] {
    auto uri = sip::parseUri("sip:example.test");
    ASSERT_TRUE(uri.isOk());
    resolver_->resolve(*uri, [&called](Result<transport::SendTarget>) { called = true; });
    EXPECT_EQ(resolver_->pendingQueries(), 1u);
    resolver_.reset();
    destroyed.set_value();
  });
  ASSERT_EQ(destroyed.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(called);
}

TEST_F(DnsResolverTest, BadServerListIsRejected) {
  CaresResolver::Options o;
  o.servers = {"not an address"};
  auto r = CaresResolver::create(loop_.io(), o);
  EXPECT_FALSE(r.isOk());
}

}  // namespace
}  // namespace sipwake::routing
