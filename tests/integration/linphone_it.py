#!/usr/bin/env python3
"""A real client woken by a push: Debian's linphone-cli 5.1 (`linphonec`) registers to sipwake over
UDP, TCP or TLS with digest authentication and RFC 8599 push parameters in its Contact
(linphonerc `[proxy_0] contact_uri_parameters`), the app goes away, bob calls alice, sipwake
pushes through sipwake-fakepns, the test (the app's push glue, subscribed to the fake) starts
linphonec again, it registers and auto-answers (`-a`) the parked INVITE → 200 / ACK / BYE.
message_linphonec_stored*: a chat MESSAGE kept (202) while linphonec sleeps reaches it, once,
when it registers again. Helpers come from wake_it.py / phone_it.py / sipwake_it.py /
message_it.py.

    linphone_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --work-dir /tmp/it wake_linphonec_udp_kill

"Goes away" is either kill -9 (what iOS and Android do to an app: no un-REGISTER, the binding
stays) or linphonec's `quit` (un-REGISTER first). linphonec runs headless: its own HOME and
linphonerc, commands on its stdin, `soundcard use files` (no sound card), every SIP message it
sends and receives in its log (-d 6 -l), from which the test reads what linphonec sent (the
digest algorithm it chose) and counts the INVITEs of the call that reached it.

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
import phone_it as ph  # noqa: E402
import calls_it  # noqa: E402
import wake_it as wk  # noqa: E402
import message_it as msg  # noqa: E402
from sipwake_it import Fail, Skip, check  # noqa: E402
from phone_it import BUNDLE  # noqa: E402

LINPHONERC = """\
[sip]
sip_port={udp_port}
sip_tcp_port={tcp_port}
sip_tls_port={tls_port}
default_proxy=0
root_ca={ca}
verify_server_certs=1
verify_server_cn=1

[proxy_0]
reg_proxy=<sip:{server_host}:{server_port};transport={transport}>
reg_identity=sip:alice@127.0.0.1
reg_expires=600
reg_sendregister=1
publish=0
contact_uri_parameters={push_params}

[auth_info_0]
username=alice
passwd=alice-pw
domain=127.0.0.1

[rtp]
audio_rtp_port={rtp_port}

[video]
capture=0
display=0

[misc]
uuid={instance}
"""


class Linphonec:
    """One linphonec process of a device (its rc file and HOME are the device's, kept across
    restarts as an app keeps its settings)."""

    def __init__(self, ctx, device, name):
        self.ctx, self.name = ctx, name
        self.log_path = os.path.join(ctx.work, "linphonec-%s.log" % name)
        self.out_path = os.path.join(ctx.work, "linphonec-%s.out" % name)
        self.out = open(self.out_path, "wb")
        cmd = [shutil.which("linphonec"), "-c", device.rc, "-a", "-d", "6", "-l", self.log_path]
        ctx.note("running: " + " ".join(cmd))
        env = dict(os.environ, HOME=device.home)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self.out,
                                     stderr=subprocess.STDOUT, cwd=device.home, env=env)
        self.command("soundcard use files")  # no sound card: wav files instead

    def command(self, line):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def messages(self, start):
        """The SIP messages in linphonec's log (belle-sip logs each one it sends or receives)
        whose start line begins with `start` ("INVITE ", "REGISTER ", "SIP/2.0 200"), each up
        to the blank line after its headers."""
        return re.findall(r"(?ms)^(%s[^\r\n]*\r?\n.*?)(?:\r?\n){2}" % re.escape(start), self.log())

    def quit(self):
        """The user quits the app: linphonec un-REGISTERs, then exits."""
        self.command("quit")
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise Fail("linphonec %s did not quit:\n%s" % (self.name, self.log()[-3000:]))
        check(code == 0, "linphonec %s exit %d" % (self.name, code))

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.out.close()


def push_params(token, remote=None):
    """linphone's RFC 8599 Contact params for APNs: the VoIP token alone, or VoIP and remote."""
    if remote is None:
        return "pn-provider=apns;pn-param=%s.%s.voip;pn-prid=%s" % (ph.TEAM_ID, BUNDLE, token)
    return ("pn-provider=apns;pn-param=%s.%s.voip&remote;pn-prid=%s:voip&%s:remote"
            % (ph.TEAM_ID, BUNDLE, token, remote))


class Device:
    """alice's phone: a linphonerc for `transport` with RFC 8599 push params for APNs VoIP token
    `token` (and, given `remote`, the remote token for alert pushes, as linphone for iOS
    registers them: `pn-prid=<voip>:voip&<remote>:remote`), a fixed SIP port (reused by every
    run, as linphone does)."""

    def __init__(self, ctx, rig, transport, token, ca="", remote=None):
        self.ctx, self.transport = ctx, transport
        self.home = os.path.join(ctx.work, "linphone-home")
        os.makedirs(os.path.join(self.home, ".local", "share", "linphone"), exist_ok=True)
        self.rc = os.path.join(self.home, "linphonerc")
        self.instance = str(uuid.uuid4())  # linphone's +sip.instance, kept like its settings
        kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.port = it.free_port(kind)
        ports = {"udp": 0, "tcp": 0, "tls": 0}
        ports[transport] = self.port
        server_port = {"udp": rig.ports[0], "tcp": rig.ports[1], "tls": rig.ports[2]}[transport]
        with open(self.rc, "w") as f:
            f.write(LINPHONERC.format(
                udp_port=ports["udp"], tcp_port=ports["tcp"], tls_port=ports["tls"],
                ca=ca, server_host="localhost" if transport == "tls" else "127.0.0.1",
                server_port=server_port, transport=transport,
                push_params=push_params(token, remote),
                rtp_port=it.free_port(socket.SOCK_DGRAM) & ~1, instance=self.instance))
        self.runs = []

    def start(self, name):
        run = Linphonec(self.ctx, self, name)
        self.runs.append(run)
        return run

    def close(self):
        for r in self.runs:
            r.kill()


def branch_of(message):
    m = re.search(r"(?im)^Via:[^\r\n]*;branch=([^;,\s]+)", message)
    return m.group(1) if m else None


def digest_algorithm(run):
    """The algorithm of the first REGISTER linphonec sent with credentials."""
    for m in run.messages("REGISTER sip:"):  # linphonec only sends REGISTERs
        auth = re.search(r"(?im)^Authorization:[^\r\n]*", m)
        if auth:
            alg = re.search(r"algorithm=\"?([A-Za-z0-9-]+)", auth.group(0))
            return alg.group(1) if alg else "MD5 (no algorithm parameter)"
    return None


def linphone_wake(ctx, transport, how):
    """alice's linphonec registers over `transport`, goes away (`how`: "kill" = kill -9, no
    un-REGISTER; "quit" = un-REGISTER then exit), bob calls, the push starts linphonec again,
    it answers: one push, one INVITE reaching the woken linphonec, 200 / ACK / BYE."""
    if shutil.which("linphonec") is None:
        raise Skip("linphonec not installed (Debian package linphone-cli)")
    tok = wk.apns_token()
    extra, ca = "", ""
    if transport == "tls":
        ca, crt, key = calls_it.make_test_pki(ctx)
        extra = '\n[tls]\ncertificate = "%s"\nprivate_key = "%s"\n' % (crt, key)
    # algorithms=(): the server's default `[auth] algorithms`.
    with wk.Rig(ctx, ring_timeout=20, algorithms=(), extra_config=extra) as rig:
        rig.watch.subscribe(tok, topic=BUNDLE + ".voip")
        device = Device(ctx, rig, transport, tok, ca)
        try:
            first = device.start("first")
            seen = wk.wait_contacts(rig.udp, lambda cs: any("pn-prid=" + tok in c for c in cs),
                                    "linphonec's binding with push params")
            check(len(seen) == 1, "contacts %r" % seen)
            check(("transport=%s" % transport) in seen[0].lower() or transport == "udp",
                  "binding not over %s: %r" % (transport, seen))
            algorithm = digest_algorithm(first)
            check(algorithm is not None, "no authenticated REGISTER in linphonec's log:\n%s"
                  % first.log()[-3000:])
            ctx.note("linphonec %s: REGISTER Contact %s, digest algorithm %s"
                     % (transport, seen[0], algorithm))
            if how == "kill":
                first.kill(signal.SIGKILL)  # the OS kills the app: no un-REGISTER
            else:
                first.quit()
                wk.wait_contacts(rig.udp, lambda cs: not cs, "after linphonec's un-REGISTER")
            woken, times = [], {}

            def wake_on_push(caller):
                times["invite"] = time.monotonic()  # the 100 Trying to the INVITE
                rig.watch.wait_push(tok)  # the app glue: a VoIP push starts the app
                times["push"] = time.monotonic()
                woken.append(device.start("woken"))
            caller = rig.caller()
            final = caller.invite(timeout=30, on_trying=wake_on_push)
            times["final"] = time.monotonic()
            check(woken, "linphonec was not started on the push")
            it.expect_code(final, 200, "INVITE answered by the woken linphonec")
            check(device.instance in (final.header("contact") or ""),
                  "200 not from linphonec (instance %s): %s"
                  % (device.instance, final.header("contact")))
            it.expect_code(caller.ack_and_bye(final), 200, "BYE")
            wk.check_call_push(rig.watch.wait_push(tok), "apns", tok, caller.call_id)
            check(len(rig.watch.seen(tok, "call")) == 1, "pushes %r" % rig.watch.pushes)
            # One call on the device: every INVITE of this call that reached the woken linphonec
            # is one client transaction (one branch), retransmissions included.
            invites = [m for m in woken[0].messages("INVITE sip:") if caller.call_id in m]
            branches = sorted({branch_of(m) for m in invites})
            check(len(branches) == 1, "%d INVITEs (branches %r) reached the woken linphonec:\n%s"
                  % (len(invites), branches, "\n\n".join(invites)[-4000:]))
            ctx.note("linphonec %s (%s): INVITE -> 200 at the caller %.0f ms (push after %.0f ms)"
                     % (transport, how, 1000 * (times["final"] - times["invite"]),
                        1000 * (times["push"] - times["invite"])))
            rig.server_alive()
        finally:
            device.close()


def test_wake_linphonec_udp_kill(ctx):
    linphone_wake(ctx, "udp", "kill")


def test_wake_linphonec_udp_quit(ctx):
    linphone_wake(ctx, "udp", "quit")


def test_wake_linphonec_tcp_kill(ctx):
    linphone_wake(ctx, "tcp", "kill")


def test_wake_linphonec_tls_kill(ctx):
    linphone_wake(ctx, "tls", "kill")


def wait_match(read, pattern, what, timeout=15):
    """The first match of `pattern` in the text `read()` returns, once it is there (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        text = read()
        m = re.search(pattern, text)
        if m:
            return m
        check(time.monotonic() < deadline, "%s:\n%s" % (what, text[-3000:]))
        time.sleep(0.05)  # polling, bounded by the deadline


def output(run):
    """What linphonec printed (stdout and stderr)."""
    with open(run.out_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def linphonec_stored(ctx, how):
    """A chat message kept for a sleeping linphonec: alice's linphonec registers with APNs VoIP
    and remote tokens (as linphone for iOS does), goes away (`how` as in linphone_wake); bob's
    MESSAGE makes one "message" alert push to the remote token; nobody registers within [push]
    message_wait → 202 Accepted; linphonec started again registers and gets the kept MESSAGE
    (it prints "Message received from <sender>: <text>" and answers 200), reported delivered by
    sipwake; started a third time, it gets nothing more."""
    if shutil.which("linphonec") is None:
        raise Skip("linphonec not installed (Debian package linphone-cli)")
    voip, remote = wk.apns_token(), wk.apns_token()
    with wk.Rig(ctx, algorithms=(), push_config="message_wait = %d\n" % msg.MESSAGE_WAIT) as rig:
        rig.watch.subscribe(remote, topic=BUNDLE)
        device = Device(ctx, rig, "udp", voip, remote=remote)
        try:
            first = device.start("first")
            wk.wait_contacts(rig.udp, lambda cs: any("pn-prid=" + voip in c for c in cs),
                             "linphonec's binding with push params")
            if how == "kill":
                first.kill(signal.SIGKILL)  # the OS kills the app: no un-REGISTER
            else:
                first.quit()
                wk.wait_contacts(rig.udp, lambda cs: not cs, "after linphonec's un-REGISTER")
            text = "dinner at 8? %s" % os.urandom(4).hex()
            msg.expect_202(rig, text)  # at the end of message_wait, the killed app silent or not
            push = rig.watch.wait_push(remote, event="message")
            headers = push.get("headers") or {}
            check(headers.get("apns-push-type") == "alert" and
                  headers.get("apns-topic") == BUNDLE, "message push headers %r" % headers)
            check(not rig.watch.seen(voip), "a push to the VoIP token: %r" % rig.watch.seen(voip))
            back = device.start("back")
            shown = "Message received from sip:bob@127.0.0.1: " + text
            wait_match(lambda: output(back), re.escape(shown), "the kept message not printed")
            report = wait_match(rig.server.log, r"stored message \d+ for \S+ \S+ to device \S+ "
                                r"\([^)]*\)", "no delivery report in sipwake's log").group(0)
            check(report.endswith("delivered to device %s (200 Ok)" % report.split()[-3]),
                  "delivery report %r" % report)
            ctx.note("linphonec printed %r; sipwake: %s" % (shown, report))
            back.quit()
            # linphonec answered bob's MESSAGE with 200 (its own IMDN to bob, message/imdn+xml,
            # gets sipwake's 407 and then 480: bob has no binding here).
            answers = {m.splitlines()[0].strip() for m in back.messages("SIP/2.0 ")
                       if re.search(r"(?im)^CSeq:\s*\d+ MESSAGE", m) and
                       re.search(r"(?im)^(From|f):[^\r\n]*sip:bob@", m)}
            check(answers == {"SIP/2.0 200 Ok"}, "linphonec's answers to MESSAGE: %r" % answers)
            # Once: linphonec started again registers and gets nothing more.
            again = device.start("again")
            wk.wait_contacts(rig.udp, lambda cs: any("pn-prid=" + voip in c for c in cs),
                             "linphonec registered again")
            again.quit()
            log = rig.server.log()
            check(len(re.findall(r"stored messages? for \S+ to device", log)) == 1 and
                  len(re.findall(r"stored message \d+ for", log)) == 1,
                  "one delivery expected:\n" + log[-3000:])
            check(output(back).count(text) == 1 and text not in output(again),
                  "the message reached linphonec more than once:\n%s\n%s"
                  % (output(back)[-2000:], output(again)[-2000:]))
            rig.server_alive()
        finally:
            device.close()


def test_message_linphonec_stored(ctx):
    linphonec_stored(ctx, "quit")


def test_message_linphonec_stored_kill(ctx):
    linphonec_stored(ctx, "kill")


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}


def main():
    return ph.main(TESTS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
