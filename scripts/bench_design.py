"""In-process figures of the one path design (resource_mgr/design): coverage checks of every
technology and product, and the design part of FTTH reservations, on a loaded city.

Both run twice in the same process on the same addresses: with what the process keeps (the
default settings) and, as the baseline of the run, with no unit state and no per-address
answers kept (`design_state_cache_units = 0`: every design reads them, as before they were
kept). Printed: wall p50 / p90, CPU p50 per call (time.process_time), queries per call, and the
ratios. `warm`: the same few addresses again and again (their plant seen before); `cold`: a new
address each call (after the warm-up, so statements are prepared).

    python scripts/bench_design.py --url postgresql://…/rmgr_bench_design [--size M] [--calls 40]

The database is loaded with a generated city of --size unless it holds one (benchlib.load_city);
for size M on PostgreSQL copy a loaded one (`createdb -T …`)."""
from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import load_city, quantile  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--size", default="M")
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args()

    from sqlalchemy import event, select

    from resource_mgr.config import load_settings
    from resource_mgr.coverage.services import check
    from resource_mgr.design import NoDesign, design_path
    from resource_mgr.design.trace import clear_topology_cache
    from resource_mgr.inventory.models import Address, Coverage, DistributionBox

    db = load_city(args.url, args.size, "design")
    with db.read_session() as s:
        fibre = select(Coverage.address_id).join(DistributionBox, DistributionBox.id == Coverage.box_id) \
            .where(DistributionBox.medium == "fibre")
        covered = list(s.scalars(fibre.distinct().order_by(Coverage.address_id).limit(3000)))
        rooms = list(s.scalars(select(Address.id).where(Address.parent_id.in_(covered)).order_by(Address.id)))
    rng = random.Random(3)
    pool = rooms or covered
    rng.shuffle(pool)
    queries = [0]
    event.listen(db.engine, "before_cursor_execute", lambda *_a: queries.__setitem__(0, queries[0] + 1))

    def run(what: str, settings, address: str) -> None:
        now = datetime.now(timezone.utc)
        with db.read_session() as s:
            if what == "check":
                check(s, local_network_ids=None, address_id=address, settings=settings, now=now)
            else:
                try:
                    design_path(s, address_id=address, technology="FTTH", settings=settings, now=now, lock=True)
                except NoDesign:
                    pass
                s.rollback()

    def measure(what: str, mode: str, settings, offset: int) -> dict[str, float]:
        few = pool[:20]
        for a in few + few:  # warm-up: these addresses' plant, and the statements prepared
            run(what, settings, a)
        calls = [few[i % len(few)] for i in range(args.calls)] if mode == "warm" else \
            pool[offset:offset + args.calls]
        walls, cpus, qs = [], [], []
        for a in calls:
            q0, c0, t0 = queries[0], time.process_time(), time.perf_counter()
            run(what, settings, a)
            walls.append((time.perf_counter() - t0) * 1000)
            cpus.append((time.process_time() - c0) * 1000)
            qs.append(queries[0] - q0)
        return {"p50": quantile(walls, .5), "p90": quantile(walls, .9), "cpu": quantile(cpus, .5),
                "q": quantile([float(q) for q in qs], .5)}

    kept = load_settings({"RMGR_DATABASE_URL": args.url})
    baseline = kept.model_copy(update={"design_state_cache_units": 0})
    offset = 100
    for what in ("check", "design"):
        for mode in ("warm", "cold"):
            figures = {}
            for label, settings in (("baseline", baseline), ("kept", kept)):
                clear_topology_cache()
                figures[label] = measure(what, mode, settings, offset)
                offset += args.calls  # cold: addresses neither run has seen
                f = figures[label]
                print(f"{what:6} {mode} {label:8}: wall p50 {f['p50']:7.1f} ms p90 {f['p90']:7.1f} ms | "
                      f"CPU p50 {f['cpu']:6.1f} ms | queries p50 {f['q']:.0f}", flush=True)
            b, k = figures["baseline"], figures["kept"]
            print(f"{what:6} {mode} ratio kept/baseline: wall p50 {k['p50'] / b['p50']:.2f}, "
                  f"CPU p50 {k['cpu'] / b['cpu']:.2f}", flush=True)


if __name__ == "__main__":
    main()
