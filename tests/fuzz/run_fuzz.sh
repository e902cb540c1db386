#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz/ (clang++-14, ASan+UBSan) and fuzzes them for about
# SECONDS seconds in all, each on a scratch copy of its seed corpus: parseMessage, the serializer
# and StreamFramer (fuzz_message) get half of the time, the other targets share the other half.
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
others=(fuzz_digest fuzz_push_params fuzz_http1 fuzz_push_response)
cmake --build "$build" --target fuzz_message "${others[@]}" -j "$(nproc)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# fuzz_message: the SIP messages at the top of corpus/ (the folders there belong to other targets).
mkdir -p "$work/fuzz_message"
find "$root/tests/fuzz/corpus" -maxdepth 1 -type f -exec cp {} "$work/fuzz_message/" \;
cp -r "$root/tests/fuzz/regressions/." "$work/fuzz_message/" 2>/dev/null || true
mkdir -p "$build/artifacts"
main=$(( seconds / 2 > 5 ? seconds / 2 : 5 ))
echo "fuzzing fuzz_message for ${main}s"
"$build/tests/fuzz/fuzz_message" "$work/fuzz_message" \
  -dict="$root/tests/fuzz/sip.dict" \
  -max_total_time="$main" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/artifacts/"
echo "fuzz_message: no crash in ${main}s"

# The other parsers of untrusted bytes share the rest: digest credentials (Authorization
# headers), Contact push parameters, the webhook HTTP/1.1 codec and the push services' answers
# (APNs / FCM / OAuth JSON, Retry-After). Each starts from corpus/<target>/ when it exists.
short=$(( (seconds - main) / ${#others[@]} > 5 ? (seconds - main) / ${#others[@]} : 5 ))
for target in "${others[@]}"; do
  corpus="$work/$target"
  mkdir -p "$corpus"
  cp -r "$root/tests/fuzz/corpus/$target/." "$corpus/" 2>/dev/null || true
  [ "$target" = fuzz_push_params ] && cp -r "$root/tests/data/push/fuzz_corpus/." "$corpus/" 2>/dev/null || true
  bin=$(find "$build" -type f -name "$target" -perm -u+x | head -n 1)
  echo "fuzzing $target for ${short}s"
  "$bin" "$corpus" -max_total_time="$short" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/"
  echo "$target: no crash in ${short}s"
done
