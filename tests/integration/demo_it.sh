#!/usr/bin/env bash
# integration.demo: runs scripts/demo.sh (the README's one-command demo) against a build
# directory and checks its exit status and that the story has every step, in order.
#   demo_it.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src="$1" build="$2"
out="$("$src/scripts/demo.sh" --build "$build" 2>&1)"
rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 0 ] || { echo "FAIL demo: exit status $rc"; exit 1; }
# in_order PREFIX STEP...: the lines starting with PREFIX (one process's account) hold each STEP
# after the previous one. Lines of different processes may interleave either way.
in_order() {
  local rest line step
  rest="$(printf '%s\n' "$out" | grep -E -- "$1")"
  shift
  for step in "$@"; do
    line="$(printf '%s\n' "$rest" | grep -nE -m1 -- "$step")" ||
      { echo "FAIL demo: missing (or out of order): $step"; exit 1; }
    rest="$(printf '%s\n' "$rest" | tail -n +"$((${line%%:*} + 1))")"
  done
}
in_order '^\[ *[0-9.]+s\] caller ' \
  '<- 100 Trying' '<- 180 Ringing  \(sipwake.s ringback' '<- 200 OK$' '<- 200 OK to BYE'
in_order '^\[ *[0-9.]+s\] fakepns ' 'accepted APNs voip push for '
in_order '^\[ *[0-9.]+s\] phone ' \
  'REGISTER alice@127\.0\.0\.1 with RFC 8599 push params' \
  'woken by a voip push \(topic com\.example\.phone\.voip\)' \
  're-REGISTER over a new connection -> 200' \
  'INVITE forwarded by sipwake: sip:alice@127\.0\.0\.1:[0-9]+;transport=tcp$'
in_order '^( +wake: call | +\+[0-9]+ms )' \
  'wake: call [^ ]+ to sip:alice@127\.0\.0\.1: \+0ms INVITE in \(0 live contacts\)' \
  'push call sent to apns:' 'REGISTER from apns:' 'INVITE out to apns:' 'final 200;'
printf '%s\n' "$out" | tail -n 1 | grep -qx 'demo OK' || { echo "FAIL demo: no 'demo OK'"; exit 1; }
if printf '%s\n' "$out" | grep -q 'INVITE forwarded by sipwake: .*pn-'; then
  echo "FAIL demo: push parameters reached the phone"; exit 1
fi
echo "PASS demo"
