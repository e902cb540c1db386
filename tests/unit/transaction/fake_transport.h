// A hand-written transport::Transport for tests: records every send, can be told to fail sends.
// Completions run inside send() (as a real transport may do for UDP), so code under test must
// cope with re-entrant completions.
#pragma once

#include <cstddef>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "transport/transport.h"

namespace sipwake::testing {

class FakeTransport final : public transport::Transport {
 public:
  struct Sent {
    transport::SendTarget target;
    std::string bytes;
  };

  void send(const transport::SendTarget& target, std::string bytes,
            std::function<void(Status)> on_done) override {
    sent.push_back(Sent{target, std::move(bytes)});
    Status result = Status::ok();
    if (fail_sends > 0) {
      --fail_sends;
      result = unavailable("fake transport: send failed");
    }
    if (on_done) on_done(std::move(result));
  }

  Result<transport::Address> localAddressFor(transport::Protocol /*protocol*/,
                                             bool /*v6*/) const override {
    return local;
  }

  void pinInvite(std::string_view key) override { pinned.insert(std::string(key)); }
  void unpinInvite(std::string_view key) override { pinned.erase(std::string(key)); }

  static transport::Address address(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                                    std::uint16_t port) {
    transport::Address addr;
    addr.bytes[0] = a;
    addr.bytes[1] = b;
    addr.bytes[2] = c;
    addr.bytes[3] = d;
    addr.port = port;
    return addr;
  }

  std::vector<Sent> sent;
  std::set<std::string> pinned;  // INVITE server transactions pinned (affinity keys)
  int fail_sends = 0;            // the next `fail_sends` sends report an error
  transport::Address local = address(192, 0, 2, 1, 5060);
};

}  // namespace sipwake::testing
