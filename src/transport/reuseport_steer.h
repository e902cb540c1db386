// Kernel-side steering of UDP responses to the loop that owns their client transaction.
//
// Every UDP listener exists once per loop (SO_REUSEPORT); the kernel picks the socket by a hash
// of the 4-tuple. A response from a peer (a UAS, a trunk) lands on whichever socket that peer's
// 4-tuple hashes to, which for half of the peers is not the loop that sent the request; the
// transport then posts it across (a futex and a wake-up). Our branches name their loop
// ("z9hG4bKw" + 3 hex digits, appendBranchCookie), so a classic BPF program attached to the
// reuseport group (SO_ATTACH_REUSEPORT_CBPF, unprivileged) reads that index straight from the
// datagram and the kernel delivers the response to the owning loop's socket.
//
// The program: a datagram that does not start with "SIP/" (a request, a keep-alive) → the
// kernel's own hash, as without the program. A response: the first "z9hG4bKw" within the first
// kSteerWindow bytes (the top Via's branch: Via comes first in every response we have seen) →
// its 3 hex digits are the socket index; no cookie there ("z9hG4bK" with another 8th byte) →
// the hash. A response shorter than the window and without the cookie ends on an out-of-bounds
// load, which classic BPF answers with 0: loop 0 (the transport still dispatches by branch).
// The socket index equals the loop index because every loop binds its socket of a listener in
// loop order and none is closed before stop(). An index beyond the group falls back to the hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/status.h"

struct sock_filter;

namespace sipwake::transport {

// Bytes of a response searched for our branch cookie.
inline constexpr std::size_t kSteerWindow = 700;

// The classic BPF program described above (for tests and for attachResponseSteering).
std::vector<sock_filter> responseSteeringProgram();

// Attaches the program to the reuseport group of `fd` (a bound UDP socket). Errors are returned
// (the caller logs and goes on without steering: dispatch still routes by branch).
Status attachResponseSteering(int fd);

}  // namespace sipwake::transport
