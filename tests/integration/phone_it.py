#!/usr/bin/env python3
"""Tests of tools/sipwake-phone (the simulated mobile app) against the real sipwake binary,
reusing the harness of sipwake_it.py.

    phone_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --phone tools/sipwake-phone/sipwake-phone --work-dir /tmp/it phone_register_dialects

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import argparse
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
from sipwake_it import Fail, Skip, check  # noqa: E402

PHONE_TIMEOUT = 20  # --timeout given to each phone run (seconds)
DIALECTS = ("rfc8599", "abto", "pjsip", "linphone")
KEY_ID, TEAM_ID, BUNDLE = "ABCDE12345", "TEAM123456", "com.example.phone"
PROJECT = "sipwake-phone-demo"  # FCM project id (phone_wake_fcm)


class Ctx(it.Context):
    def __init__(self, args, test):
        args.sipp, args.scenarios = None, "."
        super().__init__(args, test)
        self.fakepns = os.path.abspath(args.fakepns) if args.fakepns else None
        self.phone = os.path.abspath(args.phone)
        self.probe = os.path.abspath(args.probe) if args.probe else None


def read_events(path):
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


def names(events):
    return [e["event"] for e in events]


class PhoneProc:
    """One sipwake-phone process; always reaped."""

    def __init__(self, ctx, name, args):
        self.events = os.path.join(ctx.work, name + ".events")
        self.log_path = os.path.join(ctx.work, name + ".log")
        cmd = [sys.executable, ctx.phone, "--events", self.events, "--verbose",
               "--timeout", str(PHONE_TIMEOUT)] + list(args)
        ctx.note("running: " + " ".join(cmd))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=ctx.work)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait(self, timeout=PHONE_TIMEOUT + 10):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise Fail("sipwake-phone did not exit within %ss:\n%s" % (timeout, self.log()))
        finally:
            self._log.close()

    def wait_event(self, name, timeout=PHONE_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            evs = read_events(self.events)
            if name in names(evs):
                return [e for e in evs if e["event"] == name][0]
            if self.proc.poll() is not None:
                raise Fail("phone exited %d before %s:\n%s" % (self.proc.returncode, name,
                                                               self.log()))
            time.sleep(0.02)  # polling the events file, bounded by the deadline
        raise Fail("no %s event within %ss:\n%s" % (name, timeout, self.log()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def server_config(ctx, algorithms, extra=""):
    """algorithms None or empty: the default [auth] algorithms."""
    path = os.path.join(ctx.work, "phone.toml")
    with open(path, "w") as f:
        f.write("[server]\nworkers = 2\n\n[auth]\n")
        if algorithms:
            f.write("algorithms = [%s]\n" % ", ".join('"%s"' % a for a in algorithms))
        f.write(extra)
    return path


# ---------------------------------------------------------------------------------------------
# A caller speaking raw SIP over UDP (INVITE with proxy authentication, ACK, BYE).


class Caller:
    def __init__(self, ctx, udp_port, user, password, callee_aor):
        self.c = it.UdpClient(("127.0.0.1", udp_port))
        self.user, self.password, self.callee = user, password, callee_aor
        self.call_id = "%s@caller" % uuid.uuid4().hex
        self.tag = uuid.uuid4().hex[:8]
        self.ruri = "sip:%s" % callee_aor
        self.branch = None
        self.cseq = 1

    def request(self, method, ruri, cseq, extra=(), to_tag=None, branch=None, body="",
                content_type="application/sdp"):
        host, port = self.c.local
        self.last_branch = branch or "z9hG4bK" + uuid.uuid4().hex
        lines = ["%s %s SIP/2.0" % (method, ruri),
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (host, port, self.last_branch),
                 "Max-Forwards: 70",
                 "From: <sip:%s@127.0.0.1>;tag=%s" % (self.user, self.tag),
                 "To: <sip:%s>%s" % (self.callee, ";tag=" + to_tag if to_tag else ""),
                 "Call-ID: " + self.call_id, "CSeq: %d %s" % (cseq, method),
                 "Contact: <sip:%s@%s:%d>" % (self.user, host, port)] + list(extra)
        if body:
            lines.append("Content-Type: " + content_type)
        lines.append("Content-Length: %d" % len(body.encode()))
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def recv_any(self, timeout):
        r, _, _ = select.select([self.c.sock], [], [], timeout)
        if not r:
            return None
        data, _ = self.c.sock.recvfrom(65535)
        return it.Response(data)

    def invite(self, timeout=25, on_trying=None):
        """INVITE (answering 407 once); returns the final response (provisionals collected)."""
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio 30000 RTP/AVP 0\r\n")
        extra = []
        self.provisional, self.other = [], []
        for attempt in range(2):
            self.c.send(self.request("INVITE", self.ruri, self.cseq, extra, body=sdp))
            self.invite_branch = self.last_branch
            deadline = time.monotonic() + timeout
            final = None
            while final is None:
                left = deadline - time.monotonic()
                check(left > 0, "no final response to INVITE within %ss" % timeout)
                r = self.recv_any(left)
                check(r is not None, "no final response to INVITE within %ss" % timeout)
                if not (r.header("cseq") or "").endswith("INVITE"):
                    self.other.append(r)  # e.g. the 200 to our CANCEL
                elif r.code < 200:
                    self.provisional.append(r.code)
                    if on_trying and attempt == 1:  # the authenticated INVITE
                        on_trying(self)
                        on_trying = None
                else:
                    final = r
            if final.code == 407 and attempt == 0:
                self.ack_non2xx(final)
                auth = it.digest_authorization(final.headers.get("proxy-authenticate", []),
                                               "INVITE", self.ruri, self.user, self.password,
                                               want="MD5")
                extra = ["Proxy-Authorization: " + auth]
                self.cseq += 1
                continue
            return final
        return final

    def cancel(self):
        """CANCEL of the pending INVITE: same Request-URI, Call-ID, CSeq number and branch."""
        self.c.send(self.request("CANCEL", self.ruri, self.cseq, (), branch=self.invite_branch))

    def ack_non2xx(self, resp):
        to_tag = re.search(r";tag=([^;>\s]+)", resp.header("to") or "")
        self.c.send(self.request("ACK", self.ruri, self.cseq, (), to_tag.group(1) if to_tag
                                 else None, branch=self.invite_branch))

    def ack(self, ok):
        """ACK for the 2xx `ok`; returns the dialog's (remote target, Route headers, To-tag)."""
        to_tag = re.search(r";tag=([^;>\s]+)", ok.header("to")).group(1)
        target = re.search(r"<([^>]+)>", ok.header("contact")).group(1)
        # The UAC's route set is the Record-Route list reversed (RFC 3261 §12.1.2).
        rr = [x.strip() for v in ok.headers.get("record-route", []) for x in v.split(",")]
        route = ["Route: " + ", ".join(reversed(rr))] if rr else []
        self.c.send(self.request("ACK", target, self.cseq, route, to_tag))
        return target, route, to_tag

    def ack_and_bye(self, ok, after_ack=None):
        """ACK for the 2xx `ok`, then BYE; `after_ack` (optional) runs between them, e.g. to
        wait until the ACK reached the callee through a PBX whose processes may reorder them."""
        target, route, to_tag = self.ack(ok)
        if after_ack is not None:
            after_ack()
        self.cseq += 1
        bye = self.request("BYE", target, self.cseq, route, to_tag)
        r = self.c.exchange(bye, timeout=10)
        return r

    def answer_request(self, method, timeout=10, code=200, reason="OK"):
        """Waits (bounded) for a request `method` (e.g. the callee's BYE), skipping anything
        else, and answers it `code`; returns its start line and headers ({lower-case name:
        [values]})."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            ready = select.select([self.c.sock], [], [], max(0.0, left))[0] if left > 0 else []
            check(ready, "no %s within %ss (saw %r)" % (method, timeout, seen))
            data, _ = self.c.sock.recvfrom(65535)
            head = data.decode("utf-8", "replace").split("\r\n\r\n", 1)[0].split("\r\n")
            seen.append(head[0])
            if not head[0].startswith(method + " "):
                continue
            h = {}
            for line in head[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    h.setdefault(name.strip().lower(), []).append(value.strip())
            lines = (["SIP/2.0 %d %s" % (code, reason)] + ["Via: " + v for v in h.get("via", [])]
                     + ["%s: %s" % (n, h[n][0]) for n in ("from", "to", "call-id", "cseq")]
                     + ["Content-Length: 0"])
            self.c.send(("\r\n".join(lines) + "\r\n\r\n").encode())
            return head[0], h

    def close(self):
        self.c.close()


# ---------------------------------------------------------------------------------------------
# Tests


def test_phone_register_dialects(ctx):
    """Every dialect, both param places, UDP/TCP/TLS, SHA-256 and MD5: REGISTER → 200 with the
    push params in the binding; background → the un-REGISTER is answered 200."""
    it.add_user(ctx, "alice@127.0.0.1", "pw")
    cfg = server_config(ctx, ["SHA-256", "MD5"])
    server, (udp, tcp, tls) = it.start_server(ctx, ["--config", cfg])
    ports = {"udp": udp, "tcp": tcp, "tls": tls}
    markers = {"rfc8599": "pn-prid=", "abto": "push-token-id=", "pjsip": "pn-voip-tok=",
               "linphone": "pn-tok="}
    with server:
        n = 0
        for dialect in DIALECTS:
            for provider in ("apns", "fcm"):
                n += 1
                proto = ("udp", "tcp", "tls")[n % 3]
                place = ("uri", "header")[n % 2]
                algo = ("SHA-256", "MD5")[(n // 2) % 2]
                name = "%s-%s-%s" % (dialect, provider, proto)
                p = PhoneProc(ctx, name, [
                    "--server", "%s:127.0.0.1:%d" % (proto, ports[proto]),
                    "--user", "alice@127.0.0.1", "--password", "pw", "--dialect", dialect,
                    "--provider", provider, "--param-place", place, "--algorithm", algo,
                    "--expires", "300", "--background-after-register"])
                code = p.wait()
                evs = read_events(p.events)
                check(code == 0, "%s: exit %d:\n%s" % (name, code, p.log()))
                check(names(evs)[:4] == ["start", "registered", "backgrounded", "done"],
                      "%s: events %r" % (name, names(evs)))
                reg, bg = evs[1], evs[2]
                check(reg["code"] == 200 and reg["algorithm"] == algo, "%s: %r" % (name, reg))
                mine = [c for c in reg["contacts"] if reg["local"] in c]
                check(len(mine) == 1 and markers[dialect] in mine[0] and "+sip.instance" in
                      mine[0], "%s: binding without push params: %r" % (name, reg["contacts"]))
                if provider == "fcm":
                    check("%3a" in mine[0].lower(), "%s: FCM token ':' not escaped: %r"
                          % (name, mine[0]))
                check(bg["code"] == 200 and bg["expires"] == 0, "%s: background %r" % (name, bg))
                check(not any(reg["local"] in c for c in bg["contacts"]),
                      "%s: binding still listed after the un-REGISTER: %r" % (name, bg))
        # A wrong password: the phone gives up with exit 1 and a register_failed event.
        p = PhoneProc(ctx, "wrong", ["--server", "udp:127.0.0.1:%d" % udp, "--user",
                                     "alice@127.0.0.1", "--password", "nope"])
        check(p.wait() == 1, "wrong password did not exit 1:\n" + p.log())
        check("register_failed" in names(read_events(p.events)), "no register_failed event")


def test_phone_call_direct(ctx):
    """No push: the phone stays registered (TCP, UDP) and answers / rejects a proxied INVITE."""
    # One callee AOR per case: the earlier phones' bindings stay behind when they exit.
    for u in ("alice", "carol", "dave"):
        it.add_user(ctx, u + "@127.0.0.1", "pw")
    it.add_user(ctx, "bob@127.0.0.1", "bob-pw")
    cfg = server_config(ctx, ["MD5", "SHA-256"])
    server, (udp, tcp, _) = it.start_server(ctx, ["--config", cfg])
    with server:
        for user, proto, port, mode in (("alice", "tcp", tcp, "answer"),
                                        ("carol", "udp", udp, "busy"),
                                        ("dave", "udp", udp, "ignore")):
            name = "direct-%s-%s" % (proto, mode)
            p = PhoneProc(ctx, name, ["--server", "%s:127.0.0.1:%d" % (proto, port),
                                      "--user", user + "@127.0.0.1", "--password", "pw",
                                      "--dialect", "rfc8599", "--on-call", mode,
                                      "--answer-after-ms", "100", "--calls", "1"])
            caller = Caller(ctx, udp, "bob", "bob-pw", user + "@127.0.0.1")
            try:
                p.wait_event("registered")
                if mode == "ignore":
                    # The phone sends only 100; cancel once it has the INVITE.
                    final = caller.invite(on_trying=lambda c: (
                        p.wait_event("invite_received"), c.cancel()))
                else:
                    final = caller.invite()
                if mode == "ignore":
                    it.expect_code(final, 487, name + " cancelled INVITE")
                    check(any(r.code == 200 for r in caller.other), "%s: CANCEL not answered 200"
                          % name)
                    caller.ack_non2xx(final)
                elif mode == "answer":
                    it.expect_code(final, 200, name + " INVITE")
                    check(180 in caller.provisional, "%s: no 180 before 200: %r"
                          % (name, caller.provisional))
                    check("m=audio" in final.raw.decode(), "%s: 200 without SDP" % name)
                    r = caller.ack_and_bye(final)
                    it.expect_code(r, 200, name + " BYE")
                else:
                    it.expect_code(final, 486, name + " INVITE")
                    caller.ack_non2xx(final)
                code = p.wait()
                check(code == 0, "%s: phone exit %d:\n%s" % (name, code, p.log()))
                evs = names(read_events(p.events))
                want = {"answer": ["invite_received", "ringing", "answered", "ack_received",
                                   "bye"],
                        "busy": ["invite_received", "rejected"],
                        "ignore": ["invite_received", "ignored", "cancel_received"]}[mode]
                check(all(w in evs for w in want + ["call_done", "done"]),
                      "%s: events %r" % (name, evs))
            finally:
                p.kill()
                caller.close()


def make_keys(ctx):
    def run(*cmd):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
    run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", ctx.work + "/apns.p8")
    run("openssl", "pkey", "-in", ctx.work + "/apns.p8", "-pubout", "-out", ctx.work + "/apns.pub")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_service_account(ctx, port):
    """An RSA service account whose token_uri is the fake's /token on `port`."""
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", ctx.work + "/sa.pem"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    with open(ctx.work + "/sa.pem") as f:
        pem = f.read()
    sa = {"type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
          "private_key": pem, "client_email": "pusher@%s.iam.gserviceaccount.com" % PROJECT,
          "client_id": "1", "token_uri": "https://127.0.0.1:%d/token" % port}
    with open(ctx.work + "/sa.json", "w") as f:
        json.dump(sa, f)
    return ctx.work + "/sa.json"


def fake_with_service_account(ctx, extra_args=()):
    """sipwake-fakepns on a port named in advance by a new service account's token_uri:
    (fake, service account path). The port is free when chosen but may be taken before the fake
    binds it: then another port and another service account, at most 3 times."""
    for attempt in range(3):
        port = free_port()
        sa = make_service_account(ctx, port)
        try:
            return FakePns(ctx, port, sa, extra_args), sa
        except Fail:
            with open(ctx.work + "/fakepns.log") as f:
                taken = "in use" in f.read()
            if not taken or attempt == 2:
                raise


class FakePns:
    """`extra_args`: more sipwake-fakepns options (e.g. a second --apns-key)."""

    def __init__(self, ctx, port=0, service_account=None, extra_args=()):
        self.ctx = ctx
        cmd = [ctx.fakepns, "--listen", "127.0.0.1:%d" % port, "--make-cert", ctx.work + "/cert",
               "--apns-key", "%s:%s:%s" % (KEY_ID, TEAM_ID, ctx.work + "/apns.pub"),
               "--apns-topic", BUNDLE, "--control", "127.0.0.1:0"] + list(extra_args)
        if service_account:
            cmd += ["--fcm-service-account", service_account]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, bufsize=0,
                                     stderr=open(ctx.work + "/fakepns.log", "w"))
        fd, buf = self.proc.stdout.fileno(), b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                word, _, rest = line.decode().strip().partition(" ")
                if word == "ca":
                    self.ca = rest
                elif word == "listening":
                    self.port = int(rest.rsplit(":", 1)[1])
                elif word == "control":
                    self.control = rest
                elif word == "ready":
                    return
            r, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
            if not r:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
        self.stop()
        raise Fail("sipwake-fakepns did not become ready")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def test_phone_wake_apns(ctx):
    """The wake flow: phone registers (RFC 8599, APNs), backgrounds; bob calls alice → sipwake
    pushes (fake APNs) → the phone re-registers over a new TCP connection → the parked INVITE
    reaches it → answered, ACK, BYE."""
    if not ctx.fakepns or not os.access(ctx.fakepns, os.X_OK):
        raise Skip("sipwake-fakepns not given (--fakepns)")
    if not shutil.which("openssl"):
        raise Skip("openssl CLI missing")
    make_keys(ctx)
    fake = FakePns(ctx)
    try:
        # APNs token auth with the generated P-256 key; the fake's CA verifies its endpoint.
        push = ("\n[push]\nring_timeout = 15\n\n[[push.app]]\nprovider = \"apns\"\n"
                "id = \"%s\"\nteam_id = \"%s\"\nkey_id = \"%s\"\nkey_file = \"%s\"\n"
                "endpoint = \"https://127.0.0.1:%d\"\nca_file = \"%s\"\n"
                % (BUNDLE, TEAM_ID, KEY_ID, ctx.work + "/apns.p8", fake.port, fake.ca))
        cfg = server_config(ctx, ["MD5", "SHA-256"], push)
        code, out, err = it.run_cmd([ctx.sipwake, "check-config", cfg])
        check(code == 0, "check-config: %s" % (err.strip() or out.strip()))
        it.add_user(ctx, "alice@127.0.0.1", "pw")
        it.add_user(ctx, "bob@127.0.0.1", "bob-pw")
        server, (udp, tcp, _) = it.start_server(ctx, ["--config", cfg])
        with server:
            p = PhoneProc(ctx, "wake", ["--server", "tcp:127.0.0.1:%d" % tcp,
                                        "--user", "alice@127.0.0.1", "--password", "pw",
                                        "--dialect", "rfc8599", "--provider", "apns",
                                        "--app", BUNDLE, "--team", TEAM_ID,
                                        "--fakepns-control", fake.control,
                                        "--background-after-register", "--calls", "1",
                                        "--on-call", "answer", "--answer-after-ms", "100"])
            caller = Caller(ctx, udp, "bob", "bob-pw", "alice@127.0.0.1")
            try:
                p.wait_event("backgrounded")
                final = caller.invite(timeout=20)
                it.expect_code(final, 200, "INVITE to the woken phone")
                it.expect_code(caller.ack_and_bye(final), 200, "BYE")
                code = p.wait()
                check(code == 0, "phone exit %d:\n%s" % (code, p.log()))
                evs = read_events(p.events)
                order = ["registered", "backgrounded", "push_received", "reregistered",
                         "invite_received", "answered", "ack_received", "bye", "done"]
                seen = [e for e in names(evs) if e in order]
                check(seen == order, "events %r, expected %r" % (seen, order))
                push_ev = [e for e in evs if e["event"] == "push_received"][0]
                check(push_ev["push_type"] == "voip" and push_ev["topic"] == BUNDLE + ".voip",
                      "push %r" % push_ev)
                invites = [e for e in names(evs) if e == "invite_received"]
                check(len(invites) == 1, "INVITE forked %d times to the phone" % len(invites))
                ruri = [e for e in evs if e["event"] == "invite_received"][0]["ruri"]
                check("pn-" not in ruri, "push params leaked into the INVITE: %s" % ruri)
            finally:
                p.kill()
                caller.close()
    finally:
        fake.stop()


def test_phone_wake_fcm(ctx):
    """The wake flow over FCM HTTP v1: phone registers (RFC 8599, pn-provider=fcm), backgrounds;
    bob calls alice → sipwake gets an OAuth2 token from the fake's token_uri (service account),
    pushes (fake FCM) → the phone re-registers → the parked INVITE reaches it → answered."""
    if not ctx.fakepns or not os.access(ctx.fakepns, os.X_OK):
        raise Skip("sipwake-fakepns not given (--fakepns)")
    if not shutil.which("openssl"):
        raise Skip("openssl CLI missing")
    make_keys(ctx)
    fake, sa = fake_with_service_account(ctx)
    try:
        push = ("\n[push]\nring_timeout = 15\n\n[[push.app]]\nprovider = \"fcm\"\n"
                "id = \"%s\"\nservice_account_file = \"%s\"\n"
                "endpoint = \"https://127.0.0.1:%d\"\nca_file = \"%s\"\n"
                % (PROJECT, sa, fake.port, fake.ca))
        cfg = server_config(ctx, ["MD5", "SHA-256"], push)
        code, out, err = it.run_cmd([ctx.sipwake, "check-config", cfg])
        check(code == 0, "check-config: %s" % (err.strip() or out.strip()))
        it.add_user(ctx, "alice@127.0.0.1", "pw")
        it.add_user(ctx, "bob@127.0.0.1", "bob-pw")
        server, (udp, tcp, _) = it.start_server(ctx, ["--config", cfg])
        with server:
            p = PhoneProc(ctx, "wake", ["--server", "tcp:127.0.0.1:%d" % tcp,
                                        "--user", "alice@127.0.0.1", "--password", "pw",
                                        "--dialect", "rfc8599", "--provider", "fcm",
                                        "--app", PROJECT,
                                        "--fakepns-control", fake.control,
                                        "--background-after-register", "--calls", "1",
                                        "--on-call", "answer", "--answer-after-ms", "100"])
            caller = Caller(ctx, udp, "bob", "bob-pw", "alice@127.0.0.1")
            try:
                p.wait_event("backgrounded")
                final = caller.invite(timeout=20)
                it.expect_code(final, 200, "INVITE to the woken phone")
                it.expect_code(caller.ack_and_bye(final), 200, "BYE")
                code = p.wait()
                check(code == 0, "phone exit %d:\n%s" % (code, p.log()))
                evs = read_events(p.events)
                order = ["registered", "backgrounded", "push_received", "reregistered",
                         "invite_received", "answered", "ack_received", "bye", "done"]
                seen = [e for e in names(evs) if e in order]
                check(seen == order, "events %r, expected %r" % (seen, order))
                push_ev = [e for e in evs if e["event"] == "push_received"][0]
                check(push_ev["provider"] == "fcm" and push_ev["kind"] == "call",
                      "push %r" % push_ev)
                invites = [e for e in names(evs) if e == "invite_received"]
                check(len(invites) == 1, "INVITE forked %d times to the phone" % len(invites))
            finally:
                p.kill()
                caller.close()
    finally:
        fake.stop()


def test_phone_push_probe(ctx):
    """The phone's own wake path without sipwake's push: it registers (Linphone dialect, TCP),
    backgrounds; sipwake-pushprobe sends a VoIP push for its token to the fake APNs → the phone
    re-registers over a new connection → a plain proxied INVITE reaches it → answered."""
    if not ctx.fakepns or not ctx.probe or not os.access(ctx.probe, os.X_OK):
        raise Skip("sipwake-fakepns / sipwake-pushprobe not given (--fakepns, --probe)")
    if not shutil.which("openssl"):
        raise Skip("openssl CLI missing")
    make_keys(ctx)
    fake = FakePns(ctx)
    token = uuid.uuid4().hex + uuid.uuid4().hex
    try:
        it.add_user(ctx, "alice@127.0.0.1", "pw")
        it.add_user(ctx, "bob@127.0.0.1", "bob-pw")
        server, (udp, tcp, _) = it.start_server(ctx, ["--config",
                                                      server_config(ctx, ["MD5", "SHA-256"])])
        with server:
            p = PhoneProc(ctx, "probe", ["--server", "tcp:127.0.0.1:%d" % tcp,
                                         "--user", "alice@127.0.0.1", "--password", "pw",
                                         "--dialect", "linphone", "--provider", "apns",
                                         "--app", BUNDLE, "--token", token,
                                         "--fakepns-control", fake.control,
                                         "--background-after-register", "--calls", "1"])
            caller = Caller(ctx, udp, "bob", "bob-pw", "alice@127.0.0.1")
            try:
                p.wait_event("backgrounded")
                code, out, err = it.run_cmd(
                    [ctx.probe, "--target", "127.0.0.1:%d" % fake.port, "--ca", fake.ca, "apns",
                     "--key-file", ctx.work + "/apns.p8", "--key-id", KEY_ID, "--team-id",
                     TEAM_ID, "--bundle", BUNDLE, "--token", token, "--type", "voip"])
                check(code == 0 and '"status":200' in out.replace(" ", ""),
                      "push not accepted: %d %s %s" % (code, out, err))
                push_ev = p.wait_event("push_received")
                check(push_ev["push_type"] == "voip" and push_ev["topic"] == BUNDLE + ".voip",
                      "push %r" % push_ev)
                rereg = p.wait_event("reregistered")
                check(rereg["code"] == 200, "re-REGISTER %r" % rereg)
                final = caller.invite(timeout=15)
                it.expect_code(final, 200, "INVITE to the woken phone")
                it.expect_code(caller.ack_and_bye(final), 200, "BYE")
                code = p.wait()
                check(code == 0, "phone exit %d:\n%s" % (code, p.log()))
                order = ["registered", "backgrounded", "push_received", "reregistered",
                         "invite_received", "answered", "ack_received", "bye", "done"]
                seen = [e for e in names(read_events(p.events)) if e in order]
                check(seen == order, "events %r, expected %r" % (seen, order))
            finally:
                p.kill()
                caller.close()
    finally:
        fake.stop()


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}


def main(tests=None, description=__doc__):
    """The command line shared by phone_it.py and wake_it.py (`tests`: name → function)."""
    tests = TESTS if tests is None else tests
    p = argparse.ArgumentParser(description=description.splitlines()[0])
    p.add_argument("--sipwake", required=True)
    p.add_argument("--fakepns")
    p.add_argument("--probe", help="sipwake-pushprobe (phone_push_probe)")
    p.add_argument("--phone", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "..", "..", "tools", "sipwake-phone",
                                                   "sipwake-phone"))
    p.add_argument("--work-dir", default=tempfile.gettempdir())
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("test", choices=sorted(tests) + ["list"])
    args = p.parse_args()
    if args.test == "list":
        print("\n".join(sorted(tests)))
        return 0
    ctx = Ctx(args, args.test)
    try:
        tests[args.test](ctx)
    except Skip as e:
        print("SKIP %s: %s" % (args.test, e))
        return it.SKIP
    except Fail as e:
        print("FAIL %s: %s\n(work directory kept: %s)" % (args.test, e, ctx.work))
        return 1
    print("PASS %s" % args.test)
    if not args.keep:
        shutil.rmtree(ctx.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
