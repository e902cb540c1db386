// Location lookup (src/location BindingIndex, the in-memory index every LocationStore serves
// lookups from): an AOR among N registered ones (one realistic mobile binding each, the
// synthetic bindings of bench/location), N = 100k and 1M.
//   BM_LocationLookup: lookup() — hash, shard lock, expiry filter, copy of the live bindings
//     (what the proxy gets for an INVITE).
//   BM_LocationSnapshot: get() — the same hit handing out the immutable snapshot, no copy.
//   BM_LocationMiss: an unknown AOR.
// Bench/location has the store-level figures (memory per binding, load time, REGISTER rate).
// Run: build-release/bench/micro/sipwake_bench_micro --benchmark_filter=Location
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_bindings.h"
#include "location/binding_index.h"

namespace sipwake::location {
namespace {

using bench::aorFor;
using bench::kNow;

// One index per size, built on first use and kept for the process (1M bindings take seconds).
BindingIndex& indexOf(int n) {
  static std::map<int, std::unique_ptr<BindingIndex>> indexes;
  std::unique_ptr<BindingIndex>& slot = indexes[n];
  if (!slot) {
    slot = std::make_unique<BindingIndex>();
    for (int i = 0; i < n; ++i) {
      slot->put(aorFor(i),
                std::make_shared<const std::vector<Binding>>(1, bench::realisticBinding(i)));
    }
  }
  return *slot;
}

std::vector<std::string> randomAors(int n) {
  std::mt19937 rng(1);
  std::vector<std::string> keys;
  for (int i = 0; i < 4096; ++i) keys.push_back(aorFor(static_cast<int>(rng() % n)));
  return keys;
}

void BM_LocationLookup(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  BindingIndex& index = indexOf(n);
  const std::vector<std::string> keys = randomAors(n);
  std::size_t k = 0;
  for (auto _ : state) {
    std::vector<Binding> found = index.lookup(keys[k++ & 4095], kNow);
    if (found.size() != 1) state.SkipWithError("registered AOR not found");
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LocationLookup)->Arg(100'000)->Arg(1'000'000);

void BM_LocationSnapshot(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  BindingIndex& index = indexOf(n);
  const std::vector<std::string> keys = randomAors(n);
  std::size_t k = 0;
  for (auto _ : state) {
    BindingIndex::Snapshot snap = index.get(keys[k++ & 4095]);
    if (!snap) state.SkipWithError("registered AOR not found");
    benchmark::DoNotOptimize(snap);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LocationSnapshot)->Arg(100'000)->Arg(1'000'000);

void BM_LocationMiss(benchmark::State& state) {
  BindingIndex& index = indexOf(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    std::vector<Binding> found = index.lookup("sip:nobody@example.com", kNow);
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LocationMiss)->Arg(100'000)->Arg(1'000'000);

}  // namespace
}  // namespace sipwake::location
