"""A real Kamailio as the PBX of the integration tests (Python 3 standard library only).

KamailioPbx starts Debian's `kamailio` with tests/pbx/kamailio.cfg, as the current user, in the
foreground, on 127.0.0.1:<free port> over UDP and TCP, with its users (db_text), runtime dir, pid
file and JSON-RPC socket inside the test's work directory; it is always stopped at the end:

    with KamailioPbx(ctx, users={"alice": "alice-pw", "bob": "bob-pw"}) as pbx:
        reg = it.Registration(it.UdpClient(pbx.udp_addr), pbx.port, "alice", "alice-pw")
        it.expect_code(reg.send(["Contact: " + reg.contact], algorithm="MD5"), 200, "REGISTER")
        check(len(pbx.bindings("alice")) == 1, pbx.log())

`trusted`: an address ("127.0.0.1") or (address, port) whose requests are not challenged (a
sipwake in the "own" credential model). `auth_calls`: INVITE/MESSAGE need credentials (407).

`tls=True`: a TLS listener too (`tls_port`, `tls_uri`; Debian package kamailio-tls-modules), with
a certificate for 127.0.0.1 signed by a test CA (calls_it.make_test_pki: `pki` = (ca.pem,
server.pem, server.key), the same CA verifies the peers' certificates: a sipwake may use
server.pem/server.key as its own). As a TLS client (its INVITEs to TLS contacts) Kamailio verifies
the server's certificate against that CA. `require_client_cert=True`: TLS clients must present a
certificate the CA signed. `tls_host`: the TLS listener's address (another loopback address than
the certificate's 127.0.0.1 makes a name mismatch for its clients).

stop() then start() again restarts it on the same port (an upstream outage): its location table
is in memory, so the restarted Kamailio has no bindings; its log goes on in the same file.
"""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import sipwake_it as it
from calls_it import make_test_pki
from sipwake_it import Fail, Skip, check

CONFIG = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "pbx", "kamailio.cfg"))
START_TIMEOUT = 15.0  # seconds for Kamailio to answer OPTIONS
STOP_TIMEOUT = 10.0  # seconds for Kamailio to exit after SIGTERM
RPC_TIMEOUT = 5.0  # seconds for one JSON-RPC answer
UNIX_PATH_MAX = 100  # sun_path is 108 bytes; keep a margin for the reply socket's name

RECV_LINE = re.compile(r"pbx-recv: (\S+) (\S+) from (\w+):([^:\s]+):(\d+) call-id (\S+) path (.*)$",
                       re.M)


def kamailio_binary():
    return shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio") if os.path.exists(p)), None)


def tls_module():
    """True when Kamailio's tls.so is installed where Debian puts its modules."""
    return bool(glob.glob("/usr/lib/*/kamailio/modules/tls.so")
                or glob.glob("/usr/lib/kamailio/modules/tls.so")
                or glob.glob("/usr/local/lib*/kamailio/modules/tls.so"))


class KamailioPbx:
    """One Kamailio process. Use as a context manager: always stopped at the end."""

    def __init__(self, ctx, users=None, trusted=None, auth_calls=False, name="pbx", tls=False,
                 require_client_cert=False, tls_host="127.0.0.1"):
        self.ctx = ctx
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.tls_port = None
        self.tls_host = tls_host
        self.pki = None
        self.users = dict(users or {})
        self.trusted = trusted
        self.auth_calls = auth_calls
        self.name = name
        self.dir = os.path.join(ctx.work, name)
        self.log_path = os.path.join(self.dir, "kamailio.log")
        self.port = None
        self.proc = None
        self.exit_code = None
        self._rpc_dir = None

    @property
    def udp_addr(self):
        return ("127.0.0.1", self.port)

    @property
    def uri(self):
        """The PBX as a next hop: sip:127.0.0.1:PORT (add ;transport=tcp for TCP)."""
        return "sip:127.0.0.1:%d" % self.port

    @property
    def tls_uri(self):
        """The PBX's TLS listener as a next hop (tls=True)."""
        return "sip:%s:%d;transport=tls" % (self.tls_host, self.tls_port)

    # -- start / stop ---------------------------------------------------------------------------

    def _write_db(self):
        db = os.path.join(self.dir, "db")
        os.makedirs(db, exist_ok=True)
        with open(os.path.join(db, "version"), "w") as f:
            f.write("id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n")
        with open(os.path.join(db, "subscriber"), "w") as f:
            f.write("id(int,auto) username(string) domain(string) password(string) "
                    "ha1(string,null) ha1b(string,null) \n")
            for i, (user, password) in enumerate(sorted(self.users.items()), 1):
                check(re.fullmatch(r"[\w.+-]+", user) and ":" not in password,
                      "db_text cannot hold user %r / password %r" % (user, password))
                f.write("%d:%s:127.0.0.1:%s::\n" % (i, user, password))
        return db

    def _write_tls_config(self):
        """tls.cfg of the tls module: the test CA's certificate for 127.0.0.1 on both sides."""
        if self.pki is None:
            self.pki = make_test_pki(self.ctx)
        ca, cert, key = self.pki
        require = "yes" if self.require_client_cert else "no"
        path = os.path.join(self.dir, "tls.cfg")
        with open(path, "w") as f:
            f.write("[server:default]\nmethod = TLSv1.2+\nverify_certificate = %s\n"
                    "require_certificate = %s\ncertificate = %s\nprivate_key = %s\n"
                    "ca_list = %s\n\n" % (require, require, cert, key, ca))
            f.write("[client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\n"
                    "require_certificate = yes\nca_list = %s\n" % ca)
        return path

    def _rpc_socket(self):
        path = os.path.join(self.dir, "rpc.sock")
        if len(path) > UNIX_PATH_MAX:  # a deep build tree: the socket lives in a short temp dir
            self._rpc_dir = tempfile.mkdtemp(prefix="kam-")
            path = os.path.join(self._rpc_dir, "rpc.sock")
        return path

    def command(self):
        defines = ['DBURL="text://%s"' % self.db, 'RPC_SOCKET="%s"' % self.rpc_path]
        if self.trusted is not None:
            host, port = (self.trusted, None) if isinstance(self.trusted, str) else self.trusted
            defines.append('TRUSTED_SOURCE="%s"' % host)
            if port is not None:
                defines.append("TRUSTED_PORT=%d" % port)
        if self.auth_calls:
            defines.append("AUTH_CALLS")
        cmd = [self.binary, "-DD", "-E", "-f", CONFIG, "-Y", self.dir, "-w", self.dir,
               "-P", os.path.join(self.dir, "kamailio.pid"), "-m", "32", "-M", "4",
               "-l", "udp:127.0.0.1:%d" % self.port, "-l", "tcp:127.0.0.1:%d" % self.port]
        if self.tls:
            defines += ["WITH_TLS", 'TLS_CONFIG="%s"' % self.tls_config]
            cmd += ["-l", "tls:%s:%d" % (self.tls_host, self.tls_port)]
        for d in defines:
            cmd += ["-A", d]
        return cmd

    def start(self):
        self.binary = kamailio_binary()
        if self.binary is None:
            raise Skip("kamailio not installed (Debian package kamailio)")
        os.makedirs(self.dir, exist_ok=True)
        self.db = self._write_db()
        self.rpc_path = self._rpc_socket()
        if os.path.exists(self.rpc_path):  # left by the previous run (restart)
            os.unlink(self.rpc_path)
        if self.port is None:
            self.port = it.free_port()
        if self.tls:
            if not tls_module():
                raise Skip("kamailio tls.so not installed (Debian package kamailio-tls-modules)")
            if self.tls_port is None:
                self.tls_port = it.free_port(host=self.tls_host)
            self.tls_config = self._write_tls_config()
        self.exit_code = None
        cmd = self.command()
        self.ctx.note("starting: " + " ".join(cmd))
        self._log = open(self.log_path, "ab")
        # Its own process group: the children it forks are stopped with it.
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir,
                                     start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail("kamailio exited with %d before it answered:\n%s"
                           % (self.proc.returncode, self.log()[-4000:]))
            # Ready: SIP answered and the JSON-RPC socket (made by its own process) is there.
            if (self._answers_options(min(0.5, max(0.05, deadline - time.monotonic())))
                    and os.path.exists(self.rpc_path)):
                return self
            time.sleep(0.05)  # polling, bounded by the deadline
        self.stop()
        raise Fail("kamailio did not answer OPTIONS within %.0fs:\n%s"
                   % (START_TIMEOUT, self.log()[-4000:]))

    def _answers_options(self, timeout):
        c = it.UdpClient(self.udp_addr)
        try:
            r = c.exchange(it.build_request("OPTIONS", self.uri, "UDP", c.local), timeout=timeout)
            return r is not None and r.code == 200
        except (Fail, OSError):
            return False
        finally:
            c.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT)
                self.exit_code = -9
                raise Fail("kamailio did not exit within %.0fs of SIGTERM" % STOP_TIMEOUT)
        finally:
            self._log.close()
            if self._rpc_dir:
                shutil.rmtree(self._rpc_dir, ignore_errors=True)
        return self.exit_code

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop()
        except Fail:
            if exc_type is None:
                raise
        return False

    # -- what the PBX knows ---------------------------------------------------------------------

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def received(self, method=None, user=None):
        """The requests that reached the PBX, in order: dicts with method, ruri, proto, source
        (ip, port), call_id, path ("" when the request had no Path); only `method` / those whose
        Request-URI user is `user` when given."""
        out = []
        for m in RECV_LINE.finditer(self.log()):
            path = m.group(7).strip()
            r = {"method": m.group(1), "ruri": m.group(2), "proto": m.group(3),
                 "source": (m.group(4), int(m.group(5))), "call_id": m.group(6),
                 "path": "" if path == "<null>" else path}
            if method is not None and r["method"] != method:
                continue
            if user is not None and not re.match(r"sips?:%s@" % re.escape(user), r["ruri"]):
                continue
            out.append(r)
        return out

    def rpc(self, method, *params):
        """One JSON-RPC call over the unix datagram socket; returns its "result" (None when the
        answer is an error, e.g. "AOR not found")."""
        reply_dir = tempfile.mkdtemp(prefix="kamrpc-")
        reply_path = os.path.join(reply_dir, "r.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.bind(reply_path)
            s.settimeout(RPC_TIMEOUT)
            request = {"jsonrpc": "2.0", "method": method, "params": list(params),
                       "id": uuid.uuid4().hex[:8]}
            s.sendto(json.dumps(request).encode(), self.rpc_path)
            try:
                data = s.recv(1 << 20)
            except socket.timeout:
                raise Fail("kamailio: no answer to JSON-RPC %s within %.0fs" % (method,
                                                                                 RPC_TIMEOUT))
        finally:
            s.close()
            shutil.rmtree(reply_dir, ignore_errors=True)
        answer = json.loads(data.decode("utf-8", "replace"))
        return answer.get("result")

    def bindings(self, aor):
        """The contacts the location service holds for `aor` (a user name, or user@domain):
        dicts with the keys of ul.lookup in lower case, "-" as "_" ("address", also as
        "contact"; "expires", "path", "call_id", "cseq", "received", "user_agent", "socket",
        "instance", "reg_id", ...; None for "[not set]"); [] when none."""
        result = self.rpc("ul.lookup", "location", aor)
        if not result:
            return []
        contacts = result.get("Contacts") or result.get("Info", {}).get("Contacts") or []
        out = []
        for entry in contacts:
            c = {k.lower().replace("-", "_"): (None if v == "[not set]" else v)
                 for k, v in entry.get("Contact", entry).items()}
            c["contact"] = c.get("address")
            out.append(c)
        return out

    def wait_bindings(self, aor, count, timeout=10.0):
        """Polls bindings(aor) (bounded by `timeout`) until it holds `count` contacts; returns
        them. For a REGISTER someone else sends upstream (sipwake) at a time of its choosing."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.bindings(aor)
            if len(found) == count:
                return found
            if time.monotonic() >= deadline:
                raise Fail("kamailio: %d binding(s) for %s after %.0fs, expected %d: %r"
                           % (len(found), aor, timeout, count, found))
            time.sleep(0.05)  # polling, bounded by the deadline
