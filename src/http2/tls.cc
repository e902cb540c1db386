#include "http2/tls.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "common/tls_policy.h"
#include "transport/tls_client.h"

namespace sipwake::http2 {
namespace {

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};
constexpr unsigned char kAlpnH2Http1[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kAlpnHttp1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// Finds `proto` in the client's list of length-prefixed protocol names.
bool offered(const unsigned char* in, unsigned int inlen, std::string_view proto,
             const unsigned char** out, unsigned char* outlen) {
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == proto.size() && std::memcmp(in + i + 1, proto.data(), len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return true;
    }
    i += 1 + len;
  }
  return false;
}

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  const auto alpn = static_cast<AlpnProtocols>(reinterpret_cast<std::uintptr_t>(arg));
  if (alpn != AlpnProtocols::kHttp1 && offered(in, inlen, "h2", out, outlen)) {
    return SSL_TLSEXT_ERR_OK;
  }
  if (alpn != AlpnProtocols::kH2 && offered(in, inlen, "http/1.1", out, outlen)) {
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

std::string sslErrorText(const asio::error_code& ec) { return ec.message(); }

}  // namespace

Result<std::shared_ptr<asio::ssl::context>> makeClientTlsContext(const std::string& ca_file,
                                                                 const std::string& cert_file,
                                                                 const std::string& key_file,
                                                                 AlpnProtocols alpn) {
  auto made = transport::makeVerifyingClientTlsContext(ca_file);
  if (!made) return made.status();
  std::shared_ptr<asio::ssl::context> ctx = std::move(*made);
  SSL_CTX* raw = ctx->native_handle();
  asio::error_code ec;
  if (!cert_file.empty()) {
    ctx->use_certificate_chain_file(cert_file, ec);
    if (ec) return invalidArgument("client certificate '" + cert_file + "': " + sslErrorText(ec));
    ctx->use_private_key_file(key_file.empty() ? cert_file : key_file, asio::ssl::context::pem, ec);
    if (ec) return invalidArgument("client key: " + sslErrorText(ec));
  }
  const unsigned char* protos = alpn == AlpnProtocols::kH2          ? kAlpnH2
                                : alpn == AlpnProtocols::kH2OrHttp1 ? kAlpnH2Http1
                                                                    : kAlpnHttp1;
  const unsigned len = alpn == AlpnProtocols::kH2          ? sizeof(kAlpnH2)
                       : alpn == AlpnProtocols::kH2OrHttp1 ? sizeof(kAlpnH2Http1)
                                                           : sizeof(kAlpnHttp1);
  if (SSL_CTX_set_alpn_protos(raw, protos, len) != 0) {
    return internalError("TLS ALPN set-up failed");
  }
  return ctx;
}

Result<std::shared_ptr<asio::ssl::context>> makeServerTlsContext(const std::string& cert_file,
                                                                 const std::string& key_file,
                                                                 AlpnProtocols alpn) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* raw = ctx->native_handle();
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(raw, kDefaultTls12Ciphers) != 1) {
    return internalError("TLS cipher list rejected by OpenSSL");
  }
  asio::error_code ec;
  ctx->use_certificate_chain_file(cert_file, ec);
  if (ec) return invalidArgument("certificate '" + cert_file + "': " + sslErrorText(ec));
  ctx->use_private_key_file(key_file, asio::ssl::context::pem, ec);
  if (ec) return invalidArgument("key '" + key_file + "': " + sslErrorText(ec));
  SSL_CTX_set_alpn_select_cb(raw, selectAlpn,
                             reinterpret_cast<void*>(static_cast<std::uintptr_t>(alpn)));
  return ctx;
}

Result<SelfSignedCert> makeSelfSignedCert(const std::vector<std::string>& names, int days) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!key) return internalError("EC key generation failed");
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  if (!x) return internalError("X509_new failed");
  X509_set_version(x.get(), 2);
  unsigned char serial_bytes[16];
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(BN_new(), BN_free);
  if (RAND_bytes(serial_bytes, sizeof(serial_bytes)) != 1) return internalError("RAND failed");
  serial_bytes[0] &= 0x7f;
  BN_bin2bn(serial_bytes, sizeof(serial_bytes), bn.get());
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get()));
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -86400);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(days) * 86400);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  const std::string cn = names.empty() ? std::string("sipwake-test") : names.front();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  std::string san;
  for (const auto& n : names) {
    asio::error_code ec;
    asio::ip::make_address(n, ec);
    if (!san.empty()) san += ",";
    san += (ec ? "DNS:" : "IP:") + n;
  }
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x.get(), x.get(), nullptr, nullptr, 0);
  auto addExt = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (!ext) return false;
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
    return true;
  };
  if (!san.empty() && !addExt(NID_subject_alt_name, san)) return internalError("SAN failed");
  if (!addExt(NID_basic_constraints, "critical,CA:TRUE")) return internalError("BC failed");
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) return internalError("X509_sign failed");

  auto toPem = [](auto writer) -> std::string {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!writer(bio.get())) return {};
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len));
  };
  SelfSignedCert out;
  out.cert_pem = toPem([&](BIO* b) { return PEM_write_bio_X509(b, x.get()) == 1; });
  out.key_pem = toPem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1;
  });
  if (out.cert_pem.empty() || out.key_pem.empty()) return internalError("PEM encoding failed");
  return out;
}

Status writeSelfSignedCert(const std::string& dir, const std::vector<std::string>& names) {
  auto cert = makeSelfSignedCert(names);
  if (!cert) return cert.status();
  std::error_code fec;
  std::filesystem::create_directories(dir, fec);
  if (fec) return unavailable("cannot create " + dir + ": " + fec.message());
  const std::string cert_path = dir + "/cert.pem";
  const std::string key_path = dir + "/key.pem";
  {
    std::ofstream f(cert_path, std::ios::trunc);
    f << cert->cert_pem;
    if (!f) return unavailable("cannot write " + cert_path);
  }
  {
    std::ofstream f(key_path, std::ios::trunc);
    f << cert->key_pem;
    if (!f) return unavailable("cannot write " + key_path);
  }
  ::chmod(key_path.c_str(), 0600);
  return Status::ok();
}

}  // namespace sipwake::http2
