#!/usr/bin/env python3
"""Call tests through sipwake's proxy core: two sipp UAs (and a real client, baresip) register
with digest authentication and call each other. Reuses the harness of sipwake_it.py.

    calls_it.py --sipwake build/sipwake --sipp /usr/bin/sipp \
        --scenarios tests/integration/scenarios --work-dir /tmp/it call_udp

Each callee is ONE sipp process that registers and then answers (so over TCP/TLS the INVITE
reaches it on the very connection it registered over, as a phone behind NAT would need). sipp
maps an incoming INVITE to a call by Call-ID, so caller and callees share one Call-ID
(-cid_str); sipwake does not care.

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
from sipwake_it import Fail, Skip, check  # noqa: E402

SIPP_TIMEOUT = 30.0
REGISTER_WAIT = 15.0  # seconds for a callee to show up in the location service
PASSWORD = {"alice": "alice-pw", "bob": "bob-pw"}


def call_config(ctx, algorithms=("MD5", "SHA-256")):
    """MD5 offered first: Debian's sipp 3.6 only does MD5, and only reads the first challenge.
    algorithms=None: the default [auth] settings. SIPWAKE_IT_LOG_LEVEL=debug in the environment
    turns on sipwake's debug log."""
    path = os.path.join(ctx.work, "calls.toml")
    with open(path, "w") as f:
        f.write("[server]\nworkers = 2\nlog_level = \"%s\"\n"
                % os.environ.get("SIPWAKE_IT_LOG_LEVEL", "info"))
        if algorithms is not None:
            f.write("\n[auth]\nalgorithms = [%s]\n" % ", ".join('"%s"' % a for a in algorithms))
    return path


def add_users(ctx, config=None):
    """alice and bob @127.0.0.1, in the store of `config` (else sipwake.db)."""
    for user, pw in PASSWORD.items():
        it.add_user(ctx, "%s@127.0.0.1" % user, pw, config=config)


class Sipp:
    """One sipp process in the background; wait() checks it exited 0."""

    def __init__(self, ctx, name, scenario, target, transport, service, user, cid, keys=(),
                 extra=()):
        self.ctx, self.name = ctx, name
        self.err_file = os.path.join(ctx.work, "sipp-%s-errors.log" % name)
        self.msg_file = os.path.join(ctx.work, "sipp-%s-messages.log" % name)
        self.out_file = os.path.join(ctx.work, "sipp-%s.out" % name)
        kind = socket.SOCK_DGRAM if transport.startswith("u") else socket.SOCK_STREAM
        self.port = it.free_port(kind)
        cmd = [ctx.sipp, "%s:%d" % target, "-sf", os.path.join(ctx.scenarios, scenario),
               "-t", transport, "-i", "127.0.0.1", "-p", str(self.port), "-m", "1", "-nostdin",
               "-s", service, "-au", user, "-ap", PASSWORD[user], "-cid_str", cid,
               "-timeout", "%ds" % (SIPP_TIMEOUT - 5), "-timeout_error",
               "-recv_timeout", "20000", "-trace_err", "-error_file", self.err_file,
               "-trace_msg", "-message_file", self.msg_file]
        for k, v in keys:
            cmd += ["-key", k, str(v)]
        cmd += list(extra)
        ctx.note("running: " + " ".join(cmd))
        self.out = open(self.out_file, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=ctx.work)

    def messages(self):
        if not os.path.exists(self.msg_file):
            return ""
        with open(self.msg_file, errors="replace") as f:
            return f.read()

    def wait(self, timeout=SIPP_TIMEOUT):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = "timeout"
        self.out.close()
        if code != 0:
            details = ""
            for path in (self.out_file, self.err_file, self.msg_file):
                if os.path.exists(path):
                    with open(path, errors="replace") as f:
                        details += "\n--- %s ---\n%s" % (os.path.basename(path), f.read()[-4000:])
            raise Fail("sipp %s failed (exit %s):%s" % (self.name, code, details))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.out.closed:
            self.out.close()


def wait_bindings(udp_port, user, count):
    """Polls the registrar (an authenticated REGISTER query) until `user` has `count` bindings."""
    deadline = time.monotonic() + REGISTER_WAIT
    seen = []
    while time.monotonic() < deadline:
        c = it.UdpClient(("127.0.0.1", udp_port))
        try:
            r = it.Registration(c, udp_port, user, PASSWORD[user]).send([], algorithm="MD5")
            seen = it.contacts_of(r) if r is not None and r.code == 200 else []
        finally:
            c.close()
        if len(seen) >= count:
            return seen
        time.sleep(0.05)  # polling an observable state, bounded by the deadline
    raise Fail("%s has %d binding(s) after %.0fs, expected %d: %r"
               % (user, len(seen), REGISTER_WAIT, count, seen))


def run_call(ctx, callees, caller_scenario, transport, target, udp_port, ruri_host,
             stock_auth=False):
    """Starts the callees (name, scenario), waits for their bindings, runs the caller, whose
    Request-URI is sip:bob@<ruri_host>. stock_auth: the caller's digest uri is sipp's own
    (sip:<server ip>:<server port>), else the Request-URI. Returns the Sipp objects (caller
    last)."""
    cid = "call-%s@it" % uuid.uuid4().hex
    procs = []
    try:
        for i, (name, scenario) in enumerate(callees):
            procs.append(Sipp(ctx, name, scenario, target, transport, "bob", "bob", cid,
                              keys=[("reg1", 10 * i + 1), ("reg2", 10 * i + 2)]))
            wait_bindings(udp_port, "bob", i + 1)
        caller = Sipp(ctx, "caller", caller_scenario, target, transport, "bob", "alice", cid,
                      keys=[("caller", "alice"), ("ruri_host", ruri_host)],
                      extra=[] if stock_auth else ["-auth_uri", "bob@" + ruri_host])
        procs.append(caller)
        caller.wait()
        for p in procs[:-1]:
            p.wait()
        return procs
    finally:
        for p in procs:
            p.kill()


def stat_lines(server):
    return server.log()


def test_call_udp(ctx):
    """A calls B over UDP: INVITE/407/INVITE/100/180/200 (Record-Route)/ACK/BYE."""
    add_users(ctx)
    server, (udp, _, _) = it.start_server(ctx, ["--config", call_config(ctx)])
    with server:
        procs = run_call(ctx, [("callee", "uas_register_answer.xml")], "uac_call.xml", "u1",
                         ("127.0.0.1", udp), udp, "127.0.0.1:%d" % udp)
        msgs = procs[-1].messages()
        check(re.search(r"(?im)^Record-Route:.*127\.0\.0\.1:%d;lr" % udp, msgs),
              "caller's 200 lacks our UDP Record-Route:\n" + msgs[-3000:])


def test_call_tls(ctx):
    """The same call over TLS (sipp speaks TCP to a local TCP-to-TLS relay)."""
    add_users(ctx)
    server, (udp, _, tls) = it.start_server(ctx, ["--config", call_config(ctx)])
    with server:
        bridge = it.TlsBridge(("127.0.0.1", tls))
        try:
            procs = run_call(ctx, [("callee", "uas_register_answer.xml")], "uac_call.xml", "t1",
                             ("127.0.0.1", bridge.port), udp, "127.0.0.1:%d" % tls)
        finally:
            bridge.close()
        msgs = procs[-1].messages()
        check(re.search(r"(?im)^Record-Route:.*127\.0\.0\.1:%d;transport=tls;lr" % tls, msgs),
              "caller's 200 lacks our TLS Record-Route:\n" + msgs[-3000:])


def test_call_cancel(ctx):
    """A hangs up while B rings: CANCEL -> 200, B gets CANCEL, A gets 487."""
    add_users(ctx)
    server, (udp, _, _) = it.start_server(ctx, ["--config", call_config(ctx)])
    with server:
        procs = run_call(ctx, [("callee", "uas_register_ring_cancel.xml")], "uac_cancel.xml",
                         "u1", ("127.0.0.1", udp), udp, "127.0.0.1")
        check("487 Request Terminated" in procs[-1].messages(), "caller saw no 487")


def test_call_fork(ctx):
    """B has two devices: both ring, one answers, the other is cancelled."""
    add_users(ctx)
    server, (udp, _, _) = it.start_server(ctx, ["--config", call_config(ctx)])
    with server:
        procs = run_call(ctx, [("ringer", "uas_register_ring_cancel.xml"),
                               ("answerer", "uas_register_answer.xml")], "uac_call.xml", "u1",
                         ("127.0.0.1", udp), udp, "127.0.0.1:%d" % udp)
        ringer = procs[0].messages()
        check("Call completed elsewhere" in ringer, "the ringing device's CANCEL lacks the "
              "RFC 3326 Reason:\n" + ringer[-3000:])


class RawUa:
    """A UA on a raw UDP socket or TCP connection to sipwake that answers requests itself (sipp
    cannot mix in a dead TCP binding, nor send in-dialog requests to a URI of its choice)."""

    def __init__(self, server_port, proto="UDP", server_host="127.0.0.1"):
        self.proto = proto
        server = (server_host, server_port)
        self.c = it.UdpClient(server) if proto == "UDP" else it.StreamClient(server)
        self.local = self.c.local

    def _next_frame(self, timeout):
        if self.proto == "UDP":
            import select
            r, _, _ = select.select([self.c.sock], [], [], timeout)
            return self.c.sock.recv(65535) if r else None
        deadline = time.monotonic() + timeout
        while True:
            self.c.buf = self.c.buf.lstrip(b"\r\n")
            end = self.c.buf.find(b"\r\n\r\n")
            if end >= 0:
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", self.c.buf[:end])
                total = end + 4 + (int(m.group(1)) if m else 0)
                if len(self.c.buf) >= total:
                    data, self.c.buf = self.c.buf[:total], self.c.buf[total:]
                    return data
            if not self.c._read_more(deadline):
                return None

    def recv_message(self, timeout):
        """Next SIP message (start line, {lower-case name: [values]}, raw bytes) or None."""
        data = self._next_frame(timeout)
        if data is None:
            return None
        head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
        headers = {}
        for line in head[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers.setdefault(name.strip().lower(), []).append(value.strip())
        return head[0], headers, data

    def wait_for(self, what, timeout):
        """Skips messages until one whose start line contains `what`; Fail after `timeout`."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            remaining = deadline - time.monotonic()
            m = self.recv_message(remaining) if remaining > 0 else None
            if m is None:
                raise Fail("no %r within %.1fs (saw %r)" % (what, timeout, seen))
            seen.append(m[0])
            if what in m[0]:
                return m

    def reply(self, request, code, reason, to_tag="callee", extra=()):
        _, h, _ = request
        to = h["to"][0] if "tag=" in h["to"][0] else "%s;tag=%s" % (h["to"][0], to_tag)
        lines = ["SIP/2.0 %d %s" % (code, reason)] + ["Via: " + v for v in h["via"]] + [
            "From: " + h["from"][0], "To: " + to, "Call-ID: " + h["call-id"][0],
            "CSeq: " + h["cseq"][0]] + list(extra) + ["Content-Length: 0"]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        if self.proto != "UDP":
            return self.c.send(data)
        # RFC 3261 §18.2.2: to the top Via's sent-by (its received= and rport= when present),
        # which is another node than the one this UA registered at when the request came that way.
        via = h["via"][0]
        m = re.match(r"SIP/2\.0/UDP\s+([^;:\s]+)(?::(\d+))?", via, re.I)
        host, port = m.group(1), int(m.group(2) or 5060)
        received = re.search(r";received=([^;\s]+)", via)
        rport = re.search(r";rport=(\d+)", via)
        self.c.sock.sendto(data, (received.group(1) if received else host,
                                  int(rport.group(1)) if rport else port))


def call_with_dead_tcp_binding(ctx, close_before_invite, finish):
    """bob has a UDP binding (answered by the test) and a TCP binding whose device dies: it
    closes its connection before the call (`close_before_invite`) or right after its INVITE
    arrived, without any response (the closed flow fails that branch, §8.1.3.1). alice (UDP) calls bob
    with digest auth; once the UDP branch has its INVITE, `finish(alice, ringer, forwarded,
    cancel_request)` plays the rest."""
    add_users(ctx)
    server, (udp, tcp, _) = it.start_server(ctx, ["--config", call_config(ctx, ["MD5"])])
    with server:
        ringer = RawUa(udp)
        gone = it.StreamClient(("127.0.0.1", tcp))
        for client, proto in ((ringer.c, "UDP"), (gone, "TCP")):
            reg = it.Registration(client, udp, "bob", PASSWORD["bob"], proto=proto)
            it.expect_code(reg.send(["Contact: " + reg.contact], algorithm="MD5"), 200,
                           "bob's %s REGISTER" % proto)
        wait_bindings(udp, "bob", 2)
        if close_before_invite:
            gone.close()

        alice = RawUa(udp)
        ruri = "sip:bob@127.0.0.1:%d" % udp
        host, port = alice.local
        call_id, tag = "%s@it" % uuid.uuid4().hex, uuid.uuid4().hex[:10]
        branch = "z9hG4bK" + uuid.uuid4().hex

        def request(method, cseq, extra=(), to="<sip:bob@127.0.0.1>", branch_of=None):
            lines = ["%s %s SIP/2.0" % (method, ruri),
                     "Via: SIP/2.0/UDP %s:%d;branch=%s%d" % (host, port, branch, branch_of or cseq),
                     "Max-Forwards: 70", "From: <sip:alice@127.0.0.1>;tag=" + tag, "To: " + to,
                     "Call-ID: " + call_id, "CSeq: %d %s" % (cseq, method)] + list(extra)
            return ("\r\n".join(lines + ["Content-Length: 0"]) + "\r\n\r\n").encode()

        contact = "Contact: <sip:alice@%s:%d>" % (host, port)
        alice.c.send(request("INVITE", 1, [contact]))
        challenge = alice.wait_for("407", 5)
        alice.c.send(request("ACK", 1, to=challenge[1]["to"][0]))
        auth = it.digest_authorization(challenge[1]["proxy-authenticate"], "INVITE", ruri,
                                       "alice", PASSWORD["alice"], "MD5")
        alice.c.send(request("INVITE", 2, [contact, "Proxy-Authorization: " + auth]))
        forwarded = ringer.wait_for("INVITE", 5)
        if not close_before_invite:
            deadline = time.monotonic() + 5
            while b"INVITE " not in gone.buf and gone._read_more(deadline):
                pass
            check(b"INVITE " in gone.buf, "the INVITE never reached the TCP binding")
            gone.close()
        finish(alice, ringer, forwarded, request("CANCEL", 2))
        check(server.alive(), "sipwake died:\n" + server.log()[-3000:])


def test_call_cancel_dead_flow(ctx):
    """The TCP device dies right after its INVITE arrived; the UDP one rings. alice's CANCEL
    gets 200 at once and her INVITE a 487 as soon as the ringing branch ends: the silent branch
    must not hold the 487 until its Timer B (32 s)."""
    def finish(alice, ringer, forwarded, cancel_request):
        ringer.reply(forwarded, 180, "Ringing")
        alice.wait_for("180", 5)
        alice.c.send(cancel_request)
        ok = alice.wait_for("SIP/2.0", 2)  # 200 for the CANCEL
        check(ok[0].startswith("SIP/2.0 200") and "CANCEL" in ok[1]["cseq"][0],
              "CANCEL not answered 200 at once: %r" % (ok[0],))
        cancel = ringer.wait_for("CANCEL", 5)
        ringer.reply(cancel, 200, "OK")
        ringer.reply(forwarded, 487, "Request Terminated")
        started = time.monotonic()
        alice.wait_for("487", 5)  # Timer B would be 32 s
        ctx.note("487 %.2fs after the ringing branch ended" % (time.monotonic() - started))
    call_with_dead_tcp_binding(ctx, False, finish)


def test_call_closed_flow_busy(ctx):
    """The TCP device closed its connection before the call: that branch fails at once
    (connection refused: a transport error, treated as 503 per §8.1.3.1), so when the UDP
    device answers 486 alice gets the 486 at once (not after Timer B)."""
    def finish(alice, ringer, forwarded, _):
        ringer.reply(forwarded, 486, "Busy Here")
        alice.wait_for("SIP/2.0 486", 5)  # after Timer B (32 s) if that branch hung on
    call_with_dead_tcp_binding(ctx, True, finish)


def test_call_dead_flow_busy(ctx):
    """The TCP device closes its connection right AFTER its INVITE arrived (no response on it).
    Closing the flow is a transport error for that branch's client transaction (§8.1.3.1,
    §17.1.4: 503 to the proxy), so when the UDP device answers 486 alice gets the 486 within a
    few seconds instead of after that branch's Timer B (32 s)."""
    def finish(alice, ringer, forwarded, _):
        ringer.reply(forwarded, 486, "Busy Here")
        started = time.monotonic()
        final = alice.wait_for("SIP/2.0 4", 5)  # Timer B would be 32 s
        check(final[0].startswith("SIP/2.0 486"), "expected the 486, got %r" % (final[0],))
        ctx.note("486 %.2fs after the UDP branch answered" % (time.monotonic() - started))
    call_with_dead_tcp_binding(ctx, False, finish)


class Baresip:
    """A headless baresip (Debian package baresip-core) with one account, driven and observed
    through its ctrl_tcp module (netstring-framed JSON commands and events)."""

    def __init__(self, ctx, name, user, server_port, template="baresip", extra_values=()):
        """`template`: the folder (next to this file) of config.in / accounts.in; `extra_values`:
        more @VARS@ for them (for "baresip": TRANSPORT "tls" and TLS_CONFIG "sip_cafile PATH"
        register and call over TLS). SIP messages are traced to the log (-s)."""
        self.ctx, self.name = ctx, name
        self.dir = os.path.join(ctx.work, "baresip-" + name)
        os.makedirs(self.dir, exist_ok=True)
        self.ctrl_port = it.free_port()
        rtp = it.free_port(socket.SOCK_DGRAM) & ~1
        values = {"SIP_PORT": str(self.sip_port_pair()),
                  "CTRL_PORT": str(self.ctrl_port), "WORK": self.dir, "NAME": name,
                  "RTP_MIN": str(rtp), "RTP_MAX": str(rtp + 10), "USER": user,
                  "PASSWORD": PASSWORD[user], "SERVER_PORT": str(server_port),
                  "TRANSPORT": "udp", "TLS_CONFIG": ""}
        values.update(extra_values)
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), template)
        for f in ("config", "accounts"):
            with open(os.path.join(src, f + ".in")) as i:
                text = i.read()
            for k, v in values.items():
                text = text.replace("@%s@" % k, v)
            with open(os.path.join(self.dir, f), "w") as o:
                o.write(text)
        import wave
        with wave.open(os.path.join(self.dir, "source.wav"), "wb") as w:  # 2 s of silence
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\0\0" * 16000)
        self.log_path = os.path.join(ctx.work, "baresip-%s.log" % name)
        self.log_file = open(self.log_path, "wb")
        cmd = [self.binary(), "-f", self.dir, "-t", "100", "-s"]
        ctx.note("running: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir)
        self.sock = None
        self.buf = b""
        self.events = []

    @staticmethod
    def binary():
        return shutil.which("baresip")

    @staticmethod
    def sip_port_pair():
        """A port P free for UDP and TCP with P+1 free for TCP: baresip listens TLS on P+1."""
        for _ in range(50):
            port = it.free_port(socket.SOCK_DGRAM)
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
        raise Fail("no free port pair for baresip")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def connect(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail("baresip %s exited with %d:\n%s"
                           % (self.name, self.proc.returncode, self.log()))
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
                return
            except OSError:
                time.sleep(0.05)  # bounded wait for the control port to open
        raise Fail("baresip %s: control port never opened:\n%s" % (self.name, self.log()))

    def command(self, command, params=""):
        import json
        data = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(b"%d:%s," % (len(data), data))

    def wait_event(self, kind, timeout=15.0):
        """Waits for a ctrl_tcp event of type `kind` (e.g. CALL_ESTABLISHED); returns it."""
        import json
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e.get("type") == kind:
                    self.events.remove(e)
                    return e
            colon = self.buf.find(b":")
            if colon > 0:
                n = int(self.buf[:colon])
                if len(self.buf) >= colon + 1 + n + 1:
                    msg = self.buf[colon + 1:colon + 1 + n]
                    self.buf = self.buf[colon + 2 + n:]
                    obj = json.loads(msg.decode("utf-8", "replace"))
                    if obj.get("event"):
                        self.events.append(obj)
                    continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Fail("baresip %s: no %s event within %.0fs (events: %r):\n%s"
                           % (self.name, kind, timeout, self.events, self.log()[-3000:]))
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise Fail("baresip %s closed its control connection:\n%s"
                           % (self.name, self.log()[-3000:]))
            self.buf += chunk

    def stop(self):
        if self.sock:
            try:
                self.command("quit")
            except OSError:
                pass
            self.sock.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.log_file.close()


def baresip_call(ctx, server, udp, server_port, dial, extra_values=()):
    """Two baresip (alice, bob) register at sipwake's `server_port`; alice dials `dial`, bob
    answers automatically, alice hangs up. Returns (alice, bob, {user: contacts registered})."""
    bob = Baresip(ctx, "bob", "bob", server_port, extra_values=extra_values)
    alice = Baresip(ctx, "alice", "alice", server_port, extra_values=extra_values)
    try:
        bob.connect()
        alice.connect()
        # Registration may finish before the control connection exists: ask the registrar.
        contacts = {user: wait_bindings(udp, user, 1) for user in ("bob", "alice")}
        alice.command("dial", dial)
        alice.wait_event("CALL_ESTABLISHED")
        bob.wait_event("CALL_ESTABLISHED")
        alice.command("hangup")
        bob.wait_event("CALL_CLOSED")
    finally:
        alice.stop()
        bob.stop()
    check(server.alive(), "sipwake died:\n" + server.log()[-3000:])
    return alice, bob, contacts


def test_call_baresip(ctx):
    """Two real clients (baresip) register with digest auth and call each other through
    sipwake: alice dials bob, bob answers automatically, alice hangs up."""
    if Baresip.binary() is None:
        raise Skip("baresip not installed (Debian package baresip-core)")
    add_users(ctx)
    # The default [auth]: baresip 1.0 (libre) fails on any SHA-256 challenge and gets MD5 alone.
    server, (udp, _, _) = it.start_server(ctx, ["--config", call_config(ctx, None)])
    with server:
        baresip_call(ctx, server, udp, udp, "sip:bob@127.0.0.1:%d" % udp)


def make_test_pki(ctx):
    """A throw-away CA and a certificate for 127.0.0.1/localhost signed by it (openssl CLI).
    Returns (ca.pem, server.pem, server.key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise Skip("openssl command not installed")
    d = os.path.join(ctx.work, "pki")
    os.makedirs(d, exist_ok=True)
    ca, ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    crt, key, csr = (os.path.join(d, n) for n in ("server.pem", "server.key", "server.csr"))
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    for cmd in ([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=sipwake test CA", "-keyout", ca_key, "-out", ca],
                [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                 "-keyout", key, "-out", csr],
                [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt]):
        code, out, err = it.run_cmd(cmd, cwd=d)
        check(code == 0, "%s failed: %s%s" % (" ".join(cmd), out, err))
    return ca, crt, key


def sip_trace(log):
    """The SIP messages of a baresip -s trace as (transport, from, to, message), each message
    from its start line to the blank line after the headers."""
    return re.findall(r"(?ms)^(UDP|TCP|TLS) (\S+) -> (\S+)\r?\n"
                      r"((?:[A-Z]+ sips?:\S+ SIP/2\.0|SIP/2\.0 \d{3})\b.*?)(?=^\s*$)", log)


def test_call_baresip_tls(ctx):
    """test_call_baresip over TLS: both baresip register over transport=tls to sipwake's TLS
    listener, whose certificate is signed by a test CA that baresip is given as sip_cafile;
    alice dials bob, bob answers, alice hangs up. The clients' SIP traces show the INVITE, its
    200 (with sipwake's TLS Record-Route), the ACK and the BYE coming through sipwake over TLS."""
    if Baresip.binary() is None:
        raise Skip("baresip not installed (Debian package baresip-core)")
    ca, crt, key = make_test_pki(ctx)
    add_users(ctx)
    config = call_config(ctx, None)
    with open(config, "a") as f:
        f.write('\n[tls]\ncertificate = "%s"\nprivate_key = "%s"\n' % (crt, key))
    server, (udp, _, tls) = it.start_server(ctx, ["--config", config])
    tls_values = {"TRANSPORT": "tls", "TLS_CONFIG": "sip_cafile\t\t" + ca}
    with server:
        alice, bob, contacts = baresip_call(ctx, server, udp, tls,
                                            "sip:bob@127.0.0.1:%d;transport=tls" % tls, tls_values)
    for user, registered in contacts.items():
        check(all("transport=tls" in c.lower() for c in registered),
              "%s's binding is not over TLS: %r" % (user, registered))
    # Received from sipwake's TLS listener: by bob the INVITE, ACK and BYE (sipwake's TLS Via on
    # top); by alice the INVITE's 200. The INVITE and its 200 carry sipwake's TLS Record-Route.
    sipwake = "127.0.0.1:%d" % tls
    rr = re.compile(r"(?im)^Record-Route:[^\r\n]*127\.0\.0\.1:%d;transport=tls;lr" % tls)
    via = re.compile(r"(?im)^Via: SIP/2\.0/TLS 127\.0\.0\.1:%d;" % tls)
    invite_200 = re.compile(r"(?ms)\ASIP/2\.0 200 .*^CSeq:\s*\d+ INVITE")
    traces = {"alice": sip_trace(alice.log()), "bob": sip_trace(bob.log())}
    for who, what, patterns in (("bob", r"INVITE sip:", (via, rr)),
                                ("alice", invite_200, (rr,)),
                                ("bob", r"ACK sip:", (via,)), ("bob", r"BYE sip:", (via,))):
        msgs = [m for proto, src, _, m in traces[who]
                if proto == "TLS" and src == sipwake and re.match(what, m)]
        check(any(all(p.search(m) for p in patterns) for m in msgs),
              "%s's SIP trace has no %s from sipwake over TLS with %s (%d without):\n%s"
              % (who, getattr(what, "pattern", what), " and ".join(p.pattern for p in patterns),
                 len(msgs), ("\n\n".join(msgs) or (alice if who == "alice" else bob).log())
                 [-3000:]))


def test_user_import(ctx):
    """`sipwake user import`: a bad line or an existing user fails the whole file naming
    FILE:LINE and imports nothing; a good file (comments, blank lines) imports every user, who
    can then register; --replace changes existing passwords."""
    def sipwake_user(*args, stdin=None):
        p = subprocess.run([ctx.sipwake, "user"] + list(args) + ["--store", "sipwake.db"],
                           input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30, cwd=ctx.work)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def listed():
        code, out, err = sipwake_user("list")
        check(code == 0, "user list: exit %d: %s" % (code, err))
        return out.split()

    path = os.path.join(ctx.work, "users.txt")
    with open(path, "w") as f:
        f.write("# test users\nalice@127.0.0.1 alice-pw\n\n  bob@127.0.0.1\tbob-pw  \n"
                "carol@127.0.0.1\n")
    code, _, err = sipwake_user("import", path)
    check(code == 1 and "%s:5: expected \"USER@DOMAIN PASSWORD\", got 1 field" % path in err,
          "bad line 5: exit %d, stderr %r" % (code, err))
    check(listed() == [], "a failed import added users: %r" % listed())

    it.add_user(ctx, "bob@127.0.0.1", "old-pw")
    with open(path, "w") as f:
        f.write("# test users\nalice@127.0.0.1 alice-pw\n\n  bob@127.0.0.1\tbob-pw  \n")
    code, _, err = sipwake_user("import", path)
    check(code == 1 and "%s:4: user bob@127.0.0.1 already exists" % path in err,
          "existing user on line 4: exit %d, stderr %r" % (code, err))
    check(listed() == ["bob@127.0.0.1"], "a failed import added users: %r" % listed())

    with open(path, "rb") as f:
        code, out, err = sipwake_user("import", "--replace", "-", stdin=f.read())
    check(code == 0 and "2 user(s) imported from stdin" in out,
          "import --replace from stdin: exit %d, %r %r" % (code, out, err))
    check(listed() == ["alice@127.0.0.1", "bob@127.0.0.1"], "after import: %r" % listed())

    server, (udp, _, _) = it.start_server(ctx, ["--config", call_config(ctx, ["MD5"])])
    with server:
        for user in ("alice", "bob"):  # the imported (and replaced) passwords work
            c = it.UdpClient(("127.0.0.1", udp))
            try:
                reg = it.Registration(c, udp, user, PASSWORD[user])
                it.expect_code(reg.send(["Contact: " + reg.contact], algorithm="MD5"), 200,
                               "%s's REGISTER with the imported password" % user)
            finally:
                c.close()


if __name__ == "__main__":
    sys.exit(it.run_module_tests(globals()))
