// Push building and signing (src/push), per call:
//   BM_ApnsBuildRequest / BM_FcmBuildRequest: the POST (path, headers, JSON body) for an incoming
//     call event to an iOS VoIP binding / an Android FCM binding (apns::buildRequest with a
//     provider JWT and a fixed apns-id; fcm::buildRequest with an access token).
//   BM_ApnsProviderJwt: ES256 APNs provider token (makeApnsJwt, P-256).
//   BM_FcmAssertionJwt: RS256 service-account assertion (makeFcmAssertion, RSA-2048).
// Keys are generated once at start-up; signing uses OpenSSL as the sender does.
// Run: build-release/bench/micro/sipwake_bench_micro --benchmark_filter='Apns|Fcm'
#include <benchmark/benchmark.h>

#include <string>

#include "push/apns.h"
#include "push/fcm.h"
#include "push/jwt.h"
#include "push/payload.h"
#include "push/push_params.h"

namespace sipwake::push {
namespace {

CallEvent incomingCall() {
  CallEvent ev;
  ev.kind = CallEventKind::kCall;
  ev.call_id = "3848276298220188511@192.0.2.10";
  ev.callee_aor = "sip:bob@example.com";
  ev.call_uuid = deriveCallUuid(ev.call_id, ev.callee_aor);
  ev.caller_uri = "sip:alice@example.com";
  ev.caller_display_name = "Alice";
  ev.sent_at_ms = 1'700'000'000'000;
  return ev;
}

PushBinding apnsBinding() {
  PushBinding b;
  b.provider = Provider::kApns;
  b.app_id = "com.example.voip";
  b.team_id = "ABCD1234";
  b.voip_token = "00fc13adff785122b4ad28809a3420982341241421348097878e577c991de8f0";
  return b;
}

PushBinding fcmBinding() {
  PushBinding b;
  b.provider = Provider::kFcm;
  b.app_id = "com.example.phone";
  b.project_id = "example-phone";
  b.message_token =
      "fGx9ZJ8rQm2k7Yb3:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx1_ZmgrKqJmEuDQ9ONoSSvGZ2t4xS0fVfB1M7q"
      "oCsVw0WzcvvNm-VuBpR4I3J2XX5ZxS0NYfHUPQ5jEhcfGxqQw6gH0q3s8M2r2";
  return b;
}

const Key& ecKey() {
  static const Key key = [] {
    Result<Key> k = Key::generateEcP256();
    if (!k) std::abort();
    return *k;
  }();
  return key;
}

const ServiceAccount& serviceAccount() {
  static const ServiceAccount sa = [] {
    Result<Key> k = Key::generateRsa(2048);
    if (!k) std::abort();
    ServiceAccount s;
    s.client_email = "sipwake@example-phone.iam.gserviceaccount.com";
    s.private_key_id = "0123456789abcdef0123456789abcdef01234567";
    s.token_uri = "https://oauth2.googleapis.com/token";
    s.project_id = "example-phone";
    s.private_key = *k;
    return s;
  }();
  return sa;
}

// Calls `make` (returning a Result) once per iteration; any error ends the benchmark.
template <typename Make>
void runExpectingOk(benchmark::State& state, Make&& make) {
  for (auto _ : state) {
    auto r = make();
    if (!r) state.SkipWithError(r.status().toString().c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ApnsBuildRequest(benchmark::State& state) {
  const PushBinding binding = apnsBinding();
  const CallEvent event = incomingCall();
  apns::RequestOptions options;
  options.type = apns::PushType::kVoip;
  Result<std::string> jwt = makeApnsJwt(ecKey(), "KEYID12345", binding.team_id, 1'700'000'000);
  if (!jwt) std::abort();
  options.bearer_jwt = *jwt;
  options.apns_id = event.call_uuid;  // fixed: no random UUID per iteration
  runExpectingOk(state, [&] { return apns::buildRequest(binding, event, options); });
}
BENCHMARK(BM_ApnsBuildRequest);

void BM_FcmBuildRequest(benchmark::State& state) {
  const PushBinding binding = fcmBinding();
  const CallEvent event = incomingCall();
  fcm::RequestOptions options;
  options.access_token = "ya29.c.b0AXv0zTNbench-access-token-0123456789abcdefghijklmnopqrstuvwxyz";
  runExpectingOk(state, [&] { return fcm::buildRequest(binding, event, options); });
}
BENCHMARK(BM_FcmBuildRequest);

void BM_ApnsProviderJwt(benchmark::State& state) {
  const Key& key = ecKey();
  std::int64_t iat = 1'700'000'000;
  runExpectingOk(state, [&] { return makeApnsJwt(key, "KEYID12345", "ABCD1234", iat++); });
}
BENCHMARK(BM_ApnsProviderJwt);

void BM_FcmAssertionJwt(benchmark::State& state) {
  const ServiceAccount& sa = serviceAccount();
  std::int64_t iat = 1'700'000'000;
  runExpectingOk(state, [&] { return makeFcmAssertion(sa, iat++); });
}
BENCHMARK(BM_FcmAssertionJwt);

}  // namespace
}  // namespace sipwake::push
