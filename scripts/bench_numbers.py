"""Number search benchmark: pattern, tail, contains and grade searches on a pool of millions.

Loads (once; a database that already holds the bench pool is reused) a local network BN with
--numbers numbers (8 digits from 2000 0000 up, 10,000 per exchange block, graded as the importer
grades) and a second local network OT with the same first 100,000 numbers, written directly in
bulk (COPY on PostgreSQL, executemany on SQLite). States as in a working city: 30 % occupied,
2 % pre-occupied by live orders, 1 % pre-occupied but expired (free again), 3 % in quarantine
(a third of them over), AAAA-and-better reserved, 0.1 % faulty. The default, 2,000,000 numbers,
is size L's pool (resource_mgr.bulk.generator: 100 exchanges, each a PSTN block and an NGN block of
10,000), loaded without the rest of size L's city (a search reads the number table alone).

Then, in the same run, each search --runs times (after --warmup runs), one at a time:
1. through the domain function (resource_mgr.numbers.search.search_page as GET /numbers calls it, a new read
   session each, total counted), with the baseline: one number found by its digits
   (find_number, a unique-index lookup);
2. over HTTP against `rmgr serve` (GET /api/v1/numbers, one keep-alive connection), with the
   baseline GET /api/v1/resources/{id} of one number (a primary-key read through the same app).
It prints p50 / p99 in ms, the rows and total of each search, and p99 as a ratio of the baseline's.

    .venv/bin/python scripts/bench_numbers.py                                   # fresh SQLite file
    .venv/bin/python scripts/bench_numbers.py --database-url postgresql://postgres@127.0.0.1/rmgr_bench_numbers
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from resource_mgr import migrate  # noqa: E402
from resource_mgr.bulk.importing.numbers import FastGrader  # noqa: E402
from resource_mgr.clock import utcnow  # noqa: E402
from resource_mgr.customers.models import Service  # noqa: E402
from resource_mgr.db import Database  # noqa: E402
from resource_mgr.ids import new_id  # noqa: E402
from resource_mgr.inventory import services as inv  # noqa: E402
from resource_mgr.inventory.models import LocalNetwork  # noqa: E402
from resource_mgr.numbers.models import EPOCH, Number, NumberSegment  # noqa: E402
from resource_mgr.numbers.patterns import shape  # noqa: E402
from resource_mgr.config import Settings  # noqa: E402
from resource_mgr.numbers.search import find_number, search_page  # noqa: E402
from resource_mgr.numbers.services import create_pool  # noqa: E402
from resource_mgr.security import services as security  # noqa: E402
from resource_mgr.states import Role  # noqa: E402

from benchlib import free_port, quantile  # noqa: E402

UNIT_COLS = ("id", "kind", "name", "seq", "local_network_id", "owner_id", "root_id", "side", "technology",
             "occupancy", "reservation_id", "preoccupied_until", "service_id", "capacity", "used", "admin_state",
             "locked_by", "admin_reason", "quarantine_until", "version")
NUMBER_COLS = ("id", "local_network_id", "number", "pool_id", "segment_id", "exchange_code", "tail4", "grade",
               "grade_level", "rnumber", "rshape", "choosable_from")
SEARCHES: list[tuple[str, dict[str, Any]]] = [
    ("pattern *AABB", {"pattern": "*AABB"}),
    ("pattern *8888", {"pattern": "*8888"}),
    ("pattern *ABAB", {"pattern": "*ABAB"}),
    ("pattern *ABBA", {"pattern": "*ABBA"}),
    ("pattern *AAAA", {"pattern": "*AAAA"}),
    ("pattern *88AB", {"pattern": "*88AB"}),
    ("pattern *ABCD (broad)", {"pattern": "*ABCD"}),
    ("pattern 2012AABB", {"pattern": "2012AABB"}),
    ("tail 168", {"tail": "168"}),
    ("tail 5201", {"tail": "5201"}),
    ("contains 5201", {"contains": "5201"}),
    ("contains 88 (broad)", {"contains": "88"}),
    ("grade AABB", {"grade": "AABB"}),
    ("grade golden (broad)", {"grade": "golden"}),
    ("exchange 2012 + *ABAB", {"exchange": "2012", "pattern": "*ABAB"}),
    ("no filter (first page)", {}),
]


# -- loading ---------------------------------------------------------------------------------------

def _copy(raw: Any, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
    def cell(v: Any) -> str:
        return "\\N" if v is None else str(v)
    data = "".join("\t".join(cell(v) for v in row) + "\n" for row in rows)
    with raw.cursor() as cur, cur.copy(f'COPY "{table}" ({", ".join(cols)}) FROM STDIN') as copy:
        copy.write(data)


def _drop_indexes(db: Database) -> list[str]:
    """Drop the plain indexes of unit and number (not the keys and unique constraints); returns
    the statements that make them again."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            rows = conn.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename IN "
                "('unit', 'number') AND indexname NOT IN (SELECT conname FROM pg_constraint)")).all()
        else:
            rows = conn.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('unit', 'number') "
                "AND sql IS NOT NULL AND name NOT LIKE 'uq_%'")).all()
        for name, _ in rows:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    return [sql for _, sql in rows]


def load(db: Database, count: int, code: str, seed: int) -> str:
    """The local network `code` with `count` numbers in one pool; returns its id."""
    now = utcnow()
    rng = random.Random(f"{seed}:{code}")
    grader = FastGrader()
    with db.unit_of_work() as uow:
        s = uow.session
        ln = inv.create_local_network(s, code=code, name=f"bench {code}", area_code="20" if code == "BN" else "21")
        pool = create_pool(s, local_network_id=ln.id, name=f"{code}-POOL")
        services = [Service(local_network_id=ln.id, product="pots", technology="POTS") for _ in range(1000)]
        s.add_all(services)
        segments = []
        for block in range((count + 9999) // 10_000):
            first = 2000_0000 + block * 10_000
            last = min(first + 9999, 2000_0000 + count - 1)
            seg = inv.add_resource(s, NumberSegment(name=f"{first}-{last}", local_network_id=ln.id, parent_id=pool.id,
                                                    exchange_code=str(first)[:4], first=str(first), last=str(last)))
            segments.append((seg.id, first, last))
        uow.commit()
        ln_id, pool_id, service_ids = ln.id, pool.id, [x.id for x in services]

    postgres = db.dialect == "postgresql"
    iso = (lambda d: d.isoformat()) if postgres else (lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"))
    live, gone = iso(now + timedelta(days=2)), iso(now - timedelta(hours=1))
    q_on, q_off = iso(now + timedelta(days=40)), iso(now - timedelta(days=1))
    epoch = iso(EPOCH)
    # a big load builds the indexes once at the end: far faster than row by row
    indexes = _drop_indexes(db) if count >= 500_000 else []
    raw = db.engine.raw_connection()
    try:
        if not postgres:
            raw.execute("PRAGMA synchronous=OFF")
            raw.execute("PRAGMA foreign_keys=OFF")  # the rows are made consistent here
            raw.execute("PRAGMA cache_size=-400000")
        cur = None if postgres else raw.cursor()
        started = time.perf_counter()
        for seg_id, first, last in segments:
            units, nums = [], []
            for n in range(first, last + 1):
                number = str(n)
                grade, level = grader.grade(number)
                uid = new_id()
                # the unit's state, and number.choosable_from as numbers.models.choosable_from gives it
                occ, res, until, svc, admin, reason, q = "free", None, None, None, "in_service", None, None
                free: str | None = epoch
                r = rng.random()
                if level >= 6:
                    admin, reason, free = "reserved", "golden number held back", None
                elif r < 0.30:
                    occ, svc, free = "occupied", service_ids[n % len(service_ids)], None
                elif r < 0.32:
                    occ, res, until, free = "preoccupied", f"R{n % 5000}", live, live
                elif r < 0.33:
                    occ, res, until = "preoccupied", f"X{n % 5000}", gone
                elif r < 0.36:
                    q = free = q_on if r < 0.35 else q_off
                elif r < 0.361:
                    admin, reason, free = "faulty", "line fault", None
                units.append((uid, "number", number, n, ln_id, seg_id, pool_id, "", "", occ, res, until, svc, 1, 0,
                              admin, None, reason, q, 1))
                rnumber = number[::-1]
                nums.append((uid, ln_id, number, pool_id, seg_id, number[:4], number[-4:], grade, level, rnumber,
                             shape(rnumber), free))
            if postgres:
                _copy(raw, "unit", UNIT_COLS, units)
                _copy(raw, "number", NUMBER_COLS, nums)
            else:
                marks = lambda cols: ", ".join("?" * len(cols))  # noqa: E731
                cur.executemany(f'INSERT INTO unit ({", ".join(UNIT_COLS)}) VALUES ({marks(UNIT_COLS)})', units)
                cur.executemany(f'INSERT INTO "number" ({", ".join(NUMBER_COLS)}) VALUES ({marks(NUMBER_COLS)})', nums)
        raw.commit()
        print(f"  {code}: {count:,} numbers written in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        raw.close()
    if indexes:
        started = time.perf_counter()
        with db.engine.begin() as conn:
            for sql in indexes:
                conn.exec_driver_sql(sql)
        print(f"  indexes of unit and number rebuilt in {time.perf_counter() - started:.0f} s", flush=True)
    # as a live database is after autovacuum: statistics for the planner and, on PostgreSQL, the
    # visibility map that lets a search read its index alone
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if postgres else "ANALYZE"))
    return ln_id


def prepare(db: Database, count: int, seed: int) -> tuple[str, str]:
    migrate.upgrade(db.url)
    with db.read_session() as s:
        ln_id = s.scalar(select(LocalNetwork.id).where(LocalNetwork.code == "BN"))
        have = s.scalar(select(func.count()).select_from(Number).where(Number.local_network_id == ln_id)) if ln_id else 0
    if ln_id and have == count:
        print(f"  reusing the pool of {have:,} numbers in BN", flush=True)
    elif ln_id:
        sys.exit(f"the database holds a BN pool of {have:,} numbers, not {count:,}: use another database")
    else:
        ln_id = load(db, count, "BN", seed)
        load(db, min(count, 100_000), "OT", seed)
    with db.unit_of_work() as uow:
        _, secret = security.create_token(uow.session, roles=[Role.SALES.value], local_networks=["BN"],
                                          system="bss")
        uow.commit()
    return ln_id, secret


# -- measuring -------------------------------------------------------------------------------------

def measure(call: Callable[[], Any], runs: int, warmup: int) -> tuple[list[float], Any]:
    out = None
    for _ in range(warmup):
        out = call()
    took = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = call()
        took.append((time.perf_counter() - t0) * 1000)
    return took, out


def report(name: str, took: list[float], base_p99: float, rows: int, total: int | str) -> None:
    p50, p99 = quantile(took, 0.5), quantile(took, 0.99)
    print(f"  {name:<28} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  ×{p99 / base_p99:7.1f} baseline p99"
          f"   rows {rows:>4}  total {total}", flush=True)


def probe_number(count: int) -> str:
    return str(2000_0000 + count // 2 + 7)


def bench_domain(db: Database, ln_id: str, runs: int, warmup: int, count: int, before_runs: int,
                 only: list[str], count_limit: int) -> None:
    print(f"domain function (search_page as GET /numbers calls it, count bound {count_limit or 'none'}), {runs} "
          f"runs each; (before): every match counted and no tail ranges, {before_runs} runs:", flush=True)
    scope = {ln_id}

    def lookup() -> Any:
        with db.read_session() as s:
            return find_number(s, probe_number(count), local_network_ids=scope).id

    took, _ = measure(lookup, runs, warmup)
    base = quantile(took, 0.99)
    report("baseline: find_number", took, base, 1, 1)
    limit = count_limit or None
    for name, kw in SEARCHES:
        if only and not any(o in name for o in only):
            continue

        def before(kw: dict[str, Any] = kw) -> tuple[int, int]:
            with db.read_session() as s:  # every match counted, the pattern as its shape range
                page = search_page(s, local_network_ids=scope, now=utcnow(), count_limit=None, tail_ranges=False, **kw)
                return len(page.rows), page.total

        def after(kw: dict[str, Any] = kw) -> tuple[int, str]:
            with db.read_session() as s:  # as GET /numbers: counted up to the bound, tail ranges
                page = search_page(s, local_network_ids=scope, now=utcnow(), count_limit=limit, **kw)
                return len(page.rows), f"{page.total}{'+' if page.capped else ''}"
        if before_runs:
            took, (rows, total) = measure(before, before_runs, warmup)
            report(name + " (before)", took, base, rows, total)
        took, (rows, total) = measure(after, runs, warmup)
        report(name, took, base, rows, total)


def bench_http(db: Database, ln_id: str, url: str, token: str, runs: int, warmup: int, threads: int,
               count: int) -> None:
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="rmgr-bench-numbers-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMGR_TEST")}
    env.update(RMGR_DATABASE_URL=url, RMGR_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
               RMGR_RATELIMIT_DEFAULT="10000000/minute", RMGR_SWEEP_INTERVAL_SECONDS="86400")
    log = open(Path(tmp) / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port),
                               "--threads", str(threads)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}"}

    def get(path: str) -> tuple[int, bytes, dict[str, str]]:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())

    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/api/v1/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("the server did not start:\n" + (Path(tmp) / "serve.log").read_text())
            time.sleep(0.3)
        print(f"HTTP (rmgr serve --threads {threads}, GET /api/v1/numbers, one keep-alive client), {runs} runs each:",
              flush=True)
        with db.read_session() as s:
            unit_id = find_number(s, probe_number(count), local_network_ids={ln_id}).id

        def pk() -> tuple[int, int, str]:
            status, body, _ = get(f"/api/v1/resources/{unit_id}")
            assert status == 200, body[:300]
            return 1, 1, ""

        took, _ = measure(pk, runs, warmup)
        base = quantile(took, 0.99)
        report("baseline: GET /resources/{id}", took, base, 1, 1)
        from urllib.parse import urlencode
        for name, kw in SEARCHES:
            path = "/api/v1/numbers" + (f"?{urlencode(kw)}" if kw else "")

            def call(path: str = path) -> tuple[int, str]:
                status, body, hdrs = get(path)
                assert status == 200, body[:300]
                return len(json.loads(body)), hdrs.get("X-Total-Count", "?")
            took, (rows, total) = measure(call, runs, warmup)
            report(name, took, base, rows, total)
    finally:
        conn.close()
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--numbers", type=int, default=2_000_000, help="numbers in the bench pool")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="rmgr serve --threads")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-http", action="store_true", help="the domain function only")
    parser.add_argument("--only", action="append", default=[],
                        help="the domain searches whose name holds this (repeatable); default all")
    parser.add_argument("--before-runs", type=int, default=None,
                        help="runs of the former search (exact count, no tail ranges); default --runs, 0: none")
    parser.add_argument("--count-limit", type=int, default=None,
                        help="RMGR_NUMBER_SEARCH_COUNT_LIMIT for the new path (default: the setting; 0 counts all)")
    args = parser.parse_args()
    count_limit = Settings().number_search_count_limit if args.count_limit is None else args.count_limit
    tmp = tempfile.TemporaryDirectory(prefix="rmgr-bench-numbers-")
    url = args.database_url or f"sqlite:///{Path(tmp.name) / 'bench.sqlite'}"
    db = Database(migrate.normalise_url(url))
    print(f"database {url.split('@')[-1]}, {args.numbers:,} numbers", flush=True)
    ln_id, token = prepare(db, args.numbers, args.seed)
    bench_domain(db, ln_id, args.runs, args.warmup, args.numbers,
                 args.runs if args.before_runs is None else args.before_runs, args.only, count_limit)
    if not args.no_http:
        bench_http(db, ln_id, url, token, args.runs, args.warmup, args.threads, args.numbers)
    db.dispose()


if __name__ == "__main__":
    main()
