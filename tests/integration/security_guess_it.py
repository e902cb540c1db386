#!/usr/bin/env python3
"""Password guessing and user enumeration against the real sipwake on loopback: guessing spread
over 20 source addresses (client sockets bound to 127.0.0.2..21) gets a few checked guesses per
user while the real user keeps registering; guessing from a NAT address does not lock out a user
who registers from the same address; a stranger cannot tell an unknown user from an unreachable
one; a scan of 1000 probes from one address is throttled. Every failure logs a line that the
fail2ban filter of docs/security.md matches. Reuses the harness of sipwake_it.py.

    security_guess_it.py --sipwake build/sipwake --work-dir /tmp/it guess_spread

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
from sipwake_it import Skip, check  # noqa: E402

PASSWORD = "correct-horse-7"
LOG_WAIT = 5.0  # seconds for log lines to appear


def guess_config(ctx, extra=""):
    """Default limits, fail2ban lines on."""
    path = os.path.join(ctx.work, "guess.toml")
    with open(path, "w") as f:
        f.write("[server]\nworkers = 2\n\n[auth]\nlog_failures = true\n" + extra)
    return path


def client_at(host, port):
    """A UDP client bound to `host` (127.0.0.x); Skip when the address cannot be bound."""
    try:
        return it.UdpClient(("127.0.0.1", port), host=host)
    except OSError as e:
        raise Skip("cannot bind %s: %s" % (host, e))


def guess(client, port, user, password):
    """One guess: REGISTER, answer its challenge with `password`. The final answer's code."""
    reg = it.Registration(client, port, user, password)
    r = reg.send(["Contact: " + reg.contact, "Expires: 300"])
    return r.code


def fail2ban_regex(ctx):
    """The failregex of docs/security.md as a Python regex (<HOST> an address group), and a
    regex for the datepattern fail2ban cuts out of the line first."""
    with open(os.path.join(ctx.source_dir, "docs", "security.md")) as f:
        doc = f.read()
    m = re.search(r"^failregex = (.+)$", doc, re.M)
    check(m, "docs/security.md has no failregex line")
    failregex = m.group(1).replace("<HOST>", r"(?P<host>[0-9A-Fa-f:.]+)")
    return re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+"), re.compile(failregex)


def fail2ban_hosts(ctx, server, expected):
    """Hosts of the log lines the documented filter matches, once `expected` lines are there."""
    date, failregex = fail2ban_regex(ctx)
    deadline = time.monotonic() + LOG_WAIT
    while True:
        hosts = []
        for line in server.log().splitlines():
            d = date.match(line)
            if not d:
                continue
            m = failregex.search(line[d.end():])
            if m:
                hosts.append(m.group("host"))
        if len(hosts) >= expected or time.monotonic() > deadline:
            return hosts
        time.sleep(0.05)  # polling the log, bounded by the deadline


def test_guess_spread(ctx):
    """200 guesses for alice round-robin from 127.0.0.2..21, the right password at guess 151:
    only a few guesses are checked (one per address once alice is delayed; the right one is
    refused unchecked), every guess logs a fail2ban line, and alice registers meanwhile both from
    her phone's usual address (127.0.0.30) and from a new one (127.0.0.31: her phone on another
    network) — a delay, not a lock-out."""
    it.add_user(ctx, "alice@127.0.0.1", PASSWORD)
    server, (udp, _, _) = it.start_server(ctx, ["--config", guess_config(ctx)])
    with server:
        phone = client_at("127.0.0.30", udp)
        attackers = [client_at("127.0.0.%d" % (2 + i), udp) for i in range(20)]
        try:
            it.expect_code(it.Registration(phone, udp, "alice", PASSWORD).send(), 200,
                           "alice's phone before the attack")
            codes = []
            started = time.monotonic()
            for i in range(200):
                pw = PASSWORD if i == 150 else "guess-%d" % i
                codes.append(guess(attackers[i % 20], udp, "alice", pw))
            took = time.monotonic() - started
            ctx.note("200 guesses in %.2fs: %d checked (401), %d refused (403), %d accepted"
                     % (took, codes.count(401), codes.count(403), codes.count(200)))
            check(codes[150] != 200, "the right password at guess 151 was accepted: %r" % codes)
            check(200 not in codes, "a guess was accepted: %r" % codes)
            check(codes.count(401) <= 5 + 20, "%d guesses were checked (401), expected at "
                  "most max_failures + one per address: %r" % (codes.count(401), codes))
            check(codes.count(401) + codes.count(403) == 200, "other answers: %r" % codes)
            it.expect_code(it.Registration(phone, udp, "alice", PASSWORD).send(), 200,
                           "alice's phone during the attack")
            roaming = client_at("127.0.0.31", udp)
            try:
                it.expect_code(it.Registration(roaming, udp, "alice", PASSWORD).send(), 200,
                               "alice's phone from a new address during the attack")
            finally:
                roaming.close()
        finally:
            phone.close()
            for a in attackers:
                a.close()
        hosts = fail2ban_hosts(ctx, server, 200)
        check(len(hosts) == 200, "the fail2ban filter matched %d lines, expected 200" % len(hosts))
        check(set(hosts) == {"127.0.0.%d" % (2 + i) for i in range(20)},
              "fail2ban hosts: %r" % sorted(set(hosts)))


def test_guess_nat(ctx):
    """Someone behind a NAT address (127.0.0.2) guesses passwords of three users until the
    address is blocked; carol, who registered from that address before, still registers from
    it; the right password of a guessed user from there is refused."""
    for user in ("alice", "bob", "carol"):
        it.add_user(ctx, "%s@127.0.0.1" % user, PASSWORD + user)
    server, (udp, _, _) = it.start_server(ctx, ["--config", guess_config(ctx)])
    with server:
        nat = client_at("127.0.0.2", udp)
        try:
            it.expect_code(it.Registration(nat, udp, "carol", PASSWORD + "carol").send(), 200,
                           "carol before the attack")
            codes = [guess(nat, udp, ("alice", "bob", "erin")[i % 3], "guess-%d" % i)
                     for i in range(30)]
            ctx.note("30 guesses from one address: %r" % codes)
            check(codes.count(401) <= 10, "%d guesses checked from one address: %r"
                  % (codes.count(401), codes))
            check(codes[-5:] == [403] * 5, "the address is not refused at the end: %r" % codes)
            it.expect_code(it.Registration(nat, udp, "carol", PASSWORD + "carol").send(), 200,
                           "carol from the guessing address")
            r = it.Registration(nat, udp, "alice", PASSWORD + "alice").send()
            it.expect_code(r, 403, "alice's right password from the guessing address")
            check(r.header("retry-after"), "403 without Retry-After")
        finally:
            nat.close()


def stranger_probe(port, method, user, n):
    """`method` to user@127.0.0.1 from a fresh socket, From a foreign domain: the answer."""
    c = it.UdpClient(("127.0.0.1", port))
    try:
        data = it.build_request(method, "sip:%s@127.0.0.1" % user, "UDP", c.local,
                                ["Contact: <sip:mallory@%s:%d>" % c.local], cseq=str(n))
        data = re.sub(rb"From: <sip:tester@[^>]*>", b"From: <sip:mallory@evil.example>", data)
        r = c.exchange(data)
        check(r is not None, "no answer to %s %s" % (method, user))
        return r
    finally:
        c.close()


def answer_shape(r):
    """Status, reason and every header but the echoed Via/From/To/Call-ID/CSeq."""
    echo = {"via", "from", "to", "call-id", "cseq"}
    return (r.code, r.reason,
            sorted((k, v if k not in echo else "") for k, vs in r.headers.items() for v in vs))


def test_enumeration_same_answer(ctx):
    """OPTIONS / INVITE / MESSAGE from a stranger to bob (exists, not registered) and to nobody
    (does not exist): the same answer, 480 by default."""
    it.add_user(ctx, "bob@127.0.0.1", PASSWORD)
    server, (udp, _, _) = it.start_server(ctx, ["--config", guess_config(ctx)])
    with server:
        n = 0
        for method in ("OPTIONS", "INVITE", "MESSAGE"):
            n += 1
            known = stranger_probe(udp, method, "bob", n)
            unknown = stranger_probe(udp, method, "nobody", n)
            ctx.note("%s: bob %r, nobody %r" % (method, known, unknown))
            check(answer_shape(known) == answer_shape(unknown),
                  "%s: bob and nobody answered differently:\n%s\n%s"
                  % (method, known.raw.decode(errors="replace"),
                     unknown.raw.decode(errors="replace")))
            check(known.code == 480, "%s: %r, expected 480" % (method, known))


def test_enumeration_scan_throttled(ctx):
    """1000 OPTIONS probes for different users from one stranger address: beyond the burst (50)
    and rate (5/s) answered 503 with Retry-After; another address is not affected."""
    server, (udp, _, _) = it.start_server(ctx, ["--config", guess_config(ctx)])
    with server:
        scanner = client_at("127.0.0.2", udp)
        try:
            codes = []
            retry_after = set()
            started = time.monotonic()
            for i in range(1000):
                data = it.build_request("OPTIONS", "sip:user%d@127.0.0.1" % i, "UDP",
                                        scanner.local, cseq=str(i + 1))
                data = re.sub(rb"From: <sip:tester@[^>]*>", b"From: <sip:scan@evil.example>",
                              data)
                r = scanner.exchange(data)
                check(r is not None, "no answer to probe %d" % i)
                codes.append(r.code)
                if r.code == 503:
                    retry_after.add(r.header("retry-after"))
            took = time.monotonic() - started
            answered = len(codes) - codes.count(503)
            ctx.note("1000 probes in %.2fs: %d answered, %d throttled (503)"
                     % (took, answered, codes.count(503)))
            check(answered <= 50 + 5 * took + 5,
                  "%d of 1000 probes answered in %.2fs (burst 50, 5/s)" % (answered, took))
            check(None not in retry_after, "a 503 without Retry-After")
            r = stranger_probe(udp, "OPTIONS", "user1", 1)
            check(r.code != 503, "a stranger at 127.0.0.1 is throttled too: %r" % r)
        finally:
            scanner.close()


if __name__ == "__main__":
    sys.exit(it.run_module_tests(globals()))
