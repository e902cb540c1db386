#!/usr/bin/env python3
"""Digest authentication with stock clients, as a user would run them: sipp's own
[authentication] keyword (its digest uri is sip:<server ip>:<server port>, whatever the
Request-URI), baresip and the server's defaults; and the caller's credentials for our realm
never reaching the callee (RFC 3261 §22.3). Reuses the harness of sipwake_it.py / calls_it.py.

    auth_it.py --sipwake build/sipwake --sipp /usr/bin/sipp \
        --scenarios tests/integration/scenarios --work-dir /tmp/it auth_sipp_call_default

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import calls_it  # noqa: E402
import sipwake_it as it  # noqa: E402
from sipwake_it import Skip, check  # noqa: E402

PASSWORD = calls_it.PASSWORD


def sipp_register(ctx, config):
    """sipp REGISTER sip:127.0.0.1 with its stock [authentication] → 200."""
    it.add_user(ctx, "alice@127.0.0.1", PASSWORD["alice"])
    server, (udp, _, _) = it.start_server(ctx, ["--config", config])
    with server:
        it.run_sipp_as(ctx, "register_stock.xml", ("127.0.0.1", udp), "u1", "alice",
                       PASSWORD["alice"])


def test_auth_sipp_register_md5_first(ctx):
    sipp_register(ctx, calls_it.call_config(ctx, ("MD5", "SHA-256")))


def test_auth_sipp_register_default(ctx):
    sipp_register(ctx, calls_it.call_config(ctx, None))


def sipp_call(ctx, config):
    """alice (sipp, stock [authentication]) calls sip:bob@127.0.0.1 through the proxy: 407, the
    INVITE with Proxy-Authorization, bob (a registered sipp UAS) answers. bob never sees a
    Proxy-Authorization."""
    calls_it.add_users(ctx)
    server, (udp, _, _) = it.start_server(ctx, ["--config", config])
    with server:
        procs = calls_it.run_call(ctx, [("callee", "uas_register_answer.xml")], "uac_call.xml",
                                  "u1", ("127.0.0.1", udp), udp, "127.0.0.1", stock_auth=True)
    callee = procs[0].messages()
    check("INVITE sip:" in callee, "the callee's log has no INVITE:\n" + callee[-3000:])
    check("proxy-authorization" not in callee.lower(),
          "the callee received the caller's Proxy-Authorization:\n" + callee[-3000:])


def test_auth_sipp_call_md5_first(ctx):
    sipp_call(ctx, calls_it.call_config(ctx, ("MD5", "SHA-256")))


def test_auth_sipp_call_default(ctx):
    sipp_call(ctx, calls_it.call_config(ctx, None))


def test_auth_consume_credentials(ctx):
    """The caller's Proxy-Authorization and Authorization for our realm (127.0.0.1) are removed
    before the INVITE is forwarded; a Proxy-Authorization for another realm is forwarded."""
    calls_it.add_users(ctx)
    server, (udp, _, _) = it.start_server(ctx, ["--config", calls_it.call_config(ctx, None)])
    with server:
        bob = calls_it.RawUa(udp)
        reg = it.Registration(bob.c, udp, "bob", PASSWORD["bob"])
        it.expect_code(reg.send(["Contact: " + reg.contact]), 200, "bob's REGISTER")

        alice = calls_it.RawUa(udp)
        ruri = "sip:bob@127.0.0.1:%d" % udp
        host, port = alice.local
        call_id, tag = "%s@it" % uuid.uuid4().hex, uuid.uuid4().hex[:10]

        def request(method, cseq, extra=(), to="<sip:bob@127.0.0.1>"):
            lines = ["%s %s SIP/2.0" % (method, ruri),
                     "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s%d" % (host, port, tag, cseq),
                     "Max-Forwards: 70", "From: <sip:alice@127.0.0.1>;tag=" + tag, "To: " + to,
                     "Call-ID: " + call_id, "CSeq: %d %s" % (cseq, method),
                     "User-Agent: sipwake-it"] + list(extra)
            return ("\r\n".join(lines + ["Content-Length: 0"]) + "\r\n\r\n").encode()

        contact = "Contact: <sip:alice@%s:%d>" % (host, port)
        alice.c.send(request("INVITE", 1, [contact]))
        challenge = alice.wait_for("407", 5)
        alice.c.send(request("ACK", 1, to=challenge[1]["to"][0]))
        ours = it.digest_authorization(challenge[1]["proxy-authenticate"], "INVITE", ruri,
                                       "alice", PASSWORD["alice"])
        theirs = ('Digest username="alice", realm="pbx.example.net", nonce="abc", uri="%s", '
                  'response="0123456789abcdef0123456789abcdef"' % ruri)
        alice.c.send(request("INVITE", 2, [contact, "Proxy-Authorization: " + theirs,
                                           "Proxy-Authorization: " + ours,
                                           "Authorization: " + ours]))
        forwarded = bob.wait_for("INVITE", 5)
        _, headers, raw = forwarded
        text = raw.decode("utf-8", "replace")
        check(headers.get("proxy-authorization") == [theirs],
              "the callee should get only the other realm's Proxy-Authorization:\n" + text)
        check('realm="127.0.0.1"' not in text,
              "credentials for our realm reached the callee:\n" + text)
        bob.reply(forwarded, 486, "Busy Here")
        busy = alice.wait_for("SIP/2.0 4", 5)
        check(busy[0].startswith("SIP/2.0 486"), "expected the 486, got %r" % (busy[0],))
        alice.c.send(request("ACK", 2, to=busy[1]["to"][0]))


def test_auth_uri_mismatch_not_a_failure(ctx):
    """A digest uri naming another host gets a 400 with a precise reason, and such 400s do not
    count towards max_failures: the right credentials still register afterwards (no 403)."""
    it.add_user(ctx, "alice@127.0.0.1", PASSWORD["alice"])
    config = calls_it.call_config(ctx, None)
    with open(config, "a") as f:
        f.write("\n[auth]\nmax_failures = 2\n")
    server, (udp, _, _) = it.start_server(ctx, ["--config", config])
    with server:
        c = it.UdpClient(("127.0.0.1", udp))
        try:
            reg = it.Registration(c, udp, "alice", PASSWORD["alice"])
            for i in range(3):
                r = it.expect_code(c.exchange(reg.request(["Contact: " + reg.contact])), 401,
                                   "challenge %d" % i)
                auth = it.digest_authorization(r.headers["www-authenticate"], "REGISTER",
                                               "sip:elsewhere.example.org", "alice",
                                               PASSWORD["alice"])
                r = it.expect_code(
                    c.exchange(reg.request(["Contact: " + reg.contact, "Authorization: " + auth])),
                    400, "foreign digest uri %d" % i)
                check(r.reason == "Bad Request - Authorization uri does not match the Request-URI",
                      "reason %r" % r.reason)
            it.expect_code(reg.send(["Contact: " + reg.contact]), 200,
                           "the right credentials after three uri mismatches")
        finally:
            c.close()


def test_auth_baresip_register_default(ctx):
    """Debian's baresip 1.0 registers with the default [auth] settings."""
    if calls_it.Baresip.binary() is None:
        raise Skip("baresip not installed (Debian package baresip-core)")
    calls_it.add_users(ctx)
    server, (udp, _, _) = it.start_server(ctx, ["--config", calls_it.call_config(ctx, None)])
    with server:
        bob = calls_it.Baresip(ctx, "bob", "bob", udp)
        try:
            bob.connect()
            contacts = calls_it.wait_bindings(udp, "bob", 1)
        finally:
            bob.stop()
        check(any("bob" in x for x in contacts), "no binding of baresip: %r" % contacts)
        log = bob.log()
        check("User-Agent: baresip" in log, "baresip sent no User-Agent:\n" + log[-3000:])


if __name__ == "__main__":
    sys.exit(it.run_module_tests(globals()))
