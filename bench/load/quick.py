#!/usr/bin/env python3
"""Quick A/B of the fixed-load figures (server CPU per 1000 authenticated REGISTERs and per 1000
calls at one offered rate), one server per invocation, for comparing builds or settings between
full runs. The full comparison (three repetitions, max rates, wake path, memory) is run.sh.

  bench/load/quick.py sipwake build-release/sipwake [--workers 2] [--extra-toml '...']
  bench/load/quick.py kamailio
  bench/load/quick.py sipwake BIN --only reg --perf reg    # perf record around the REGISTERs
  bench/load/quick.py sipwake BIN --only reg --push --registers 10000   # PSS per push binding

The REGISTER line also gives the server's PSS growth over the REGISTER run (smaps_rollup of the
process tree, 1 s after the last 200, minus just before) per binding (distinct users registered).
With --push every Contact carries an RFC 8599 APNs binding and a +sip.instance
(scenarios/reg_auth_push.xml) and sipwake gets a [push] section with one APNs app (no push is
sent: the run has no INVITEs).

Needs the work directory run.sh prepared (users.csv, callee.csv, users-N.db): run run.sh once
(--quick will do). Interleave the servers and repeat: the machine's noise is ±20% per run.
"""
import argparse
import hashlib
import os
import signal
import subprocess
import sys
import time
import types
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("server", choices=["sipwake", "kamailio"])
    ap.add_argument("binary", nargs="?", default="", help="sipwake binary")
    ap.add_argument("--work", default=os.environ.get("BENCH_WORK", "/tmp/sipwake-bench"))
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--registers", type=int, default=10000, help="REGISTER pairs (distinct users)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of calls")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--extra-toml", default="", help="appended to sipwake.toml")
    ap.add_argument("--only", choices=["reg", "call"], help="run one workload")
    ap.add_argument("--perf", choices=["reg", "call"],
                    help="perf record -e cpu-clock -g on the server during that workload")
    ap.add_argument("--push", action="store_true",
                    help="REGISTERs with APNs push params and +sip.instance (reg_auth_push.xml)")
    ap.add_argument("--name", default="")
    a = ap.parse_args()
    if a.server == "sipwake" and not a.binary:
        ap.error("sipwake needs its binary")
    a.binary = os.path.abspath(a.binary) if a.binary else ""
    users_db = os.path.join(a.work, "users-%d.db" % a.users)
    for need in ("users.csv", "callee.csv"):
        if not os.path.exists(os.path.join(a.work, need)):
            sys.exit("quick.py: %s missing: run bench/load/run.sh --quick once" % need)
    if a.server == "sipwake" and not os.path.exists(users_db):
        sys.exit("quick.py: %s missing: run bench/load/run.sh --quick --users %d once"
                 % (users_db, a.users))
    args = types.SimpleNamespace(
        sipwake=a.binary, sipwake_users=users_db, kamailio="/usr/sbin/kamailio", sipp="/usr/bin/sipp",
        users_csv=os.path.join(a.work, "users.csv"), callee_csv=os.path.join(a.work, "callee.csv"),
        users=a.users, cores=a.workers, rate=a.rate, duration=a.duration, steps=[], step_duration=1)
    name = a.name or "%s-%d" % (a.server, os.getpid())
    work = os.path.join(a.work, "quick", name)
    os.makedirs(work, exist_ok=True)
    args.reg_port = bench.free_port()
    if a.server == "kamailio":
        srv = bench.Kamailio(args, work)
    else:
        bench.Sipwake.extra_config = a.extra_toml
        if a.push:
            bench.Sipwake.extra_config += bench.apns_push_config(bench.apns_key(a.work), 9)
        srv = bench.Sipwake(args, work)

    def perf_start(what):
        if a.perf != what:
            return None
        p = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o",
                              os.path.join(work, "perf-%s.data" % what), "-p", str(srv.proc.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return p

    def perf_stop(p):
        if p:
            p.send_signal(signal.SIGINT)
            p.wait()

    reg_scenario, reg_csv = "reg_auth.xml", args.users_csv
    if a.push:
        # users.csv with two more fields per user: the device token and the instance UUID.
        reg_scenario, reg_csv = "reg_auth_push.xml", os.path.join(work, "users-push.csv")
        with open(args.users_csv) as src, open(reg_csv, "w") as dst:
            dst.write(src.readline())
            for i, row in enumerate(src):
                token = hashlib.sha256(("quick-%d" % i).encode()).hexdigest()
                dst.write("%s;%s;%s\n" % (row.rstrip("\n"), token, uuid.UUID(token[:32])))

    line = [name]
    srv.start()
    try:
        time.sleep(0.5)
        if a.only in (None, "reg"):
            p = perf_start("reg")
            pss0 = bench.pss_kb(srv.proc.pid)
            reg = bench.sipp_run(args, srv, reg_scenario, a.rate, a.registers,
                                 os.path.join(work, "reg"), reg_csv, lport=args.reg_port)
            perf_stop(p)
            time.sleep(1.0)
            pss1 = bench.pss_kb(srv.proc.pid)
            bindings = max(min(reg["ok"], a.users), 1)
            line.append("REGISTER cpu_s/1000=%.3f ok=%d failed=%d p99_ms=%s PSS +%d kB "
                        "(%.0f B/binding)"
                        % (reg["cpu_s_per_1000"] or -1, reg["ok"], reg["failed"], reg["p99_ms"],
                           pss1 - pss0, (pss1 - pss0) * 1024.0 / bindings))
        if a.only in (None, "call"):
            uas_port = bench.free_port()
            cal = bench.sipp_run(args, srv, "reg_auth.xml", 1, 1, os.path.join(work, "callee"),
                                 args.callee_csv, lport=uas_port)
            if cal["ok"] != 1:
                sys.exit("quick.py: callee registration failed (see %s)" % work)
            os.makedirs(os.path.join(work, "uas"), exist_ok=True)
            uas = bench.spawn([args.sipp, "-sf", os.path.join(bench.SCEN, "uas_answer.xml"), "-i",
                               "127.0.0.1", "-p", str(uas_port), "-nostdin", "-timeout",
                               "%ds" % (a.duration + 60), "-max_recv_loops", "10000"],
                              os.path.join(work, "uas", "sipp.out"), cwd=os.path.join(work, "uas"))
            try:
                time.sleep(0.5)
                p = perf_start("call")
                call = bench.sipp_run(args, srv, "uac_call.xml", a.rate, a.rate * a.duration,
                                      os.path.join(work, "call"), args.users_csv,
                                      ["-s", "callee", "-auth_uri", "callee@127.0.0.1"])
                perf_stop(p)
            finally:
                bench.stop(uas)
            line.append("calls cpu_s/1000=%.3f ok=%d failed=%d p99_ms=%s"
                        % (call["cpu_s_per_1000"] or -1, call["ok"], call["failed"],
                           call["p99_ms"]))
    finally:
        srv.stop()
        bench.cleanup()
    print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main()
