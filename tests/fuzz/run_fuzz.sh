#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz/ (clang++-14, ASan+UBSan) and fuzzes parseMessage,
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
cmake --build "$build" --target fuzz_message fuzz_digest fuzz_push_params fuzz_http1 -j "$(nproc)"
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

# The other parsers of untrusted bytes get a third of the time each: digest credentials
# (Authorization headers), Contact push parameters and the webhook HTTP/1.1 codec.
short=$(( seconds / 3 > 5 ? seconds / 3 : 5 ))
for target in fuzz_digest fuzz_push_params fuzz_http1; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  [ "$target" = fuzz_push_params ] && cp -r "$root/tests/data/push/fuzz_corpus/." "$corpus/" 2>/dev/null || true
  bin=$(find "$build" -type f -name "$target" -perm -u+x | head -n 1)
  echo "fuzzing $target for ${short}s"
  "$bin" "$corpus" -max_total_time="$short" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/"
  echo "$target: no crash in ${short}s"
done
