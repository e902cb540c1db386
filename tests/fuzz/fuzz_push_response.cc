// libFuzzer target: what APNs, FCM and the OAuth token endpoint answer (JSON bodies, FCM's
// Retry-After), through src/push's parsers with the invariants of push_response_exercise.h.
// Build and run: tests/fuzz/run_fuzz.sh SECONDS (see tests/fuzz/README.md).
#include <cstddef>
#include <cstdint>

#include "push_response_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sipwake::push::fuzz::exercise(data, size);
  return 0;
}
