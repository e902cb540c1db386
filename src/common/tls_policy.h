// TLS policy shared by every TLS endpoint sipwake has (SIP listeners and connections, the HTTP/2
// push client). Plain constants: no OpenSSL here.
#pragma once

namespace sipwake {

// TLS 1.2 cipher suites offered and accepted by default (OpenSSL cipher-list syntax): forward
// secret (ECDHE/DHE) AEAD suites only — no CBC modes, no SHA-1 MACs, no static RSA key exchange.
// TLS 1.3 suites are all AEAD and stay OpenSSL's defaults. TLS 1.0/1.1 are never enabled.
inline constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384";

}  // namespace sipwake
