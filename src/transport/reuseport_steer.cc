#include "transport/reuseport_steer.h"

#include <linux/filter.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sipwake::transport {

namespace {

constexpr std::uint32_t kFallback = 0xffffffffu;  // ≥ group size: the kernel's own hash
constexpr std::uint32_t kSip = 0x5349502fu;       // "SIP/"
constexpr std::uint32_t kZ9hg = 0x7a396847u;      // "z9hG"
constexpr std::uint32_t k4bkw = 0x34624b77u;      // "4bKw"
constexpr std::uint32_t kFirstOffset = 12;        // "SIP/2.0 xxx " precedes any header

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

}  // namespace

std::vector<sock_filter> responseSteeringProgram() {
  std::vector<sock_filter> p;
  p.push_back(stmt(BPF_LD | BPF_W | BPF_LEN, 0));
  p.push_back(jump(BPF_JMP | BPF_JGE | BPF_K, kFirstOffset + 12, 1, 0));
  p.push_back(stmt(BPF_RET | BPF_K, kFallback));
  p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, 0));
  p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kSip, 1, 0));
  p.push_back(stmt(BPF_RET | BPF_K, kFallback));  // a request: as without the program
  // Search: per offset, 4 instructions; a hit jumps to the common tail with X = offset.
  const std::uint32_t last = static_cast<std::uint32_t>(kSteerWindow) - 12;
  const std::size_t search_begin = p.size();
  const std::size_t per = 4;
  const std::size_t positions = last - kFirstOffset + 1;
  const std::size_t common = search_begin + positions * per + 1;
  for (std::uint32_t off = kFirstOffset; off <= last; ++off) {
    p.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, off));
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, kZ9hg, 0, 2));
    p.push_back(stmt(BPF_LDX | BPF_W | BPF_IMM, off));
    std::size_t here = p.size();
    p.push_back(stmt(BPF_JMP | BPF_JA, static_cast<std::uint32_t>(common - (here + 1))));
  }
  p.push_back(stmt(BPF_RET | BPF_K, kFallback));  // no "z9hG" in the window
  // Common tail (X = offset of "z9hG").
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
  return p;
}

Status attachResponseSteering(int fd) {
  std::vector<sock_filter> prog = responseSteeringProgram();
  sock_fprog fprog{};
  fprog.len = static_cast<unsigned short>(prog.size());
  fprog.filter = prog.data();
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog)) != 0) {
    return unavailable(std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno));
  }
  return Status::ok();
}

}  // namespace sipwake::transport
