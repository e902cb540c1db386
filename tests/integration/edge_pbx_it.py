#!/usr/bin/env python3
"""The PBX of the edge-mode tests (tests/pbx/kamailio.cfg, started by pbx_kamailio.KamailioPbx)
does what edge mode asks of a PBX: digest registration (sipp's stock [authentication] and raw
UAs), calls between directly registered users (407, record-routed ACK and BYE), 480 / 404 for
users without a binding, a REGISTER's Path kept and used as the route to the user, and a trusted
source registering without credentials. No sipwake involved.

    edge_pbx_it.py --sipwake build/sipwake --work-dir /tmp/it pbx_register_digest

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
from calls_it import PASSWORD, RawUa  # noqa: E402
from dialog_it import WAIT, ack_for, establish_call, in_dialog  # noqa: E402
from pbx_kamailio import KamailioPbx  # noqa: E402
from sipwake_it import check  # noqa: E402

USERS = dict(PASSWORD, carol="carol-pw")


def register(client, pbx, user, headers=(), password=None, contact=None):
    """`user` REGISTERs at the PBX from `client`, answering a 401 with `password` (MD5, the
    only algorithm of the PBX's challenges); the final response."""
    reg = it.Registration(client, pbx.port, user, password)
    return reg.send(["Contact: " + (contact or reg.contact)] + list(headers), algorithm="MD5")


def invite(ua, pbx, callee, caller="bob"):
    """`caller` (raw UA `ua`) sends an INVITE for sip:CALLEE@127.0.0.1 to the PBX, answering its
    407; returns the (request line, headers) of the INVITE sent last."""
    ruri = "sip:%s@127.0.0.1" % callee
    call_id, tag = "%s@it" % uuid.uuid4().hex, uuid.uuid4().hex[:10]

    def send(cseq, extra=()):
        host, port = ua.local
        lines = ["INVITE %s SIP/2.0" % ruri,
                 "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport" % (host, port, uuid.uuid4().hex),
                 "Max-Forwards: 70", "From: <sip:%s@127.0.0.1>;tag=%s" % (caller, tag),
                 "To: <%s>" % ruri, "Call-ID: " + call_id, "CSeq: %d INVITE" % cseq,
                 "Contact: <sip:%s@%s:%d>" % (caller, host, port)] + list(extra)
        ua.c.send(("\r\n".join(lines + ["Content-Length: 0"]) + "\r\n\r\n").encode())

    send(1)
    challenge = ua.wait_for("SIP/2.0 407", WAIT)
    ua.c.send(ack_for(challenge, ruri))
    auth = it.digest_authorization(challenge[1]["proxy-authenticate"], "INVITE", ruri, caller,
                                   PASSWORD[caller], "MD5")
    send(2, ["Proxy-Authorization: " + auth])
    return ruri


def final_response(ua):
    """The first final response `ua` receives (provisional ones skipped)."""
    while True:
        m = ua.wait_for("SIP/2.0 ", WAIT)
        if int(m[0].split()[1]) >= 200:
            return m


def test_pbx_register_digest(ctx):
    """alice registers with sipp's stock [authentication] (UDP), bob with the raw helper over
    TCP: 401, then 200, and ul.lookup lists each binding. A wrong password is challenged again
    (401) and leaves no binding; an unknown user gets no binding either."""
    with KamailioPbx(ctx, users=USERS) as pbx:
        it.run_sipp_as(ctx, "register_stock.xml", pbx.udp_addr, "u1", "alice", USERS["alice"])
        alice = pbx.bindings("alice")
        check(len(alice) == 1 and ";transport=udp" in alice[0]["contact"].lower()
              and alice[0]["expires"] in (599, 600), "alice's bindings: %r" % alice)

        tcp = it.StreamClient(pbx.udp_addr)
        try:
            ok = register(tcp, pbx, "bob", password=USERS["bob"])
            it.expect_code(ok, 200, "bob's REGISTER over TCP")
            bob = pbx.bindings("bob")
            check(len(bob) == 1 and bob[0]["socket"] == "tcp:127.0.0.1:%d" % pbx.port,
                  "bob's bindings: %r" % bob)
        finally:
            tcp.close()

        udp = it.UdpClient(pbx.udp_addr)
        try:
            wrong = register(udp, pbx, "carol", password="not-carols")
            check(wrong is not None and wrong.code in (401, 403),
                  "a wrong password got %r" % wrong)
            check(pbx.bindings("carol") == [], "carol bound with a wrong password: %r"
                  % pbx.bindings("carol"))
            stranger = register(udp, pbx, "mallory", password="guess")
            check(stranger is not None and stranger.code in (401, 403),
                  "an unknown user got %r" % stranger)
            check(pbx.bindings("mallory") == [], "an unknown user has a binding")
        finally:
            udp.close()
        registers = pbx.received("REGISTER")
        check(len(registers) == 8, "the PBX logged %d REGISTERs, expected 8 (two each for alice, "
              "bob, carol, mallory):\n%r" % (len(registers), registers))


def test_pbx_call_direct(ctx):
    """bob registers at the PBX; alice calls him through it (407, INVITE with credentials,
    bob's 200 with the PBX's Record-Route, ACK along the route set); re-INVITE and BYE from
    alice, MESSAGE from bob: each reaches the other side through the PBX and the 200 comes
    back."""
    with KamailioPbx(ctx, users=USERS, auth_calls=True) as pbx:
        alice, bob, call_id, record_route = establish_call(pbx.port, "UDP", push_params=False)
        check(any("127.0.0.1:%d" % pbx.port in r for r in record_route),
              "the INVITE was not record-routed by the PBX: %r" % record_route)
        in_dialog(alice, bob, call_id, "INVITE")
        in_dialog(bob, alice, call_id, "MESSAGE")
        in_dialog(alice, bob, call_id, "BYE")
        byes = [r for r in pbx.received("BYE") if r["call_id"] == call_id]
        check(len(byes) == 1, "the BYE did not pass the PBX once: %r" % byes)
        check(pbx.alive(), "kamailio died:\n" + pbx.log()[-3000:])


def test_pbx_lookup_misses(ctx):
    """An INVITE for a subscriber without a binding (carol) gets 480, one for a name that is no
    subscriber 404."""
    with KamailioPbx(ctx, users=USERS, auth_calls=True) as pbx:
        bob = RawUa(pbx.port)
        try:
            for callee, code in (("carol", 480), ("nobody", 404)):
                ruri = invite(bob, pbx, callee)
                m = final_response(bob)
                check(m[0].startswith("SIP/2.0 %d " % code), "INVITE for %s got %r, expected %d"
                      % (callee, m[0], code))
                bob.c.send(ack_for(m, ruri))
        finally:
            bob.c.close()


def test_pbx_path(ctx):
    """A REGISTER for alice that carries "Path: <sip:127.0.0.1:EDGE;lr>" (sent from EDGE, a UDP
    socket standing in for sipwake; the Contact names a port where nothing listens) is saved with
    the Path, returned in the 200 (Supported: path); bob's INVITE for alice then arrives at EDGE,
    with that Route first and alice's Contact as Request-URI; EDGE's 486 reaches bob."""
    with KamailioPbx(ctx, users=USERS, auth_calls=True) as pbx:
        edge, bob = RawUa(pbx.port), RawUa(pbx.port)
        try:
            path = "<sip:127.0.0.1:%d;lr>" % edge.local[1]
            contact = "<sip:alice@127.0.0.1:9;transport=udp>"
            ok = register(edge.c, pbx, "alice", ["Path: " + path, "Supported: path"],
                          USERS["alice"], contact)
            it.expect_code(ok, 200, "the REGISTER with Path")
            check(ok.header("path") == path, "the 200 returns Path %r" % ok.header("path"))
            saved = pbx.bindings("alice")
            check(len(saved) == 1 and saved[0]["path"] == path, "alice's bindings: %r" % saved)

            ruri = invite(bob, pbx, "alice")
            got = edge.wait_for("INVITE ", WAIT)
            check(got[0].split()[1] == "sip:alice@127.0.0.1:9;transport=udp",
                  "the INVITE's Request-URI is %r" % got[0])
            routes = got[1].get("route", [])
            check(routes and routes[0].split(",")[0].strip() == path,
                  "the INVITE's Route is %r, expected %s first" % (routes, path))
            edge.reply(got, 486, "Busy Here")
            m = final_response(bob)
            check(m[0].startswith("SIP/2.0 486 "), "bob got %r, expected 486" % m[0])
            bob.c.send(ack_for(m, ruri))
        finally:
            edge.c.close()
            bob.c.close()


def test_pbx_trusted_source(ctx):
    """With the PBX trusting one address and port (sipwake in the "own" credential model), a
    REGISTER from there is saved without a challenge; the same REGISTER from another port of the
    same address is challenged (401)."""
    trusted = it.UdpClient(None)
    other = it.UdpClient(None)
    try:
        with KamailioPbx(ctx, users=USERS, trusted=trusted.local) as pbx:
            trusted.server = other.server = pbx.udp_addr
            r = register(trusted, pbx, "alice")
            it.expect_code(r, 200, "the trusted source's REGISTER without credentials")
            pbx.wait_bindings("alice", 1, timeout=1.0)
            r = register(other, pbx, "bob")
            it.expect_code(r, 401, "an untrusted port's REGISTER without credentials")
            check(pbx.bindings("bob") == [], "bob bound without credentials")
    finally:
        trusted.close()
        other.close()


if __name__ == "__main__":
    sys.exit(it.run_module_tests(globals()))
