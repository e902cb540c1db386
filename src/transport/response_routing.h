// Where to send a response (RFC 3261 §18.2.2 with RFC 3581 §4), and the receive-side Via
// stamping (RFC 3261 §18.2.1, RFC 3581 §4) that makes it work. Pure functions: no I/O.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "sip/headers.h"
#include "sip/message.h"
#include "transport/transport.h"

namespace sipwake::transport {

// Default port for a protocol when a Via sent-by has none: 5061 for TLS, else 5060.
std::uint16_t defaultPort(Protocol p);

// SendTarget for a response whose top Via is `top_via`, answering a request that arrived over
// `protocol` from `remote` on connection `flow` (0 for UDP). Rules, first match wins:
//  1. reliable (TCP/TLS): the same connection (`flow`); if it has closed, a connection to the
//     `received` IP (else the source IP) and the sent-by port (default 5060/5061);
//  2. `maddr`: that address (must be an IP literal) and the sent-by port (default 5060);
//  3. `rport` (unreliable): the source IP and source port of the request (`remote`);
//  4. `received`: that IP and the sent-by port (default 5060);
//  5. the sent-by host (must be an IP literal) and port.
// A hostname in maddr/sent-by needs RFC 3263 resolution, which a pure function can't do: that is
// an InvalidArgument status. A Via we stamped on receive never reaches rule 5 with a hostname.
Result<SendTarget> responseTarget(const sip::Via& top_via, Protocol protocol, const Address& remote,
                                  FlowId flow);

// Stamps the top Via of a received request: adds received=<source IP> when the sent-by host is
// not that IP (or when rport is present, as RFC 3581 requires), and fills an empty rport with
// the source port. A `received` sent by the client is overwritten. Other bytes are kept.
// Implemented with Message::popVia()+pushVia() (the top Via value is rebuilt from its parsed
// parts). Returns the Via parse error if the top Via is malformed/absent.
Status stampReceivedVia(sip::Message& request, const Address& source);

}  // namespace sipwake::transport
