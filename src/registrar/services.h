// What the registrar and the proxy core share: the location store, the authenticator and the
// answer to "is this host one of our domains". Built once by the server (composition root) and
// handed by reference to every per-loop registrar and proxy; everything here is thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "auth/authenticator.h"
#include "common/status.h"
#include "location/location_store.h"
#include "location/user_store.h"
#include "sip/uri.h"

namespace sipwake::registrar {

// True if `host` (as in a URI: IPv6 with brackets, any case) is a domain or address we serve.
// Thread: any.
using LocalDomainCheck = std::function<bool(std::string_view host)>;

// Non-owning; the server owns the objects and keeps them alive until every loop has stopped.
struct Services {
  location::LocationStore& locations;
  auth::Authenticator& authenticator;
  LocalDomainCheck is_local_domain;
};

// The canonical address-of-record of a SIP/SIPS URI (RFC 3261 §10.3 step 5): scheme, port,
// password, URI parameters and headers dropped, user %-unescaped (case kept), host lower-cased:
// "sip:user@host". The registrar keys bindings by it and the proxy must look up with it.
// InvalidArgument for a non-SIP URI, a missing user part or a bad %-escape.
Result<std::string> canonicalAor(const sip::Uri& uri);

// The lower-cased host of `uri` without port (IPv6 keeps its brackets): the digest realm and the
// domain users are stored under.
std::string canonicalDomain(std::string_view host);

// CredentialLookup over a UserStore (HA1s converted to the authenticator's form). The store must
// outlive the returned function.
auth::CredentialLookup credentialLookup(const location::UserStore& users);

}  // namespace sipwake::registrar
