#include "server/self_signed_cert.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

namespace sipwake::server {
namespace {

TEST(EphemeralCertificateTest, GeneratesMatchingPairAndCleansUp) {
  std::string cert_path, key_path;
  {
    auto r = EphemeralCertificate::generate({"localhost"}, {"127.0.0.1", "::1"});
    ASSERT_TRUE(r.isOk()) << r.status().message();
    const auto& c = **r;
    cert_path = c.certificatePath();
    key_path = c.privateKeyPath();
    EXPECT_EQ(::access(cert_path.c_str(), R_OK), 0);
    EXPECT_EQ(::access(key_path.c_str(), R_OK), 0);

    BIO* cb =
        BIO_new_mem_buf(c.certificatePem().data(), static_cast<int>(c.certificatePem().size()));
    X509* x = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO_free(cb);
    ASSERT_NE(x, nullptr);
    BIO* kb = BIO_new_mem_buf(c.privateKeyPem().data(), static_cast<int>(c.privateKeyPem().size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    BIO_free(kb);
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(X509_check_private_key(x, k), 1);
    EXPECT_EQ(X509_verify(x, k), 1);  // self-signed
    EXPECT_EQ(X509_check_host(x, "localhost", 0, 0, nullptr), 1);
    EXPECT_EQ(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    EXPECT_EQ(X509_check_ip_asc(x, "::1", 0), 1);
    EXPECT_NE(X509_check_ip_asc(x, "10.0.0.1", 0), 1);
    EVP_PKEY_free(k);
    X509_free(x);
  }
  EXPECT_NE(::access(cert_path.c_str(), F_OK), 0);
  EXPECT_NE(::access(key_path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace sipwake::server
