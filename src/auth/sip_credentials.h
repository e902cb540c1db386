// Where digest credentials meet SIP: how a credentials `uri` relates to the Request-URI, and
// removing the credentials meant for this server before a request is forwarded.
// Thread: pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace sipwake::sip {
class Message;
}

namespace sipwake::auth {

// True when `host` (as in a URI: IPv6 in brackets) names this server (one of its domains or
// listener addresses).
using LocalHostCheck = std::function<bool(std::string_view host)>;

// How a Digest `uri` (RFC 2617 §3.2.2.5, "digest-uri") relates to the Request-URI.
enum class DigestUriMatch : std::uint8_t {
  kSame,        // the same URI: equal text, or equivalent by RFC 3261 §19.1.4
  kOtherPort,   // sip/sips URI with the Request-URI's host (§19.1.4 host rule), another port,
                // scheme (sip/sips) or parameters; no user part or the Request-URI's user
  kThisServer,  // sip/sips URI naming this server (a host for which is_local_host is true, any
                // port); no user part or the Request-URI's user
  kMismatch,    // anything else, including a uri that does not parse
};

// Classifies `digest_uri` against `request_uri` (both as written). `is_local_host` may be
// empty (then nothing is kThisServer).
DigestUriMatch matchDigestUri(std::string_view digest_uri, std::string_view request_uri,
                              const LocalHostCheck& is_local_host);

// RFC 3261 §22.3 (Kamailio's consume_credentials): removes every Authorization and
// Proxy-Authorization field holding Digest credentials whose realm names this server
// (`is_our_realm(realm)`). Credentials for other realms, other schemes and values that do not
// parse are kept: they belong to someone downstream. Returns the number of fields removed.
std::size_t consumeCredentials(sip::Message& request, const LocalHostCheck& is_our_realm);

}  // namespace sipwake::auth
