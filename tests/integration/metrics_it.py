#!/usr/bin/env python3
"""The admin listener ([admin] listen): GET /metrics in the Prometheus text format, moved by a
REGISTER; 404 / 405 / 400 for anything else, the server unharmed; a non-loopback address refused
at start-up with the key and line. Reuses the harness of sipwake_it.py.

    metrics_it.py --sipwake build/sipwake --work-dir /tmp/it metrics_register

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
from sipwake_it import check  # noqa: E402

PASSWORD = "metrics-secret"
# One sample line: name, optional {labels}, value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([0-9]+)$')


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


def scrape(admin):
    """{sample (name + labels): value} of GET /metrics, checking the text format on the way."""
    status, ctype, body = get("http://127.0.0.1:%d/metrics" % admin)
    check(status == 200, "GET /metrics: %d %s" % (status, body[:500]))
    check(ctype.startswith("text/plain; version=0.0.4"), "content type %r" % ctype)
    samples, typed = {}, set()
    for line in body.splitlines():
        m = re.match(r"^# TYPE (\S+) counter$", line)
        if m:
            typed.add(m.group(1))
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.match(line)
        check(m is not None, "not a sample line: %r" % line)
        check(m.group(1) in typed, "%s has no # TYPE before it" % m.group(1))
        check(m.group(1).startswith("sipwake_"), "no sipwake_ prefix: %r" % line)
        samples[m.group(1) + (m.group(2) or "")] = int(m.group(3))
    return samples


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


if __name__ == "__main__":
    sys.exit(it.run_module_tests(globals()))
