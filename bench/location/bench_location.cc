// Location store figures for docs/performance.md:
//   lookup latency, memory per binding (100k bindings), load time of 100k bindings,
//   and group-committed REGISTER throughput.
// Run: build-*/src/location/bench/bench_location [--benchmark_filter=...]
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>

#include "bench_bindings.h"
#include "common/log.h"
#include "location/binding_index.h"
#include "location/sqlite_location_store.h"

namespace sipwake::location {
namespace {

using namespace bench;  // NOLINT: the shared synthetic bindings

constexpr int kBindings = 100'000;

void populate(BindingIndex& index, int n) {
  for (int i = 0; i < n; ++i) {
    index.put(aorFor(i), std::make_shared<const std::vector<Binding>>(
                             std::vector<Binding>{realisticBinding(i)}));
  }
}

// Memory per binding: heap bytes in use (mallinfo2) and RSS growth for 100k one-binding AORs.
void BM_MemoryPerBinding(benchmark::State& state) {
  for (auto _ : state) {
    malloc_trim(0);
    std::size_t heap_before = mallinfo2().uordblks;
    std::size_t rss_before = rssBytes();
    auto index = std::make_unique<BindingIndex>();
    populate(*index, kBindings);
    std::size_t heap_after = mallinfo2().uordblks;
    std::size_t rss_after = rssBytes();
    state.counters["heap_B_per_binding"] =
        static_cast<double>(heap_after - heap_before) / kBindings;
    state.counters["rss_B_per_binding"] = static_cast<double>(rss_after - rss_before) / kBindings;
    state.counters["sizeof_Binding"] = sizeof(Binding);
  }
}
BENCHMARK(BM_MemoryPerBinding)->Iterations(1)->Unit(benchmark::kMillisecond);

BindingIndex& sharedIndex() {
  static BindingIndex* index = [] {
    auto* idx = new BindingIndex();
    populate(*idx, kBindings);
    return idx;
  }();
  return *index;
}

// lookup() of a random registered AOR among 100k (one binding each): hash, shard lock, copy.
void BM_Lookup(benchmark::State& state) {
  BindingIndex& index = sharedIndex();
  std::vector<std::string> keys;
  std::mt19937 rng(static_cast<unsigned>(state.thread_index()) + 1);
  for (int i = 0; i < 4096; ++i) keys.push_back(aorFor(static_cast<int>(rng() % kBindings)));
  std::size_t k = 0;
  for (auto _ : state) {
    auto found = index.lookup(keys[k++ & 4095], kNow);
    benchmark::DoNotOptimize(found);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Lookup)->Threads(1)->Threads(2)->UseRealTime();

// The same hit without copying: BindingIndex::get() hands out the immutable snapshot. The gap to
// BM_Lookup is the cost of copying a Binding (its strings).
void BM_LookupSnapshot(benchmark::State& state) {
  BindingIndex& index = sharedIndex();
  std::vector<std::string> keys;
  std::mt19937 rng(static_cast<unsigned>(state.thread_index()) + 1);
  for (int i = 0; i < 4096; ++i) keys.push_back(aorFor(static_cast<int>(rng() % kBindings)));
  std::size_t k = 0;
  for (auto _ : state) {
    auto snap = index.get(keys[k++ & 4095]);
    benchmark::DoNotOptimize(snap);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LookupSnapshot)->Threads(1)->Threads(2)->UseRealTime();

void BM_LookupMiss(benchmark::State& state) {
  BindingIndex& index = sharedIndex();
  for (auto _ : state) {
    auto found = index.lookup("sip:nobody@example.com", kNow);
    benchmark::DoNotOptimize(found);
  }
}
BENCHMARK(BM_LookupMiss);

std::string benchDir() {
  static std::string dir = [] {
    std::string templ = (std::filesystem::temp_directory_path() / "sipwake-bench-XXXXXX");
    if (mkdtemp(templ.data()) == nullptr) std::abort();
    return templ;
  }();
  return dir;
}

// Group-committed REGISTER throughput; arg 0 = synchronous NORMAL, 1 = FULL.
void BM_RegisterThroughput(benchmark::State& state) {
  const bool full = state.range(0) == 1;
  const std::string path = benchDir() + (full ? "/tp_full.db" : "/tp_normal.db");
  std::filesystem::remove(path);
  auto store = std::move(SqliteLocationStore::open(path, {.synchronous_full = full})).value();
  if (!store->load(kNow)) std::abort();
  int next = 0;
  constexpr int kPerIteration = 5000;
  for (auto _ : state) {
    writeMany(*store, next, kPerIteration, 1000);
    next += kPerIteration;
  }
  state.SetItemsProcessed(state.iterations() * kPerIteration);
}
BENCHMARK(BM_RegisterThroughput)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(4)
    ->UseRealTime();

// open() + load() of a database holding 100k bindings.
void BM_Load100k(benchmark::State& state) {
  const std::string path = benchDir() + "/load.db";
  if (!std::filesystem::exists(path)) {
    auto store = std::move(SqliteLocationStore::open(path)).value();
    if (!store->load(kNow)) std::abort();
    writeMany(*store, 0, kBindings, 2000);
  }
  for (auto _ : state) {
    auto store = std::move(SqliteLocationStore::open(path)).value();
    auto report = store->load(kNow);
    if (!report || report->bindings != static_cast<std::size_t>(kBindings)) std::abort();
    state.counters["load_ms"] = static_cast<double>(report->duration.count()) / 1000.0;
    state.PauseTiming();
    store.reset();  // destruction is not part of the load
    state.ResumeTiming();
  }
  state.counters["db_MB"] = static_cast<double>(std::filesystem::file_size(path)) / 1e6;
}
BENCHMARK(BM_Load100k)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace sipwake::location

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  std::filesystem::remove_all(sipwake::location::benchDir(), ec);
  return 0;
}
