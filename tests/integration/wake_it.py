#!/usr/bin/env python3
"""End-to-end wake tests: the real sipwake binary pushing through the real sipwake-fakepns
(HTTP/2 + TLS, APNs and FCM v1) to tools/sipwake-phone (each push dialect) and to a real
third-party client (baresip), on loopback. Helpers come from phone_it.py / sipwake_it.py.

    wake_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --phone tools/sipwake-phone/sipwake-phone --work-dir /tmp/it wake_abto_fcm

Every push is asserted on the fake's own record: the test subscribes to the fake's control port
for the device token and sees exactly what the fake accepted (headers and payload).

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import contextlib
import json
import math
import os
import re
import secrets
import select
import shutil
import signal
import socket
import sys
import time
import urllib.parse
import uuid
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
import phone_it as ph  # noqa: E402
import calls_it  # noqa: E402
from sipwake_it import Fail, Skip, check  # noqa: E402
from phone_it import BUNDLE, PROJECT, names, read_events  # noqa: E402

PUSH_PARAM_MARKS = ("pn-", "push-token", "app-id")  # must never reach the phone's Request-URI


def apns_token():
    return secrets.token_hex(32)


def fcm_token():
    """FCM-like registration token with a ':' (sent %3a-escaped by ABTO-style clients)."""
    return "d%s:APA91b%s" % (secrets.token_hex(6), secrets.token_hex(40))


def field(obj, key):
    """The first value of `key` anywhere in a push payload (APNs top level, FCM message.data)."""
    if isinstance(obj, dict):
        if key in obj and not isinstance(obj[key], (dict, list)):
            return obj[key]
        for v in obj.values():
            r = field(v, key)
            if r is not None:
                return r
    return None


# ---------------------------------------------------------------------------------------------
# The fake's control port seen from the test: subscriptions, scripts, stats, pushes received.


class Watch:
    def __init__(self, control):
        host, _, port = control.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b""
        self.pushes = []
        self.replies = []

    def _pump(self, timeout):
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if r:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Fail("sipwake-fakepns closed its control connection")
            self.buf += chunk
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            obj = json.loads(line)
            # "refused": a scripted failure recorded on request (see retry_then_wake); "lost":
            # accepted and never delivered (the "lose" op, see repush_rig)
            (self.pushes if obj.get("event") in ("push", "refused", "lost")
             else self.replies).append(obj)

    def request(self, obj, timeout=10):
        self.sock.sendall((json.dumps(obj) + "\n").encode())
        deadline = time.monotonic() + timeout
        while not self.replies:
            left = deadline - time.monotonic()
            check(left > 0, "no answer from the fake's control port to %r" % obj)
            self._pump(left)
        reply = self.replies.pop(0)
        check(reply.get("ok"), "control request %r refused: %r" % (obj, reply))
        return reply

    def subscribe(self, token, topic=None, project=None):
        req = {"op": "subscribe", "token": token}
        if topic:
            req["topic"] = topic
        if project:
            req["project"] = project
        self.request(req)

    def script(self, token, responses):
        self.request({"op": "script", "token": token, "responses": responses})

    def stats(self):
        return self.request({"op": "stats"})

    def lose(self, token, count):
        """The next `count` pushes the fake accepts for `token` are never delivered."""
        self.request({"op": "lose", "token": token, "count": count})

    def seen(self, token, event=None):
        return [p for p in self.pushes if p.get("token") == token and
                (event is None or field(p.get("payload"), "event") == event)]

    def wait_push(self, token, event="call", timeout=20):
        """The first push the fake accepted for `token` whose payload event is `event`."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.seen(token, event)
            if got:
                return got[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("no %s push for token %s… within %ss (pushes seen: %r)"
                           % (event, token[:8], timeout, [(p.get("token", "")[:8],
                                                          field(p.get("payload"), "event"))
                                                         for p in self.pushes]))
            self._pump(left)

    def wait_pushes(self, token, n, event="call", timeout=20):
        """The first `n` pushes for `token` with payload event `event` (refused ones recorded by
        a script step with "record" included), once that many arrived."""
        deadline = time.monotonic() + timeout
        while len(self.seen(token, event)) < n:
            left = deadline - time.monotonic()
            check(left > 0, "%d %s pushes for token %s… expected, got %r"
                  % (n, event, token[:8], self.seen(token, event)))
            self._pump(left)
        return self.seen(token, event)[:n]

    def drain(self):
        self._pump(0)

    def close(self):
        self.sock.close()


def check_call_push(push, provider, token, call_id, voip=True, ring_timeout=None,
                    callee="alice@127.0.0.1"):
    """The fake's record of a call push: right service, token, type/topic, call fields."""
    check(push["provider"] == provider and push["token"] == token, "push %r" % push)
    payload, headers = push.get("payload") or {}, push.get("headers") or {}
    if provider == "apns":
        want_type, want_topic = ("voip", BUNDLE + ".voip") if voip else ("alert", BUNDLE)
        check(headers.get("apns-push-type") == want_type and
              headers.get("apns-topic") == want_topic and headers.get("apns-priority") == "10",
              "APNs headers %r, want type %s topic %s priority 10" % (headers, want_type,
                                                                       want_topic))
        check(voip == ("alert" not in (payload.get("aps") or {})), "APNs payload %r" % payload)
    else:
        check(payload.get("token") == token, "FCM message token %r" % payload.get("token"))
        android = payload.get("android") or {}
        check(android.get("priority") == "high", "FCM android %r" % android)
        if ring_timeout:
            check(android.get("ttl") == "%ds" % ring_timeout, "FCM ttl %r" % android)
        check("notification" not in payload and isinstance(payload.get("data"), dict),
              "FCM message is not data-only: %r" % payload)
    check(field(payload, "event") == "call", "push event %r" % field(payload, "event"))
    check(field(payload, "call_id") == call_id, "push call_id %r, INVITE Call-ID %s"
          % (field(payload, "call_id"), call_id))
    check(callee in (field(payload, "callee_aor") or ""), "callee_aor %r"
          % field(payload, "callee_aor"))
    check("bob@" in (field(payload, "caller_uri") or ""), "caller_uri %r"
          % field(payload, "caller_uri"))
    check(re.match(r"^[0-9a-f-]{36}$", field(payload, "call_uuid") or ""), "call_uuid %r"
          % field(payload, "call_uuid"))


# ---------------------------------------------------------------------------------------------
# One sipwake with an APNs and an FCM app, both pointed at one fake.


def push_section(ctx, fake, service_account, ring_timeout, push_config="", apns_id=BUNDLE,
                 fcm_id=PROJECT):
    """[push] with `push_config` lines and an APNs and an FCM app, both against `fake`."""
    return ("\n[push]\nring_timeout = %d\n%s\n"
            "[[push.app]]\nprovider = \"apns\"\nid = \"%s\"\nteam_id = \"%s\"\n"
            "key_id = \"%s\"\nkey_file = \"%s\"\nendpoint = \"https://127.0.0.1:%d\"\n"
            "ca_file = \"%s\"\n\n"
            "[[push.app]]\nprovider = \"fcm\"\nid = \"%s\"\nservice_account_file = \"%s\"\n"
            "endpoint = \"https://127.0.0.1:%d\"\nca_file = \"%s\"\n"
            % (ring_timeout, push_config, apns_id, ph.TEAM_ID, ph.KEY_ID, ctx.work + "/apns.p8",
               fake.port, fake.ca, fcm_id, service_account, fake.port, fake.ca))


def close_clients(phones, callers, watch):
    """Ends a test's phones, callers and push watch (before the servers they talk to stop)."""
    for p in phones:
        p.kill()
    for c in callers:
        c.close()
    if watch:
        watch.close()


class Rig:
    """`algorithms`: [auth] algorithms (None or (): the default); `apns_id` / `fcm_id`: the
    [[push.app]] ids; `domains`: served domains (default the built-in ones); `aors`: more users
    as (user@domain, password); `extra_config`: more TOML after the push apps (e.g. [tls]);
    `push_config`: more [push] keys (TOML lines); `fake_args`: more sipwake-fakepns options."""

    def __init__(self, ctx, ring_timeout=15, users=("alice", "bob", "carol"),
                 algorithms=("MD5", "SHA-256"), apns_id=BUNDLE, fcm_id=PROJECT, domains=(),
                 aors=(), extra_config="", push_config="", fake_args=()):
        if not ctx.fakepns or not os.access(ctx.fakepns, os.X_OK):
            raise Skip("sipwake-fakepns not given (--fakepns)")
        if not shutil.which("openssl"):
            raise Skip("openssl CLI missing")
        self.ctx, self.ring_timeout = ctx, ring_timeout
        self.server = self.fake = self.watch = None
        self.phones, self.callers = [], []
        ph.make_keys(ctx)
        self.fake, sa = ph.fake_with_service_account(ctx, fake_args)
        try:
            push = push_section(ctx, self.fake, sa, ring_timeout, push_config, apns_id, fcm_id)
            self.config = ph.server_config(ctx, algorithms, push + extra_config)
            for u in users:
                it.add_user(ctx, "%s@127.0.0.1" % u, u + "-pw")
            for aor, password in aors:
                it.add_user(ctx, aor, password)
            args = ["--config", self.config]
            for d in domains:
                args += ["--domain", d]
            self.server_args = args
            self.server, self.ports = it.start_server(ctx, args)
            self.watch = Watch(self.fake.control)
        except BaseException:
            self.close(failed=True)
            raise

    @property
    def udp(self):
        return self.ports[0]

    def phone(self, name, user, args, control=True):
        base = ["--server", "tcp:127.0.0.1:%d" % self.ports[1], "--user", user + "@127.0.0.1",
                "--password", user + "-pw", "--team", ph.TEAM_ID]
        if control:
            base += ["--fakepns-control", self.fake.control]
        p = ph.PhoneProc(self.ctx, name, base + list(args))
        self.phones.append(p)
        return p

    def caller(self, callee="alice"):
        """bob@127.0.0.1 calling `callee` (a user of 127.0.0.1, or user@domain)."""
        aor = callee if "@" in callee else callee + "@127.0.0.1"
        c = ph.Caller(self.ctx, self.udp, "bob", "bob-pw", aor)
        self.callers.append(c)
        return c

    def restart(self, sig=signal.SIGKILL):
        """Stops sipwake with `sig` and starts it again on the same ports and store."""
        self.server.stop(sig)
        self.server = it.Sipwake(self.ctx, it.listen_args(*self.ports) + self.server_args,
                                 name="sipwake-restarted")
        self.server.start()

    def server_alive(self):
        check(self.server.alive(), "sipwake died:\n" + self.server.log()[-3000:])

    def close(self, failed=False):
        close_clients(self.phones, self.callers, self.watch)
        code = self.server.stop() if self.server else 0
        if self.fake:
            self.fake.stop()
        if not failed:
            check(code == 0, "sipwake exited with %s after SIGTERM:\n%s"
                  % (code, self.server.log()[-3000:]))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
        return False


def phone_order(p, order):
    seen = [e for e in names(read_events(p.events)) if e in order]
    check(seen == order, "phone events %r, expected %r" % (seen, order))


def check_forwarded_invite(p):
    invites = [e for e in read_events(p.events) if e["event"] == "invite_received"]
    check(len(invites) == 1, "INVITE reached the phone %d times" % len(invites))
    ruri = invites[0]["ruri"].lower()
    check(not any(m in ruri for m in PUSH_PARAM_MARKS),
          "push params leaked into the forwarded Request-URI: %s" % ruri)
    return invites[0]


WAKE_ORDER = ["registered", "backgrounded", "push_received", "reregistered", "invite_received",
              "answered", "ack_received", "bye", "done"]


# ---------------------------------------------------------------------------------------------
# 1. Each dialect end to end


def wake_dialect(ctx, dialect, provider, token, extra=(), subscribe_topic=None, voip=True,
                 marker=None, rig_args=None):
    """register with `dialect` params → background → INVITE → the right push on the fake's
    record → re-REGISTER → INVITE without push params → 200 / ACK / BYE."""
    with Rig(ctx, **(rig_args or {})) as rig:
        if provider == "apns":
            rig.watch.subscribe(token, topic=subscribe_topic)
        else:
            rig.watch.subscribe(token, project=PROJECT)
        p = rig.phone("wake", "alice", ["--dialect", dialect, "--provider", provider,
                                        "--token", token, "--background-after-register",
                                        "--calls", "1", "--on-call", "answer",
                                        "--answer-after-ms", "100"] + list(extra))
        reg = p.wait_event("registered")
        mine = [c for c in reg["contacts"] if reg["local"] in c]
        check(len(mine) == 1 and marker in mine[0], "binding without %s: %r" % (marker, mine))
        want_caps = '+sip.pns="%s"' % provider
        check(any(want_caps in c for c in reg["feature_caps"]),
              "200 OK Feature-Caps %r, want %s" % (reg["feature_caps"], want_caps))
        p.wait_event("backgrounded")
        caller = rig.caller()
        final = caller.invite(timeout=25)
        it.expect_code(final, 200, "INVITE to the woken phone")
        it.expect_code(caller.ack_and_bye(final), 200, "BYE")
        check_call_push(rig.watch.wait_push(token), provider, token, caller.call_id, voip=voip,
                        ring_timeout=rig.ring_timeout)
        code = p.wait()
        check(code == 0, "phone exit %d:\n%s" % (code, p.log()))
        phone_order(p, WAKE_ORDER)
        check_forwarded_invite(p)
        check(len(rig.watch.seen(token, "call")) == 1, "more than one call push: %r"
              % rig.watch.seen(token))
        rig.server_alive()


def test_wake_abto_fcm(ctx):
    """ABTO SDK: push-token-type=firebase, push-token-app, push-token-id with ':' as %3a."""
    tok = fcm_token()
    wake_dialect(ctx, "abto", "fcm", tok, ["--app", PROJECT], marker="push-token-id=")


def test_wake_abto_apns(ctx):
    """ABTO SDK: push-token-type=apple, push-token-app = bundle id → VoIP push."""
    tok = apns_token()
    wake_dialect(ctx, "abto", "apns", tok, ["--app", BUNDLE], subscribe_topic=BUNDLE + ".voip",
                 marker="push-token-type=apple")


def test_wake_pjsip_apns(ctx):
    """react-native-pjsip: app-id, pn-voip-tok (the call push goes there), pn-im-tok."""
    tok, im = apns_token(), apns_token()
    wake_dialect(ctx, "pjsip", "apns", tok, ["--app", BUNDLE, "--im-token", im],
                 subscribe_topic=BUNDLE + ".voip", marker="pn-voip-tok=")


def test_wake_linphone_apns(ctx):
    """Linphone legacy: pn-type=apple, app-id=<bundle>.voip.prod → PushKit token, VoIP push."""
    tok = apns_token()
    wake_dialect(ctx, "linphone", "apns", tok, ["--app", BUNDLE + ".voip", "--no-subscribe-topic"],
                 subscribe_topic=BUNDLE + ".voip", marker="pn-tok=")


def test_wake_linphone_apns_dev_remote(ctx):
    """Linphone legacy: app-id=<bundle>.dev (sandbox, remote token) → the call is an alert push
    on the bundle topic (no PushKit token to send a VoIP push to)."""
    tok = apns_token()
    wake_dialect(ctx, "linphone", "apns", tok, ["--app", BUNDLE, "--sandbox",
                                                "--no-subscribe-topic"],
                 subscribe_topic=BUNDLE, voip=False, marker="app-id=%s.dev" % BUNDLE)


# ---------------------------------------------------------------------------------------------
# 2. Scenarios


def sleeping_phone(rig, name, user, token, args=(), dialect="rfc8599", provider="fcm"):
    """A phone that registers, goes to the background and exits: nothing will wake it."""
    app = PROJECT if provider == "fcm" else BUNDLE
    p = rig.phone(name, user, ["--dialect", dialect, "--provider", provider, "--app", app,
                               "--token", token, "--background-after-register", "--calls", "0"]
                  + list(args), control=False)
    code = p.wait()
    check(code == 0, "%s exit %d:\n%s" % (name, code, p.log()))
    check(names(read_events(p.events))[:3] == ["start", "registered", "backgrounded"],
          "%s events %r" % (name, names(read_events(p.events))))
    return p


def call_failing(rig, code, what, callee="alice"):
    """An INVITE whose final answer must be `code` (ACKed); returns (caller, seconds taken)."""
    caller = rig.caller(callee)
    start = time.monotonic()
    final = caller.invite(timeout=25)
    took = time.monotonic() - start
    it.expect_code(final, code, what)
    caller.ack_non2xx(final)
    return caller, took


def test_wake_cancel_callkit(ctx):
    """Caller CANCEL while the phone sleeps: 487 to the caller, a missed-call alert push; the iOS
    app registering afterwards (it reported the call to CallKit) gets NO INVITE but the cancel
    push again, same call UUID (docs/life-of-a-call.md, CallKit rule)."""
    voip, im = apns_token(), apns_token()
    with Rig(ctx) as rig:
        rig.watch.subscribe(voip, topic=BUNDLE + ".voip")
        rig.watch.subscribe(im, topic=BUNDLE)
        instance = "urn:uuid:%s" % uuid.uuid4()
        args = ["--instance", instance, "--im-token", im]
        sleeping_phone(rig, "sleep", "alice", voip, args, dialect="pjsip", provider="apns")
        caller = rig.caller()
        pushed = {}

        def cancel_after_push(c):
            pushed["call"] = rig.watch.wait_push(voip, "call")
            c.cancel()
        final = caller.invite(timeout=25, on_trying=cancel_after_push)
        it.expect_code(final, 487, "INVITE cancelled by the caller")
        caller.ack_non2xx(final)
        check(any(r.code == 200 and "CANCEL" in (r.header("cseq") or "") for r in caller.other),
              "no 200 to the CANCEL: %r" % caller.other)
        call = pushed["call"]
        check_call_push(call, "apns", voip, caller.call_id)
        uuid_ = field(call["payload"], "call_uuid")
        missed = rig.watch.wait_push(im, "missed")
        check(missed["headers"].get("apns-push-type") == "alert" and
              missed["headers"].get("apns-topic") == BUNDLE, "missed push %r" % missed)
        check(field(missed["payload"], "call_uuid") == uuid_, "missed push for another call")
        # The app, woken by the VoIP push, registers only now.
        late = rig.phone("late", "alice", ["--dialect", "pjsip", "--provider", "apns", "--app",
                                           BUNDLE, "--token", voip] + args + ["--calls", "1"],
                         control=False)
        late.wait_event("registered")
        again = rig.watch.wait_push(im, "cancel")
        # Never VoIP (PushKit would make the app report a new call): a background push, which
        # the now running app receives (docs/push.md: kCancel → background, priority 5).
        check(again["headers"].get("apns-push-type") == "background" and
              again["headers"].get("apns-priority") == "5", "late cancel push %r" % again)
        check(field(again["payload"], "call_uuid") == uuid_, "cancel push for another call %r"
              % again)
        # The INVITE, had it been sent, would have been sent with the cancel push (same event).
        # A bounded look for it: two seconds, then the phone must still be waiting.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            check("invite_received" not in names(read_events(late.events)),
                  "the late-registering phone got an INVITE for a cancelled call")
            time.sleep(0.05)  # bounded negative check
        check(late.proc.poll() is None, "late phone exited:\n" + late.log())
        check(len(rig.watch.seen(voip, "call")) == 1, "call pushed again: %r" % rig.watch.pushes)
        rig.server_alive()


def test_wake_answered_elsewhere(ctx):
    """Two sleeping devices of alice (APNs and FCM) are woken; the first answers → the other
    gets a CANCEL if it was already ringing, and in every case an answered_elsewhere push."""
    t1, t2 = apns_token(), fcm_token()
    with Rig(ctx) as rig:
        rig.watch.subscribe(t1)
        rig.watch.subscribe(t2)
        d1 = rig.phone("d1", "alice", ["--dialect", "rfc8599", "--provider", "apns", "--app",
                                       BUNDLE, "--token", t1, "--background-after-register",
                                       "--calls", "1", "--on-call", "answer",
                                       "--answer-after-ms", "1500"])
        d2 = rig.phone("d2", "alice", ["--dialect", "abto", "--provider", "fcm", "--app", PROJECT,
                                       "--token", t2, "--background-after-register", "--calls",
                                       "1", "--on-call", "ignore"])
        d1.wait_event("backgrounded")
        d2.wait_event("backgrounded")
        caller = rig.caller()
        final = caller.invite(timeout=25)
        it.expect_code(final, 200, "INVITE answered by d1")
        it.expect_code(caller.ack_and_bye(final), 200, "BYE")
        check(d1.wait() == 0, "d1 exit:\n" + d1.log())
        check_call_push(rig.watch.wait_push(t1), "apns", t1, caller.call_id)
        check_call_push(rig.watch.wait_push(t2), "fcm", t2, caller.call_id)
        elsewhere = rig.watch.wait_push(t2, "answered_elsewhere")
        check(field(elsewhere["payload"], "call_id") == caller.call_id, "push %r" % elsewhere)
        check(not rig.watch.seen(t1, "answered_elsewhere"), "the answering device got a cancel")
        d2_events = names(read_events(d2.events))
        if "invite_received" in d2_events:  # it woke before d1 answered: it was ringing
            d2.wait_event("cancel_received")
            check(d2.wait() == 0, "d2 exit:\n" + d2.log())
        ctx.note("d2 events: %r" % names(read_events(d2.events)))
        rig.server_alive()


def test_wake_ring_timeout(ctx):
    """Nobody wakes: 480 after the configured ring timeout (3 s), a missed-call push."""
    tok = fcm_token()
    with Rig(ctx, ring_timeout=3) as rig:
        rig.watch.subscribe(tok, project=PROJECT)
        sleeping_phone(rig, "sleep", "alice", tok)
        caller, took = call_failing(rig, 480, "INVITE nobody answered")
        check(2.9 <= took <= 15, "480 after %.1fs, ring timeout 3s" % took)
        check_call_push(rig.watch.wait_push(tok), "fcm", tok, caller.call_id, ring_timeout=3)
        missed = rig.watch.wait_push(tok, "missed")
        check(field(missed["payload"], "call_id") == caller.call_id, "missed %r" % missed)
        check(100 in caller.provisional, "no 100 Trying while waiting: %r" % caller.provisional)
        rig.server_alive()


def test_wake_410_removes_binding(ctx):
    """The fake answers 410 Unregistered → the caller gets 480 at once, the push binding is
    gone: the next INVITE sends no push and gets 480."""
    tok = apns_token()
    with Rig(ctx, ring_timeout=20) as rig:
        rig.watch.subscribe(tok, topic=BUNDLE + ".voip")
        rig.watch.script(tok, [{"status": 410, "reason": "Unregistered"}])
        sleeping_phone(rig, "sleep", "alice", tok, provider="apns")
        # sipwake keeps a binding registered at or after the 410's timestamp, both in whole
        # seconds: let the wall clock leave the second of the last REGISTER (bounded, <= 1 s).
        registered = int(time.time())
        while int(time.time()) <= registered:
            time.sleep(0.02)
        _, took = call_failing(rig, 480, "INVITE to a dead token")
        check(took < 15, "480 after %.1fs: not at once on the 410 (ring timeout 20 s)" % took)
        stats = rig.watch.stats()
        check(stats["rejected"].get("apns:Unregistered") == 1 and stats["accepted"] == 0,
              "fake stats %r" % stats)
        call_failing(rig, 480, "second INVITE")
        stats2 = rig.watch.stats()
        check(stats2["accepted"] == 0 and stats2["rejected_total"] == stats["rejected_total"],
              "a push was attempted for the removed binding: %r → %r" % (stats, stats2))
        rig.server_alive()


def unix_ms():
    return time.time() * 1000


def check_sent_at(push, before_ms, after_ms):
    """`sent_at` in the payload is unix ms within [before_ms, after_ms]; returns it."""
    sent_at = int(field(push["payload"], "sent_at"))
    check(math.floor(before_ms) <= sent_at <= math.ceil(after_ms),
          "sent_at %d not within [%d, %d] (the push request's own send time in ms)"
          % (sent_at, before_ms, after_ms))
    return sent_at


def retry_then_wake(ctx, provider, failure, rejected_key):
    """The fake answers `failure` to the first push → sipwake retries within the ring window →
    the phone wakes and the call completes. Each attempt carries its own sent_at (the fake
    records the refused one too)."""
    tok = apns_token() if provider == "apns" else fcm_token()
    app = BUNDLE if provider == "apns" else PROJECT
    with Rig(ctx, ring_timeout=20) as rig:
        rig.watch.subscribe(tok)
        rig.watch.script(tok, [dict(failure, record=True)])
        p = rig.phone("wake", "alice", ["--dialect", "rfc8599", "--provider", provider, "--app",
                                        app, "--token", tok, "--background-after-register",
                                        "--calls", "1", "--answer-after-ms", "100"])
        p.wait_event("backgrounded")
        caller = rig.caller()
        before = unix_ms()
        final = caller.invite(timeout=25)
        it.expect_code(final, 200, "INVITE after a %r" % failure)
        it.expect_code(caller.ack_and_bye(final), 200, "BYE")
        after = unix_ms()
        attempts = rig.watch.wait_pushes(tok, 2)
        check(len(rig.watch.seen(tok, "call")) == 2 and attempts[0].get("scripted_status") == failure["status"]
              and "scripted_status" not in attempts[1],
              "want the refused attempt then the accepted one: %r" % attempts)
        check_call_push(attempts[1], provider, tok, caller.call_id)
        first, second = (check_sent_at(a, before, after) for a in attempts)
        check(second > first, "the retry's sent_at %d is not later than the first attempt's %d"
              % (second, first))
        stats = rig.watch.stats()
        check(stats["rejected"] == {rejected_key: 1} and stats["accepted"] >= 1,
              "fake stats %r, want exactly one %s then an accepted push" % (stats, rejected_key))
        check(p.wait() == 0, "phone exit:\n" + p.log())
        phone_order(p, WAKE_ORDER)
        rig.server_alive()


def test_wake_429_retry_apns(ctx):
    """APNs 429 TooManyRequests, then success: retried (backoff) within the ring window."""
    retry_then_wake(ctx, "apns", {"status": 429}, "apns:TooManyRequests")


def test_wake_503_retry_fcm(ctx):
    """FCM 503 UNAVAILABLE, then success: retried within the ring window. (An FCM 429 is
    QUOTA_EXCEEDED, retried only after >= 60 s: docs/push.md — longer than any ring window.)"""
    retry_then_wake(ctx, "fcm", {"status": 503}, "fcm:UNAVAILABLE")


def repush_rig(ctx, ring_timeout, max_repushes=2):
    """A Rig whose re-push interval is 2 s for every provider."""
    keys = "".join("repush_interval_%s = 2\n" % p for p in ("apns", "fcm", "webpush"))
    return Rig(ctx, ring_timeout=ring_timeout,
               push_config=keys + "max_repushes = %d\n" % max_repushes)


def delivered_and_lost(watch, token):
    return ([p for p in watch.seen(token, "call") if p.get("event") == "push"],
            [p for p in watch.seen(token, "call") if p.get("event") == "lost"])


def repush_wakes(ctx, provider):
    """The fake accepts the first call push and loses it: sipwake pushes again after the
    provider's re-push interval, with the same call UUID; that push wakes the phone and the
    call connects."""
    tok = apns_token() if provider == "apns" else fcm_token()
    app = BUNDLE if provider == "apns" else PROJECT
    with repush_rig(ctx, ring_timeout=20) as rig:
        rig.watch.subscribe(tok)
        rig.watch.lose(tok, 1)
        p = rig.phone("wake", "alice", ["--dialect", "rfc8599", "--provider", provider, "--app",
                                        app, "--token", tok, "--background-after-register",
                                        "--calls", "1", "--answer-after-ms", "100"])
        p.wait_event("backgrounded")
        caller = rig.caller()
        start = time.monotonic()
        final = caller.invite(timeout=25)
        took = time.monotonic() - start
        it.expect_code(final, 200, "INVITE whose first push was lost")
        it.expect_code(caller.ack_and_bye(final), 200, "BYE")
        rig.watch.wait_pushes(tok, 2)
        delivered, lost = delivered_and_lost(rig.watch, tok)
        check(len(lost) == 1 and len(delivered) == 1,
              "want one lost and one delivered call push: %r" % rig.watch.pushes)
        check_call_push(delivered[0], provider, tok, caller.call_id)
        check_call_push(lost[0], provider, tok, caller.call_id)
        uuids = {field(x["payload"], "call_uuid") for x in lost + delivered}
        check(len(uuids) == 1 and None not in uuids, "re-push with another call UUID: %r" % uuids)
        check(2 <= took < 20, "answered after %.1f s: not by the re-push after 2 s" % took)
        stats = rig.watch.stats()
        check(stats["lost"] == 1, "fake stats %r" % stats)
        check(p.wait() == 0, "phone exit:\n" + p.log())
        phone_order(p, WAKE_ORDER)
        check("re-push 1 of 2" in rig.server.log(), "re-push not on the call's timeline")
        rig.server_alive()


def test_wake_repush_lost_push_fcm(ctx):
    repush_wakes(ctx, "fcm")


def test_wake_repush_lost_push_apns(ctx):
    repush_wakes(ctx, "apns")


def test_wake_repush_not_when_registered(ctx):
    """The first push wakes the phone, which answers only after 4 s: no re-push (interval 2 s)."""
    tok = fcm_token()
    with repush_rig(ctx, ring_timeout=20) as rig:
        rig.watch.subscribe(tok)
        p = rig.phone("wake", "alice", ["--dialect", "rfc8599", "--provider", "fcm", "--app",
                                        PROJECT, "--token", tok, "--background-after-register",
                                        "--calls", "1", "--answer-after-ms", "4000"])
        p.wait_event("backgrounded")
        caller = rig.caller()
        final = caller.invite(timeout=25)
        it.expect_code(final, 200, "INVITE")
        it.expect_code(caller.ack_and_bye(final), 200, "BYE")
        check(p.wait() == 0, "phone exit:\n" + p.log())
        rig.watch.wait_push(tok)
        # The call lasted > 4 s, twice the interval: a re-push would have been accepted before
        # the BYE, and the fake reports each accepted push before answering a later "stats".
        stats = rig.watch.stats()
        delivered, lost = delivered_and_lost(rig.watch, tok)
        check(len(delivered) == 1 and not lost, "pushes %r" % rig.watch.pushes)
        check(stats["accepted_fcm"] == 1, "fake stats %r" % stats)
        rig.server_alive()


def test_wake_repush_bounded(ctx):
    """Every push is lost: the phone is pushed 1 + max_repushes times (same UUID), then the
    caller gets 480 at the ring timeout."""
    tok = fcm_token()
    with repush_rig(ctx, ring_timeout=9, max_repushes=2) as rig:
        rig.watch.subscribe(tok, project=PROJECT)
        rig.watch.lose(tok, 100)
        sleeping_phone(rig, "sleep", "alice", tok)
        caller, took = call_failing(rig, 480, "INVITE whose pushes are all lost")
        rig.watch.wait_push(tok, "missed")
        delivered, lost = delivered_and_lost(rig.watch, tok)
        check(len(lost) == 3 and not delivered, "want 3 lost call pushes: %r" % rig.watch.pushes)
        uuids = {field(x["payload"], "call_uuid") for x in lost}
        check(len(uuids) == 1, "re-pushes with other call UUIDs: %r" % uuids)
        check(rig.watch.stats()["accepted_fcm"] == 4, "fake stats %r" % rig.watch.stats())
        rig.server_alive()


def opted_out_device(rig, user, token):
    """A device of `user` that registered with push params (FCM `token`, 130 s) and then again
    without them (same +sip.instance, 130 s): it opted out of push."""
    reg = it.Registration(it.UdpClient(("127.0.0.1", rig.udp)), rig.udp, user, user + "-pw")
    instance = ';+sip.instance="<urn:uuid:%s>"' % uuid.uuid4()
    pushed = "<sip:%s@%s:%d;transport=udp;pn-provider=fcm;pn-prid=%s;pn-param=%s>%s" % (
        user, reg.c.local[0], reg.c.local[1], token, PROJECT, instance)
    it.expect_code(reg.send(["Contact: " + pushed, "Expires: 130"]), 200, "push REGISTER")
    it.expect_code(reg.send(["Contact: " + reg.contact + instance, "Expires: 130"]), 200,
                   "REGISTER without push params")


def test_wake_refresh_push(ctx):
    """[push] refresh = "wake" (RFC 8599 §5.5): a phone that went to sleep and whose push binding
    lapses in 130 s gets a refresh push refresh_lead (120 s) before, and registers again; a device
    of the same user that opted out (REGISTER without push params), due earlier, gets none."""
    tok, opted = fcm_token(), fcm_token()
    with Rig(ctx, push_config='push_ttl = 130\nrefresh = "wake"\nrefresh_lead = 120\n') as rig:
        rig.watch.subscribe(tok, project=PROJECT)
        rig.watch.subscribe(opted, project=PROJECT)
        opted_out_device(rig, "alice", opted)
        p = rig.phone("sleep", "alice", ["--dialect", "rfc8599", "--provider", "fcm", "--app",
                                         PROJECT, "--token", tok, "--expires", "130",
                                         "--background-after-register", "--calls", "1",
                                         "--timeout", "60"])
        p.wait_event("backgrounded")
        asleep = time.monotonic()
        push = rig.watch.wait_push(tok, event="refresh", timeout=30)
        took = time.monotonic() - asleep
        check(took < 25, "refresh push %.1f s after sleep: not 120 s before the 130 s TTL" % took)
        check(field(push["payload"], "call_id") in (None, ""), "refresh push with a call: %r" % push)
        p.wait_event("refreshed", timeout=15)
        # The fake reports each accepted push before answering a later "stats".
        stats = rig.watch.stats()
        check(not rig.watch.seen(opted), "opted-out device pushed: %r" % rig.watch.seen(opted))
        check(stats["accepted_fcm"] == 1, "fake stats %r" % stats)
        check("refresh push to device" in rig.server.log(), "refresh push not logged")
        rig.server_alive()


# ---------------------------------------------------------------------------------------------
# 3. The ABTO SDK's documented REGISTER, byte for byte; id = "*" apps


ABTO_SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "push",
                         "abto-seed-register.sip")
ABTO_DOMAIN = "172.30.30.150"  # the seed's Request-URI and To domain


def seed_register(client, msg, password):
    """Sends `msg` over `client`; answers a 401 as a SIP UA does: the same bytes with a new Via
    branch, CSeq + 1 and an Authorization header (MD5) before Content-Length. The final
    response. The responses come back to the socket (the Via has rport: RFC 3581)."""
    r = client.exchange(msg)
    check(r is not None, "no response to the ABTO REGISTER (rport ignored?)")
    if r.code != 401:
        return r
    ruri = msg.split(b" ", 2)[1].decode()
    user = re.search(rb"From: <sip:([^@]+)@", msg).group(1).decode()
    auth = it.digest_authorization(r.headers.get("www-authenticate", []), "REGISTER", ruri, user,
                                   password, want="MD5")
    cseq = int(re.search(rb"CSeq: (\d+) ", msg).group(1))
    again = re.sub(rb"(branch=z9hG4bK[^;\r]+)", rb"\1-auth", msg, count=1)
    again = again.replace(b"CSeq: %d " % cseq, b"CSeq: %d " % (cseq + 1), 1)
    again = again.replace(b"Content-Length:", b"Authorization: " + auth.encode() +
                          b"\r\nContent-Length:", 1)
    r = client.exchange(again)
    check(r is not None, "no response to the authenticated ABTO REGISTER")
    return r


def test_wake_abto_seed_register(ctx):
    """The REGISTER of the ABTO SDK's push document (tests/data/push/abto-seed-register.sip,
    `push-token-app=hero voip` with its space), byte for byte, sent from loopback to a sipwake
    serving 172.30.30.150 with user 404 and an FCM app whose id is the app name "hero voip":
    401 answered → 200 with Feature-Caps; the app going to the background (the same REGISTER,
    Expires: 0) keeps the push binding; a call to 404 pushes through the fake FCM to the service
    account's project, sent_at being that request's send time in ms."""
    with open(ABTO_SEED, "rb") as f:
        seed = f.read()
    token = urllib.parse.unquote(re.search(rb"push-token-id=([^;\r]+)", seed).group(1).decode())
    with Rig(ctx, ring_timeout=10, fcm_id="hero voip", domains=("127.0.0.1", ABTO_DOMAIN),
             aors=[("404@" + ABTO_DOMAIN, "404-pw")]) as rig:
        rig.watch.subscribe(token, project=PROJECT)
        phone = it.UdpClient(("127.0.0.1", rig.udp))
        try:
            ok = it.expect_code(seed_register(phone, seed, "404-pw"), 200,
                                "the ABTO SDK's REGISTER")
            mine = [c for c in it.contacts_of(ok) if "172.30.20.68:5061" in c]
            check(len(mine) == 1 and "push-token-app=hero voip" in mine[0],
                  "200 OK Contacts %r" % it.contacts_of(ok))
            check(any('+sip.pns="fcm"' in v for v in ok.headers.get("feature-caps", [])),
                  "200 OK Feature-Caps %r" % ok.headers.get("feature-caps"))
            background = re.sub(rb"(branch=z9hG4bK[^;\r]+)", rb"\1-bg", seed, count=1)
            background = background.replace(b"CSeq: 36698 ", b"CSeq: 36700 ", 1)
            background = background.replace(b"Expires: 100\r\n", b"Expires: 0\r\n", 1)
            gone = it.expect_code(seed_register(phone, background, "404-pw"), 200,
                                  "the ABTO REGISTER with Expires: 0")
            check(not any("172.30.20.68" in c for c in it.contacts_of(gone)),
                  "contact still bound: %r" % it.contacts_of(gone))
        finally:
            phone.close()
        caller = rig.caller("404@" + ABTO_DOMAIN)
        pushed = {}

        def cancel_after_push(c):
            pushed["call"] = rig.watch.wait_push(token, "call")
            pushed["after"] = unix_ms()
            c.cancel()
        before = unix_ms()
        final = caller.invite(timeout=25, on_trying=cancel_after_push)
        it.expect_code(final, 487, "INVITE to 404, cancelled after the push")
        caller.ack_non2xx(final)
        push = pushed["call"]
        check(push["provider"] == "fcm" and push["payload"].get("token") == token,
              "push %r" % push)
        check(field(push["payload"], "call_id") == caller.call_id and
              "404@" + ABTO_DOMAIN in (field(push["payload"], "callee_aor") or ""),
              "push payload %r" % push["payload"])
        check_sent_at(push, before, pushed["after"])
        rig.server_alive()


def test_wake_wildcard_apns(ctx):
    """[[push.app]] id = "*" for APNs (token auth): an RFC 8599 binding of the key's team is
    pushed with its own bundle id as topic; the phone wakes and answers."""
    tok = apns_token()
    wake_dialect(ctx, "rfc8599", "apns", tok, ["--app", BUNDLE], subscribe_topic=BUNDLE + ".voip",
                 marker="pn-provider=apns", rig_args={"apns_id": "*"})


def test_wake_wildcard_fcm(ctx):
    """[[push.app]] id = "*" for FCM: an ABTO binding naming its app "hero voip" (no project id)
    is pushed to the service account's project; the phone wakes and answers."""
    tok = fcm_token()
    wake_dialect(ctx, "abto", "fcm", tok, ["--app", "hero voip", "--no-subscribe-topic"],
                 marker="push-token-id=", rig_args={"fcm_id": "*"})


def test_wake_token_moved(ctx):
    """The same token registered under carol moves there: an INVITE for alice (its former
    owner) sends no push and gets 480; an INVITE for carol wakes the phone."""
    tok = apns_token()
    with Rig(ctx, ring_timeout=5) as rig:
        rig.watch.subscribe(tok, topic=BUNDLE + ".voip")
        sleeping_phone(rig, "alice-phone", "alice", tok, provider="apns")
        p = rig.phone("carol-phone", "carol", ["--dialect", "rfc8599", "--provider", "apns",
                                               "--app", BUNDLE, "--token", tok,
                                               "--background-after-register", "--calls", "1",
                                               "--answer-after-ms", "100"])
        p.wait_event("backgrounded")
        call_failing(rig, 480, "INVITE for the token's former owner")
        stats = rig.watch.stats()
        check(stats["accepted"] == 0 and stats["rejected_total"] == 0,
              "alice's INVITE pushed the moved token: %r" % stats)
        caller2 = rig.caller("carol")
        final = caller2.invite(timeout=20)
        it.expect_code(final, 200, "INVITE for the token's new owner")
        it.expect_code(caller2.ack_and_bye(final), 200, "BYE")
        push = rig.watch.wait_push(tok)
        check("carol@127.0.0.1" in field(push["payload"], "callee_aor"), "push %r" % push)
        check(p.wait() == 0, "carol's phone exit:\n" + p.log())
        check(len(rig.watch.seen(tok, "call")) == 1, "pushes %r" % rig.watch.pushes)
        rig.server_alive()


def test_wake_kill9_restart(ctx):
    """kill -9 sipwake after the phone went to the background, start it again on the same store:
    the push binding survived, the INVITE pushes, the phone wakes and answers."""
    tok = apns_token()
    with Rig(ctx) as rig:
        rig.watch.subscribe(tok, topic=BUNDLE + ".voip")
        p = rig.phone("wake", "alice", ["--dialect", "rfc8599", "--provider", "apns", "--app",
                                        BUNDLE, "--token", tok, "--background-after-register",
                                        "--calls", "1", "--answer-after-ms", "100"])
        p.wait_event("backgrounded")
        rig.restart(signal.SIGKILL)
        check(rig.server.proc is not None, "no restarted sipwake")
        caller = rig.caller()
        final = caller.invite(timeout=25)
        it.expect_code(final, 200, "INVITE after kill -9 and restart")
        it.expect_code(caller.ack_and_bye(final), 200, "BYE")
        check_call_push(rig.watch.wait_push(tok), "apns", tok, caller.call_id)
        check(p.wait() == 0, "phone exit:\n" + p.log())
        phone_order(p, WAKE_ORDER)
        rig.server_alive()


# ---------------------------------------------------------------------------------------------
# 3. A real third-party client (baresip 1.0, Debian package baresip-core) woken by a push


def start_baresip(ctx, name, rig, values):
    """calls_it.Baresip with the account of baresip-wake/ (push params in its Contact) and 20 s
    of audio to send (at its end baresip hangs up: "audio error: end of file")."""
    b = calls_it.Baresip(ctx, name, "alice", rig.udp, template="baresip-wake",
                         extra_values=values)
    with wave.open(os.path.join(b.dir, "source.wav"), "wb") as w:  # read when a call starts
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 160000)
    return b


def alice_contacts(udp):
    """alice's SIP contacts, asked of the registrar (an authenticated REGISTER query)."""
    c = it.UdpClient(("127.0.0.1", udp))
    try:
        r = it.Registration(c, udp, "alice", "alice-pw").send([], algorithm="MD5")
        check(r is not None and r.code == 200, "registrar query: %r" % r)
        return it.contacts_of(r)
    finally:
        c.close()


def wait_contacts(udp, pred, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        seen = alice_contacts(udp)
        if pred(seen):
            return seen
        check(time.monotonic() < deadline, "%s: alice's contacts %r" % (what, seen))
        time.sleep(0.05)  # polling the registrar, bounded by the deadline


def test_wake_baresip(ctx):
    """A real client: baresip registers with RFC 8599 push params (header params of its Contact),
    then the app goes away (baresip quits: un-REGISTER with the params, process gone). bob calls
    alice → sipwake pushes through the fake APNs → the app glue (this test, subscribed to the
    fake) starts baresip again on the push → it registers, gets the parked INVITE and answers
    automatically → 200 / ACK / BYE."""
    if calls_it.Baresip.binary() is None:
        raise Skip("baresip not installed (Debian package baresip-core)")
    tok = apns_token()
    # The default [auth]: baresip 1.0 (libre) fails on any SHA-256 challenge and gets MD5 alone.
    with Rig(ctx, ring_timeout=20, algorithms=None) as rig:
        rig.watch.subscribe(tok, topic=BUNDLE + ".voip")
        values = {"TEAM": ph.TEAM_ID, "BUNDLE": BUNDLE, "TOKEN": tok}
        first = start_baresip(ctx, "first", rig, values)
        try:
            first.connect()
            seen = wait_contacts(rig.udp, lambda cs: any("pn-prid=" + tok in c for c in cs),
                                 "baresip's binding with push params")
            check(len(seen) == 1, "contacts %r" % seen)
            first.command("quit")  # the app goes away: un-REGISTER, then exit
            check(first.proc.wait(timeout=15) == 0, "baresip exit:\n" + first.log())
        finally:
            first.stop()
        wait_contacts(rig.udp, lambda cs: not cs, "after baresip's un-REGISTER")
        woken = []

        def wake_on_push(caller):
            rig.watch.wait_push(tok)  # the app glue: a VoIP push starts the app
            b = start_baresip(ctx, "woken", rig, values)
            woken.append(b)
            b.connect()
        caller = rig.caller()
        try:
            final = caller.invite(timeout=30, on_trying=wake_on_push)
            check(woken, "baresip was not started on the push")
            it.expect_code(final, 200, "INVITE answered by the woken baresip")
            check("alice-0x" in (final.header("contact") or ""), "200 not from baresip: %s"
                  % final.header("contact"))
            it.expect_code(caller.ack_and_bye(final), 200, "BYE")
            woken[0].wait_event("CALL_ESTABLISHED")  # on the ACK
            closed = woken[0].wait_event("CALL_CLOSED")  # on the BYE
            check("end of file" not in str(closed.get("param")), "closed by baresip: %r" % closed)
        finally:
            for b in woken:
                b.stop()
        check_call_push(rig.watch.wait_push(tok), "apns", tok, caller.call_id)
        check(len(rig.watch.seen(tok, "call")) == 1, "pushes %r" % rig.watch.pushes)
        rig.server_alive()


# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# 3. Push flood (docs/security.md "Push flood"): the first attack row, with the default
# [push] limits: stranger_push_burst 3, device_push_burst 6, max_parked_per_aor 8 (strangers: 4).

STRANGER_PUSH_BURST, DEVICE_PUSH_BURST = 3, 6


class Flooder:
    """INVITEs from one UDP socket at `callee` (user@127.0.0.1) as fast as asked, each with its own
    branch; every response is read as it comes and every non-2xx final ACKed (RFC 3261 §17.1.1.3),
    so sipwake's transactions end as a real UA's would."""

    def __init__(self, udp_port, callee, from_uri):
        self.c = it.UdpClient(("127.0.0.1", udp_port))
        self.callee, self.from_uri = callee, from_uri
        self.tag = uuid.uuid4().hex[:8]
        self.finals = {}  # branch → Response
        self.ringing = set()  # branches that got a 180 (parked)
        self.sent = {}  # branch → Call-ID

    def invite(self, call_id, cseq=1, extra=()):
        host, port = self.c.local
        branch = "z9hG4bK" + uuid.uuid4().hex
        lines = ["INVITE sip:%s SIP/2.0" % self.callee,
                 "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (host, port, branch),
                 "Max-Forwards: 70", "From: <%s>;tag=%s" % (self.from_uri, self.tag),
                 "To: <sip:%s>" % self.callee, "Call-ID: " + call_id,
                 "CSeq: %d INVITE" % cseq, "Contact: <sip:flood@%s:%d>" % (host, port)]
        lines += list(extra) + ["Content-Length: 0"]
        self.c.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sent[branch] = call_id
        return branch

    def _ack(self, r):
        via = r.header("via")
        lines = ["ACK sip:%s SIP/2.0" % self.callee, "Via: " + via, "Max-Forwards: 70",
                 "From: " + r.header("from"), "To: " + r.header("to"),
                 "Call-ID: " + r.header("call-id"),
                 "CSeq: %s ACK" % r.header("cseq").split()[0], "Content-Length: 0"]
        self.c.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def pump(self, timeout=0.0):
        """Reads whatever responses arrive within `timeout`; returns how many were read."""
        n = 0
        while True:
            ready, _, _ = select.select([self.c.sock], [], [], timeout if n == 0 else 0)
            if not ready:
                return n
            r = it.Response(self.c.sock.recvfrom(65535)[0])
            n += 1
            branch = re.search(r"branch=([^;,\s]+)", r.header("via") or "").group(1)
            if r.code == 180:
                self.ringing.add(branch)
            elif r.code >= 200 and branch not in self.finals:
                self.finals[branch] = r
                if r.code >= 300:
                    self._ack(r)

    def flood(self, make_invite, count, seconds):
        """`count` calls of make_invite(i) spread over `seconds`, reading responses meanwhile."""
        start = time.monotonic()
        for i in range(count):
            make_invite(i)
            due = start + seconds * (i + 1) / count
            while True:
                self.pump(max(0.0, due - time.monotonic()))
                if time.monotonic() >= due:
                    break

    def settle(self, branches, timeout):
        """Waits until each of `branches` has a final response or a 180 (parked)."""
        deadline = time.monotonic() + timeout
        while any(b not in self.finals and b not in self.ringing for b in branches):
            left = deadline - time.monotonic()
            check(left > 0, "%d INVITEs unanswered after the flood" % sum(
                1 for b in branches if b not in self.finals and b not in self.ringing))
            self.pump(left)

    def codes(self):
        out = {}
        for r in self.finals.values():
            out[(r.code, r.reason)] = out.get((r.code, r.reason), 0) + 1
        return out

    def close(self):
        self.c.close()


def check_refusal(r, code, reason):
    check(r.code == code and r.reason == reason, "got %r, expected %d %s" % (r, code, reason))
    retry = r.header("retry-after") or ""
    check(retry.isdigit() and int(retry) >= 1, "%d without Retry-After: %r" % (code, r.raw))


def call_pushes(watch, token, event="call"):
    return [field(p.get("payload"), "call_id") for p in watch.seen(token, event)]


@contextlib.contextmanager
def flooded_phone(ctx, from_uri):
    """A Rig (ring_timeout 4 s) where alice sleeps (an FCM token the watch follows) and a Flooder
    from `from_uri` aimed at her: yields (rig, token, flooder). The per-source scan throttle
    ([proxy] stranger_rate, tested by security_guess_it.py) is off, so that the push limits alone
    bound the flood."""
    tok = fcm_token()
    with Rig(ctx, ring_timeout=4, extra_config="\n[proxy]\nstranger_rate = 0\n") as rig:
        rig.watch.subscribe(tok, project=PROJECT)
        sleeping_phone(rig, "sleep", "alice", tok)
        f = Flooder(rig.udp, "alice@127.0.0.1", from_uri)
        try:
            yield rig, tok, f
        finally:
            f.close()
        rig.server_alive()


def wait_call_push(watch, token, call_id, event="call", timeout=10):
    """The Call-IDs of the `event` pushes for `token`, once one for `call_id` arrived."""
    deadline = time.monotonic() + timeout
    while call_id not in call_pushes(watch, token, event):
        left = deadline - time.monotonic()
        check(left > 0, "no %s push for %s: %r" % (event, call_id, call_pushes(watch, token, event)))
        watch._pump(left)
    return call_pushes(watch, token, event)


def push_limited(f, at_least, what):
    """The 480 Push Limit Reached answers of the flood (at least `at_least`)."""
    limited = [r for r in f.finals.values() if r.code == 480 and "Push Limit" in r.reason]
    check(len(limited) >= at_least, "480 Push Limit Reached to %d of %s (finals %r)"
          % (len(limited), what, f.codes()))
    check_refusal(limited[0], 480, "Temporarily Unavailable - Push Limit Reached")
    return limited


def test_wake_flood_stranger(ctx):
    """300 INVITEs in 2 s from mallory@evil.example (no account: a stranger) at a sleeping phone,
    then copies of a pushed call with new branches: at most stranger_push_burst call pushes
    reach the push service, the rest get 480 ... Push Limit Reached, the copies beyond the
    strangers' parked share 503 ... Too Many Parked Requests For User, both with Retry-After; one
    missed-call push per pushed call. A legitimate caller afterwards (bob, authenticated) still
    gets the phone pushed: strangers spend their own budget."""
    with flooded_phone(ctx, "sip:mallory@evil.example") as (rig, tok, f):
        calls = ["%s@evil" % uuid.uuid4().hex for _ in range(300)]
        f.flood(lambda i: f.invite(calls[i]), 300, 2.0)
        copies = []
        f.flood(lambda i: copies.append(f.invite(calls[0])), 20, 0.2)
        f.settle(list(f.sent), 15)
        push_limited(f, 300 - STRANGER_PUSH_BURST - 1, "300 calls")
        busy = [f.finals[b] for b in copies if b in f.finals and f.finals[b].code == 503]
        check(len(busy) >= 20 - 4, "503 to %d of 20 copies (finals %r)" % (len(busy), f.codes()))
        check_refusal(busy[0], 503, "Service Unavailable - Too Many Parked Requests For User")

        # The legitimate call: its push arriving means every earlier push has (one sender).
        caller = rig.caller("alice")
        final = caller.invite(timeout=25)
        it.expect_code(final, 480, "a legitimate call to the still sleeping phone")
        caller.ack_non2xx(final)
        pushed = wait_call_push(rig.watch, tok, caller.call_id)
        flood_pushes = [c for c in pushed if c != caller.call_id]
        check(len(flood_pushes) <= STRANGER_PUSH_BURST and calls[0] in flood_pushes,
              "%d call pushes for the stranger's calls (budget %d): %r"
              % (len(flood_pushes), STRANGER_PUSH_BURST, flood_pushes))
        check(len(set(flood_pushes)) == len(flood_pushes), "a call pushed twice: %r"
              % flood_pushes)
        # The legitimate call ended after the flood's parked calls: its missed push comes last.
        missed = wait_call_push(rig.watch, tok, caller.call_id, "missed")
        check(sorted(missed) == sorted(flood_pushes + [caller.call_id]),
              "missed-call pushes %r, expected one per pushed call %r"
              % (missed, flood_pushes + [caller.call_id]))
        print("stranger flood: %d INVITEs, %d call + %d missed-call pushes, finals %r"
              % (len(f.sent), len(flood_pushes), len(missed) - 1, f.codes()))


def test_wake_flood_authenticated(ctx):
    """300 INVITEs in 2 s from an authenticated user (bob, one nonce, nc counting up) at a
    sleeping phone: at most device_push_burst call pushes (plus what refills meanwhile) reach
    the push service; beyond, 480 ... Push Limit Reached with Retry-After — also for another
    caller (carol) right after: the device's budget is spent until it refills (one push per
    10 s by default)."""
    with flooded_phone(ctx, "sip:bob@127.0.0.1") as (rig, tok, f):
        branch = f.invite("challenge@bob")
        f.settle([branch], 5)
        challenge = it.expect_code(f.finals[branch], 407, "bob's first INVITE")
        challenges = challenge.headers.get("proxy-authenticate", [])
        start = time.monotonic()

        def authenticated(i):
            auth = it.digest_authorization(challenges, "INVITE", "sip:alice@127.0.0.1", "bob",
                                           "bob-pw", want="MD5", nc=i + 1)
            f.invite("%s@bob" % uuid.uuid4().hex, extra=["Proxy-Authorization: " + auth])
        f.flood(authenticated, 300, 2.0)
        f.settle(list(f.sent), 15)
        took = time.monotonic() - start
        push_limited(f, 250, "300 calls")

        # Another caller right after: the device's budget is spent (Retry-After says when).
        carol = rig.caller("alice")
        carol.user, carol.password = "carol", "carol-pw"
        final = carol.invite(timeout=25)
        check_refusal(final, 480, "Temporarily Unavailable - Push Limit Reached")
        check(int(final.header("retry-after")) <= 10, "Retry-After %s"
              % final.header("retry-after"))
        carol.ack_non2xx(final)

        # Every flood push was handed over before the flood's last answer; one more push to
        # another device on the same connection marks the end of them at the fake.
        mark = fcm_token()
        rig.watch.subscribe(mark, project=PROJECT)
        sleeping_phone(rig, "mark", "carol", mark)
        bob = rig.caller("carol")
        bob.ack_non2xx(bob.invite(timeout=25))
        rig.watch.wait_push(mark, "call")
        pushed = call_pushes(rig.watch, tok)
        budget = DEVICE_PUSH_BURST + math.ceil(took * DEVICE_PUSH_BURST / 60.0)
        check(1 <= len(pushed) <= budget, "%d call pushes for the flood (budget %d): %r"
              % (len(pushed), budget, pushed))
        print("authenticated flood: %d INVITEs in %.1f s, %d call pushes, finals %r"
              % (len(f.sent), took, len(pushed), f.codes()))


# ---------------------------------------------------------------------------------------------
# RFC 8599 §6: PURR


def reinvite(caller, target, route, to_tag, timeout=25):
    """A re-INVITE of the caller's dialog to `target` (with SDP); returns its final response
    (ACKed: a 2xx end to end along `route`, anything else hop by hop)."""
    sdp = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           "m=audio 30000 RTP/AVP 0\r\na=sendonly\r\n")
    caller.cseq += 1
    caller.c.send(caller.request("INVITE", target, caller.cseq, route, to_tag, body=sdp))
    branch = caller.last_branch
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        check(left > 0, "no final response to the re-INVITE within %ss" % timeout)
        r = caller.recv_any(left)
        check(r is not None, "no final response to the re-INVITE within %ss" % timeout)
        if (r.header("cseq") or "") == "%d INVITE" % caller.cseq and r.code >= 200:
            break
    if r.code < 300:  # the 2xx's Contact is the dialog's new remote target (§12.2.1.2)
        target = re.search(r"<([^>]+)>", r.header("contact")).group(1)
        caller.c.send(caller.request("ACK", target, caller.cseq, route, to_tag))
    else:
        caller.c.send(caller.request("ACK", target, caller.cseq, route, to_tag, branch=branch))
    return r


def test_wake_purr_reinvite(ctx):
    """alice's phone answers bob's call with its PURR (from the REGISTER 200's +sip.pnspurr) in
    its Contact, then goes to sleep with the call up (un-REGISTER, connection closed). bob's
    re-INVITE comes along sipwake's Record-Route to that PURR: sipwake pushes the phone, holds
    the re-INVITE, and sends it to the phone's new registration once it REGISTERs; the phone
    answers it. A forged PURR in the same dialog gets 404 Not Found - Unknown Push Resource."""
    tok = fcm_token()
    with Rig(ctx) as rig:
        rig.watch.subscribe(tok, project=PROJECT)
        p = rig.phone("purr", "alice", ["--dialect", "rfc8599", "--provider", "fcm", "--app",
                                        PROJECT, "--token", tok, "--sleep-in-call"])
        reg = p.wait_event("registered")
        purr = reg.get("purr") or ""
        check(re.fullmatch(r"[0-9a-f]{32}", purr) is not None,
              "no PURR in the REGISTER 200: Feature-Caps %r" % reg["feature_caps"])
        check(any(v.startswith('*;+sip.pns="fcm"') and v.endswith(';+sip.pnspurr="%s"' % purr)
                  for v in reg["feature_caps"]), "Feature-Caps %r" % reg["feature_caps"])

        caller = rig.caller()
        final = caller.invite(timeout=25)
        it.expect_code(final, 200, "INVITE answered by the awake phone")
        contact = final.header("contact") or ""
        check(";pn-purr=" + purr in contact, "the PURR did not reach the caller: %s" % contact)
        rest = contact.lower().replace(";pn-purr=" + purr, "")
        check(not any(m in rest for m in PUSH_PARAM_MARKS),
              "push params other than pn-purr leaked to the caller: %s" % contact)
        check(final.headers.get("record-route"), "a dialog with a PURR is not record-routed")
        target, route, to_tag = caller.ack(final)
        p.wait_event("backgrounded")
        calls_before = len(rig.watch.seen(tok, "call"))

        started = time.monotonic()
        r = reinvite(caller, target, route, to_tag)
        took = time.monotonic() - started
        it.expect_code(r, 200, "re-INVITE to the sleeping phone's PURR")
        pushes = rig.watch.wait_pushes(tok, calls_before + 1, "call")
        check(field(pushes[-1]["payload"], "call_id") == caller.call_id and
              field(pushes[-1]["payload"], "callee_aor") == "sip:alice@127.0.0.1" and
              field(pushes[-1]["payload"], "call_uuid") == field(pushes[0]["payload"], "call_uuid"),
              "the wake push is not the call's: %r" % pushes[-1])
        ev = p.wait_event("reinvite_received")
        check(ev["call_id"] == caller.call_id, "re-INVITE event %r" % ev)
        check("pn-purr" not in ev["ruri"], "the woken phone got its PURR back: %s" % ev["ruri"])
        p.wait_event("reinvite_acked")
        # (The call itself also pushed the connected phone, RFC 8599 §5.6.2: a push before.)
        seen = names(read_events(p.events))
        after = seen[seen.index("ack_received"):]
        want = ["ack_received", "backgrounded", "push_received", "reregistered",
                "reinvite_received", "reinvite_acked"]
        check([e for e in after if e in want] == want, "phone events %r" % seen)
        check(p.wait() == 0, "phone exit:\n" + p.log())
        print("re-INVITE to the sleeping phone answered after %.2f s" % took)

        forged = target.replace(purr, "f" * 32)
        r = reinvite(caller, forged, route, to_tag, timeout=10)
        it.expect_code(r, 404, "re-INVITE to a forged PURR")
        check(r.reason == "Not Found - Unknown Push Resource", "reason %r" % r.reason)
        rig.server_alive()


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}


def main():
    return ph.main(TESTS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
