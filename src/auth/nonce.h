// Stateless-verifiable server nonces with expiry, and replay protection by nonce-count tracking.
//
// Nonce = base64url(issued_ms[8] || random[8] || HMAC-SHA256(secret, issued_ms || random || realm)
// truncated to 16 bytes), 43 characters without padding. Anyone holding the nonce can verify it
// came from us, for this realm, and how old it is, without any table lookup; the table is only
// needed for replay protection once a response has verified.
//
// Replay policy (documented decision):
//  * qop=auth: every nc may be used once per nonce. Out-of-order arrival is tolerated within a
//    window of 64 counts below the highest nc seen (parallel requests over UDP/TCP on one nonce);
//    anything older, or seen before, is a replay.
//  * no qop (RFC 2069 clients): the nonce may be used exactly once without qop. The response does
//    not cover a counter, so a second use cannot be told from a replay; the client gets
//    stale=true and retries with a fresh nonce, without prompting the user.
//  * Memory is bounded: each shard keeps at most capacity/shards nonces, oldest first out. When a
//    still-live nonce is evicted, the shard remembers the newest issue time it has forgotten;
//    any unknown nonce issued no later than that is treated as a replay (stale=true) rather than
//    as a first use, so eviction can never reopen a replay window.
//
// Thread: NonceManager is immutable after construction except for the replay table, which is
// sharded with one mutex per shard; every method may be called from any thread concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/digest.h"
#include "common/clock.h"
#include "common/status.h"

namespace sipwake::auth {

struct NonceConfig {
  Duration lifetime = seconds(300);
  // Nonces stamped later than now + this are rejected as invalid (another clock epoch).
  Duration max_future_skew = seconds(5);
  std::size_t tracker_capacity = 1u << 17;  // nonces tracked for replay, all shards together
};

enum class NonceStatus : std::uint8_t {
  kValid,    // ours, for this realm, not expired
  kStale,    // ours, for this realm, expired: challenge again with stale=true
  kInvalid,  // malformed, forged, another realm or secret, or stamped in the future
};

struct NonceCheck {
  NonceStatus status = NonceStatus::kInvalid;
  std::uint64_t id = 0;  // the random part; key of the replay table
  TimePoint issued{};
};

enum class NonceUse : std::uint8_t { kFirst, kReplay };

class NonceManager {
 public:
  static constexpr std::size_t kNonceChars = 43;
  static constexpr std::size_t kMinSecretBytes = 16;

  // REQUIRES: secret.size() >= kMinSecretBytes (a configured secret lets several processes, or a
  // restart, accept each other's nonces).
  NonceManager(std::string_view secret, NonceConfig config);
  NonceManager(const NonceManager&) = delete;
  NonceManager& operator=(const NonceManager&) = delete;

  // `bytes` bytes from OpenSSL's CSPRNG (RAND_bytes); Unavailable if it is not seeded.
  static Result<std::string> randomSecret(std::size_t bytes = 32);

  // A fresh nonce for `realm` stamped with `now`.
  std::string generate(std::string_view realm, TimePoint now) const;

  // Verifies MAC, realm and age. Does not touch the replay table.
  NonceCheck check(std::string_view nonce, std::string_view realm, TimePoint now) const;

  // Records one use of a nonce whose response verified (nc is ignored for Qop::kNone).
  // REQUIRES: check.status is kValid.
  NonceUse recordUse(const NonceCheck& check, Qop qop, std::uint32_t nc, TimePoint now);

  // Opaque value for challenges: derived from the secret, so equal across processes sharing it.
  const std::string& opaque() const { return opaque_; }
  const NonceConfig& config() const { return config_; }
  std::size_t trackedNonces() const;

 private:
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kMacBytes = 16;

  struct Entry {
    TimePoint issued{};
    std::uint32_t max_nc = 0;
    std::uint64_t window = 0;  // bit i: nc == max_nc - i was seen
    bool no_qop_used = false;
  };
  struct Queued {
    std::uint64_t id;
    TimePoint issued;
  };
  struct alignas(64) Shard {
    std::mutex mu;
    std::unordered_map<std::uint64_t, Entry> entries;
    std::deque<Queued> order;    // insertion order ~ issue order; drives expiry and eviction
    TimePoint forgotten_upto{};  // newest issue time of a live nonce evicted for space
    bool forgot_any = false;
  };

  void mac(const unsigned char* stamp_and_random, std::string_view realm, unsigned char* out) const;

  NonceConfig config_;
  std::array<unsigned char, 64> ipad_{};
  std::array<unsigned char, 64> opad_{};
  std::string opaque_;
  std::size_t per_shard_capacity_;
  std::unique_ptr<Shard[]> shards_;
};

namespace internal {
// base64url without padding (RFC 4648 §5). decode returns false on any invalid character or
// impossible length; `out` must have room for size*3/4 bytes.
std::string base64UrlEncode(const unsigned char* data, std::size_t n);
bool base64UrlDecode(std::string_view text, unsigned char* out, std::size_t* out_len);
}  // namespace internal

}  // namespace sipwake::auth
