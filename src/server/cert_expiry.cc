#include "server/cert_expiry.h"

#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <ctime>
#include <memory>

namespace sipwake::server {

std::vector<CertificateFile> certificateFiles(const Config& config) {
  std::vector<CertificateFile> out;
  if (!config.tls.certificate.empty())
    out.push_back({"[tls] certificate", config.tls.certificate, ""});
  if (!config.admin.tls_certificate.empty()) {
    out.push_back({"[admin] tls_certificate", config.admin.tls_certificate, ""});
  }
  for (const PushApp& app : config.push.apps) {
    if (app.provider == "apns" && !app.cert_file.empty()) {
      out.push_back({"[[push.app]] cert_file", app.cert_file, app.id});
    }
  }
  return out;
}

Result<std::int64_t> certificateNotAfter(const std::string& path) {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> f(std::fopen(path.c_str(), "r"), &std::fclose);
  if (!f) return invalidArgument("cannot read certificate file \"" + path + "\"");
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_X509(f.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) return invalidArgument("no PEM certificate in \"" + path + "\"");
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) {
    return invalidArgument("unreadable notAfter in \"" + path + "\"");
  }
  return static_cast<std::int64_t>(timegm(&tm));
}

std::vector<std::string> certificateWarnings(const Config& config, std::int64_t now) {
  return certificateWarnings(certificateFiles(config), now);
}

std::vector<std::string> certificateWarnings(const std::vector<CertificateFile>& files,
                                             std::int64_t now) {
  std::vector<std::string> out;
  for (const CertificateFile& c : files) {
    Result<std::int64_t> not_after = certificateNotAfter(c.path);
    if (!not_after.isOk()) continue;  // the file checks of the configuration say why
    const std::int64_t left = *not_after - now;
    if (left > kCertificateWarnDays * 86400) continue;
    std::time_t t = static_cast<std::time_t>(*not_after);
    std::tm tm{};
    gmtime_r(&t, &tm);
    const std::string date = fmt::format("{:04}-{:02}-{:02} {:02}:{:02} UTC", tm.tm_year + 1900,
                                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
    const std::string who = c.app.empty() ? c.key : c.key + " of app " + c.app;
    if (left <= 0) {
      out.push_back(fmt::format("{}: \"{}\" expired on {}: renew it, then `sipwake reload`", who,
                                c.path, date));
    } else {
      out.push_back(
          fmt::format("{}: \"{}\" expires on {} (in {} day{}): renew it, then "
                      "`sipwake reload`",
                      who, c.path, date, left / 86400, left / 86400 == 1 ? "" : "s"));
    }
  }
  return out;
}

}  // namespace sipwake::server
