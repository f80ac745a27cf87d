"""Load benchmark: does /health stay fast while many clients make heavy reads?

A real `rmgr serve` (waitress) on a demo-sized database (`rmgr demo --no-serve`, generator size S),
then in the same run:

1. idle: /health probed every --probe-interval seconds for --idle-seconds, nothing else running
   (the baseline);
2. load: --clients concurrent clients (threads of a separate process, so their work does not slow
   the prober) each looping over the heavy reads `/resources?kind=number&state=free&limit=1000`
   and `/history?limit=1000` for --load-seconds, while /health is probed the same way.

Every probe opens a new connection, as a load balancer does. It prints /health latency p50/p99 idle
and under load and their ratio, and for the heavy reads the answers by status, their latency and
the rows served per second. Clients do not wait for Retry-After (the worst case; --polite: they
wait the 1 s it asks); --keep-alive
makes each client keep its connection (a pooled integration) instead of one per request.

    .venv/bin/python scripts/bench_load.py --clients 200 --load-seconds 20
    .venv/bin/python scripts/bench_load.py --database-url postgresql://postgres@127.0.0.1/rmgr_bench

Measured 2026-12-01 on the shared 2-core development machine (load average 9 to 13 from other
work: figures are noisy), SQLite, 200 clients, a connection per request, 8 server threads, 20 s:

    bound (RMGR_LIST_READ_CONCURRENCY)   /health idle p50/p99   under load p50/p99    ratio p50/p99
    0 (none), clients not waiting        5.8 / 206 ms           40,649 ms (1 probe)    7046 / 198
    2 (default), clients not waiting     5.8 / 298 ms           746 / 1,257 ms         128 / 4.2
    2 (default), --polite                6.0 / 295 ms           123 / 1,133 ms         20 / 3.8
    2 (default), --keep-alive,
      waitress connection_limit 100      5.5 / 226 ms           18,782 ms (1 probe)    3427 / 83
      http_connection_limit 500          4.9 / 107 ms           772 / 2,357 ms         158 / 22

Without the bound every heavy read was answered, its median after 30.4 s; with it the reads past
the bound are refused at once (median answer 0.7 s, 0.3 s polite) and /health is answered within
about a second. What is left is the queue of refusals in front of the server's threads: a client
that does not wait after a 503 keeps one request in it. With keep-alive clients past waitress's
default of 100 connections, /health was not even accepted until the load ended: hence the
setting http_connection_limit that `rmgr serve` passes to waitress.

Settings for the server can be passed as RMGR_* variables (e.g. RMGR_HEAVY_READ_CONCURRENCY=0 to
measure without the limit). A SQLite database is a fresh file in a temporary directory; a
PostgreSQL database must exist and be empty or already hold the demo.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from benchlib import free_port, quantile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("/api/v1/resources?kind=number&state=free&limit=1000", "/api/v1/history?limit=1000")


def get(port: int, path: str, token: str | None, conn: http.client.HTTPConnection | None = None,
        timeout: float = 120) -> tuple[int, int, float]:
    """(status, body bytes, seconds). A new connection unless `conn` is given."""
    started = time.perf_counter()
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        body = response.read()
        return response.status, len(body), time.perf_counter() - started
    finally:
        if own:
            conn.close()


def probe(port: int, seconds: float, interval: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            status, _, took = get(port, "/api/v1/health", None)
            if status != 200:
                print(f"  health answered {status}", flush=True)
        except OSError as exc:
            print(f"  health failed: {exc}", flush=True)
            took = float("inf")
        latencies.append(took)
        time.sleep(max(0.0, interval - took) if took != float("inf") else interval)
    return latencies


def load_process(port: int, token: str, clients: int, seconds: float, keep_alive: bool, polite: bool,
                 out: "multiprocessing.Queue") -> None:
    results: list[tuple[int, int, float]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    start = threading.Barrier(clients)

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300) if keep_alive else None
        mine: list[tuple[int, int, float]] = []
        start.wait()
        n = i
        while time.monotonic() < stop:
            try:
                mine.append(get(port, HEAVY[n % len(HEAVY)], token, conn, timeout=300))
                if polite and mine[-1][0] in (429, 503):
                    time.sleep(1.0)  # what Retry-After asks (the server says 1 s by default)
            except (OSError, http.client.HTTPException):
                mine.append((0, 0, 0.0))
                if conn is not None:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            n += 1
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(results)


def prepare(url: str, env: dict[str, str]) -> str:
    """Load the demo (if the database is empty) and return an admin token."""
    done = subprocess.run([sys.executable, "-m", "interfaces.cli.main", "demo", "--no-serve"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.exit(f"rmgr demo failed:\n{done.stdout}\n{done.stderr}")
    match = re.search(r"^Token:\s+(\S+)", done.stdout, re.M)
    if not match:
        sys.exit(f"no token in the demo's output:\n{done.stdout}")
    return match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8, help="rmgr serve --threads")
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--load-seconds", type=float, default=20)
    parser.add_argument("--probe-interval", type=float, default=0.1)
    parser.add_argument("--keep-alive", action="store_true")
    parser.add_argument("--polite", action="store_true", help="clients wait 1 s after a 503 or 429 (Retry-After)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="rmgr-bench-load-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.sqlite'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMGR_TEST")}
    env.setdefault("RMGR_RATELIMIT_DEFAULT", "10000000/minute")  # one principal: measure load, not the limiter
    env.update(RMGR_DATABASE_URL=url, RMGR_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    print(f"database {url.split('@')[-1]}; loading the demo ...", flush=True)
    started = time.perf_counter()
    token = prepare(url, env)
    print(f"  ready in {time.perf_counter() - started:.0f} s", flush=True)
    settings = {k: v for k, v in env.items() if k.startswith("RMGR_") and k != "RMGR_DATABASE_URL"}
    print(f"server settings: {settings}", flush=True)

    port = free_port()
    log = open(Path(tmp.name) / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port),
                               "--threads", str(args.threads)], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/api/v1/health", None, timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("the server did not start:\n" + (Path(tmp.name) / "serve.log").read_text())
            time.sleep(0.2)
        for path in HEAVY:  # warm up, and say what a heavy read is
            status, size, took = get(port, path, token)
            print(f"  {path}: {status}, {size / 1024:.0f} KiB, {took * 1000:.0f} ms alone", flush=True)

        idle = probe(port, args.idle_seconds, args.probe_interval)
        queue: multiprocessing.Queue = multiprocessing.Queue()
        loader = multiprocessing.Process(target=load_process, args=(port, token, args.clients, args.load_seconds,
                                                                    args.keep_alive, args.polite, queue))
        loader.start()
        time.sleep(min(2.0, args.load_seconds / 5))  # let the clients start
        loaded = probe(port, args.load_seconds - min(2.0, args.load_seconds / 5), args.probe_interval)
        results = queue.get(timeout=args.load_seconds + 600)
        loader.join()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()

    statuses = Counter(status for status, _, _ in results)
    ok = [took for status, _, took in results if status == 200]
    everything = [took for status, _, took in results if status]
    rows = sum(size for status, size, _ in results if status == 200)
    print(f"\nclients {args.clients} ({'keep-alive' if args.keep_alive else 'a connection per request'}, "
          f"{'waiting 1 s after a 503' if args.polite else 'not waiting after a 503'}), "
          f"server threads {args.threads}, load {args.load_seconds:.0f} s")
    print(f"/health idle:       p50 {quantile(idle, 0.5) * 1000:8.1f} ms   p99 {quantile(idle, 0.99) * 1000:8.1f} ms   "
          f"({len(idle)} probes)")
    print(f"/health under load: p50 {quantile(loaded, 0.5) * 1000:8.1f} ms   p99 {quantile(loaded, 0.99) * 1000:8.1f} ms   "
          f"max {max(loaded) * 1000:.1f} ms ({len(loaded)} probes)")
    print(f"ratio load/idle:    p50 {quantile(loaded, 0.5) / quantile(idle, 0.5):8.1f}      "
          f"p99 {quantile(loaded, 0.99) / quantile(idle, 0.99):8.1f}")
    print(f"heavy reads: {sum(statuses.values())} answers {dict(sorted(statuses.items()))}; "
          f"200s p50 {quantile(ok, 0.5) * 1000:.0f} ms p99 {quantile(ok, 0.99) * 1000:.0f} ms; "
          f"all answers p50 {quantile(everything, 0.5) * 1000:.0f} ms; "
          f"{len(ok) / args.load_seconds:.1f} full pages/s ({rows / args.load_seconds / 1e6:.1f} MB/s)")
    print(json.dumps({"health_idle_p50_ms": quantile(idle, 0.5) * 1000, "health_idle_p99_ms": quantile(idle, 0.99) * 1000,
                      "health_load_p50_ms": quantile(loaded, 0.5) * 1000, "health_load_p99_ms": quantile(loaded, 0.99) * 1000,
                      "heavy_statuses": dict(statuses), "heavy_ok_p50_ms": quantile(ok, 0.5) * 1000,
                      "median_answer_ms": statistics.median(everything) * 1000 if everything else None}))


if __name__ == "__main__":
    main()
