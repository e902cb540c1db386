#include "transport/tls_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/tls_policy.h"

namespace sipwake::transport {

Result<std::shared_ptr<asio::ssl::context>> makeVerifyingClientTlsContext(
    const std::string& ca_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* raw = ctx->native_handle();
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(raw, kDefaultTls12Ciphers) != 1) {
    return internalError("TLS cipher list rejected by OpenSSL");
  }
  asio::error_code ec;
  ctx->set_verify_mode(asio::ssl::verify_peer, ec);
  if (ec) return internalError("TLS verify mode: " + ec.message());
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
  } else {
    ctx->load_verify_file(ca_file, ec);
  }
  if (ec) return invalidArgument("CA bundle '" + ca_file + "': " + ec.message());
  return ctx;
}

void expectPeerName(SSL* ssl, const std::string& host) {
  asio::error_code not_ip;
  asio::ip::make_address(host, not_ip);
  if (!not_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
}

std::string handshakeFailure(SSL* ssl, const asio::error_code& ec) {
  std::string why = ec.message();
  long vr = SSL_get_verify_result(ssl);
  if (vr != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(vr) + ")";
  return why;
}

}  // namespace sipwake::transport
