#include "auth/hash_internal.h"

#include <openssl/evp.h>

#include "common/status.h"

namespace sipwake::auth::internal {
namespace {

// Explicit fetch once: OpenSSL 3 would otherwise look the implementation up on every Init.
const EVP_MD* fetched(Md md) {
  static EVP_MD* const kMd5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
  static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const EVP_MD* m = md == Md::kMd5 ? kMd5 : kSha256;
  SIPWAKE_CHECK(m != nullptr);
  return m;
}

struct ThreadCtx {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~ThreadCtx() { EVP_MD_CTX_free(ctx); }
};

}  // namespace

std::size_t hashRaw(Md md, std::initializer_list<std::string_view> parts, unsigned char* out) {
  thread_local ThreadCtx tc;
  SIPWAKE_CHECK(tc.ctx != nullptr);
  SIPWAKE_CHECK(EVP_DigestInit_ex(tc.ctx, fetched(md), nullptr) == 1);
  for (std::string_view p : parts) {
    if (!p.empty()) SIPWAKE_CHECK(EVP_DigestUpdate(tc.ctx, p.data(), p.size()) == 1);
  }
  unsigned int len = 0;
  SIPWAKE_CHECK(EVP_DigestFinal_ex(tc.ctx, out, &len) == 1);
  return len;
}

void toLowerHex(const unsigned char* bytes, std::size_t n, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xF];
  }
}

}  // namespace sipwake::auth::internal
