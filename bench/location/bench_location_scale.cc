// Location store at scale (issue 5): N synthetic bindings (default 1,000,000), one per AOR.
//   bench_location_scale [--bindings N] [--dir DIR] [--lookups M]
// 1. A child process writes the N registrations through SqliteLocationStore (group commit) into
//    DIR/scale-N.db (kept: a second run reuses it and skips this step).
// 2. This process (which has not touched the bindings yet) opens and loads the store - the restart
//    time - and reports the RSS and heap growth of the loaded index.
// 3. M lookup() calls of random registered AORs (copying the binding), and M misses.
// Prints one line per figure and a JSON line at the end.
#include <malloc.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "bench_bindings.h"
#include "common/log.h"

namespace {

using namespace sipwake::location;         // NOLINT
using namespace sipwake::location::bench;  // NOLINT
using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int usage() {
  std::fprintf(stderr, "usage: bench_location_scale [--bindings N] [--dir DIR] [--lookups M]\n");
  return 2;
}

// Step 1, in a child process so that its heap does not blur this process's memory figures.
bool writeStore(const std::string& path, int n) {
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    auto opened = SqliteLocationStore::open(path + ".tmp");
    if (!opened) _exit(1);
    auto store = std::move(opened).value();
    if (!store->load(kNow)) _exit(1);
    auto t0 = Clock::now();
    writeMany(*store, 0, n, 2000);
    double s = secondsSince(t0);
    std::printf("write: %d registrations in %.1f s (%.0f/s, group commit, synchronous=NORMAL)\n", n,
                s, n / s);
    std::fflush(stdout);
    store.reset();
    _exit(0);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return false;
  }
  std::error_code ec;
  for (const char* ext : {"", "-wal", "-shm"}) {
    if (std::filesystem::exists(path + ".tmp" + ext)) {
      std::filesystem::rename(path + ".tmp" + ext, path + ext, ec);
      if (ec) return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 1'000'000, lookups = 1'000'000;
  std::string dir = std::filesystem::temp_directory_path() / "sipwake-location-scale";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return usage();
    if (a == "--bindings") {
      n = std::atoi(argv[++i]);
    } else if (a == "--dir") {
      dir = argv[++i];
    } else if (a == "--lookups") {
      lookups = std::atoi(argv[++i]);
    } else {
      return usage();
    }
  }
  if (n <= 0 || lookups <= 0) return usage();
  spdlog::set_level(spdlog::level::warn);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/scale-" + std::to_string(n) + ".db";
  if (!std::filesystem::exists(path) && !writeStore(path, n)) {
    std::fprintf(stderr, "bench_location_scale: writing %s failed\n", path.c_str());
    return 1;
  }
  const double db_mb = static_cast<double>(std::filesystem::file_size(path)) / 1e6;

  // 2. Restart: open + load, and the memory the loaded bindings take.
  malloc_trim(0);
  const std::size_t rss0 = rssBytes(), heap0 = mallinfo2().uordblks;
  auto t0 = Clock::now();
  auto opened = SqliteLocationStore::open(path);
  if (!opened) return std::fprintf(stderr, "open failed\n"), 1;
  auto store = std::move(opened).value();
  auto report = store->load(kNow);
  const double load_s = secondsSince(t0);
  if (!report || report->bindings != static_cast<std::size_t>(n)) {
    std::fprintf(stderr, "load: expected %d bindings, got %zu\n", n, report ? report->bindings : 0);
    return 1;
  }
  const std::size_t rss1 = rssBytes(), heap1 = mallinfo2().uordblks;
  const double rss_mb = static_cast<double>(rss1) / 1e6;
  const double rss_per = static_cast<double>(rss1 - rss0) / n;
  const double heap_per = static_cast<double>(heap1 - heap0) / n;
  std::printf("restart: open + load of %d bindings %.2f s (store's own timer %.2f s), DB %.0f MB\n",
              n, load_s, static_cast<double>(report->duration.count()) / 1e6, db_mb);
  std::printf("memory: process RSS %.0f MB after load; +%.0f B RSS and +%.0f B heap per binding\n",
              rss_mb, rss_per, heap_per);

  // 3. Lookups: random hits (lookup() copies the binding out) and misses.
  std::mt19937 rng(42);
  std::vector<std::string> keys;
  keys.reserve(65536);
  for (int i = 0; i < 65536; ++i) keys.push_back(aorFor(static_cast<int>(rng() % n)));
  std::size_t found = 0;
  t0 = Clock::now();
  for (int i = 0; i < lookups; ++i) found += store->lookup(keys[i & 65535], kNow).size();
  const double hit_ns = secondsSince(t0) * 1e9 / lookups;
  if (found != static_cast<std::size_t>(lookups)) {
    std::fprintf(stderr, "lookup: %zu of %d found\n", found, lookups);
    return 1;
  }
  t0 = Clock::now();
  for (int i = 0; i < lookups; ++i) found += store->lookup("sip:nobody@example.com", kNow).size();
  const double miss_ns = secondsSince(t0) * 1e9 / lookups;
  std::printf("lookup: hit %.0f ns, miss %.0f ns (1 thread, %d each, random AORs of %d)\n", hit_ns,
              miss_ns, lookups, n);
  std::printf(
      "{\"bindings\":%d,\"load_s\":%.3f,\"db_mb\":%.1f,\"rss_mb\":%.1f,\"rss_b_per_binding\":%.0f,"
      "\"heap_b_per_binding\":%.0f,\"lookup_hit_ns\":%.0f,\"lookup_miss_ns\":%.0f}\n",
      n, load_s, db_mb, rss_mb, rss_per, heap_per, hit_ns, miss_ns);
  return 0;
}
