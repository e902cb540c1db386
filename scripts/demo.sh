#!/usr/bin/env bash
# One call to a sleeping phone, end to end, on loopback (after the build of README command 1):
#   sipwake            registrar/proxy, pushing through the fake APNs below
#   sipwake-fakepns    strict fake APNs (checks the JWT, topic, push type like Apple does)
#   sipwake-phone      a simulated iOS app: REGISTERs with RFC 8599 push params, goes to the
#                      background (un-REGISTER, connection closed), wakes on the VoIP push
#   a caller           plain SIP over UDP (embedded below)
# and prints the story: 180 while the phone wakes, the push the fake accepted, the phone's
# re-REGISTER, the INVITE sipwake forwards to it, the 200, and sipwake's timeline log line.
# Everything it starts is stopped on exit. Exit status: 0 the call went through, 1 it did not,
# 2 usage / missing programs.
#
#   scripts/demo.sh [--build DIR] [--keep]     (DIR defaults to build/)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build"
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$(cd "${2:?--build DIR}" && pwd)"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done
sipwake="$build/sipwake"
fakepns="$build/sipwake-fakepns"
phone="$root/tools/sipwake-phone/sipwake-phone"
for f in "$sipwake" "$fakepns"; do
  [ -x "$f" ] || { echo "demo.sh: $f missing: build first (README command 1)" >&2; exit 2; }
done
for p in python3 openssl; do
  command -v "$p" >/dev/null || { echo "demo.sh: $p is needed" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/sipwake-demo.XXXXXX")"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "demo FAILED: $*" >&2
  for log in "$work"/*.log; do
    [ -f "$log" ] && { echo "--- $(basename "$log") (last lines)" >&2; tail -n 15 "$log" >&2; }
  done
  exit 1
}
# wait_for FILE REGEX SECONDS: bounded wait for a line in a log a process is writing.
wait_for() {
  local deadline=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}
free_ports() {  # N free ports on 127.0.0.1 (TCP and UDP)
  python3 - "$1" <<'EOF'
import socket, sys
socks, ports = [], []
while len(ports) < int(sys.argv[1]):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close(); continue
    socks += [t, u]; ports.append(port)
print(" ".join(map(str, ports)))
EOF
}

KEY_ID=ABCDE12345 TEAM=TEAM123456 BUNDLE=com.example.phone
echo "sipwake demo: a call to a phone that sleeps (everything on 127.0.0.1, logs in $work)"

# 1. The fake APNs, trusting the public half of a fresh .p8 key.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/apns.p8" 2>/dev/null
openssl pkey -in "$work/apns.p8" -pubout -out "$work/apns.pub" 2>/dev/null
read -r pns_port sip_port <<<"$(free_ports 2)"
"$fakepns" --listen "127.0.0.1:$pns_port" --make-cert "$work/cert" \
  --apns-key "$KEY_ID:$TEAM:$work/apns.pub" --apns-topic "$BUNDLE" --control 127.0.0.1:0 \
  >"$work/fakepns.out" 2>"$work/fakepns.log" &
pids+=($!)
wait_for "$work/fakepns.out" '^ready' 10 || fail "sipwake-fakepns did not start"
ca="$(sed -n 's/^ca //p' "$work/fakepns.out")"
control="$(sed -n 's/^control //p' "$work/fakepns.out")"
echo "  sipwake-fakepns: fake APNs on 127.0.0.1:$pns_port (control $control)"

# 2. sipwake with one APNs app (token auth) whose endpoint is the fake.
cat >"$work/demo.toml" <<EOF
[server]
workers = 1
domains = ["127.0.0.1"]

[store]
path = "$work/sipwake.db"

[[listen]]
transport = "udp"
port = $sip_port
[[listen]]
transport = "tcp"
port = $sip_port

[push]
ring_timeout = 15
parked_provisional = 180

[[push.app]]
provider = "apns"
id = "$BUNDLE"
key_file = "$work/apns.p8"
key_id = "$KEY_ID"
team_id = "$TEAM"
endpoint = "https://127.0.0.1:$pns_port"
ca_file = "$ca"
EOF
"$sipwake" check-config "$work/demo.toml" >/dev/null || fail "demo config rejected"
echo alice-pw | "$sipwake" user add alice@127.0.0.1 --store "$work/sipwake.db" >/dev/null
"$sipwake" --config "$work/demo.toml" >"$work/sipwake.log" 2>&1 &
pids+=($!)
wait_for "$work/sipwake.log" '\bready\b' 15 || fail "sipwake did not start"
echo "  sipwake: udp+tcp 127.0.0.1:$sip_port, pushes through the fake APNs"

# 3. The phone: registers with push params over TCP, then goes to the background.
python3 "$phone" --server "tcp:127.0.0.1:$sip_port" --user alice@127.0.0.1 --password alice-pw \
  --dialect rfc8599 --provider apns --app "$BUNDLE" --team "$TEAM" \
  --fakepns-control "$control" --background-after-register --calls 1 --on-call answer \
  --answer-after-ms 500 --timeout 40 --events "$work/phone.events" >"$work/phone.log" 2>&1 &
pids+=($!)
wait_for "$work/phone.events" '"event": "backgrounded"' 20 || fail "the phone did not register"

# 4. The call, told as it happens.
python3 - "$sip_port" "$work" <<'EOF' || fail "the call did not complete"
import json, os, re, select, socket, sys, time, uuid

port, work = int(sys.argv[1]), sys.argv[2]
t0 = time.monotonic()
def say(who, what):
    print("[%6.3fs] %-9s %s" % (time.monotonic() - t0, who, what), flush=True)

# Lines the others write, shown as they appear.
class Tail:
    def __init__(self, path): self.path, self.pos = path, 0
    def lines(self):
        try:
            with open(self.path, errors="replace") as f:
                f.seek(self.pos); data = f.read()
        except FileNotFoundError:
            return []
        cut = data.rfind("\n") + 1
        self.pos += len(data[:cut].encode())
        return data[:cut].splitlines()
phone_ev, pns_log = Tail(work + "/phone.events"), Tail(work + "/fakepns.log")
for e in phone_ev.lines():
    if e and json.loads(e)["event"] == "registered":
        say("phone", "REGISTER alice@127.0.0.1 with RFC 8599 push params (APNs VoIP token) -> 200")
say("phone", "went to the background: un-REGISTER (push binding kept), connection closed")
seen = set()
def poll_others():
    for line in pns_log.lines():
        m = re.search(r"fakepns: (accepted .*)", line)
        if m:
            seen.add("push"); say("fakepns", m.group(1) + " (JWT, topic, push type checked)")
    for line in phone_ev.lines():
        e = json.loads(line); ev = e["event"]
        if ev == "push_received":
            say("phone", "woken by a %s push (topic %s)" % (e.get("push_type"), e.get("topic")))
        elif ev == "reregistered":
            seen.add("rereg"); say("phone", "re-REGISTER over a new connection -> %s" % e.get("code"))
        elif ev == "invite_received":
            seen.add("invite"); say("phone", "INVITE forwarded by sipwake: %s" % e.get("ruri"))
        elif ev == "answered":
            say("phone", "answers: 200 OK")

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
lport = sock.getsockname()[1]
call_id, tag = uuid.uuid4().hex + "@demo-caller", uuid.uuid4().hex[:8]
def request(method, ruri, cseq, extra=(), to_tag="", body=""):
    lines = ["%s %s SIP/2.0" % (method, ruri),
             "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport" % (lport, uuid.uuid4().hex),
             "Max-Forwards: 70", "From: \"Carol\" <sip:carol@caller.example>;tag=" + tag,
             "To: <sip:alice@127.0.0.1>" + (";tag=" + to_tag if to_tag else ""),
             "Call-ID: " + call_id, "CSeq: %d %s" % (cseq, method),
             "Contact: <sip:carol@127.0.0.1:%d>" % lport] + list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
def receive(deadline):
    while time.monotonic() < deadline:
        poll_others()
        r, _, _ = select.select([sock], [], [], 0.05)
        if r:
            text = sock.recv(65535).decode(errors="replace")
            poll_others()  # what led to this response comes first
            head = text.split("\r\n\r\n", 1)[0].split("\r\n")
            m = re.match(r"SIP/2.0 (\d+) (.*)", head[0])
            if not m:
                continue
            hdrs = {}
            for h in head[1:]:
                k, _, v = h.partition(":")
                hdrs.setdefault(k.strip().lower(), []).append(v.strip())
            return int(m.group(1)), m.group(2), hdrs
    return None

sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 30000 RTP/AVP 0\r\n")
say("caller", "INVITE sip:alice@127.0.0.1 (Carol, from another domain)")
sock.sendto(request("INVITE", "sip:alice@127.0.0.1", 1, body=sdp), ("127.0.0.1", port))
deadline = time.monotonic() + 25
provisional = []
while True:
    r = receive(deadline)
    if r is None:
        say("caller", "no final response"); sys.exit(1)
    code, reason, hdrs = r
    if "INVITE" not in hdrs.get("cseq", [""])[0]:
        continue
    say("caller", "<- %d %s" % (code, reason) +
        ("  (sipwake's ringback while the phone wakes)" if code == 180 and "invite" not in seen
         else ""))
    if code < 200:
        provisional.append(code); continue
    break
if code != 200:
    sys.exit(1)
to_tag = re.search(r";tag=([^;>\s]+)", hdrs["to"][0]).group(1)
target = re.search(r"<([^>]+)>", hdrs["contact"][0]).group(1)
rr = [x.strip() for v in hdrs.get("record-route", []) for x in v.split(",")]
route = ["Route: " + ", ".join(reversed(rr))] if rr else []
sock.sendto(request("ACK", target, 1, route, to_tag), ("127.0.0.1", port))
say("caller", "-> ACK; talking...; -> BYE")
sock.sendto(request("BYE", target, 2, route, to_tag), ("127.0.0.1", port))
r = receive(time.monotonic() + 10)
while r is not None and "BYE" not in r[2].get("cseq", [""])[0]:
    r = receive(time.monotonic() + 10)
if r is None or r[0] != 200:
    say("caller", "BYE not answered 200"); sys.exit(1)
say("caller", "<- 200 OK to BYE: call over")
poll_others()
missing = {"push", "rereg", "invite"} - seen
if 180 not in provisional or missing:
    say("demo", "missing: %s" % (sorted(missing) + ([] if 180 in provisional else ["180"])))
    sys.exit(1)
EOF

# 5. sipwake's own account of the call: one timeline line per parked call.
wait_for "$work/sipwake.log" 'wake: call ' 10 || fail "no timeline line in the sipwake log"
echo "  sipwake timeline:"
grep -oE 'wake: call .*' "$work/sipwake.log" | head -n 1 | sed 's/; /;\n      /g; s/^/      /'
echo "demo OK"
