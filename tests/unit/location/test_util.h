// Shared helpers for the location tests: temp directories, binding builders, synchronous apply.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "location/location_store.h"

namespace sipwake::location::testing {

inline const SysSeconds kNow{std::chrono::seconds(1'700'000'000)};

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "sipwake-location-XXXXXX");
    char* made = mkdtemp(templ.data());
    if (made == nullptr) std::abort();
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// An APNs push binding whose VoIP token is `token`.
inline push::PushBinding tokenBinding(std::string token) {
  push::PushBinding b;
  b.app_id = "com.example.app";
  b.voip_token = std::move(token);
  return b;
}

inline Binding contact(std::string uri, int expires_in_s, std::string instance = {},
                       std::optional<std::uint32_t> reg_id = std::nullopt) {
  Binding b;
  b.contact_uri = std::move(uri);
  b.instance_id = std::move(instance);
  b.reg_id = reg_id;
  b.expires_at = kNow + std::chrono::seconds(expires_in_s);
  b.received = {"tcp", "198.51.100.7", 40123, "tcp:192.0.2.1:5060", 42};
  b.user_agent = "TestPhone/1.0";
  return b;
}

inline RegistrationChange reg(std::string aor, std::string call_id, std::uint32_t cseq,
                              std::vector<Binding> upserts, std::vector<Binding> removals = {},
                              SysSeconds now = kNow) {
  RegistrationChange c;
  c.aor = std::move(aor);
  c.call_id = std::move(call_id);
  c.cseq = cseq;
  c.now = now;
  c.upserts = std::move(upserts);
  c.removals = std::move(removals);
  return c;
}

inline Executor inlineExecutor() {
  return [](std::function<void()> f) { f(); };
}

// Applies `change` and waits (bounded) for its `done`.
inline Result<std::vector<Binding>> applySync(LocationStore& store, RegistrationChange change) {
  auto promise = std::make_shared<std::promise<Result<std::vector<Binding>>>>();
  auto future = promise->get_future();
  store.applyRegistration(
      std::move(change), inlineExecutor(),
      [promise](Result<std::vector<Binding>> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "applyRegistration did not complete within 10 s";
    return unavailable("timed out in test");
  }
  return future.get();
}

}  // namespace sipwake::location::testing
