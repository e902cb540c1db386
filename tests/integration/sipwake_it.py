#!/usr/bin/env python3
"""Integration tests for the real `sipwake` binary (Python 3 standard library only).

Each test starts its own sipwake on loopback ports chosen at run time, waits (bounded) until it
logs "ready", drives it with sipp and with raw UDP/TCP/TLS sockets, and always stops it again with
SIGTERM, checking that it exits 0. Run one test:

    sipwake_it.py --sipwake build/sipwake --sipp /usr/bin/sipp \
        --scenarios tests/integration/scenarios --work-dir /tmp/it options_udp

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).

Debian's sipp (sip-tester) is built without TLS, so the TLS tests use Python's ssl module
directly, and drive sipp over TLS through a small TCP-to-TLS bridge in this file.
"""

import argparse
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid

SKIP = 77
START_TIMEOUT = 15.0  # seconds for sipwake to log "ready"
STOP_TIMEOUT = 15.0  # seconds for sipwake to exit after SIGTERM/SIGINT (drain_timeout 10 s + margin)
IO_TIMEOUT = 5.0  # seconds to wait for one SIP response
SIPP_TIMEOUT = 30.0  # seconds for one sipp run


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Fail(message)


# ---------------------------------------------------------------------------------------------
# Ports and processes


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    """A port the kernel says is free right now (for TCP listeners also free for UDP)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        # The same number must also be free for the other protocol (udp and tcp share 5060).
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        try:
            with socket.socket(family, other) as s:
                s.bind((host, port))
        except OSError:
            continue
        return port
    raise Fail("no free port found")


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Sipwake:
    """One sipwake process. Use as a context manager: always stopped at the end."""

    def __init__(self, ctx, args, name="sipwake", preexec_fn=None):
        self.ctx = ctx
        self.args = args
        self.preexec_fn = preexec_fn  # run in the child before exec (e.g. resource.setrlimit)
        self.log_path = os.path.join(ctx.work, name + ".log")
        self.proc = None
        self.exit_code = None

    def start(self):
        self._log = open(self.log_path, "wb")
        cmd = [self.ctx.sipwake] + self.args
        self.ctx.note("starting: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.ctx.work,
                                     preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log()
            if re.search(r"\bready\b", text):
                return self
            if self.proc.poll() is not None:
                raise Fail("sipwake exited with %d before it was ready:\n%s"
                           % (self.proc.returncode, text))
            time.sleep(0.02)  # polling the log, bounded by the deadline
        raise Fail("sipwake not ready after %.0fs:\n%s" % (START_TIMEOUT, self.log()))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.exit_code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
            self.exit_code = -9
            raise Fail("sipwake did not exit within %.0fs of %s:\n%s"
                       % (STOP_TIMEOUT, signal.Signals(sig).name, self.log()))
        finally:
            self._log.close()
        return self.exit_code

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type, exc, tb):
        try:
            code = self.stop()
        except Fail:
            if exc_type is None:
                raise
            return False
        if exc_type is None:
            check(code == 0, "sipwake exited with %s after SIGTERM:\n%s" % (code, self.log()))
        return False


def run_cmd(cmd, timeout=30, cwd=None):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise Fail("timed out after %ss: %s" % (timeout, " ".join(cmd)))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# SIP over raw sockets


def build_request(method, ruri, via_transport, local, extra_headers=(), cseq="1",
                  cseq_method=None, version="SIP/2.0", max_forwards="70", body=""):
    host, port = local
    sent_by = ("[%s]" % host if ":" in host else host) + ":%d" % port
    lines = [
        "%s %s %s" % (method, ruri, version),
        "Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport" % (via_transport, sent_by, uuid.uuid4().hex),
    ]
    if max_forwards is not None:
        lines.append("Max-Forwards: %s" % max_forwards)
    lines += [
        "From: <sip:tester@%s>;tag=%s" % (sent_by, uuid.uuid4().hex[:10]),
        "To: <%s>" % ruri,
        "Call-ID: %s@it" % uuid.uuid4().hex,
        "CSeq: %s %s" % (cseq, cseq_method or method),
    ]
    lines += list(extra_headers)
    lines.append("Content-Length: %d" % len(body.encode()))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class Response:
    def __init__(self, raw):
        self.raw = raw
        text = raw.decode("utf-8", "replace")
        head = text.split("\r\n\r\n", 1)[0]
        lines = head.split("\r\n")
        m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
        if not m:
            raise Fail("not a SIP response: %r" % text[:200])
        self.code = int(m.group(1))
        self.reason = m.group(2)
        self.headers = {}
        compact = {"v": "via", "f": "from", "t": "to", "i": "call-id", "l": "content-length",
                   "k": "supported", "m": "contact", "c": "content-type"}
        for line in lines[1:]:
            if ":" not in line:
                continue
            name, value = line.split(":", 1)
            name = name.strip().lower()
            name = compact.get(name, name)
            self.headers.setdefault(name, []).append(value.strip())

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def __repr__(self):
        return "<%d %s>" % (self.code, self.reason)


def _skip_provisional(recv_one):
    while True:
        r = recv_one()
        if r is None or r.code >= 200:
            return r


class UdpClient:
    def __init__(self, server, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.local = (host, self.sock.getsockname()[1])
        self.server = server

    def send(self, data):
        self.sock.sendto(data, self.server)

    def recv(self, timeout=IO_TIMEOUT):
        def one():
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return None
            data, _ = self.sock.recvfrom(65535)
            return Response(data)
        return _skip_provisional(one)

    def exchange(self, data, timeout=IO_TIMEOUT):
        self.send(data)
        return self.recv(timeout)

    def close(self):
        self.sock.close()


class StreamClient:
    """A TCP (or TLS, with ssl_context) connection that reads Content-Length framed responses."""

    def __init__(self, server, ssl_context=None, server_hostname=None, source=None):
        raw = socket.create_connection(server, timeout=IO_TIMEOUT,
                                       source_address=(source, 0) if source else None)
        self.sock = ssl_context.wrap_socket(raw, server_hostname=server_hostname) \
            if ssl_context else raw
        self.local = self.sock.getsockname()[:2]
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _read_more(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65535)
        except (socket.timeout, ssl.SSLError, ConnectionError):
            return False
        if not chunk:
            return False
        self.buf += chunk
        return True

    def recv(self, timeout=IO_TIMEOUT):
        deadline = time.monotonic() + timeout

        def one():
            while True:
                # RFC 5626 keep-alive pongs (bare CRLFs) may precede a message.
                self.buf = self.buf.lstrip(b"\r\n")
                end = self.buf.find(b"\r\n\r\n")
                if end >= 0:
                    head = self.buf[:end].decode("utf-8", "replace")
                    m = re.search(r"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                    length = int(m.group(1)) if m else 0
                    total = end + 4 + length
                    if len(self.buf) >= total:
                        msg, self.buf = self.buf[:total], self.buf[total:]
                        return Response(msg)
                if not self._read_more(deadline):
                    return None
        return _skip_provisional(one)

    def exchange(self, data, timeout=IO_TIMEOUT):
        self.send(data)
        return self.recv(timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def insecure_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def expect_options_200(resp, what):
    check(resp is not None, "%s: no response to OPTIONS" % what)
    check(resp.code == 200, "%s: OPTIONS answered %r, expected 200:\n%s"
          % (what, resp, resp.raw.decode("utf-8", "replace")))
    allow = resp.header("allow") or ""
    check("OPTIONS" in allow, "%s: Allow %r lacks OPTIONS" % (what, allow))
    check("supported" in resp.headers, "%s: no Supported header" % what)
    check("application/sdp" in (resp.header("accept") or ""), "%s: no Accept: application/sdp"
          % what)
    check(";tag=" in (resp.header("to") or ""), "%s: To has no tag" % what)


def options_alive_udp(port, what="server"):
    c = UdpClient(("127.0.0.1", port))
    try:
        r = c.exchange(build_request("OPTIONS", "sip:127.0.0.1:%d" % port, "UDP", c.local))
        expect_options_200(r, what + " still answering over UDP")
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# sipp


def run_sipp(ctx, scenario, target, transport="u1", send_to=None):
    """`send_to`: where sipp sends (-rsa) when that is not `target` (a TlsBridge), so that the
    scenario's [remote_port] still names sipwake's own listener."""
    check(ctx.sipp and os.access(ctx.sipp, os.X_OK), "sipp not found (Debian package sip-tester)")
    name = os.path.splitext(os.path.basename(scenario))[0]
    err_file = os.path.join(ctx.work, "sipp-%s-%s-errors.log" % (name, transport))
    msg_file = os.path.join(ctx.work, "sipp-%s-%s-messages.log" % (name, transport))
    cmd = [ctx.sipp, "%s:%d" % target, "-sf", os.path.join(ctx.scenarios, scenario),
           "-t", transport, "-i", "127.0.0.1", "-m", "1", "-nostdin",
           # Never let sipp take 5060 (its default first choice): default_config needs it.
           "-p", str(free_port(socket.SOCK_DGRAM if transport.startswith("u") else
                               socket.SOCK_STREAM)),
           "-timeout", "%ds" % (SIPP_TIMEOUT - 5), "-timeout_error", "-recv_timeout", "10000",
           "-trace_err", "-error_file", err_file, "-trace_msg", "-message_file", msg_file]
    if send_to:
        cmd += ["-rsa", "%s:%d" % send_to]
    ctx.note("running: " + " ".join(cmd))
    code, out, err = run_cmd(cmd, timeout=SIPP_TIMEOUT, cwd=ctx.work)
    if code != 0:
        details = ""
        for path in (err_file, msg_file):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    details += "\n--- %s ---\n%s" % (os.path.basename(path), f.read()[-4000:])
        raise Fail("sipp %s over %s failed (exit %d):\n%s\n%s%s"
                   % (scenario, transport, code, out[-2000:], err[-2000:], details))


class TlsBridge:
    """Accepts plain TCP on a loopback port and relays each connection over TLS to `target`.

    Lets Debian's TLS-less sipp drive sipwake's TLS listener."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.ctx = insecure_tls_context()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopping:
            r, _, _ = select.select([self.listener], [], [], 0.2)
            if not r:
                continue
            try:
                plain, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(plain,), daemon=True).start()

    def _relay(self, plain):
        # Drains records the SSL layer has already buffered (select() does not see them): a
        # message split over two TLS records would otherwise stall.
        try:
            tls = self.ctx.wrap_socket(socket.create_connection(self.target, timeout=IO_TIMEOUT))
        except OSError:
            plain.close()
            return
        tls.setblocking(False)
        plain.setblocking(False)
        try:
            while not self.stopping:
                r, _, _ = select.select([plain, tls], [], [], 0.2)
                for s in r:
                    while True:
                        try:
                            data = s.recv(65535)
                        except (ssl.SSLWantReadError, BlockingIOError):
                            break
                        if not data:
                            return
                        other = tls if s is plain else plain
                        other.setblocking(True)
                        other.sendall(data)
                        other.setblocking(False)
                        if s is plain or tls.pending() == 0:
                            break
        except OSError:
            return
        finally:
            plain.close()
            tls.close()

    def close(self):
        self.stopping = True
        self.listener.close()
        self.thread.join(timeout=2)


# ---------------------------------------------------------------------------------------------
# Tests


class RedisServer:
    """A redis-server of the test's own, on a free loopback port, its files in the test's work
    directory; with `appendonly`, every write fsynced (appendfsync always) so that an
    acknowledged write survives kill -9. Raises Skip when redis-server is not installed.
    restart() starts it again on the same port with the same files."""

    def __init__(self, ctx, name="redis", appendonly=True, host="127.0.0.1"):
        if not shutil.which("redis-server"):
            raise Skip("redis-server not installed (Debian package redis-server)")
        self.ctx, self.name, self.appendonly, self.host = ctx, name, appendonly, host
        self.dir = os.path.join(ctx.work, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = None
        self.proc = None

    def url(self, db=0):
        return "redis://%s:%d/%d" % (self.host, self.port, db)

    def _spawn(self):
        args = ["redis-server", "--port", str(self.port), "--bind", self.host, "--dir", self.dir,
                "--save", "", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        if self._wait_ready():
            return True
        self.kill()
        return False

    def start(self):
        """Starts on a free port (another one if that was taken in between)."""
        for _ in range(3):
            self.port = free_port(host=self.host)
            if self._spawn():
                return self
        raise Fail("redis-server did not start (see %s/redis.log)" % self.dir)

    def restart(self):
        """kill -9, then starts again on the same port with the same files."""
        self.kill()
        return self.start_again()

    def start_again(self):
        """Starts again on the port it had (sipwake reconnects to that address)."""
        for _ in range(50):
            if self._spawn():
                return self
            time.sleep(0.1)  # the port may not be free again yet; bounded retries
        raise Fail("redis-server did not start again on port %d" % self.port)

    def _wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.command("PING") == "+PONG":
                return True
            time.sleep(0.02)  # polling for the listener, bounded by the deadline
        return False

    def command(self, *words, timeout=2.0):
        """One command (RESP array of bulk strings); the first line of the reply, or None when
        the server cannot be reached."""
        payload = "*%d\r\n" % len(words) + "".join(
            "$%d\r\n%s\r\n" % (len(w.encode()), w) for w in words)
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as c:
                c.sendall(payload.encode())
                data = b""
                while b"\r\n" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        except OSError:
            return None

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type, exc, tb):
        self.kill()
        return False


class Context:
    def __init__(self, args, test):
        self.sipwake = os.path.abspath(args.sipwake)
        self.sipp = args.sipp
        self.scenarios = os.path.abspath(args.scenarios)
        base = os.path.abspath(args.work_dir)
        os.makedirs(base, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix=test + "-", dir=base)
        self.source_dir = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

    def note(self, text):
        print(text, flush=True)


def three_listeners():
    return free_port(socket.SOCK_DGRAM), free_port(), free_port()


def listen_args(udp, tcp, tls, host="127.0.0.1"):
    h = "[%s]" % host if ":" in host else host
    args = []
    if udp:
        args += ["--listen", "udp:%s:%d" % (h, udp)]
    if tcp:
        args += ["--listen", "tcp:%s:%d" % (h, tcp)]
    if tls:
        args += ["--listen", "tls:%s:%d" % (h, tls)]
    return args


def start_server(ctx, extra_args=(), host="127.0.0.1", preexec_fn=None, name="sipwake"):
    """Starts sipwake on three fresh ports; retries if a port was taken in between. `name`
    names its log file (several servers in one test need several names)."""
    last = None
    for _ in range(3):
        udp, tcp, tls = free_port(socket.SOCK_DGRAM, host), free_port(host=host), \
            free_port(host=host)
        server = Sipwake(ctx, listen_args(udp, tcp, tls, host) + list(extra_args),
                         name=name, preexec_fn=preexec_fn)
        try:
            server.start()
            return server, (udp, tcp, tls)
        except Fail as e:
            last = e
            if "in use" not in server.log().lower():
                raise
            server.stop()
    raise last


def test_cli_version(ctx):
    code, out, err = run_cmd([ctx.sipwake, "--version"])
    check(code == 0, "--version exit %d: %s" % (code, err))
    check(re.fullmatch(r"sipwake \d+\.\d+\.\d+\n", out), "--version printed %r" % out)


def test_cli_help(ctx):
    code, out, err = run_cmd([ctx.sipwake, "--help"])
    check(code == 0, "--help exit %d: %s" % (code, err))
    for word in ("--config", "--listen", "--version", "check-config"):
        check(word in out, "--help lacks %s:\n%s" % (word, out))


def test_cli_bad_listen(ctx):
    for spec in ("udp:localhost:5060", "sctp:127.0.0.1:5060", "tcp:::1:5060", "udp:127.0.0.1:0"):
        code, out, err = run_cmd([ctx.sipwake, "--listen", spec])
        check(code == 2, "--listen %s: exit %d, expected 2" % (spec, code))
        check(spec in err and "udp:IP:PORT" in err, "--listen %s: unclear error %r" % (spec, err))


def test_check_config_good(ctx):
    example = os.path.join(ctx.source_dir, "config", "sipwake.example.toml")
    code, out, err = run_cmd([ctx.sipwake, "check-config", example])
    check(code == 0, "check-config example: exit %d: %s" % (code, err))
    check(out == example + ": OK\n", "check-config printed %r" % out)


def test_check_config_bad(ctx):
    path = os.path.join(ctx.work, "bad.toml")
    with open(path, "w") as f:
        f.write("# comment\n[server]\nworkers = 2\n\n[limits]\nmax_message_bytes = 4096\n"
                "max_headers = \"abc\"\n")
    code, out, err = run_cmd([ctx.sipwake, "check-config", path])
    check(code == 1, "check-config bad file: exit %d" % code)
    want = "%s:7: [limits] max_headers: expected a positive integer, got \"abc\"" % path
    check(want in err, "check-config: expected %r, got %r" % (want, err))

    with open(path, "w") as f:
        f.write("[server]\nworkers = 2\n[timers]\nt1_ms = 500\nt3_ms = 10\n")
    code, out, err = run_cmd([ctx.sipwake, "check-config", path])
    check(code == 1 and "%s:5: [timers] t3_ms: unknown key" % path in err,
          "unknown key: exit %d, %r" % (code, err))

    # The server itself refuses to start on the same file, with the same message.
    code, out, err = run_cmd([ctx.sipwake, "--config", path])
    check(code == 1 and "t3_ms" in err, "sipwake --config bad: exit %d, %r" % (code, err))

    missing = os.path.join(ctx.work, "missing.toml")
    code, out, err = run_cmd([ctx.sipwake, "check-config", missing])
    check(code == 1 and missing in err, "missing file: exit %d, %r" % (code, err))


def test_options_udp(ctx):
    server, (udp, _, _) = start_server(ctx)
    with server:
        check("listening on udp:127.0.0.1:%d" % udp in server.log(), "no 'listening on' line")
        run_sipp(ctx, "options.xml", ("127.0.0.1", udp), "u1")


def test_port_in_use(ctx):
    """A second sipwake on ports the first one holds must refuse to start (no silent sharing
    through SO_REUSEPORT), and the first one keeps answering."""
    server, (udp, tcp, tls) = start_server(ctx)
    with server:
        for spec in ("udp:127.0.0.1:%d" % udp, "tcp:127.0.0.1:%d" % tcp):
            code, out, err = run_cmd([ctx.sipwake, "--listen", spec,
                                      "--store", os.path.join(ctx.work, "second.db")],
                                     timeout=15, cwd=ctx.work)
            check(code != 0, "second sipwake on %s started (exit %d)" % (spec, code))
            check("in use" in (out + err).lower(), "no 'in use' error for %s: %r" % (spec, out + err))
        run_sipp(ctx, "options.xml", ("127.0.0.1", udp), "u1")


def test_options_tcp(ctx):
    server, (_, tcp, _) = start_server(ctx)
    with server:
        run_sipp(ctx, "options.xml", ("127.0.0.1", tcp), "t1")


def test_options_tls(ctx):
    """No [tls] certificate: the ephemeral self-signed one must serve loopback TLS."""
    server, (_, _, tls) = start_server(ctx)
    with server:
        check("self-signed" in server.log(), "no warning about the ephemeral certificate")
        c = StreamClient(("127.0.0.1", tls), insecure_tls_context())
        try:
            cert = c.sock.getpeercert(binary_form=True)
            check(cert, "no server certificate")
            r = c.exchange(build_request("OPTIONS", "sip:127.0.0.1:%d;transport=tls" % tls, "TLS",
                                         c.local))
            expect_options_200(r, "TLS")
        finally:
            c.close()
        bridge = TlsBridge(("127.0.0.1", tls))
        try:
            run_sipp(ctx, "options.xml", ("127.0.0.1", tls), "t1",
                     send_to=("127.0.0.1", bridge.port))
        finally:
            bridge.close()


def test_options_tls_configured_cert(ctx):
    """[tls] certificate from a file: a verifying client accepts it for localhost/127.0.0.1."""
    openssl = shutil.which("openssl")
    check(openssl, "openssl command not found")
    cert = os.path.join(ctx.work, "cert.pem")
    key = os.path.join(ctx.work, "key.pem")
    code, out, err = run_cmd([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                              "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                              cert, "-days", "1", "-subj", "/CN=localhost", "-addext",
                              "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    check(code == 0, "openssl req failed: %s" % err)
    tls = free_port()
    config = os.path.join(ctx.work, "tls.toml")
    with open(config, "w") as f:
        f.write("[server]\nworkers = 2\n\n[[listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1\""
                "\nport = %d\n\n[tls]\ncertificate = \"%s\"\nprivate_key = \"%s\"\n"
                "verify = \"none\"\n" % (tls, cert, key))
    code, out, err = run_cmd([ctx.sipwake, "check-config", config])
    check(code == 0, "check-config: %s" % err)
    with Sipwake(ctx, ["--config", config]) as server:
        check("self-signed" not in server.log(), "ephemeral certificate used despite [tls]")
        verifying = ssl.create_default_context(cafile=cert)
        c = StreamClient(("127.0.0.1", tls), verifying, server_hostname="localhost")
        try:
            r = c.exchange(build_request("OPTIONS", "sip:localhost:%d;transport=tls" % tls, "TLS",
                                         c.local))
            expect_options_200(r, "TLS with configured certificate")
        finally:
            c.close()


def test_methods(ctx):
    server, (udp, tcp, _) = start_server(ctx)
    with server:
        run_sipp(ctx, "unknown_method.xml", ("127.0.0.1", udp), "u1")
        run_sipp(ctx, "invite_405.xml", ("127.0.0.1", udp), "u1")
        run_sipp(ctx, "invite_405.xml", ("127.0.0.1", tcp), "t1")


def test_core_responses(ctx):
    server, (udp, _, _) = start_server(ctx)
    with server:
        c = UdpClient(("127.0.0.1", udp))
        me = "sip:127.0.0.1:%d" % udp
        try:
            # Max-Forwards 0 on an OPTIONS to us: answered (§16.3 limits forwarding only).
            r = c.exchange(build_request("OPTIONS", me, "UDP", c.local, max_forwards="0"))
            expect_options_200(r, "Max-Forwards 0")
            # By domain name rather than address.
            r = c.exchange(build_request("OPTIONS", "sip:localhost", "UDP", c.local))
            expect_options_200(r, "sip:localhost")
            check(r.header("server") and r.header("server").startswith("sipwake/"),
                  "no Server header")
            # Unsupported Require: 420 with Unsupported (§8.2.2.3).
            r = c.exchange(build_request("OPTIONS", me, "UDP", c.local,
                                         ["Require: foo, bar"]))
            check(r and r.code == 420, "Require: got %r, expected 420" % r)
            check("foo" in (r.header("unsupported") or ""), "420 lacks Unsupported: foo")
            # Unknown method: 501; known but not implemented: 405 with Allow.
            r = c.exchange(build_request("FROB", me, "UDP", c.local))
            check(r and r.code == 501, "FROB: got %r" % r)
            r = c.exchange(build_request("SUBSCRIBE", me, "UDP", c.local, ["Event: presence"]))
            check(r and r.code == 405 and "OPTIONS" in (r.header("allow") or ""),
                  "SUBSCRIBE: got %r" % r)
            # Requests for users or other domains go to the proxy core, which first asks one of
            # our users (From: tester@127.0.0.1) to authenticate (calls_it.py has the calls).
            r = c.exchange(build_request("OPTIONS", "sip:alice@127.0.0.1:%d" % udp, "UDP",
                                         c.local))
            check(r and r.code == 407, "OPTIONS to a user: got %r" % r)
            r = c.exchange(build_request("MESSAGE", "sip:bob@example.com", "UDP", c.local))
            check(r and r.code == 407, "MESSAGE to another domain: got %r" % r)
            r = c.exchange(build_request("MESSAGE", "sip:bob@example.com", "UDP", c.local,
                                         max_forwards="0"))
            check(r and r.code == 483, "Max-Forwards 0 to another domain: got %r" % r)
        finally:
            c.close()


MALFORMED = [
    # (name, bytes builder(local, port), expected code or None for "no answer, still alive")
    ("bad CSeq", lambda l, p, t: build_request("OPTIONS", "sip:127.0.0.1:%d" % p, t, l,
                                                cseq="abc"), 400),
    ("CSeq method mismatch", lambda l, p, t: build_request("OPTIONS", "sip:127.0.0.1:%d" % p, t,
                                                            l, cseq_method="INVITE"), 400),
    ("SIP/7.0", lambda l, p, t: build_request("OPTIONS", "sip:127.0.0.1:%d" % p, t, l,
                                              version="SIP/7.0"), 505),
    ("missing Call-ID", lambda l, p, t: re.sub(rb"Call-ID: [^\r]*\r\n", b"", build_request(
        "OPTIONS", "sip:127.0.0.1:%d" % p, t, l)), 400),
]


def check_malformed(make_client, port, transport):
    for name, make, want in MALFORMED:
        c = make_client()
        try:
            r = c.exchange(make(c.local, port, transport))
            check(r is not None, "%s over %s: no response, expected %d" % (name, transport, want))
            check(r.code == want, "%s over %s: got %r, expected %d" % (name, transport, r, want))
        finally:
            c.close()


def test_malformed_udp(ctx):
    server, (udp, _, _) = start_server(ctx)
    with server:
        check_malformed(lambda: UdpClient(("127.0.0.1", udp)), udp, "UDP")
        # Garbage and an oversized datagram: dropped (or answered), never a crash.
        c = UdpClient(("127.0.0.1", udp))
        try:
            c.send(b"\x00\xff garbage \r\n\r\n")
            c.send(b"INVITE\r\n\r\n")
            c.send(build_request("OPTIONS", "sip:127.0.0.1:%d" % udp, "UDP", c.local,
                                 ["X-Big: " + "a" * 60000]))
        finally:
            c.close()
        options_alive_udp(udp)
        check(server.alive(), "sipwake died")


def test_secrets_at_rest(ctx):
    """The store is 0600 whatever the umask, a key file others can write is refused at start-up
    (key and line named), control bytes from the network are escaped in the debug log, and
    server_header = "" sends no Server header."""
    key = os.path.join(ctx.work, "key.pem")
    cert = os.path.join(ctx.work, "cert.pem")
    code, out, err = run_cmd(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                              "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                              "-days", "1", "-subj", "/CN=localhost"], cwd=ctx.work)
    check(code == 0, "openssl req failed: %s" % err)
    os.chmod(key, 0o666)
    config = os.path.join(ctx.work, "secrets.toml")
    with open(config, "w") as f:
        f.write('[server]\nlog_level = "debug"\nserver_header = ""\n\n'
                '[tls]\ncertificate = "%s"\nprivate_key = "%s"\n' % (cert, key))
    code, out, err = run_cmd([ctx.sipwake, "check-config", config], cwd=ctx.work)
    check(code != 0 and "secrets.toml:7: [tls] private_key" in err
          and "written by group or others" in err,
          "check-config accepted a world-writable key: exit %d %s %s" % (code, out, err))
    os.chmod(key, 0o644)
    code, out, err = run_cmd([ctx.sipwake, "check-config", config], cwd=ctx.work)
    check(code == 0 and "warning:" in err and "read by others" in err,
          "check-config on a 0644 key: exit %d, %s %s" % (code, out, err))
    os.chmod(key, 0o600)

    old_umask = os.umask(0)
    try:
        server, (udp, tcp, _) = start_server(ctx, ["--config", config, "--store", "private.db"])
    finally:
        os.umask(old_umask)
    with server:
        c = UdpClient(("127.0.0.1", udp))
        try:
            me = "sip:127.0.0.1:%d" % udp
            r = c.exchange(build_request("OPTIONS", me, "UDP", c.local))
            expect_options_200(r, "OPTIONS")
            check(r.header("server") is None, "server_header = \"\" but got Server: %s"
                  % r.header("server"))
            # Attacker bytes: ESC, BEL, NUL and DEL in places that reach debug log lines.
            nasty = "\x1b[31m\x07\x7f"
            c.send(build_request("OPTIONS", me, "UDP", c.local, cseq="1" + nasty))
            c.send(("INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + nasty +
                    "\r\n\r\n").encode() + b"\x00\x1b")
            c.send(b"\x1b]0;pwned\x07 garbage\r\n\r\n")
            c.send(build_request("MESSAGE", "sip:bob" + nasty + "@127.0.0.1", "UDP", c.local))
            c.exchange(build_request("MESSAGE", "sip:bob%1b%07%00@127.0.0.1", "UDP", c.local))
            c.exchange(build_request("REGISTER", "sip:127.0.0.1", "UDP", c.local,
                                     ["Contact: <sip:a%1b%07@127.0.0.1:5999>;+sip.instance=\"<urn:%1b>\"",
                                      "User-Agent: x\x1b\x07"]))
            # A REGISTER the registrar refuses is logged with its Call-ID.
            req = build_request("REGISTER", "sip:example.org", "UDP", c.local,
                                ["Contact: <sip:a@127.0.0.1:5999>"])
            c.exchange(re.sub(rb"Call-ID: ([^\r]*)", lambda m: b"Call-ID: " + m.group(1) +
                              nasty.encode(), req))
        finally:
            c.close()
        options_alive_udp(udp)
        for suffix in ("", "-wal", "-shm"):
            path = os.path.join(ctx.work, "private.db" + suffix)
            if os.path.exists(path):
                mode = os.stat(path).st_mode & 0o777
                check(mode == 0o600, "%s is mode %o under umask 0, expected 600" % (path, mode))
    with open(server.log_path, "rb") as f:
        raw = f.read()
    bad = sorted({b for b in raw if (b < 0x20 and b not in (0x0a,)) or b == 0x7f})
    check(not bad, "raw control bytes %s in the log:\n%s" % (bad, raw[-3000:]))


def test_malformed_tcp(ctx):
    server, (udp, tcp, _) = start_server(ctx)
    with server:
        check_malformed(lambda: StreamClient(("127.0.0.1", tcp)), tcp, "TCP")
        # Garbage, a huge header block and a connection closed mid-message: never a crash.
        for junk in (b"\x00\xff garbage \r\n\r\n", b"OPTIONS sip:x SIP/2.0\r\n" + b"X: y\r\n" *
                     5000, b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 100\r\n\r\nabc"):
            c = StreamClient(("127.0.0.1", tcp))
            try:
                c.send(junk)
                c.recv(timeout=0.5)  # an answer or a close are both fine
            except OSError:
                pass
            finally:
                c.close()
        # RFC 5626 keep-alive: a double-CRLF ping gets a CRLF pong; then a normal request works.
        c = StreamClient(("127.0.0.1", tcp))
        try:
            r = c.exchange(b"\r\n\r\n" + build_request("OPTIONS", "sip:127.0.0.1:%d" % tcp, "TCP",
                                                       c.local))
            expect_options_200(r, "TCP after keep-alive ping")
        finally:
            c.close()
        options_alive_udp(udp)
        check(server.alive(), "sipwake died")


def test_ipv6(ctx):
    if not ipv6_loopback_available():
        raise Skip("no IPv6 loopback")
    server, (udp, tcp, tls) = start_server(ctx, host="::1")
    with server:
        check("listening on udp:[::1]:%d" % udp in server.log(), "no IPv6 listening line")
        c = UdpClient(("::1", udp), host="::1")
        try:
            expect_options_200(c.exchange(build_request("OPTIONS", "sip:[::1]:%d" % udp, "UDP",
                                                        c.local)), "IPv6 UDP")
        finally:
            c.close()
        s = StreamClient(("::1", tcp))
        try:
            expect_options_200(s.exchange(build_request("OPTIONS", "sip:[::1]:%d" % tcp, "TCP",
                                                        s.local)), "IPv6 TCP")
        finally:
            s.close()
        s = StreamClient(("::1", tls), insecure_tls_context())
        try:
            expect_options_200(s.exchange(build_request("OPTIONS", "sip:[::1]:%d" % tls, "TLS",
                                                        s.local)), "IPv6 TLS")
        finally:
            s.close()


def test_sigint(ctx):
    server, (udp, _, _) = start_server(ctx)
    options_alive_udp(udp)
    code = server.stop(signal.SIGINT)
    check(code == 0, "exit %s after SIGINT:\n%s" % (code, server.log()))
    check("shutting down" in server.log(), "no shutdown log line")


def test_default_config(ctx):
    """`sipwake` with no options at all: udp+tcp 127.0.0.1:5060 and tls 127.0.0.1:5061."""
    for kind, port in ((socket.SOCK_DGRAM, 5060), (socket.SOCK_STREAM, 5060),
                       (socket.SOCK_STREAM, 5061)):
        try:
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            raise Skip("default port %d is in use on this machine" % port)
    with Sipwake(ctx, []) as server:
        log = server.log()
        for l in ("udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "tls:127.0.0.1:5061"):
            check("listening on " + l in log, "default listener %s missing:\n%s" % (l, log))
        run_sipp(ctx, "options.xml", ("127.0.0.1", 5060), "u1")
        run_sipp(ctx, "options.xml", ("127.0.0.1", 5060), "t1")
        c = StreamClient(("127.0.0.1", 5061), insecure_tls_context())
        try:
            expect_options_200(c.exchange(build_request("OPTIONS", "sip:127.0.0.1:5061", "TLS",
                                                        c.local)), "default TLS")
        finally:
            c.close()
        run_sipp(ctx, "unknown_method.xml", ("127.0.0.1", 5060), "u1")


# ---------------------------------------------------------------------------------------------
# Registrar (issue 3): users, digest authentication, bindings, durability


def digest_param(challenge, name):
    m = re.search(r'(?i)\b%s\s*=\s*("([^"]*)"|[^,\s]+)' % re.escape(name), challenge)
    if not m:
        return None
    return m.group(2) if m.group(2) is not None else m.group(1)


def digest_authorization(challenges, method, uri, user, password, want="SHA-256", nc=1):
    """An Authorization value (RFC 7616, qop=auth) answering the challenge for `want`."""
    import hashlib
    chosen = None
    for c in challenges:
        if (digest_param(c, "algorithm") or "MD5").upper() == want.upper():
            chosen = c
    check(chosen is not None, "no %s challenge in %r" % (want, challenges))
    h = (lambda x: hashlib.sha256(x.encode()).hexdigest()) if want.upper() == "SHA-256" else \
        (lambda x: hashlib.md5(x.encode()).hexdigest())
    realm, nonce = digest_param(chosen, "realm"), digest_param(chosen, "nonce")
    opaque = digest_param(chosen, "opaque")
    cnonce, ncs = uuid.uuid4().hex[:16], "%08x" % nc
    ha1 = h("%s:%s:%s" % (user, realm, password))
    ha2 = h("%s:%s" % (method, uri))
    response = h("%s:%s:%s:%s:auth:%s" % (ha1, nonce, ncs, cnonce, ha2))
    value = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
             'algorithm=%s, qop=auth, nc=%s, cnonce="%s"'
             % (user, realm, nonce, uri, response, want, ncs, cnonce))
    if opaque:
        value += ', opaque="%s"' % opaque
    return value


class Registration:
    """One UA registering an AOR over a client socket, with its own Call-ID and CSeq."""

    def __init__(self, client, port, user, password=None, domain="127.0.0.1", proto="UDP"):
        self.c, self.port, self.user, self.password = client, port, user, password
        self.domain, self.proto = domain, proto
        self.call_id = "%s@it" % uuid.uuid4().hex
        self.tag = uuid.uuid4().hex[:10]
        self.cseq = 0
        self.ruri = "sip:%s:%d" % (domain, port)
        self.contact = "<sip:%s@%s:%d;transport=%s>" % (user, client.local[0], client.local[1],
                                                        proto.lower())

    def request(self, headers, cseq=None):
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        host, port = self.c.local
        lines = ["REGISTER %s SIP/2.0" % self.ruri,
                 "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK%s;rport" % (self.proto, host, port,
                                                                    uuid.uuid4().hex),
                 "Max-Forwards: 70",
                 "From: <sip:%s@%s>;tag=%s" % (self.user, self.domain, self.tag),
                 "To: <sip:%s@%s>" % (self.user, self.domain),
                 "Call-ID: %s" % self.call_id,
                 "CSeq: %d REGISTER" % cseq,
                 # A client that knows SHA-256 (without a User-Agent it gets MD5 only).
                 "User-Agent: sipwake-it"] + list(headers) + ["Content-Length: 0"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, headers=(), cseq=None, password=None, algorithm="SHA-256"):
        """Sends the REGISTER; answers one 401 with credentials. Returns the final response."""
        r = self.c.exchange(self.request(headers, cseq))
        check(r is not None, "no response to REGISTER")
        if r.code != 401 or (self.password is None and password is None):
            return r
        auth = digest_authorization(r.headers.get("www-authenticate", []), "REGISTER", self.ruri,
                                    self.user, password or self.password, algorithm)
        r = self.c.exchange(self.request(list(headers) + ["Authorization: " + auth]))
        check(r is not None, "no response to the authenticated REGISTER")
        return r


def contacts_of(resp):
    out = []
    for v in resp.headers.get("contact", []):
        out += [x.strip() for x in re.split(r",(?=\s*<)", v)]
    return out


def expect_code(resp, code, what):
    check(resp is not None, "%s: no response" % what)
    check(resp.code == code, "%s: got %r, expected %d:\n%s"
          % (what, resp, code, resp.raw.decode("utf-8", "replace")))
    return resp


def user_command(ctx, args, config=None, store="sipwake.db", stdin=b""):
    """`sipwake [--config CONFIG] user ARGS...` in ctx.work: in the store `config` names (Redis
    when it has a [store] url), else in the SQLite file `store`; the CompletedProcess."""
    where = ["--config", config] if config else ["--store", store]
    return subprocess.run([ctx.sipwake] + where + ["user"] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, cwd=ctx.work)


def add_user(ctx, aor, password, store="sipwake.db", config=None):
    p = user_command(ctx, ["add", aor], config, store, password.encode() + b"\n")
    check(p.returncode == 0, "user add %s: exit %d: %s" % (aor, p.returncode, p.stderr.decode()))


def registrar_config(ctx, extra=""):
    """A config file whose digest offers MD5 first: Debian's sipp 3.6 only answers MD5 and only
    looks at the first WWW-Authenticate."""
    path = os.path.join(ctx.work, "registrar.toml")
    with open(path, "w") as f:
        f.write("[server]\nworkers = 2\n\n[auth]\nalgorithms = [\"MD5\", \"SHA-256\"]\n" + extra)
    return path


def run_sipp_as(ctx, scenario, target, transport, user, password):
    """run_sipp with -s/-au/-ap for scenarios using [service] and [authentication]."""
    check(ctx.sipp and os.access(ctx.sipp, os.X_OK), "sipp not found (Debian package sip-tester)")
    name = os.path.splitext(os.path.basename(scenario))[0]
    err_file = os.path.join(ctx.work, "sipp-%s-%s-errors.log" % (name, transport))
    msg_file = os.path.join(ctx.work, "sipp-%s-%s-messages.log" % (name, transport))
    cmd = [ctx.sipp, "%s:%d" % target, "-sf", os.path.join(ctx.scenarios, scenario),
           "-t", transport, "-i", "127.0.0.1", "-m", "1", "-nostdin", "-s", user,
           "-au", user, "-ap", password,
           "-p", str(free_port(socket.SOCK_DGRAM if transport.startswith("u") else
                               socket.SOCK_STREAM)),
           "-timeout", "%ds" % (SIPP_TIMEOUT - 5), "-timeout_error", "-recv_timeout", "10000",
           "-trace_err", "-error_file", err_file, "-trace_msg", "-message_file", msg_file]
    ctx.note("running: " + " ".join(cmd))
    code, out, err = run_cmd(cmd, timeout=SIPP_TIMEOUT, cwd=ctx.work)
    if code != 0:
        details = ""
        for path in (err_file, msg_file):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    details += "\n--- %s ---\n%s" % (os.path.basename(path), f.read()[-4000:])
        raise Fail("sipp %s over %s failed (exit %d):\n%s\n%s%s"
                   % (scenario, transport, code, out[-2000:], err[-2000:], details))


def test_register_auth_udp(ctx):
    """sipp: 401 challenge, authenticated REGISTER -> 200 listing the binding, query lists it."""
    add_user(ctx, "alice@127.0.0.1", "s3cret")
    server, (udp, _, _) = start_server(ctx, ["--config", registrar_config(ctx)])
    with server:
        run_sipp_as(ctx, "register_auth.xml", ("127.0.0.1", udp), "u1", "alice", "s3cret")


def test_register_auth_tcp(ctx):
    add_user(ctx, "alice@127.0.0.1", "s3cret")
    server, (_, tcp, _) = start_server(ctx, ["--config", registrar_config(ctx)])
    with server:
        run_sipp_as(ctx, "register_auth.xml", ("127.0.0.1", tcp), "t1", "alice", "s3cret")
        # And with SHA-256 (the default first choice) from our own client over TCP.
        c = StreamClient(("127.0.0.1", tcp))
        try:
            reg = Registration(c, tcp, "alice", "s3cret", proto="TCP")
            r = expect_code(reg.send(["Contact: " + reg.contact, "Expires: 300"]), 200,
                            "SHA-256 REGISTER over TCP")
            check(any("transport=tcp" in x and "expires=300" in x for x in contacts_of(r)),
                  "TCP binding not listed: %r" % contacts_of(r))
        finally:
            c.close()


def test_register_wrong_password(ctx):
    """Wrong password and unknown user: the same 401; after max_failures, 403 + Retry-After."""
    add_user(ctx, "alice@127.0.0.1", "right")
    config = registrar_config(ctx, "max_failures = 3\nfailure_window = 60\nblock = 60\n")
    server, (udp, _, _) = start_server(ctx, ["--config", config])
    with server:
        c = UdpClient(("127.0.0.1", udp))
        try:
            wrong = Registration(c, udp, "alice", "wrong")
            r = expect_code(wrong.send(["Contact: " + wrong.contact]), 401, "wrong password")
            check(r.headers.get("www-authenticate"), "401 without WWW-Authenticate")
            nobody = Registration(c, udp, "mallory", "whatever")
            r2 = expect_code(nobody.send(["Contact: " + nobody.contact]), 401, "unknown user")
            check(r.reason == r2.reason and len(r.headers["www-authenticate"]) ==
                  len(r2.headers["www-authenticate"]), "unknown user answered differently")
            # Third failure starts the block: from now on 403 with Retry-After, even for the
            # right password.
            wrong.send(["Contact: " + wrong.contact])
            right = Registration(c, udp, "alice", "right")
            r = expect_code(right.send(["Contact: " + right.contact]), 403, "blocked source")
            check("Too Many Failed Attempts" in r.reason, "reason %r" % r.reason)
            check(r.header("retry-after"), "403 without Retry-After")
        finally:
            c.close()


def test_register_refresh_and_remove(ctx):
    """Refresh, CSeq ordering, q, several contacts, removal by expires=0, wildcard rules."""
    add_user(ctx, "bob@127.0.0.1", "pw")
    server, (udp, _, _) = start_server(ctx, ["--config", registrar_config(ctx)])
    with server:
        c = UdpClient(("127.0.0.1", udp))
        try:
            reg = Registration(c, udp, "bob", "pw")
            other = "<sip:bob@192.0.2.9:5070>"
            r = expect_code(reg.send(["Contact: " + reg.contact + ";q=0.5", "Contact: " + other,
                                      "Expires: 120"]), 200, "two contacts")
            listed = contacts_of(r)
            check(len(listed) == 2, "expected 2 bindings, got %r" % listed)
            check("192.0.2.9" in listed[0] and "q=0.5" in listed[1],
                  "bindings not ordered by q: %r" % listed)
            # Refresh one with a new expiry.
            r = expect_code(reg.send(["Contact: " + reg.contact + ";expires=300"]), 200, "refresh")
            mine = [x for x in contacts_of(r) if reg.contact[1:-1] in x]
            check(len(mine) == 1 and "expires=300" in mine[0], "refresh not applied: %r"
                  % contacts_of(r))
            check(len(contacts_of(r)) == 2, "refresh dropped the other binding")
            # Too large an expiry is clipped to max_expires (default 86400).
            r = expect_code(reg.send(["Contact: " + other + ";expires=999999"]), 200, "clip")
            check(any("192.0.2.9" in x and "expires=86400" in x for x in contacts_of(r)),
                  "expiry not clipped: %r" % contacts_of(r))
            # An older CSeq for the same Call-ID must not change anything (§10.3 step 7).
            old = reg.cseq - 3
            r = c.exchange(reg.request(["Contact: " + other + ";expires=0"], cseq=old))
            if r.code == 401:
                auth = digest_authorization(r.headers["www-authenticate"], "REGISTER", reg.ruri,
                                            "bob", "pw")
                r = c.exchange(reg.request(["Contact: " + other + ";expires=0",
                                            "Authorization: " + auth], cseq=old))
            expect_code(r, 400, "out-of-order CSeq")
            # Remove one contact.
            r = expect_code(reg.send(["Contact: " + other + ";expires=0"]), 200, "remove one")
            check(len(contacts_of(r)) == 1, "one binding should be left: %r" % contacts_of(r))
            # Wildcard: only with Expires: 0 and alone.
            expect_code(reg.send(["Contact: *"]), 400, "wildcard without Expires: 0")
            expect_code(reg.send(["Contact: *", "Contact: " + other, "Expires: 0"]), 400,
                        "wildcard with another contact")
            r = expect_code(reg.send(["Contact: *", "Expires: 0"]), 200, "wildcard removal")
            check(contacts_of(r) == [], "bindings left after wildcard: %r" % contacts_of(r))
            r = expect_code(reg.send([]), 200, "query after wildcard")
            check(contacts_of(r) == [], "query lists removed bindings: %r" % contacts_of(r))
        finally:
            c.close()


def test_register_423(ctx):
    """A too-brief expiry gets 423 with Min-Expires (sipp), from a trusted peer (no auth)."""
    config = registrar_config(ctx, "trusted_peers = [\"127.0.0.1/32\"]\n\n[registrar]\n"
                                   "min_expires = 120\n")
    server, (udp, _, _) = start_server(ctx, ["--config", config])
    with server:
        run_sipp(ctx, "register_423.xml", ("127.0.0.1", udp), "u1")


def test_register_restart(ctx):
    """kill -9 right after a 200 OK, restart on the same store: the binding is still there."""
    add_user(ctx, "carol@127.0.0.1", "pw")
    config = registrar_config(ctx)
    server, (udp, tcp, tls) = start_server(ctx, ["--config", config])
    c = UdpClient(("127.0.0.1", udp))
    try:
        reg = Registration(c, udp, "carol", "pw")
        contact = reg.contact
        expect_code(reg.send(["Contact: " + contact, "Expires: 3600"]), 200, "REGISTER")
        server.proc.kill()  # SIGKILL at once: no shutdown path runs
        server.proc.wait(timeout=STOP_TIMEOUT)
        server.exit_code = -9
        server._log.close()
    finally:
        c.close()
    again = Sipwake(ctx, listen_args(udp, tcp, tls) + ["--config", config], name="restarted")
    with again:
        check(re.search(r"loaded 1 bindings", again.log()), "restart did not load the binding:\n%s"
              % again.log())
        c = UdpClient(("127.0.0.1", udp))
        try:
            q = Registration(c, udp, "carol", "pw")
            r = expect_code(q.send([]), 200, "query after restart")
            check(any(contact[1:-1] in x for x in contacts_of(r)),
                  "binding lost across kill -9: %r" % contacts_of(r))
        finally:
            c.close()


def test_user_cli(ctx):
    """`sipwake user ...` against a store, and a running server seeing a new user (SIGHUP)."""
    store = os.path.join(ctx.work, "users.db")
    sw = ctx.sipwake

    def user(*args, password=None):
        p = subprocess.run([sw, "user"] + list(args) + ["--store", store],
                           input=(password + "\n").encode() if password else b"",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    code, out, err = user("add", "dave@Example.COM", password="pw1")
    check(code == 0, "user add: %d %s" % (code, err))
    code, out, err = user("add", "dave@example.com", password="pw2")
    check(code == 1 and "already exists" in err, "duplicate add: %d %r" % (code, err))
    code, out, err = user("add", "erin@example.org", password="pw")
    code, out, err = user("list")
    check(out.split() == ["dave@example.com", "erin@example.org"], "list: %r" % out)
    code, out, err = user("list", "example.org")
    check(out.split() == ["erin@example.org"], "list example.org: %r" % out)
    code, out, err = user("passwd", "dave@example.com", password="pw3")
    check(code == 0, "passwd: %d %s" % (code, err))
    code, out, err = user("passwd", "nobody@example.com", password="x")
    check(code == 1 and "no such user nobody@example.com" in err, "passwd unknown: %r" % err)
    code, out, err = user("del", "alice@example.com")
    check(code == 1 and "no such user alice@example.com" in err, "del unknown: %r" % err)
    code, out, err = user("add", "nodomain", password="x")
    check(code == 2, "bad USER@DOMAIN: exit %d" % code)
    code, out, err = user("add", "frank@example.com")
    check(code == 1 and "password" in err, "empty password: %d %r" % (code, err))
    code, out, err = user("del", "erin@example.org")
    check(code == 0, "del: %d %s" % (code, err))

    # A running server picks up a user added afterwards (SIGHUP; the periodic reload is off).
    config = registrar_config(ctx, "user_reload_interval = 0\n")
    server, (udp, _, _) = start_server(ctx, ["--config", config, "--store", store,
                                             "--domain", "example.com"])
    with server:
        c = UdpClient(("127.0.0.1", udp))
        try:
            reg = Registration(c, udp, "gina", "pw", domain="example.com")
            reg.ruri = "sip:127.0.0.1:%d" % udp
            expect_code(reg.send(["Contact: " + reg.contact]), 401, "user not yet added")
            code, out, err = user("add", "gina@example.com", password="pw")
            check(code == 0, "user add: %s" % err)
            server.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 5
            while "users: reloaded" not in server.log() and time.monotonic() < deadline:
                time.sleep(0.02)  # polling the log, bounded
            expect_code(reg.send(["Contact: " + reg.contact]), 200, "user added at run time")
            reg2 = Registration(c, udp, "gina", "pw", domain="example.org")
            reg2.ruri = reg.ruri
            expect_code(reg2.send(["Contact: " + reg2.contact]), 404, "foreign To domain")
        finally:
            c.close()


def test_check_config_registrar(ctx):
    path = os.path.join(ctx.work, "reg.toml")
    cases = [
        ("[registrar]\nmin_expires = 600\nmax_expires = 60\n",
         "%s:3: [registrar] max_expires: must not be smaller than min_expires (600)"),
        ("[registrar]\ndefault_expires = 10\n",
         "%s:2: [registrar] default_expires: must be from min_expires"),
        ("[auth]\nalgorithms = [\"SHA-512\"]\n",
         "%s:2: [auth] algorithms: unknown algorithm \"SHA-512\""),
        ("[auth]\ntrusted_peers = [\"10.0.0.0/33\"]\n", "%s:2: [auth] trusted_peers:"),
        ("[auth]\nrequire_auth_for_register = \"yes\"\n",
         "%s:2: [auth] require_auth_for_register: expected true or false"),
        ("[store]\nsynchronous = \"always\"\n", "%s:2: [store] synchronous: expected one of"),
        ("[registrar]\nmin_expire = 1\n", "%s:2: [registrar] min_expire: unknown key"),
    ]
    for text, want in cases:
        with open(path, "w") as f:
            f.write(text)
        code, out, err = run_cmd([ctx.sipwake, "check-config", path])
        check(code == 1 and (want % path) in err, "check-config %r: exit %d, %r" % (text, code, err))


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}


def run_module_tests(namespace):
    """main() for another test module: its test_* functions (from `namespace`, its globals())
    replace this module's table; same command line."""
    TESTS.clear()
    TESTS.update({name[len("test_"):]: fn for name, fn in namespace.items()
                  if name.startswith("test_")})
    return main()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sipwake", required=True)
    p.add_argument("--sipp", default=shutil.which("sipp") or "/usr/bin/sipp")
    p.add_argument("--scenarios", default=os.path.join(os.path.dirname(__file__), "scenarios"))
    p.add_argument("--work-dir", default=tempfile.gettempdir())
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("test", choices=sorted(TESTS) + ["list"])
    args = p.parse_args()
    if args.test == "list":
        print("\n".join(sorted(TESTS)))
        return 0
    ctx = Context(args, args.test)
    try:
        TESTS[args.test](ctx)
    except Skip as e:
        print("SKIP %s: %s" % (args.test, e))
        return SKIP
    except Fail as e:
        print("FAIL %s: %s\n(work directory kept: %s)" % (args.test, e, ctx.work))
        return 1
    print("PASS %s" % args.test)
    if not args.keep:
        shutil.rmtree(ctx.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
