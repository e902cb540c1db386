// libFuzzer target: parseMessage + typed accessors + serialize/edit round trips + StreamFramer.
// Build and run: tests/fuzz/run_fuzz.sh SECONDS (see tests/fuzz/README.md).
#include <cstddef>
#include <cstdint>

#include "fuzz_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sipwake::sip::fuzz::exercise(data, size);
  return 0;
}
