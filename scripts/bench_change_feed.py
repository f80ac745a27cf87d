#!/usr/bin/env python
"""What the change feed costs a writer: small transactions that each write history, with the
positions stamped at commit (resource_mgr.changes.feed) and, as the baseline in the same run,
with the stamping hook removed (rows left without a position; what the code did before).

    scripts/bench_change_feed.py [--processes 1 8] [--transactions 400] [--rows 1]

On PostgreSQL (a scratch database on RMGR_ADMIN_DATABASE_URL, default
postgresql://postgres@127.0.0.1/postgres, dropped afterwards) or, with --sqlite, a scratch file.
Each round runs the baseline and the stamped variant in turn; it prints transactions per second
for both and their ratio (stamped / baseline), per number of writer processes.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from resource_mgr import migrate  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1/postgres"


def _writer(url: str, stamped: bool, transactions: int, rows: int, start: "multiprocessing.Event",
            out: "multiprocessing.Queue") -> None:
    from resource_mgr.changes import feed
    from resource_mgr.db import Database
    from resource_mgr.security import audit

    db = Database(url)
    if not stamped:
        event.remove(db.session_factory, "before_commit", feed._before_commit)
    with db.unit_of_work(principal="bench") as uow:  # connect before the clock starts
        uow.session.execute(text("SELECT 1"))
    start.wait()
    began = time.perf_counter()
    for t in range(transactions):
        with db.unit_of_work(principal="bench") as uow:
            for r in range(rows):
                audit.record(uow.session, None, resource_id=f"t{t}r{r}", resource_kind="bench", action="bench",
                             local_network_id=None, before=None, after={"t": t})
            uow.commit()
    out.put(time.perf_counter() - began)
    db.dispose()


def _run(url: str, processes: int, stamped: bool, transactions: int, rows: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, stamped, transactions, rows, start, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let every writer import and connect
    began = time.perf_counter()
    start.set()
    for _ in procs:
        out.get()
    elapsed = time.perf_counter() - began
    for p in procs:
        p.join()
    return processes * transactions / elapsed


def _clean(url: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM history"))
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--transactions", type=int, default=400, help="per process and run")
    parser.add_argument("--rows", type=int, default=1, help="history rows per transaction")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args(argv)

    admin = None
    if args.sqlite:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='feed_bench_')}/bench.sqlite"
    else:
        admin_url = migrate.normalise_url(os.environ.get("RMGR_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL))
        name = f"feed_bench_{secrets.token_hex(4)}"
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        engine.dispose()
    try:
        migrate.upgrade(url)
        print(f"{'sqlite' if args.sqlite else 'postgresql'}: {args.transactions} transactions per process, "
              f"{args.rows} history row(s) each, {args.rounds} rounds (median)")
        print(f"{'processes':>9} {'baseline tx/s':>14} {'stamped tx/s':>13} {'ratio':>6}")
        for processes in args.processes:
            base, stamped = [], []
            for _ in range(args.rounds):
                _clean(url)
                base.append(_run(url, processes, False, args.transactions, args.rows))
                _clean(url)
                stamped.append(_run(url, processes, True, args.transactions, args.rows))
            b, s = statistics.median(base), statistics.median(stamped)
            print(f"{processes:>9} {b:>14.0f} {s:>13.0f} {s / b:>6.2f}")
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
