"""Import benchmark: generate a network (resource_mgr.bulk.generator), import it into a fresh
SQLite file and a fresh PostgreSQL database, and print wall time, rows/second and peak RSS of
each; then PostgreSQL's own COPY of the same number of rows (a unit-shaped table without indexes
or constraints) as the baseline, and the ratio. Both PostgreSQL measurements start after a
CHECKPOINT, so neither pays for the other's writes.

    .venv/bin/python scripts/bench_import.py --size M --seed 7 \\
        --pg-admin-url postgresql://postgres@127.0.0.1/postgres

Each import runs in its own process so its peak RSS is its own. The PostgreSQL database
(rmgr_bench_imports_<pid>) is created with PostGIS and dropped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(url: str, bundle: str, own_process: bool) -> None:
    """Child process: schema, import, report as JSON on stdout. `own_process`: as the CLI runs it
    (garbage collector off); else as a job does (collector on, objects frozen per phase)."""
    from sqlalchemy import text

    from resource_mgr.bulk.importer import import_bundle
    from resource_mgr.db import Database
    from resource_mgr.models import Base

    db = Database(url)
    if db.dialect == "postgresql":
        with db.engine.begin() as c:
            c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    Base.metadata.create_all(db.engine)
    started = time.perf_counter()
    report = import_bundle(db, bundle, own_process=own_process)
    wall = time.perf_counter() - started
    db.dispose()
    print(json.dumps({"ok": report.ok, "written": report.written, "problems": report.problem_count,
                      "first_problems": [str(p) for p in report.problems[:5]], "rows": report.rows_written,
                      "phases": {k: round(v, 1) for k, v in report.phases.items()}, "wall_s": wall, "cpu_s": _cpu(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _cpu() -> float:
    """CPU seconds of this process (all its threads): steadier than wall time on a busy machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return round(r.ru_utime + r.ru_stime, 1)


def checkpoint(url: str) -> None:
    """Start a measurement with no dirty buffers or WAL left over from the one before (the
    import writes gigabytes; a COPY right after it would share the server with that checkpoint)."""
    import psycopg

    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    except psycopg.Error as exc:  # not allowed: measure anyway
        print(f"  (no CHECKPOINT: {exc})", flush=True)


def run_child(url: str, bundle: Path, as_job: bool = False) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", url, str(bundle)] + (["--as-job"] if as_job else []),
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"import into {url} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def copy_baseline(admin_url: str, dbname: str, rows: int) -> dict:
    """PostgreSQL COPY FROM STDIN of `rows` unit-shaped rows, read from a prepared file."""
    import psycopg

    from resource_mgr.bulk.importer import IdMaker

    ids = IdMaker()
    data = Path(tempfile.mkstemp(suffix=".copy")[1])
    owner, root, ln = ids(), ids(), ids()
    with data.open("w") as fh:
        for n in range(rows):
            fh.write(f"{ids()}\tpair\t{n % 2400:04d}\t{n % 2400}\t{ln}\t{owner}\t{root}\t\tcopper\tfree\t\\N\t\\N\t\\N\t1\t0\t"
                     "in_service\t\\N\t\\N\t\\N\t1\n")  # the unit columns, version last
    url = admin_url.rsplit("/", 1)[0] + "/" + dbname
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute("CREATE TABLE bench_copy (LIKE unit INCLUDING DEFAULTS)")
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy("COPY bench_copy FROM STDIN") as cp, data.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    cp.write(chunk)
        wall = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy")
    data.unlink()
    return {"rows": rows, "wall_s": wall, "rows_per_s": rows / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="M")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--bundle", type=Path, default=None, help="an existing bundle instead of generating one")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rmgr-bench")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1/postgres",
                        help="a database to connect to for CREATE/DROP DATABASE; empty: skip PostgreSQL")
    parser.add_argument("--skip-sqlite", action="store_true", help="import into PostgreSQL only")
    parser.add_argument("--as-job", action="store_true",
                        help="import as a job does (garbage collector on), not as the CLI (off)")
    parser.add_argument("--one", nargs=2, metavar=("URL", "BUNDLE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(*args.one, own_process=not args.as_job)
        return

    args.work.mkdir(parents=True, exist_ok=True)
    bundle = args.bundle
    if bundle is None:
        from datetime import datetime, timezone

        from resource_mgr.bulk.generator import generate

        bundle = args.work / f"city-{args.size}-{args.seed}"
        if not (bundle / "manifest.json").exists():
            print(f"generating size {args.size} seed {args.seed} into {bundle} ...", flush=True)
            started = time.perf_counter()
            generate(args.size, args.seed, bundle, as_of=datetime.now(timezone.utc).replace(microsecond=0))
            print(f"  generated in {time.perf_counter() - started:.1f} s", flush=True)
    manifest = json.loads((bundle / "manifest.json").read_text())
    print(f"bundle {bundle}: {sum(manifest['files'].values()):,} rows in {len(manifest['files'])} files", flush=True)

    results: dict[str, dict] = {}
    sqlite_file = args.work / f"bench-{os.getpid()}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(sqlite_file) + suffix).unlink(missing_ok=True)
    if not args.skip_sqlite:
        print("importing into SQLite ...", flush=True)
        results["sqlite"] = run_child(f"sqlite:///{sqlite_file}", bundle, args.as_job)
        for suffix in ("", "-wal", "-shm"):
            Path(str(sqlite_file) + suffix).unlink(missing_ok=True)
        os.sync()  # the SQLite file's writeback is not the PostgreSQL measurements' to pay

    if args.pg_admin_url:
        import psycopg

        admin = args.pg_admin_url.replace("postgresql+psycopg://", "postgresql://")
        dbname = f"rmgr_bench_imports_{os.getpid()}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        try:
            print("importing into PostgreSQL ...", flush=True)
            checkpoint(admin)
            results["postgresql"] = run_child(admin.rsplit("/", 1)[0] + "/" + dbname, bundle, args.as_job)
            print("PostgreSQL COPY baseline ...", flush=True)
            checkpoint(admin)
            results["copy"] = copy_baseline(admin, dbname, results["postgresql"]["rows"])
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    print()
    print("imported as a job (garbage collector on)" if args.as_job else "imported as the CLI does (garbage collector off)")
    print(f"{'':12} {'wall s':>8} {'rows':>11} {'rows/s':>10} {'peak RSS MB':>12} {'import CPU s':>12}")
    for name in ("sqlite", "postgresql"):
        r = results.get(name)
        if r is None:
            continue
        if not r["written"]:
            print(f"{name:12} NOT WRITTEN: {r['problems']} problems, e.g. {r['first_problems']}")
            continue
        print(f"{name:12} {r['wall_s']:8.1f} {r['rows']:11,} {r['rows'] / r['wall_s']:10,.0f} {r['peak_rss_mb']:12.0f} {r['cpu_s']:12.1f}")
    if "copy" in results:
        c = results["copy"]
        print(f"{'pg COPY':12} {c['wall_s']:8.1f} {c['rows']:11,} {c['rows_per_s']:10,.0f} {'':>12}")
        pg = results["postgresql"]
        print(f"import / COPY rows-per-second ratio on PostgreSQL: {pg['rows'] / pg['wall_s'] / c['rows_per_s']:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
