#include "push/token_cache.h"

#include <gtest/gtest.h>

namespace sipwake::push {
namespace {

const Key& ecKey() {
  static const Key k = *Key::generateEcP256();
  return k;
}

std::int64_t iatOf(const std::string& jwt) {
  std::size_t a = jwt.find('.');
  std::size_t b = jwt.find('.', a + 1);
  auto claims = nlohmann::json::parse(*base64UrlDecode(jwt.substr(a + 1, b - a - 1)));
  return claims["iat"].get<std::int64_t>();
}

TEST(ApnsTokenCache, ReusedThenRenewedBefore60Min) {
  FakePushClock clock;
  ApnsTokenCache cache(ecKey(), "KEYID12345", "TEAMID1234", clock);
  std::string t0 = *cache.token();
  EXPECT_EQ(iatOf(t0), clock.unixSeconds());
  clock.advance(19min);
  EXPECT_EQ(*cache.token(), t0);  // reused at 19 min
  clock.advance(20min);           // 39 min
  EXPECT_EQ(*cache.token(), t0);
  clock.advance(1min);  // 40 min: default refresh_after
  std::string t1 = *cache.token();
  EXPECT_NE(t1, t0);
  EXPECT_EQ(iatOf(t1), clock.unixSeconds());
  EXPECT_EQ(cache.mintCount(), 2u);
  // Never older than 60 min whatever the traffic pattern: a token is renewed at refresh_after.
  for (int i = 0; i < 300; ++i) {
    clock.advance(1min);
    ASSERT_TRUE(cache.token().isOk());
    ASSERT_LT(*cache.age(), ApnsTokenCache::kMaxAge);
  }
}

TEST(ApnsTokenCache, RefreshAfterIsClamped) {
  FakePushClock clock;
  EXPECT_EQ(ApnsTokenCache(ecKey(), "K", "T", clock, 1min).refreshAfter(), 20min);
  EXPECT_EQ(ApnsTokenCache(ecKey(), "K", "T", clock, 2h).refreshAfter(), 55min);
  EXPECT_EQ(ApnsTokenCache(ecKey(), "K", "T", clock, 30min).refreshAfter(), 30min);
}

TEST(ApnsTokenCache, InvalidateRespectsTwentyMinuteFloor) {
  FakePushClock clock;
  ApnsTokenCache cache(ecKey(), "K", "T", clock);
  std::string t0 = *cache.token();
  clock.advance(5min);
  cache.invalidate(t0);  // 403 ExpiredProviderToken on a 5-minute-old token (clock skew)
  EXPECT_EQ(*cache.token(), t0) << "a new token now would risk TooManyProviderTokenUpdates";
  clock.advance(15min);  // 20 min
  std::string t1 = *cache.token();
  EXPECT_NE(t1, t0);
  // Storm of rejections for the old and new tokens: at most one mint per 20 minutes.
  std::uint64_t mints_before = cache.mintCount();
  for (int i = 0; i < 100; ++i) {
    clock.advance(10s);
    cache.invalidate(t0);  // stale: ignored
    cache.invalidate(*cache.token());
  }
  EXPECT_EQ(cache.mintCount(), mints_before);  // 16 min 40 s later: still none
  clock.advance(4min);
  EXPECT_NE(*cache.token(), t1);
}

TEST(ApnsTokenCache, MintsNeverCloserThanTwentyMinutes) {
  FakePushClock clock;
  ApnsTokenCache cache(ecKey(), "K", "T", clock, 20min);
  std::optional<TimePoint> last_mint;
  std::uint64_t mints = 0;
  for (int i = 0; i < 2000; ++i) {
    clock.advance(7s);
    Result<std::string> t = cache.token();
    ASSERT_TRUE(t.isOk());
    if (cache.mintCount() != mints) {
      mints = cache.mintCount();
      if (last_mint) {
        ASSERT_GE(clock.monotonicNow() - *last_mint, 20min);
      }
      last_mint = clock.monotonicNow();
    }
    if (i % 3 == 0) cache.invalidate(*t);
  }
}

TEST(ApnsTokenCache, WallClockJumpDoesNotAffectAge) {
  FakePushClock clock;
  ApnsTokenCache cache(ecKey(), "K", "T", clock);
  std::string t0 = *cache.token();
  clock.jumpWall(-2h);
  clock.advance(41min);
  std::string t1 = *cache.token();
  EXPECT_NE(t1, t0);
  EXPECT_EQ(iatOf(t1), clock.unixSeconds());
}

TEST(ApnsTokenCache, BadKeyFails) {
  FakePushClock clock;
  ApnsTokenCache cache(Key(), "K", "T", clock);
  EXPECT_FALSE(cache.token().isOk());
  EXPECT_EQ(cache.mintCount(), 0u);
}

TEST(OAuthToken, ParseSuccess) {
  Result<OAuthToken> t = parseOAuthTokenResponse(
      200, R"({"access_token":"ya29.abc","expires_in":3599,"token_type":"Bearer"})");
  ASSERT_TRUE(t.isOk()) << t.status().toString();
  EXPECT_EQ(t->access_token, "ya29.abc");
  EXPECT_EQ(t->expires_in, std::chrono::seconds(3599));
}

TEST(OAuthToken, ParseErrorsArePrecise) {
  struct Case {
    int status;
    std::string_view body;
    StatusCode code;
    std::string_view needle;
  };
  const Case cases[] = {
      {200, "nope", StatusCode::kInvalidArgument, "not a JSON object"},
      {200, R"({"expires_in":3599,"token_type":"Bearer"})", StatusCode::kInvalidArgument,
       "access_token missing"},
      {200, R"({"access_token":"","expires_in":3599,"token_type":"Bearer"})",
       StatusCode::kInvalidArgument, "access_token"},
      {200, R"({"access_token":"a","token_type":"Bearer"})", StatusCode::kInvalidArgument,
       "expires_in missing"},
      {200, R"({"access_token":"a","expires_in":"3599","token_type":"Bearer"})",
       StatusCode::kInvalidArgument, "expires_in"},
      {200, R"({"access_token":"a","expires_in":0,"token_type":"Bearer"})",
       StatusCode::kInvalidArgument, "expires_in"},
      {200, R"({"access_token":"a","expires_in":3599})", StatusCode::kInvalidArgument,
       "token_type missing"},
      {200, R"({"access_token":"a","expires_in":3599,"token_type":"MAC"})",
       StatusCode::kInvalidArgument, "not Bearer"},
      {400, R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})",
       StatusCode::kPermissionDenied, "invalid_grant (Invalid JWT Signature.)"},
      {401, "", StatusCode::kPermissionDenied, "HTTP 401"},
      {503, "<html>", StatusCode::kUnavailable, "HTTP 503"},
      {429, "{}", StatusCode::kUnavailable, "HTTP 429"},
  };
  for (const Case& c : cases) {
    Result<OAuthToken> t = parseOAuthTokenResponse(c.status, c.body);
    ASSERT_FALSE(t.isOk()) << c.body;
    EXPECT_EQ(t.status().code(), c.code) << c.body;
    EXPECT_NE(t.status().message().find(c.needle), std::string::npos) << t.status().message();
  }
  EXPECT_TRUE(parseOAuthTokenResponse(
                  200, R"({"access_token":"a","expires_in":3599,"token_type":"bearer"})")
                  .isOk());
  // Whatever the endpoint writes, the message (it reaches the log) stays bounded.
  const std::string huge(100000, 'x');
  Result<OAuthToken> t = parseOAuthTokenResponse(
      400, R"({"error":")" + huge + R"(","error_description":")" + huge + R"("})");
  ASSERT_FALSE(t.isOk());
  EXPECT_LT(t.status().message().size(), 400u);
}

TEST(OAuthTokenCache, RefreshFiveMinutesBeforeExpiry) {
  FakePushClock clock;
  OAuthTokenCache cache(clock);
  EXPECT_TRUE(cache.refreshNeeded());
  EXPECT_FALSE(cache.accessToken().has_value());
  cache.store({"tok", "Bearer", std::chrono::seconds(3600)});
  EXPECT_FALSE(cache.refreshNeeded());
  EXPECT_EQ(cache.accessToken(), "tok");
  clock.advance(54min);
  EXPECT_FALSE(cache.refreshNeeded());
  clock.advance(1min);  // 55 min: 5 min before expiry
  EXPECT_TRUE(cache.refreshNeeded());
  EXPECT_EQ(cache.accessToken(), "tok");  // still usable until it expires
  clock.advance(5min);
  EXPECT_FALSE(cache.accessToken().has_value());
  cache.store({"tok2", "Bearer", std::chrono::seconds(3600)});
  EXPECT_EQ(cache.accessToken(), "tok2");
  cache.invalidate();  // 401 UNAUTHENTICATED
  EXPECT_TRUE(cache.refreshNeeded());
  EXPECT_FALSE(cache.accessToken().has_value());
}

TEST(OAuthTokenCache, ShortTokensRefreshAtHalfLife) {
  FakePushClock clock;
  OAuthTokenCache cache(clock);
  cache.store({"t", "Bearer", std::chrono::seconds(240)});  // shorter than the margin
  EXPECT_FALSE(cache.refreshNeeded());
  clock.advance(119s);
  EXPECT_FALSE(cache.refreshNeeded());
  clock.advance(1s);
  EXPECT_TRUE(cache.refreshNeeded());
}

}  // namespace
}  // namespace sipwake::push
