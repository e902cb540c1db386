#include "auth/sip_credentials.h"

#include "auth/digest.h"
#include "sip/message.h"
#include "sip/uri.h"

namespace sipwake::auth {
namespace {

// §19.1.4 user rule: case-sensitive after %-decoding. An absent user matches any.
bool userCompatible(const sip::Uri& digest, const sip::Uri& request) {
  if (digest.user.empty()) return true;
  if (digest.user == request.user) return true;
  Result<std::string> a = sip::unescape(digest.user);
  Result<std::string> b = sip::unescape(request.user);
  return a.isOk() && b.isOk() && *a == *b;
}

}  // namespace

DigestUriMatch matchDigestUri(std::string_view digest_uri, std::string_view request_uri,
                              const LocalHostCheck& is_local_host) {
  if (digest_uri == request_uri) return DigestUriMatch::kSame;
  Result<sip::Uri> d = sip::parseUri(digest_uri);
  Result<sip::Uri> r = sip::parseUri(request_uri);
  if (!d.isOk() || !r.isOk()) return DigestUriMatch::kMismatch;
  if (sip::uriEquivalent(*d, *r)) return DigestUriMatch::kSame;
  if (!d->isSipOrSips() || !userCompatible(*d, *r)) return DigestUriMatch::kMismatch;
  if (r->isSipOrSips() && sip::hostEquivalent(d->host, r->host)) {
    return DigestUriMatch::kOtherPort;
  }
  if (is_local_host && is_local_host(d->host)) return DigestUriMatch::kThisServer;
  return DigestUriMatch::kMismatch;
}

std::size_t consumeCredentials(sip::Message& request, const LocalHostCheck& is_our_realm) {
  std::size_t removed = 0;
  const std::vector<sip::HeaderField>& fields = request.headers();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const sip::HeaderField& f = fields[i];
    if (f.removed ||
        (f.id != sip::HeaderId::kAuthorization && f.id != sip::HeaderId::kProxyAuthorization)) {
      continue;
    }
    // Other schemes fail to parse as Digest and are kept.
    Result<DigestCredentials> c = parseDigestCredentials(f.value);
    if (!c.isOk() || !is_our_realm(c->realm)) continue;
    request.removeHeaderAt(i);
    ++removed;
  }
  return removed;
}

}  // namespace sipwake::auth
