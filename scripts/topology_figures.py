"""The topology engine's figures on a loaded database (docs/topology.md): graph build time, nodes
and edges, peak RSS, the follow with nothing new, and impact p50 / p95 for single faults of each
kind (20 random ones of each, 3 times). The full benchmark with the SQL baseline is
scripts/bench_impact.py.

    python scripts/topology_figures.py postgresql://postgres@127.0.0.1:5432/rmgr_bench
"""
import random, resource, statistics, sys, time
from sqlalchemy import text
from resource_mgr.db import Database
from resource_mgr.topology import services as T

db = Database(sys.argv[1])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
with db.read_session() as s:
    g = T.get_graph(s)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"build {g.build_seconds:.1f} s; ids {g.number_of_nodes()} (networkx nodes {g.g.number_of_nodes()}, "
          f"services {len(g.services)}, folded units {len(g.folded_owner)}); edges {g.g.number_of_edges()}; "
          f"peak RSS {peak:.0f} MB (before build {rss0:.0f} MB)")
    rng = random.Random(1)
    def ids(sql, n=20):
        rows = [r[0] for r in s.execute(text(sql))]
        return rng.sample(rows, min(n, len(rows)))
    cases = {
        "box": ids("SELECT id FROM distribution_box"),
        "2nd-stage splitter": ids("SELECT id FROM device WHERE split_stage = 2"),
        "pon port": ids("SELECT DISTINCT unit_id FROM service_unit su JOIN unit u ON u.id = su.unit_id WHERE u.kind = 'pon_port'"),
        "cross box": ids("SELECT id FROM cross_box"),
        "olt": ids("SELECT id FROM device WHERE device_type = 'olt'"),
        "site": ids("SELECT id FROM site WHERE site_type = 'exchange'"),
        "feeder duct segment": ids("SELECT DISTINCT cs.duct_segment_id FROM cable_span cs JOIN cable c ON c.id = cs.cable_id WHERE c.stage = 'feeder'"),
        "aggregation switch": ids("SELECT id FROM device WHERE device_type = 'aggregation_switch'"),
    }
    t = time.perf_counter(); T.get_graph(s); print(f"follow with nothing new: {(time.perf_counter()-t)*1000:.1f} ms")
    for name, rids in cases.items():
        if not rids:
            continue
        ts, down = [], 0
        for rep in range(3):
            for rid in rids:
                t0 = time.perf_counter(); a = T.impact(s, [rid]); ts.append((time.perf_counter() - t0) * 1000)
                down += a["down_count"] + a["degraded_count"]
        ts.sort()
        p50, p95 = ts[len(ts)//2], ts[int(len(ts)*0.95)-1 if len(ts) > 1 else 0]
        print(f"{name:22s} n={len(ts):3d} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  affected/fault {down/len(ts):8.0f}")
print(f"peak RSS at the end {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MB")
