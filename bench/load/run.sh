#!/usr/bin/env bash
# sipwake vs Kamailio under the same sipp load, on loopback; prints one table.
#   bench/load/run.sh [--quick] [--reps N] [--rate R] [--duration S] [--step-duration S]
#                     [--steps 500,1000,...] [--users N] [--work DIR] [--build DIR] [--no-build]
#                     [--wake-rate R] [--wake-steps 100,200,...] [--no-wake]
#   bench/load/run.sh --edge MODE [--users N] [--registers N] [--rate R] [--calls N]
#                     [--call-rate R] [--call-devices N] [--refreshes N] [--fronts sipwake,kamailio]
#                     # edge mode (own|relay) vs a Kamailio proxy (edge.py)
#   bench/load/run.sh --fleet [--fleet-devices N] [--fleet-rate R] [--fleet-delay-ms MIN-MAX]
#                     [--fleet-lose-share X]   # lost and late pushes, before/after re-push
# Installs kamailio and sip-tester (apt-get) if missing, builds (incrementally) sipwake and
# sipwake-fakepns Release in build-release/ (or --build DIR), provisions the users once (cached
# in the work directory).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REPS=3 RATE=500 DURATION=20 STEP_DURATION=10 STEPS=500,1000,2000,4000,8000 USERS=10000
WAKE_RATE=100 WAKE_STEPS=100,150,200,300,400 WAKE=1 BUILD="" DO_BUILD=1
EDGE="" EDGE_ARGS=() FLEET=0 FLEET_ARGS=()
WORK="${BENCH_WORK:-/tmp/sipwake-bench}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) REPS=1 DURATION=8 STEP_DURATION=4 STEPS=1000,2000,4000 WAKE_STEPS=100,200; shift ;;
    --reps) REPS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --step-duration) STEP_DURATION="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --no-build) DO_BUILD=0; shift ;;
    --wake-rate) WAKE_RATE="$2"; shift 2 ;;
    --wake-steps) WAKE_STEPS="$2"; shift 2 ;;
    --no-wake) WAKE=0; shift ;;
    --edge) EDGE="$2"; shift 2 ;;
    --fleet) FLEET=1; shift ;;
    --fleet-devices|--fleet-rate|--fleet-delay-ms|--fleet-lose-share) FLEET_ARGS+=("$1" "$2"); shift 2 ;;
    --registers|--calls|--call-rate|--call-devices|--fronts|--refreshes) EDGE_ARGS+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
command -v sipp >/dev/null || need+=(sip-tester)
[ -x /usr/sbin/kamailio ] || need+=(kamailio)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "[bench] installing ${need[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The Debian package enables a kamailio service on 5060; the bench starts its own instances.

BUILD="${BUILD:-$ROOT/build-release}"
case "$BUILD" in /*) ;; *) BUILD="$PWD/$BUILD" ;; esac  # the servers run in the work directory
BIN="$BUILD/sipwake" FAKEPNS="$BUILD/sipwake-fakepns"
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  [ -x "$ROOT/scripts/install-deps.sh" ] && "$ROOT/scripts/install-deps.sh"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIPWAKE_BUILD_TESTS=OFF
fi
if [ "$DO_BUILD" = 1 ] || [ ! -x "$BIN" ] || { [ "$WAKE" = 1 ] && [ ! -x "$FAKEPNS" ]; }; then
  targets=(sipwake); [ "$WAKE" = 1 ] && targets+=(sipwake-fakepns)
  cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}"
fi
command -v openssl >/dev/null || WAKE=0  # the wake workload makes its APNs key with openssl
WAKE_ARGS=()
[ "$WAKE" = 1 ] && WAKE_ARGS=(--fakepns "$FAKEPNS" --wake-rate "$WAKE_RATE" --wake-steps "$WAKE_STEPS")

mkdir -p "$WORK"
RUN="$WORK/run-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN"

# Users u00000.. with password pw00000.., and callee/pwcallee. sipp's injection file carries the
# [authentication] keyword per user (see scenarios/reg_auth.xml).
python3 - "$WORK" "$USERS" <<'PY'
import os, sys
work, n = sys.argv[1], int(sys.argv[2])
with open(os.path.join(work, "users.csv"), "w") as f:
    f.write("SEQUENTIAL\n")
    for i in range(n):
        u, p = "u%05d" % i, "pw%05d" % i
        f.write("%s;%s;[authentication username=%s password=%s]\n" % (u, p, u, p))
with open(os.path.join(work, "callee.csv"), "w") as f:
    f.write("SEQUENTIAL\ncallee;pwcallee;[authentication username=callee password=pwcallee]\n")
PY

# sipwake's users go through its own CLI, done once per user count and kept as a template store
# that every run copies: `sipwake user import` (one transaction, seconds for 10k users) when this
# build has it, else `sipwake user add`, 4 at a time (~10/s).
STORE="$WORK/users-$USERS.db"
if [ ! -f "$STORE" ]; then
  rm -f "$STORE.tmp" "$STORE.tmp-wal" "$STORE.tmp-shm"
  if "$BIN" user import --help >/dev/null 2>&1; then
    echo "[bench] provisioning $USERS users into $STORE with 'sipwake user import'"
    { echo "callee@127.0.0.1 pwcallee"
      seq 0 $((USERS - 1)) | awk '{ printf "u%05d@127.0.0.1 pw%05d\n", $1, $1 }'; } |
      "$BIN" --store "$STORE.tmp" user import - >/dev/null
  else
    echo "[bench] provisioning $USERS users into $STORE with 'sipwake user add' (once, a few minutes)"
    echo pwcallee | "$BIN" --store "$STORE.tmp" user add callee@127.0.0.1 >/dev/null
    seq 0 $((USERS - 1)) | xargs -P 4 -I{} sh -c \
      'i=$(printf %05d {}); echo pw$i | "$0" --store "$1" user add u$i@127.0.0.1 >/dev/null' \
      "$BIN" "$STORE.tmp"
  fi
  got=$("$BIN" --store "$STORE.tmp" user list | wc -l)
  [ "$got" -ge $((USERS + 1)) ] || { echo "[bench] only $got users provisioned" >&2; exit 1; }
  mv "$STORE.tmp" "$STORE"
fi

if [ "$FLEET" = 1 ]; then
  exec python3 "$HERE/bench.py" --fleet --fakepns "$FAKEPNS" --sipwake "$BIN" \
    --sipwake-users "$STORE" --users-csv "$WORK/users.csv" --callee-csv "$WORK/callee.csv" \
    --users "$USERS" --work "$RUN" ${FLEET_ARGS[@]+"${FLEET_ARGS[@]}"}
fi
if [ -n "$EDGE" ]; then
  [ "$WAKE" = 1 ] && EDGE_ARGS+=(--fakepns "$FAKEPNS")
  [ "$RATE" = 500 ] && RATE=200  # edge.py's default: the PBX is in every path
  exec python3 "$HERE/edge.py" --mode "$EDGE" --sipwake "$BIN" --sipwake-users "$STORE" \
    --users-csv "$WORK/users.csv" --users "$USERS" --work "$RUN" --rate "$RATE" \
    ${EDGE_ARGS[@]+"${EDGE_ARGS[@]}"}
fi
python3 "$HERE/bench.py" --sipwake "$BIN" --sipwake-users "$STORE" \
  --users-csv "$WORK/users.csv" --callee-csv "$WORK/callee.csv" --users "$USERS" \
  --work "$RUN" --reps "$REPS" --rate "$RATE" --duration "$DURATION" \
  --step-duration "$STEP_DURATION" --steps "$STEPS" "${WAKE_ARGS[@]}"
python3 "$HERE/report.py" "$RUN"
