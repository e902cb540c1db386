#!/usr/bin/env python3
"""Reload (SIGHUP) and stopping (SIGTERM) of the real sipwake binary (docs/operations.md):
push credentials and TLS certificates rotated, the log level changed, a bad configuration
refused with its key and line while the old one keeps serving, and the drain: calls in
progress and parked calls get their final answer, new ones 503, exit 0 within the bound.

    reload_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --phone tools/sipwake-phone/sipwake-phone --work-dir /tmp/it reload_tls_certificate

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import shutil
import signal
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
import phone_it as ph  # noqa: E402
import wake_it as wk  # noqa: E402
from sipwake_it import Skip, check  # noqa: E402
from phone_it import BUNDLE, TEAM_ID  # noqa: E402

WAIT = 10  # seconds for anything sipwake logs after a signal


def wait_log(server, text, after=0, timeout=WAIT):
    """Waits until `text` appears in the server's log after offset `after`; returns the log."""
    deadline = time.monotonic() + timeout
    while True:
        log = server.log()
        if text in log[after:]:
            return log
        check(time.monotonic() < deadline, "no %r in the log within %ss:\n%s"
              % (text, timeout, log[after:][-3000:]))
        time.sleep(0.02)  # polling the log, bounded by the deadline


def sighup(server, outcome="reload: applied"):
    """SIGHUP, then the reload's outcome line (`outcome`); returns that line."""
    start = len(server.log())
    server.proc.send_signal(signal.SIGHUP)
    log = wait_log(server, outcome, start)[start:]
    return next(line for line in log.splitlines() if outcome in line)


def rewrite(path, old, new):
    with open(path) as f:
        text = f.read()
    check(old in text, "%r not in %s" % (old, path))
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def make_cert(ctx, name):
    """A self-signed certificate for localhost / 127.0.0.1: (certificate, key) paths."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise Skip("openssl command not found")
    cert, key = os.path.join(ctx.work, name + ".pem"), os.path.join(ctx.work, name + ".key")
    code, _, err = it.run_cmd([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out",
                               cert, "-days", "1", "-subj", "/CN=" + name, "-addext",
                               "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    check(code == 0, "openssl req failed: %s" % err)
    os.chmod(key, 0o600)
    return cert, key


def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def tls_client(port):
    return it.StreamClient(("127.0.0.1", port), it.insecure_tls_context())


def options(client, port, transport):
    return client.exchange(it.build_request("OPTIONS", "sip:127.0.0.1:%d" % port, transport,
                                            client.local))


class Server:
    """sipwake from its own config file (udp, tcp and tls listeners on fresh ports)."""

    def __init__(self, ctx, extra=""):
        self.ctx = ctx
        self.udp, self.tcp, self.tls = it.three_listeners()
        self.cert, self.key = make_cert(ctx, "first")
        self.config = os.path.join(ctx.work, "reload.toml")
        with open(self.config, "w") as f:
            f.write("[server]\nworkers = 2\nlog_level = \"info\"\n\n"
                    "[[listen]]\ntransport = \"udp\"\naddress = \"127.0.0.1\"\nport = %d\n\n"
                    "[[listen]]\ntransport = \"tcp\"\naddress = \"127.0.0.1\"\nport = %d\n\n"
                    "[[listen]]\ntransport = \"tls\"\naddress = \"127.0.0.1\"\nport = %d\n\n"
                    "[tls]\ncertificate = \"%s\"\nprivate_key = \"%s\"\n%s"
                    % (self.udp, self.tcp, self.tls, self.cert, self.key, extra))
        self.server = it.Sipwake(ctx, ["--config", self.config]).start()

    def close(self, failed=False):
        code = self.server.stop()
        if not failed:
            check(code == 0, "sipwake exited with %s:\n%s" % (code, self.server.log()[-3000:]))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
        return False


def test_reload_tls_certificate(ctx):
    """A new certificate and key on disk + SIGHUP: a new TLS connection gets the new
    certificate; a TLS connection made before keeps working (with the old one)."""
    with Server(ctx) as s:
        old = tls_client(s.tls)
        try:
            it.expect_options_200(options(old, s.tls, "TLS"), "TLS before the reload")
            check(old.sock.getpeercert(True) == der_of(s.cert), "not the first certificate")
            cert2, key2 = make_cert(ctx, "second")
            shutil.copyfile(cert2, s.cert)
            shutil.copyfile(key2, s.key)
            line = sighup(s.server)
            check("tls" in line, "TLS not reloaded: %s" % line)
            # The new certificate is valid for a day: the reload warns that it expires soon.
            wait_log(s.server, "reload: configuration: %s: [tls] certificate: \"%s\" expires on "
                     % (s.config, s.cert))
            new = tls_client(s.tls)
            try:
                check(new.sock.getpeercert(True) == der_of(cert2),
                      "a new connection after the reload did not get the new certificate")
                it.expect_options_200(options(new, s.tls, "TLS"), "new TLS connection")
            finally:
                new.close()
            it.expect_options_200(options(old, s.tls, "TLS"), "TLS connection made before")
        finally:
            old.close()


def register_elsewhere(port, call_id_mark):
    """A REGISTER for a domain not ours: 403, after the registrar's debug line naming the
    Call-ID."""
    c = it.UdpClient(("127.0.0.1", port))
    try:
        reg = it.Registration(c, port, "nobody")
        reg.call_id, reg.ruri = call_id_mark, "sip:not-ours.example"
        it.expect_code(reg.send(["Contact: " + reg.contact]), 403, "REGISTER for another domain")
    finally:
        c.close()


def test_reload_log_level(ctx):
    """log_level info → debug + SIGHUP: debug lines appear from then on; a changed restart-only
    key ([server] workers) is named in a warning and the reload line."""
    with Server(ctx) as s:
        register_elsewhere(s.udp, "before-reload@it")
        rewrite(s.config, 'log_level = "info"', 'log_level = "debug"')
        rewrite(s.config, "workers = 2", "workers = 1")
        line = sighup(s.server)
        check("log_level" in line and "restart needed for [server] workers" in line,
              "reload line: %s" % line)
        log = wait_log(s.server, "[server] workers: changed, restart needed")
        register_elsewhere(s.udp, "after-reload@it")
        log = wait_log(s.server, "for Call-ID after-reload@it")
        check("before-reload@it" not in log, "a debug line before the reload:\n" + log[-3000:])


def test_reload_bad_config(ctx):
    """A syntax error, a bad key value, then a certificate that is not one: each SIGHUP is
    refused with the file, line and key, and the old configuration keeps serving (its TLS
    certificate, its log level)."""
    with Server(ctx) as s:
        with open(s.config) as f:
            good = f.read()
        n_lines = good.count("\n")
        with open(s.config, "a") as f:
            f.write('log_level = "debug"\n[limits\n')
        line = sighup(s.server, "reload refused")
        check("%s:%d: TOML syntax error" % (s.config, n_lines + 2) in line, "refusal: %s" % line)

        with open(s.config, "w") as f:
            f.write(good.replace('log_level = "info"', 'log_level = "debug"')
                    + "\n[limits]\nmax_headers = \"many\"\n")
        line = sighup(s.server, "reload refused")
        check("%s:%d: [limits] max_headers" % (s.config, n_lines + 3) in line,
              "refusal: %s" % line)

        bogus = os.path.join(ctx.work, "bogus.pem")
        with open(bogus, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        with open(s.config, "w") as f:
            f.write(good.replace('log_level = "info"', 'log_level = "debug"')
                    .replace(s.cert, bogus))
        cert_line = next(i + 1 for i, l in enumerate(good.splitlines())
                         if l.startswith("certificate"))
        line = sighup(s.server, "reload refused")
        check("%s:%d: [tls] certificate" % (s.config, cert_line) in line, "refusal: %s" % line)

        c = tls_client(s.tls)
        try:
            it.expect_options_200(options(c, s.tls, "TLS"), "TLS after the refused reloads")
            check(c.sock.getpeercert(True) == der_of(s.cert), "the old certificate is gone")
        finally:
            c.close()
        it.options_alive_udp(s.udp, "after the refused reloads")
        register_elsewhere(s.udp, "after-refusals@it")
        check("after-refusals@it" not in s.server.log(),
              "the refused config's log level was applied")


def test_reload_cli(ctx):
    """`sipwake reload` (POST /api/reload) does what SIGHUP does and prints it: the parts applied
    and the keys that need a restart; a bad file is refused (exit 1, file:line: key) and the old
    configuration keeps serving."""
    token = os.path.join(ctx.work, "admin.token")
    with open(token, "w") as f:
        f.write("reload-cli-token-0123456789\n")
    os.chmod(token, 0o600)
    admin = "\n[admin]\nlisten = \"127.0.0.1:%d\"\ntoken_file = \"%s\"\n" % (it.free_port(), token)
    with Server(ctx, extra=admin) as s:
        cli = [ctx.sipwake, "--config", s.config, "reload"]
        rewrite(s.config, 'log_level = "info"', 'log_level = "debug"')
        rewrite(s.config, "workers = 2", "workers = 1")
        code, out, err = it.run_cmd(cli)
        check(code == 0 and out.startswith("reloaded: ") and "log_level" in out.splitlines()[0]
              and "changed but kept until a restart: [server] workers" in out,
              "sipwake reload: %d %r %r" % (code, out, err))
        register_elsewhere(s.udp, "after-cli-reload@it")
        wait_log(s.server, "for Call-ID after-cli-reload@it")  # debug applied

        with open(s.config) as f:
            good = f.read()
        with open(s.config, "w") as f:
            f.write(good + "\n[limits]\nmax_headers = \"many\"\n")
        code, out, err = it.run_cmd(cli)
        check(code == 1 and "%s:%d: [limits] max_headers" % (s.config, good.count("\n") + 3)
              in err and "not reloaded: the running server keeps its configuration" in err,
              "bad config: %d %r %r" % (code, out, err))
        # A file that loads but that the server refuses (a certificate that is not one): the
        # server's answer, HTTP 400.
        bogus = os.path.join(ctx.work, "bogus.pem")
        with open(bogus, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        with open(s.config, "w") as f:
            f.write(good.replace(s.cert, bogus))
        code, out, err = it.run_cmd(cli)
        check(code == 1 and "[tls] certificate" in err and "(HTTP 400)" in err,
              "refused by the server: %d %r %r" % (code, out, err))
        it.options_alive_udp(s.udp, "after the refused reload")


def test_reload_push_credentials(ctx):
    """A new APNs key (another key id) in the config + SIGHUP while a call is up: the next
    call's push is signed with the new key; the call in progress is not dropped (BYE: 200)."""
    new_kid = "NEWKEY6789"
    ph.make_keys(ctx)
    new_p8, new_pub = ctx.work + "/apns-new.p8", ctx.work + "/apns-new.pub"
    for cmd in (["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-out", new_p8],
                ["openssl", "pkey", "-in", new_p8, "-pubout", "-out", new_pub]):
        code, _, err = it.run_cmd(cmd)
        check(code == 0, "%s: %s" % (cmd[0], err))
    with wk.Rig(ctx, ring_timeout=3,
                fake_args=["--apns-key", "%s:%s:%s" % (new_kid, TEAM_ID, new_pub)]) as rig:
        awake, sleeping = wk.apns_token(), wk.apns_token()
        rig.watch.subscribe(sleeping, topic=BUNDLE + ".voip")
        p = rig.phone("awake", "alice", ["--dialect", "rfc8599", "--provider", "apns", "--app",
                                         BUNDLE, "--token", awake, "--calls", "1", "--on-call",
                                         "answer", "--answer-after-ms", "100"], control=False)
        p.wait_event("registered")
        wk.sleeping_phone(rig, "sleeping", "carol", sleeping, provider="apns")
        call = rig.caller("alice")
        final = call.invite(timeout=15)
        it.expect_code(final, 200, "call to the awake phone")
        target, route, to_tag = call.ack(final)

        rewrite(rig.config, 'key_id = "%s"' % ph.KEY_ID, 'key_id = "%s"' % new_kid)
        rewrite(rig.config, ctx.work + "/apns.p8", new_p8)
        line = sighup(rig.server)
        check("push" in line, "push not reloaded: %s" % line)

        caller, _ = wk.call_failing(rig, 480, "call to the sleeping phone", callee="carol")
        push = rig.watch.wait_push(sleeping)
        check(wk.field(push["payload"], "call_id") == caller.call_id, "push %r" % push)
        check(push.get("key_id") == new_kid, "the push after the reload was signed with key %s,"
              " not %s" % (push.get("key_id"), new_kid))

        call.cseq += 1
        r = call.c.exchange(call.request("BYE", target, call.cseq, route, to_tag), timeout=10)
        it.expect_code(r, 200, "BYE of the call made before the reload")
        check(p.wait() == 0, "phone exit:\n" + p.log())
        rig.server_alive()


def test_drain_parked_and_ringing(ctx):
    """SIGTERM with a call ringing on an awake phone (answers after 2 s) and a call parked for
    a sleeping one: the parked caller gets its final answer (480) at once, a new INVITE gets
    503 with Retry-After, the ringing call is answered (200), and sipwake exits 0 within
    [server] drain_timeout (set to 5 s by a reload)."""
    with wk.Rig(ctx, ring_timeout=30) as rig:
        rewrite(rig.config, "[server]\n", "[server]\ndrain_timeout = 5\n")
        sighup(rig.server)
        awake, sleeping = wk.apns_token(), wk.fcm_token()
        rig.watch.subscribe(sleeping, project=ph.PROJECT)
        p = rig.phone("awake", "alice", ["--dialect", "rfc8599", "--provider", "apns", "--app",
                                         BUNDLE, "--token", awake, "--calls", "1", "--on-call",
                                         "answer", "--answer-after-ms", "2000"], control=False)
        p.wait_event("registered")
        wk.sleeping_phone(rig, "sleeping", "carol", sleeping)

        parked, parked_final = rig.caller("carol"), {}
        t = threading.Thread(target=lambda: parked_final.update(r=parked.invite(timeout=20)))
        t.start()
        try:
            rig.watch.wait_push(sleeping)  # carol's call is parked
        except BaseException:
            t.join(25)
            raise
        stopped_at = {}

        def on_trying(_caller):
            stopped_at["t"] = time.monotonic()
            rig.server.proc.send_signal(signal.SIGTERM)
            wait_log(rig.server, "shutting down: draining")
            late = rig.caller("carol")
            r = late.invite(timeout=10)
            it.expect_code(r, 503, "new INVITE while draining")
            check(r.header("retry-after"), "503 while draining without Retry-After")
            late.ack_non2xx(r)

        ringing = rig.caller("alice")
        final = ringing.invite(timeout=20, on_trying=on_trying)
        t.join(25)
        check(stopped_at, "no provisional answer before the ringing call's final one")
        it.expect_code(final, 200, "the call ringing when SIGTERM came")
        ringing.ack(final)
        check("r" in parked_final, "the parked caller got no final answer")
        it.expect_code(parked_final["r"], 480, "the parked call")
        parked.ack_non2xx(parked_final["r"])
        code = rig.server.proc.wait(timeout=15)
        took = time.monotonic() - stopped_at["t"]
        check(code == 0, "exit %s after SIGTERM:\n%s" % (code, rig.server.log()[-3000:]))
        check(took < 5 + 2, "exit %.1f s after SIGTERM, drain_timeout 5 s" % took)
        log = rig.server.log()
        check("drain done" in log, "no drain end line:\n" + log[-3000:])


class Stopped(Exception):
    pass


def test_drain_second_signal(ctx):
    """A second SIGTERM during the drain (a call ringing for 8 s, drain_timeout 30 s) stops at
    once: exit 0 within 3 s of it, "drain cut short" in the log."""
    with wk.Rig(ctx, ring_timeout=30) as rig:
        rewrite(rig.config, "[server]\n", "[server]\ndrain_timeout = 30\n")
        sighup(rig.server)
        p = rig.phone("awake", "alice", ["--dialect", "rfc8599", "--provider", "apns", "--app",
                                         BUNDLE, "--token", wk.apns_token(), "--calls", "1",
                                         "--on-call", "answer", "--answer-after-ms", "8000"],
                      control=False)
        p.wait_event("registered")

        def on_trying(_caller):
            rig.server.proc.send_signal(signal.SIGTERM)
            wait_log(rig.server, "shutting down: draining (at most 30 s): 1 transaction(s)")
            second = time.monotonic()
            rig.server.proc.send_signal(signal.SIGTERM)
            code = rig.server.proc.wait(timeout=10)
            raise Stopped(code, time.monotonic() - second)

        try:
            final = rig.caller("alice").invite(timeout=20, on_trying=on_trying)
            check(False, "the call was answered (%d) before the drain was cut short" % final.code)
        except Stopped as e:
            code, took = e.args
        log = rig.server.log()
        check(code == 0, "exit %s after the second SIGTERM:\n%s" % (code, log[-3000:]))
        check(took < 3, "exit %.1f s after the second SIGTERM" % took)
        check("drain cut short" in log, "no \"drain cut short\" line:\n" + log[-3000:])


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}


def main():
    return ph.main(TESTS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
