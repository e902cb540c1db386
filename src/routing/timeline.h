// Wake timelines: what happened to one woken request (an INVITE or MESSAGE parked while its
// devices were pushed), step by step with millisecond offsets and each push service's answer.
// WakeAndWait builds one per parked request and, when the request ends, logs it (one info line)
// and records it in the TimelineRecorder: a bounded ring of the last N, which the admin API
// (GET /api/timelines) searches by AOR or Call-ID.
//
// Thread: TimelineRecorder is thread-safe (every loop records, the admin listener on loop 0
// reads); a Timeline is a plain value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace sipwake::routing {

struct TimelineStep {
  std::int64_t ms = 0;  // since the request was parked
  // What happened, a fixed vocabulary: "INVITE parked", "MESSAGE parked", "push sent",
  // "provider answered", "re-push", "REGISTER", "INVITE out", "ring timeout", "final", ...
  std::string what;
  std::string text;        // the step as the log line tells it ("push call sent to fcm:f26a1b2c")
  std::string device_key;  // the device concerned; empty when none
  std::string provider;    // "apns", "fcm", "webpush"; empty when none
  int status = 0;          // "provider answered": the provider's HTTP status (0: none)
  std::string reason;      // "provider answered": the provider's reason ("" when accepted)
  std::string outcome;     // "provider answered": "ok", "remove-binding", "transient", ...
};

struct Timeline {
  std::string call_id;
  std::string caller;         // the From URI
  std::string callee;         // the AOR ("sip:alice@example.com")
  std::string method;         // "INVITE" or "MESSAGE"
  std::int64_t start_ms = 0;  // Unix epoch milliseconds
  // How it ended: "answered", "forwarded" (another final response came from a woken or live
  // device), "ring_timeout", "cancelled", "push_failed", "no_device", "stored".
  std::string outcome;
  int final_code = 0;
  std::vector<TimelineStep> steps;
};

// The log text of a timeline: " +0ms INVITE in (0 live contacts); +3ms push call sent to
// fcm:f26a1b2c; ..." (each step's offset and text).
std::string timelineText(const Timeline& t);

// The last `capacity` timelines; older ones are dropped as new ones come (capacity 0: none kept).
class TimelineRecorder {
 public:
  explicit TimelineRecorder(std::size_t capacity) : capacity_(capacity) {}

  void record(Timeline t);
  // Newest first, at most `limit`; `aor` is canonical (registrar::canonicalAor). A linear scan
  // of the ring (at most [admin] timelines entries, an operator's query, not per request).
  std::vector<Timeline> byAor(std::string_view aor, std::size_t limit) const;
  std::vector<Timeline> byCallId(std::string_view call_id, std::size_t limit) const;
  std::vector<Timeline> recent(std::size_t limit) const;
  std::size_t size() const;
  std::size_t capacity() const { return capacity_; }

 private:
  template <typename Match>
  std::vector<Timeline> newest(std::size_t limit, Match match) const;

  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::deque<Timeline> ring_;  // oldest first
};

}  // namespace sipwake::routing
