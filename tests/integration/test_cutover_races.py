"""A reservation racing the lock, in separate OS processes (each its own engine), released at
once by a barrier (tests/cutover_workers.py, tests/orders_workers.py). The network is
tests/cutover_world.py: box port 4 is the building's only free copper path, through distribution
pair 4, which the cutover maps to the new cable:

    box port 4 ─ D1 pair 4 (old, free) ─ cross box ─ ... ─ DSLAM port 4        D1 pair 4 → D2 pair 4

Either the lock wins (the pair is locked, every order designs around it: no_capacity), or an
order wins (it holds the pair, and the lock is 409 conflict and changes nothing). Never both."""
from __future__ import annotations

import multiprocessing
from datetime import timedelta

from sqlalchemy import func, select

from cutover_workers import lock
from orders_workers import reserve
from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.cutovers import services as cut
from resource_mgr.cutovers.models import Cutover
from resource_mgr.occupancy.models import History, Unit
from resource_mgr.orders.models import Reservation
from resource_mgr.security.principal import Principal
from resource_mgr.states import AdminState, CutoverState, Role

from cutover_world import build

ORDERS = 2
PLANNER = Principal(name="user:planner", roles=frozenset({Role.PLANNER}), local_network_ids=None)


def _round(db, code: str) -> tuple[str, list[str], object, str]:
    settings = load_settings(environ={}, database_url=db.url)
    with db.unit_of_work() as uow:
        n = build(uow.session, code=code)
        now = utcnow()
        c = cut.create_cutover(uow.session, principal=PLANNER, settings=settings, now=now, name=f"race {code}",
                               window_start=now, window_end=now + timedelta(hours=6),
                               mapping=[{"old": n.c.pairs[k], "new": n.new_pairs[k]} for k in range(4)])
        assert c.valid, c.errors
        uow.commit()
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(ORDERS + 1), ctx.Queue()
    procs = [ctx.Process(target=lock, args=(db.url, barrier, results, c.id))]
    procs += [ctx.Process(target=reserve, args=(db.url, barrier, results, i,
                                                {"products": ["adsl_broadband"], "address_id": n.c.building,
                                                 "order_ref": f"RACE-{code}-{i}"}))
              for i in range(ORDERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    locked = [o for o in outcomes if o in ("locked", "lock conflict")]
    assert len(locked) == 1, outcomes
    return locked[0], [o for o in outcomes if o not in locked], n, c.id


def test_a_reservation_racing_the_lock_loses_cleanly_either_way(db):
    seen = set()
    for code in ("R1", "R2", "R3"):
        lock_outcome, orders, n, cid = _round(db, code)
        seen.add(lock_outcome)
        with db.read_session() as s:
            pair = s.get(Unit, n.c.pairs[3])
            c = s.get(Cutover, cid)
            holders = s.scalars(select(Reservation).where(Reservation.order_ref.like(f"RACE-{code}-%"))).all()
            if lock_outcome == "locked":
                assert sorted(orders) == ["no_capacity"] * ORDERS, orders
                assert not holders
                assert pair.admin_state == AdminState.LOCKED and pair.locked_by == cid and pair.reservation_id is None
                assert c.state == CutoverState.LOCKED
            else:  # an order took the pair first: the lock changed nothing
                assert sorted(o.split()[0] for o in orders) == ["created", "no_capacity"], orders
                assert [r.unit_ids.count(n.c.pairs[3]) for r in holders] == [1]
                assert pair.admin_state == AdminState.IN_SERVICE and pair.reservation_id == holders[0].id
                assert c.state == CutoverState.DRAFT
                assert s.scalar(select(func.count()).select_from(Unit).where(Unit.locked_by == cid)) == 0
                assert s.scalar(select(func.count()).select_from(History).where(
                    History.cutover_id == cid, History.resource_kind != "cutover")) == 0
    assert seen  # which side wins is the scheduler's choice; each round is one of the two clean outcomes
