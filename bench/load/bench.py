#!/usr/bin/env python3
"""Drives sipwake and Kamailio with the same sipp load and records one JSON file per repetition.

Called by run.sh (which installs the tools, builds sipwake and provisions users); report.py turns
the JSON files into the table. Everything runs on 127.0.0.1, every process has a time bound, and
every process started here is killed on exit."""

import argparse, glob, hashlib, json, os, shutil, signal, socket, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
SCEN = os.path.join(HERE, "scenarios")
HZ = os.sysconf("SC_CLK_TCK")
CHILDREN = []  # every Popen started here


def log(msg):
    print("[bench] " + msg, flush=True)


def free_port():
    """A UDP port free on 127.0.0.1 (and never 5060)."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in (5060, 5061):
            return port


def spawn(cmd, out, cwd=None):
    f = open(out, "wb")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         cwd=cwd, start_new_session=True)
    CHILDREN.append(p)
    return p


def stop(p, timeout=10):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def cleanup(*_):
    for p in CHILDREN:
        try:
            stop(p, 5)
        except Exception:
            pass


# ---------------------------------------------------------------- /proc figures

def tree(pid):
    """pid and all its descendants (Kamailio's children are separate processes)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    """utime + stime of the process tree (all threads of each process)."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / HZ


def pss_kb(pid):
    """Proportional set size of the tree: shared memory counted once overall."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def wait_sip(port, timeout=20.0):
    """Until the server answers anything to an OPTIONS."""
    msg = ("OPTIONS sip:127.0.0.1:%d SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:probe@probe.invalid>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
           "Call-ID: %s@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    lport = s.getsockname()[1]
    end = time.time() + timeout
    n = 0
    try:
        while time.time() < end:
            n += 1
            s.sendto((msg % (port, lport, n, n)).encode(), ("127.0.0.1", port))
            try:
                s.recvfrom(65535)
                return True
            except socket.timeout:
                pass
    finally:
        s.close()
    return False


# ---------------------------------------------------------------- servers

class Server:
    name = ""

    def __init__(self, args, work):
        self.args, self.work = args, work
        self.port = free_port()
        self.proc = None

    def wait_up(self):
        if not wait_sip(self.port):
            raise SystemExit("%s did not answer on udp:127.0.0.1:%d (log: %s)"
                             % (self.name, self.port, self.log))
        time.sleep(1.0)  # let start-up work (user load, forks) finish before measuring

    def stop(self):
        if self.proc:
            stop(self.proc)
            self.proc = None


class Sipwake(Server):
    name = "sipwake"
    extra_config = ""  # appended to sipwake.toml (the wake workload's [push] section)

    def start(self):
        store = os.path.join(self.work, "sipwake.db")
        for ext in ("", "-wal", "-shm"):
            if os.path.exists(store + ext):
                os.remove(store + ext)
        shutil.copy(self.args.sipwake_users, store)
        cfg = os.path.join(self.work, "sipwake.toml")
        with open(cfg, "w") as f:
            f.write('[server]\nworkers = %d\nlog_level = "warn"\ndomains = ["127.0.0.1"]\n\n'
                    '[[listen]]\ntransport = "udp"\naddress = "127.0.0.1"\nport = %d\n\n'
                    '[store]\npath = "%s"\n\n'
                    '[auth]\nalgorithms = ["MD5"]\nmax_failures = 0\n%s'
                    % (self.args.cores, self.port, store, self.extra_config))
        self.log = os.path.join(self.work, "sipwake.log")
        self.proc = spawn([self.args.sipwake, "--config", cfg], self.log, cwd=self.work)
        self.wait_up()


class Kamailio(Server):
    name = "kamailio"
    cfg_file = "kamailio.cfg"  # in bench/load; @NAME@ placeholders replaced by substitutions()

    def substitutions(self):
        return {"PORT": self.port, "CHILDREN": self.args.cores, "USERS": self.args.users}

    def start(self):
        with open(os.path.join(HERE, self.cfg_file)) as f:
            text = f.read()
        for key, value in self.substitutions().items():
            text = text.replace("@%s@" % key, str(value))
        cfg = os.path.join(self.work, "kamailio.cfg")
        with open(cfg, "w") as f:
            f.write(text)
        self.log = os.path.join(self.work, "kamailio.log")
        self.proc = spawn([self.args.kamailio, "-f", cfg, "-DD", "-E", "-m", "256", "-M", "16",
                           "-w", self.work, "-P", os.path.join(self.work, "kamailio.pid")],
                          self.log, cwd=self.work)
        self.wait_up()


# ---------------------------------------------------------------- sipp runs

def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def sipp_run(args, server, scenario, rate, count, run_dir, inf, extra=(), lport=None):
    """One bounded sipp client run; returns counts, elapsed time and response times (ms)."""
    os.makedirs(run_dir, exist_ok=True)
    bound = int(count / rate) + 20
    cmd = [args.sipp, "127.0.0.1:%d" % server.port, "-sf", os.path.join(SCEN, scenario),
           "-inf", inf, "-i", "127.0.0.1", "-p", str(lport or free_port()), "-r", str(rate),
           "-m", str(count), "-l", str(max(1000, rate * 10)), "-nostdin",
           "-timeout", "%ds" % bound, "-recv_timeout", "5000", "-max_recv_loops", "10000",
           "-trace_stat", "-stf", os.path.join(run_dir, "stat.csv"), "-fd", "1",
           "-trace_rtt", "-rtt_freq", "100", "-trace_err"] + (["-trace_msg"] if os.environ.get("BENCH_TRACE_MSG") else []) + [ "-error_file",
           os.path.join(run_dir, "errors.log")] + list(extra)
    t0 = time.time()
    cpu0 = cpu_seconds(server.proc.pid)
    p = spawn(cmd, os.path.join(run_dir, "sipp.out"), cwd=run_dir)
    try:
        p.wait(bound + 10)
    except subprocess.TimeoutExpired:
        stop(p)
    cpu1 = cpu_seconds(server.proc.pid)
    wall = time.time() - t0
    res = {"rate": rate, "count": count, "ok": 0, "failed": 0, "created": 0,
           "elapsed_s": wall, "server_cpu_s": cpu1 - cpu0, "sipp_exit": p.returncode}
    rows = []
    try:
        with open(os.path.join(run_dir, "stat.csv")) as f:
            lines = [l.rstrip("\n").split(";") for l in f if l.strip()]
        head, last = lines[0], lines[-1]
        col = {h: i for i, h in enumerate(head)}
        res["ok"] = int(last[col["SuccessfulCall(C)"]])
        res["failed"] = int(last[col["FailedCall(C)"]])
        res["created"] = int(last[col["TotalCallCreated"]])
        et = last[col["ElapsedTime(C)"]]  # HH:MM:SS:mmm... or similar
        parts = et.split(":")
        if len(parts) >= 3:
            secs = int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
            if len(parts) >= 4:
                secs += float(parts[3]) / 1e6 if len(parts[3]) > 3 else float(parts[3]) / 1e3
            res["elapsed_s"] = secs
    except (OSError, IndexError, KeyError, ValueError) as e:
        res["stat_error"] = str(e)
    for path in glob.glob(os.path.join(run_dir, "*_rtt.csv")):
        with open(path) as f:
            for line in f:
                parts = line.strip().split(";")
                if len(parts) >= 2:
                    try:
                        rows.append(float(parts[1]))
                    except ValueError:
                        pass
    res["rtd_samples"] = len(rows)
    res["p50_ms"] = percentile(rows, 0.50)
    res["p99_ms"] = percentile(rows, 0.99)
    done = res["ok"] + res["failed"]
    res["fail_ratio"] = (res["failed"] / done) if done else 1.0
    res["cpu_s_per_1000"] = (1000.0 * res["server_cpu_s"] / res["ok"]) if res["ok"] else None
    res["achieved_rate"] = res["ok"] / res["elapsed_s"] if res["elapsed_s"] else 0
    return res


def sustained(res, duration):
    """< 1% failures, everything offered was completed, and sipp kept the pace (elapsed within
    10% + 2 s of the nominal duration)."""
    return (res["fail_ratio"] < 0.01 and res["ok"] >= 0.99 * res["count"]
            and res["elapsed_s"] <= duration * 1.1 + 2)


def step_up(args, server, scenario, inf, run_root, extra=(), lport=None):
    best, steps = 0, []
    for rate in args.steps:
        count = rate * args.step_duration
        r = sipp_run(args, server, scenario, rate, count,
                     os.path.join(run_root, "step-%d" % rate), inf, extra, lport)
        ok = sustained(r, args.step_duration)
        steps.append({"rate": rate, "ok": r["ok"], "failed": r["failed"],
                      "elapsed_s": round(r["elapsed_s"], 2), "sustained": ok})
        log("  %s %s @%d/s: ok=%d failed=%d elapsed=%.1fs -> %s"
            % (server.name, scenario, rate, r["ok"], r["failed"], r["elapsed_s"],
               "sustained" if ok else "NOT sustained"))
        if not ok:
            break
        best = rate
        time.sleep(1)
    return best, steps


def measure(args, server, rep_dir):
    out = {}
    server.start()
    try:
        d = os.path.join(rep_dir, server.name)
        # 1. REGISTER: 10k distinct users at the fixed rate (first registration of each), which
        #    also gives the memory per 10k bindings.
        time.sleep(0.5)
        pss0 = pss_kb(server.proc.pid)
        n = args.users
        reg = sipp_run(args, server, "reg_auth.xml", args.rate, n, os.path.join(d, "reg-fixed"),
                       args.users_csv, lport=args.reg_port)
        time.sleep(1.0)
        pss1 = pss_kb(server.proc.pid)
        reg["pss_before_kb"], reg["pss_after_kb"] = pss0, pss1
        out["reg_fixed"] = reg
        out["rss_per_10k_kb"] = (pss1 - pss0) * 10000.0 / max(reg["ok"], 1)
        log("  %s REGISTER %d @%d/s: ok=%d failed=%d cpu=%.2fs p50=%s p99=%s PSS +%d kB"
            % (server.name, n, args.rate, reg["ok"], reg["failed"], reg["server_cpu_s"],
               reg["p50_ms"], reg["p99_ms"], pss1 - pss0))

        # 2. Calls: callee registered from the UAS port, then a UAS sipp answers every call.
        uas_port = free_port()
        cal = sipp_run(args, server, "reg_auth.xml", 1, 1, os.path.join(d, "callee-reg"),
                       args.callee_csv, lport=uas_port)
        if cal["ok"] != 1:
            raise SystemExit("%s: callee registration failed (see %s)" % (server.name, d))
        total = args.duration + len(args.steps) * (args.step_duration + 25) + 60
        os.makedirs(os.path.join(d, "uas"), exist_ok=True)
        uas = spawn([args.sipp, "-sf", os.path.join(SCEN, "uas_answer.xml"), "-i", "127.0.0.1",
                     "-p", str(uas_port), "-nostdin", "-timeout", "%ds" % total,
                     "-max_recv_loops", "10000"],
                    os.path.join(d, "uas", "sipp.out"), cwd=os.path.join(d, "uas"))
        time.sleep(0.5)
        call_extra = ["-s", "callee", "-auth_uri", "callee@127.0.0.1"]
        try:
            call = sipp_run(args, server, "uac_call.xml", args.rate, args.rate * args.duration,
                            os.path.join(d, "call-fixed"), args.users_csv, call_extra)
            out["call_fixed"] = call
            log("  %s calls %d @%d/s: ok=%d failed=%d cpu=%.2fs p50=%s p99=%s"
                % (server.name, call["count"], args.rate, call["ok"], call["failed"],
                   call["server_cpu_s"], call["p50_ms"], call["p99_ms"]))
            # 3. Max sustained rates (REGISTER refreshes of the same 10k users, then calls).
            out["reg_max"], out["reg_steps"] = step_up(args, server, "reg_auth.xml",
                                                       args.users_csv, os.path.join(d, "reg-max"),
                                                       lport=args.reg_port)
            out["call_max"], out["call_steps"] = step_up(args, server, "uac_call.xml",
                                                         args.users_csv,
                                                         os.path.join(d, "call-max"), call_extra)
            # 4. Latency at 80% of the server's own max rate (issue 5: p99 < 2 ms there).
            for key, scen, best, extra, lport in (
                    ("reg_80", "reg_auth.xml", out["reg_max"], (), args.reg_port),
                    ("call_80", "uac_call.xml", out["call_max"], call_extra, None)):
                if not best:
                    continue
                rate80 = max(1, int(best * 0.8))
                r = sipp_run(args, server, scen, rate80, rate80 * args.step_duration,
                             os.path.join(d, key), args.users_csv, extra, lport)
                out[key] = r
                log("  %s %s @%d/s (80%% of max): ok=%d failed=%d p50=%s p99=%s ms"
                    % (server.name, scen, rate80, r["ok"], r["failed"], r["p50_ms"], r["p99_ms"]))
        finally:
            stop(uas)
    finally:
        server.stop()
    return out


# ---------------------------------------------------------------- wake path (sipwake only)

BUNDLE, TEAM, KEY_ID = "com.example.phone", "TEAM123456", "ABCDE12345"


def apns_key(work):
    """WORK/apns.p8, a P-256 APNs token-auth key (and its .pub), made with openssl once."""
    key = os.path.join(work, "apns.p8")
    if not os.path.exists(key):
        for cmd in (["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                     "ec_paramgen_curve:P-256", "-out", key],
                    ["openssl", "pkey", "-in", key, "-pubout", "-out", key + ".pub"]):
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
    return key


def apns_push_config(key, port, ca="", head=""):
    """sipwake's [push] section with one APNs app (BUNDLE, TEAM, KEY_ID) at 127.0.0.1:PORT."""
    return ('\n[push]\n' + head +
            '\n[[push.app]]\nprovider = "apns"\nid = "%s"\n'
            'team_id = "%s"\nkey_id = "%s"\nkey_file = "%s"\n'
            'endpoint = "https://127.0.0.1:%d"\n' % (BUNDLE, TEAM, KEY_ID, key, port) +
            ('ca_file = "%s"\n' % ca if ca else ""))


class FakePns:
    """sipwake-fakepns on free loopback ports, with a self-signed cert and one APNs key; extra:
    more options (the fleet's --delay-ms and --lose-share)."""

    def __init__(self, args, work, extra=()):
        self.work = work
        self.key = key = apns_key(work)
        self.log = os.path.join(work, "fakepns.log")
        self.proc = subprocess.Popen(
            [args.fakepns, "--listen", "127.0.0.1:0", "--make-cert", os.path.join(work, "cert"),
             "--apns-key", "%s:%s:%s" % (KEY_ID, TEAM, key + ".pub"), "--apns-topic", BUNDLE,
             "--control", "127.0.0.1:0"] + list(extra),
            stdout=subprocess.PIPE, stderr=open(self.log, "wb"), stdin=subprocess.DEVNULL,
            start_new_session=True, text=True)
        CHILDREN.append(self.proc)
        self.port = self.control = self.ca = None
        end = time.time() + 20
        while time.time() < end:
            line = self.proc.stdout.readline()
            if not line:
                break
            word, _, rest = line.strip().partition(" ")
            if word == "ca":
                self.ca = rest
            elif word == "listening":
                self.port = int(rest.rsplit(":", 1)[1])
            elif word == "control":
                self.control = rest
            elif word == "ready":
                return
        stop(self.proc)
        raise SystemExit("sipwake-fakepns did not start (log: %s)" % self.log)

    def push_config(self, ring_timeout=10, extra=""):
        # One source (the farm) calls each device several times a minute: far beyond the push
        # flood limits (docs/security.md "Push flood"), which are lifted here.
        limits = ("device_pushes_per_minute = 100000\ndevice_push_burst = 100000\n"
                  "aor_pushes_per_minute = 100000\naor_push_burst = 100000\n"
                  "max_parked_per_source = 10000000\nmax_parked_per_aor = 100000\n")
        return apns_push_config(self.key, self.port, self.ca,
                                'ring_timeout = %d\n' % ring_timeout + limits + extra)


def wait_farm(farm, bound, out_path):
    """Waits (at most bound s) for a wakefarm.py process; returns its JSON lines."""
    try:
        farm.wait(bound)
    except subprocess.TimeoutExpired:
        stop(farm)
    lines = []
    with open(out_path) as f:
        for line in f:
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


def measure_wake(args, rep_dir):
    """The wake path: INVITE -> push -> REGISTER -> INVITE forwarded -> 200 (wakefarm.py), at the
    fixed wake rate, then stepping up; a fresh sipwake with [push] and a fresh fake APNs."""
    d = os.path.join(rep_dir, "sipwake", "wake")
    os.makedirs(d, exist_ok=True)
    fake = FakePns(args, d)
    srv = Sipwake(args, d)
    srv.extra_config = fake.push_config()
    try:
        srv.start()
        runs = ["%dx%d" % (args.wake_rate, args.duration)] + \
               ["%dx%d" % (r, args.step_duration) for r in args.wake_steps]
        bound = 60 + args.duration + len(args.wake_steps) * (args.step_duration + 15)
        out_path = os.path.join(d, "wakefarm.jsonl")
        farm = spawn([sys.executable, os.path.join(HERE, "wakefarm.py"),
                      "--server", "127.0.0.1:%d" % srv.port, "--control", fake.control,
                      "--devices", str(min(args.wake_devices, args.users)),
                      "--runs", ",".join(runs), "--stop-on-fail",
                      "--server-pid", str(srv.proc.pid), "--fakepns-pid", str(fake.proc.pid)],
                     out_path, cwd=d)
        lines = wait_farm(farm, bound, out_path)
        runs_out = [r for r in lines if "rate" in r]
        if not runs_out:
            raise SystemExit("wakefarm produced no run (see %s)" % out_path)
        fixed, steps = runs_out[0], runs_out[1:]
        best = 0
        for r in steps:
            r["sustained"] = sustained({"fail_ratio": r["fail_ratio"], "ok": r["ok"],
                                        "count": r["offered"], "elapsed_s": r["offered_s"]},
                                       args.step_duration)
            log("  sipwake wake @%d/s: ok=%d failed=%d -> %s" % (
                r["rate"], r["ok"], r["failed"],
                "sustained" if r["sustained"] else "NOT sustained"))
            if not r["sustained"]:
                break
            best = r["rate"]
        log("  sipwake wake %d @%d/s: ok=%d failed=%d cpu=%.2fs INVITE->push p50/p99=%s/%s ms "
            "REG200->INVITE p50/p99=%s/%s ms" % (
                fixed["offered"], args.wake_rate, fixed["ok"], fixed["failed"],
                fixed["server_cpu_s"], fixed["invite_to_push"]["p50_ms"],
                fixed["invite_to_push"]["p99_ms"], fixed["reg200_to_invite"]["p50_ms"],
                fixed["reg200_to_invite"]["p99_ms"]))
        return {"wake_fixed": fixed, "wake_steps": steps, "wake_max": best}
    finally:
        srv.stop()
        stop(fake.proc)


def measure_fleet(args):
    """The fleet figure: --fleet-devices sleeping phones, each called once at --fleet-rate,
    through a sipwake-fakepns that delays every delivery (--fleet-delay-ms) and loses a share of
    the accepted pushes (--fleet-lose-share); once without re-push (max_repushes = 0) and once
    with the default re-push settings, each with a fresh sipwake (ring_timeout 30 s, the
    default) and a fresh fake. Writes fleet.json and fleet.md in --work."""
    out = {"devices": args.fleet_devices, "rate": args.fleet_rate,
           "delay_ms": args.fleet_delay_ms, "lose_share": args.fleet_lose_share, "runs": {}}
    duration = args.fleet_devices / args.fleet_rate
    for label, push_extra in (("before", "max_repushes = 0\n"), ("after", "")):
        d = os.path.join(args.work, "fleet-" + label)
        os.makedirs(d, exist_ok=True)
        fake = FakePns(args, d, ["--delay-ms", args.fleet_delay_ms,
                                 "--lose-share", str(args.fleet_lose_share)])
        srv = Sipwake(args, d)
        srv.extra_config = fake.push_config(30, push_extra)
        try:
            srv.start()
            log("fleet %s (%s): %d phones, %g calls/s, delay %s ms, lose %g" % (
                label, push_extra.strip() or "re-push defaults", args.fleet_devices,
                args.fleet_rate, args.fleet_delay_ms, args.fleet_lose_share))
            out_path = os.path.join(d, "wakefarm.jsonl")
            farm = spawn([sys.executable, os.path.join(HERE, "wakefarm.py"),
                          "--server", "127.0.0.1:%d" % srv.port, "--control", fake.control,
                          "--devices", str(args.fleet_devices),
                          "--runs", "%gx%g" % (args.fleet_rate, duration),
                          "--call-timeout", "40", "--server-pid", str(srv.proc.pid),
                          "--fakepns-pid", str(fake.proc.pid)], out_path, cwd=d)
            lines = wait_farm(farm, duration + 180, out_path)
            run = next((r for r in lines if "rate" in r), None)
            if run is None:
                raise SystemExit("wakefarm produced no run (see %s)" % out_path)
            stats = next((r for r in lines if "fakepns_stats" in r), {})
            run["fakepns_stats"] = stats.get("fakepns_stats")
            run["push_events"] = stats.get("push_events")
            out["runs"][label] = run
            f = run["fleet"]
            log("  %s: connected %d/%d (%.2f%%), woken by re-push %d, sipwake share p50/p99 "
                "%.1f/%.1f ms (processing %.1f/%.1f ms)" % (
                    label, run["ok"], run["offered"], 100.0 * (f["connected_share"] or 0),
                    f["woken_by_repush"], f["sipwake_share"]["p50_ms"] or -1,
                    f["sipwake_share"]["p99_ms"] or -1, f["sipwake_processing"]["p50_ms"] or -1,
                    f["sipwake_processing"]["p99_ms"] or -1))
        finally:
            srv.stop()
            stop(fake.proc)
        time.sleep(2)
    with open(os.path.join(args.work, "fleet.json"), "w") as f:
        json.dump(out, f, indent=1)
    table = fleet_table(out)
    with open(os.path.join(args.work, "fleet.md"), "w") as f:
        f.write(table)
    print(table, end="")


def fleet_table(out):
    def d(dist):
        if not dist or dist["p50_ms"] is None:
            return "–"
        return "%.1f / %.1f (n=%d)" % (dist["p50_ms"], dist["p99_ms"], dist["n"])
    labels = [k for k in ("before", "after") if k in out["runs"]]
    head = {"before": "before (max_repushes = 0)", "after": "after (re-push defaults)"}
    rows = [
        ("calls connected", lambda r: "%d / %d = %.2f%%" % (
            r["ok"], r["offered"], 100.0 * (r["fleet"]["connected_share"] or 0))),
        ("pushes lost by the fake", lambda r: str(r["fleet"]["pushes_lost"])),
        ("push events at the farm (delivered/lost, payload event)", lambda r: ", ".join(
            "%s %d" % kv for kv in sorted((r.get("push_events") or {}).items()))),
        ("calls woken by a re-push", lambda r: str(r["fleet"]["woken_by_repush"])),
        ("failed: every push lost / after the wake / never pushed", lambda r: "%d / %d / %d" % (
            r["fleet"]["failed_all_pushes_lost"], r["fleet"]["failed_after_wake"],
            r["fleet"]["failed_never_pushed"])),
        ("time to ring (INVITE -> forwarded INVITE), p50 / p99 ms", lambda r: d(r["fleet"]["ring"])),
        ("push delay (at the fake -> phone REGISTERs), p50 / p99 ms",
         lambda r: d(r["fleet"]["push_delay"])),
        ("**sipwake's share** (ring - push delay), p50 / p99 ms",
         lambda r: d(r["fleet"]["sipwake_share"])),
        ("... calls woken by the first push", lambda r: d(r["fleet"]["sipwake_share_first_push"])),
        ("... calls woken by a re-push", lambda r: d(r["fleet"]["sipwake_share_repushed"])),
        ("sipwake's processing (share - re-push wait), p50 / p99 ms",
         lambda r: d(r["fleet"]["sipwake_processing"])),
        ("sipwake CPU s / fake CPU s / farm CPU s", lambda r: "%.2f / %.2f / %.2f" % (
            r["server_cpu_s"], r["fakepns_cpu_s"], r["farm_cpu_s"])),
    ]
    lines = ["| %d phones, %g calls/s, delay %s ms, %g%% lost | %s |" % (
        out["devices"], out["rate"], out["delay_ms"], 100.0 * out["lose_share"],
        " | ".join(head[k] for k in labels)), "|---|" + "---|" * len(labels)]
    for name, fn in rows:
        lines.append("| %s | %s |" % (name, " | ".join(fn(out["runs"][k]) for k in labels)))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sipwake", required=True)
    ap.add_argument("--sipwake-users", required=True, help="store holding the 10k users")
    ap.add_argument("--kamailio", default="/usr/sbin/kamailio")
    ap.add_argument("--sipp", default="/usr/bin/sipp")
    ap.add_argument("--users-csv", required=True)
    ap.add_argument("--callee-csv", required=True)
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--work", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rate", type=int, default=500, help="fixed offered load (ops/s)")
    ap.add_argument("--duration", type=int, default=20, help="fixed-load call run (s)")
    ap.add_argument("--step-duration", type=int, default=10)
    ap.add_argument("--steps", default="500,1000,2000,4000,8000")
    ap.add_argument("--servers", default="sipwake,kamailio")
    ap.add_argument("--fakepns", help="sipwake-fakepns binary (wake workload; none: skipped)")
    ap.add_argument("--wake-rate", type=int, default=100, help="fixed wake load (calls/s)")
    ap.add_argument("--wake-steps", default="100,200,400")
    ap.add_argument("--wake-devices", type=int, default=1000)
    ap.add_argument("--only-wake", action="store_true", help="skip the sipp workloads")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--fleet", action="store_true",
                    help="only the fleet figure (lost and late pushes, before/after re-push)")
    ap.add_argument("--fleet-devices", type=int, default=1000)
    ap.add_argument("--fleet-rate", type=float, default=20.0, help="calls/s, each phone once")
    ap.add_argument("--fleet-delay-ms", default="200-3000", help="the fake's --delay-ms")
    ap.add_argument("--fleet-lose-share", type=float, default=0.02,
                    help="the fake's --lose-share")
    args = ap.parse_args()
    args.steps = [int(x) for x in args.steps.split(",")]
    args.wake_steps = [int(x) for x in args.wake_steps.split(",") if x]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if args.fleet:
        if not args.fakepns or args.fleet_devices > args.users:
            raise SystemExit("--fleet needs --fakepns and --users >= --fleet-devices")
        try:
            measure_fleet(args)
        finally:
            cleanup()
        return
    try:
        for rep in range(1, args.reps + 1):
            rep_dir = os.path.join(args.work, "rep%d" % rep)
            os.makedirs(rep_dir, exist_ok=True)
            result = {"rep": rep, "rate": args.rate, "wake_rate": args.wake_rate,
                      "duration": args.duration,
                      "users": args.users, "cores": args.cores, "servers": {}}
            for name in args.servers.split(","):
                args.reg_port = free_port()
                srv = (Sipwake if name == "sipwake" else Kamailio)(args, rep_dir)
                log("rep %d/%d: %s on udp:127.0.0.1:%d" % (rep, args.reps, name, srv.port))
                result["servers"][name] = {} if args.only_wake else measure(args, srv, rep_dir)
                if name == "sipwake" and args.fakepns:
                    log("rep %d/%d: sipwake wake path" % (rep, args.reps))
                    result["servers"][name].update(measure_wake(args, rep_dir))
            with open(os.path.join(args.work, "rep%d.json" % rep), "w") as f:
                json.dump(result, f, indent=1)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
