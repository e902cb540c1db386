#include "registrar/services.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "location/user_store.h"
#include "registrar/maintenance.h"
#include "registrar/registrar.h"

namespace sipwake::registrar {
namespace {

std::string aorOf(std::string_view text) {
  auto uri = sip::parseUri(text);
  EXPECT_TRUE(uri.isOk()) << text;
  auto aor = canonicalAor(*uri);
  return aor.isOk() ? *aor : "error: " + aor.status().message();
}

TEST(CanonicalAor, DropsSchemePortParamsAndUnescapes) {
  EXPECT_EQ(aorOf("sip:alice@example.com"), "sip:alice@example.com");
  EXPECT_EQ(aorOf("sips:alice@EXAMPLE.com:5061;transport=tls"), "sip:alice@example.com");
  EXPECT_EQ(aorOf("sip:%61lice@example.com"), "sip:alice@example.com");
  EXPECT_EQ(aorOf("sip:Alice@example.com"), "sip:Alice@example.com");  // user is case-sensitive
  EXPECT_EQ(aorOf("sip:bob:pw@[2001:DB8::1]"), "sip:bob@[2001:db8::1]");
}

TEST(CanonicalAor, RejectsNonSipAndMissingUser) {
  auto tel = sip::parseUri("tel:+15551234");
  ASSERT_TRUE(tel.isOk());
  EXPECT_FALSE(canonicalAor(*tel).isOk());
  auto nouser = sip::parseUri("sip:example.com");
  ASSERT_TRUE(nouser.isOk());
  EXPECT_FALSE(canonicalAor(*nouser).isOk());
}

TEST(HttpDate, Rfc1123) {
  EXPECT_EQ(httpDate(location::SysSeconds(std::chrono::seconds(784111777))),
            "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST(Maintenance, RunNowRunsEveryTaskOnTheThread) {
  std::mutex mu;
  std::condition_variable cv;
  int a = 0;
  int b = 0;
  Maintenance m;
  m.add({"a", seconds(3600), [&] {
           std::lock_guard lock(mu);
           ++a;
           cv.notify_all();
         }});
  m.add({"b", Duration::zero(), [&] {
           std::lock_guard lock(mu);
           ++b;
           cv.notify_all();
         }});
  m.start();
  m.runNow();
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, seconds(10), [&] { return a == 1 && b == 1; }));
  }
  m.stop();
  m.stop();  // idempotent
}

TEST(Maintenance, PeriodicTaskRuns) {
  std::mutex mu;
  std::condition_variable cv;
  int runs = 0;
  Maintenance m;
  m.add({"tick", milliseconds(1), [&] {
           std::lock_guard lock(mu);
           ++runs;
           cv.notify_all();
         }});
  m.start();
  std::unique_lock lock(mu);
  EXPECT_TRUE(cv.wait_for(lock, seconds(10), [&] { return runs >= 3; }));
}

}  // namespace
}  // namespace sipwake::registrar
