// TimelineRecorder: bounded ring, newest first, search by AOR and Call-ID; the log text.
#include "routing/timeline.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace sipwake::routing {
namespace {

TimelineStep step(std::int64_t ms, std::string what, std::string text) {
  TimelineStep s;
  s.ms = ms;
  s.what = std::move(what);
  s.text = std::move(text);
  return s;
}

Timeline timeline(std::string call_id, std::string callee) {
  Timeline t;
  t.call_id = std::move(call_id);
  t.callee = std::move(callee);
  return t;
}

TEST(TimelineRecorderTest, KeepsOnlyTheLastNNewestFirst) {
  TimelineRecorder r(3);
  for (int i = 0; i < 5; ++i) r.record(timeline("c" + std::to_string(i), "sip:a@x"));
  EXPECT_EQ(r.size(), 3u);
  auto all = r.recent(10);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].call_id, "c4");
  EXPECT_EQ(all[2].call_id, "c2");
  EXPECT_TRUE(r.byCallId("c1", 10).empty());  // dropped
  EXPECT_EQ(r.recent(2).size(), 2u);
}

TEST(TimelineRecorderTest, FindsByAorAndCallId) {
  TimelineRecorder r(10);
  r.record(timeline("c1", "sip:alice@x"));
  r.record(timeline("c2", "sip:bob@x"));
  r.record(timeline("c3", "sip:alice@x"));
  r.record(timeline("c1", "sip:alice@x"));  // a second wake of the same call (a retry)
  auto alice = r.byAor("sip:alice@x", 10);
  ASSERT_EQ(alice.size(), 3u);
  EXPECT_EQ(alice[0].call_id, "c1");
  EXPECT_EQ(alice[1].call_id, "c3");
  EXPECT_EQ(r.byAor("sip:alice@x", 1).size(), 1u);
  EXPECT_EQ(r.byCallId("c1", 10).size(), 2u);
  EXPECT_EQ(r.byCallId("c2", 10)[0].callee, "sip:bob@x");
}

TEST(TimelineRecorderTest, ZeroCapacityKeepsNothing) {
  TimelineRecorder r(0);
  r.record(timeline("c1", "sip:a@x"));
  EXPECT_EQ(r.size(), 0u);
  EXPECT_TRUE(r.recent(5).empty());
}

TEST(TimelineRecorderTest, LoopsRecordWhileAnotherReads) {
  TimelineRecorder r(50);
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&r, w] {
      for (int i = 0; i < 500; ++i)
        r.record(timeline(std::to_string(w) + ":" + std::to_string(i), "sip:a@x"));
    });
  }
  for (int i = 0; i < 200; ++i) EXPECT_LE(r.byAor("sip:a@x", 100).size(), 50u);
  for (auto& t : writers) t.join();
  EXPECT_EQ(r.size(), 50u);
}

TEST(TimelineTextTest, OffsetsAndTextsAsTheLogShowsThem) {
  Timeline t;
  t.steps.push_back(step(0, "INVITE parked", "INVITE in (0 live contacts)"));
  t.steps.push_back(step(40, "provider answered", "provider answer ok 200 for fcm:1"));
  EXPECT_EQ(timelineText(t),
            " +0ms INVITE in (0 live contacts); +40ms provider answer ok 200 for fcm:1;");
}

}  // namespace
}  // namespace sipwake::routing
