#include "transport/response_routing.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sipwake::transport {
namespace {

// A Via built field by field, so the routing rules are tested without the parser.
struct ViaSpec {
  std::string host;
  std::uint16_t port = 0;                                   // 0 = no port
  std::vector<std::pair<std::string, std::string>> params;  // value "-" = no value
};

sip::Via makeVia(const ViaSpec& spec) {
  sip::Via v;
  v.protocol_name = "SIP";
  v.protocol_version = "2.0";
  v.transport = "UDP";
  v.host = spec.host;
  v.port = spec.port;
  v.has_port = spec.port != 0;
  for (const auto& [name, value] : spec.params) {
    sip::Param p;
    p.name = name;
    p.has_value = value != "-";
    if (p.has_value) p.value = value;
    v.params.push_back(p);
  }
  return v;
}

struct Case {
  const char* name;
  Protocol protocol;
  ViaSpec via;
  const char* remote;  // source of the request
  FlowId flow;
  const char* want;  // expected remote, or nullptr for an error
  FlowId want_flow;
};

class ResponseRoutingTest : public ::testing::TestWithParam<Case> {};

TEST_P(ResponseRoutingTest, PicksTarget) {
  const Case& c = GetParam();
  Address remote = *Address::parseHostPort(c.remote, 0);
  sip::Via via = makeVia(c.via);
  auto t = responseTarget(via, c.protocol, remote, c.flow);
  if (c.want == nullptr) {
    EXPECT_FALSE(t.isOk()) << c.name;
    return;
  }
  ASSERT_TRUE(t.isOk()) << c.name << ": " << t.status().toString();
  EXPECT_EQ(t->remote.toString(), c.want) << c.name;
  EXPECT_EQ(t->protocol, c.protocol) << c.name;
  EXPECT_EQ(t->flow, c.want_flow) << c.name;
}

const Case kCases[] = {
    // Reliable: same connection; fallback address is received (or source) IP + sent-by port.
    {"tcp_flow_received",
     Protocol::kTcp,
     {"client.example.com", 5070, {{"branch", "z9hG4bK1"}, {"received", "198.51.100.9"}}},
     "198.51.100.9:40000",
     7,
     "198.51.100.9:5070",
     7},
    {"tcp_flow_no_received",
     Protocol::kTcp,
     {"198.51.100.9", 0, {{"branch", "z9hG4bK1"}}},
     "198.51.100.9:40000",
     9,
     "198.51.100.9:5060",
     9},
    {"tls_default_port_5061",
     Protocol::kTls,
     {"198.51.100.9", 0, {{"branch", "z9hG4bK1"}}},
     "198.51.100.9:40000",
     3,
     "198.51.100.9:5061",
     3},
    {"tcp_rport_ignored",
     Protocol::kTcp,
     {"10.0.0.2", 5060, {{"rport", "40000"}, {"received", "198.51.100.9"}}},
     "198.51.100.9:40000",
     4,
     "198.51.100.9:5060",
     4},
    {"tcp_bad_received",
     Protocol::kTcp,
     {"10.0.0.2", 5060, {{"received", "nonsense"}}},
     "198.51.100.9:40000",
     4,
     nullptr,
     0},
    // maddr wins over everything for unreliable transports.
    {"udp_maddr",
     Protocol::kUdp,
     {"10.0.0.2", 5080, {{"maddr", "239.1.1.1"}, {"rport", "4000"}, {"received", "1.2.3.4"}}},
     "1.2.3.4:4000",
     0,
     "239.1.1.1:5080",
     0},
    {"udp_maddr_default_port",
     Protocol::kUdp,
     {"10.0.0.2", 0, {{"maddr", "239.1.1.1"}}},
     "1.2.3.4:4000",
     0,
     "239.1.1.1:5060",
     0},
    {"udp_maddr_hostname",
     Protocol::kUdp,
     {"10.0.0.2", 0, {{"maddr", "mcast.example"}}},
     "1.2.3.4:4000",
     0,
     nullptr,
     0},
    // rport: source IP and port.
    {"udp_rport_filled",
     Protocol::kUdp,
     {"10.0.0.2", 5060, {{"rport", "4000"}, {"received", "1.2.3.4"}}},
     "1.2.3.4:4000",
     0,
     "1.2.3.4:4000",
     0},
    {"udp_rport_empty",
     Protocol::kUdp,
     {"10.0.0.2", 5060, {{"rport", "-"}}},
     "1.2.3.4:4000",
     0,
     "1.2.3.4:4000",
     0},
    // received: that IP, sent-by port.
    {"udp_received",
     Protocol::kUdp,
     {"10.0.0.2", 5062, {{"received", "1.2.3.4"}}},
     "1.2.3.4:4000",
     0,
     "1.2.3.4:5062",
     0},
    {"udp_received_default_port",
     Protocol::kUdp,
     {"host.example", 0, {{"received", "1.2.3.4"}}},
     "1.2.3.4:4000",
     0,
     "1.2.3.4:5060",
     0},
    {"udp_received_v6",
     Protocol::kUdp,
     {"host.example", 5070, {{"received", "2001:db8::5"}}},
     "[2001:db8::5]:4000",
     0,
     "[2001:db8::5]:5070",
     0},
    // sent-by.
    {"udp_sent_by",
     Protocol::kUdp,
     {"192.0.2.4", 5066, {{"branch", "z9hG4bK1"}}},
     "192.0.2.4:5066",
     0,
     "192.0.2.4:5066",
     0},
    {"udp_sent_by_default_port",
     Protocol::kUdp,
     {"192.0.2.4", 0, {}},
     "192.0.2.4:5060",
     0,
     "192.0.2.4:5060",
     0},
    {"udp_sent_by_v6",
     Protocol::kUdp,
     {"[2001:db8::1]", 5070, {}},
     "[2001:db8::1]:5070",
     0,
     "[2001:db8::1]:5070",
     0},
    {"udp_sent_by_hostname",
     Protocol::kUdp,
     {"host.example", 5070, {}},
     "192.0.2.4:5070",
     0,
     nullptr,
     0},
};

INSTANTIATE_TEST_SUITE_P(Rfc3261Section18_2_2, ResponseRoutingTest, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(DefaultPortTest, PerProtocol) {
  EXPECT_EQ(defaultPort(Protocol::kUdp), 5060);
  EXPECT_EQ(defaultPort(Protocol::kTcp), 5060);
  EXPECT_EQ(defaultPort(Protocol::kTls), 5061);
}

}  // namespace
}  // namespace sipwake::transport
