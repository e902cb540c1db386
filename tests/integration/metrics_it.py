#!/usr/bin/env python3
"""The admin listener ([admin] listen): GET /metrics in the Prometheus text format, moved by a
REGISTER; 404 / 405 / 400 for anything else, the server unharmed; a non-loopback address refused
at start-up with the key and line; every metric family of docs/operations.md's table present and
moved by a scenario (registrations, a woken call through sipwake-fakepns, a failed push), and no
family that the table does not list. Reuses the harnesses of sipwake_it.py and wake_it.py.

    metrics_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --work-dir /tmp/it metrics_documented

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import re
import socket
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
import phone_it as ph  # noqa: E402
import wake_it as wk  # noqa: E402
from sipwake_it import check  # noqa: E402

PASSWORD = "metrics-secret"
# One sample line: name, optional {labels}, value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9]+(?:\.[0-9]+)?)$')
OPERATIONS_MD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                             "operations.md")
# A row of the metrics table: | `family` | type | labels | moves | meaning |
TABLE_ROW = re.compile(r"^\| `(sipwake_[a-z0-9_]+)` \| (counter|gauge|histogram) \| ([^|]*) \| "
                       r"([^|]*) \| ([^|]*) \|$")


def admin_config(ctx, port):
    path = os.path.join(ctx.work, "metrics.toml")
    with open(path, "w") as f:
        f.write("[server]\nworkers = 2\n\n[admin]\nlisten = \"127.0.0.1:%d\"\n" % port)
    return path


def start_with_admin(ctx):
    it.add_user(ctx, "alice@127.0.0.1", PASSWORD)
    admin = it.free_port()
    server, ports = it.start_server(ctx, ["--config", admin_config(ctx, admin)])
    return server, ports, admin


def get(url, method="GET"):
    """(status, content type, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=it.IO_TIMEOUT) as r:
            return r.status, r.headers.get("content-type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read().decode()


def scrape_typed(admin):
    """({sample (name + labels): value}, {family: type}) of GET /metrics, checking the text
    format on the way."""
    status, ctype, body = get("http://127.0.0.1:%d/metrics" % admin)
    check(status == 200, "GET /metrics: %d %s" % (status, body[:500]))
    check(ctype.startswith("text/plain; version=0.0.4"), "content type %r" % ctype)
    samples, typed = {}, {}
    for line in body.splitlines():
        m = re.match(r"^# TYPE (\S+) (counter|gauge|histogram)$", line)
        if m:
            typed[m.group(1)] = m.group(2)
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.match(line)
        check(m is not None, "not a sample line: %r" % line)
        family = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        family = family if typed.get(family) == "histogram" else m.group(1)
        check(family in typed, "%s has no # TYPE before it" % m.group(1))
        check(m.group(1).startswith("sipwake_"), "no sipwake_ prefix: %r" % line)
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples, typed


def scrape(admin):
    """{sample (name + labels): value} of GET /metrics."""
    return scrape_typed(admin)[0]


def test_metrics_register(ctx):
    server, (udp, _, _), admin = start_with_admin(ctx)
    with server:
        before = scrape(admin)
        for name in ("sipwake_registrar_requests_total", "sipwake_registrar_ok_total",
                     'sipwake_transport_received_total{transport="udp"}'):
            check(name in before, "%s missing from /metrics:\n%s" % (name, sorted(before)))
        client = it.UdpClient(("127.0.0.1", udp))
        try:
            reg = it.Registration(client, udp, "alice", PASSWORD)
            it.expect_code(reg.send(["Contact: " + reg.contact]), 200, "alice's REGISTER")
        finally:
            client.close()
        after = scrape(admin)
        # The challenge and the authenticated REGISTER: two requests, one 200.
        for name, moved in (("sipwake_registrar_requests_total", 2),
                            ("sipwake_registrar_ok_total", 1),
                            ('sipwake_transport_received_total{transport="udp"}', 2)):
            check(after[name] - before[name] >= moved,
                  "%s went from %d to %d, expected +%d" % (name, before[name], after[name], moved))
        check(server.alive(), "sipwake died")


def raw_exchange(port, data):
    """Sends `data` on a new connection and returns all the server sends back until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=it.IO_TIMEOUT) as s:
        s.sendall(data)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return got
            got += chunk


def test_metrics_errors(ctx):
    server, (udp, _, _), admin = start_with_admin(ctx)
    with server:
        base = "http://127.0.0.1:%d" % admin
        status, _, _ = get(base + "/nope")  # "/" is the dashboard
        check(status == 404, "GET /nope: %d" % status)
        status, _, _ = get(base + "/metrics/x")
        check(status == 404, "GET /metrics/x: %d" % status)
        status, _, _ = get(base + "/metrics", method="POST")
        check(status == 405, "POST /metrics: %d" % status)
        status, _, _ = get(base + "/metrics?x=1")
        check(status == 200, "GET /metrics?x=1: %d" % status)
        for garbage in (b"\x16\x03\x01\x00\x05hello\r\n\r\n", b"GET\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\nx: " + b"a" * 70000 + b"\r\n\r\n"):
            got = raw_exchange(admin, garbage)
            check(got.startswith(b"HTTP/1.1 400"), "%r...: answered %r" % (garbage[:20], got[:80]))
        check(server.alive(), "sipwake died on a malformed admin request")
        scrape(admin)
        it.options_alive_udp(udp, "sipwake after the malformed admin requests")


def test_metrics_non_loopback_refused(ctx):
    path = os.path.join(ctx.work, "public.toml")
    with open(path, "w") as f:
        f.write("[server]\nworkers = 1\n\n[admin]\nlisten = \"0.0.0.0:9090\"\n")
    for cmd in ([ctx.sipwake, "check-config", path], [ctx.sipwake, "--config", path]):
        code, _, err = it.run_cmd(cmd)
        want = "%s:5: [admin] listen: \"0.0.0.0:9090\" is not a loopback address" % path
        check(code == 1 and want in err, "%s: exit %d, %r" % (cmd[1], code, err))


def documented_families():
    """{family: (type, labels, moves)} of docs/operations.md's metrics table; moves is "yes" or
    why the scenario does not move it."""
    table = {}
    with open(OPERATIONS_MD) as f:
        for line in f:
            m = TABLE_ROW.match(line.rstrip("\n"))
            if m:
                check(m.group(1) not in table, "%s listed twice" % m.group(1))
                table[m.group(1)] = (m.group(2), m.group(3).strip(), m.group(4).strip())
    check(len(table) > 50, "docs/operations.md: the metrics table has %d rows" % len(table))
    return table


def family_values(samples, family, kind):
    """{labels: value} of one family (a histogram's by its _count)."""
    name = family + "_count" if kind == "histogram" else family
    out = {}
    for key, v in samples.items():
        if key == name or key.startswith(name + "{"):
            out[key[len(name):]] = v
    return out


def test_metrics_documented(ctx):
    """Every family of the table exists with its type, the scenario moves every one the table
    marks "yes" (a counter or histogram grows, a gauge leaves its start value at some scrape),
    and /metrics has no family the table does not list."""
    table = documented_families()
    admin = it.free_port()
    config = "\n[admin]\nlisten = \"127.0.0.1:%d\"\n" % admin
    scrapes = []
    with wk.Rig(ctx, ring_timeout=3, extra_config=config) as rig:
        first, typed = scrape_typed(admin)
        scrapes.append(first)
        for family, (kind, _, moves) in sorted(table.items()):
            if moves.startswith("absent") and family not in typed:
                continue  # its feature is not configured here
            check(typed.get(family) == kind, "%s: documented as a %s, /metrics has %s"
                  % (family, kind, typed.get(family, "nothing")))
        undocumented = sorted(set(typed) - set(table))
        check(not undocumented, "families missing from docs/operations.md: %s" % undocumented)

        # A woken call: push accepted, the phone registers again and answers.
        tok = wk.fcm_token()
        rig.watch.subscribe(tok, project=ph.PROJECT)
        p = rig.phone("wake", "alice", ["--dialect", "rfc8599", "--provider", "fcm", "--app",
                                        ph.PROJECT, "--token", tok,
                                        "--background-after-register", "--calls", "1",
                                        "--on-call", "answer", "--answer-after-ms", "100"])
        p.wait_event("backgrounded")
        with socket.create_connection(("127.0.0.1", rig.ports[1]), timeout=it.IO_TIMEOUT):
            scrapes.append(scrape(admin))  # bindings, push bindings, a TCP connection open
        caller = rig.caller()
        final = caller.invite(timeout=25, on_trying=lambda _: scrapes.append(scrape(admin)))
        it.expect_code(final, 200, "INVITE to the woken phone")
        it.expect_code(caller.ack_and_bye(final), 200, "BYE")
        check(p.wait() == 0, "phone:\n" + p.log())
        # A failed push: 410 Unregistered for bob's APNs device (the binding goes).
        dead = wk.apns_token()
        rig.watch.subscribe(dead, topic=ph.BUNDLE + ".voip")
        rig.watch.script(dead, [{"status": 410, "reason": "Unregistered"}])
        wk.sleeping_phone(rig, "dead", "carol", dead, provider="apns")
        wk.call_failing(rig, 480, "INVITE to a dead token", callee="carol")
        # Nobody wakes: the ring timeout (3 s).
        sleepy = wk.fcm_token()
        rig.watch.subscribe(sleepy, project=ph.PROJECT)
        wk.sleeping_phone(rig, "sleepy", "carol", sleepy)
        wk.call_failing(rig, 480, "INVITE nobody answers", callee="carol")
        scrapes.append(scrape(admin))
        rig.server_alive()

    unmoved = []
    for family, (kind, _, moves) in sorted(table.items()):
        if moves != "yes":
            continue
        seen = [family_values(s, family, kind) for s in scrapes]
        before = seen[0]
        if kind == "gauge":
            moved = any(v != before.get(k, 0) for later in seen[1:] for k, v in later.items())
        elif kind == "histogram":  # every label set (e.g. each wake stage)
            moved = bool(seen[-1]) and all(v > before.get(k, 0) for k, v in seen[-1].items())
        else:
            moved = any(v > before.get(k, 0) for k, v in seen[-1].items())
        if not moved:
            unmoved.append(family)
    check(not unmoved, "documented as moved by the scenario, but did not: %s" % unmoved)


if __name__ == "__main__":
    sys.exit(ph.main({n[len("test_"):]: f for n, f in globals().items() if n.startswith("test_")},
                     __doc__))
