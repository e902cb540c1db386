#!/usr/bin/env python3
"""Edge mode under load, side by side with Kamailio as a plain proxy in front of the same PBX.

A Kamailio PBX (tests/pbx/kamailio.cfg, started by tests/integration/pbx_kamailio.py: registrar
with digest auth, usrloc in memory, tm, record-routing) on 127.0.0.1, and in front of it, one at a
time, with a fresh PBX each:

  - sipwake-edge: sipwake with [edge] mode = MODE, upstream = the PBX (which, in "own" mode,
    trusts sipwake's address and port as docs/edge-mode.md asks; in "relay" mode it challenges
    the phones behind sipwake as any other);
  - kamailio-proxy: Kamailio with kamailio-proxy.cfg, a stateful proxy adding a Path to REGISTERs
    (the PBX challenges the phones through it) and record-routing calls.

Workloads (the same traffic against both):
  1. REGISTER: sipp reg_auth.xml (REGISTER, 401, REGISTER with credentials, 200), N distinct users
     at rate R, all first registrations. The figure runs until the PBX has received the
     REGISTERs it must (own mode: sipwake's own one per device, sent after its 200; relay mode
     and the proxy: both of the phone's, 2 per device) and the CPU has settled.
  2. Calls from a PBX user to the phones (wakefarm.py, callers sending to the PBX):
     sipwake-edge: the phones registered with APNs push params and went to the background; each
     call is woken (push to sipwake-fakepns, REGISTER, INVITE forwarded, 200, ACK, BYE, back to the
     background); kamailio-proxy: the phones stay registered through the proxy and answer at once
     (Kamailio has no push). Before the calls, --refreshes REGISTER refreshes of those phones
     (their Call-ID, CSeq + 1) at rate R, measured on their own.
Server CPU: utime+stime from /proc of each process tree, over each workload (not wall time).
One JSON file (edge.json) in the work directory, and a table on stdout.

Called by run.sh --edge (which prepares users.csv, the users' store and the binaries)."""

import argparse, json, os, signal, sys, time, types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
import bench  # noqa: E402
from bench import cpu_seconds, log  # noqa: E402
from pbx_kamailio import KamailioPbx  # noqa: E402

UPSTREAM_CALL_ID = "@edge.sipwake"  # the Call-ID suffix of sipwake's upstream REGISTERs


class SipwakeEdge(bench.Sipwake):
    name = "sipwake-edge"


class KamailioProxy(bench.Kamailio):
    name = "kamailio-proxy"
    cfg_file = "kamailio-proxy.cfg"

    def __init__(self, args, work, pbx):
        super().__init__(args, work)
        self.pbx = pbx

    def substitutions(self):
        return dict(super().substitutions(), PBX_PORT=self.pbx.port)


def edge_toml(args, pbx):
    return ('\n[edge]\nupstream = "%s"\ndomains = ["127.0.0.1"]\nmode = "%s"\n'
            'upstream_rate = 10000\n' % (pbx.uri, args.mode))


def settle(pids, quiet_s=1.0, bound_s=5.0):
    """Waits (bounded) until none of the process trees used CPU for quiet_s."""
    end = time.time() + bound_s
    last = [cpu_seconds(p) for p in pids]
    while time.time() < end:
        time.sleep(quiet_s)
        now = [cpu_seconds(p) for p in pids]
        if now == last:
            return
        last = now


def pbx_registers(pbx, own):
    """REGISTERs the PBX received: in own mode only sipwake's own (its Call-IDs); else all."""
    return sum(1 for r in pbx.received("REGISTER")
               if not own or r["call_id"].endswith(UPSTREAM_CALL_ID))


def start_front(args, kind, d, pbx, fake=None):
    """sipwake-edge or kamailio-proxy in front of `pbx` (started), `d` its work directory."""
    os.makedirs(d, exist_ok=True)
    if kind == "sipwake":
        srv = SipwakeEdge(args, d)
        srv.port = args.sipwake_port  # the port the PBX trusts
        srv.extra_config = edge_toml(args, pbx) + (fake.push_config() if fake else "")
    else:
        srv = KamailioProxy(args, d, pbx)
    srv.start()
    return srv


def new_pbx(args, d):
    """A fresh Kamailio PBX (empty location table) in d/pbx."""
    users = {"u%05d" % i: "pw%05d" % i for i in range(args.users)}
    users["callee"] = "pwcallee"
    ctx = types.SimpleNamespace(work=d, note=lambda text: None)
    # "own": the PBX trusts sipwake's address and port; "relay": it challenges every phone, those
    # behind sipwake included. Calls need credentials at the PBX (407), as in bench.py's calls.
    trusted = ("127.0.0.1", args.sipwake_port) if args.mode == "own" else None
    return KamailioPbx(ctx, users=users, trusted=trusted, auth_calls=True).start()


def measure_register(args, kind, d):
    pbx = new_pbx(args, d)
    srv = None
    try:
        srv = start_front(args, kind, d, pbx)
        pids = [srv.proc.pid, pbx.proc.pid]
        settle(pids)
        s0, p0 = cpu_seconds(srv.proc.pid), cpu_seconds(pbx.proc.pid)
        res = bench.sipp_run(args, srv, "reg_auth.xml", args.rate, args.registers,
                             os.path.join(d, "reg"), args.users_csv)
        # REGISTERs that must reach the PBX: own mode, sipwake's own one per device (after its
        # 200 to the phone); relay mode and the Kamailio proxy, both of the phone's (the PBX
        # challenges the first, checks the second). Waits (bounded) for the PBX's log to show them.
        own = kind == "sipwake" and args.mode == "own"
        expected = res["ok"] * (1 if own else 2)
        end = time.time() + 30
        while pbx_registers(pbx, own) < expected and time.time() < end:
            time.sleep(0.5)  # polling the PBX's log, bounded
        res["pbx_registers"] = pbx_registers(pbx, own)
        res["pbx_registers_expected"] = expected
        settle(pids)
        res["server_cpu_s"] = cpu_seconds(srv.proc.pid) - s0
        res["pbx_cpu_s"] = cpu_seconds(pbx.proc.pid) - p0
        ok = max(res["ok"], 1)
        res["server_ms_per_op"] = 1000.0 * res["server_cpu_s"] / ok
        res["pbx_ms_per_op"] = 1000.0 * res["pbx_cpu_s"] / ok
        log("  %s REGISTER %d @%d/s: ok=%d failed=%d server %.3f ms/op, PBX %.3f ms/op, "
            "%d REGISTERs at the PBX (%d expected)%s"
            % (kind, args.registers, args.rate, res["ok"], res["failed"],
               res["server_ms_per_op"], res["pbx_ms_per_op"], res["pbx_registers"], expected,
               "" if res["pbx_registers"] == expected else " MISMATCH"))
        return res
    finally:
        if srv:
            srv.stop()
        pbx.stop()


def measure_calls(args, kind, d):
    pbx = new_pbx(args, d)
    srv = fake = None
    try:
        if kind == "sipwake":
            fake = bench.FakePns(args, d)
        srv = start_front(args, kind, d, pbx, fake)
        cmd = [sys.executable, os.path.join(HERE, "wakefarm.py"),
               "--server", "127.0.0.1:%d" % srv.port, "--caller-server", "127.0.0.1:%d" % pbx.port,
               "--devices", str(min(args.call_devices, args.users)),
               "--runs", "%gx%g" % (args.call_rate, args.calls / args.call_rate),
               "--server-pid", str(srv.proc.pid), "--pbx-pid", str(pbx.proc.pid),
               "--refreshes", str(args.refreshes), "--refresh-rate", str(args.rate)]
        cmd += (["--control", fake.control, "--fakepns-pid", str(fake.proc.pid)] if fake
                else ["--no-push"])
        out_path = os.path.join(d, "wakefarm.jsonl")
        farm = bench.spawn(cmd, out_path, cwd=d)
        runs = bench.wait_farm(farm, 120 + args.calls / args.call_rate, out_path)
        refresh = next((r["refresh"] for r in runs if "refresh" in r), None)
        runs = [r for r in runs if "rate" in r]
        if not runs:
            raise SystemExit("wakefarm produced no run (see %s)" % out_path)
        res = runs[0]
        if refresh:
            ok = max(refresh["ok"], 1)
            refresh["server_ms_per_op"] = 1000.0 * refresh["server_cpu_s"] / ok
            refresh["pbx_ms_per_op"] = 1000.0 * refresh["pbx_cpu_s"] / ok
            res["refresh"] = refresh
            log("  %s REGISTER refreshes %d @%d/s: ok=%d failed=%d server %.3f ms/op, "
                "PBX %.3f ms/op" % (kind, refresh["offered"], args.rate, refresh["ok"],
                                    refresh["failed"], refresh["server_ms_per_op"],
                                    refresh["pbx_ms_per_op"]))
        ok = max(res["ok"], 1)
        res["server_ms_per_op"] = 1000.0 * res["server_cpu_s"] / ok
        res["pbx_ms_per_op"] = 1000.0 * res["pbx_cpu_s"] / ok
        log("  %s calls %d @%g/s: ok=%d failed=%d server %.3f ms/call, PBX %.3f ms/call"
            % (kind, res["offered"], args.call_rate, res["ok"], res["failed"],
               res["server_ms_per_op"], res["pbx_ms_per_op"]))
        return res
    finally:
        if srv:
            srv.stop()
        if fake:
            bench.stop(fake.proc)
        pbx.stop()


def table(result):
    rows = []
    for key, label in (("register", "REGISTER (401 + auth'd REGISTER + 200)"),
                       ("refresh", "REGISTER refresh (same Call-ID, CSeq + 1)"),
                       ("calls", "call from the PBX (sipwake: woken; Kamailio: proxied)")):
        a, b = (result[k].get("calls", {}).get("refresh") if key == "refresh"
                else result[k].get(key) for k in ("sipwake", "kamailio"))
        if not a and not b:
            continue
        f = lambda r, k: "%.3f" % r[k] if r else "-"
        ratio = ("%.2f" % (a["server_ms_per_op"] / b["server_ms_per_op"])
                 if a and b and b["server_ms_per_op"] else "-")
        rows.append("| %s | %s | %s | %s | %s | %s | %s / %s |" % (
            label, f(a, "server_ms_per_op"), f(b, "server_ms_per_op"), ratio,
            f(a, "pbx_ms_per_op"), f(b, "pbx_ms_per_op"),
            "%d/%d" % (a["ok"], a.get("count", a.get("offered", 0))) if a else "-",
            "%d/%d" % (b["ok"], b.get("count", b.get("offered", 0))) if b else "-"))
    head = ("| server CPU ms per operation | sipwake-edge (%s) | Kamailio proxy | ratio | "
            "PBX behind sipwake | PBX behind Kamailio | ok (sipwake / Kamailio) |\n"
            "|---|---:|---:|---:|---:|---:|---:|" % result["mode"])
    return head + "\n" + "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sipwake", required=True)
    ap.add_argument("--sipwake-users", required=True, help="store holding the users")
    ap.add_argument("--fakepns", help="sipwake-fakepns binary (none: no call workload)")
    ap.add_argument("--kamailio", default="/usr/sbin/kamailio")
    ap.add_argument("--sipp", default="/usr/bin/sipp")
    ap.add_argument("--users-csv", required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--mode", default="own", choices=["own", "relay"], help="[edge] mode")
    ap.add_argument("--registers", type=int, default=2000, help="REGISTERs (distinct users)")
    ap.add_argument("--rate", type=int, default=200, help="REGISTERs per second")
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--call-rate", type=float, default=5.0, help="calls per second")
    ap.add_argument("--call-devices", type=int, default=100)
    ap.add_argument("--refreshes", type=int, default=2000,
                    help="REGISTER refreshes of the call devices at --rate, before the calls")
    ap.add_argument("--fronts", default="sipwake,kamailio")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    args = ap.parse_args()
    if args.registers > args.users:
        ap.error("--registers %d > --users %d (each REGISTER is a new user)"
                 % (args.registers, args.users))
    args.sipwake_port = bench.free_port()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    result = {"mode": args.mode, "registers": args.registers, "rate": args.rate,
              "calls": args.calls, "call_rate": args.call_rate, "cores": args.cores,
              "sipwake": {}, "kamailio": {}}
    try:
        for kind in args.fronts.split(","):
            d = os.path.join(args.work, kind)
            log("%s in front of a Kamailio PBX" % kind)
            result[kind]["register"] = measure_register(args, kind, os.path.join(d, "register"))
            if args.fakepns and args.calls:
                result[kind]["calls"] = measure_calls(args, kind, os.path.join(d, "calls"))
    finally:
        bench.cleanup()
        with open(os.path.join(args.work, "edge.json"), "w") as f:
            json.dump(result, f, indent=1)
    text = table(result)
    print(text)
    with open(os.path.join(args.work, "edge.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
