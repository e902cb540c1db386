#!/usr/bin/env python3
"""Several sipwake nodes on one Redis ([store] url), with real processes: a redis-server of the
test's own (sipwake_it.RedisServer: a free loopback port, appendonly, fsync always) and sipwake
nodes on 127.0.0.1 and 127.0.0.2 sharing it (bindings and users). Raw-socket UAs (calls_it,
dialog_it); reuses the harness of sipwake_it.py.

    redis_it.py --sipwake build/sipwake --work-dir /tmp/it redis_two_nodes

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import contextlib
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
from calls_it import PASSWORD, add_users  # noqa: E402
from dialog_it import establish_call, in_dialog, register_bob  # noqa: E402
from metrics_it import scrape  # noqa: E402
from sipwake_it import Fail, check  # noqa: E402

WAIT = 10.0  # seconds for a change at one node to show at another, or Redis to come back
NODE_HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def node_config(ctx, redis, name, admin_port=None):
    """The configuration of one node: Redis at `redis`, its own `name`.db, MD5 first (the raw UAs' choice), room
    for the many contacts of the load tests, a quick sweep."""
    path = os.path.join(ctx.work, name + ".toml")
    with open(path, "w") as f:
        f.write("[server]\nworkers = 2\nlog_level = \"%s\"\n"
                % os.environ.get("SIPWAKE_IT_LOG_LEVEL", "info"))
        f.write("\n[auth]\nalgorithms = [\"MD5\", \"SHA-256\"]\n")
        f.write("\n[registrar]\nmax_contacts_per_aor = 0\n")
        # A file of its own, as on separate machines: nothing but Redis is shared.
        f.write("\n[store]\npath = \"%s.db\"\nurl = \"%s\"\n" % (name, redis.url()))
        if admin_port:
            f.write("\n[admin]\nlisten = \"127.0.0.1:%d\"\n" % admin_port)
    return path


def add_redis_users(ctx, redis):
    """alice and bob, added once in Redis (through a node's configuration): every node has them."""
    add_users(ctx, config=node_config(ctx, redis, "users"))


def start_node(ctx, redis, index, admin_port=None):
    """Node `index` (on NODE_HOSTS[index]) on `redis`, started; (server, its UDP port)."""
    name = "node%d" % index
    server, (udp, _, _) = it.start_server(
        ctx, ["--config", node_config(ctx, redis, name, admin_port)],
        host=NODE_HOSTS[index], name=name)
    return server, udp


def contact_uris(resp):
    return {re.search(r"<([^>]*)>", c).group(1) for c in it.contacts_of(resp)}


def query(host, port, user="alice"):
    """The contacts of `user` that the node at host:port lists (a REGISTER without Contact)."""
    client = it.UdpClient((host, port))
    try:
        reg = it.Registration(client, port, user, PASSWORD.get(user, "alice-pw"))
        r = it.expect_code(reg.send(algorithm="MD5"), 200, "%s's query at %s" % (user, host))
        return contact_uris(r)
    finally:
        client.close()


def wait_until(what, predicate, timeout=WAIT):
    """Polls `predicate` (bounded by `timeout`) until it returns a true value, which it returns."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Fail("%s: not within %.0fs" % (what, timeout))
        time.sleep(0.05)  # polling an observable state, bounded by the deadline


class Registrar:
    """One UA socket registering contacts of `user` at one node: each register() adds a new
    Contact (its own URI) with the same Call-ID and the next CSeq; remembers the outcome."""

    def __init__(self, host, port, user="alice", label="x"):
        self.client = it.UdpClient((host, port))
        self.reg = it.Registration(self.client, port, user, PASSWORD.get(user, "alice-pw"))
        self.label, self.n = label, 0
        self.acked, self.refused, self.other = [], [], []

    def register(self):
        self.n += 1
        uri = "sip:%s-%d@%s:%d;transport=udp" % (self.label, self.n, *self.client.local)
        r = self.reg.send(["Contact: <%s>" % uri, "Expires: 600"], algorithm="MD5")
        if r is not None and r.code == 200:
            self.acked.append(uri)
            check(uri in contact_uris(r), "200 to %s lacks it:\n%s" % (uri, r.raw.decode()))
        elif r is not None and r.code == 503:
            self.refused.append(r)
        else:
            self.other.append(r)
        return r

    def close(self):
        self.client.close()


def start_two_nodes(ctx, redis, stack):
    """Nodes A and B on `redis`, each stopped (and checked) when `stack` unwinds;
    ((a, a_udp), (b, b_udp))."""
    a, a_udp = start_node(ctx, redis, 0)
    stack.enter_context(a)
    b, b_udp = start_node(ctx, redis, 1)
    stack.enter_context(b)
    return (a, a_udp), (b, b_udp)


def registrar_per_node(a_udp, b_udp):
    """A Registrar of alice at node A (contacts a-N) and one at node B (contacts b-N)."""
    return [Registrar(NODE_HOSTS[0], a_udp, label="a"), Registrar(NODE_HOSTS[1], b_udp, label="b")]


class Load:
    """Each Registrar of `ras` registering on a thread of its own, `count` times or until
    finish(); finish() joins them, closes the sockets and fails on any harness error."""

    def __init__(self, ras, count):
        self.ras, self.count = ras, count
        self.stop, self.errors = threading.Event(), []
        self.threads = [threading.Thread(target=self._run, args=(r,)) for r in ras]
        for t in self.threads:
            t.start()

    def _run(self, r):
        try:
            while not self.stop.is_set() and r.n < self.count:
                r.register()
        except Fail as e:
            self.errors.append(str(e))

    def finish(self, stop=True):
        if stop:
            self.stop.set()
        for t in self.threads:
            t.join(timeout=120)
        for r in self.ras:
            r.close()
        check(not self.errors, "; ".join(self.errors))


def test_redis_two_nodes(ctx):
    """Nodes A (127.0.0.1) and B (127.0.0.2) on one Redis (the start-up log names it and counts
    the users added there once): bob registers at B, alice calls him
    through A (A forwards straight to bob's contact, from the cache filled by B's publication);
    BYE through A; alice's REGISTER at A is listed by B's lookup, without any restart."""
    with it.RedisServer(ctx) as redis:
        add_redis_users(ctx, redis)
        with contextlib.ExitStack() as stack:
            (a, a_udp), (b, b_udp) = start_two_nodes(ctx, redis, stack)
            started = re.search(r"store: Redis (\S+) db 0: \d+ bindings of \d+ AORs, 2 users",
                                b.log())
            check(started and started.group(1) == "%s:%d" % (redis.host, redis.port),
                  "no start-up line naming Redis and its 2 users:\n" + b.log()[-2000:])
            bob = register_bob(b_udp, "UDP", host=NODE_HOSTS[1])
            # B's publication reaches A's cache a moment after B's 200 (pub/sub, not a read per
            # INVITE): the call is made once A lists bob's binding.
            wait_until("bob's binding made at B listed by A",
                       lambda: query(NODE_HOSTS[0], a_udp, user="bob"))
            alice, bob, call_id, _ = establish_call(a_udp, "UDP", push_params=False, bob=bob)
            in_dialog(alice, bob, call_id, "BYE")

            r = Registrar(NODE_HOSTS[0], a_udp, label="at-a")
            try:
                it.expect_code(r.register(), 200, "alice's REGISTER at A")
            finally:
                r.close()
            wait_until("alice's binding made at A listed by B",
                       lambda: set(r.acked) <= query(NODE_HOSTS[1], b_udp))
            check(a.alive() and b.alive(), "a node died")


def register_code(host, port, user, password):
    """The final answer to one REGISTER of `user` at host:port (after the digest challenge)."""
    client = it.UdpClient((host, port))
    try:
        r = it.Registration(client, port, user, password).send(algorithm="MD5")
        check(r is not None, "no answer to %s's REGISTER at %s" % (user, host))
        return r.code
    finally:
        client.close()


def test_redis_users_shared(ctx):
    """`sipwake --config nodeA.toml user add carol@...` while A and B run: carol registers at B
    at once (no restart, no reload: B heard the change); `user passwd` at A: B takes the new
    password only; `user del` at A: B refuses her. `user list` at B's configuration lists what
    A's added."""
    with it.RedisServer(ctx) as redis:
        with contextlib.ExitStack() as stack:
            (a, _), (b, b_udp) = start_two_nodes(ctx, redis, stack)
            node_a = node_config(ctx, redis, "node0")
            it.add_user(ctx, "carol@127.0.0.1", "carol-pw", config=node_a)
            listed = it.user_command(ctx, ["list"], config=node_config(ctx, redis, "node1"))
            check(listed.stdout.decode() == "carol@127.0.0.1\n",
                  "user list at B: %r" % listed.stdout)
            wait_until("carol's REGISTER at B accepted",
                       lambda: register_code(NODE_HOSTS[1], b_udp, "carol", "carol-pw") == 200)
            p = it.user_command(ctx, ["passwd", "carol@127.0.0.1"], node_a, stdin=b"new-pw\n")
            check(p.returncode == 0, "user passwd: %s" % p.stderr.decode())
            wait_until("carol's old password refused at B",
                       lambda: register_code(NODE_HOSTS[1], b_udp, "carol", "carol-pw")
                       in (401, 403))
            code = register_code(NODE_HOSTS[1], b_udp, "carol", "new-pw")
            check(code == 200, "carol's new password at B: %d" % code)
            p = it.user_command(ctx, ["del", "carol@127.0.0.1"], node_a)
            check(p.returncode == 0, "user del: %s" % p.stderr.decode())
            wait_until("carol refused at B after user del",
                       lambda: register_code(NODE_HOSTS[1], b_udp, "carol", "new-pw")
                       in (401, 403))
            check(a.alive() and b.alive(), "a node died")


def test_redis_concurrent_register(ctx):
    """Two UAs register contacts of one AOR at the same time, one at each node (REGISTERs
    interleaved): every contact answered 200 is listed afterwards by either node."""
    with it.RedisServer(ctx) as redis:
        add_redis_users(ctx, redis)
        with contextlib.ExitStack() as stack:
            (a, a_udp), (b, b_udp) = start_two_nodes(ctx, redis, stack)
            ras = registrar_per_node(a_udp, b_udp)
            Load(ras, 25).finish(stop=False)
            for r in ras:
                check(not r.other and not r.refused,
                      "node %s answered %r" % (r.label, (r.other + r.refused)[:3]))
            acked = set(ras[0].acked) | set(ras[1].acked)
            check(len(acked) == 50, "%d of 50 REGISTERs acknowledged" % len(acked))
            for host, port in ((NODE_HOSTS[0], a_udp), (NODE_HOSTS[1], b_udp)):
                listed = wait_until("every acknowledged binding at %s" % host,
                                    lambda: (lambda got: got if acked <= got else None)(
                                        query(host, port)))
                check(acked <= listed, "%s lost %s" % (host, sorted(acked - listed)))


def test_redis_restart_mid_load(ctx):
    """REGISTERs keep coming at two nodes while Redis is killed (-9) and started again
    (appendonly, fsync always): each one is answered 200 or 503 with Retry-After; some 503 fell
    in the outage, 200s resumed without restarting sipwake, and every contact answered 200 is in
    Redis afterwards (read by a third node started after the load)."""
    with it.RedisServer(ctx) as redis:
        add_redis_users(ctx, redis)
        with contextlib.ExitStack() as stack:
            (a, a_udp), (b, b_udp) = start_two_nodes(ctx, redis, stack)
            ras = registrar_per_node(a_udp, b_udp)
            load = Load(ras, 400)
            try:
                wait_until("200s before the restart", lambda: all(len(r.acked) >= 5 for r in ras))
                redis.kill()
                wait_until("503s while Redis is down", lambda: all(r.refused for r in ras))
                acked_before_back = sum(len(r.acked) for r in ras)
                redis.start_again()
                wait_until("200s after Redis came back",
                           lambda: sum(len(r.acked) for r in ras) >= acked_before_back + 10,
                           timeout=15)
            finally:
                load.finish()
            for r in ras:
                check(not r.other, "node %s answered %r" % (r.label, r.other[:3]))
                for resp in r.refused:
                    check(resp.reason == "Service Unavailable - Location Store Unavailable"
                          and resp.header("retry-after"),
                          "node %s: a 503 without the store's reason or Retry-After:\n%s"
                          % (r.label, resp.raw.decode()))
            acked = set(ras[0].acked) | set(ras[1].acked)
            ctx.note("%d acknowledged, %d refused" % (len(acked),
                                                      sum(len(r.refused) for r in ras)))
            c, c_udp = start_node(ctx, redis, 2)
            with c:
                listed = query(NODE_HOSTS[2], c_udp)
                check(acked <= listed, "%d acknowledged bindings missing from Redis: %s"
                      % (len(acked - listed), sorted(acked - listed)[:5]))


def test_redis_down_calls_from_cache(ctx):
    """Redis stopped: a REGISTER gets 503 Location Store Unavailable + Retry-After, the log says
    so and store.redis_up is 0; a call between alice and bob (registered before) set up, then
    ended, through the node from its cache. Redis back: store.redis_up 1, REGISTER 200."""
    admin = it.free_port()
    with it.RedisServer(ctx) as redis:
        add_redis_users(ctx, redis)
        a, a_udp = start_node(ctx, redis, 0, admin_port=admin)
        with a:
            check(scrape(admin).get("sipwake_store_redis_up") == 1, "store.redis_up not 1")
            bob = register_bob(a_udp, "UDP")
            redis.kill()
            wait_until("store.redis_up 0", lambda: scrape(admin).get("sipwake_store_redis_up")
                       == 0)
            check(re.search(r"Redis is down", a.log()), "no log line for Redis going down:\n"
                  + a.log()[-2000:])
            r = Registrar(NODE_HOSTS[0], a_udp, label="down")
            try:
                resp = r.register()
                it.expect_code(resp, 503, "REGISTER while Redis is down")
                check(resp.reason == "Service Unavailable - Location Store Unavailable"
                      and resp.header("retry-after"), "503 without the reason or Retry-After:\n"
                      + resp.raw.decode())
                alice, bob, call_id, _ = establish_call(a_udp, "UDP", push_params=False, bob=bob)
                in_dialog(alice, bob, call_id, "BYE")

                redis.start_again()
                wait_until("store.redis_up 1", lambda: scrape(admin).get("sipwake_store_redis_up")
                           == 1)
                it.expect_code(r.register(), 200, "REGISTER after Redis came back")
            finally:
                r.close()
            check(a.alive(), "sipwake died")


if __name__ == "__main__":
    sys.exit(it.run_module_tests(globals()))
