#include "routing/timeline.h"

#include <utility>

namespace sipwake::routing {

std::string timelineText(const Timeline& t) {
  std::string text;
  for (const TimelineStep& s : t.steps) {
    text += " +" + std::to_string(s.ms) + "ms " + s.text + ";";
  }
  return text;
}

void TimelineRecorder::record(Timeline t) {
  if (capacity_ == 0) return;
  std::lock_guard lock(mu_);
  if (ring_.size() == capacity_) ring_.pop_front();
  ring_.push_back(std::move(t));
}

template <typename Match>
std::vector<Timeline> TimelineRecorder::newest(std::size_t limit, Match match) const {
  std::vector<Timeline> out;
  std::lock_guard lock(mu_);
  for (auto it = ring_.rbegin(); it != ring_.rend() && out.size() < limit; ++it) {
    if (match(*it)) out.push_back(*it);
  }
  return out;
}

std::vector<Timeline> TimelineRecorder::byAor(std::string_view aor, std::size_t limit) const {
  return newest(limit, [aor](const Timeline& t) { return t.callee == aor; });
}

std::vector<Timeline> TimelineRecorder::byCallId(std::string_view call_id,
                                                 std::size_t limit) const {
  return newest(limit, [call_id](const Timeline& t) { return t.call_id == call_id; });
}

std::vector<Timeline> TimelineRecorder::recent(std::size_t limit) const {
  return newest(limit, [](const Timeline&) { return true; });
}

std::size_t TimelineRecorder::size() const {
  std::lock_guard lock(mu_);
  return ring_.size();
}

}  // namespace sipwake::routing
