#!/usr/bin/env bash
# Builds the libFuzzer target in build-fuzz/ (clang++-14, ASan+UBSan) and fuzzes parseMessage,
# the serializer and StreamFramer for SECONDS seconds on a scratch copy of the seed corpus.
# Exits non-zero on a crash, leak, timeout or invariant violation; the reproducer is left in
# build-fuzz/artifacts/. Copy it to tests/fuzz/regressions/ (the unit tests replay that folder).
# Usage: tests/fuzz/run_fuzz.sh [SECONDS] (default 60)
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$root/build-fuzz"
cxx="${FUZZ_CXX:-clang++-14}"
command -v "$cxx" >/dev/null || { echo "run_fuzz.sh: $cxx not found (scripts/install-deps.sh --test)" >&2; exit 2; }
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$root" -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSIPWAKE_BUILD_FUZZ=ON -DSIPWAKE_BUILD_TESTS=OFF -DSIPWAKE_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" --target fuzz_message -j "$(nproc)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/tests/fuzz/corpus/." "$work/"
cp -r "$root/tests/fuzz/regressions/." "$work/" 2>/dev/null || true
mkdir -p "$build/artifacts"
echo "fuzzing fuzz_message for ${seconds}s"
"$build/tests/fuzz/fuzz_message" "$work" \
  -dict="$root/tests/fuzz/sip.dict" \
  -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/"
echo "fuzz_message: no crash in ${seconds}s"
