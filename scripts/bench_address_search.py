"""Address search benchmark: N synthetic standard addresses (compounds of buildings, units and
rooms on the generator's roads and names) in a fresh SQLite file and a fresh PostgreSQL database,
then typical counter queries, each run several times: median and slowest milliseconds, the total
found, and on PostgreSQL the plan of one query (to show the trigram index is used, never a scan).

    .venv/bin/python scripts/bench_address_search.py --addresses 1000000 \\
        --pg-admin-url postgresql://postgres@127.0.0.1/postgres

The schema is made by the migrations (so SQLite has its FTS5 table and triggers, PostgreSQL its
GIN trigram index); the PostgreSQL database (rmgr_bench_addr_<pid>) is dropped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = [
    "丽日花园3栋2单元301",          # compound, building, unit, bare room
    "麗日花園3棟2單元301房",         # traditional, 房
    "汾江路８８号",                  # full-width house number
    "3-2-301",                       # dashed, no text
    "佛山市禅城区汾江路88号丽日花园",   # with city and district
    "丽日花园",                      # a compound name only: many matches
    "丽日花国3栋2单元301",           # a typo: the fuzzy stage
    "火星路1号",                     # nothing
]


def addresses(n: int, seed: int):
    """(text, district, road, number, building, unit, floor, room, parent index or None)."""
    from resource_mgr.bulk.generator import COMPOUND_SUFFIXES, COMPOUND_WORDS, DISTRICTS, ROAD_SUFFIXES, ROAD_WORDS

    rng = random.Random(seed)
    out: list[tuple] = []
    # one fixed compound that the queries name, the rest random
    first = True
    while len(out) < n:
        district = DISTRICTS[0][0] if first else rng.choice(DISTRICTS)[0]
        road = "汾江路" if first else rng.choice(ROAD_WORDS) + rng.choice(ROAD_SUFFIXES)
        number = "88" if first else str(rng.randint(1, 300))
        compound = "丽日花园" if first else rng.choice(COMPOUND_WORDS) + rng.choice(COMPOUND_SUFFIXES)
        first = False
        pre = f"佛山市{district}{road}{number}号{compound}"
        for b in range(1, rng.randint(4, 12) + 1):
            bi = len(out)
            out.append((f"{pre}{b}栋", district, road, number, f"{b}栋", "", "", "", None))
            for u in range(1, rng.randint(2, 4) + 1):
                ui = len(out)
                out.append((f"{pre}{b}栋{u}单元", district, road, number, f"{b}栋", f"{u}单元", "", "", bi))
                for f in range(1, rng.randint(6, 32) + 1):
                    for r in range(1, 3):
                        room = f"{f}{r:02d}室"
                        out.append((f"{pre}{b}栋{u}单元{room}", district, road, number, f"{b}栋", f"{u}单元",
                                    str(f), room, ui))
    return out[:n]


def load(url: str, rows: list[tuple]) -> float:
    from sqlalchemy import text

    from resource_mgr import migrate
    from resource_mgr.addresses.normalise import normalise
    from resource_mgr.db import Database
    from resource_mgr.ids import new_id

    migrate.upgrade(url)
    db = Database(migrate.normalise_url(url))
    started = time.perf_counter()
    ln = new_id()
    ids = [new_id() for _ in rows]
    now = "2026-01-01T00:00:00+00:00"
    res = [(ids[i], "address", r[0], ln, ids[r[8]] if r[8] is not None else None,
            ids[r[8]] if r[8] is not None else ln, "in_service", now) for i, r in enumerate(rows)]
    adr = [(ids[i], *r[1:8], normalise(r[0])) for i, r in enumerate(rows)]
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO local_network (id, code, name, province, area_code, created_at) "
                          "VALUES (:i, 'FS', '佛山', '广东', '757', :t)"), {"i": ln, "t": now})
        raw = conn.connection.driver_connection
        cur = raw.cursor()
        if db.dialect == "postgresql":
            with cur.copy("COPY resource (id, kind, name, local_network_id, parent_id, scope_id, status, created_at) "
                          "FROM STDIN") as cp:
                for r in res:
                    cp.write_row(r)
            with cur.copy("COPY address (id, district, road, number, building, unit, floor, room, search_key) "
                          "FROM STDIN") as cp:
                for r in adr:
                    cp.write_row(r)
        else:
            cur.executemany("INSERT INTO resource (id, kind, name, local_network_id, parent_id, scope_id, status, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", res)
            cur.executemany("INSERT INTO address (id, district, road, number, building, unit, floor, room, "
                            "search_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", adr)
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE resource"))
            conn.execute(text("ANALYZE address"))
    db.dispose()
    return time.perf_counter() - started


def run(url: str, repeat: int) -> dict:
    from sqlalchemy import text

    from resource_mgr import migrate
    from resource_mgr.addresses import search_addresses
    from resource_mgr.db import Database

    db = Database(migrate.normalise_url(url))
    out = {}
    with db.read_session() as s:
        for q in QUERIES:
            times, total, top = [], 0, ""
            for _ in range(repeat):
                t = time.perf_counter()
                hits, total = search_addresses(s, q, local_network_ids=None, limit=10)
                top = hits[0].address.name if hits else ""
                times.append((time.perf_counter() - t) * 1000)
                s.rollback()  # a fresh transaction per call, as a request has
            out[q] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
                      "total": total, "first": top}
        if db.dialect == "postgresql":
            plan = s.execute(text("EXPLAIN SELECT count(*) FROM address WHERE search_key LIKE '%丽日花园%' "
                                  "AND search_key LIKE '%301室%' AND search_key LIKE '%3栋%'")).scalars().all()
            out["plan"] = plan
    db.dispose()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--addresses", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1/postgres")
    p.add_argument("--skip-sqlite", action="store_true")
    p.add_argument("--skip-postgresql", action="store_true")
    args = p.parse_args()
    rows = addresses(args.addresses, args.seed)
    report: dict = {"addresses": len(rows)}
    if not args.skip_sqlite:
        path = Path(tempfile.gettempdir()) / f"rmgr_bench_addr_{os.getpid()}.sqlite"
        path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        try:
            report["sqlite"] = {"load_s": round(load(url, rows), 1), "queries": run(url, args.repeat)}
        finally:
            path.unlink(missing_ok=True)
    if not args.skip_postgresql:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        from resource_mgr import migrate

        admin_url = make_url(migrate.normalise_url(args.pg_admin_url))
        name = f"rmgr_bench_addr_{os.getpid()}"
        admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        try:
            report["postgresql"] = {"load_s": round(load(url, rows), 1), "queries": run(url, args.repeat)}
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
