#!/usr/bin/env bash
# Installs every Debian 12 package sipwake needs to build, test and run.
# Usage: scripts/install-deps.sh            (build + run)
#        scripts/install-deps.sh --test     (also the test tools: sipp, clang/libFuzzer, openssl CLI,
#                                            sipvicious, and kamailio as the PBX of the edge-mode
#                                            tests: its base package carries every module
#                                            tests/pbx/kamailio.cfg loads, db_text included, and
#                                            kamailio-tls-modules its tls.so for the TLS upstream;
#                                            systemd for systemd-analyze in the install test,
#                                            chromium for the dashboard's headless browser test,
#                                            redis-server (also redis-sentinel's binary) for the
#                                            Redis client and store tests)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
pkgs=(build-essential cmake ninja-build pkg-config
      libasio-dev libssl-dev libnghttp2-dev libc-ares-dev nlohmann-json3-dev
      libspdlog-dev libfmt-dev libsqlite3-dev libhiredis-dev libcli11-dev libtomlplusplus-dev
      openssl ca-certificates)
if [ "${1:-}" = "--test" ]; then
  pkgs+=(libgtest-dev libgmock-dev libbenchmark-dev sip-tester clang-14 libclang-rt-14-dev
         python3 iproute2 procps baresip-core linphone-cli sipvicious kamailio
         kamailio-tls-modules systemd chromium redis-server)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
