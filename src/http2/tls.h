// TLS set-up for the HTTP/2 client and server: OpenSSL contexts with ALPN "h2", and a self-signed
// certificate generator for tests and the fake push services.
#pragma once

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace sipwake::http2 {

// Which application protocols a TLS endpoint negotiates with ALPN.
enum class AlpnProtocols : std::uint8_t {
  kH2,         // "h2" only
  kH2OrHttp1,  // "h2" preferred, else "http/1.1"
  kHttp1,      // "http/1.1" only
};

// Client context: TLS >= 1.2, peer verification ALWAYS on, ALPN offers "h2" (and "http/1.1"
// after it with kH2OrHttp1). `ca_file` empty = the system trust store. Optional client
// certificate (APNs certificate auth).
Result<std::shared_ptr<asio::ssl::context>> makeClientTlsContext(
    const std::string& ca_file, const std::string& cert_file, const std::string& key_file,
    AlpnProtocols alpn = AlpnProtocols::kH2);
// Server context: TLS >= 1.2; ALPN selects "h2" and/or "http/1.1" as `alpn` allows (preferring
// h2). A client offering none of them is refused; one sending no ALPN at all is accepted (it
// then speaks HTTP/1.1 when allowed, else it is closed after the handshake).
Result<std::shared_ptr<asio::ssl::context>> makeServerTlsContext(
    const std::string& cert_file, const std::string& key_file,
    AlpnProtocols alpn = AlpnProtocols::kH2);

struct SelfSignedCert {
  std::string cert_pem;  // also the CA a client must trust
  std::string key_pem;   // PKCS#8
};
// A self-signed P-256 certificate valid for one day before to `days` after now, with the given
// subjectAltNames (an entry that parses as an IP address becomes an IP SAN, else DNS).
Result<SelfSignedCert> makeSelfSignedCert(const std::vector<std::string>& names, int days = 30);
// Writes cert.pem and key.pem (mode 0600) into `dir` (created if missing).
Status writeSelfSignedCert(const std::string& dir, const std::vector<std::string>& names);

}  // namespace sipwake::http2
