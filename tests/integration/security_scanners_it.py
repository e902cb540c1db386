#!/usr/bin/env python3
"""SIPVicious (Debian `sipvicious`: svmap, svwar, svcrack) against the real `sipwake` binary,
on loopback, bounded in rate, range and time (docs/security.md). Same command line as
sipwake_it.py, whose harness it uses:

    security_scanners_it.py --sipwake build/sipwake --work-dir /tmp/it sipvicious_svmap

The scanners bind to a port chosen at run time (-P), never to 5060.
"""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sipwake_it import (Registration, Skip, UdpClient, add_user, check,  # noqa: E402
                        expect_code, free_port, run_module_tests, start_server)

SCAN_TIMEOUT = 20  # seconds for one scanner run


def scanner(ctx, tool, args, timeout=SCAN_TIMEOUT):
    """Runs a SIPVicious tool; returns its output (stdout + stderr). A run still going after
    `timeout` seconds is killed and its output so far returned: svcrack keeps asking for a
    challenge for as long as the server answers, so a server that refuses it never ends it."""
    path = shutil.which(tool)
    if not path:
        raise Skip("%s not found (Debian package sipvicious)" % tool)
    cmd = [path] + args
    ctx.note("running: " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout, cwd=ctx.work)
        out = p.stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + b"\n(killed after %d s)\n" % timeout
    text = out.decode("utf-8", "replace")
    with open(os.path.join(ctx.work, "%s.out" % tool), "a") as f:
        f.write("$ %s\n%s\n" % (" ".join(cmd), text))
    return text


def config(ctx, text):
    path = os.path.join(ctx.work, "scan.toml")
    with open(path, "w") as f:
        # svcrack answers only MD5 challenges and takes the first one offered.
        f.write("[auth]\nalgorithms = [\"MD5\", \"SHA-256\"]\n" + text)
    return path


def test_sipvicious_svmap(ctx):
    """svmap finds sipwake and reads its Server header; with server_header = "" it still sees a
    SIP device but learns neither the software nor its version."""
    server, (udp, _, _) = start_server(ctx)
    with server:
        out = scanner(ctx, "svmap", ["-p%d" % udp, "-P", str(free_port(socket.SOCK_DGRAM)),
                                     "-b", "127.0.0.1", "-t", "0.05", "127.0.0.1"])
        check(re.search(r"127\.0\.0\.1:%d\s*\|\s*sipwake/\d" % udp, out),
              "svmap did not list sipwake with its Server header:\n" + out)
    server, (udp, _, _) = start_server(ctx, ["--config", config(ctx, "[server]\n"
                                                                "server_header = \"\"\n")])
    with server:
        out = scanner(ctx, "svmap", ["-p%d" % udp, "-P", str(free_port(socket.SOCK_DGRAM)),
                                     "-b", "127.0.0.1", "-t", "0.05", "127.0.0.1"])
        check("127.0.0.1:%d" % udp in out, "svmap did not see the SIP device:\n" + out)
        check("sipwake" not in out.lower() and "0.1." not in out,
              "svmap learnt the software with server_header = \"\":\n" + out)


def register(udp, user, password, source, what):
    """`user` registers from `source` over UDP: 200 expected."""
    phone = UdpClient(("127.0.0.1", udp), host=source)
    try:
        reg = Registration(phone, udp, user, password)
        expect_code(reg.send(["Contact: %s" % reg.contact, "Expires: 600"]), 200, what)
    finally:
        phone.close()


def svwar_rows(out):
    """{extension: status} from svwar's result table."""
    return dict(re.findall(r"^\|\s*(\d+)\s*\|\s*([^|]*?)\s*\|", out, re.M))


def test_sipvicious_svwar(ctx):
    """svwar over extensions 100-119 (105 exists and is registered, 106 exists and is not) with
    REGISTER, INVITE and OPTIONS, with and without --force: no answer tells an existing user
    from a missing one."""
    for user in ("105", "106"):
        add_user(ctx, "%s@127.0.0.1" % user, "pw-%s-secret" % user)
    server, (udp, _, _) = start_server(ctx, ["--config", config(ctx, "")])
    with server:
        register(udp, "105", "pw-105-secret", "127.0.0.1", "REGISTER of 105")
        extensions = [str(e) for e in range(100, 120)]
        for method in ("REGISTER", "INVITE", "OPTIONS"):
            for force in ([], ["--force"]):
                out = scanner(ctx, "svwar", force + [
                    "-m", method, "-e100-119", "-p%d" % udp, "-b", "127.0.0.1",
                    "-P", str(free_port(socket.SOCK_DGRAM)), "-t", "0.02",
                    "--maximumtime", "3", "127.0.0.1"])
                rows = svwar_rows(out)
                what = "svwar -m %s %s" % (method, " ".join(force))
                if rows:
                    # Listing every extension alike tells nothing; listing some does.
                    check(sorted(rows) == extensions and len(set(rows.values())) == 1,
                          "%s tells users apart: %s\n%s" % (what, rows, out))
                else:
                    check("found nothing" in out, "%s: no result and no 'found nothing':\n%s"
                          % (what, out))
        check(server.alive(), "sipwake died")


class UdpRelay:
    """Relays datagrams between a client on 127.0.0.1 and `server`, from the address `source`:
    svcrack sends from 127.0.0.1 whatever its -b says, so each attacking address gets a relay."""

    def __init__(self, server, source):
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind((source, 0))
        self.back.connect(server)
        self.client = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            r, _, _ = select.select([self.front, self.back], [], [], 0.2)
            try:
                if self.front in r:
                    data, self.client = self.front.recvfrom(65535)
                    self.back.send(data)
                if self.back in r:
                    data = self.back.recv(65535)
                    if self.client:
                        self.front.sendto(data, self.client)
            except OSError:
                pass  # the client or the server went away: the test judges the outcome

    def close(self):
        self.stopping = True
        self.thread.join(timeout=2)
        self.front.close()
        self.back.close()


def svcrack_spread(ctx, udp, sources, guesses, first_password, timeout):
    """`sources` svcrack processes at once, each through its own relay from 127.0.0.10,
    127.0.0.11, ..., each trying its own `guesses` numeric passwords of the range starting at
    first_password, bounded by `timeout` seconds in all. Returns {source address: password
    svcrack reported}."""
    path = shutil.which("svcrack")
    if not path:
        raise Skip("svcrack not found (Debian package sipvicious)")
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # output survives a kill
    procs, relays = [], []
    try:
        for i in range(sources):
            first = first_password + guesses * i
            source = "127.0.0.%d" % (10 + i)
            relay = UdpRelay(("127.0.0.1", udp), source)
            relays.append(relay)
            cmd = [path, "-u105", "-r%d-%d" % (first, first + guesses - 1),
                   "-p%d" % relay.port, "-P", str(free_port(socket.SOCK_DGRAM)), "-t", "0.05",
                   "--maximumtime", "2", "127.0.0.1"]
            out = open(os.path.join(ctx.work, "svcrack-%s.out" % source), "w+b")
            procs.append((source, out, subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=ctx.work)))
        ctx.note("running %d svcrack processes, e.g. %s" % (sources, " ".join(cmd)))
        found = {}
        deadline = time.monotonic() + timeout
        for source, out, proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()  # still asking for challenges: a server refusing it never ends it
                proc.wait()
            out.seek(0)
            m = re.search(r"^\|\s*105\s*\|\s*(\S+)\s*\|",
                          out.read().decode("utf-8", "replace"), re.M)
            if m:
                found[source] = m.group(1)
            out.close()
        return found
    finally:
        for source, out, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for relay in relays:
            relay.close()


def test_sipvicious_svcrack_spread(ctx):
    """svcrack against one user's password from 20 source addresses at once, 10 guesses each,
    the password being the 5th guess of the 16th address (~100 wrong guesses are made before
    it): per-user limits stop the spread attack before it gets there, and the real user, from an
    address that has not been failing, still registers with the right password."""
    add_user(ctx, "105@127.0.0.1", "4154")
    server, (udp, _, _) = start_server(ctx, ["--config", config(ctx, "")])
    with server:
        found = svcrack_spread(ctx, udp, sources=20, guesses=10, first_password=4000, timeout=8)
        check(not found, "svcrack spread over 20 addresses cracked 105's password: %s" % found)
        register(udp, "105", "4154", "127.0.0.99",
                 "the real user's REGISTER from a fresh address after the attack")


if __name__ == "__main__":
    sys.exit(run_module_tests(globals()))
