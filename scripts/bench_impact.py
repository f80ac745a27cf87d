"""Impact benchmark on PostgreSQL (issue "Speed and memory"): the topology graph against the way a
database-only inventory answers "who is down if this fails".

1. Build: a fresh process builds the graph (`resource_mgr.topology.services.get_graph`) and
   reports the wall time and its peak RSS (`ru_maxrss`, with the RSS after imports, before the
   build, for comparison).
2. Impact: for leaf faults (a fibre access terminal, a second-stage splitter), mid ones (a PON
   port, a cross box) and large ones (an OLT, an exchange site, a duct segment carrying feeder
   cables), `--targets` resources of each kind picked at random (seeded) are each asked
   `--rounds` times, interleaved: the graph's `impact()` and, as the baseline, one recursive SQL
   query over the stored data — containment (`resource.parent_id`, devices at the site),
   cables through the failed duct segments (`cable_span`), their units, the services whose
   stored path (`service_unit`) holds one of them, and the services riding on those (`bearer_id`),
   with the counts by product and area and the first page, VIPs first, in the same statement.
   It prints p50 / p95 of both per kind and the ratio. The baseline knows no redundancy (every
   service touching a failed unit is down): the service counts of both are printed side by side.
3. Freshness: a second process holds its graph; this one commits a change (a box port's service
   leaves its path); the other process asks for the box's impact in a loop from the moment of the
   commit until the answer reflects it: the delay is printed (target ≤ 1 s).

    .venv/bin/python scripts/bench_impact.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/rmgr_bench_impact

Measured (docs/topology.md, "Size and speed"): `--targets 5 --rounds 3` on a copy of the generated
M city with the transport layer (212,479 services), load average 15–18 on the shared 2-core machine:
build 110 s wall (55 s at load ≈ 18 in another run; ≈ 20 s CPU), peak RSS 609 MiB (104 MiB before);
graph p50 / p95 against SQL p50 / p95: box 19 / 164 ms vs 171 / 236 ms; second-stage splitter
24 / 72 vs 172 / 225; PON port 15 / 35 vs 30 / 90; cross box 16 / 53 vs 149 / 211; OLT 113 / 226 vs
675 / 1,022; exchange site 981 / 8,197 vs 3,186 / 4,370 (the p95 is the exchange holding the core
routers); feeder duct segment 45 / 176 vs 298 / 616; freshness 260 ms.

The database must exist and hold a loaded network (`rmgr generate --size M` then `rmgr import`
with RMGR_DATABASE_URL pointing at it); its name must start with rmgr_bench_impact. The freshness
step changes one service's path and puts it back at the end.

Measured 2026-12-01 18:58 UTC with everything merged, on a quiet machine (load average 2-3),
`--targets 5 --rounds 3` on the same M copy: build 19.4 s in a fresh process, peak RSS 608 MiB
(103 MiB before the build); graph p50 / p95 (SQL p95): box 2.6 / 4.6 ms (57.8), second-stage
splitter 2.5 / 3.8 ms (43.4), PON port 2.6 / 6.9 ms (21.7), cross box 2.5 / 8.8 ms (52.4), OLT
5.1 / 30.8 ms (226.7), site 64 / 615 ms (904; the exchange holding both core routers, 180 k
services down, is the p95), feeder duct segment 4.9 / 12.0 ms (133.2); freshness across
processes 18 ms. Met: build, memory at M, leaf p95, OLT p95, freshness, >= 10x at p50 for every
kind but the PON port (2.4x: its SQL is one index read). Not met: site p95 (615 ms against
300 ms) and 10x at p95 for PON port, cross box, OLT and site.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import quantile  # noqa: E402

PREFIX = "rmgr_bench_impact"
KINDS = (("leaf", "box"), ("leaf", "splitter2"), ("mid", "pon_port"), ("mid", "cross_box"),
         ("large", "olt"), ("large", "site"), ("large", "feeder_duct_segment"))

# Candidates of each kind: resources that carry services (else the answer is trivially empty).
TARGET_SQL = {
    "box": "SELECT DISTINCT u.root_id FROM unit u JOIN distribution_box b ON b.id = u.root_id "
           "WHERE b.medium = 'fibre' AND u.kind = 'box_port' AND u.occupancy = 'occupied'",
    "splitter2": "SELECT DISTINCT u.root_id FROM unit u JOIN device d ON d.id = u.root_id "
                 "WHERE d.split_stage = 2 AND u.kind = 'splitter_out' AND (u.used > 0 OR u.occupancy = 'occupied')",
    "pon_port": "SELECT id FROM unit WHERE kind = 'pon_port' AND used > 0",
    "cross_box": "SELECT DISTINCT u.root_id FROM unit u JOIN cross_box x ON x.id = u.root_id "
                 "WHERE u.occupancy = 'occupied' OR u.service_id IS NOT NULL "
                 "UNION SELECT id FROM cross_box",
    "olt": "SELECT id FROM device WHERE device_type = 'olt'",
    "site": "SELECT id FROM site WHERE site_type = 'exchange'",
    "feeder_duct_segment": "SELECT cs.duct_segment_id FROM cable_span cs JOIN cable c ON c.id = cs.cable_id "
                           "WHERE c.stage = 'feeder' GROUP BY cs.duct_segment_id HAVING count(*) >= 3",
}

# The database-only answer: one statement, PostgreSQL. :ids are the failed resources or units.
BASELINE_SQL = """
WITH RECURSIVE
seed AS (
    SELECT id FROM resource WHERE id = ANY(%(ids)s)
    UNION SELECT id FROM device WHERE site_id = ANY(%(ids)s)
    UNION SELECT id FROM frame WHERE site_id = ANY(%(ids)s)
    UNION SELECT id FROM cross_box WHERE site_id = ANY(%(ids)s)
),
contained(id) AS (
    SELECT id FROM seed
    UNION
    SELECT r.id FROM resource r JOIN contained c ON r.parent_id = c.id
),
segments AS (
    SELECT s.id FROM duct_segment s JOIN contained c ON c.id = s.id
    UNION SELECT s.id FROM duct_segment s JOIN contained c ON c.id = s.a_end_id
    UNION SELECT s.id FROM duct_segment s JOIN contained c ON c.id = s.z_end_id
),
failed_roots AS (
    SELECT id FROM contained
    UNION SELECT cs.cable_id FROM cable_span cs JOIN segments s ON s.id = cs.duct_segment_id
),
failed_units AS (
    SELECT u.id FROM unit u JOIN failed_roots f ON u.root_id = f.id
    UNION SELECT u.id FROM unit u JOIN contained c ON u.owner_id = c.id
    UNION SELECT id FROM unit WHERE id = ANY(%(ids)s)
),
hit(id) AS (
    SELECT DISTINCT su.service_id FROM service_unit su JOIN failed_units fu ON fu.id = su.unit_id
),
down(id) AS (
    SELECT id FROM hit
    UNION
    SELECT s.id FROM service s JOIN down d ON s.bearer_id = d.id
),
svc AS MATERIALIZED (
    SELECT s.id, s.product, c.name AS customer, COALESCE(c.grade, 'normal') <> 'normal' AS vip, s.number,
           s.address_id, ar.name AS area
    FROM down JOIN service s ON s.id = down.id
    LEFT JOIN customer c ON c.id = s.customer_id
    LEFT JOIN address a ON a.id = s.address_id
    LEFT JOIN resource ar ON ar.id = a.area_id
    WHERE s.state = 'active'
)
SELECT json_build_object(
    'down_count', (SELECT count(*) FROM svc),
    'by_product', (SELECT json_object_agg(product, n) FROM (SELECT product, count(*) n FROM svc GROUP BY product) p),
    'by_area', (SELECT json_object_agg(COALESCE(area, ''), n) FROM (SELECT area, count(*) n FROM svc GROUP BY area) a),
    'services', (SELECT json_agg(x) FROM (SELECT id, product, customer, vip, number, address_id FROM svc
                                         ORDER BY vip DESC, id LIMIT 50) x),
    'affected_resources_count', (SELECT count(*) FROM failed_units))
"""


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_build(url: str) -> None:
    """In a fresh process: build the graph, print seconds and peak RSS as JSON."""
    from resource_mgr.db import Database
    from resource_mgr.topology.services import get_graph

    db = Database(url)
    before = _rss_kb()
    started = time.perf_counter()
    with db.read_session() as session:
        graph = get_graph(session)
    seconds = time.perf_counter() - started
    size = {}
    for name in ("number_of_nodes", "number_of_edges"):
        for holder in (graph, getattr(graph, "g", None), getattr(graph, "graph", None)):
            if holder is not None and callable(getattr(holder, name, None)):
                size[name] = getattr(holder, name)()
                break
    parts = {"networkx_nodes": graph.g.number_of_nodes(), "services": len(graph.services),
             "folded_units": len(graph.folded_owner)}
    print(json.dumps({"seconds": seconds, "rss_before_kb": before, "maxrss_kb": _rss_kb(), **size, **parts}))


def build_in_subprocess(url: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--database-url", url, "--child-build"], check=True,
                         capture_output=True, text=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def pick_targets(conn: Any, per_kind: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    out = {}
    for _, kind in KINDS:
        ids = sorted(r[0] for r in conn.execute(TARGET_SQL[kind]).fetchall())
        out[kind] = rng.sample(ids, min(per_kind, len(ids)))
    return out


def tune_baseline(conn: Any) -> None:
    """The baseline at its best: no JIT (compiling costs seconds here) and index nested loops (the
    planner's guesses for the CTEs otherwise make it scan the unit table, ~20 s a query on M)."""
    for setting in ("jit", "enable_hashjoin", "enable_mergejoin", "enable_seqscan"):
        conn.execute(f"SET {setting} = off")


def baseline(conn: Any, ids: list[str]) -> dict[str, Any]:
    return conn.execute(BASELINE_SQL, {"ids": ids}).fetchone()[0]


def _fresh_child(url: str, box: str, ready: Any, go: Any, result: Any) -> None:
    """The other process: its own graph; from the commit on, the box's impact until it changes."""
    from resource_mgr.db import Database
    from resource_mgr.topology.services import impact

    db = Database(url)
    with db.read_session() as session:
        first = impact(session, [box])
    ready.send(first["down_count"])
    committed_at = go.recv()
    polls = 0
    while True:
        with db.read_session() as session:
            now = impact(session, [box])
        polls += 1
        if now["down_count"] != first["down_count"]:
            result.send({"seen_after_ms": (time.time() - committed_at) * 1000, "polls": polls,
                         "before": first["down_count"], "after": now["down_count"]})
            return
        if time.time() - committed_at > 30:
            result.send({"seen_after_ms": None, "polls": polls, "before": first["down_count"]})
            return


def freshness(url: str, conn: Any) -> dict[str, Any]:
    """One box's service leaves its path (its service_unit rows and its box port's occupation go,
    as a removal does) in a committed unit of work; the other process must see it."""
    from resource_mgr.customers.models import Service
    from resource_mgr.db import Database
    from resource_mgr.occupancy.models import Change, Unit

    conn.execute("RESET ALL")
    row = conn.execute(
        "SELECT u.root_id, u.id, u.service_id FROM unit u JOIN distribution_box b ON b.id = u.root_id "
        "JOIN service s ON s.id = u.service_id WHERE b.medium = 'fibre' AND u.kind = 'box_port' "
        "AND u.occupancy = 'occupied' AND s.state = 'active' ORDER BY u.id LIMIT 1").fetchone()
    box, port, service_id = row
    ctx = multiprocessing.get_context("spawn")
    ready_r, ready_w = ctx.Pipe(False)
    go_r, go_w = ctx.Pipe(False)
    res_r, res_w = ctx.Pipe(False)
    # a daemon: not left waiting behind an error in this process
    proc = ctx.Process(target=_fresh_child, args=(url, box, ready_w, go_r, res_w), daemon=True)
    proc.start()
    ready_r.recv()
    db = Database(url)
    with db.unit_of_work(principal="bench:impact") as uow:
        s = uow.session
        service = s.get(Service, service_id)
        service.state = "removed"
        s.get(Unit, port).release(Change(principal="bench:impact", service_id=service_id), service_id=service_id)
        from resource_mgr.security import audit
        audit.record(s, "bench:impact", resource_id=service_id, resource_kind="service", action="remove",
                     local_network_id=service.local_network_id, before={"state": "active"},
                     after={"state": "removed"}, service_id=service_id)
        uow.commit()
    go_w.send(time.time())
    out = res_r.recv()
    proc.join(60)
    with db.unit_of_work(principal="bench:impact") as uow:  # put it back
        s = uow.session
        service = s.get(Service, service_id)
        service.state = "active"
        s.get(Unit, port).occupy(Change(principal="bench:impact", service_id=service_id), service_id=service_id)
        uow.commit()
    db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=f"postgresql://postgres@127.0.0.1:5432/{PREFIX}")
    parser.add_argument("--targets", type=int, default=8, help="resources of each kind")
    parser.add_argument("--rounds", type=int, default=3, help="times each resource is asked, per way")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--no-build", action="store_true", help="skip the build measurement")
    parser.add_argument("--no-freshness", action="store_true")
    parser.add_argument("--baseline-only", action="store_true", help="only the SQL baseline (no graph)")
    parser.add_argument("--child-build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from resource_mgr import migrate

    url = migrate.normalise_url(args.database_url)
    if args.child_build:
        child_build(url)
        return
    import psycopg
    from sqlalchemy.engine import make_url

    if not (make_url(url).database or "").startswith(PREFIX):
        raise SystemExit(f"the database's name must start with {PREFIX}")
    conn = psycopg.connect(_plain(url), autocommit=True)
    services = conn.execute("SELECT count(*) FROM service WHERE state = 'active'").fetchone()[0]
    print(f"impact benchmark on {url.split('@')[-1]}: {services:,} active services", flush=True)

    if not args.no_build and not args.baseline_only:
        built = build_in_subprocess(url)
        print(f"graph build (fresh process): {built['seconds']:.1f} s, peak RSS {built['maxrss_kb'] / 1024:.0f} MiB "
              f"(after imports, before the build: {built['rss_before_kb'] / 1024:.0f} MiB)"
              + (f", {built.get('number_of_nodes', 0):,} ids ({built['networkx_nodes']:,} networkx nodes, "
                 f"{built['services']:,} services, {built['folded_units']:,} folded units), "
                 f"{built.get('number_of_edges', 0):,} edges" if "number_of_nodes" in built else ""), flush=True)

    targets = pick_targets(conn, args.targets, args.seed)
    tune_baseline(conn)
    session = db = None
    if not args.baseline_only:
        from resource_mgr.db import Database
        from resource_mgr.topology.services import impact

        db = Database(url)
        session = db.read_session()
        started = time.perf_counter()
        impact(session, [targets["box"][0]])
        session.rollback()
        print(f"graph loaded in this process (first impact): {time.perf_counter() - started:.1f} s", flush=True)

    print(f"\n{'kind':22} {'n':>3} {'graph p50':>10} {'p95':>8} {'SQL p50':>10} {'p95':>9} {'ratio p50':>9} "
          f"{'p95':>7}  services graph down+degraded / SQL down")
    report = {}
    for group, kind in KINDS:
        times: dict[str, list[float]] = {"graph": [], "sql": []}
        counts = {"graph": [], "sql": []}
        for _ in range(args.rounds):
            for target in targets[kind]:
                if session is not None:
                    t0 = time.perf_counter()
                    g = impact(session, [target])
                    times["graph"].append((time.perf_counter() - t0) * 1000)
                    session.rollback()
                    counts["graph"].append(g["down_count"] + g["degraded_count"])
                t0 = time.perf_counter()
                b = baseline(conn, [target])
                times["sql"].append((time.perf_counter() - t0) * 1000)
                counts["sql"].append(b["down_count"])
        row = {w: {"p50": quantile(v, 0.5), "p95": quantile(v, 0.95)} for w, v in times.items()}
        report[kind] = {"group": group, "n": len(targets[kind]), **row,
                        "services_graph": sum(counts["graph"]) // max(args.rounds, 1),
                        "services_sql": sum(counts["sql"]) // max(args.rounds, 1)}
        g50, g95 = row["graph"]["p50"], row["graph"]["p95"]
        s50, s95 = row["sql"]["p50"], row["sql"]["p95"]
        ratio = f"{s50 / g50:8.1f}x {s95 / g95:6.1f}x" if times["graph"] else f"{'-':>9} {'-':>7}"
        print(f"{group + '/' + kind:22} {len(targets[kind]):3} {g50:8.2f}ms {g95:6.2f}ms {s50:8.1f}ms {s95:7.1f}ms "
              f"{ratio}  {report[kind]['services_graph']:,} / {report[kind]['services_sql']:,}", flush=True)

    if session is not None:
        session.close()
    if not args.no_freshness and not args.baseline_only:
        fresh = freshness(url, conn)
        print(f"\ncross-process freshness: a committed change seen by another process's graph after "
              f"{fresh['seen_after_ms']:.0f} ms ({fresh['polls']} impact calls; box down "
              f"{fresh['before']} → {fresh.get('after')})" if fresh["seen_after_ms"] is not None else
              f"\ncross-process freshness: NOT seen within 30 s ({fresh})", flush=True)
        report["freshness"] = fresh
    if db is not None:
        db.dispose()
    conn.close()
    print(json.dumps({"services": services, "rss_self_kb": _rss_kb(), "pid": os.getpid(), "kinds": report}))


if __name__ == "__main__":
    main()
