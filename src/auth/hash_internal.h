// Internal to src/auth: thin, allocation-free wrappers over OpenSSL EVP digests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace sipwake::auth::internal {

enum class Md : std::uint8_t { kMd5, kSha256 };

inline constexpr std::size_t kMaxDigestBytes = 32;

// Hashes the concatenation of `parts` into `out` (REQUIRES: room for kMaxDigestBytes);
// returns the number of bytes written. Uses one EVP_MD_CTX per thread, created on first use;
// digest implementations are fetched once per process. Aborts if OpenSSL cannot provide the
// digest (e.g. MD5 under a FIPS-only provider): there is no meaningful way to continue.
std::size_t hashRaw(Md md, std::initializer_list<std::string_view> parts, unsigned char* out);

// Writes 2*n lower-hex characters of `bytes` to `out`.
void toLowerHex(const unsigned char* bytes, std::size_t n, char* out);

}  // namespace sipwake::auth::internal
