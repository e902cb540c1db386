#!/usr/bin/env python3
"""SIP MESSAGE to sleeping phones, end to end: the real sipwake pushing through sipwake-fakepns to
tools/sipwake-phone (wake_it.Rig). A MESSAGE wakes the phone with its own alert push (event
"message") and reaches it once it registers; if no device registers within [push] message_wait
sipwake answers 202 and keeps it (SQLite, across a restart) until the device's next registration;
kept messages expire; a user's store is bounded.

    message_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --phone tools/sipwake-phone/sipwake-phone --work-dir /tmp/it message_wake_payload

Exit status: 0 pass, 1 fail, 77 skipped (CTest SKIP_RETURN_CODE).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sipwake_it as it  # noqa: E402
import phone_it as ph  # noqa: E402
import wake_it as wk  # noqa: E402
from sipwake_it import check  # noqa: E402

MESSAGE_WAIT = 2  # [push] message_wait of the 202 tests (seconds)


def send_message(rig, text, callee="alice", timeout=20):
    """bob's MESSAGE `text` to `callee` (answering 407 once); returns the final response."""
    caller = rig.caller(callee)
    extra = []
    for attempt in range(2):
        caller.c.send(caller.request("MESSAGE", caller.ruri, caller.cseq, extra, body=text,
                                     content_type="text/plain"))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            check(left > 0, "no final response to MESSAGE %r within %ss" % (text, timeout))
            r = caller.recv_any(left)
            check(r is not None, "no final response to MESSAGE %r within %ss" % (text, timeout))
            if r.code >= 200:
                break
        if r.code == 407 and attempt == 0:
            auth = it.digest_authorization(r.headers.get("proxy-authenticate", []), "MESSAGE",
                                           caller.ruri, caller.user, caller.password, want="MD5")
            extra = ["Proxy-Authorization: " + auth]
            caller.cseq += 1
            continue
        return caller, r
    return caller, r


def received(p):
    return [e for e in ph.read_events(p.events) if e["event"] == "message_received"]


def phone_taking(rig, name, token, n):
    """The app of the device with `token` started by its user: it registers (no push needed) and
    takes `n` messages."""
    return rig.phone(name, "alice", ["--dialect", "rfc8599", "--provider", "fcm", "--app",
                                     wk.PROJECT, "--token", token, "--calls", str(n)],
                     control=False)


def expect_202(rig, text):
    start = time.monotonic()
    _, r = send_message(rig, text)
    it.expect_code(r, 202, "MESSAGE %r to the sleeping phone" % text)
    took = time.monotonic() - start
    check(MESSAGE_WAIT - 0.5 <= took < MESSAGE_WAIT + 5, "202 after %.1f s, message_wait %d s"
          % (took, MESSAGE_WAIT))


def test_message_wake_payload(ctx):
    """A MESSAGE to a sleeping FCM phone: one "message" push (sender, preview as allowed, the
    client's pn-msg-str as loc_key, data-only high priority), the phone registers and gets the
    MESSAGE, its 200 reaches the sender. The body never reaches sipwake's log."""
    tok = wk.fcm_token()
    with wk.Rig(ctx, push_config="message_preview = true\n") as rig:
        rig.watch.subscribe(tok, project=wk.PROJECT)
        p = rig.phone("msg", "alice", ["--dialect", "rfc8599", "--provider", "fcm", "--app",
                                       wk.PROJECT, "--token", tok, "--msg-str", "IM_MSG",
                                       "--background-after-register", "--calls", "1"])
        p.wait_event("backgrounded")
        text = "see you at 8, secret-%s" % os.urandom(4).hex()
        caller, r = send_message(rig, text)
        it.expect_code(r, 200, "MESSAGE to the woken phone")
        push = rig.watch.wait_push(tok, event="message")
        data = push["payload"].get("data") or {}
        check(push["payload"].get("android", {}).get("priority") == "high" and
              "notification" not in push["payload"], "FCM message %r" % push["payload"])
        check(data.get("call_id") == caller.call_id, "push call_id %r" % data.get("call_id"))
        check("bob@127.0.0.1" in data.get("caller_uri", ""), "caller_uri %r" % data)
        check(data.get("preview") == text, "preview %r" % data.get("preview"))
        check(data.get("loc_key") == "IM_MSG", "loc_key %r" % data.get("loc_key"))
        check(not rig.watch.seen(tok, "call"), "a call push for a MESSAGE: %r" % rig.watch.seen(tok))
        check(p.wait() == 0, "phone exit:\n" + p.log())
        names = ph.names(ph.read_events(p.events))
        check(names.index("reregistered") < names.index("message_received"),
              "MESSAGE before the REGISTER: %r" % names)
        got = received(p)
        check(len(got) == 1 and got[0]["body"] == text, "MESSAGE at the phone: %r" % got)
        check(text not in rig.server.log(), "the MESSAGE body is in sipwake's log")
        rig.server_alive()


def test_message_preview_off_by_default(ctx):
    """Without [push] message_preview the push names the sender and carries no text."""
    tok = wk.fcm_token()
    with wk.Rig(ctx, push_config="message_wait = %d\n" % MESSAGE_WAIT) as rig:
        rig.watch.subscribe(tok, project=wk.PROJECT)
        wk.sleeping_phone(rig, "sleeper", "alice", tok)
        expect_202(rig, "private words")
        data = rig.watch.wait_push(tok, event="message")["payload"].get("data") or {}
        check(data.get("event") == "message" and "preview" not in data and "loc_key" not in data,
              "push data %r" % data)


def test_message_stored_delivered_after_restart(ctx):
    """Nobody registers within message_wait: 202 Accepted for each of two MESSAGEs, one push
    each; sipwake is killed (SIGKILL) and started again; when the phone next registers it gets
    both, in order, once; the delivery reports are logged."""
    tok = wk.fcm_token()
    with wk.Rig(ctx, push_config="message_wait = %d\n" % MESSAGE_WAIT) as rig:
        rig.watch.subscribe(tok, project=wk.PROJECT)
        wk.sleeping_phone(rig, "sleeper", "alice", tok)
        expect_202(rig, "first")
        expect_202(rig, "second")
        rig.watch.wait_pushes(tok, 2, event="message")
        rig.restart()
        p = phone_taking(rig, "back", tok, 2)
        check(p.wait() == 0, "phone exit:\n" + p.log())
        check([e["body"] for e in received(p)] == ["first", "second"],
              "messages at the phone: %r" % received(p))
        log = rig.server.log()
        check(len(re.findall(r"stored message \d+ for \S+ delivered to device", log)) == 2,
              "delivery reports:\n" + log[-3000:])
        # Once: the next registration of the device gets nothing more.
        again = phone_taking(rig, "again", tok, 0)
        check(again.wait() == 0, "phone exit:\n" + again.log())
        check(len(re.findall(r"delivered to device", rig.server.log())) == 2,
              "delivered again:\n" + rig.server.log()[-3000:])
        rig.server_alive()


def test_message_store_user_bound(ctx):
    """[push] message_store_per_user = 1: the first MESSAGE is kept (202), the second gets
    486 Busy Here - Message Store Full; the phone then gets only the first."""
    tok = wk.fcm_token()
    with wk.Rig(ctx, push_config="message_wait = %d\nmessage_store_per_user = 1\n"
                % MESSAGE_WAIT) as rig:
        wk.sleeping_phone(rig, "sleeper", "alice", tok)
        expect_202(rig, "kept")
        _, r = send_message(rig, "over the bound")
        it.expect_code(r, 486, "MESSAGE beyond the user's bound")
        check(r.reason == "Busy Here - Message Store Full", "reason %r" % r.reason)
        p = phone_taking(rig, "back", tok, 1)
        check(p.wait() == 0, "phone exit:\n" + p.log())
        check([e["body"] for e in received(p)] == ["kept"], "messages: %r" % received(p))


def test_message_store_expiry(ctx):
    """[push] message_store_ttl = 4: a kept message expires (reported by the sweep) and is never
    delivered; one kept afterwards is, alone."""
    tok = wk.fcm_token()
    with wk.Rig(ctx, push_config="message_wait = %d\nmessage_store_ttl = 4\n" % MESSAGE_WAIT,
                extra_config="\n[registrar]\nsweep_interval = 1\n") as rig:
        wk.sleeping_phone(rig, "sleeper", "alice", tok)
        expect_202(rig, "stale")
        deadline = time.monotonic() + 15
        while "expired for device" not in rig.server.log():
            check(time.monotonic() < deadline, "no expiry report:\n" + rig.server.log()[-3000:])
            time.sleep(0.2)
        expect_202(rig, "fresh")
        p = phone_taking(rig, "back", tok, 1)
        check(p.wait() == 0, "phone exit:\n" + p.log())
        check([e["body"] for e in received(p)] == ["fresh"], "messages: %r" % received(p))
        rig.server_alive()


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}


def main():
    return ph.main(TESTS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
