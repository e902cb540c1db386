// TLS client pieces shared by every outbound TLS connection that verifies its peer (HTTP/2 push
// services, Redis): one context policy and one peer-name check.
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <memory>
#include <string>

#include "common/status.h"

namespace sipwake::transport {

// Client context: TLS >= 1.2 with kDefaultTls12Ciphers, peer verification always on against
// `ca_file` (empty: the system trust store). Errors name the CA file.
Result<std::shared_ptr<asio::ssl::context>> makeVerifyingClientTlsContext(
    const std::string& ca_file);

// Before the handshake: the certificate must name `host` (an IP SAN when `host` is an IP
// address; otherwise a DNS name, also sent as SNI).
void expectPeerName(SSL* ssl, const std::string& host);

// A failed handshake's reason: the asio error plus OpenSSL's verification verdict when the
// certificate was refused.
std::string handshakeFailure(SSL* ssl, const asio::error_code& ec);

}  // namespace sipwake::transport
