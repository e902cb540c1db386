#include "routing/flow_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <charconv>

#include "common/status.h"

namespace sipwake::routing {
namespace {

constexpr char kHex[] = "0123456789abcdef";
// Key ids are epochs modulo this (3 hex digits).
constexpr std::uint64_t kKeyIds = 4096;

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

FlowTokenCodec::FlowTokenCodec(RouteKeyConfig keys)
    : secret_(std::move(keys.secret)),
      rotation_s_(keys.rotation.count()),
      overlap_s_(keys.overlap.count()) {
  SIPWAKE_CHECK(rotation_s_ > 0 && overlap_s_ >= 0 &&
                overlap_s_ / rotation_s_ < RouteKeyConfig::kMaxOverlapEpochs);
  if (secret_.empty()) secret_ = randomSecret();
}

std::string FlowTokenCodec::randomSecret() {
  std::string secret(32, '\0');
  SIPWAKE_CHECK(RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), 32) == 1);
  return secret;
}

std::int64_t FlowTokenCodec::epochOf(std::int64_t unix_now) const {
  // Floor division: a clock before 1970 still maps to one epoch per `rotation`.
  std::int64_t q = unix_now / rotation_s_;
  return (unix_now % rotation_s_ < 0) ? q - 1 : q;
}

std::string FlowTokenCodec::keyFor(std::int64_t epoch) const {
  std::string label = "sipwake route key " + std::to_string(epoch);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SIPWAKE_CHECK(HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
                     reinterpret_cast<const unsigned char*>(label.data()), label.size(), md,
                     &len) != nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string FlowTokenCodec::mac(const std::string& key, std::string_view body,
                                std::string_view call_id, std::string_view tag) const {
  // body, then the Call-ID with its length (so no Call-ID/tag split is ambiguous), then the tag.
  std::string data;
  data.reserve(body.size() + call_id.size() + tag.size() + 24);
  data.append(body);
  data.push_back('\0');
  data.append(std::to_string(call_id.size()));
  data.push_back(':');
  data.append(call_id);
  data.append(tag);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SIPWAKE_CHECK(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                     reinterpret_cast<const unsigned char*>(data.data()), data.size(), md,
                     &len) != nullptr);
  std::string out;
  appendHexBytes(out, md, 8);
  return out;
}

std::string FlowTokenCodec::encode(const FlowPair& pair, std::string_view call_id,
                                   std::string_view caller_tag, std::int64_t unix_now) const {
  return encodeWith("ft", pair, call_id, caller_tag, unix_now);
}

std::string FlowTokenCodec::encodeNodeRoute(const FlowRef& flow, std::int64_t unix_now) const {
  FlowPair pair;
  pair.downstream = flow;
  return encodeWith(kNodeRoutePrefix, pair, {}, {}, unix_now);
}

std::optional<FlowRef> FlowTokenCodec::decodeNodeRoute(std::string_view user,
                                                       std::int64_t unix_now) const {
  Decoded d = verifyNodeRoute(user, unix_now);
  if (d.verdict != Verdict::kValid) return std::nullopt;
  return d.pair.downstream;
}

FlowTokenCodec::Decoded FlowTokenCodec::verifyNodeRoute(std::string_view user,
                                                        std::int64_t unix_now) const {
  Decoded d = decodeWith(kNodeRoutePrefix, user, DialogRef{}, unix_now);
  d.sender = Sender::kUnknown;
  if (d.verdict == Verdict::kValid && (d.pair.upstream || !d.pair.downstream)) {
    d.pair = {};
    d.verdict = Verdict::kBadSignature;  // signed, but not in the shape encodeNodeRoute writes
  }
  return d;
}

std::string FlowTokenCodec::encodeWith(std::string_view prefix, const FlowPair& pair,
                                       std::string_view call_id, std::string_view caller_tag,
                                       std::int64_t unix_now) const {
  const std::int64_t epoch = epochOf(unix_now);
  std::string out;
  out.reserve(96);
  out.append(prefix);
  encodeSide(out, pair.upstream);
  out.push_back('.');
  encodeSide(out, pair.downstream);
  out.push_back('.');
  const auto kid = static_cast<std::uint64_t>(epoch) % kKeyIds;
  for (int shift = 8; shift >= 0; shift -= 4) out.push_back(kHex[(kid >> shift) & 0xf]);
  out.append(mac(keyFor(epoch), out, call_id, caller_tag));
  return out;
}

FlowTokenCodec::Decoded FlowTokenCodec::decode(std::string_view user, const DialogRef& dialog,
                                               std::int64_t unix_now) const {
  return decodeWith("ft", user, dialog, unix_now);
}

FlowTokenCodec::Decoded FlowTokenCodec::decodeWith(std::string_view prefix, std::string_view user,
                                                   const DialogRef& dialog,
                                                   std::int64_t unix_now) const {
  Decoded d;
  if (!user.starts_with(prefix) || user.size() > 200) return d;
  std::size_t last = user.rfind('.');
  if (last == std::string_view::npos || user.size() - last - 1 != 3 + 16) return d;
  std::string_view body = user.substr(0, last + 1 + 3);  // signed part, key id included
  std::string_view sides = user.substr(prefix.size(), last - prefix.size());
  std::size_t dot = sides.find('.');
  if (dot == std::string_view::npos) return d;
  if (!decodeSide(sides.substr(0, dot), d.pair.upstream) ||
      !decodeSide(sides.substr(dot + 1), d.pair.downstream)) {
    d.pair = {};
    return d;
  }
  std::uint64_t kid = 0;
  if (!parseHexNumber(user.substr(last + 1, 3), kid)) return d;
  // The most recent epoch with that key id, and whether its key still verifies: it signed until
  // (epoch + 1) * rotation and verifies for `overlap` after that.
  const std::int64_t now_epoch = epochOf(unix_now);
  const auto back = static_cast<std::int64_t>(
      (static_cast<std::uint64_t>(now_epoch) % kKeyIds + kKeyIds - kid) % kKeyIds);
  const std::int64_t epoch = now_epoch - back;
  if ((epoch + 1) * rotation_s_ + overlap_s_ <= unix_now) {
    d.pair = {};
    d.verdict = Verdict::kExpired;
    return d;
  }
  const std::string key = keyFor(epoch);
  std::string_view given = user.substr(last + 1 + 3);
  // The caller's requests carry its tag as their From tag, the callee's as their To tag.
  const std::string_view tags[] = {dialog.from_tag, dialog.to_tag};
  const bool one_tag = dialog.to_tag.empty() || dialog.to_tag == dialog.from_tag;
  for (std::size_t i = 0; i < (one_tag ? 1U : 2U); ++i) {
    std::string expected = mac(key, body, dialog.call_id, tags[i]);
    // Constant-time comparison: the MAC is the only secret-dependent part.
    if (CRYPTO_memcmp(expected.data(), given.data(), 16) == 0) {
      d.verdict = Verdict::kValid;
      if (dialog.to_tag != dialog.from_tag) d.sender = i == 0 ? Sender::kCaller : Sender::kCallee;
      return d;
    }
  }
  d.pair = {};
  d.verdict = Verdict::kBadSignature;
  return d;
}

}  // namespace sipwake::routing
