#!/usr/bin/env python3
"""Memory per idle TLS connection in sipwake: N clients (default 10,000) open a TLS connection
to one sipwake on 127.0.0.1, finish the handshake, send one RFC 5626 keep-alive (CRLF CRLF) and
stay idle. The server's RSS and PSS (/proc/PID/smaps_rollup) are read before and after; the
difference divided by N is the memory per connection.

    bench/scale/tls_idle.py --sipwake build-release/sipwake [--connections 10000] [--work DIR]

Raises the fd limit (RLIMIT_NOFILE) to the hard limit for itself and sipwake; it needs
connections + ~100 descriptors in each process. Bounded: gives up after --timeout seconds."""

import argparse, asyncio, json, os, resource, signal, socket, ssl, subprocess, sys, time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mem_kb(pid):
    """(RSS, PSS) of pid in kB, from smaps_rollup."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss"):
                out[name] = int(rest.split()[0])
    return out["Rss"], out["Pss"]


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def open_all(port, n, concurrency, conns):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # sipwake's ephemeral loopback certificate
    sem = asyncio.Semaphore(concurrency)
    failures = []

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=ctx), 20)
                w.write(b"\r\n\r\n")
                await w.drain()
                conns.append((r, w))
            except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
                failures.append(repr(e))
    await asyncio.gather(*(one() for _ in range(n)))
    return failures


async def close_all(conns):
    for _, w in conns:
        w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sipwake", required=True)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--work", default="/tmp/sipwake-scale-tls")
    ap.add_argument("--timeout", type=int, default=180)
    a = ap.parse_args()
    limit = raise_nofile()
    if limit < a.connections + 200:
        sys.exit("tls_idle: fd hard limit %d is too low for %d connections (raise it: ulimit -Hn)"
                 % (limit, a.connections))
    os.makedirs(a.work, exist_ok=True)
    port = free_port()
    cfg = os.path.join(a.work, "sipwake.toml")
    with open(cfg, "w") as f:
        f.write('[server]\nworkers = %d\nlog_level = "warn"\n\n'
                '[[listen]]\ntransport = "tls"\naddress = "127.0.0.1"\nport = %d\n\n'
                '[store]\npath = "%s"\n\n'
                '[limits]\nmax_connections_per_ip = %d\nconnection_idle_timeout = 3600\n'
                # Every client is 127.0.0.1: let --concurrency handshakes run at once.
                'max_tls_handshakes_per_ip = %d\n'
                % (a.workers, port, os.path.join(a.work, "sipwake.db"), a.connections + 100,
                   a.concurrency + 10))
    for ext in ("", "-wal", "-shm"):
        try:
            os.remove(os.path.join(a.work, "sipwake.db" + ext))
        except FileNotFoundError:
            pass
    log = open(os.path.join(a.work, "sipwake.log"), "wb")
    srv = subprocess.Popen([os.path.abspath(a.sipwake), "--config", cfg], stdout=log,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=a.work,
                           start_new_session=True)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("timeout")))
    signal.alarm(a.timeout)
    conns = []
    try:
        end = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.time() > end or srv.poll() is not None:
                    sys.exit("tls_idle: sipwake did not listen (log: %s)" % log.name)
                time.sleep(0.2)
        loop = asyncio.new_event_loop()
        # Warm up (OpenSSL contexts, first allocations) with a few connections, then close them.
        warm = []
        loop.run_until_complete(open_all(port, 20, 20, warm))
        loop.run_until_complete(close_all(warm))
        time.sleep(1.5)
        rss0, pss0 = mem_kb(srv.pid)
        fds0 = open_fds(srv.pid)
        t0 = time.time()
        failures = loop.run_until_complete(open_all(port, a.connections, a.concurrency, conns))
        open_s = time.time() - t0
        time.sleep(2.0)  # the server finishes reading the keep-alives
        rss1, pss1 = mem_kb(srv.pid)
        fds1 = open_fds(srv.pid)
        held = fds1 - fds0
        n = len(conns)
        res = {"connections": n, "failed": len(failures), "server_fds_added": held,
               "open_s": round(open_s, 2),
               "rss_before_mb": rss0 / 1024, "rss_after_mb": rss1 / 1024,
               "pss_before_mb": pss0 / 1024, "pss_after_mb": pss1 / 1024,
               "rss_kb_per_conn": (rss1 - rss0) / n if n else None,
               "pss_kb_per_conn": (pss1 - pss0) / n if n else None}
        print("%d TLS connections open (%d failed) in %.1f s; sipwake holds %d more fds"
              % (n, len(failures), open_s, held))
        print("sipwake RSS %.1f -> %.1f MB, PSS %.1f -> %.1f MB: %.1f kB RSS, %.1f kB PSS per "
              "idle TLS connection" % (rss0 / 1024, rss1 / 1024, pss0 / 1024, pss1 / 1024,
                                       res["rss_kb_per_conn"] or 0, res["pss_kb_per_conn"] or 0))
        if failures:
            print("first failures: %s" % failures[:3])
        print(json.dumps(res))
        loop.run_until_complete(close_all(conns))
        return 0 if n == a.connections and held >= 0.99 * n else 1
    finally:
        signal.alarm(0)
        if srv.poll() is None:
            srv.terminate()
            try:
                srv.wait(10)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()


if __name__ == "__main__":
    sys.exit(main())
