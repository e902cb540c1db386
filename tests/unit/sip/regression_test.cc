// Replays every fuzz crash reproducer (tests/fuzz/regressions/) and the seed corpus through the
// same checks the fuzzer makes (tests/fuzz/fuzz_exercise.h), so a fixed crash stays fixed even in
// builds without libFuzzer.
#include <gtest/gtest.h>

#include <filesystem>

#include "../../fuzz/fuzz_exercise.h"
#include "test_util.h"

namespace sipwake::sip {
namespace {

std::size_t replayDirectory(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (!entry.is_regular_file() || entry.path().filename() == "README.md") continue;
    SCOPED_TRACE(entry.path().string());
    const std::string bytes = testing::readFile(entry.path());
    fuzz::exercise(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    ++n;
  }
  return n;
}

TEST(FuzzRegressionTest, ReproducersStayFixed) {
  EXPECT_GE(replayDirectory(SIPWAKE_FUZZ_REGRESSIONS_DIR), 1u);
}

TEST(FuzzRegressionTest, SeedCorpusPassesTheFuzzInvariants) {
  EXPECT_GE(
      replayDirectory(std::filesystem::path(SIPWAKE_FUZZ_REGRESSIONS_DIR).parent_path() / "corpus"),
      60u);
}

}  // namespace
}  // namespace sipwake::sip
