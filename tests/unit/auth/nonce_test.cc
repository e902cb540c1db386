#include "auth/nonce.h"

#include <gtest/gtest.h>

#include <set>
#include <thread>
#include <vector>

namespace sipwake::auth {
namespace {

const std::string kSecret = "0123456789abcdef-test-secret";
const TimePoint kT0 = TimePoint{} + std::chrono::hours(1000);

TEST(Base64Url, RoundTripAndRejects) {
  for (std::size_t n = 0; n < 40; ++n) {
    std::vector<unsigned char> data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<unsigned char>(i * 37 + 11);
    std::string enc = internal::base64UrlEncode(data.data(), n);
    EXPECT_EQ(enc.find_first_of("+/="), std::string::npos);
    unsigned char out[64];
    std::size_t len = 0;
    ASSERT_TRUE(internal::base64UrlDecode(enc, out, &len));
    ASSERT_EQ(len, n);
    EXPECT_EQ(std::vector<unsigned char>(out, out + len), data);
  }
  unsigned char out[8];
  std::size_t len = 0;
  EXPECT_FALSE(internal::base64UrlDecode("ab+c", out, &len));
  EXPECT_FALSE(internal::base64UrlDecode("abcde", out, &len));  // impossible length
  EXPECT_FALSE(internal::base64UrlDecode("AB", out, &len));     // "AB" has stray low bits
}

TEST(Nonce, GeneratedNonceVerifies) {
  NonceManager m(kSecret, {});
  std::string n = m.generate("example.com", kT0);
  EXPECT_EQ(n.size(), NonceManager::kNonceChars);
  NonceCheck c = m.check(n, "example.com", kT0 + seconds(10));
  EXPECT_EQ(c.status, NonceStatus::kValid);
  EXPECT_EQ(c.issued, kT0);
}

TEST(Nonce, NoncesAreUnique) {
  NonceManager m(kSecret, {});
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(seen.insert(m.generate("r", kT0)).second);
}

TEST(Nonce, ExpiryGivesStale) {
  NonceConfig cfg;
  cfg.lifetime = seconds(300);
  NonceManager m(kSecret, cfg);
  std::string n = m.generate("r", kT0);
  EXPECT_EQ(m.check(n, "r", kT0 + seconds(299)).status, NonceStatus::kValid);
  EXPECT_EQ(m.check(n, "r", kT0 + seconds(300)).status, NonceStatus::kStale);
  EXPECT_EQ(m.check(n, "r", kT0 + seconds(100000)).status, NonceStatus::kStale);
}

TEST(Nonce, FutureStampRejected) {
  NonceManager m(kSecret, {});
  std::string n = m.generate("r", kT0 + seconds(60));
  EXPECT_EQ(m.check(n, "r", kT0).status, NonceStatus::kInvalid);
  EXPECT_EQ(m.check(n, "r", kT0 + seconds(56)).status, NonceStatus::kValid);  // 5 s skew allowed
}

TEST(Nonce, ForgedOrForeignRejected) {
  NonceManager m(kSecret, {});
  NonceManager other("another-secret-of-enough-length", {});
  std::string n = m.generate("r", kT0);
  EXPECT_EQ(m.check(n, "other-realm", kT0).status, NonceStatus::kInvalid);
  EXPECT_EQ(m.check(other.generate("r", kT0), "r", kT0).status, NonceStatus::kInvalid);
  // Flip one character of each region: stamp, random part, MAC.
  for (std::size_t pos : {std::size_t{2}, std::size_t{15}, std::size_t{30}, std::size_t{41}}) {
    std::string forged = n;
    forged[pos] = forged[pos] == 'A' ? 'B' : 'A';
    EXPECT_EQ(m.check(forged, "r", kT0).status, NonceStatus::kInvalid) << pos;
  }
  EXPECT_EQ(m.check("", "r", kT0).status, NonceStatus::kInvalid);
  EXPECT_EQ(m.check(n.substr(1), "r", kT0).status, NonceStatus::kInvalid);
  EXPECT_EQ(m.check(std::string(43, '!'), "r", kT0).status, NonceStatus::kInvalid);
  EXPECT_EQ(m.check("7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "r", kT0).status,
            NonceStatus::kInvalid);
}

TEST(Nonce, SharedSecretAcrossInstances) {
  NonceManager a(kSecret, {});
  NonceManager b(kSecret, {});
  EXPECT_EQ(b.check(a.generate("r", kT0), "r", kT0).status, NonceStatus::kValid);
  EXPECT_EQ(a.opaque(), b.opaque());
  EXPECT_FALSE(a.opaque().empty());
}

TEST(NonceReplay, NcMustNotRepeat) {
  NonceManager m(kSecret, {});
  NonceCheck c = m.check(m.generate("r", kT0), "r", kT0);
  ASSERT_EQ(c.status, NonceStatus::kValid);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 1, kT0), NonceUse::kFirst);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 1, kT0), NonceUse::kReplay);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 2, kT0), NonceUse::kFirst);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 5, kT0), NonceUse::kFirst);
  // Out of order within the window is fine once.
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 4, kT0), NonceUse::kFirst);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 4, kT0), NonceUse::kReplay);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 3, kT0), NonceUse::kFirst);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 2, kT0), NonceUse::kReplay);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 200, kT0), NonceUse::kFirst);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 136, kT0), NonceUse::kReplay);  // 64 below: out of window
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 137, kT0), NonceUse::kFirst);   // 63 below: in window
}

TEST(NonceReplay, NoQopNonceUsableOnce) {
  NonceManager m(kSecret, {});
  NonceCheck c = m.check(m.generate("r", kT0), "r", kT0);
  EXPECT_EQ(m.recordUse(c, Qop::kNone, 0, kT0), NonceUse::kFirst);
  EXPECT_EQ(m.recordUse(c, Qop::kNone, 0, kT0), NonceUse::kReplay);
  EXPECT_EQ(m.recordUse(c, Qop::kAuth, 1, kT0), NonceUse::kFirst);
}

TEST(NonceReplay, BoundedAndEvictionNeverReopensReplay) {
  NonceConfig cfg;
  cfg.tracker_capacity = 16;  // one per shard
  NonceManager m(kSecret, cfg);
  std::vector<NonceCheck> checks;
  for (int i = 0; i < 200; ++i) {
    TimePoint t = kT0 + milliseconds(i);
    NonceCheck c = m.check(m.generate("r", t), "r", t);
    ASSERT_EQ(c.status, NonceStatus::kValid);
    checks.push_back(c);
    EXPECT_EQ(m.recordUse(c, Qop::kAuth, 1, t), NonceUse::kFirst);
  }
  EXPECT_LE(m.trackedNonces(), 16u);
  // Every nonce, tracked or forgotten, refuses its nc=1 a second time.
  for (const NonceCheck& c : checks) {
    EXPECT_EQ(m.recordUse(c, Qop::kAuth, 1, kT0 + seconds(1)), NonceUse::kReplay);
  }
}

TEST(NonceReplay, ExpiredEntriesAreDropped) {
  NonceManager m(kSecret, {});
  for (int i = 0; i < 100; ++i) {
    NonceCheck c = m.check(m.generate("r", kT0), "r", kT0);
    (void)m.recordUse(c, Qop::kAuth, 1, kT0);
  }
  EXPECT_EQ(m.trackedNonces(), 100u);
  TimePoint later = kT0 + seconds(301);
  // 400 uses touch each of the 16 shards (miss probability ~1e-10), which drops expired ones.
  for (int i = 0; i < 400; ++i) {
    NonceCheck c = m.check(m.generate("r", later), "r", later);
    (void)m.recordUse(c, Qop::kAuth, 1, later);
  }
  EXPECT_EQ(m.trackedNonces(), 400u);
}

TEST(NonceReplay, ConcurrentUsesCountEachNcOnce) {
  NonceManager m(kSecret, {});
  NonceCheck c = m.check(m.generate("r", kT0), "r", kT0);
  std::atomic<int> firsts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (std::uint32_t nc = 1; nc <= 50; ++nc) {
        if (m.recordUse(c, Qop::kAuth, nc, kT0) == NonceUse::kFirst) ++firsts;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(firsts.load(), 50);
}

}  // namespace
}  // namespace sipwake::auth
