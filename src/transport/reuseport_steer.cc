#include "transport/reuseport_steer.h"

#include <linux/filter.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace sipwake::transport {

namespace {

constexpr std::uint32_t kFallback = 0xffffffffu;  // ≥ group size: the kernel's own hash
constexpr std::uint32_t kSip = 0x5349502fu;       // "SIP/"
constexpr std::uint32_t kZ9hg = 0x7a396847u;      // "z9hG"
constexpr std::uint32_t k4bkw = 0x34624b77u;      // "4bKw"
constexpr std::uint32_t kLdashId = 0x6c2d4944u;   // "l-ID" (the last byte upper-cased by mask)
constexpr std::uint32_t kCaseMask = 0xffffffdfu;  // clears bit 5 of the last byte: 'd' -> 'D'
constexpr std::uint32_t kFirstOffset = 12;        // "SIP/2.0 xxx " or "INVITE sip:" precede
constexpr std::uint32_t kChunk = 32;
constexpr std::uint32_t kFnvBasis = 2166136261u;
constexpr std::uint32_t kFnvPrime = 16777619u;
constexpr std::uint32_t kMix = 0x85ebca6bu;  // positions between two length checks

sock_filter stmt(std::uint16_t code, std::uint32_t k) { return BPF_STMT(code, k); }
sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
  return BPF_JUMP(code, k, jt, jf);
}

// A = hex value of the ASCII digit in A (lower-case; anything else gives a value that is
// either ≥ the group size or merely a wrong loop, which dispatch corrects).
void appendHexDigit(std::vector<sock_filter>& p) {
  p.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, 'a', 0, 2));
  p.push_back(stmt(BPF_ALU | BPF_SUB | BPF_K, 'a' - 10));
  p.push_back(stmt(BPF_JMP | BPF_JA, 1));
  p.push_back(stmt(BPF_ALU | BPF_SUB | BPF_K, '0'));
}

// Appends a search for a 4-byte word at every offset in [first, last]: on a hit, X = offset and
// a jump to the tail (patched later: its index goes to `fixups`). Every kChunk offsets the
// datagram's length is checked first, so a search running off the end returns kFallback (a
// classic BPF load beyond the packet would end the program with 0, i.e. socket 0). `masked`:
// compare the word AND kCaseMask.
void appendSearch(std::vector<sock_filter>& p, std::uint32_t word, bool masked, std::uint32_t first,
                  std::uint32_t last, std::uint32_t tail_reach, std::vector<std::size_t>& fixups) {
  for (std::uint32_t off = first; off <= last; ++off) {
    if ((off - first) % kChunk == 0) {
      p.push_back(stmt(BPF_LD | BPF_W | BPF_LEN, 0));
      // The chunk's loads and the tail's reach past the hit must be inside the datagram.
      p.push_back(
          jump(BPF_JMP | BPF_JGE | BPF_K, std::min(off + kChunk, last + 1) + tail_reach, 1, 0));
      p.push_back(stmt(BPF_RET | BPF_K, kFallback));
    }
    p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, off));
    if (masked) p.push_back(stmt(BPF_ALU | BPF_AND | BPF_K, kCaseMask));
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, word, 0, 2));
    p.push_back(stmt(BPF_LDX | BPF_W | BPF_IMM, off));
    fixups.push_back(p.size());
    p.push_back(stmt(BPF_JMP | BPF_JA, 0));
  }
  p.push_back(stmt(BPF_RET | BPF_K, kFallback));  // not in the window
}

void patch(std::vector<sock_filter>& p, const std::vector<std::size_t>& fixups,
           std::size_t target) {
  for (std::size_t at : fixups) p[at].k = static_cast<std::uint32_t>(target - (at + 1));
}

}  // namespace

std::vector<sock_filter> steeringProgram(std::size_t loops, bool spread_requests) {
  SIPWAKE_CHECK(loops >= 1);
  std::vector<sock_filter> p;
  std::vector<std::size_t> to_branch_tail, to_call_id_tail;
  p.push_back(stmt(BPF_LD | BPF_W | BPF_LEN, 0));
  p.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, kFirstOffset + 20, 1, 0));
  p.push_back(stmt(BPF_RET | BPF_K, kFallback));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, 0));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kSip, 1, 0));
  std::size_t to_requests = p.size();
  p.push_back(stmt(BPF_JMP | BPF_JA, 0));  // patched: a request
  // A response: our branch cookie (tail reads 11 bytes from the hit).
  appendSearch(p, kZ9hg, false, kFirstOffset, kSteerBranchWindow - 12, 12, to_branch_tail);
  // A request: "Call-ID" (tail reads 22 bytes from the hit of "l-ID", 3 bytes into "Call-ID").
  p[to_requests].k = static_cast<std::uint32_t>(p.size() - (to_requests + 1));
  if (!spread_requests) {
    p.push_back(stmt(BPF_RET | BPF_K, kFallback));
  } else {
    appendSearch(p, kLdashId, true, kFirstOffset, kSteerCallIdWindow - 24, 22, to_call_id_tail);
  }

  // Response tail (X = offset of "z9hG"): "4bKw" and three hex digits = the loop.
  patch(p, to_branch_tail, p.size());
  p.push_back(stmt(BPF_LD | BPF_W | BPF_IND, 4));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, k4bkw, 1, 0));
  p.push_back(stmt(BPF_RET | BPF_K, kFallback));  // a branch that is not ours
  p.push_back(stmt(BPF_LD | BPF_B | BPF_IND, 8));
  appendHexDigit(p);
  p.push_back(stmt(BPF_ALU | BPF_LSH | BPF_K, 8));
  p.push_back(stmt(BPF_ST, 0));
  p.push_back(stmt(BPF_LD | BPF_B | BPF_IND, 9));
  appendHexDigit(p);
  p.push_back(stmt(BPF_ALU | BPF_LSH | BPF_K, 4));
  p.push_back(stmt(BPF_ST, 1));
  p.push_back(stmt(BPF_LD | BPF_B | BPF_IND, 10));
  appendHexDigit(p);
  p.push_back(stmt(BPF_LDX | BPF_W | BPF_MEM, 0));
  p.push_back(stmt(BPF_ALU | BPF_ADD | BPF_X, 0));
  p.push_back(stmt(BPF_LDX | BPF_W | BPF_MEM, 1));
  p.push_back(stmt(BPF_ALU | BPF_ADD | BPF_X, 0));
  p.push_back(stmt(BPF_RET | BPF_A, 0));

  if (!spread_requests) return p;
  // Request tail (X = offset of "l-ID" in "Call-ID"): ": ", then FNV-1a over the value's first
  // kSteerCallIdBytes bytes (up to its CR), mixed, modulo the loops (steeredLoopForCallId).
  // Anything else ("Call-ID:x", a false "l-ID") → the kernel's hash.
  patch(p, to_call_id_tail, p.size());
  p.push_back(stmt(BPF_LD | BPF_H | BPF_IND, 4));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, 0x3a20, 1, 0));  // ": "
  p.push_back(stmt(BPF_RET | BPF_K, kFallback));
  p.push_back(stmt(BPF_STX, 1));  // M[1] = base (X is needed for the xor)
  p.push_back(stmt(BPF_LD | BPF_IMM, kFnvBasis));
  p.push_back(stmt(BPF_ST, 0));
  const std::size_t per_byte = 7;
  for (std::uint32_t k = 0; k < kSteerCallIdBytes; ++k) {
    std::size_t left = (kSteerCallIdBytes - 1 - k) * per_byte;  // instructions after this byte
    p.push_back(stmt(BPF_LDX | BPF_W | BPF_MEM, 1));
    p.push_back(stmt(BPF_LD | BPF_B | BPF_IND, 6 + k));
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, '\r', static_cast<std::uint8_t>(left + 4), 0));
    p.push_back(stmt(BPF_LDX | BPF_W | BPF_MEM, 0));
    p.push_back(stmt(BPF_ALU | BPF_XOR | BPF_X, 0));
    p.push_back(stmt(BPF_ALU | BPF_MUL | BPF_K, kFnvPrime));
    p.push_back(stmt(BPF_ST, 0));
  }
  p.push_back(stmt(BPF_LD | BPF_W | BPF_MEM, 0));
  p.push_back(stmt(BPF_ALU | BPF_MUL | BPF_K, kMix));
  p.push_back(stmt(BPF_ST, 0));
  p.push_back(stmt(BPF_ALU | BPF_RSH | BPF_K, 16));
  p.push_back(stmt(BPF_LDX | BPF_W | BPF_MEM, 0));
  p.push_back(stmt(BPF_ALU | BPF_XOR | BPF_X, 0));
  p.push_back(stmt(BPF_ALU | BPF_MOD | BPF_K, static_cast<std::uint32_t>(loops)));
  p.push_back(stmt(BPF_RET | BPF_A, 0));
  SIPWAKE_CHECK(p.size() <= BPF_MAXINSNS);
  return p;
}

std::size_t steeredLoopForCallId(std::string_view call_id, std::size_t loops) {
  std::uint32_t h = kFnvBasis;
  for (std::size_t k = 0; k < kSteerCallIdBytes && k < call_id.size(); ++k) {
    h ^= static_cast<unsigned char>(call_id[k]);
    h *= kFnvPrime;
  }
  h *= kMix;
  h ^= h >> 16;
  return h % loops;
}

Status attachSteering(int fd, std::size_t loops, bool spread_requests) {
  std::vector<sock_filter> prog = steeringProgram(loops, spread_requests);
  sock_fprog fprog{};
  fprog.len = static_cast<unsigned short>(prog.size());
  fprog.filter = prog.data();
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog)) != 0) {
    return unavailable(std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace sipwake::transport
