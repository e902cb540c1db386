#!/usr/bin/env python3
"""Edge mode against a real Kamailio as the PBX (pbx_kamailio.KamailioPbx). "own" (Kamailio
trusting 127.0.0.1, or challenging sipwake, which answers with its own credentials): sipwake
authenticates the phones of domain 127.0.0.1, registers each device
once at Kamailio with a contact of its own, and wakes the phone when a Kamailio user calls it.
"relay" (Kamailio challenging every REGISTER, sipwake knowing no user): the phone's REGISTER goes
to Kamailio with the phone's own digest answer and sipwake's contact for the device.

    edge_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --phone tools/sipwake-phone/sipwake-phone --work-dir /tmp/it edge_own_wake

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import re
import signal
import socket
import sys
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
import phone_it as ph  # noqa: E402
import wake_it as wk  # noqa: E402
from calls_it import RawUa  # noqa: E402
from pbx_kamailio import KamailioPbx  # noqa: E402
from phone_it import BUNDLE  # noqa: E402
from sipwake_it import check  # noqa: E402

WAIT = 10.0  # seconds for an upstream registration to show at the PBX
# Users of the PBX (db_text, domain 127.0.0.1): bob calls from the PBX side.
PBX_USERS = {"alice": "alice-pw", "bob": "bob-pw"}
UPSTREAM_CALL_ID = "@edge.sipwake"  # the Call-ID suffix of sipwake's upstream REGISTERs


def edge_config(pbx, upstream_expires=3600, refresh_before=1800, mode="own", upstream=None):
    return ("\n[edge]\nupstream = \"%s\"\ndomains = [\"127.0.0.1\"]\nmode = \"%s\"\n"
            "upstream_expires = %d\nrefresh_before = %d\n"
            % (upstream or pbx.uri, mode, upstream_expires, refresh_before))


def tls_config(ca=None, cert=None, key=None):
    """sipwake's [tls]: verify peers (certificate chain and name) against `ca` (None: the system
    store); `cert`/`key` as its own certificate (also its client certificate)."""
    lines = ["", "[tls]", 'verify = "peer"']
    if ca:
        lines.append('ca_file = "%s"' % ca)
    if cert:
        lines += ['certificate = "%s"' % cert, 'private_key = "%s"' % key]
    return "\n".join(lines) + "\n"


def edge_bindings(pbx, user):
    return [b for b in pbx.bindings(user) if "sip:edge-" in (b["contact"] or "")]


def upstream_registers(pbx):
    return [r for r in pbx.received("REGISTER") if r["call_id"].endswith(UPSTREAM_CALL_ID)]


def sleeping_alice(rig, tok, more=()):
    """alice's RFC 8599 APNs phone (token `tok`, followed by the watch): registers at sipwake,
    goes to the background and will answer one call after 100 ms. Returns the phone."""
    rig.watch.subscribe(tok, topic=BUNDLE + ".voip")
    p = rig.phone("wake", "alice", ["--dialect", "rfc8599", "--provider", "apns", "--app", BUNDLE,
                                    "--token", tok, "--background-after-register", "--calls", "1",
                                    "--answer-after-ms", "100"] + list(more))
    p.wait_event("backgrounded")
    return p


def check_alice_at_pbx(rig, pbx, provider="apns", tls=False):
    """Kamailio has one binding of alice: sipwake's contact for her device, long-lived (on
    sipwake's TLS listener with transport=tls when `tls`)."""
    found = pbx.wait_bindings("alice", 1, timeout=WAIT)
    check(len(edge_bindings(pbx, "alice")) == 1, "not sipwake's contact: %r" % found)
    contact = found[0]["contact"]
    where = (r"%d;transport=tls" % rig.ports[2]) if tls else str(rig.udp)
    check(re.match(r"sip:edge-%s-[0-9a-f]+@127\.0\.0\.1:%s$" % (provider, where), contact),
          "contact at the PBX: %r" % contact)
    check(int(found[0]["expires"]) > 3000, "expires at the PBX: %r" % found[0])


def bob_at_pbx(ctx, rig, pbx):
    """bob, a user of the PBX, sending from his own UDP socket to Kamailio, to alice."""
    caller = ph.Caller(ctx, pbx.port, "bob", "bob-pw", "alice@127.0.0.1")
    rig.callers.append(caller)
    return caller


def bob_calls_alice(ctx, rig, pbx, p, tok):
    """bob, a user of the PBX, calls alice at Kamailio: the sleeping phone `p` (push token `tok`)
    is pushed, wakes, answers (200 at bob), ACK and BYE pass; the phone exits cleanly."""
    caller = bob_at_pbx(ctx, rig, pbx)
    final = caller.invite(timeout=25)
    it.expect_code(final, 200, "INVITE from bob at the PBX")
    # Kamailio's UDP processes may swap an ACK and a BYE sent back to back.
    it.expect_code(caller.ack_and_bye(final, lambda: p.wait_event("ack_received")), 200, "BYE")
    wk.check_call_push(rig.watch.wait_push(tok), "apns", tok, caller.call_id)
    check(p.wait() == 0, "phone exit:\n" + p.log())


def test_edge_own_wake(ctx):
    """A push phone of alice registers at sipwake → ONE REGISTER of sipwake at Kamailio with
    sipwake's contact; the phone goes to the background (un-REGISTER with push params): the
    binding at Kamailio stays; bob (a user of the PBX) calls alice at Kamailio → Kamailio → sipwake → push → the
    phone wakes, re-registers, answers → 200 at bob, ACK and BYE through both proxies. Still one
    upstream REGISTER after the phone's three REGISTERs."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=PBX_USERS, trusted="127.0.0.1") as pbx:
        with wk.Rig(ctx, extra_config=edge_config(pbx)) as rig:
            p = sleeping_alice(rig, tok)
            check_alice_at_pbx(rig, pbx)
            bob_calls_alice(ctx, rig, pbx, p, tok)
            wk.phone_order(p, wk.WAKE_ORDER)
            invite = wk.check_forwarded_invite(p)
            ctx.note("INVITE at the phone: %s" % invite["ruri"])
            check(len(edge_bindings(pbx, "alice")) == 1, "binding lost: %r" % pbx.bindings("alice"))
            regs = upstream_registers(pbx)
            check(len(regs) == 1, "%d upstream REGISTERs for 3 phone REGISTERs: %r"
                  % (len(regs), regs))
            rig.server_alive()


def test_edge_own_throttle_and_removal(ctx):
    """A device without push params (a raw UA) REGISTERs five times at sipwake: one upstream
    REGISTER. Its un-REGISTER (Expires: 0, no push binding to keep) removes the contact at the
    PBX too."""
    with KamailioPbx(ctx, users=PBX_USERS, trusted="127.0.0.1") as pbx:
        with wk.Rig(ctx, extra_config=edge_config(pbx)) as rig:
            client = it.UdpClient(("127.0.0.1", rig.udp))
            try:
                reg = it.Registration(client, rig.udp, "bob", "bob-pw")
                for _ in range(5):
                    it.expect_code(reg.send(["Contact: " + reg.contact, "Expires: 600"]), 200,
                                   "REGISTER at sipwake")
                pbx.wait_bindings("bob", 1, timeout=WAIT)
                regs = upstream_registers(pbx)
                check(len(regs) == 1, "%d upstream REGISTERs for 5: %r" % (len(regs), regs))
                it.expect_code(reg.send(["Contact: " + reg.contact, "Expires: 0"]), 200,
                               "un-REGISTER at sipwake")
                pbx.wait_bindings("bob", 0, timeout=WAIT)
            finally:
                client.close()
            rig.server_alive()


def test_edge_own_restart(ctx):
    """kill -9 sipwake while the phone sleeps: the restarted sipwake registers the device at
    Kamailio again from its push bindings (no phone acts), and a PBX user's call wakes the phone."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=PBX_USERS, trusted="127.0.0.1") as pbx:
        with wk.Rig(ctx, extra_config=edge_config(pbx)) as rig:
            p = sleeping_alice(rig, tok)
            pbx.wait_bindings("alice", 1, timeout=WAIT)
            before = upstream_registers(pbx)
            rig.restart(signal.SIGKILL)
            deadline = time.monotonic() + WAIT
            while len(upstream_registers(pbx)) == len(before):
                check(time.monotonic() < deadline, "no upstream REGISTER after the restart:\n"
                      + rig.server.log()[-3000:])
                time.sleep(0.1)  # polling the PBX's log, bounded by the deadline
            after = upstream_registers(pbx)[-1]
            check(after["call_id"] != before[-1]["call_id"] or len(before) == 1,
                  "restart: %r / %r" % (before, after))
            pbx.wait_bindings("alice", 1, timeout=WAIT)
            caller = bob_at_pbx(ctx, rig, pbx)
            final = caller.invite(timeout=25)
            it.expect_code(final, 200, "INVITE after the restart")
            it.expect_code(caller.ack_and_bye(final), 200, "BYE")
            check(p.wait() == 0, "phone exit:\n" + p.log())
            rig.server_alive()


def wait_log(rig, text, timeout):
    """Waits (bounded) for `text` in sipwake's log; returns the log."""
    deadline = time.monotonic() + timeout
    while True:
        log = rig.server.log()
        if text in log:
            return log
        check(time.monotonic() < deadline, "no %r in sipwake's log within %.0fs:\n%s"
              % (text, timeout, log[-3000:]))
        time.sleep(0.1)  # polling the log, bounded by the deadline


def test_edge_own_upstream_down(ctx):
    """Kamailio stops while alice's phone sleeps; a device without push (carol) registers at
    sipwake meanwhile: 200 (own mode: sipwake is the phones' registrar and catches up), and its
    upstream REGISTER gets no answer: sipwake logs the upstream unreachable once. Kamailio starts
    again on the same port with an empty location table: sipwake logs it back and registers both
    devices there again, no phone acting; bob, a PBX user, calls alice and the phone wakes."""
    tok = wk.apns_token()
    users = dict(PBX_USERS, carol="carol-pw")
    with KamailioPbx(ctx, users=users, trusted="127.0.0.1") as pbx:
        # T1 100 ms: an unanswered upstream REGISTER times out after 64*T1 = 6.4 s.
        with wk.Rig(ctx, extra_config=edge_config(pbx) + "\n[timers]\nt1_ms = 100\n") as rig:
            p = sleeping_alice(rig, tok, ["--timeout", "110"])
            pbx.wait_bindings("alice", 1, timeout=WAIT)
            pbx.stop()
            client = it.UdpClient(("127.0.0.1", rig.udp))
            try:
                reg = it.Registration(client, rig.udp, "carol", "carol-pw")
                it.expect_code(reg.send(["Contact: " + reg.contact, "Expires: 600"]), 200,
                               "carol's REGISTER at sipwake while the PBX is down")
                log = wait_log(rig, "edge: upstream %s unreachable (" % pbx.uri, 20)
                check(re.search(r"unreachable \([^)]+\); 2 devices waiting", log),
                      "unreachable line:\n" + log[-2000:])
                pbx.start()
                # One probe every 30 s while unreachable, then every device at once.
                log = wait_log(rig, "edge: upstream %s back; re-registering" % pbx.uri, 45)
                check(log.count("unreachable (") == 1, "logged more than once:\n" + log[-3000:])
                pbx.wait_bindings("alice", 1, timeout=WAIT)
                pbx.wait_bindings("carol", 1, timeout=WAIT)
            finally:
                client.close()
            bob_calls_alice(ctx, rig, pbx, p, tok)
            rig.server_alive()


def call_dave(ctx, rig, pbx, user):
    """`user`, a phone behind sipwake, calls dave, a user registered only at Kamailio (RawUa):
    dave answers, ACK and BYE reach him. Returns the INVITE dave got."""
    dave = RawUa(pbx.port)
    try:
        reg = it.Registration(dave.c, pbx.port, "dave", "dave-pw")
        it.expect_code(reg.send(["Contact: " + reg.contact], algorithm="MD5"), 200,
                       "dave's REGISTER at the PBX")
        caller = ph.Caller(ctx, rig.udp, user, user + "-pw", "dave@127.0.0.1")
        rig.callers.append(caller)
        done = {}

        def answer():
            invite = dave.wait_for("INVITE", 10)
            rr = ["Record-Route: " + v for v in invite[1].get("record-route", [])]
            dave.reply(invite, 200, "OK", extra=rr + ["Contact: <sip:dave@%s:%d>" % dave.local])
            done["invite"] = invite

        t = threading.Thread(target=answer)
        t.start()
        final = caller.invite(timeout=15)
        t.join(15)
        it.expect_code(final, 200, "%s's INVITE to dave at the PBX" % user)
        check("invite" in done, "dave got no INVITE")

        def bye_ok():
            dave.reply(dave.wait_for("BYE", 10), 200, "OK")

        b = threading.Thread(target=bye_ok)
        b.start()
        it.expect_code(caller.ack_and_bye(final), 200, "BYE to dave")
        b.join(15)
        return done["invite"]
    finally:
        dave.c.close()


def test_edge_own_call_to_pbx_user(ctx):
    """alice, a phone of sipwake, calls dave, a user registered only at Kamailio: sipwake has no
    target for dave and sends the INVITE to the upstream (not 404/480); dave answers, ACK and
    BYE reach him through the record-routed path."""
    with KamailioPbx(ctx, users=dict(PBX_USERS, dave="dave-pw"), trusted="127.0.0.1") as pbx:
        with wk.Rig(ctx, extra_config=edge_config(pbx)) as rig:
            invite = call_dave(ctx, rig, pbx, "alice")
            check(pbx.received("INVITE", "dave"), "the INVITE did not go through the PBX")
            routes = invite[1].get("record-route", [])
            check(any(str(rig.udp) in r for r in routes), "sipwake not record-routed: %r" % routes)
            rig.server_alive()


def test_edge_own_credentials(ctx):
    """Kamailio trusts no address: it challenges sipwake's REGISTER (401, realm 127.0.0.1) and
    sipwake answers with its own credentials for alice (the same password as the PBX's, added with
    `sipwake user add`): the binding appears at Kamailio, and bob's call from the PBX wakes the
    phone. Two upstream REGISTERs: the challenged one and its answer."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=PBX_USERS, trusted=None) as pbx:
        with wk.Rig(ctx, extra_config=edge_config(pbx)) as rig:
            p = sleeping_alice(rig, tok)
            found = pbx.wait_bindings("alice", 1, timeout=WAIT)
            check(len(edge_bindings(pbx, "alice")) == 1, "not sipwake's contact: %r" % found)
            bob_calls_alice(ctx, rig, pbx, p, tok)
            regs = upstream_registers(pbx)
            check(len(regs) == 2 and regs[0]["call_id"] == regs[1]["call_id"],
                  "upstream REGISTERs: %r" % regs)
            check("refused sipwake's credentials" not in rig.server.log(), rig.server.log())
            rig.server_alive()


def test_edge_own_wrong_password(ctx):
    """sipwake's password for alice differs from Kamailio's: sipwake answers the challenge once,
    Kamailio challenges the answer, sipwake logs it naming the AOR and the status and stops (no
    binding at Kamailio, two upstream REGISTERs: no loop); bob's call to alice at the PBX finds
    no binding."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=dict(PBX_USERS, alice="pbx-only-pw"), trusted=None) as pbx:
        with wk.Rig(ctx, extra_config=edge_config(pbx)) as rig:
            sleeping_alice(rig, tok)
            wait_log(rig, "edge: upstream %s refused sipwake's credentials for "
                     "sip:alice@127.0.0.1 (401)" % pbx.uri, WAIT)
            caller = bob_at_pbx(ctx, rig, pbx)
            final = caller.invite(timeout=15)  # a round trip at the PBX after the refusal
            check(final.code >= 400, "INVITE to alice without a binding: %d" % final.code)
            check(pbx.bindings("alice") == [], "binding at the PBX: %r" % pbx.bindings("alice"))
            regs = upstream_registers(pbx)
            check(len(regs) == 2, "%d upstream REGISTERs (want the challenged one and its answer):"
                  " %r" % (len(regs), regs))
            rig.server_alive()


def registers_on(pbx, call_id=None):
    """The REGISTERs Kamailio received (its pbx-recv log lines), of one Call-ID when given."""
    return [r for r in pbx.received("REGISTER") if call_id is None or r["call_id"] == call_id]


def test_edge_relay_wake(ctx):
    """Relay: sipwake knows no user; Kamailio challenges. alice's push phone registers through
    sipwake: Kamailio's 401 reaches the phone unchanged, its answer reaches Kamailio, which binds
    sipwake's contact for the device (not the phone's). The phone goes to the background: the
    binding at Kamailio stays. bob calls alice at Kamailio: pushed, woken, answered, ACK and BYE.
    Kamailio saw two REGISTERs of alice (the challenged one and its answer), however often the
    phone registered at sipwake on the flow it accepted."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=PBX_USERS) as pbx:
        with wk.Rig(ctx, users=(), extra_config=edge_config(pbx, mode="relay")) as rig:
            p = sleeping_alice(rig, tok)
            check_alice_at_pbx(rig, pbx)
            bob_calls_alice(ctx, rig, pbx, p, tok)
            wk.phone_order(p, wk.WAKE_ORDER)
            wk.check_forwarded_invite(p)
            check(len(edge_bindings(pbx, "alice")) == 1, "bindings: %r" % pbx.bindings("alice"))
            regs = registers_on(pbx)
            check(len(regs) == 2, "%d REGISTERs of alice at the PBX: %r" % (len(regs), regs))
            rig.server_alive()


def test_edge_relay_register(ctx):
    """Relay, a device without push (raw UA, UDP): a wrong password gets Kamailio's 401 again
    (with Kamailio's challenge) and nothing is bound anywhere; the right one is bound at Kamailio
    under sipwake's contact; four refreshes on the same flow and Call-ID cause no REGISTER at
    Kamailio; a REGISTER on a new Call-ID is relayed (and authenticated) again; the un-REGISTER
    removes the binding at Kamailio and at sipwake."""
    with KamailioPbx(ctx, users=PBX_USERS) as pbx:
        with wk.Rig(ctx, users=(), extra_config=edge_config(pbx, mode="relay")) as rig:
            client = it.UdpClient(("127.0.0.1", rig.udp))
            try:
                bad = it.Registration(client, rig.udp, "bob", "not-bob-pw")
                r = bad.send(["Contact: " + bad.contact, "Expires: 600"], algorithm="MD5")
                check(r.code in (401, 403), "wrong password: %d %s" % (r.code, r.reason))
                if r.code == 401:
                    challenge = " ".join(r.headers.get("www-authenticate", []))
                    check('realm="127.0.0.1"' in challenge, "challenge: %r" % challenge)
                check(pbx.bindings("bob") == [], "bound with a wrong password")
                reg = it.Registration(client, rig.udp, "bob", "bob-pw")
                it.expect_code(reg.send(["Contact: " + reg.contact, "Expires: 600"],
                                        algorithm="MD5"), 200, "REGISTER through sipwake")
                found = pbx.wait_bindings("bob", 1, timeout=WAIT)
                check(found[0]["contact"].startswith("sip:edge-"), "at the PBX: %r" % found)
                before = len(registers_on(pbx, reg.call_id))
                for _ in range(4):
                    it.expect_code(reg.send(["Contact: " + reg.contact, "Expires: 600"],
                                            algorithm="MD5"), 200, "refresh")
                check(len(registers_on(pbx, reg.call_id)) == before,
                      "refreshes reached the PBX: %r" % registers_on(pbx, reg.call_id))
                again = it.Registration(client, rig.udp, "bob", "bob-pw")
                it.expect_code(again.send(["Contact: " + reg.contact, "Expires: 600"],
                                          algorithm="MD5"), 200, "REGISTER, new Call-ID")
                check(registers_on(pbx, again.call_id), "new Call-ID not relayed")
                it.expect_code(again.send(["Contact: " + reg.contact, "Expires: 0"],
                                          algorithm="MD5"), 200, "un-REGISTER")
                pbx.wait_bindings("bob", 0, timeout=WAIT)
                q = again.send([], algorithm="MD5")
                it.expect_code(q, 200, "query at sipwake")
                check(not q.headers.get("contact"), "still bound at sipwake: %r" % q.headers)
            finally:
                client.close()
            rig.server_alive()


def expect_503(reg, what):
    """bob's REGISTER `reg` through sipwake gets 503 with Retry-After (relay, no upstream)."""
    r = reg.send(["Contact: " + reg.contact, "Expires: 600"])
    check(r.code == 503 and r.headers.get("retry-after"),
          "%s: %d %s %r" % (what, r.code, r.reason, r.headers))


def test_edge_relay_upstream_down(ctx):
    """Relay, alice's FCM phone asleep, then Kamailio stopped: a phone's REGISTER gets 503 +
    Retry-After (never a 200 the PBX does not know), at once for the next one; sipwake logs the
    upstream unreachable once. Kamailio back with an empty location table: sipwake's probe sees
    it (logged), REGISTERs are relayed again, and the sleeping phone is woken by a refresh push
    and registers there again by itself."""
    tok = wk.fcm_token()
    with KamailioPbx(ctx, users=PBX_USERS) as pbx:
        # T1 50 ms: an unanswered relayed REGISTER times out after 64*T1 = 3.2 s.
        cfg = edge_config(pbx, mode="relay") + "\n[timers]\nt1_ms = 50\n"
        with wk.Rig(ctx, users=(), extra_config=cfg) as rig:
            p = sleeping_fcm_alice(rig, tok, 100)
            pbx.wait_bindings("alice", 1, timeout=WAIT)
            pbx.stop()
            client = it.UdpClient(("127.0.0.1", rig.udp))
            try:
                reg = it.Registration(client, rig.udp, "bob", "bob-pw")
                expect_503(reg, "PBX down")
                t0 = time.monotonic()
                r = reg.send(["Contact: " + reg.contact, "Expires: 600"])
                check(r.code == 503 and time.monotonic() - t0 < 2,
                      "second REGISTER: %d after %.1fs" % (r.code, time.monotonic() - t0))
                wait_log(rig, "edge: upstream %s unreachable (" % pbx.uri, 5)
                pbx.start()
                log = wait_log(rig, "edge: upstream %s back; waking 1 devices" % pbx.uri, 45)
                check(log.count("unreachable (") == 1, "logged more than once:\n" + log[-3000:])
                reg = it.Registration(client, rig.udp, "bob", "bob-pw")
                it.expect_code(reg.send(["Contact: " + reg.contact, "Expires: 600"],
                                        algorithm="MD5"), 200, "REGISTER after the PBX is back")
                pbx.wait_bindings("bob", 1, timeout=WAIT)
                rig.watch.wait_push(tok, event="refresh", timeout=10)
                p.wait_event("refreshed", timeout=15)
                check_alice_at_pbx(rig, pbx, "fcm")
                p.kill()
            finally:
                client.close()
            rig.server_alive()


def test_edge_relay_restart_and_outbound_call(ctx):
    """Relay: kill -9 sipwake while alice's phone sleeps; the restarted sipwake knows the
    device's contact from its push bindings, and bob's call at Kamailio wakes the phone. Then
    carol, a phone behind sipwake, calls dave, a user of Kamailio that challenges calls: the 407
    comes back through sipwake, carol's answer goes through, dave answers."""
    tok = wk.apns_token()
    users = dict(PBX_USERS, carol="carol-pw", dave="dave-pw")
    with KamailioPbx(ctx, users=users, auth_calls=True) as pbx:
        with wk.Rig(ctx, users=(), extra_config=edge_config(pbx, mode="relay")) as rig:
            p = sleeping_alice(rig, tok)
            pbx.wait_bindings("alice", 1, timeout=WAIT)
            rig.restart(signal.SIGKILL)
            bob_calls_alice(ctx, rig, pbx, p, tok)
            call_dave(ctx, rig, pbx, "carol")
            invites = pbx.received("INVITE", "dave")
            check(len(invites) >= 2, "Kamailio's 407 did not reach carol: %r" % invites)
            rig.server_alive()


def sleeping_fcm_alice(rig, tok, timeout):
    """alice's FCM phone (token `tok`, followed by the watch), asleep after registering; it
    registers again on each refresh push, for `timeout` seconds."""
    rig.watch.subscribe(tok, project=wk.PROJECT)
    p = rig.phone("fcm", "alice", ["--dialect", "rfc8599", "--provider", "fcm", "--app",
                                   wk.PROJECT, "--token", tok, "--background-after-register",
                                   "--calls", "1", "--timeout", str(timeout)])
    p.wait_event("backgrounded")
    return p


def test_edge_relay_refresh_push(ctx):
    """Relay: sipwake cannot renew a binding at the PBX (no credentials), so before it lapses it
    wakes the phone with a refresh push (FCM data, event "refresh"; RFC 8599 §5.5): the phone
    registers again through sipwake, Kamailio challenges it and renews the binding. One refresh
    push per upstream registration: none more while the renewed binding is young."""
    tok = wk.fcm_token()
    with KamailioPbx(ctx, users=PBX_USERS) as pbx:
        # Kamailio grants 60 s; due 50 s before it lapses: 10 s after the registration.
        cfg = edge_config(pbx, upstream_expires=60, refresh_before=50, mode="relay")
        with wk.Rig(ctx, users=(), extra_config=cfg) as rig:
            p = sleeping_fcm_alice(rig, tok, 50)
            pbx.wait_bindings("alice", 1, timeout=WAIT)
            first = len(registers_on(pbx))
            rig.watch.wait_push(tok, event="refresh", timeout=25)
            p.wait_event("refreshed", timeout=15)
            check(len(registers_on(pbx)) > first, "the refresh did not reach the PBX: %r"
                  % registers_on(pbx))
            found = pbx.wait_bindings("alice", 1, timeout=WAIT)
            check(found[0]["contact"].startswith("sip:edge-"), "at the PBX: %r" % found)
            time.sleep(12)  # one more renewal period: no second refresh push
            pushes = rig.watch.seen(tok, "refresh")
            check(len(pushes) == 1, "%d refresh pushes: %r" % (len(pushes), pushes))
            log = rig.server.log()
            check(log.count("edge: refresh push to device") == 1, log[-3000:])
            p.kill()
            rig.server_alive()


def test_edge_relay_flood(ctx):
    """Relay, an upstream that never answers (a UDP socket nobody reads): 20 REGISTERs sent at
    once from one address: 16 wait for the upstream, the other 4 get 503 "Too Many Registrations
    In Progress" at once; the 16 get 503 + Retry-After when the relay times out (8 s). Nothing
    held for ever, no crash."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))
    try:
        pbx = types.SimpleNamespace(uri="sip:127.0.0.1:%d" % hole.getsockname()[1])
        with wk.Rig(ctx, users=(), extra_config=edge_config(pbx, mode="relay")) as rig:
            client = it.UdpClient(("127.0.0.1", rig.udp))
            try:
                for _ in range(20):
                    reg = it.Registration(client, rig.udp, "bob", "bob-pw")
                    client.send(reg.request(["Contact: " + reg.contact, "Expires: 600"]))
                answers = []
                start = time.monotonic()
                while len(answers) < 20 and time.monotonic() - start < 15:
                    r = client.recv(1.0)
                    if r is not None:
                        answers.append((round(time.monotonic() - start, 1), r.code, r.reason))
                busy = [a for a in answers if "Too Many Registrations" in a[2]]
                waited = [a for a in answers if "Upstream Registrar Unreachable" in a[2]]
                check(len(busy) == 4 and all(a[0] < 2 for a in busy), "at once: %r" % answers)
                check(len(waited) == 16 and all(a[1] == 503 for a in waited),
                      "after the relay timeout: %r" % answers)
            finally:
                client.close()
            rig.server_alive()
    finally:
        hole.close()
def via_sipwake(rig, headers):
    """True if the Via headers of a request (lower-case name: [values]) name sipwake's UDP or TCP
    listener: the request went through it."""
    vias = [x for v in headers.get("via", []) for x in v.split(",")]
    return any("127.0.0.1:%d;" % port in v for v in vias for port in rig.ports[:2])


def test_edge_relay_bye_from_phone(ctx):
    """Relay: bob calls alice at Kamailio; the sleeping phone wakes, answers and, on the ACK,
    hangs up: its BYE follows the Record-Route (sipwake, then Kamailio) to bob, who answers 200,
    and the 200 reaches the phone."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=PBX_USERS) as pbx:
        with wk.Rig(ctx, users=(), extra_config=edge_config(pbx, mode="relay")) as rig:
            p = sleeping_alice(rig, tok, ["--bye-after-ack"])
            check_alice_at_pbx(rig, pbx)
            caller = bob_at_pbx(ctx, rig, pbx)
            final = caller.invite(timeout=25)
            it.expect_code(final, 200, "INVITE from bob at the PBX")
            caller.ack(final)
            start, headers = caller.answer_request("BYE", timeout=15)
            check(start.startswith("BYE sip:bob@"), "BYE at bob: %r" % start)
            check(via_sipwake(rig, headers), "the BYE did not pass sipwake: %r" % headers)
            check(pbx.received("BYE"), "the BYE did not pass Kamailio")
            check(p.wait() == 0, "phone exit:\n" + p.log())
            evs = ph.read_events(p.events)
            answered = [e for e in evs if e["event"] == "bye_answered"]
            check(len(answered) == 1 and answered[0]["code"] == 200,
                  "the phone's BYE: %r" % answered)
            wk.check_call_push(rig.watch.wait_push(tok), "apns", tok, caller.call_id)
            rig.server_alive()


def test_edge_relay_cancel_from_pbx(ctx):
    """Relay: bob calls alice at Kamailio; the woken phone does not answer; bob CANCELs once it
    has the INVITE: 200 to the CANCEL and 487 at bob, the CANCEL at the phone (it answers 487),
    a missed-call push for the call; the phone never rings and no second call push is sent."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=PBX_USERS) as pbx:
        with wk.Rig(ctx, users=(), extra_config=edge_config(pbx, mode="relay")) as rig:
            p = sleeping_alice(rig, tok, ["--on-call", "ignore"])
            check_alice_at_pbx(rig, pbx)
            caller = bob_at_pbx(ctx, rig, pbx)
            # bob's INVITE is not challenged, so invite() calls no on_trying: cancel from here.
            t = threading.Thread(target=lambda: (p.wait_event("invite_received", timeout=20),
                                                 caller.cancel()))
            t.start()
            final = caller.invite(timeout=25)
            t.join(20)
            it.expect_code(final, 487, "INVITE cancelled by bob")
            caller.ack_non2xx(final)
            check(any(r.code == 200 and "CANCEL" in (r.header("cseq") or "") for r in caller.other),
                  "no 200 to the CANCEL: %r" % caller.other)
            check(pbx.received("CANCEL"), "the CANCEL did not pass Kamailio")
            check(p.wait() == 0, "phone exit:\n" + p.log())
            evs = ph.read_events(p.events)
            cancels = [e for e in evs if e["event"] == "cancel_received"]
            check(len(cancels) == 1 and cancels[0]["state"] == "ignored",
                  "CANCEL at the phone: %r" % cancels)
            check("ringing" not in ph.names(evs), "the phone rang: %r" % ph.names(evs))
            call = rig.watch.wait_push(tok)
            wk.check_call_push(call, "apns", tok, caller.call_id)
            missed = rig.watch.wait_push(tok, "missed")
            check(wk.field(missed["payload"], "call_uuid") == wk.field(call["payload"],
                                                                        "call_uuid"),
                  "missed-call push for another call: %r" % missed)
            check(len(rig.watch.seen(tok, "call")) == 1, "call pushed again: %r"
                  % rig.watch.pushes)
            rig.server_alive()


def test_edge_relay_message_from_pbx(ctx):
    """Relay: bob sends a MESSAGE to alice at Kamailio, which relays it to sipwake's contact for
    her sleeping FCM device: sipwake pushes (a data push, docs/push.md), holds the MESSAGE, and
    delivers it over the connection of the woken phone's REGISTER; the phone's 200 reaches bob
    through Kamailio."""
    tok = wk.fcm_token()
    with KamailioPbx(ctx, users=PBX_USERS) as pbx:
        with wk.Rig(ctx, users=(), extra_config=edge_config(pbx, mode="relay")) as rig:
            rig.watch.subscribe(tok, project=wk.PROJECT)
            p = rig.phone("fcm", "alice", ["--dialect", "rfc8599", "--provider", "fcm", "--app",
                                           wk.PROJECT, "--token", tok,
                                           "--background-after-register", "--calls", "1"])
            p.wait_event("backgrounded")
            pbx.wait_bindings("alice", 1, timeout=WAIT)
            caller = bob_at_pbx(ctx, rig, pbx)
            text = "hello from the PBX"
            r = caller.c.exchange(caller.request("MESSAGE", caller.ruri, caller.cseq, body=text,
                                                 content_type="text/plain"), timeout=15)
            check(r is not None, "no final response to the MESSAGE")
            it.expect_code(r, 200, "MESSAGE from bob at the PBX")
            push = rig.watch.wait_push(tok, event="message")
            check(wk.field(push["payload"], "call_id") == caller.call_id,
                  "push for another request: %r" % push)
            check(p.wait() == 0, "phone exit:\n" + p.log())
            evs = ph.read_events(p.events)
            check(ph.names(evs).index("reregistered") < ph.names(evs).index("message_received"),
                  "MESSAGE before the REGISTER: %r" % ph.names(evs))
            got = [e for e in evs if e["event"] == "message_received"]
            check(len(got) == 1 and got[0]["body"] == text, "MESSAGE at the phone: %r" % got)
def test_edge_relay_tls_upstream(ctx):
    """Relay over TLS: upstream "sip:127.0.0.1:PORT;transport=tls", sipwake verifying Kamailio's
    certificate (test CA, name 127.0.0.1) and Kamailio requiring sipwake's client certificate.
    alice's push phone registers through sipwake: her REGISTERs reach Kamailio over TLS, which
    binds sipwake's contact on its TLS listener (transport=tls); bob calls alice at Kamailio:
    the INVITE comes to sipwake over TLS, the phone is pushed, wakes and answers."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=PBX_USERS, tls=True, require_client_cert=True) as pbx:
        cfg = edge_config(pbx, mode="relay", upstream=pbx.tls_uri) + tls_config(*pbx.pki)
        with wk.Rig(ctx, users=(), extra_config=cfg) as rig:
            p = sleeping_alice(rig, tok)
            check_alice_at_pbx(rig, pbx, tls=True)
            regs = registers_on(pbx)
            check(len(regs) == 2 and all(r["proto"] == "tls" for r in regs),
                  "REGISTERs at the PBX: %r" % regs)
            bob_calls_alice(ctx, rig, pbx, p, tok)
            check("TLS handshake" not in rig.server.log(), rig.server.log()[-3000:])
            rig.server_alive()


def test_edge_own_tls_upstream(ctx):
    """Own mode over TLS: sipwake (authenticating alice itself) registers her device at Kamailio
    over TLS, each verifying the other's certificate, Kamailio trusting sipwake's address: one
    upstream REGISTER, over TLS, binding sipwake's TLS contact; bob's call at Kamailio comes to
    sipwake over TLS and wakes the phone."""
    tok = wk.apns_token()
    with KamailioPbx(ctx, users=PBX_USERS, trusted="127.0.0.1", tls=True,
                     require_client_cert=True) as pbx:
        cfg = edge_config(pbx, upstream=pbx.tls_uri) + tls_config(*pbx.pki)
        with wk.Rig(ctx, extra_config=cfg) as rig:
            p = sleeping_alice(rig, tok)
            check_alice_at_pbx(rig, pbx, tls=True)
            regs = upstream_registers(pbx)
            check(len(regs) == 1 and regs[0]["proto"] == "tls", "upstream REGISTERs: %r" % regs)
            bob_calls_alice(ctx, rig, pbx, p, tok)
            rig.server_alive()


def relay_register_refused(ctx, rig, pbx, why):
    """A phone's REGISTER through sipwake while the TLS upstream cannot be verified: 503 with
    Retry-After, sipwake's log says `why`, Kamailio has no binding and got no REGISTER."""
    client = it.UdpClient(("127.0.0.1", rig.udp))
    try:
        expect_503(it.Registration(client, rig.udp, "bob", "bob-pw"), "unverified upstream")
    finally:
        client.close()
    log = wait_log(rig, "edge: upstream %s unreachable (" % pbx.tls_uri, WAIT)
    check(re.search(r"unreachable \([^)]*TLS handshake[^)]*%s" % why, log),
          "no reason in the log:\n" + log[-3000:])
    check(pbx.bindings("bob") == [], "bound at the PBX: %r" % pbx.bindings("bob"))
    check(registers_on(pbx) == [], "REGISTER reached the PBX: %r" % registers_on(pbx))


def test_edge_relay_tls_untrusted(ctx):
    """Relay over TLS, sipwake verifying peers but not trusting the test CA that signed
    Kamailio's certificate (system store): the phone's REGISTER gets 503 + Retry-After (never a
    200 the PBX does not know), sipwake logs the failed certificate verification, Kamailio has no
    binding."""
    with KamailioPbx(ctx, users=PBX_USERS, tls=True) as pbx:
        cfg = edge_config(pbx, mode="relay", upstream=pbx.tls_uri) + tls_config()
        with wk.Rig(ctx, users=(), extra_config=cfg) as rig:
            relay_register_refused(ctx, rig, pbx, "certificate verify failed")
            rig.server_alive()


def test_edge_relay_tls_wrong_name(ctx):
    """Relay over TLS, sipwake trusting the test CA but Kamailio's certificate naming 127.0.0.1
    while the upstream is 127.0.0.2 (Kamailio's TLS listener there): the name check fails, the
    phone's REGISTER gets 503 + Retry-After, sipwake logs the failed verification, Kamailio has
    no binding."""
    with KamailioPbx(ctx, users=PBX_USERS, tls=True, tls_host="127.0.0.2") as pbx:
        ca, _, _ = pbx.pki
        cfg = edge_config(pbx, mode="relay", upstream=pbx.tls_uri) + tls_config(ca)
        with wk.Rig(ctx, users=(), extra_config=cfg) as rig:
            relay_register_refused(ctx, rig, pbx, "certificate verify failed")
            rig.server_alive()


def test_edge_relay_stranger_throttle(ctx):
    """Relay: the phones' requests go to the PBX unauthenticated at sipwake, so the stranger
    throttle applies to them: with stranger_burst 3, six MESSAGEs from one address → three
    reach the upstream (a UDP socket on 127.0.0.2 that never answers: 408 later), three get 503
    Too Many Requests at once."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.2", 0))
    hole.settimeout(0.2)
    try:
        pbx = types.SimpleNamespace(uri="sip:127.0.0.2:%d" % hole.getsockname()[1])
        cfg = (edge_config(pbx, mode="relay") + "\n[proxy]\nstranger_rate = 1\n"
               "stranger_burst = 3\n\n[timers]\nt1_ms = 50\n")
        with wk.Rig(ctx, users=(), extra_config=cfg) as rig:
            caller = ph.Caller(ctx, rig.udp, "alice", "alice-pw", "bob@127.0.0.1")
            rig.callers.append(caller)
            for i in range(6):
                caller.call_id = "%d-%s" % (i, caller.call_id)
                caller.c.send(caller.request("MESSAGE", caller.ruri, 1, body="hi",
                                             content_type="text/plain"))
            answers = []
            deadline = time.monotonic() + 6
            while len(answers) < 6 and time.monotonic() < deadline:
                r = caller.c.recv(0.5)
                if r is not None:
                    answers.append((r.code, r.reason))
            busy = [a for a in answers if a == (503, "Service Unavailable - Too Many Requests")]
            check(len(busy) == 3, "answers: %r" % answers)
            check(sum(1 for a in answers if a[0] == 408) == 3, "answers: %r" % answers)
            seen = set()
            while True:
                try:
                    data = hole.recv(65535).decode("utf-8", "replace")
                except socket.timeout:
                    break
                m = re.search(r"(?im)^Call-ID:\s*(\S+)", data)
                if m and data.startswith("MESSAGE "):
                    seen.add(m.group(1))
            check(len(seen) == 3, "MESSAGEs at the upstream: %r" % seen)
            rig.server_alive()
    finally:
        hole.close()


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}


def main():
    return ph.main(TESTS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
