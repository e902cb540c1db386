#!/usr/bin/env bash
# Fresh Debian 12 → whole test suite: installs the build and test packages, builds with tests
# into build-test/ (RelWithDebInfo), runs every unit and integration test through ctest, then a
# short libFuzzer run of the message parser.
#
# Environment:
#   BUILD_DIR=dir        build directory (default build-test)
#   SIPWAKE_SANITIZE=1   build and test with ASan+UBSan
#   FUZZ_SECONDS=n       length of the fuzz run (default 60; 0 skips it)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build-test}
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

scripts/install-deps.sh --test

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSIPWAKE_BUILD_TESTS=ON -DSIPWAKE_SANITIZE="${SIPWAKE_SANITIZE:-OFF}"
cmake --build "$BUILD_DIR" -j "$JOBS"

# Every test has its own TIMEOUT; --timeout is the backstop for any that does not.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --timeout 300

if [ "$FUZZ_SECONDS" != 0 ] && [ -x tests/fuzz/run_fuzz.sh ]; then
  tests/fuzz/run_fuzz.sh "$FUZZ_SECONDS"
fi
echo "scripts/test.sh: all tests passed"
