#!/usr/bin/env bash
# Pushes/s over one HTTP/2 connection: sipwake-pushprobe `send` (sipwake's own Http2PushSender)
# against sipwake-fakepns on loopback, APNs token auth (VoIP pushes).
#   bench/scale/push_rate.sh [BUILD_DIR] [COUNT] [CONCURRENCY]  (default build-release 20000 100)
# Prints the probe's summary JSON line (pushes_per_s, cpu_s_per_1000 of the sender). Bounded.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build-release}" COUNT="${2:-20000}" CONC="${3:-100}"
PROBE="$BUILD/sipwake-pushprobe" FAKE="$BUILD/sipwake-fakepns"
for b in "$PROBE" "$FAKE"; do [ -x "$b" ] || { echo "push_rate: $b not built" >&2; exit 2; }; done
WORK="$(mktemp -d /tmp/sipwake-push-rate.XXXXXX)"
FAKE_PID=""
cleanup() { [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/k.p8" 2>/dev/null
openssl pkey -in "$WORK/k.p8" -pubout -out "$WORK/k.pub" 2>/dev/null
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$FAKE" --listen 127.0.0.1:0 --make-cert "$WORK/cert" \
  --apns-key "ABCDE12345:TEAM123456:$WORK/k.pub" --apns-topic com.example.phone >"$WORK/fake.out" 2>"$WORK/fake.log" &
FAKE_PID=$!
for _ in $(seq 100); do grep -q '^ready' "$WORK/fake.out" && break; sleep 0.1; done
grep -q '^ready' "$WORK/fake.out" || { echo "push_rate: fakepns did not start" >&2; exit 1; }
PORT=$(sed -n 's/^listening .*:\([0-9]*\)$/\1/p' "$WORK/fake.out")
timeout 300 "$PROBE" --ca "$WORK/cert/cert.pem" send --service apns \
  --endpoint "https://127.0.0.1:$PORT" --key-file "$WORK/k.p8" --key-id ABCDE12345 \
  --team-id TEAM123456 --bundle com.example.phone --token "$TOKEN" \
  --count "$COUNT" --concurrency "$CONC" --quiet
