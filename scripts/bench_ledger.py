"""Ledger benchmark on PostgreSQL: 8 processes allocate the last K places of one distribution
box (exclusive box ports) and of one shared PON port, round after round, through the
allocation path (`resource_mgr.occupancy.ledger.allocate`, one unit of work per allocation:
lock, re-check, pre-occupy, history row, commit). In the same run and rounds, interleaved, the
same processes allocate the same places with a raw baseline: one
`UPDATE … WHERE occupancy = 'free' … RETURNING` (for the PON port `… WHERE used < capacity`)
and a commit per allocation over psycopg. It prints allocations per second of both, the ratio,
and the double allocations and surfaced deadlocks (both must be 0).

What one allocation costs each side (PostgreSQL): the baseline BEGIN, the UPDATE, COMMIT; the
allocation path BEGIN, SAVEPOINT, the locking SELECT (… SKIP LOCKED; when everything left is
locked, ROLLBACK TO SAVEPOINT and a SELECT that waits), one statement that re-checks and writes
the unit, the hold and the history row, the change feed's stamp and COMMIT (one round trip). The
locking SELECT and the write are driver SQL compiled once, not per allocation. The baseline keeps no
history, holds nor feed position: the ratio is what those guarantees and the ORM cost. Both
phases count the same work: from the start barrier until every process has been refused (the
places are gone), with the database reset before each phase and the checks after it untimed.

    .venv/bin/python scripts/bench_ledger.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/rmgr_bench_ledger

The database is created when missing and its schema rebuilt (name prefix rmgr_bench_ledger,
so it is never a real one); --drop drops it at the end.
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PREFIX = "rmgr_bench_ledger"
BOX_PORTS, PON_CAPACITY = 30, 64
MODES, TARGETS = ("ledger", "raw"), ("box", "pon")


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def prepare(url: str, places: int) -> dict[str, Any]:
    """A fresh schema; one box of 30 ports and one PON port of 64 places, all but `places` of
    each occupied by services."""
    import psycopg
    from sqlalchemy import select
    from sqlalchemy.engine import make_url

    from resource_mgr import migrate
    from resource_mgr.customers.models import Service
    from resource_mgr.db import Database
    from resource_mgr.inventory import services as inv
    from resource_mgr.inventory.models import Site
    from resource_mgr.occupancy import ledger
    from resource_mgr.occupancy.models import Change, Unit

    name = make_url(url).database or ""
    if not name.startswith(PREFIX):
        raise SystemExit(f"the scratch database's name must start with {PREFIX} (got {name!r})")
    admin = make_url(_plain(url)).set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    migrate.upgrade(url)

    db = Database(url)
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        ln = inv.create_local_network(s, code="BN", name="bench", area_code="20")
        site = inv.add_resource(s, Site(name="BN-SITE", local_network_id=ln.id))
        box = inv.create_from_template(s, template=f"DIST-BOX-{BOX_PORTS}", local_network_id=ln.id, site_id=site.id)
        olt = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=ln.id, site_id=site.id)
        pon = s.scalar(select(Unit).where(Unit.root_id == olt.id, Unit.kind == "pon_port").order_by(Unit.id).limit(1))
        pon.capacity = PON_CAPACITY
        ports = list(s.scalars(select(Unit.id).where(Unit.owner_id == box.id).order_by(Unit.seq)))
        services = [Service(local_network_id=ln.id, product="ftth_broadband", technology="FTTH")
                    for _ in range(BOX_PORTS - places + PON_CAPACITY - places)]
        s.add_all(services)
        s.flush()
        change = Change("bench:setup")
        for uid, service in zip(ports[:BOX_PORTS - places], services):
            ledger.occupy(s, [uid], change, service_id=service.id)
        for service in services[BOX_PORTS - places:]:
            ledger.occupy(s, [pon.id], change, service_id=service.id)
        uow.commit()
        out = {"box": box.id, "pon": pon.id, "pon_used": pon.used}
    db.dispose()
    return out


def reset(url: str, world: dict[str, Any]) -> None:
    import psycopg

    with psycopg.connect(_plain(url)) as conn:
        conn.execute("UPDATE unit SET occupancy = 'free', reservation_id = NULL, preoccupied_until = NULL, "
                     "version = version + 1 WHERE owner_id = %s AND occupancy = 'preoccupied'", (world["box"],))
        conn.execute("DELETE FROM shared_hold WHERE unit_id = %s", (world["pon"],))
        conn.execute("UPDATE unit SET used = %s, occupancy = 'occupied', version = version + 1 WHERE id = %s",
                     (world["pon_used"], world["pon"]))


def check(url: str, world: dict[str, Any], target: str, mode: str, claims: list[Any], places: int) -> int:
    """Double allocations of one phase: claims the database does not bear out, and claims past
    the places there were."""
    import psycopg

    with psycopg.connect(_plain(url)) as conn:
        if target == "box":
            held = dict(conn.execute("SELECT id, reservation_id FROM unit WHERE owner_id = %s AND "
                                     "occupancy = 'preoccupied'", (world["box"],)).fetchall())
            valid = sum(1 for uid, res in claims if held.get(uid) == res)
        elif mode == "ledger":
            holds = {r for (r,) in conn.execute("SELECT holder FROM shared_hold WHERE unit_id = %s",
                                                (world["pon"],))}
            valid = len(holds & {res for _, res in claims})
        else:
            used = conn.execute("SELECT used FROM unit WHERE id = %s", (world["pon"],)).fetchone()[0]
            valid = min(used - world["pon_used"], len(claims))
    return (len(claims) - valid) + max(0, len(claims) - places)


def worker(url: str, world: dict[str, Any], rounds: int, n: int, start: Any, end: Any, results: Any) -> None:
    import psycopg
    from psycopg import errors as pg_errors
    from sqlalchemy.exc import DBAPIError

    from resource_mgr import models  # noqa: F401
    from resource_mgr.clock import utcnow
    from resource_mgr.db import Database
    from resource_mgr.errors import NoCapacity
    from resource_mgr.occupancy import ledger
    from resource_mgr.occupancy.models import Change, Unit

    db = Database(url)
    raw = psycopg.connect(_plain(url))
    seq = 0

    def take(mode: str, target: str) -> tuple[str, str] | None:
        nonlocal seq
        seq += 1
        reservation = f"B{n:02d}{seq:08d}"
        now = utcnow()
        until = now + timedelta(hours=1)
        if mode == "ledger":
            among = [Unit.owner_id == world["box"]] if target == "box" else [Unit.id == world["pon"]]
            with db.unit_of_work(principal="bench") as uow:
                try:
                    units = ledger.allocate(uow.session, Change(f"bench:{n}", at=now), among=among,
                                            reservation_id=reservation, until=until)
                except NoCapacity:
                    return None
                uow.commit()
            return units[0].id, reservation
        with raw.transaction():
            if target == "box":
                row = raw.execute(
                    "UPDATE unit SET occupancy = 'preoccupied', reservation_id = %s, preoccupied_until = %s, "
                    "version = version + 1 WHERE id = (SELECT id FROM unit WHERE owner_id = %s AND "
                    "occupancy = 'free' ORDER BY seq, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id",
                    (reservation, until, world["box"])).fetchone()
                if row is None and raw.execute("SELECT 1 FROM unit WHERE owner_id = %s AND occupancy = 'free' "
                                               "LIMIT 1", (world["box"],)).fetchone():
                    return ("", "")  # all the free ones are being taken: try again
            else:
                row = raw.execute("UPDATE unit SET used = used + 1, version = version + 1 WHERE id = %s "
                                  "AND used < capacity RETURNING id", (world["pon"],)).fetchone()
        return None if row is None else (row[0], reservation)

    for _round in range(rounds):
        for target in TARGETS:
            for mode in MODES:
                start.wait()
                claims, deadlocks, errors = [], 0, []
                while True:
                    try:
                        got = take(mode, target)
                    except (DBAPIError, psycopg.Error) as exc:
                        orig = getattr(exc, "orig", exc)
                        if isinstance(orig, pg_errors.DeadlockDetected):
                            deadlocks += 1
                        else:
                            errors.append(f"{type(orig).__name__}: {str(orig)[:160]}")
                        if len(errors) > 20:
                            break
                        continue
                    if got is None:
                        break
                    if got[0]:
                        claims.append(got)
                results.put((mode, target, n, claims, deadlocks, errors))
                end.wait()
    raw.close()
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=f"postgresql://postgres@127.0.0.1:5432/{PREFIX}")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--places", type=int, default=16, help="K: the free places left in each round")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2, help="rounds run first and not counted")
    parser.add_argument("--drop", action="store_true", help="drop the scratch database at the end")
    args = parser.parse_args()
    from resource_mgr.migrate import normalise_url

    url = normalise_url(args.database_url)
    world = prepare(url, args.places)
    ctx = multiprocessing.get_context("spawn")
    start, end, results = ctx.Barrier(args.processes + 1), ctx.Barrier(args.processes + 1), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(url, world, args.warmup + args.rounds, n, start, end, results))
             for n in range(args.processes)]
    for p in procs:
        p.start()
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    count: dict[tuple[str, str], int] = defaultdict(int)
    doubles = deadlocks = 0
    errors: list[str] = []
    for round_no in range(args.warmup + args.rounds):
        counted = round_no >= args.warmup
        for target in TARGETS:
            for mode in MODES:
                reset(url, world)
                start.wait()
                t0 = time.perf_counter()
                claims: list[Any] = []
                for _ in procs:
                    _mode, _target, _n, got, dl, errs = results.get(timeout=300)
                    claims += got
                    deadlocks += dl
                    errors += errs
                if counted:
                    seconds[mode, target] += time.perf_counter() - t0
                    count[mode, target] += len(claims)
                doubles += check(url, world, target, mode, claims, args.places)
                end.wait()
    for p in procs:
        p.join(timeout=60)

    print(f"ledger benchmark: {args.processes} processes, {args.rounds} rounds (after {args.warmup} not counted), the last {args.places} places "
          f"of a {BOX_PORTS}-port box and of a {PON_CAPACITY}-place PON port, on {url.rsplit('@', 1)[-1]}")
    total = {m: (sum(count[m, t] for t in TARGETS), sum(seconds[m, t] for t in TARGETS)) for m in MODES}
    for target in (*TARGETS, "all"):
        rates = {}
        for mode in MODES:
            n, s = total[mode] if target == "all" else (count[mode, target], seconds[mode, target])
            rates[mode] = n / s if s else 0.0
        print(f"  {target:4}: allocation path {rates['ledger']:8.1f}/s   raw UPDATE … RETURNING "
              f"{rates['raw']:8.1f}/s   ratio {rates['ledger'] / rates['raw'] if rates['raw'] else 0:.2f}")
    expected = args.rounds * args.places
    print(f"  allocations per mode and target: {dict((f'{m}/{t}', count[m, t]) for m in MODES for t in TARGETS)} "
          f"(expected {expected} each)")
    print(f"  double allocations: {doubles}   surfaced deadlocks: {deadlocks}   other errors: {len(errors)}")
    for e in errors[:5]:
        print(f"    {e}")
    if args.drop:
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(_plain(url)).set(database="postgres").render_as_string(hide_password=False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    if doubles or deadlocks or errors or any(count[k] != expected for k in count):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
