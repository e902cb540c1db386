// Synthetic bindings shared by bench_location and bench_location_scale: realistic mobile
// registrations (RFC 5626 instance + reg-id, one Path, TLS flow), one per AOR.
#pragma once
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <string>
#include <thread>

#include "location/sqlite_location_store.h"

namespace sipwake::location::bench {

inline const SysSeconds kNow{std::chrono::seconds(1'700'000'000)};
inline std::string aorFor(int i) {
  return "sip:user" + std::to_string(100000 + i) + "@example.com";
}

// A binding as a mobile client behind an edge proxy registers it (RFC 5626 + Path).
inline Binding realisticBinding(int i) {
  Binding b;
  b.aor = aorFor(i);
  b.contact_uri = "sip:user" + std::to_string(100000 + i) + "@198.51.100." +
                  std::to_string(i % 250) + ":" + std::to_string(40000 + i % 20000) +
                  ";transport=tls;ob";
  b.instance_id = "<urn:uuid:6f2b3c1e-8a4d-4e5f-9b7a-" + std::to_string(100000000000 + i) + ">";
  b.reg_id = 1;
  b.call_id = "a84b4c76e66710-" + std::to_string(i) + "@198.51.100.1";
  b.cseq = 1;
  b.expires_at = kNow + std::chrono::hours(1);
  b.q_milli = 1000;
  b.path = {"<sip:edge1.example.com;lr;ob>"};
  b.received = {"tls", "198.51.100." + std::to_string(i % 250),
                static_cast<std::uint16_t>(40000 + i % 20000), "tls:192.0.2.1:5061",
                static_cast<std::uint64_t>(i)};
  b.user_agent = "Linphone/5.2.0 (iPhone) LinphoneSDK/5.3";
  b.registered_at = kNow;
  return b;
}

inline RegistrationChange changeFor(int i) {
  RegistrationChange c;
  c.aor = aorFor(i);
  c.call_id = "a84b4c76e66710-" + std::to_string(i) + "@198.51.100.1";
  c.cseq = 1;
  c.now = kNow;
  c.upserts = {realisticBinding(i)};
  return c;
}

inline std::size_t rssBytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// Writes n registrations through the store with up to `window` in flight; returns when all done.
inline void writeMany(SqliteLocationStore& store, int first, int n, int window) {
  std::atomic<int> in_flight{0}, done{0};
  std::promise<void> all;
  for (int i = first; i < first + n; ++i) {
    while (in_flight.load() >= window) std::this_thread::yield();
    ++in_flight;
    store.applyRegistration(
        changeFor(i), [](std::function<void()> f) { f(); },
        [&, n](Result<std::vector<Binding>> r) {
          if (!r) std::abort();
          --in_flight;
          if (++done == n) all.set_value();
        });
  }
  all.get_future().wait();
}

}  // namespace sipwake::location::bench
