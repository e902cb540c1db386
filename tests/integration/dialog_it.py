#!/usr/bin/env python3
"""Dialogs through sipwake when caller, callee and sipwake share one host (127.0.0.1, different
ports), and the requests sipwake answers itself instead of forking them to a user's devices.
Raw-socket UAs (calls_it.RawUa) over UDP and TCP; reuses the harness of sipwake_it.py.

    dialog_it.py --sipwake build/sipwake --work-dir /tmp/it dialog_same_host_udp

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import re
import select
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
from calls_it import PASSWORD, RawUa, add_users, call_config  # noqa: E402
from sipwake_it import Fail, check  # noqa: E402

WAIT = 5.0  # seconds for any one message to arrive

# What linphone puts in its Contact (RFC 8599 plus Linphone's extras), as URI and header params.
PUSH_URI_PARAMS = (";pn-provider=apns.dev;pn-param=ABCDE12345.org.example.app.voip"
                   ";pn-prid=%s;pn-timeout=0;pn-silent=1")


def uri_of(name_addr):
    m = re.search(r"<([^>]*)>", name_addr)
    return m.group(1) if m else name_addr.split(";")[0].strip()


def split_list(values):
    out = []
    for v in values:
        out += [x.strip() for x in re.split(r",(?=\s*<)", v)]
    return out


def no_push_params(message, what):
    text = message[2].decode("utf-8", "replace")
    check(not re.search(r"(?i)[;\s](pn-|push-token-|app-id)", text),
          "%s carries push params:\n%s" % (what, text))


class Side:
    """One end of the dialog: its UA, tags, CSeq, remote target and route set."""

    def __init__(self, ua, aor, tag):
        self.ua, self.aor, self.tag = ua, aor, tag
        self.cseq = 1
        self.contact_uri = "sip:%s:%d;transport=%s" % (ua.local[0], ua.local[1], ua.proto)
        self.remote_target = None
        self.route = []
        self.remote_aor = self.remote_tag = None

    def request(self, method, call_id, cseq=None, extra=(), ruri=None, to_tag=True):
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        host, port = self.ua.local
        to = "<%s>" % self.remote_aor + (";tag=" + self.remote_tag if to_tag else "")
        lines = ["%s %s SIP/2.0" % (method, ruri or self.remote_target),
                 "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK%s;rport" % (self.ua.proto, host, port,
                                                                    uuid.uuid4().hex),
                 "Max-Forwards: 70", "From: <%s>;tag=%s" % (self.aor, self.tag), "To: " + to,
                 "Call-ID: " + call_id, "CSeq: %d %s" % (cseq, method)]
        lines += ["Route: " + r for r in self.route] + list(extra) + ["Content-Length: 0"]
        self.ua.c.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return cseq


def expect_final(side, cseq, method):
    """The final response to `side`'s request (CSeq `cseq` `method`); Fail unless it is 200."""
    deadline = time.monotonic() + WAIT
    while True:
        m = side.ua.recv_message(max(0.0, deadline - time.monotonic()))
        check(m is not None, "%s %s: no final response within %.0fs" % (side.aor, method, WAIT))
        if not m[0].startswith("SIP/2.0 ") or m[1].get("cseq", [""])[0] != "%d %s" % (cseq,
                                                                                     method):
            continue
        code = int(m[0].split()[1])
        if code < 200:
            continue
        check(code == 200, "%s's %s got %r, expected 200:\n%s"
              % (side.aor, method, m[0], m[2].decode("utf-8", "replace")))
        return m


def in_dialog(sender, receiver, call_id, method):
    """`sender` sends `method` to its remote target along its route set; `receiver` gets it,
    answers 200, and the 200 comes back (re-INVITE: then the ACK reaches `receiver`)."""
    extra = ["Contact: <%s>" % sender.contact_uri] if method == "INVITE" else []
    cseq = sender.request(method, call_id, extra=extra)
    try:
        got = receiver.ua.wait_for(method + " ", WAIT)
    except Fail as e:
        answer = sender.ua.recv_message(0.1)
        raise Fail("%s from %s: %s; %s got %r" % (method, sender.aor, e, sender.aor,
                                                  answer[0] if answer else None))
    check(got[0].split()[1] == receiver.contact_uri,
          "%s reached %s with Request-URI %r" % (method, receiver.aor, got[0]))
    answer = ["Contact: <%s>" % receiver.contact_uri] if method == "INVITE" else []
    receiver.ua.reply(got, 200, "OK", to_tag=receiver.tag, extra=answer)
    expect_final(sender, cseq, method)
    if method == "INVITE":
        sender.request("ACK", call_id, cseq=cseq)
        receiver.ua.wait_for("ACK ", WAIT)


def register_bob(port, proto, host="127.0.0.1"):
    """bob's UA registered at the server on `host`:`port` (plain Contact); his Side."""
    bob = Side(RawUa(port, proto, server_host=host), "sip:bob@127.0.0.1", "bobtag")
    reg = it.Registration(bob.ua.c, port, "bob", PASSWORD["bob"], proto=proto)
    it.expect_code(reg.send(["Contact: " + reg.contact], algorithm="MD5"), 200,
                   "bob's REGISTER")
    return bob


def establish_call(port, proto, push_params=True, bob=None):
    """bob registers (unless `bob`, registered already, perhaps at another server, is given),
    alice (using the server on `port` as her outbound proxy: a pre-loaded Route) calls him: 407,
    INVITE with credentials, bob answers 200 with the server's Record-Route, ACK. With
    `push_params` every Contact carries linphone's push params and none may reach the other side
    (sipwake); without, the Contacts are plain (any proxy). Returns (alice, bob, call_id,
    record_route) with each side's route set and remote target set up."""
    pn = (lambda token: PUSH_URI_PARAMS % token) if push_params else (lambda token: "")
    if bob is None:
        bob = register_bob(port, proto)
    alice = Side(RawUa(port, proto), "sip:alice@127.0.0.1", "alicetag")
    alice.remote_aor, bob.remote_aor = bob.aor, alice.aor
    call_id = "%s@it" % uuid.uuid4().hex

    invite_contact = "Contact: <%s%s>;+sip.instance=\"<urn:uuid:%s>\"%s" % (
        alice.contact_uri, pn("alice-token"), uuid.uuid4(), ";pn-prid=alice-hdr" * push_params)
    ruri = "sip:bob@127.0.0.1"
    outbound = "Route: <sip:127.0.0.1:%d;transport=%s;lr>" % (port, proto.lower())
    alice.request("INVITE", call_id, cseq=1, extra=[outbound, invite_contact], ruri=ruri,
                  to_tag=False)
    challenge = alice.ua.wait_for("407", WAIT)
    alice.ua.c.send(ack_for(challenge, ruri))
    auth = it.digest_authorization(challenge[1]["proxy-authenticate"], "INVITE", ruri,
                                   "alice", PASSWORD["alice"], "MD5")
    alice.request("INVITE", call_id, cseq=2, ruri=ruri, to_tag=False,
                  extra=[outbound, invite_contact, "Proxy-Authorization: " + auth])
    alice.cseq = 2
    invite = bob.ua.wait_for("INVITE ", WAIT)
    if push_params:
        no_push_params(invite, "the INVITE bob received")
    record_route = split_list(invite[1].get("record-route", []))
    check(record_route, "the INVITE has no Record-Route:\n%s"
          % invite[2].decode("utf-8", "replace"))
    bob.remote_target = uri_of(invite[1]["contact"][0])
    bob.remote_tag = alice.tag
    bob.route = list(record_route)
    bob_contact = "Contact: <%s%s>;+sip.instance=\"<urn:uuid:%s>\"%s" % (
        bob.contact_uri, pn("bob-token"), uuid.uuid4(), ";pn-prid=bob-hdr" * push_params)
    bob.ua.reply(invite, 200, "OK", to_tag=bob.tag,
                 extra=["Record-Route: " + v for v in record_route] + [bob_contact])
    ok = expect_final(alice, 2, "INVITE")
    if push_params:
        no_push_params(ok, "the 200 alice received")
    alice.remote_target = uri_of(ok[1]["contact"][0])
    check(alice.remote_target == bob.contact_uri, "bob's Contact reached alice as %r"
          % alice.remote_target)
    alice.remote_tag = bob.tag
    alice.route = list(reversed(split_list(ok[1].get("record-route", []))))
    alice.request("ACK", call_id, cseq=2)
    bob.ua.wait_for("ACK ", WAIT)
    return alice, bob, call_id, record_route


def dialog_same_host(ctx, proto):
    """alice and bob (raw UAs on 127.0.0.1, `proto`) and sipwake share the host. A call is set
    up through sipwake (establish_call); then re-INVITE, MESSAGE, INFO from alice to bob's
    contact "sip:127.0.0.1:<port>;transport=<proto>" with sipwake's Record-Route as Route,
    MESSAGE and INFO from bob to alice, and BYE: each reaches the other side and the 200 comes
    back."""
    add_users(ctx)
    server, (udp, tcp, _) = it.start_server(ctx, ["--config", call_config(ctx, ["MD5"])])
    port = udp if proto == "UDP" else tcp
    with server:
        alice, bob, call_id, _ = establish_call(port, proto)
        for method in ("INVITE", "MESSAGE", "INFO"):
            in_dialog(alice, bob, call_id, method)
        for method in ("MESSAGE", "INFO"):
            in_dialog(bob, alice, call_id, method)
        in_dialog(alice, bob, call_id, "BYE")
        check(server.alive(), "sipwake died:\n" + server.log()[-3000:])


def test_dialog_survives_restart(ctx):
    """A call set up through sipwake, then sipwake restarts (same store, same ports, no [proxy]
    route_secret_file): bob's MESSAGE and alice's BYE through the signed Record-Route still reach
    the other side (the secret was kept beside the store, 0600)."""
    add_users(ctx)
    server, (udp, tcp, tls) = it.start_server(ctx, ["--config", call_config(ctx, ["MD5"])])
    with server:
        alice, bob, call_id, _ = establish_call(udp, "UDP")
    key = os.path.join(ctx.work, "sipwake.db.route-key")
    check(os.path.exists(key), "no %s after the first start" % key)
    mode = os.stat(key).st_mode & 0o777
    check(mode == 0o600, "%s is mode %o" % (key, mode))
    with it.Sipwake(ctx, it.listen_args(udp, tcp, tls) + ["--config", call_config(ctx, ["MD5"])],
                    name="sipwake-restarted") as again:
        in_dialog(bob, alice, call_id, "MESSAGE")
        in_dialog(alice, bob, call_id, "BYE")
        check(again.alive(), "sipwake died:\n" + again.log()[-3000:])


def no_relay(ctx, proto):
    """The relay probe: a stranger (mallory@evil.example) sends BYE, MESSAGE, INVITE, INFO with a
    To-tag and a Route naming sipwake toward a phone on another host (a UDP listener on
    127.0.0.2): with an unsigned Route, with one that names sipwake's domain, and with the
    signed Record-Route copied out of a real call (another Call-ID, or the call's own Call-ID
    with the stranger's tags), and through a Route to another port of the host. Each gets 403
    with the reason for it; ACKs are dropped; nothing
    reaches the phone. The real call (alice -> bob through sipwake) still works both ways."""
    add_users(ctx)
    server, (udp, tcp, _) = it.start_server(ctx, ["--config", call_config(ctx, ["MD5"])])
    port = udp if proto == "UDP" else tcp
    with server:
        alice, bob, call_id, record_route = establish_call(port, proto)
        phone = it.UdpClient(("127.0.0.1", port), host="127.0.0.2")
        target = "sip:carol@%s:%d" % phone.local
        stranger = Side(RawUa(port, proto), "sip:mallory@evil.example", "mallorytag")
        stranger.remote_aor, stranger.remote_tag = target, "carol-tag"
        stranger.remote_target = target
        evil = lambda: "%s@evil" % uuid.uuid4().hex  # noqa: E731
        probes = [("<sip:127.0.0.1:%d;transport=%s;lr>" % (port, proto.lower()),
                   "Forbidden - Route Not Signed", evil()),
                  ("<sip:127.0.0.1:%d;lr>" % port, "Forbidden - Route Not Signed", evil()),
                  ("<sip:mallory@127.0.0.1:%d;lr>" % port, "Forbidden - Route Not Signed",
                   evil()),
                  # Not our port: a Route to another server, which strangers may not use.
                  ("<sip:127.0.0.1;lr>", "Relaying Denied", evil()),
                  (record_route[0], "Forbidden - Route Signature Invalid", evil()),
                  (record_route[0], "Forbidden - Route Signature Invalid", call_id)]
        for route, reason, probe_call in probes:
            stranger.route = [route]
            for method in ("BYE", "MESSAGE", "INVITE", "INFO", "ACK"):
                extra = ["Contact: <%s>" % stranger.contact_uri] if method == "INVITE" else []
                cseq = stranger.request(method, probe_call, extra=extra)
                if method == "ACK":
                    continue
                try:
                    r = stranger.ua.wait_for("SIP/2.0 ", WAIT)
                    while r[0].startswith("SIP/2.0 1"):
                        r = stranger.ua.wait_for("SIP/2.0 ", WAIT)
                except Fail as e:
                    relayed = phone.sock.recv(65535) if select.select([phone.sock], [], [],
                                                                      0)[0] else None
                    raise Fail("%s through Route %s: %s; relayed to the phone on another host: %r"
                               % (method, route, e, relayed))
                check(r[0] == "SIP/2.0 403 " + reason and
                      r[1]["cseq"][0] == "%d %s" % (cseq, method),
                      "%s through Route %s (Call-ID %s): %r, expected 403 %s"
                      % (method, route, probe_call, r[0], reason))
        # sipwake answered every probe before forwarding anything: a relayed request would
        # already be on its way to the phone.
        readable, _, _ = select.select([phone.sock], [], [], 0.5)
        check(not readable, "the phone on another host got:\n%r"
              % (phone.sock.recv(65535) if readable else b"",))
        # The real call is unaffected, in both directions.
        in_dialog(bob, alice, call_id, "MESSAGE")
        in_dialog(alice, bob, call_id, "INFO")
        in_dialog(bob, alice, call_id, "BYE")
        check(server.alive(), "sipwake died:\n" + server.log()[-3000:])


def ack_for(response, ruri):
    """The ACK for a non-2xx final response (same branch as the INVITE it answers)."""
    _, h, _ = response
    lines = ["ACK %s SIP/2.0" % ruri, "Via: " + h["via"][0], "Max-Forwards: 70",
             "From: " + h["from"][0], "To: " + h["to"][0], "Call-ID: " + h["call-id"][0],
             "CSeq: %s ACK" % h["cseq"][0].split()[0], "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_dialog_same_host_udp(ctx):
    dialog_same_host(ctx, "UDP")


def test_dialog_same_host_tcp(ctx):
    dialog_same_host(ctx, "TCP")


def test_no_relay_udp(ctx):
    no_relay(ctx, "UDP")


def test_no_relay_tcp(ctx):
    no_relay(ctx, "TCP")


def test_event_state_not_served(ctx):
    """linphone's presence PUBLISH (Request-URI = the publisher's own AOR) and SUBSCRIBEs to the
    presence / message-summary of one of our users are answered 489 at once, not forked to the
    user's devices (which answered 405 after 32 s). A SUBSCRIBE to another domain is forwarded."""
    add_users(ctx)
    server, (udp, _, _) = it.start_server(ctx, ["--config", call_config(ctx, ["MD5"])])
    with server:
        device = RawUa(udp)
        reg = it.Registration(device.c, udp, "alice", PASSWORD["alice"])
        it.expect_code(reg.send(["Contact: " + reg.contact], algorithm="MD5"), 200,
                       "alice's REGISTER")
        alice = Side(RawUa(udp), "sip:alice@127.0.0.1", "alicetag")
        alice.remote_aor = alice.aor
        headers = ["Expires: 600", "Contact: <%s>" % alice.contact_uri]
        for method, event in (("PUBLISH", "presence"), ("SUBSCRIBE", "presence"),
                              ("SUBSCRIBE", "message-summary")):
            started = time.monotonic()
            cseq = alice.request(method, "%s@it" % uuid.uuid4().hex, ruri=alice.aor,
                                 to_tag=False, extra=["Event: " + event] + headers)
            r = alice.ua.wait_for("SIP/2.0 ", WAIT)
            check(r[0].startswith("SIP/2.0 489") and r[1]["cseq"][0] == "%d %s" % (cseq, method),
                  "%s Event: %s to alice's own AOR: %r" % (method, event, r[0]))
            check(time.monotonic() - started < 2.0, "%s: 489 took %.1fs"
                  % (method, time.monotonic() - started))
            check("allow-events" not in r[1], "489 lists Allow-Events: %r" % r[1])
        stray = device.recv_message(0.3)
        check(stray is None, "alice's device got %r" % (stray[0] if stray else None,))

        # A SUBSCRIBE to another domain (an IP literal: a UA at another port) is forwarded.
        notifier = RawUa(udp)
        target = "sip:carol@%s:%d" % notifier.local
        alice.remote_aor = target
        call_id = "%s@it" % uuid.uuid4().hex
        cseq = alice.request("SUBSCRIBE", call_id, ruri=target, to_tag=False,
                             extra=["Event: presence"] + headers)
        challenge = alice.ua.wait_for("407", WAIT)
        auth = it.digest_authorization(challenge[1]["proxy-authenticate"], "SUBSCRIBE", target,
                                       "alice", PASSWORD["alice"], "MD5")
        cseq = alice.request("SUBSCRIBE", call_id, ruri=target, to_tag=False,
                             extra=["Event: presence", "Proxy-Authorization: " + auth] + headers)
        sub = notifier.wait_for("SUBSCRIBE ", WAIT)
        notifier.reply(sub, 200, "OK", to_tag="carol", extra=["Expires: 600"])
        expect_final(alice, cseq, "SUBSCRIBE")


if __name__ == "__main__":
    sys.exit(it.run_module_tests(globals()))
