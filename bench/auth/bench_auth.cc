// Micro-benchmarks of the per-REGISTER authentication cost.
// Build: cmake -DSIPWAKE_BUILD_BENCH=ON ... && cmake --build <dir> --target bench_auth
#include <benchmark/benchmark.h>

#include <string>

#include "auth/authenticator.h"

namespace sipwake::auth {
namespace {

const std::string kSecret = "benchmark-secret-0123456789abcdef";
constexpr std::string_view kRealm = "example.com";
constexpr std::string_view kUri = "sip:example.com";
const TimePoint kNow = TimePoint{} + std::chrono::hours(1);

std::string credentials(DigestAlgorithm a, std::string_view nonce, std::uint32_t nc) {
  HexDigest ha1 = computeHa1(a, "alice", kRealm, "wonderland");
  char nc_text[9];
  std::snprintf(nc_text, sizeof(nc_text), "%08x", nc);
  ResponseInputs in{a, ha1.view(), nonce, nc_text, "0a4f113b", Qop::kAuth, "REGISTER", kUri};
  return "Digest username=\"alice\", realm=\"example.com\", nonce=\"" + std::string(nonce) +
         "\", uri=\"sip:example.com\", response=\"" + std::string(computeResponse(in).view()) +
         "\", algorithm=" + std::string(algorithmName(a)) + ", cnonce=\"0a4f113b\", nc=" + nc_text +
         ", qop=auth";
}

// Parse + verify of one Authorization value (no nonce table, no store).
void BM_ParseAndVerify(benchmark::State& state, DigestAlgorithm a) {
  NonceManager nonces(kSecret, {});
  std::string h = credentials(a, nonces.generate(kRealm, kNow), 1);
  HexDigest ha1 = computeHa1(a, "alice", kRealm, "wonderland");
  for (auto _ : state) {
    Result<DigestCredentials> c = parseDigestCredentials(h);
    benchmark::DoNotOptimize(verifyResponse(*c, "REGISTER", ha1.view()));
  }
}
BENCHMARK_CAPTURE(BM_ParseAndVerify, md5, DigestAlgorithm::kMd5);
BENCHMARK_CAPTURE(BM_ParseAndVerify, sha256, DigestAlgorithm::kSha256);

// The whole decision: parse, nonce MAC, lookup (in-memory), verify, nc record.
void BM_Authenticate(benchmark::State& state, DigestAlgorithm a) {
  UserHa1 stored{computeHa1(DigestAlgorithm::kMd5, "alice", kRealm, "wonderland"),
                 computeHa1(DigestAlgorithm::kSha256, "alice", kRealm, "wonderland")};
  AuthConfig cfg;
  cfg.secret = kSecret;
  Authenticator auth(
      cfg, [&](std::string_view, std::string_view) { return std::optional<UserHa1>(stored); },
      TrustedPeers());
  std::string nonce = auth.nonces().generate(kRealm, kNow);
  // Pre-built values with rising nc so every iteration is a first use (no replay path).
  std::vector<std::string> headers;
  for (std::uint32_t nc = 1; nc <= 4096; ++nc) headers.push_back(credentials(a, nonce, nc));
  std::size_t i = 0;
  benchmark::IterationCount ok = 0;
  for (auto _ : state) {
    if (i == headers.size()) {
      state.PauseTiming();
      nonce = auth.nonces().generate(kRealm, kNow);
      for (std::uint32_t nc = 1; nc <= headers.size(); ++nc)
        headers[nc - 1] = credentials(a, nonce, nc);
      i = 0;
      state.ResumeTiming();
    }
    std::string_view v = headers[i++];
    AuthRequest r{"REGISTER", kUri,         std::span<const std::string_view>(&v, 1),
                  kRealm,     "192.0.2.1",  false,
                  kNow,       std::nullopt, "bench/1.0"};
    AuthResult res = auth.authenticate(r);
    ok += std::holds_alternative<Authenticated>(res);
  }
  if (ok != state.iterations()) state.SkipWithError("not every request authenticated");
}
BENCHMARK_CAPTURE(BM_Authenticate, md5, DigestAlgorithm::kMd5);
BENCHMARK_CAPTURE(BM_Authenticate, sha256, DigestAlgorithm::kSha256);

void BM_NonceGenerate(benchmark::State& state) {
  NonceManager nonces(kSecret, {});
  for (auto _ : state) benchmark::DoNotOptimize(nonces.generate(kRealm, kNow));
}
BENCHMARK(BM_NonceGenerate);

void BM_NonceCheck(benchmark::State& state) {
  NonceManager nonces(kSecret, {});
  std::string n = nonces.generate(kRealm, kNow);
  for (auto _ : state) benchmark::DoNotOptimize(nonces.check(n, kRealm, kNow));
}
BENCHMARK(BM_NonceCheck);

void BM_Challenge(benchmark::State& state) {
  AuthConfig cfg;
  cfg.secret = kSecret;
  Authenticator auth(
      cfg, [](std::string_view, std::string_view) { return std::optional<UserHa1>(); },
      TrustedPeers());
  for (auto _ : state) benchmark::DoNotOptimize(auth.challenge(kRealm, false, false, kNow));
}
BENCHMARK(BM_Challenge);

}  // namespace
}  // namespace sipwake::auth

BENCHMARK_MAIN();
