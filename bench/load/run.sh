#!/usr/bin/env bash
# sipwake vs Kamailio under the same sipp load, on loopback; prints one table.
#   bench/load/run.sh [--quick] [--reps N] [--rate R] [--duration S] [--step-duration S]
#                     [--steps 500,1000,...] [--users N] [--work DIR]
# Installs kamailio and sip-tester (apt-get) if missing, builds sipwake Release into
# build-release/ if needed, provisions the users once (cached in the work directory).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REPS=3 RATE=500 DURATION=20 STEP_DURATION=10 STEPS=500,1000,2000,4000,8000 USERS=10000
WORK="${BENCH_WORK:-/tmp/sipwake-bench}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) REPS=1 DURATION=8 STEP_DURATION=4 STEPS=1000,2000,4000; shift ;;
    --reps) REPS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --step-duration) STEP_DURATION="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    -h|--help) sed -n 2,6p "$0"; exit 0 ;;
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

BIN="$ROOT/build-release/sipwake"
if [ ! -x "$BIN" ]; then
  [ -x "$ROOT/scripts/install-deps.sh" ] && "$ROOT/scripts/install-deps.sh"
  cmake -S "$ROOT" -B "$ROOT/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIPWAKE_BUILD_TESTS=OFF
  cmake --build "$ROOT/build-release" -j"$(nproc)" --target sipwake
fi

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

# sipwake's users go through its own CLI (`sipwake user add`), 4 at a time; done once per
# user count and kept as a template store that every run copies.
STORE="$WORK/users-$USERS.db"
if [ ! -f "$STORE" ]; then
  echo "[bench] provisioning $USERS users into $STORE with 'sipwake user add' (once, a few minutes)"
  rm -f "$STORE.tmp" "$STORE.tmp-wal" "$STORE.tmp-shm"
  echo pwcallee | "$BIN" --store "$STORE.tmp" user add callee@127.0.0.1 >/dev/null
  seq 0 $((USERS - 1)) | xargs -P 4 -I{} sh -c \
    'i=$(printf %05d {}); echo pw$i | "$0" --store "$1" user add u$i@127.0.0.1 >/dev/null' \
    "$BIN" "$STORE.tmp"
  got=$("$BIN" --store "$STORE.tmp" user list | wc -l)
  [ "$got" -ge $((USERS + 1)) ] || { echo "[bench] only $got users provisioned" >&2; exit 1; }
  mv "$STORE.tmp" "$STORE"
fi

python3 "$HERE/bench.py" --sipwake "$BIN" --sipwake-users "$STORE" \
  --users-csv "$WORK/users.csv" --callee-csv "$WORK/callee.csv" --users "$USERS" \
  --work "$RUN" --reps "$REPS" --rate "$RATE" --duration "$DURATION" \
  --step-duration "$STEP_DURATION" --steps "$STEPS"
python3 "$HERE/report.py" "$RUN"
