// Kernel-side steering of UDP datagrams to loops, so that the traffic of a single source (an
// SBC, a trunk, a load generator) is spread over the cores without a cross-loop hand-off.
//
// Every UDP listener exists once per loop (SO_REUSEPORT); without help the kernel picks the
// socket by a hash of the 4-tuple, so all of one peer's datagrams land on one loop: one core
// does all of its work, and responses from a peer whose 4-tuple hashes elsewhere than the loop
// that sent the request are posted across (a futex and a wake-up each). A classic BPF program
// attached to the reuseport group (SO_ATTACH_REUSEPORT_CBPF, unprivileged) picks the socket
// index, which is the loop index (every loop binds its socket of a listener in loop order and
// none is closed before stop()):
//  * a response ("SIP/" first): the loop named by our branch cookie ("z9hG4bKw" + 3 hex digits,
//    appendBranchCookie), searched for in the first kSteerBranchWindow bytes (the top Via comes
//    first in a response): the loop that owns the client transaction;
//  * a request, when spreading (`spread_requests`): a hash of the first 16 bytes of the Call-ID
//    value (steeredLoopForCallId), the header searched for as "Call-ID: " / "Call-Id: " in the
//    first kSteerCallIdWindow bytes: every request of a call (INVITE, retransmissions, CANCEL,
//    ACK) lands on one loop, whatever the source, and a single source's calls are spread over
//    all loops. Not spreading, a request takes the kernel's 4-tuple hash: one source, one loop.
//    Spreading costs ~20% more CPU per REGISTER at a low rate (two threads wake instead of one)
//    and is what lets a single source use every core; the transport switches between the two
//    by the UDP rate (TransportConfig::udp_steering);
//  * anything else (no cookie, a compact "i:" header, the header beyond the window, a datagram
//    too short): the kernel's own 4-tuple hash, as without the program.
// The transport handles a request on the loop that received it (TransportLayer::dispatch), so
// the program only decides where work runs; correctness never depends on it (a response is still
// dispatched by its branch, an INVITE's CANCEL/ACK by its pin). Cost: ~2 BPF instructions per
// byte offset searched, run in the kernel's receive path (JIT-compiled where enabled).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/status.h"

struct sock_filter;

namespace sipwake::transport {

// Bytes of a response searched for our branch cookie, of a request for its Call-ID header.
inline constexpr std::uint32_t kSteerBranchWindow = 200;
inline constexpr std::uint32_t kSteerCallIdWindow = 600;
// Bytes of the Call-ID value hashed (fewer if it is shorter).
inline constexpr std::uint32_t kSteerCallIdBytes = 16;

// The classic BPF program described above for a group of `loops` sockets.
std::vector<sock_filter> steeringProgram(std::size_t loops, bool spread_requests);

// The loop the program picks for a request whose Call-ID value is `call_id`. For tests.
std::size_t steeredLoopForCallId(std::string_view call_id, std::size_t loops);

// Attaches the program to the reuseport group of `fd` (a bound UDP socket). Errors are returned
// (the caller logs and goes on without steering: dispatch still routes by branch and pin).
Status attachSteering(int fd, std::size_t loops, bool spread_requests);

}  // namespace sipwake::transport
