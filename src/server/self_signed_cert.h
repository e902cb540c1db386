// An ephemeral self-signed certificate for loopback TLS listeners, so that `sipwake` with no
// configuration answers over TLS too. Generated at start-up (EC P-256, valid for a few days,
// subjectAltName localhost / 127.0.0.1 / ::1), written to a private temporary directory and
// removed again when the object is destroyed. Never used for a non-loopback listener: the
// configuration check refuses that (config.cc crossCheck).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace sipwake::server {

class EphemeralCertificate {
 public:
  EphemeralCertificate(const EphemeralCertificate&) = delete;
  EphemeralCertificate& operator=(const EphemeralCertificate&) = delete;
  ~EphemeralCertificate();  // removes the files and the directory

  // Creates the key and certificate. `dns_names`/`ip_addresses` go into subjectAltName;
  // the first DNS name (or "localhost") is the subject CN.
  static Result<std::unique_ptr<EphemeralCertificate>> generate(
      const std::vector<std::string>& dns_names, const std::vector<std::string>& ip_addresses);

  const std::string& certificatePath() const { return cert_path_; }
  const std::string& privateKeyPath() const { return key_path_; }
  const std::string& certificatePem() const { return cert_pem_; }
  const std::string& privateKeyPem() const { return key_pem_; }

 private:
  EphemeralCertificate() = default;
  std::string dir_;
  std::string cert_path_;
  std::string key_path_;
  std::string cert_pem_;
  std::string key_pem_;
};

}  // namespace sipwake::server
