#include "auth/user_limiter.h"

#include <gtest/gtest.h>

#include <string>

namespace sipwake::auth {
namespace {

const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);
constexpr std::string_view kRealm = "example.com";

SourceKey src(int i) { return sourceKeyOf("192.0.2." + std::to_string(i), 64); }

UserLimiterConfig defaults() { return UserLimiterConfig{}; }  // 5 failures, 60 s .. 3600 s

// `n` failures for `user` from sources first..first+n-1, one a second from `t`.
void failFrom(UserLimiter& u, std::string_view user, int first, int n, TimePoint t) {
  for (int i = 0; i < n; ++i) u.recordFailure(user, kRealm, src(first + i), t + seconds(i));
}

TEST(UserLimiter, DelayAfterMaxFailuresRefusesGuessingSourcesOnly) {
  UserLimiter u(defaults());
  EXPECT_TRUE(u.admit("alice", kRealm, src(1), kT0).check);
  for (int i = 1; i <= 4; ++i) EXPECT_FALSE(u.recordFailure("alice", kRealm, src(i), kT0));
  EXPECT_TRUE(u.recordFailure("alice", kRealm, src(5), kT0));  // the fifth starts the delay
  const TimePoint t = kT0 + seconds(10);
  UserLimiter::Admission failing = u.admit("alice", kRealm, src(3), t);
  EXPECT_FALSE(failing.check);
  EXPECT_EQ(failing.retry_after, seconds(50));
  // A source that has not been guessing is checked: the real user on a new network gets in.
  UserLimiter::Admission fresh = u.admit("alice", kRealm, src(6), t);
  EXPECT_TRUE(fresh.check);
  EXPECT_TRUE(fresh.fresh_check);
  EXPECT_TRUE(u.admit("alice", kRealm, src(7), t).check);
  u.recordFailure("alice", kRealm, src(6), t);  // ... until it answers wrongly
  EXPECT_FALSE(u.admit("alice", kRealm, src(6), t).check);
  // A source guessing another user's password is a guesser for alice too.
  u.recordFailure("carol", kRealm, src(8), t);
  EXPECT_FALSE(u.admit("alice", kRealm, src(8), t).check);
  // Other users and other realms are not delayed.
  EXPECT_TRUE(u.admit("bob", kRealm, src(3), t).check);
  EXPECT_TRUE(u.admit("alice", "example.org", src(3), t).check);
  // The delay (doubled by src(6)'s failure at t: 120 s from then) runs out: everyone is checked.
  EXPECT_FALSE(u.admit("alice", kRealm, src(3), t + seconds(119)).check);
  EXPECT_TRUE(u.admit("alice", kRealm, src(3), t + seconds(120)).check);
}

TEST(UserLimiter, KnownSourceCheckedDuringTheDelayUntilItFails) {
  UserLimiter u(defaults());
  u.recordSuccess("alice", kRealm, src(100));
  failFrom(u, "alice", 1, 5, kT0);
  UserLimiter::Admission a = u.admit("alice", kRealm, src(100), kT0 + seconds(10));
  EXPECT_TRUE(a.check);
  EXPECT_TRUE(a.known_source);
  EXPECT_TRUE(u.knownSource("alice", kRealm, src(100)));
  // A wrong answer from it: failing, no longer known, and the delay doubles.
  EXPECT_TRUE(u.recordFailure("alice", kRealm, src(100), kT0 + seconds(10)));
  EXPECT_FALSE(u.knownSource("alice", kRealm, src(100)));
  UserLimiter::Admission b = u.admit("alice", kRealm, src(100), kT0 + seconds(11));
  EXPECT_FALSE(b.check);
  EXPECT_EQ(b.retry_after, seconds(119));
  // A success (after the delay) makes it known and not failing again.
  u.recordSuccess("alice", kRealm, src(100));
  EXPECT_TRUE(u.knownSource("alice", kRealm, src(100)));
  EXPECT_TRUE(u.admit("alice", kRealm, src(100), kT0 + seconds(12)).known_source);
}

TEST(UserLimiter, KnownSourcesAreTheMostRecentFour) {
  UserLimiter u(defaults());
  for (int i = 1; i <= 5; ++i) u.recordSuccess("alice", kRealm, src(i));
  u.recordSuccess("alice", kRealm, src(2));  // again: most recent, no duplicate
  EXPECT_FALSE(u.knownSource("alice", kRealm, src(1)));
  for (int i = 2; i <= 5; ++i) EXPECT_TRUE(u.knownSource("alice", kRealm, src(i))) << i;
  EXPECT_FALSE(u.knownSource("bob", kRealm, src(2)));
}

TEST(UserLimiter, DelayDoublesUpToMaxAndIsForgottenAfterQuiet) {
  UserLimiter u(defaults());
  failFrom(u, "alice", 1, 5, kT0);
  TimePoint t = kT0 + seconds(4);  // delay 60 s from here
  Duration expect = seconds(60);
  for (int round = 0; round < 8; ++round) {
    t += expect;  // the delay ran out: the next failure starts a doubled one
    EXPECT_TRUE(u.admit("alice", kRealm, src(1), t).check);
    EXPECT_TRUE(u.recordFailure("alice", kRealm, src(1), t));
    expect = std::min<Duration>(2 * expect, seconds(3600));
    EXPECT_EQ(u.admit("alice", kRealm, src(1), t).retry_after, expect) << round;
  }
  // Quiet for max_delay after the delay: forgotten, the next failure counts from one again.
  t += expect + seconds(3600);
  EXPECT_FALSE(u.recordFailure("alice", kRealm, src(1), t));
  EXPECT_TRUE(u.admit("alice", kRealm, src(1), t).check);
}

TEST(UserLimiter, FailuresOlderThanMaxDelayDoNotCount) {
  UserLimiter u(defaults());
  failFrom(u, "alice", 1, 4, kT0);
  EXPECT_FALSE(u.recordFailure("alice", kRealm, src(5), kT0 + seconds(3700)));
  EXPECT_TRUE(u.admit("alice", kRealm, src(9), kT0 + seconds(3701)).check);
}

// A spread attack: 20 addresses taking turns, one guess a second for three hours. Checked
// answers (guesses that could succeed) stay within max_failures + one per address + one as each
// delay runs out in the first hour, then about 2 an hour.
TEST(UserLimiter, SpreadAttackGetsAFewGuessesPerHour) {
  UserLimiter u(defaults());
  int per_hour[3] = {0, 0, 0};
  for (int s = 0; s < 3 * 3600; ++s) {
    const TimePoint t = kT0 + seconds(s);
    const SourceKey source = sourceKeyOf("2001:db8:" + std::to_string(s % 20) + "::1", 64);
    if (!u.admit("alice", kRealm, source, t).check) continue;
    ++per_hour[s / 3600];
    u.recordFailure("alice", kRealm, source, t);
  }
  EXPECT_LE(per_hour[0], 5 + 20 + 6);
  EXPECT_LE(per_hour[1], 3);
  EXPECT_LE(per_hour[2], 3);
}

// Every address is new (a botnet): each gets one guess, the price of never locking out the real
// user on a new network. Documented in docs/security.md.
TEST(UserLimiter, EachNewAddressGetsOneGuess) {
  UserLimiter u(defaults());
  int checked = 0;
  for (int s = 0; s < 600; ++s) {
    const SourceKey source = sourceKeyOf("2001:db8:" + std::to_string(s) + "::1", 64);
    for (int again = 0; again < 3; ++again) {
      const TimePoint t = kT0 + seconds(s) + milliseconds(again);
      if (!u.admit("alice", kRealm, source, t).check) continue;
      ++checked;
      u.recordFailure("alice", kRealm, source, t);
    }
  }
  EXPECT_GE(checked, 600);      // every new address once
  EXPECT_LE(checked, 600 + 6);  // and an address's retry just as a delay runs out
}

TEST(UserLimiter, GuessersCannotEvictKnownSources) {
  UserLimiterConfig c = defaults();
  c.capacity = 64;
  UserLimiter u(c);
  u.recordSuccess("alice", kRealm, src(100));
  for (int i = 0; i < 1000; ++i) {
    u.recordFailure("user" + std::to_string(i), kRealm, src(1), kT0 + seconds(i));
  }
  EXPECT_LE(u.tracked().failing, 64u);
  EXPECT_TRUE(u.knownSource("alice", kRealm, src(100)));
}

TEST(UserLimiter, ZeroMaxFailuresDisables) {
  UserLimiterConfig c = defaults();
  c.max_failures = 0;
  UserLimiter u(c);
  failFrom(u, "alice", 1, 50, kT0);
  EXPECT_TRUE(u.admit("alice", kRealm, src(60), kT0 + seconds(50)).check);
  EXPECT_EQ(u.tracked().failing, 0u);
}

}  // namespace
}  // namespace sipwake::auth
