// libFuzzer target: Digest credentials parser (Authorization / Proxy-Authorization values), and
// response verification on whatever parses. Built from src/auth/CMakeLists.txt when
// SIPWAKE_BUILD_FUZZ is ON (clang): cmake --build <dir> --target fuzz_digest
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/digest.h"
#include "common/status.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sipwake::auth;
  // A heap copy of exactly `size` bytes lets ASan catch any read past the value.
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)authScheme(text);
  sipwake::Result<DigestCredentials> c = parseDigestCredentials(text);
  if (!c.isOk()) {
    SIPWAKE_CHECK(!c.status().message().empty());
    return 0;
  }
  SIPWAKE_CHECK(!c->username.empty() && !c->nonce.empty() && !c->uri.empty());
  SIPWAKE_CHECK(c->response.size() == hexLength(c->algorithm));
  SIPWAKE_CHECK((c->qop == Qop::kAuth) == (c->nc != 0));
  DigestCredentials moved = std::move(c).value();
  HexDigest ha1 = computeHa1(moved.algorithm, moved.username, moved.realm, "pw");
  (void)verifyResponse(moved, "REGISTER", ha1.view());
  return 0;
}
