#include "registrar/services.h"

namespace sipwake::registrar {

std::string canonicalDomain(std::string_view host) {
  std::string out(host);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Result<std::string> canonicalAor(const sip::Uri& uri) {
  if (!uri.isSipOrSips()) return invalidArgument("address-of-record is not a SIP or SIPS URI");
  if (uri.user.empty()) return invalidArgument("address-of-record has no user part");
  Result<std::string> user = sip::unescape(uri.user);
  if (!user) return invalidArgument("address-of-record user part has a bad %-escape");
  std::string aor;
  aor.reserve(5 + user->size() + uri.host.size());
  aor.append("sip:").append(*user).push_back('@');
  aor.append(canonicalDomain(uri.host));
  return aor;
}

auth::CredentialLookup credentialLookup(const location::UserStore& users) {
  return [&users](std::string_view user, std::string_view realm) -> std::optional<auth::UserHa1> {
    std::optional<location::UserCredentials> c = users.lookup(user, realm);
    if (!c) return std::nullopt;
    auth::UserHa1 h;
    if (auto md5 = auth::HexDigest::fromHex(c->ha1_md5)) h.md5 = *md5;
    if (auto sha = auth::HexDigest::fromHex(c->ha1_sha256)) h.sha256 = *sha;
    return h;
  };
}

}  // namespace sipwake::registrar
