#!/usr/bin/env python3
"""The admin API ([admin] listen + token_file, docs/operations.md "Admin API") against the real
sipwake pushing through sipwake-fakepns: 401 without / with a wrong token, a user's bindings with
tokens truncated, a woken call's timeline (steps in order, ms offsets, the provider's answer), a
test push answered by the fake (accepted, and UNREGISTERED for a dead token), DELETE of a
binding (the next call gets 480), HTTPS, and a non-loopback listen without TLS refused.
Reuses the rig of wake_it.py.

    admin_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --phone tools/sipwake-phone/sipwake-phone --work-dir /tmp/it admin_timeline

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import json
import os
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
import wake_it as wk  # noqa: E402
from sipwake_it import Skip, check  # noqa: E402
from phone_it import PROJECT  # noqa: E402

TOKEN = "admin-token-0123456789abcdef"
ALICE = "alice@127.0.0.1"


def token_file(ctx):
    path = os.path.join(ctx.work, "admin.token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(path, 0o600)
    return path


class Admin:
    """A Rig (wake_it.py) whose sipwake has the admin listener with a token."""

    def __init__(self, ctx, extra="", **rig_args):
        self.port = it.free_port()
        admin = "\n[admin]\nlisten = \"127.0.0.1:%d\"\ntoken_file = \"%s\"\n%s" % (
            self.port, token_file(ctx), extra)
        self.rig = wk.Rig(ctx, extra_config=admin, **rig_args)
        self.base = "http://127.0.0.1:%d" % self.port
        self.ssl = None

    def call(self, method, path, token=TOKEN, **query):
        """(status, headers, JSON body) of one request; HTTP errors are answers too."""
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, method=method)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl) as r:
                return r.status, r.headers, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.loads(e.read().decode())

    def ok(self, method, path, **query):
        status, _, body = self.call(method, path, **query)
        check(status == 200, "%s %s %r: %d %r" % (method, path, query, status, body))
        return body

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return self.rig.__exit__(exc_type, exc, tb)


def truncated(token):
    return token[:4] + "…" + token[-4:]


def test_admin_auth_and_bindings(ctx):
    tok = wk.fcm_token()
    with Admin(ctx) as a:
        for token, what in ((None, "no token"), ("wrong-token-0123456789", "a wrong token")):
            status, headers, body = a.call("GET", "/api/status", token=token)
            check(status == 401 and "error" in body, "%s: %d %r" % (what, status, body))
            check(headers.get("www-authenticate") == 'Bearer realm="sipwake-admin"',
                  "%s: WWW-Authenticate %r" % (what, headers.get("www-authenticate")))
        status, _, body = a.call("GET", "/api/bindings", token=None, aor=ALICE)
        check(status == 401, "bindings without a token: %d %r" % (status, body))

        wk.sleeping_phone(a.rig, "sleep", "alice", tok)
        got = a.ok("GET", "/api/bindings", aor=ALICE)
        check(got["aor"] == ALICE, "aor %r" % got["aor"])
        pushes = got["push_bindings"]
        check(len(pushes) == 1, "push bindings %r" % pushes)
        p = pushes[0]
        check(p["provider"] == "fcm" and p["token"] == truncated(tok) and p["voip_token"] is None
              and p["expires_in"] > 0 and p["device_key"], "push binding %r" % p)
        raw = json.dumps(got, ensure_ascii=False)
        check(tok not in raw and tok[4:-4] not in raw, "the whole token is shown: %s" % raw)
        status = a.ok("GET", "/api/status")
        check(status["push_bindings"] >= 1 and status["version"] and status["uptime_s"] >= 0,
              "status %r" % status)
        # An AOR that is nobody's: empty lists; a bad one: 400.
        empty = a.ok("GET", "/api/bindings", aor="nobody@127.0.0.1")
        check(empty["bindings"] == [] and empty["push_bindings"] == [], "nobody %r" % empty)
        status, _, body = a.call("GET", "/api/bindings", aor="not an aor")
        check(status == 400 and "aor" in body["error"], "bad aor: %d %r" % (status, body))
        a.rig.server_alive()


def wait_timeline(a, call_id, timeout=10):
    """The timeline of `call_id` once recorded (the call's context ends just after its 200)."""
    deadline = time.monotonic() + timeout
    while True:
        found = a.ok("GET", "/api/timelines", call_id=call_id)["timelines"]
        if found:
            return found[0]
        check(time.monotonic() < deadline, "no timeline for %s within %ss" % (call_id, timeout))
        time.sleep(0.05)


def woken_call(a, token):
    """alice's phone with the push `token` (subscribed at the fake) asleep, woken by bob's call
    and answering it; (the phone, the caller, the call's timeline)."""
    p = a.rig.phone("wake", "alice", ["--dialect", "rfc8599", "--provider", "fcm",
                                      "--app", PROJECT, "--token", token,
                                      "--background-after-register", "--calls", "1",
                                      "--on-call", "answer", "--answer-after-ms", "100"])
    p.wait_event("backgrounded")
    caller = a.rig.caller()
    final = caller.invite(timeout=25)
    it.expect_code(final, 200, "INVITE to the woken phone")
    it.expect_code(caller.ack_and_bye(final), 200, "BYE")
    return p, caller, wait_timeline(a, caller.call_id)


def test_admin_timeline(ctx):
    tok = wk.fcm_token()
    with Admin(ctx) as a:
        a.rig.watch.subscribe(tok, project=PROJECT)
        p, caller, t = woken_call(a, tok)
        check(t["callee"] == ALICE and t["outcome"] == "answered" and "bob@" in t["caller"]
              and t["start_ms"] > 1.6e12, "timeline %r" % t)
        whats = [s["what"] for s in t["steps"]]
        # The provider's answer may come after the woken phone's REGISTER (the fake delivers the
        # push before it answers the HTTP/2 request), so it is ordered after "push sent" only.
        for order in (["INVITE parked", "push sent", "REGISTER", "INVITE out", "final"],
                      ["push sent", "provider answered"]):
            positions = [whats.index(w) if w in whats else -1 for w in order]
            check(-1 not in positions and positions == sorted(positions),
                  "steps %r, expected %r in that order" % (whats, order))
        offsets = [s["ms"] for s in t["steps"]]
        check(offsets == sorted(offsets) and offsets[0] == 0, "offsets %r" % offsets)
        answer = t["steps"][whats.index("provider answered")]
        check(answer["status"] == 200 and answer["provider"] == "fcm" and
              answer["outcome"] == "ok", "provider answer %r" % answer)
        check(t["steps"][whats.index("final")]["status"] == 200, "final %r" % t["steps"])
        by_aor = a.ok("GET", "/api/timelines", aor=ALICE, limit=5)["timelines"]
        check(by_aor and by_aor[0]["call_id"] == caller.call_id, "by aor %r" % by_aor)
        check(a.ok("GET", "/api/timelines", aor="carol@127.0.0.1")["timelines"] == [],
              "carol has no timeline")
        check(p.wait() == 0, "phone:\n" + p.log())
        a.rig.server_alive()


def test_admin_push_test(ctx):
    live, dead = wk.fcm_token(), wk.fcm_token()
    with Admin(ctx) as a:
        a.rig.watch.subscribe(live, project=PROJECT)
        a.rig.watch.subscribe(dead, project=PROJECT)
        a.rig.watch.script(dead, [{"status": 404}])
        wk.sleeping_phone(a.rig, "live", "alice", live)
        wk.sleeping_phone(a.rig, "dead", "alice", dead)
        got = a.ok("POST", "/api/push-test", aor=ALICE)
        results = {r["token"]: r for r in got["results"]}
        check(set(results) == {truncated(live), truncated(dead)}, "results %r" % got)
        ok, gone = results[truncated(live)], results[truncated(dead)]
        check(ok["outcome"] == "accepted" and ok["status"] == 200 and ok["provider"] == "fcm",
              "live device %r" % ok)
        check(gone["outcome"] == "rejected" and gone["status"] == 404 and
              gone["reason"] == "UNREGISTERED", "dead device %r" % gone)
        push = a.rig.watch.wait_push(live, "refresh")  # a refresh push, never a call
        check(wk.field(push["payload"], "event") == "refresh", "test push %r" % push)
        check(not a.rig.watch.seen(live, "call"), "a call push was sent")
        status, _, body = a.call("POST", "/api/push-test", aor="bob@127.0.0.1")
        check(status == 404 and body["error"] == "no push binding for bob@127.0.0.1",
              "bob: %d %r" % (status, body))
        status, headers, body = a.call("GET", "/api/push-test", aor=ALICE)
        check(status == 405 and headers.get("allow") == "POST", "GET push-test: %d" % status)
        a.rig.server_alive()


def test_admin_drop_binding(ctx):
    tok = wk.fcm_token()
    with Admin(ctx, ring_timeout=20) as a:
        a.rig.watch.subscribe(tok, project=PROJECT)
        wk.sleeping_phone(a.rig, "sleep", "alice", tok)
        device = a.ok("GET", "/api/bindings", aor=ALICE)["push_bindings"][0]["device_key"]
        dropped = a.ok("DELETE", "/api/bindings", aor=ALICE, device_key=device)
        check(dropped["removed_push_bindings"] == 1, "DELETE %r" % dropped)
        left = a.ok("GET", "/api/bindings", aor=ALICE)
        check(left["push_bindings"] == [] and all(b["device_key"] != device
                                                   for b in left["bindings"]), "left %r" % left)
        _, took = wk.call_failing(a.rig, 480, "INVITE after the binding was dropped")
        check(took < 10, "480 after %.1fs: a push was waited for" % took)
        check(not a.rig.watch.seen(tok), "a push went to the dropped device")
        a.rig.server_alive()


def make_cert(ctx):
    if not shutil.which("openssl"):
        raise Skip("openssl CLI missing")
    cert, key = os.path.join(ctx.work, "admin-cert.pem"), os.path.join(ctx.work, "admin-key.pem")
    code, out, err = it.run_cmd(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                 "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                                 "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                                 "-keyout", key, "-out", cert])
    check(code == 0, "openssl req: %s %s" % (out, err))
    os.chmod(key, 0o600)
    return cert, key


def test_admin_tls(ctx):
    cert, key = make_cert(ctx)
    path = os.path.join(ctx.work, "public.toml")
    with open(path, "w") as f:
        f.write("[server]\nworkers = 1\n\n[admin]\nlisten = \"0.0.0.0:9090\"\n"
                "token_file = \"%s\"\n" % token_file(ctx))
    code, _, err = it.run_cmd([ctx.sipwake, "check-config", path])
    want = "%s:5: [admin] listen: \"0.0.0.0:9090\" is not a loopback address" % path
    check(code == 1 and want in err and "tls_certificate" in err, "exit %d, %r" % (code, err))

    extra = "tls_certificate = \"%s\"\ntls_private_key = \"%s\"\n" % (cert, key)
    with Admin(ctx, extra=extra) as a:
        a.base = "https://127.0.0.1:%d" % a.port
        a.ssl = ssl.create_default_context(cafile=cert)
        status = a.ok("GET", "/api/status")
        check("version" in status, "status over HTTPS %r" % status)
        status, _, _ = a.call("GET", "/api/status", token="wrong-token-0123456789")
        check(status == 401, "wrong token over HTTPS: %d" % status)
        a.rig.server_alive()


def sipwake_cli(ctx, *args):
    """(exit status, stdout, stderr) of `sipwake ARGS`."""
    return it.run_cmd([ctx.sipwake] + list(args), timeout=40)


def test_admin_cli(ctx):
    """The CLI (sipwake status|binding|push test|timeline|reload) finds the listener and the token
    in --config and prints the server's answers; clear errors when it cannot ask."""
    live, dead = wk.fcm_token(), wk.fcm_token()
    with Admin(ctx) as a:
        conf = ["--config", a.rig.config]
        a.rig.watch.subscribe(live, project=PROJECT)
        a.rig.watch.subscribe(dead, project=PROJECT)
        a.rig.watch.script(dead, [{"status": 404}])
        wk.sleeping_phone(a.rig, "live", "alice", live)
        wk.sleeping_phone(a.rig, "dead", "alice", dead)

        code, out, err = sipwake_cli(ctx, *conf, "status")
        check(code == 0 and "push bindings 2" in out and out.startswith("sipwake "),
              "status: %d %r %r" % (code, out, err))
        code, out, err = sipwake_cli(ctx, *conf, "binding", "list", "sip:" + ALICE)
        check(code == 0 and "%s: " % ALICE in out and "2 push bindings" in out
              and truncated(live) in out and live not in out, "binding list: %d %r %r"
              % (code, out, err))
        code, out, err = sipwake_cli(ctx, *conf, "push", "test", ALICE)
        check(code == 0 and "2 device(s) pushed" in out, "push test: %d %r %r" % (code, out, err))
        check("token %s: accepted HTTP 200" % truncated(live) in out and
              "token %s: rejected HTTP 404 UNREGISTERED" % truncated(dead) in out,
              "push test answers: %r" % out)
        code, out, err = sipwake_cli(ctx, *conf, "push", "test", "nobody@127.0.0.1")
        check(code == 1 and "no push binding for nobody@127.0.0.1 (HTTP 404)" in err,
              "push test to nobody: %d %r %r" % (code, out, err))
        code, out, err = sipwake_cli(ctx, *conf, "binding", "list", ALICE, "--json")
        check(code == 0 and len(json.loads(out)["push_bindings"]) == 2, "--json: %r" % out)

        # A woken call, then its timeline by AOR and by Call-ID.
        p, caller, _ = woken_call(a, live)
        for target in (["--call-id", caller.call_id], [ALICE, "-n", "1"]):
            code, out, err = sipwake_cli(ctx, *conf, "timeline", *target)
            check(code == 0 and "call %s" % caller.call_id in out and "outcome: answered" in out,
                  "timeline %r: %d %r %r" % (target, code, out, err))
            lines = out.splitlines()
            steps = [ln.split("ms  ", 1)[1].split("  ")[0] for ln in lines if "ms  " in ln]
            check(steps.index("push sent") < steps.index("REGISTER") < steps.index("INVITE out")
                  and steps.index("push sent") < steps.index("provider answered"),
                  "steps %r" % steps)
        check(p.wait() == 0, "phone:\n" + p.log())

        code, out, err = sipwake_cli(ctx, *conf, "reload")
        check(code == 0 and out.startswith("reloaded: "), "reload: %d %r %r" % (code, out, err))
        device = a.ok("GET", "/api/bindings", aor=ALICE)["push_bindings"][0]["device_key"]
        code, out, err = sipwake_cli(ctx, *conf, "binding", "drop", ALICE, "--device", device)
        check(code == 0 and "1 push binding(s)" in out, "drop: %d %r %r" % (code, out, err))

        wrong = os.path.join(ctx.work, "wrong.token")
        with open(wrong, "w") as f:
            f.write("wrong-token-0123456789\n")
        code, out, err = sipwake_cli(ctx, *conf, "status", "--token-file", wrong)
        check(code == 2 and "the admin token was refused" in err, "wrong token: %d %r"
              % (code, err))
        a.rig.server.stop()
        code, out, err = sipwake_cli(ctx, *conf, "status")
        want = "cannot reach the admin listener at http://127.0.0.1:%d: connection refused " \
               "(is sipwake running?)" % a.port
        check(code == 2 and want in err, "server stopped: %d %r" % (code, err))


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}

if __name__ == "__main__":
    sys.exit(wk.ph.main(TESTS, __doc__))
