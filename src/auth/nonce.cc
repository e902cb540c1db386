#include "auth/nonce.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstring>

#include "auth/hash_internal.h"

namespace sipwake::auth {
namespace internal {
namespace {
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}
}  // namespace

std::string base64UrlEncode(const unsigned char* data, std::size_t n) {
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    std::uint32_t v =
        (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
    out.push_back(kB64Url[(v >> 6) & 63]);
    out.push_back(kB64Url[v & 63]);
  }
  if (n - i == 1) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
  } else if (n - i == 2) {
    std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
    out.push_back(kB64Url[(v >> 6) & 63]);
  }
  return out;
}

bool base64UrlDecode(std::string_view text, unsigned char* out, std::size_t* out_len) {
  if (text.size() % 4 == 1) return false;
  std::size_t n = 0;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = b64Value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = static_cast<unsigned char>((acc >> bits) & 0xFF);
    }
  }
  // Non-canonical encodings (stray low bits) are rejected so that one nonce has one spelling.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false;
  *out_len = n;
  return true;
}
}  // namespace internal

namespace {

constexpr std::size_t kStampBytes = 8;
constexpr std::size_t kRandomBytes = 8;

std::uint64_t stampOf(TimePoint t) {
  auto ms = std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  return static_cast<std::uint64_t>(ms);
}

void putBe64(std::uint64_t v, unsigned char* p) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<unsigned char>(v & 0xFF);
    v >>= 8;
  }
}
std::uint64_t getBe64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// RAND_bytes costs about a microsecond per call in OpenSSL 3 (locking, provider dispatch), more
// than the rest of generate(); each thread draws a batch and hands it out 8 bytes at a time.
void randomBytes8(unsigned char* out) {
  thread_local unsigned char pool[512];
  thread_local std::size_t used = sizeof(pool);
  if (used == sizeof(pool)) {
    // A CSPRNG that worked at start-up and fails later leaves nothing sensible to do.
    SIPWAKE_CHECK(RAND_bytes(pool, sizeof(pool)) == 1);
    used = 0;
  }
  std::memcpy(out, pool + used, 8);
  OPENSSL_cleanse(pool + used, 8);
  used += 8;
}

std::string_view bytesView(const unsigned char* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

}  // namespace

NonceManager::NonceManager(std::string_view secret, NonceConfig config)
    : config_(config),
      per_shard_capacity_(config.tracker_capacity / kShards > 0 ? config.tracker_capacity / kShards
                                                                : 1),
      shards_(std::make_unique<Shard[]>(kShards)) {
  SIPWAKE_CHECK(secret.size() >= kMinSecretBytes);
  // HMAC (RFC 2104) key schedule done once: the pads are fed to SHA-256 per nonce.
  std::array<unsigned char, 64> key{};
  if (secret.size() > key.size()) {
    internal::hashRaw(internal::Md::kSha256, {secret}, key.data());
  } else {
    std::memcpy(key.data(), secret.data(), secret.size());
  }
  for (std::size_t i = 0; i < key.size(); ++i) {
    ipad_[i] = key[i] ^ 0x36;
    opad_[i] = key[i] ^ 0x5c;
  }
  OPENSSL_cleanse(key.data(), key.size());
  unsigned char label[kStampBytes + kRandomBytes] = {};
  std::memcpy(label, "sipwake-opaque!!", sizeof(label));
  unsigned char m[kMacBytes];
  mac(label, "", m);
  opaque_ = internal::base64UrlEncode(m, 12);
}

Result<std::string> NonceManager::randomSecret(std::size_t bytes) {
  std::string s(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(bytes)) != 1) {
    return unavailable("RAND_bytes failed: CSPRNG not seeded");
  }
  return s;
}

void NonceManager::mac(const unsigned char* stamp_and_random, std::string_view realm,
                       unsigned char* out) const {
  unsigned char inner[internal::kMaxDigestBytes];
  internal::hashRaw(internal::Md::kSha256,
                    {bytesView(ipad_.data(), ipad_.size()),
                     bytesView(stamp_and_random, kStampBytes + kRandomBytes), realm},
                    inner);
  unsigned char full[internal::kMaxDigestBytes];
  internal::hashRaw(internal::Md::kSha256,
                    {bytesView(opad_.data(), opad_.size()), bytesView(inner, sizeof(inner))}, full);
  std::memcpy(out, full, kMacBytes);
}

std::string NonceManager::generate(std::string_view realm, TimePoint now) const {
  unsigned char raw[kStampBytes + kRandomBytes + kMacBytes];
  putBe64(stampOf(now), raw);
  static_assert(kRandomBytes == 8);
  randomBytes8(raw + kStampBytes);
  mac(raw, realm, raw + kStampBytes + kRandomBytes);
  return internal::base64UrlEncode(raw, sizeof(raw));
}

NonceCheck NonceManager::check(std::string_view nonce, std::string_view realm,
                               TimePoint now) const {
  NonceCheck r;
  if (nonce.size() != kNonceChars) return r;
  unsigned char raw[kStampBytes + kRandomBytes + kMacBytes + 2];
  std::size_t n = 0;
  if (!internal::base64UrlDecode(nonce, raw, &n) || n != kStampBytes + kRandomBytes + kMacBytes) {
    return r;
  }
  unsigned char expected[kMacBytes];
  mac(raw, realm, expected);
  if (CRYPTO_memcmp(expected, raw + kStampBytes + kRandomBytes, kMacBytes) != 0) return r;
  std::uint64_t stamp = getBe64(raw);
  if (stamp > static_cast<std::uint64_t>(INT64_MAX)) return r;
  r.issued = TimePoint(std::chrono::duration_cast<Duration>(milliseconds(stamp)));
  r.id = getBe64(raw + kStampBytes);
  if (r.issued > now + config_.max_future_skew) return r;
  r.status = now - r.issued >= config_.lifetime ? NonceStatus::kStale : NonceStatus::kValid;
  return r;
}

NonceUse NonceManager::recordUse(const NonceCheck& check, Qop qop, std::uint32_t nc,
                                 TimePoint now) {
  SIPWAKE_CHECK(check.status == NonceStatus::kValid);
  Shard& sh = shards_[(check.id * 0x9E3779B97F4A7C15ull) >> 60];
  std::lock_guard lock(sh.mu);
  // Drop expired nonces from the front; their uses are refused by check() anyway.
  while (!sh.order.empty() && now - sh.order.front().issued >= config_.lifetime) {
    sh.entries.erase(sh.order.front().id);
    sh.order.pop_front();
  }
  auto it = sh.entries.find(check.id);
  if (it == sh.entries.end()) {
    if (sh.forgot_any && check.issued <= sh.forgotten_upto) return NonceUse::kReplay;
    while (sh.entries.size() >= per_shard_capacity_ && !sh.order.empty()) {
      const Queued& victim = sh.order.front();
      sh.forgot_any = true;
      if (victim.issued > sh.forgotten_upto) sh.forgotten_upto = victim.issued;
      sh.entries.erase(victim.id);
      sh.order.pop_front();
    }
    Entry e;
    e.issued = check.issued;
    if (qop == Qop::kNone) {
      e.no_qop_used = true;
    } else {
      e.max_nc = nc;
      e.window = 1;
    }
    sh.entries.emplace(check.id, e);
    sh.order.push_back({check.id, check.issued});
    return NonceUse::kFirst;
  }
  Entry& e = it->second;
  if (qop == Qop::kNone) {
    if (e.no_qop_used) return NonceUse::kReplay;
    e.no_qop_used = true;
    return NonceUse::kFirst;
  }
  if (nc > e.max_nc) {
    std::uint32_t shift = nc - e.max_nc;
    e.window = shift >= 64 ? 0 : (e.window << shift);
    e.window |= 1;
    e.max_nc = nc;
    return NonceUse::kFirst;
  }
  std::uint32_t back = e.max_nc - nc;
  if (back >= 64) return NonceUse::kReplay;
  std::uint64_t bit = std::uint64_t{1} << back;
  if (e.window & bit) return NonceUse::kReplay;
  e.window |= bit;
  return NonceUse::kFirst;
}

std::size_t NonceManager::trackedNonces() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < kShards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].entries.size();
  }
  return n;
}

}  // namespace sipwake::auth
