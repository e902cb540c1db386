#!/usr/bin/env python3
"""Wake-path load against sipwake: a phone farm and its callers in one asyncio process (UDP).

Setup: N devices (users uNNNNN / pwNNNNN) REGISTER with RFC 8599 APNs push parameters, then go to
the background (un-REGISTER, push parameters kept), and the farm subscribes each device's token
on sipwake-fakepns's control port. Load: calls at a fixed rate, each to an idle device:

  caller INVITE -> 407 -> ACK, INVITE with Proxy-Authorization          (t_invite: sent)
  sipwake pushes (APNs, HTTP/2) to sipwake-fakepns -> control-port event  (t_push: received;
                                  t_push_rx: the fake's stamp when the request was complete)
  device REGISTER -> 401 -> REGISTER with Authorization -> 200            (t_reg200: received)
  sipwake forwards the parked INVITE to the device                        (t_inv_out: received)
  device 200 -> caller 200, ACK, BYE -> 200; the device un-REGISTERs (background again).

Latencies are the farm's own clock (time.monotonic_ns) on receipt, so each includes a loopback
hop and Python's scheduling: INVITE->push also includes sipwake-fakepns (TLS, HTTP/2, its checks
and the control-port line); INVITE->push at the fake (t_push_rx, the fake's CLOCK_MONOTONIC stamp
before its checks) leaves those out but still includes two loopback hops and the fake's TLS and
HTTP/2 decoding. They are upper bounds of what sipwake adds. Server CPU is read from
/proc/PID/stat over each load run only (not the setup). One JSON object per run on stdout.

Edge mode (edge.py): --caller-server sends the callers' requests to the PBX in front of the
server; --no-push runs the same calls against a proxy without push (the devices stay registered
and answer at once); --refreshes N measures N REGISTER refreshes of the registered devices (each
device's own Call-ID, CSeq + 1, first without credentials) at --refresh-rate before the calls.

    wakefarm.py --server 127.0.0.1:PORT --control 127.0.0.1:CPORT --devices 1000 \
        --runs 100x20,200x10,400x10 --server-pid PID [--fakepns-pid PID]
"""

import argparse, asyncio, hashlib, json, os, random, re, secrets, socket, sys, time

from bench import cpu_seconds, percentile as pct  # bench.py, next to this file

TEAM, BUNDLE = "TEAM123456", "com.example.phone"
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def now_ns():
    return time.monotonic_ns()


def cpu_s(pid):
    """utime + stime of the process tree of pid (Kamailio's children included); 0 without one."""
    return cpu_seconds(pid) if pid else 0.0


# ------------------------------------------------------------------------------ SIP text

class Msg:
    __slots__ = ("first", "hdrs", "body", "code", "method", "ruri")

    def __init__(self, data):
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.first = lines[0]
        self.hdrs = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.hdrs:
                n, v = self.hdrs[-1]
                self.hdrs[-1] = (n, v + " " + line.strip())
            else:
                n, _, v = line.partition(":")
                self.hdrs.append((n.strip().lower(), v.strip()))
        parts = self.first.split(" ", 2)
        if parts[0] == "SIP/2.0":
            self.code, self.method, self.ruri = int(parts[1]), None, None
        else:
            self.code, self.method, self.ruri = None, parts[0], parts[1]

    def get(self, name):
        for n, v in self.hdrs:
            if n == name:
                return v
        return None

    def all(self, name):
        return [v for n, v in self.hdrs if n == name]

    def cseq(self):
        n, _, m = (self.get("cseq") or "0 X").partition(" ")
        return int(n), m.strip()


def dparam(ch, name):
    m = re.search(r'(?i)(?:^|[\s,])%s\s*=\s*("([^"]*)"|[^,\s]+)' % name, ch)
    return None if not m else (m.group(2) if m.group(2) is not None else m.group(1))


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def digest(challenge, method, uri, user, password):
    realm, nonce = dparam(challenge, "realm") or "", dparam(challenge, "nonce") or ""
    opaque = dparam(challenge, "opaque")
    cnonce, nc = secrets.token_hex(8), "00000001"
    ha1, ha2 = md5("%s:%s:%s" % (user, realm, password)), md5("%s:%s" % (method, uri))
    resp = md5("%s:%s:%s:%s:auth:%s" % (ha1, nonce, nc, cnonce, ha2))
    v = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=MD5, '
         'qop=auth, nc=%s, cnonce="%s"' % (user, realm, nonce, uri, resp, nc, cnonce))
    return v + (', opaque="%s"' % opaque if opaque is not None else "")


def request(method, ruri, via_host, branch, frm, to, call_id, cseq, extra=(), body=""):
    lines = ["%s %s SIP/2.0" % (method, ruri),
             "Via: SIP/2.0/UDP %s;branch=%s;rport" % (via_host, branch),
             "Max-Forwards: 70", "From: " + frm, "To: " + to, "Call-ID: " + call_id,
             "CSeq: %d %s" % (cseq, method)] + list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def response(req, code, reason, to_tag=None, extra=(), body=""):
    lines = ["SIP/2.0 %d %s" % (code, reason)]
    lines += ["Via: " + v for v in req.all("via")]
    lines += ["Record-Route: " + v for v in req.all("record-route")]
    to = req.get("to")
    if to_tag and ";tag=" not in to:
        to += ";tag=" + to_tag
    lines += ["From: " + req.get("from"), "To: " + to, "Call-ID: " + req.get("call-id"),
              "CSeq: " + req.get("cseq")] + list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def find_key(obj, key):
    """The first value of `key` anywhere in a JSON object (the push payload's event kind)."""
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], str):
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for v in obj:
            found = find_key(v, key)
            if found is not None:
                return found
    return None


def branch():
    return "z9hG4bK" + secrets.token_hex(8)


# ------------------------------------------------------------------------------ the farm

class Endpoint(asyncio.DatagramProtocol):
    def __init__(self, on_msg):
        self.on_msg = on_msg
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)

    def datagram_received(self, data, addr):
        try:
            msg = Msg(data)
        except (ValueError, IndexError):
            return
        self.on_msg(msg)


class Device:
    def __init__(self, i):
        self.i = i
        self.user = "u%05d" % i
        self.password = "pw%05d" % i
        self.token = hashlib.sha256(("wakefarm-%d" % i).encode()).hexdigest()
        self.instance = "urn:uuid:00000000-0000-4000-8000-%012d" % i
        self.call_id = "reg-%s-%s" % (self.user, secrets.token_hex(4))
        self.tag = secrets.token_hex(4)
        self.cseq = 0
        self.reg_fut = None     # future of the REGISTER transaction in progress
        self.call = None        # Call being delivered to this device


class Call:
    __slots__ = ("dev", "call_id", "tag", "t_invite", "t_push", "t_push_rx", "t_reg200",
                 "t_inv_out", "t_200", "t_first_rx", "t_wake", "pushes", "lost",
                 "done", "fut", "auth_sent")

    def __init__(self, dev):
        self.dev = dev
        self.call_id = "wake-%s" % secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.t_invite = self.t_push = self.t_push_rx = self.t_reg200 = self.t_inv_out = None
        self.t_200 = None
        self.t_first_rx = None  # the fake's stamp of the call's first push (delivered or lost)
        self.t_wake = None      # the device sent its REGISTER, woken by the first delivered push
        self.pushes = self.lost = 0  # push events delivered / lost by the fake for this call
        self.done = False
        self.auth_sent = False
        self.fut = None


class Farm:
    def __init__(self, a):
        self.a = a
        host, _, port = a.server.rpartition(":")
        self.server = (host, int(port))
        # Where the callers send their requests: the server, or the PBX in front of it (edge).
        chost, _, cport = (a.caller_server or a.server).rpartition(":")
        self.call_to = (chost, int(cport))
        self.domain = a.domain or host
        self.devices = [Device(i) for i in range(a.first, a.first + a.devices)]
        self.by_user = {d.user: d for d in self.devices}
        self.by_token = {d.token: d for d in self.devices}
        self.by_regcid = {d.call_id: d for d in self.devices}
        self.calls = {}         # caller Call-ID -> Call
        self.idle = []
        self.stray = 0
        self.push_kinds = {}  # "push call", "lost call", "push missed", ...: events seen

    async def start(self):
        loop = asyncio.get_running_loop()
        self.dev_tr, _ = await loop.create_datagram_endpoint(
            lambda: Endpoint(self.on_device_msg), local_addr=("127.0.0.1", 0))
        self.call_tr, _ = await loop.create_datagram_endpoint(
            lambda: Endpoint(self.on_caller_msg), local_addr=("127.0.0.1", 0))
        self.dev_addr = "127.0.0.1:%d" % self.dev_tr.get_extra_info("sockname")[1]
        self.call_addr = "127.0.0.1:%d" % self.call_tr.get_extra_info("sockname")[1]
        if self.a.no_push:
            return
        chost, _, cport = self.a.control.rpartition(":")
        self.ctl_r, self.ctl_w = await asyncio.open_connection(chost, int(cport), limit=1 << 22)
        self.ctl_acks = asyncio.Queue()
        asyncio.ensure_future(self.read_control())

    # -- device side ---------------------------------------------------------------------

    def contact(self, d, expires):
        return ('<sip:%s@%s;transport=udp;pn-provider=apns;pn-param=%s.%s.voip;pn-prid=%s>'
                ';+sip.instance="<%s>";expires=%d'
                % (d.user, self.dev_addr, TEAM, BUNDLE, d.token, d.instance, expires))

    def register_msg(self, d, expires, auth=None):
        d.cseq += 1
        ruri = "sip:%s" % self.domain
        extra = ["Contact: " + self.contact(d, expires), "Expires: %d" % expires,
                 "Supported: path, outbound"]
        if auth:
            extra.append("Authorization: " + auth)
        return request("REGISTER", ruri, self.dev_addr, branch(),
                       "<sip:%s@%s>;tag=%s" % (d.user, self.domain, d.tag),
                       "<sip:%s@%s>" % (d.user, self.domain), d.call_id, d.cseq, extra)

    async def register(self, d, expires, timeout=10.0):
        """REGISTER (challenge, answer); returns the final status code (0: timeout)."""
        code = 0
        auth = None
        for _ in range(2):
            d.reg_fut = asyncio.get_running_loop().create_future()
            self.dev_tr.sendto(self.register_msg(d, expires, auth), self.server)
            try:
                r = await asyncio.wait_for(d.reg_fut, timeout)
            except asyncio.TimeoutError:
                return 0
            code = r.code
            if code != 401:
                return code
            auth = digest(r.get("www-authenticate") or "", "REGISTER", "sip:%s" % self.domain,
                          d.user, d.password)
        return code

    def on_device_msg(self, m):
        if m.code is not None:
            d = self.by_regcid.get(m.get("call-id"))
            if d and m.code >= 200 and d.reg_fut and not d.reg_fut.done() \
                    and m.cseq()[0] == d.cseq:
                if m.code == 200 and d.call and d.call.t_reg200 is None and d.call.t_push:
                    d.call.t_reg200 = now_ns()
                d.reg_fut.set_result(m)
            return
        user = m.ruri[4:].split("@", 1)[0] if m.ruri.startswith("sip:") else ""
        d = self.by_user.get(user)
        if m.method == "INVITE":
            if d is None or d.call is None:
                self.stray += 1
                self.dev_tr.sendto(response(m, 480, "Temporarily Unavailable", "x"), self.server)
                return
            if d.call.t_inv_out is None:
                d.call.t_inv_out = now_ns()
            self.dev_tr.sendto(response(m, 200, "OK", d.tag,
                                        ["Contact: <sip:%s@%s>" % (d.user, self.dev_addr)], SDP),
                               self.server)
        elif m.method == "BYE":
            self.dev_tr.sendto(response(m, 200, "OK"), self.server)
            if d is not None and d.call is not None:
                asyncio.ensure_future(self.background(d))
        elif m.method == "ACK":
            pass
        elif m.method is not None:
            self.dev_tr.sendto(response(m, 200, "OK"), self.server)

    async def background(self, d):
        if not self.a.no_push:
            await self.register(d, 0)
        d.call = None
        self.idle.append(d)

    async def wake(self, d):
        d.call.t_wake = now_ns()
        code = await self.register(d, 600)
        if code != 200 and d.call and not d.call.done:
            d.call.done = True
            d.call.fut.set_result(False)

    # -- control port ----------------------------------------------------------------------

    async def read_control(self):
        while True:
            line = await self.ctl_r.readline()
            if not line:
                return
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            event = obj.get("event")
            if event is None:  # an answer to one of our requests
                self.ctl_acks.put_nowait(obj)
                continue
            if event not in ("push", "lost"):  # "refused": scripted, not a push
                continue
            d = self.by_token.get(obj.get("token"))
            kind = "%s %s" % (event, find_key(obj.get("payload"), "event"))
            self.push_kinds[kind] = self.push_kinds.get(kind, 0) + 1
            if d is None or d.call is None or not kind.endswith(" call"):
                continue  # also a cancel / missed-call push after the call
            c = d.call
            # The fake's own CLOCK_MONOTONIC stamp when the request was complete, before its
            # checks, its delivery delay and its control-port write (same clock as
            # time.monotonic_ns). A lost push is reported at once, a delivered one after the
            # fake's --delay-ms: the earliest stamp is the call's first push.
            rx = obj.get("rx_mono_ns")
            rx = rx if isinstance(rx, int) and rx > 0 else None
            if rx is not None and (c.t_first_rx is None or rx < c.t_first_rx):
                c.t_first_rx = rx
            if event == "lost":
                c.lost += 1
                continue
            c.pushes += 1
            if c.t_push is None:
                c.t_push = now_ns()
                c.t_push_rx = rx
                asyncio.ensure_future(self.wake(d))

    async def subscribe(self):
        for d in self.devices:
            self.ctl_w.write((json.dumps({"op": "subscribe", "token": d.token,
                                          "topic": BUNDLE + ".voip"}) + "\n").encode())
        await self.ctl_w.drain()
        for _ in self.devices:
            ack = await asyncio.wait_for(self.ctl_acks.get(), 20)
            if not ack.get("ok"):
                raise SystemExit("wakefarm: subscribe refused: %r" % ack)

    async def setup(self):
        if not self.a.no_push:
            await self.subscribe()
        sem = asyncio.Semaphore(100)

        async def one(d):
            async with sem:
                for expires in ((600,) if self.a.no_push else (600, 0)):
                    code = 0
                    for _ in range(3):  # a lost datagram (no retransmission here): try again
                        code = await self.register(d, expires, 3.0)
                        if code:
                            break
                    if code != 200:
                        return "%d %s" % (code, "register" if expires else "background")
                return None
        bad = [r for r in await asyncio.gather(*(one(d) for d in self.devices)) if r]
        if bad:
            raise SystemExit("wakefarm: %d of %d devices failed to register/background: %s"
                             % (len(bad), len(self.devices), sorted(set(bad))))
        self.idle = list(self.devices)
        random.shuffle(self.idle)

    # -- caller side -----------------------------------------------------------------------

    def invite_msg(self, c, cseq, br, auth=None):
        ruri = "sip:%s@%s" % (c.dev.user, self.domain)
        extra = ["Contact: <sip:callee@%s>" % self.call_addr]
        if auth:
            extra.append("Proxy-Authorization: " + auth)
        return request("INVITE", ruri, self.call_addr, br,
                       "<sip:callee@%s>;tag=%s" % (self.domain, c.tag),
                       "<sip:%s@%s>" % (c.dev.user, self.domain), c.call_id, cseq, extra, SDP)

    def place(self, d):
        c = Call(d)
        d.call = c
        c.fut = asyncio.get_running_loop().create_future()
        self.calls[c.call_id] = c
        self.call_tr.sendto(self.invite_msg(c, 1, branch()), self.call_to)
        return c

    def on_caller_msg(self, m):
        c = self.calls.get(m.get("call-id"))
        if c is None or m.code is None:
            if m.code is None:
                self.call_tr.sendto(response(m, 200, "OK"), self.call_to)
            return
        cseq, method = m.cseq()
        if m.code < 200 or c.done:
            return
        to = m.get("to")
        frm = "<sip:callee@%s>;tag=%s" % (self.domain, c.tag)
        ruri = "sip:%s@%s" % (c.dev.user, self.domain)
        if method == "INVITE" and m.code >= 300:
            # ACK of a non-2xx final: same branch and Request-URI as the INVITE (RFC 3261 17.1.1.3)
            via_branch = dparam(m.get("via").replace(";", ","), "branch")
            self.call_tr.sendto(request("ACK", ruri, self.call_addr, via_branch, frm, to,
                                        c.call_id, cseq), self.call_to)
            if m.code == 407 and cseq == 1:
                auth = digest(m.get("proxy-authenticate") or "", "INVITE", ruri, "callee",
                              "pwcallee")
                c.t_invite = now_ns()
                self.call_tr.sendto(self.invite_msg(c, 2, branch(), auth), self.call_to)
            else:
                c.done = True
                c.fut.set_result(False)
                # the device may be registered by now: let it go back to the background
                asyncio.ensure_future(self.background(c.dev))
        elif method == "INVITE" and m.code == 200 and c.t_200 is None:
            c.t_200 = now_ns()
            routes = []
            for v in m.all("record-route"):
                routes += [x.strip() for x in v.split(",")]
            routes.reverse()
            contact = (m.get("contact") or "").strip()
            target = contact[contact.find("<") + 1:contact.find(">")] if "<" in contact \
                else contact.split(";")[0]
            extra = ["Route: " + ", ".join(routes)] if routes else []
            self.call_tr.sendto(request("ACK", target, self.call_addr, branch(), frm, to,
                                        c.call_id, 2, extra), self.call_to)
            self.call_tr.sendto(request("BYE", target, self.call_addr, branch(), frm, to,
                                        c.call_id, 3, extra), self.call_to)
        elif method == "BYE":
            c.done = True
            c.fut.set_result(m.code == 200)

    async def refresh(self, count, rate):
        """count REGISTER refreshes at rate/s, cycling over the devices (each one's Call-ID,
        CSeq + 1, starting without credentials); the devices end as they were (background again
        in push mode, unmeasured). Returns the run's figures."""
        cpu0, pcpu0 = cpu_s(self.a.server_pid), cpu_s(self.a.pbx_pid)
        t0 = time.monotonic()
        regs, busy, last = [], 0, {}
        for k in range(count):
            delay = t0 + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            d = self.devices[k % len(self.devices)]
            if d.i in last and not last[d.i].done():
                busy += 1  # its previous refresh is still in progress
                continue
            last[d.i] = asyncio.ensure_future(self.register(d, 600, 5.0))
            regs.append(last[d.i])
        codes = await asyncio.gather(*regs)
        cpu1, pcpu1 = cpu_s(self.a.server_pid), cpu_s(self.a.pbx_pid)
        ok = sum(1 for c in codes if c == 200)
        if not self.a.no_push:
            await asyncio.gather(*(self.register(d, 0, 5.0) for d in self.devices))
        return {"refresh": {"rate": rate, "offered": count, "sent": len(regs), "busy": busy,
                            "ok": ok, "failed": count - ok,
                            "elapsed_s": time.monotonic() - t0,
                            "server_cpu_s": cpu1 - cpu0, "pbx_cpu_s": pcpu1 - pcpu0}}

    async def run(self, rate, duration, timeout):
        """Offers rate calls/s for duration s; returns the run's figures."""
        total = int(rate * duration)
        calls = []
        cpu0, fcpu0 = cpu_s(self.a.server_pid), cpu_s(self.a.fakepns_pid)
        pcpu0 = cpu_s(self.a.pbx_pid)
        own0 = time.process_time()
        t0 = time.monotonic()
        no_device = 0
        for k in range(total):
            delay = t0 + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.idle:
                no_device += 1
                continue
            calls.append(self.place(self.idle.pop()))
        offered_s = time.monotonic() - t0

        async def wait(c):
            try:
                return await asyncio.wait_for(asyncio.shield(c.fut), timeout)
            except asyncio.TimeoutError:
                c.done = True
                asyncio.ensure_future(self.background(c.dev))  # whatever state it is in
                return False
        results = await asyncio.gather(*(wait(c) for c in calls))
        elapsed = time.monotonic() - t0
        cpu1, fcpu1 = cpu_s(self.a.server_pid), cpu_s(self.a.fakepns_pid)
        pcpu1 = cpu_s(self.a.pbx_pid)
        own1 = time.process_time()
        ok = [c for c, r in zip(calls, results) if r]
        for c in calls:
            self.calls.pop(c.call_id, None)
        await asyncio.sleep(0.5)  # devices finish going back to the background

        def lat(a, b):
            v = [(getattr(c, b) - getattr(c, a)) / 1e6 for c in ok
                 if getattr(c, a) is not None and getattr(c, b) is not None]
            return {"p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99), "n": len(v)}
        failed = total - len(ok)
        return {"rate": rate, "duration": duration, "offered": total, "ok": len(ok),
                "failed": failed, "no_idle_device": no_device,
                "fail_ratio": failed / total if total else 1.0,
                "offered_s": offered_s, "elapsed_s": elapsed,
                "server_cpu_s": cpu1 - cpu0, "fakepns_cpu_s": fcpu1 - fcpu0,
                "pbx_cpu_s": pcpu1 - pcpu0,
                "farm_cpu_s": own1 - own0,
                "cpu_s_per_1000": 1000.0 * (cpu1 - cpu0) / len(ok) if ok else None,
                "invite_to_push": lat("t_invite", "t_push"),
                "invite_to_push_rx": lat("t_invite", "t_push_rx"),
                "reg200_to_invite": lat("t_reg200", "t_inv_out"),
                "call_setup": lat("t_invite", "t_200"), "stray_invites": self.stray,
                "fleet": fleet_figures(calls, ok)}


def fleet_figures(calls, ok):
    """Connected share and sipwake's own share of the time to ring when the push service delays
    and loses pushes (sipwake-fakepns --delay-ms / --lose-share), all on CLOCK_MONOTONIC:

      ring           INVITE sent -> sipwake's INVITE reaches the device (t_inv_out)
      push_delay     the delivered push reached the fake (its rx stamp) -> the device sent its
                     REGISTER: the fake's delivery delay, its control-port line and the farm's
                     reaction; the push service's and the phone's time, not sipwake's
      sipwake_share  ring - push_delay: INVITE -> first push at the fake, any re-push wait,
                     the device's REGISTER (401, 200) and the forwarded INVITE
      repush_wait    first push at the fake -> the push that woke the device (0 if the first
                     did): sipwake waiting repush_interval for a lost push, by design
      processing     sipwake_share - repush_wait

    Each figure includes loopback hops and Python's scheduling: upper bounds."""
    def ms(c, a, b):
        x, y = getattr(c, a), getattr(c, b)
        return None if x is None or y is None else (y - x) / 1e6

    def dist(v):
        v = [x for x in v if x is not None]
        return {"p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99), "max_ms": max(v) if v else None,
                "n": len(v)}
    rows = []
    for c in ok:
        ring, delay = ms(c, "t_invite", "t_inv_out"), ms(c, "t_push_rx", "t_wake")
        if ring is None or delay is None or c.t_first_rx is None:
            continue
        wait = (c.t_push_rx - c.t_first_rx) / 1e6
        rows.append({"ring": ring, "delay": delay, "share": ring - delay, "wait": wait,
                     "repushed": wait > 0})
    first = [r for r in rows if not r["repushed"]]
    again = [r for r in rows if r["repushed"]]
    okset = set(ok)
    failed = [c for c in calls if c not in okset]
    return {
        "connected_share": len(ok) / len(calls) if calls else None,
        "woken_by_repush": len(again),
        "pushes_lost": sum(c.lost for c in calls),
        "failed_never_pushed": sum(1 for c in failed if c.t_first_rx is None),
        "failed_all_pushes_lost": sum(1 for c in failed
                                      if c.t_first_rx is not None and c.t_push is None),
        "failed_after_wake": sum(1 for c in failed if c.t_push is not None),
        "ring": dist(r["ring"] for r in rows),
        "push_delay": dist(r["delay"] for r in rows),
        "fake_delay": dist(ms(c, "t_push_rx", "t_push") for c in ok),
        "sipwake_share": dist(r["share"] for r in rows),
        "sipwake_share_first_push": dist(r["share"] for r in first),
        "sipwake_share_repushed": dist(r["share"] for r in again),
        "repush_wait": dist(r["wait"] for r in again),
        "sipwake_processing": dist(r["share"] - r["wait"] for r in rows),
    }


async def main_async(a):
    farm = Farm(a)
    await farm.start()
    t = time.monotonic()
    await farm.setup()
    print(json.dumps({"setup": {"devices": len(farm.devices),
                                "seconds": round(time.monotonic() - t, 2)}}), flush=True)
    if a.refreshes:
        print(json.dumps(await farm.refresh(a.refreshes, a.refresh_rate)), flush=True)
        await asyncio.sleep(1)
    for spec in a.runs.split(","):
        rate, _, dur = spec.partition("x")
        r = await farm.run(float(rate), float(dur or 10), a.call_timeout)
        print(json.dumps(r), flush=True)
        if a.stop_on_fail and r["fail_ratio"] >= 0.01:
            break
        await asyncio.sleep(1)
    if not a.no_push:
        farm.ctl_w.write(b'{"op":"stats"}\n')
        await farm.ctl_w.drain()
        print(json.dumps({"fakepns_stats": await asyncio.wait_for(farm.ctl_acks.get(), 10),
                          "push_events": farm.push_kinds}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True, help="sipwake UDP HOST:PORT")
    ap.add_argument("--domain", help="SIP domain (default: the server host)")
    ap.add_argument("--control", help="sipwake-fakepns control HOST:PORT (not with --no-push)")
    ap.add_argument("--caller-server", help="where the callers send (default: --server; in "
                    "edge mode the PBX, which routes the calls to the server)")
    ap.add_argument("--no-push", action="store_true",
                    help="devices stay registered and answer at once (a proxy without push)")
    ap.add_argument("--pbx-pid", type=int, default=0, help="PBX process tree, CPU recorded")
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--first", type=int, default=0, help="first user number (uNNNNN)")
    ap.add_argument("--runs", default="100x20", help="RATExSECONDS,... (calls/s x s)")
    ap.add_argument("--refreshes", type=int, default=0,
                    help="REGISTER refreshes measured after the setup, before the calls")
    ap.add_argument("--refresh-rate", type=float, default=200.0, help="refreshes per second")
    ap.add_argument("--stop-on-fail", action="store_true",
                    help="stop after the first run with >= 1%% failures")
    ap.add_argument("--call-timeout", type=float, default=10.0)
    ap.add_argument("--server-pid", type=int, default=0)
    ap.add_argument("--fakepns-pid", type=int, default=0)
    a = ap.parse_args()
    if not a.no_push and not a.control:
        ap.error("--control is needed unless --no-push")
    asyncio.run(main_async(a))


if __name__ == "__main__":
    sys.exit(main())
