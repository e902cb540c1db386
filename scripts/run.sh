#!/usr/bin/env bash
# Fresh Debian 12 → running server: installs the packages, builds Release into build/ and runs
# ./build/sipwake on its default configuration (loopback: udp/tcp 127.0.0.1:5060, tls
# 127.0.0.1:5061 with an ephemeral self-signed certificate). Extra arguments go to sipwake,
# e.g. scripts/run.sh --config config/sipwake.example.toml
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSIPWAKE_BUILD_TESTS=OFF \
  -DSIPWAKE_BUILD_BENCH=OFF
cmake --build build -j "$(nproc)"
exec ./build/sipwake "$@"
