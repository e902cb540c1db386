#!/usr/bin/env python3
"""Several sipwake nodes on one Redis: cross-node wake-up (docs/architecture.md, "Several
nodes"). Three real sipwake binaries on 127.0.0.1, .2 and .3 share one redis-server
(sipwake_it.RedisServer), the same users (added once, in Redis), the same [proxy] route_secret_file, and push through one
sipwake-fakepns to tools/sipwake-phone.

    cross_node_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --phone tools/sipwake-phone/sipwake-phone --work-dir /tmp/it cross_node_wake

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
import phone_it as ph  # noqa: E402
import wake_it as wk  # noqa: E402
from sipwake_it import Skip, check  # noqa: E402
from phone_it import BUNDLE, names, read_events  # noqa: E402

DOMAIN = "example.test"
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


class Cluster:
    """Redis, the fake push service and one sipwake per address of HOSTS (node 0 is where the
    callers' INVITEs enter: ph.Caller speaks to 127.0.0.1)."""

    def __init__(self, ctx, ring_timeout=15):
        if not ctx.fakepns or not os.access(ctx.fakepns, os.X_OK):
            raise Skip("sipwake-fakepns not given (--fakepns)")
        self.ctx = ctx
        self.redis = self.fake = self.watch = None
        self.nodes, self.phones, self.callers = [], [], []
        try:
            self.redis = it.RedisServer(ctx).start()
            ph.make_keys(ctx)
            self.fake, sa = ph.fake_with_service_account(ctx)
            secret = os.path.join(ctx.work, "route.secret")
            with open(secret, "w") as f:
                f.write("5eed" * 16 + "\n")
            os.chmod(secret, 0o600)
            push = wk.push_section(ctx, self.fake, sa, ring_timeout)
            configs = []
            for i in range(len(HOSTS)):
                configs.append(os.path.join(ctx.work, "node%d.toml" % i))
                with open(configs[-1], "w") as f:
                    f.write("[server]\nworkers = 1\n\n[store]\npath = \"node%d.db\"\nurl = \"%s\"\n\n"
                            "[proxy]\nroute_secret_file = \"%s\"\n%s"
                            % (i, self.redis.url(), secret, push))
            # Once, in Redis: every node has them.
            for user in ("alice", "carol"):
                it.add_user(ctx, "%s@%s" % (user, DOMAIN), user + "-pw", config=configs[0])
            it.add_user(ctx, "bob@127.0.0.1", "bob-pw", config=configs[0])
            for i, (host, config) in enumerate(zip(HOSTS, configs)):
                server, ports = it.start_server(ctx, ["--config", config, "--domain", DOMAIN],
                                                host=host, name="node%d" % i)
                self.nodes.append((server, ports))
            self.watch = wk.Watch(self.fake.control)
        except BaseException:
            self.close(failed=True)
            raise

    def tcp(self, i):
        return "tcp:%s:%d" % (HOSTS[i], self.nodes[i][1][1])

    def phone(self, name, user, args):
        p = ph.PhoneProc(self.ctx, name, ["--user", "%s@%s" % (user, DOMAIN), "--password",
                                          user + "-pw", "--team", ph.TEAM_ID,
                                          "--fakepns-control", self.fake.control] + list(args))
        self.phones.append(p)
        return p

    def call(self, callee, what):
        """bob calls `callee` through node 0; the call must be answered (ACK, BYE 200)."""
        caller = ph.Caller(self.ctx, self.nodes[0][1][0], "bob", "bob-pw",
                           "%s@%s" % (callee, DOMAIN))
        self.callers.append(caller)
        final = caller.invite(timeout=25)
        it.expect_code(final, 200, what)
        it.expect_code(caller.ack_and_bye(final), 200, "BYE of " + what)
        return caller

    def alive(self, i):
        server = self.nodes[i][0]
        check(server.alive(), "node %d died:\n%s" % (i, server.log()[-3000:]))

    def close(self, failed=False):
        wk.close_clients(self.phones, self.callers, self.watch)
        codes = [s.stop() for s, _ in self.nodes]
        if self.fake:
            self.fake.stop()
        if self.redis:
            self.redis.kill()
        if not failed:
            for (s, _), code in zip(self.nodes, codes):
                check(code in (0, -signal.SIGKILL), "sipwake exited with %s after SIGTERM:\n%s"
                      % (code, s.log()[-3000:]))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None)
        return False


def via_hosts(invite_event):
    vias = []
    for v in invite_event["headers"].get("via", []):
        vias += [x.strip() for x in v.split(",")]
    return vias


def sleeping_at_b_woken_to_c(cl, name, token, calls=1):
    """A phone that registers at node 1, sleeps (push binding in Redis) and, pushed, registers
    again at node 2."""
    cl.watch.subscribe(token, topic=BUNDLE + ".voip")
    p = cl.phone(name, "alice", ["--server", cl.tcp(1), "--wake-server", cl.tcp(2), "--dialect",
                                 "rfc8599", "--provider", "apns", "--app", BUNDLE, "--token",
                                 token, "--background-after-register", "--calls", str(calls),
                                 "--answer-after-ms", "100"])
    p.wait_event("backgrounded")
    return p


def check_woken_through_c(cl, p, token, caller, order=wk.WAKE_ORDER):
    wk.check_call_push(cl.watch.wait_push(token), "apns", token, caller.call_id,
                       callee="alice@" + DOMAIN)
    check(p.wait() == 0, "phone exit:\n" + p.log())
    wk.phone_order(p, order)
    invite = wk.check_forwarded_invite(p)
    # The INVITE came from node 2 (the phone's connection there), after node 0: top Via node 2.
    vias = via_hosts(invite)
    check(len(vias) >= 3 and HOSTS[2] in vias[0] and any(HOSTS[0] in v for v in vias[1:]),
          "INVITE did not reach the phone through node 2 after node 0: Via %r" % vias)
    regs = [e for e in read_events(p.events) if e["event"] in ("registered", "reregistered")]
    check([e["transport"] for e in regs] == ["tcp", "tcp"], "registrations %r" % regs)


def test_cross_node_wake(ctx):
    """A phone registered (asleep) at node B is woken by a call entering node A, registers again at
    node C, and the INVITE parked on A reaches it through C: answered, ACK, BYE."""
    tok = wk.apns_token()
    with Cluster(ctx) as cl:
        p = sleeping_at_b_woken_to_c(cl, "wake", tok)
        caller = cl.call("alice", "INVITE entering node A for a phone woken to node C")
        check_woken_through_c(cl, p, tok, caller)
        check(len(cl.watch.seen(tok, "call")) == 1, "more than one call push: %r"
              % cl.watch.seen(tok))
        for i in range(3):
            cl.alive(i)


def test_cross_node_kill9(ctx):
    """Calls to a phone awake at node C keep being answered while node B is killed (kill -9) with a
    sleeping phone registered there; that phone, called through node A after B died, is woken,
    registers again at C and answers."""
    tok = wk.apns_token()
    with Cluster(ctx) as cl:
        awake = cl.phone("carol", "carol", ["--server", cl.tcp(2), "--calls", "4",
                                            "--answer-after-ms", "50"])
        awake.wait_event("registered")
        p = sleeping_at_b_woken_to_c(cl, "wake", tok)
        cl.call("carol", "call 1 to carol at node C")
        cl.call("carol", "call 2 to carol at node C")
        cl.nodes[1][0].stop(signal.SIGKILL)
        cl.call("carol", "call 3 to carol at node C, node B dead")
        caller = cl.call("alice", "call to the phone asleep at dead node B")
        check_woken_through_c(cl, p, tok, caller)
        cl.call("carol", "call 4 to carol at node C, node B dead")
        check(awake.wait() == 0, "carol's phone exit:\n" + awake.log())
        check(names(read_events(awake.events)).count("answered") == 4, "carol answered %r"
              % names(read_events(awake.events)))
        cl.alive(0)
        cl.alive(2)


def test_cross_node_nat_phone(ctx):
    """A phone awake at node C behind NAT: its Contacts name a port nobody listens on, only its
    connection to C reaches it. Called through node A, the INVITE and the caller's ACK and BYE
    (from A, along C's Record-Route, whose token names the phone's flow only) reach it over that
    connection."""
    with Cluster(ctx) as cl:
        p = cl.phone("carol", "carol", ["--server", cl.tcp(2), "--calls", "1", "--no-push",
                                        "--answer-after-ms", "50",
                                        "--nat-contact-port", str(ph.free_port())])
        p.wait_event("registered")
        cl.call("carol", "call to carol behind NAT at node C")
        check(p.wait() == 0, "carol's phone exit:\n" + p.log())
        wk.phone_order(p, ["registered", "invite_received", "answered", "ack_received", "bye",
                           "done"])


def wait_log(server, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in server.log().splitlines() if text in line]
        if lines:
            return lines[0]
        time.sleep(0.05)  # polling the log file, bounded by the deadline
    raise it.Fail("no log line with %r within %ss:\n%s" % (text, timeout, server.log()[-3000:]))


def test_cross_node_dead_node_branch(ctx):
    """A phone awake at node B with push params; B is killed (kill -9). A call entering node A is
    forked at once to the phone's binding, whose node route names dead B (that branch fails: 503),
    and, push_connected_devices being the default, the phone is pushed at the same time (once).
    Its connection to B gone, the phone registers again at node C; A's parked INVITE reaches it
    there and is answered."""
    tok = wk.apns_token()
    with Cluster(ctx) as cl:
        cl.watch.subscribe(tok, topic=BUNDLE + ".voip")
        p = cl.phone("awake", "alice", ["--server", cl.tcp(1), "--wake-server", cl.tcp(2),
                                        "--dialect", "rfc8599", "--provider", "apns", "--app",
                                        BUNDLE, "--token", tok, "--calls", "1",
                                        "--answer-after-ms", "100"])
        p.wait_event("registered")
        cl.nodes[1][0].stop(signal.SIGKILL)
        p.wait_event("connection_closed")
        caller = cl.call("alice", "call to the phone awake at dead node B")
        check_woken_through_c(cl, p, tok, caller, ["registered", "connection_closed",
                                                    "push_received", "reregistered",
                                                    "invite_received", "answered", "ack_received",
                                                    "bye", "done"])
        check(len(cl.watch.seen(tok, "call")) == 1, "call pushes: %r" % cl.watch.seen(tok))
        # A forked to the binding at B as a live contact before the phone registered at C.
        line = wait_log(cl.nodes[0][0], "wake: call " + caller.call_id)
        check("INVITE in (1 live contacts)" in line, "A did not fork to B's binding: " + line)
        cl.alive(0)
        cl.alive(2)


TESTS = {
    "cross_node_wake": test_cross_node_wake,
    "cross_node_kill9": test_cross_node_kill9,
    "cross_node_dead_node_branch": test_cross_node_dead_node_branch,
    "cross_node_nat_phone": test_cross_node_nat_phone,
}


def main():
    return ph.main(TESTS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
