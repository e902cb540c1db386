// When the certificates sipwake presents run out: [tls] certificate (SIP over TLS), [admin]
// tls_certificate (the admin listener) and each APNs app's cert_file (certificate auth, which
// Apple issues for one year). Start-up, `check-config` and reload warn about any that has expired
// or expires within kCertificateWarnDays; GET /metrics gives each one's notAfter as a gauge so
// that an alert can fire long before (docs/operations.md, "APNs certificate about to expire").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/config.h"

namespace sipwake::server {

inline constexpr std::int64_t kCertificateWarnDays = 30;

struct CertificateFile {
  std::string key;   // "[tls] certificate", "[admin] tls_certificate", "[[push.app]] cert_file"
  std::string path;  // as configured
  std::string app;   // the push app's id for [[push.app]] cert_file, else ""
};

// Every certificate file of `config` (in the order above; none when not configured).
std::vector<CertificateFile> certificateFiles(const Config& config);

// The notAfter of the first certificate in the PEM file `path`, in Unix seconds.
// kInvalidArgument naming the file when it cannot be read or holds no certificate.
Result<std::int64_t> certificateNotAfter(const std::string& path);

// One warning per certificate of `config` that has expired or expires within
// kCertificateWarnDays of `now` (Unix seconds), naming the key, the file and the date.
std::vector<std::string> certificateWarnings(const Config& config, std::int64_t now);
std::vector<std::string> certificateWarnings(const std::vector<CertificateFile>& files,
                                             std::int64_t now);

}  // namespace sipwake::server
