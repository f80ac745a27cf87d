"""Orders racing between OS processes (each its own engine) on the backend under test: for the
last K free ports of a box exactly K win and the others get `no_capacity`, never a double
allocation nor a database error; the same order sent by every process at once makes one
reservation that all of them get back."""
from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from sqlalchemy import func, select

from orders_workers import reserve
from resource_mgr.occupancy.models import SharedHold, Unit
from resource_mgr.orders.models import Reservation
from tests.design_world import DesignWorld

CONTENDERS = 6
FREE = 2


@pytest.fixture
def box(db):
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        f = w.ftth(ports=4, r2=4)
        w.cover(f.box, f.building)
        for port in f.ports[FREE:]:  # the last FREE ports are left
            w.take(port)
        uow.commit()
    return f


def race(db, **args) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(CONTENDERS), ctx.Queue()
    procs = [ctx.Process(target=reserve, args=(db.url, barrier, results, n, args)) for n in range(CONTENDERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return outcomes


def test_racing_for_the_last_free_ports_exactly_that_many_win(db, box):
    outcomes = race(db, products=["ftth_broadband"], address_id=box.building)
    kinds = Counter(o.split()[0] for o in outcomes)
    assert kinds == {"created": FREE, "no_capacity": CONTENDERS - FREE}, outcomes
    with db.read_session() as s:
        held = s.scalars(select(Unit).where(Unit.id.in_(box.ports[:FREE]))).all()
        winners = {o.split()[1] for o in outcomes if o.startswith("created")}
        assert {u.reservation_id for u in held} == winners  # one port each, none twice
        assert s.scalar(select(func.count()).select_from(Reservation)) == FREE
        # the shared units carry one hold per winner, no more
        assert s.scalar(select(func.count()).select_from(SharedHold).where(SharedHold.unit_id == box.pon)) == FREE


def test_the_same_order_from_every_process_makes_one_reservation(db, box):
    outcomes = race(db, products=["ftth_broadband"], address_id=box.building, order_ref="SAME-1")
    ids = {o.split()[1] for o in outcomes if not o.startswith("error")}
    assert len(ids) == 1 and len(outcomes) == CONTENDERS, outcomes
    assert Counter(o.split()[0] for o in outcomes) == {"created": 1, "same": CONTENDERS - 1}
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Reservation)) == 1
        assert s.scalar(select(func.count()).select_from(Unit).where(Unit.reservation_id.in_(ids))) >= 1
