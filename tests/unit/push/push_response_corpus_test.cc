// Replays the seed corpus of fuzz_push_response (tests/fuzz/corpus/fuzz_push_response/) through
// the same checks the fuzzer makes (tests/fuzz/push_response_exercise.h), so the invariants hold
// in every build, without libFuzzer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../../fuzz/push_response_exercise.h"

namespace sipwake::push {
namespace {

TEST(PushResponseCorpusTest, SeedCorpusPassesTheFuzzInvariants) {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(SIPWAKE_PUSH_RESPONSE_CORPUS)) {
    if (!entry.is_regular_file()) continue;
    SCOPED_TRACE(entry.path().string());
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string s = bytes.str();
    fuzz::exercise(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    ++n;
  }
  EXPECT_GE(n, 20u);
}

}  // namespace
}  // namespace sipwake::push
