#include "routing/flow_token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>

#include "common/status.h"

namespace sipwake::routing {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void appendHexBytes(std::string& out, const unsigned char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 0xf]);
  }
}

void appendHexNumber(std::string& out, std::uint64_t v) {
  char buf[20];
  auto r = std::to_chars(buf, buf + sizeof buf, v, 16);
  out.append(buf, r.ptr);
}

char protocolChar(transport::Protocol p) {
  switch (p) {
    case transport::Protocol::kUdp:
      return 'u';
    case transport::Protocol::kTcp:
      return 't';
    case transport::Protocol::kTls:
      return 's';
  }
  return 'u';
}

void encodeSide(std::string& out, const std::optional<FlowRef>& side) {
  if (!side) {
    out.push_back('x');
    return;
  }
  out.push_back(protocolChar(side->protocol));
  appendHexBytes(out, side->remote.bytes.data(), side->remote.v6 ? 16 : 4);
  out.push_back('-');
  appendHexNumber(out, side->remote.port);
  out.push_back('-');
  appendHexNumber(out, side->flow);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool parseHexNumber(std::string_view s, std::uint64_t& v) {
  if (s.empty() || s.size() > 16) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// "x" or "<p><hex addr>-<port>-<flow>".
bool decodeSide(std::string_view s, std::optional<FlowRef>& side) {
  if (s == "x") {
    side.reset();
    return true;
  }
  if (s.size() < 2) return false;
  FlowRef f;
  switch (s[0]) {
    case 'u':
      f.protocol = transport::Protocol::kUdp;
      break;
    case 't':
      f.protocol = transport::Protocol::kTcp;
      break;
    case 's':
      f.protocol = transport::Protocol::kTls;
      break;
    default:
      return false;
  }
  s.remove_prefix(1);
  std::size_t d1 = s.find('-');
  if (d1 == std::string_view::npos) return false;
  std::string_view addr = s.substr(0, d1);
  std::string_view rest = s.substr(d1 + 1);
  std::size_t d2 = rest.find('-');
  if (d2 == std::string_view::npos) return false;
  if (addr.size() != 8 && addr.size() != 32) return false;
  f.remote.v6 = addr.size() == 32;
  for (std::size_t i = 0; i < addr.size() / 2; ++i) {
    int hi = hexValue(addr[2 * i]);
    int lo = hexValue(addr[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    f.remote.bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  std::uint64_t port = 0;
  std::uint64_t flow = 0;
  if (!parseHexNumber(rest.substr(0, d2), port) || port == 0 || port > 65535) return false;
  if (!parseHexNumber(rest.substr(d2 + 1), flow)) return false;
  f.remote.port = static_cast<std::uint16_t>(port);
  f.flow = flow;
  side = f;
  return true;
}

}  // namespace

transport::SendTarget FlowRef::sendTarget() const {
  transport::SendTarget t;
  t.protocol = protocol;
  t.remote = remote;
  t.flow = flow;
  return t;
}

bool FlowRef::matches(transport::Protocol p, const transport::Address& from,
                      transport::FlowId f) const {
  if (p != protocol) return false;
  if (protocol != transport::Protocol::kUdp && flow != 0 && f != 0) return flow == f;
  return remote == from;
}

FlowTokenCodec::FlowTokenCodec(std::string secret) : secret_(std::move(secret)) {
  if (secret_.empty()) {
    secret_.resize(32);
    SIPWAKE_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(secret_.data()), 32) == 1);
  }
}

std::string FlowTokenCodec::mac(std::string_view data) const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SIPWAKE_CHECK(HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
                     reinterpret_cast<const unsigned char*>(data.data()), data.size(), md,
                     &len) != nullptr);
  std::string out;
  appendHexBytes(out, md, 8);
  return out;
}

std::string FlowTokenCodec::encode(const FlowPair& pair) const {
  if (pair.empty()) return {};
  std::string out;
  out.reserve(96);
  out.append("ft");
  encodeSide(out, pair.upstream);
  out.push_back('.');
  encodeSide(out, pair.downstream);
  std::string m = mac(out);
  out.push_back('.');
  out.append(m);
  return out;
}

std::optional<FlowPair> FlowTokenCodec::decode(std::string_view user) const {
  if (!user.starts_with("ft") || user.size() > 200) return std::nullopt;
  std::size_t last = user.rfind('.');
  if (last == std::string_view::npos || user.size() - last - 1 != 16) return std::nullopt;
  std::string_view body = user.substr(0, last);
  std::string expected = mac(body);
  // Constant-time comparison: the MAC is the only secret-dependent part.
  unsigned diff = 0;
  for (std::size_t i = 0; i < 16; ++i) {
    diff |= static_cast<unsigned>(expected[i] ^ user[last + 1 + i]);
  }
  if (diff != 0) return std::nullopt;
  body.remove_prefix(2);
  std::size_t dot = body.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  FlowPair pair;
  if (!decodeSide(body.substr(0, dot), pair.upstream)) return std::nullopt;
  if (!decodeSide(body.substr(dot + 1), pair.downstream)) return std::nullopt;
  return pair;
}

}  // namespace sipwake::routing
