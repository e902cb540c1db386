#!/usr/bin/env python3
"""Resource exhaustion attacks on the real `sipwake` binary, on loopback (docs/security.md):
file descriptors exhausted, slowloris, half-open TLS handshakes and the memory they hold.
Same command line as sipwake_it.py, whose harness it uses:

    security_resources_it.py --sipwake build/sipwake --work-dir /tmp/it fd_exhaustion

Every attack is bounded in connections and time; measurements come from /proc/PID.
"""

import os
import re
import resource
import select
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sipwake_it import (Fail, StreamClient, build_request, check, expect_options_200,  # noqa: E402
                        insecure_tls_context, run_module_tests, start_server)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of every thread of pid so far (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def nofile_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        m = re.search(r"Max open files\s+(\d+)\s+(\d+)", f.read())
    return int(m.group(1)), int(m.group(2))


def wait_for(what, predicate, timeout):
    """Polls predicate() until true; Fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise Fail("%s: not within %.0f s" % (what, timeout))
        time.sleep(0.05)  # polling an observable, bounded by the deadline


def write_config(ctx, name, text):
    path = os.path.join(ctx.work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def limit_nofile(soft, hard):
    """preexec_fn for sipwake: its open-file limit, as `ulimit -Sn soft -Hn hard` would set."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect_many(port, n, source="127.0.0.1"):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))  # completed by the kernel even when nobody accepts
        socks.append(s)
    return socks


def closed_by_peer(sock, timeout):
    """True if the peer closed (EOF or reset) within timeout seconds."""
    p = select.poll()
    p.register(sock, select.POLLIN)
    if not p.poll(timeout * 1000):
        return False
    try:
        return sock.recv(4096) == b""
    except (ConnectionError, ssl.SSLError):
        return True
    except (BlockingIOError, ssl.SSLWantReadError):
        return False


def wait_closed(socks, want, timeout):
    """Indices of the sockets the peer closed, waiting (bounded) until `want` of them are."""
    closed = set()
    deadline = time.monotonic() + timeout
    while len(closed) < want and time.monotonic() < deadline:
        p = select.poll()
        for i, s in enumerate(socks):
            if i not in closed:
                p.register(s, select.POLLIN)
        for fd, _ in p.poll(200):
            i = next(i for i, s in enumerate(socks) if s.fileno() == fd)
            if closed_by_peer(socks[i], 0):
                closed.add(i)
    return closed


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def tcp_options_200(port, what, source="127.0.0.1", tls=False, timeout=10.0):
    """A fresh TCP (or TLS) connection gets 200 to OPTIONS; retried until timeout seconds (a
    server backing off from accept(2) errors takes up to a second to accept again)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            c = StreamClient(("127.0.0.1", port), insecure_tls_context() if tls else None,
                             source=source)
        except (OSError, ssl.SSLError) as e:
            last = e
            time.sleep(0.2)  # retry pacing within the deadline
            continue
        try:
            r = c.exchange(build_request("OPTIONS", "sip:127.0.0.1:%d;transport=%s"
                                         % (port, "tls" if tls else "tcp"),
                                         "TLS" if tls else "TCP", c.local), timeout=2)
            if r is not None:
                expect_options_200(r, what)
                return
            last = "no response"
        except OSError as e:
            last = e
        finally:
            c.close()
    raise Fail("%s: no 200 to OPTIONS within %.0f s (last: %s)" % (what, timeout, last))


# ---------------------------------------------------------------------------------------------
# File descriptors


def test_fd_exhaustion(ctx):
    """Hard open-file limit 200, [limits] max_connections 1000 (so accept(2) fails with EMFILE
    before the cap), 300 connections: accept backs off instead of spinning (CPU stays low), the
    failure is logged once per interval, and service comes back once the connections close."""
    config = write_config(ctx, "fd.toml", "[server]\nworkers = 2\n\n[limits]\nmax_connections "
                          "= 1000\nmax_connections_per_ip = 1000\n")
    server, (_, tcp, _) = start_server(ctx, ["--config", config],
                                       preexec_fn=limit_nofile(200, 200))
    with server:
        pid = server.proc.pid
        log = server.log()
        check("max_connections = 1000 but the open-file limit is 200" in log,
              "no warning that max_connections exceeds the open-file limit:\n" + log)
        socks = connect_many(tcp, 300)
        try:
            wait_for("'accept failed' logged", lambda: "accept failed" in server.log(), 10)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            # Waiting is the measurement: how much CPU does the server burn meanwhile?
            time.sleep(4.0)
            cpu = cpu_seconds(pid) - cpu0
            elapsed = time.monotonic() - t0
            ctx.note("CPU while out of descriptors: %.2f s in %.1f s" % (cpu, elapsed))
            # Spinning on accept(2) burnt ~0.8 CPU-s per second (6.6 s in 8 s).
            check(cpu < 0.5, "sipwake used %.2f CPU-s in %.1f s with accept(2) failing: it spins"
                  % (cpu, elapsed))
            failed = server.log().count("accept failed")
            check("Too many open files" in server.log(), "the log does not name EMFILE")
            # Logged once per 10 s per process (one line may come from each of two listeners'
            # first failures at the edge of an interval).
            check(1 <= failed <= 2, "'accept failed' logged %d times in %.0f s" % (failed, elapsed))
            check(server.alive(), "sipwake died")
        finally:
            close_all(socks)
        tcp_options_200(tcp, "TCP after the descriptors came back", timeout=15)


def test_fd_limit_sizes_connections(ctx):
    """With the default max_connections = 0 the soft open-file limit is raised to the hard one and
    the connection cap sized from it: connections beyond the cap are closed at once, accept(2)
    never fails, and the cap is logged."""
    server, (_, tcp, _) = start_server(ctx, preexec_fn=limit_nofile(100, 300))
    with server:
        pid = server.proc.pid
        soft, hard = nofile_limits(pid)
        check(soft == 300 and hard == 300, "open-file limit %d/%d, expected the soft limit raised "
              "to the hard one (300/300)" % (soft, hard))
        check("open-file limit 300: at most 172 TCP/TLS connections" in server.log(),
              "no 'open-file limit' line sizing the cap from the limit:\n" + server.log())
        socks = connect_many(tcp, 400)
        try:
            # The first 172 accepted are held; the rest are closed at once.
            closed = wait_closed(socks, 400 - 172, 15)
            check(len(closed) == 400 - 172, "%d of the %d connections beyond the cap were closed"
                  % (len(closed), 400 - 172))
            held = [s for i, s in enumerate(socks) if i not in closed]
            check(not wait_closed(held, 1, 0.5), "a connection within the cap was closed")
            check("accept failed" not in server.log(), "accept(2) failed although the cap is "
                  "below the open-file limit:\n" + server.log()[-2000:])
            check(open_fds(pid) < 300, "sipwake holds %d descriptors" % open_fds(pid))
        finally:
            close_all(socks)
        tcp_options_200(tcp, "TCP after the connections closed")


# ---------------------------------------------------------------------------------------------
# Slowloris


def test_slowloris(ctx):
    """[limits] message_timeout = 2: a message trickling in one byte per 0.3 s is cut off about
    2 s after its first byte although bytes keep coming and connection_idle_timeout is 60 s; a
    connection sending only CRLF keep-alives at the same pace stays."""
    config = write_config(ctx, "slow.toml", "[limits]\nmessage_timeout = 2\n"
                          "connection_idle_timeout = 60\n")
    server, (_, tcp, _) = start_server(ctx, ["--config", config])
    with server:
        slow = socket.create_connection(("127.0.0.1", tcp), timeout=5)
        pinger = StreamClient(("127.0.0.1", tcp))
        try:
            message = build_request("OPTIONS", "sip:127.0.0.1:%d" % tcp, "TCP",
                                    slow.getsockname()[:2])
            start = time.monotonic()
            closed_after = None
            for i in range(len(message)):
                if time.monotonic() - start > 8:
                    break
                try:
                    slow.sendall(message[i:i + 1])
                    pinger.send(b"\r\n\r\n")
                except OSError:
                    closed_after = time.monotonic() - start
                    break
                if closed_by_peer(slow, 0.3):  # also the pace of the trickle
                    closed_after = time.monotonic() - start
                    break
            ctx.note("slow connection closed after %s s" % closed_after)
            check(closed_after is not None, "a message trickling in for 8 s was not cut off "
                  "(message_timeout = 2)")
            check(1.5 <= closed_after <= 4.5, "cut off after %.1f s, expected ~2 s"
                  % closed_after)
            # The keep-alive connection is still there and serves a request.
            r = pinger.exchange(build_request("OPTIONS", "sip:127.0.0.1:%d" % tcp, "TCP",
                                              pinger.local))
            expect_options_200(r, "TCP after %.0f s of CRLF keep-alives" % closed_after)
        finally:
            slow.close()
            pinger.close()


# ---------------------------------------------------------------------------------------------
# TLS handshakes


def tls_args(ctx, limits):
    return ["--config", write_config(ctx, "tls.toml", "[server]\nworkers = 2\n\n[limits]\n"
                                     + limits)]


def test_tls_half_open_per_ip(ctx):
    """max_tls_handshakes_per_ip = 4: ten raw TCP connections to the TLS port that never
    handshake: the six beyond the cap are closed at once, the four stay pending; a TLS client from
    another address (127.0.0.2) is served meanwhile."""
    server, (_, _, tls) = start_server(ctx, tls_args(ctx, "max_tls_handshakes_per_ip = 4\n"))
    with server:
        socks = connect_many(tls, 10)
        try:
            # The excess is closed as soon as it is accepted: well within a few seconds.
            closed = wait_closed(socks, 6, 5)
            check(len(closed) == 6, "%d of 10 half-open TLS connections closed at once, "
                  "expected the 6 beyond max_tls_handshakes_per_ip = 4" % len(closed))
            tcp_options_200(tls, "TLS from 127.0.0.2 while 127.0.0.1 holds 4 handshakes",
                            source="127.0.0.2", tls=True)
            pending = [s for i, s in enumerate(socks) if i not in closed]
            check(not wait_closed(pending, 1, 0.5), "a pending handshake within the cap was "
                  "closed early")
        finally:
            close_all(socks)
        tcp_options_200(tls, "TLS from 127.0.0.1 once its handshakes are gone", tls=True)


def half_open_handshakes(port, n):
    """n TLS connections that send their ClientHello and never finish the handshake; returns
    them once the server has answered each (its handshake state is allocated)."""
    ctx = insecure_tls_context()
    conns = []
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        raw.setblocking(False)
        t = ctx.wrap_socket(raw, do_handshake_on_connect=False)
        try:
            t.do_handshake()
        except ssl.SSLWantReadError:
            pass
        conns.append(t)
    waiting = {c.fileno(): c for c in conns}
    deadline = time.monotonic() + 30
    while waiting and time.monotonic() < deadline:
        p = select.poll()
        for fd in waiting:
            p.register(fd, select.POLLIN)
        for fd, _ in p.poll(1000):
            waiting.pop(fd, None)
    check(not waiting, "%d of %d handshakes got no server answer in 30 s" % (len(waiting), n))
    return conns


def test_tls_handshake_memory_returned(ctx):
    """Rounds of 600 half-open TLS handshakes (ClientHello sent, never finished), then closed:
    the memory they held goes back once they are closed, and does not pile up round after
    round."""
    per_round, rounds = 600, 4
    server, (_, _, tls) = start_server(ctx, tls_args(
        ctx, "max_tls_handshakes = 0\nmax_tls_handshakes_per_ip = 0\n"
        "max_connections_per_ip = 2000\n"))
    with server:
        pid = server.proc.pid
        tcp_options_200(tls, "TLS before the burst", tls=True)  # TLS contexts warmed up
        fds0 = open_fds(pid)
        base = rss_kb(pid)
        peaks, afters = [], []
        for k in range(rounds):
            conns = half_open_handshakes(tls, per_round)
            peaks.append(rss_kb(pid))
            held = peaks[-1] - base
            check(held > 10 * 1024, "round %d: %d half-open handshakes held only %d kB: the test "
                  "did not load sipwake" % (k, per_round, held))
            close_all(conns)
            wait_for("round %d: sipwake closed the %d connections" % (k, per_round),
                     lambda: open_fds(pid) <= fds0 + 2, 20)
            # Returned: at most a quarter of what the burst held stays resident (the heap is
            # trimmed a second after a burst of closes).
            try:
                wait_for("round %d: memory returned" % k, lambda: rss_kb(pid) - base < held / 4,
                         10)
            except Fail:
                raise Fail("round %d: RSS %d kB -> %d kB with %d half-open handshakes -> still "
                           "%d kB 10 s after they closed: memory not returned"
                           % (k, base, peaks[-1], per_round, rss_kb(pid)))
            afters.append(rss_kb(pid))
            ctx.note("round %d: RSS %d kB -> peak %d kB -> after close %d kB"
                     % (k, base, peaks[-1], afters[-1]))
        # Nothing piles up round after round.
        check(max(afters) - base < min(peaks[k] - base for k in range(rounds)) / 4,
              "RSS after the rounds: %s kB (start %d kB)" % (afters, base))
        tcp_options_200(tls, "TLS after the bursts", tls=True)


if __name__ == "__main__":
    sys.exit(run_module_tests(globals()))
