#!/usr/bin/env python3
"""The dashboard on the admin listener (docs/operations.md "Dashboard"): its static files and
their headers (CSP, nosniff, no-cache; no token needed), and the page in headless Chromium
(Debian `chromium`): a sleeping phone woken by a call, the page loaded with the token and the
user pre-searched; the DOM after the script ran shows the binding counts, the pushes by
provider, the call's timeline (push sent, provider answered), the wake latency, a User-Agent and
Call-ID holding markup as text; a wrong token shows the error and no data. The screenshot is
kept as work/dashboard.png (next to the work directories). Reuses admin_it.py and wake_it.py.

    dashboard_it.py --sipwake build/sipwake --fakepns build/sipwake-fakepns \
        --phone tools/sipwake-phone/sipwake-phone --work-dir /tmp/it dashboard_browser

Exit status: 0 pass, 1 fail, 77 skipped (chromium missing; CTest SKIP_RETURN_CODE).
"""

import html.parser
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import admin_it as adm  # noqa: E402
import sipwake_it as it  # noqa: E402
import wake_it as wk  # noqa: E402
from sipwake_it import Fail, Skip, check  # noqa: E402
from phone_it import PROJECT  # noqa: E402

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")
# Markup in what the network controls: a REGISTER's User-Agent and Call-ID (a Call-ID has no
# "=" or space, RFC 3261 §25.1 "word").
XSS_UA = "<img src=x onerror=document.title='pwned'>"
XSS_CALL_ID = "<b>x</b><script>document.title+'pwned'</script>@xss"


def fetch(url, method="GET"):
    """(status, headers, body bytes); HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_dashboard_static(ctx):
    with adm.Admin(ctx) as a:
        files = {"/": "text/html", "/dashboard/": "text/html",
                 "/dashboard/index.html": "text/html",
                 "/dashboard/dashboard.js": "text/javascript",
                 "/dashboard/dashboard.css": "text/css"}
        for path, ctype in files.items():
            status, headers, body = fetch(a.base + path)
            check(status == 200 and body, "GET %s without a token: %d" % (path, status))
            check(headers.get("content-type") == ctype + "; charset=utf-8",
                  "%s content-type %r" % (path, headers.get("content-type")))
            check(headers.get("content-security-policy") == CSP,
                  "%s CSP %r" % (path, headers.get("content-security-policy")))
            check(headers.get("x-content-type-options") == "nosniff",
                  "%s nosniff %r" % (path, headers.get("x-content-type-options")))
            check(headers.get("cache-control") == "no-cache",
                  "%s cache-control %r" % (path, headers.get("cache-control")))
        _, _, page = fetch(a.base + "/")
        with open(os.path.join(ctx.source_dir, "src", "server", "dashboard", "index.html"),
                  "rb") as f:
            check(page == f.read(), "GET / is not the embedded index.html")
        for path in ("/dashboard/nope.js", "/dashboard/../admin.token", "/index.html"):
            status, _, _ = fetch(a.base + path)
            check(status == 404, "GET %s: %d" % (path, status))
        status, headers, _ = fetch(a.base + "/", method="POST")
        check(status == 405 and headers.get("allow") == "GET", "POST /: %d" % status)
        status, _, _ = a.call("GET", "/api/status", token=None)
        check(status == 401, "the API still needs the token: %d" % status)
        a.rig.server_alive()


class Dom(html.parser.HTMLParser):
    """The dumped DOM: text and attributes of each element with an id, the rows (cell texts) of
    each table with an id, and every tag name seen."""

    VOID = {"meta", "link", "input", "br", "img", "hr", "source", "area", "base", "col",
            "embed", "param", "track", "wbr", "line", "polyline"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.text, self.attrs, self.rows, self.tags = {}, {}, {}, []
        self.stack = []  # (tag, id or None)
        self.table = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        el_id = attrs.get("id")
        if el_id:
            self.attrs[el_id] = attrs
            self.text.setdefault(el_id, "")
        if tag == "table" and el_id:
            self.table = el_id
            self.rows[el_id] = []
        elif tag == "tr" and self.table and "tbody" in [t for t, _ in self.stack]:
            self.rows[self.table].append([])
        elif tag == "td" and self.table and self.rows[self.table]:
            self.rows[self.table][-1].append("")
        if tag not in self.VOID:
            self.stack.append((tag, el_id))

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break
        if tag == "table":
            self.table = None

    def handle_data(self, data):
        for _, el_id in self.stack:
            if el_id:
                self.text[el_id] += data
        if self.table and self.rows.get(self.table) and self.rows[self.table][-1] and \
                self.stack and self.stack[-1][0] == "td":
            self.rows[self.table][-1][-1] += data


def chromium_run(ctx, url, args):
    """Headless Chromium on `url` with `args`; (stdout, stderr). Bounded to 60 s; the whole
    process group is killed afterwards (Chromium's helpers too)."""
    exe = shutil.which("chromium")
    if not exe:
        raise Skip("chromium missing (Debian package chromium; scripts/install-deps.sh --test)")
    profile = tempfile.mkdtemp(prefix="chromium-", dir=ctx.work)
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--disable-background-networking", "--disable-component-update", "--mute-audio",
           "--virtual-time-budget=5000"] + list(args) + [url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise Fail("chromium did not finish within 60 s: %s" % " ".join(cmd))
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def dashboard_url(a, token, q=None):
    fragment = {"token": token}
    if q:
        fragment["q"] = q
    return a.base + "/#" + urllib.parse.urlencode(fragment)


def load_dom(ctx, url):
    out, err = chromium_run(ctx, url, ["--dump-dom", "--enable-logging=stderr", "--v=0"])
    check("<html" in out, "chromium printed no DOM:\n%s\n%s" % (out[-2000:], err[-3000:]))
    # The page runs under its own Content-Security-Policy: nothing of it may be refused.
    refused = [ln for ln in err.splitlines() if "Content Security Policy" in ln]
    check(not refused, "CSP refusals:\n%s" % "\n".join(refused))
    with open(os.path.join(ctx.work, "dom-%d.html" % len(os.listdir(ctx.work))), "w") as f:
        f.write(out)
    dom = Dom(out)
    check("data" in dom.attrs and "error" in dom.attrs,
          "not the dashboard page:\n%s" % out[-2000:])
    return dom


class XssRegistration(it.Registration):
    """A REGISTER whose User-Agent is `XSS_UA`."""

    def request(self, headers, cseq=None):
        return super().request(headers, cseq).replace(b"User-Agent: sipwake-it",
                                                      b"User-Agent: " + XSS_UA.encode())


def test_dashboard_browser(ctx):
    if not shutil.which("chromium"):
        raise Skip("chromium missing (Debian package chromium; scripts/install-deps.sh --test)")
    tok = wk.fcm_token()
    with adm.Admin(ctx) as a:
        # A phone that sleeps, woken by bob's call (as admin_it.py's admin_timeline).
        a.rig.watch.subscribe(tok, project=PROJECT)
        p, caller, _ = adm.woken_call(a, tok)
        check(p.wait() == 0, "phone:\n" + p.log())
        # A second device of alice with markup in its User-Agent and Call-ID.
        client = it.UdpClient(("127.0.0.1", a.rig.udp))
        reg = XssRegistration(client, a.rig.udp, "alice", "alice-pw")
        reg.call_id = XSS_CALL_ID
        it.expect_code(reg.send(["Contact: " + reg.contact, "Expires: 600"]), 200,
                       "REGISTER with markup in User-Agent and Call-ID")
        client.close()
        status = a.ok("GET", "/api/status")
        check(status["wake_latency_ms"]["count"] >= 1, "status %r" % status)

        dom = load_dom(ctx, dashboard_url(a, adm.TOKEN, adm.ALICE))
        check("hidden" not in dom.attrs["data"] and "hidden" in dom.attrs["error"],
              "data hidden or an error shown: %r" % dom.text.get("error"))
        for el_id, key in (("bindings", "bindings"), ("push-bindings", "push_bindings"),
                           ("parked", "parked")):
            check(dom.text[el_id].strip() == str(status[key]),
                  "#%s %r, the API says %r" % (el_id, dom.text[el_id], status[key]))
        pushes = {r[0]: r for r in dom.rows["pushes"]}
        check("fcm" in pushes and int(pushes["fcm"][1]) >= 1 and pushes["fcm"][2] == "0",
              "#pushes %r" % dom.rows["pushes"])
        p50 = status["wake_latency_ms"]["p50"]
        shown = dom.text["latency-p50"].strip()
        check(shown.endswith(" ms") and abs(float(shown[:-3]) - p50) <= 0.5,
              "#latency-p50 %r, the API says %r" % (shown, p50))
        check(dom.text["latency-count"].strip() == str(status["wake_latency_ms"]["count"]),
              "#latency-count %r" % dom.text["latency-count"])
        steps = dom.rows["timeline-table"]
        check(steps and steps[0][0] == caller.call_id and "answered" in steps[0][3],
              "#timeline-table first row %r" % (steps[:1],))
        whats = [r[5] for r in steps]
        check("push sent" in whats and "provider answered" in whats,
              "#timeline-table steps %r" % whats)
        sent = steps[whats.index("push sent")]
        answered = steps[whats.index("provider answered")]
        check(sent[7] == "fcm" and sent[6] and sent[4].startswith("+"), "push sent row %r" % sent)
        check(answered[8].startswith("HTTP 200") and answered[9] == "ok",
              "provider answered row %r" % answered)
        check(dom.text["user-aor"] == adm.ALICE, "#user-aor %r" % dom.text["user-aor"])
        check(len(dom.rows["user-push-bindings"]) == 1 and
              dom.rows["user-push-bindings"][0][3] == adm.truncated(tok),
              "#user-push-bindings %r" % dom.rows["user-push-bindings"])
        # Markup from the network is text: the cells hold it, no element was made of it.
        uas = [r[5] for r in dom.rows["user-bindings"]]
        call_ids = [r[6] for r in dom.rows["user-bindings"]]
        check(XSS_UA in uas and XSS_CALL_ID in call_ids,
              "#user-bindings User-Agents %r, Call-IDs %r" % (uas, call_ids))
        check("img" not in dom.tags and "b" not in dom.tags and dom.tags.count("script") == 1,
              "markup became elements: tags %r" % sorted(set(dom.tags)))
        check(not dom.text.get("title") or "pwned" not in dom.text["title"], "a script ran")

        shot = os.path.join(os.path.dirname(ctx.work), "dashboard.png")
        if os.path.exists(shot):
            os.remove(shot)
        out, err = chromium_run(ctx, dashboard_url(a, adm.TOKEN, adm.ALICE),
                                ["--screenshot=" + shot, "--window-size=1280,1100",
                                 "--hide-scrollbars"])
        check(os.path.exists(shot) and os.path.getsize(shot) > 10000,
              "no screenshot at %s:\n%s" % (shot, err[-3000:]))
        ctx.note("screenshot: %s" % shot)

        wrong = load_dom(ctx, dashboard_url(a, "wrong-token-0123456789", adm.ALICE))
        check("hidden" not in wrong.attrs["error"] and
              "admin token was refused" in wrong.text["error"],
              "#error with a wrong token: %r %r" % (wrong.attrs["error"], wrong.text["error"]))
        check("hidden" in wrong.attrs["data"], "data shown with a wrong token")
        for el_id in ("bindings", "push-bindings", "parked", "latency-p50"):
            check(wrong.text[el_id].strip() == "", "#%s %r with a wrong token"
                  % (el_id, wrong.text[el_id]))
        check(not wrong.rows["timeline-table"] and not wrong.rows["pushes"] and
              not wrong.rows["user-bindings"], "rows with a wrong token")
        a.rig.server_alive()


TESTS = {name[len("test_"):]: fn for name, fn in globals().items() if name.startswith("test_")}

if __name__ == "__main__":
    sys.exit(wk.ph.main(TESTS, __doc__))
