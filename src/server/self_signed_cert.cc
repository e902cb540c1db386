#include "server/self_signed_cert.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace sipwake::server {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using GenNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

constexpr long kValiditySeconds = 7L * 24 * 3600;

std::string bioToString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

Status writePrivateFile(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return unavailable("cannot create " + path + ": " + std::strerror(errno));
  std::size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return unavailable("cannot write " + path + ": " + std::strerror(errno));
    }
    off += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return Status::ok();
}

bool addSan(GENERAL_NAMES* names, const std::string& value, bool is_ip) {
  GENERAL_NAME* gn = GENERAL_NAME_new();
  if (gn == nullptr) return false;
  if (is_ip) {
    unsigned char buf[16];
    int len = 0;
    if (::inet_pton(AF_INET, value.c_str(), buf) == 1) {
      len = 4;
    } else if (::inet_pton(AF_INET6, value.c_str(), buf) == 1) {
      len = 16;
    } else {
      GENERAL_NAME_free(gn);
      return true;  // not an IP literal: skip
    }
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, buf, len);
    GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
  } else {
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, value.data(), static_cast<int>(value.size()));
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);
  }
  return sk_GENERAL_NAME_push(names, gn) > 0;
}

}  // namespace

EphemeralCertificate::~EphemeralCertificate() {
  if (!key_path_.empty()) ::unlink(key_path_.c_str());
  if (!cert_path_.empty()) ::unlink(cert_path_.c_str());
  if (!dir_.empty()) ::rmdir(dir_.c_str());
}

Result<std::unique_ptr<EphemeralCertificate>> EphemeralCertificate::generate(
    const std::vector<std::string>& dns_names, const std::vector<std::string>& ip_addresses) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return internalError("cannot generate an EC key for the self-signed certificate");

  X509Ptr cert(X509_new());
  if (!cert) return internalError("X509_new failed");
  X509_set_version(cert.get(), 2);  // v3, needed for subjectAltName
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return internalError("RAND_bytes failed");
  serial[0] &= 0x7f;  // keep it positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValiditySeconds);
  X509_set_pubkey(cert.get(), key.get());

  std::string cn = dns_names.empty() ? "localhost" : dns_names.front();
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("sipwake ephemeral"), -1, -1,
                             0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);

  GenNamesPtr sans(sk_GENERAL_NAME_new_null());
  for (const auto& d : dns_names) {
    if (!addSan(sans.get(), d, false)) return internalError("cannot build subjectAltName");
  }
  for (const auto& ip : ip_addresses) {
    if (!addSan(sans.get(), ip, true)) return internalError("cannot build subjectAltName");
  }
  if (X509_add1_ext_i2d(cert.get(), NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return internalError("cannot add subjectAltName");
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return internalError("cannot sign the self-signed certificate");
  }

  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return internalError("cannot encode the self-signed certificate as PEM");
  }

  std::unique_ptr<EphemeralCertificate> out(new EphemeralCertificate());
  out->cert_pem_ = bioToString(cert_bio.get());
  out->key_pem_ = bioToString(key_bio.get());

  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/sipwake-tls-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    return unavailable("cannot create a temporary directory " + templ + ": " +
                       std::strerror(errno));
  }
  out->dir_ = templ;  // mkdtemp creates it with mode 0700
  out->cert_path_ = out->dir_ + "/cert.pem";
  out->key_path_ = out->dir_ + "/key.pem";
  if (Status s = writePrivateFile(out->key_path_, out->key_pem_); !s) {
    out->key_path_.clear();
    return s;
  }
  if (Status s = writePrivateFile(out->cert_path_, out->cert_pem_); !s) {
    out->cert_path_.clear();
    return s;
  }
  return out;
}

}  // namespace sipwake::server
