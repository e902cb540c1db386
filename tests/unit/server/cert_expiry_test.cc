#include "server/cert_expiry.h"

#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "server/self_signed_cert.h"

namespace sipwake::server {
namespace {

constexpr std::int64_t kDay = 86400;

class CertExpiryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cert = EphemeralCertificate::generate({"localhost"}, {"127.0.0.1"});
    ASSERT_TRUE(cert.isOk()) << cert.status().message();
    cert_ = std::move(*cert);
    now_ = static_cast<std::int64_t>(std::time(nullptr));
  }
  std::unique_ptr<EphemeralCertificate> cert_;  // valid 7 days from now
  std::int64_t now_ = 0;
};

TEST_F(CertExpiryTest, NotAfterOfAPemFile) {
  auto not_after = certificateNotAfter(cert_->certificatePath());
  ASSERT_TRUE(not_after.isOk()) << not_after.status().message();
  EXPECT_GT(*not_after, now_ + 6 * kDay);
  EXPECT_LE(*not_after, now_ + 8 * kDay);
  auto missing = certificateNotAfter("/nonexistent/cert.pem");
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.status().message().find("/nonexistent/cert.pem"), std::string::npos);
  auto not_pem = certificateNotAfter(cert_->privateKeyPath());
  ASSERT_FALSE(not_pem.isOk());
  EXPECT_NE(not_pem.status().message().find("no PEM certificate"), std::string::npos);
}

TEST_F(CertExpiryTest, WarnsWithinThirtyDaysAndWhenExpired) {
  Config c;
  c.tls.certificate = cert_->certificatePath();
  PushApp app;
  app.provider = "apns";
  app.id = "com.example.voip";
  app.cert_file = cert_->certificatePath();
  c.push.apps.push_back(app);
  PushApp fcm;
  fcm.provider = "fcm";
  c.push.apps.push_back(fcm);
  ASSERT_EQ(certificateFiles(c).size(), 2u);

  auto soon = certificateWarnings(c, now_);
  ASSERT_EQ(soon.size(), 2u);
  EXPECT_NE(soon[0].find("[tls] certificate: \"" + cert_->certificatePath() + "\" expires on "),
            std::string::npos)
      << soon[0];
  EXPECT_TRUE(soon[0].find("(in 6 days)") != std::string::npos ||
              soon[0].find("(in 7 days)") != std::string::npos)
      << soon[0];
  EXPECT_NE(soon[1].find("[[push.app]] cert_file of app com.example.voip"), std::string::npos)
      << soon[1];

  auto expired = certificateWarnings(c, now_ + 8 * kDay);
  ASSERT_EQ(expired.size(), 2u);
  EXPECT_NE(expired[0].find("expired on"), std::string::npos) << expired[0];

  EXPECT_TRUE(certificateWarnings(c, now_ - 30 * kDay).empty());  // 37 days left
}

TEST_F(CertExpiryTest, LoadedConfigurationCarriesTheWarning) {
  std::string toml = "[tls]\ncertificate = \"" + cert_->certificatePath() + "\"\nprivate_key = \"" +
                     cert_->privateKeyPath() + "\"\n";
  auto c = parseConfig(toml, "t.toml");
  ASSERT_TRUE(c.isOk()) << c.status().message();
  bool found = false;
  for (const std::string& w : c->warnings) {
    if (w.starts_with("t.toml: [tls] certificate: ") && w.find("expires on") != std::string::npos)
      found = true;
  }
  EXPECT_TRUE(found) << ::testing::PrintToString(c->warnings);
}

}  // namespace
}  // namespace sipwake::server
