"""Races for the last places, between OS processes (each its own engine), on the backend under
test. Every contender reads the unit first, changes it a moment later and commits a moment after
that, so without the lock (PostgreSQL `FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) they all see it
free: these tests fail when the locking is taken out. Checked by hand (three runs each): without
`with_for_update` in `resource_mgr.occupancy.ledger.lock_query` all four fail on PostgreSQL (the
version counter turns the lost updates into StaleDataError; without it too, a 2-place port takes
4 services); without `BEGIN IMMEDIATE` in resource_mgr/db.py all four fail on SQLite ("database
is locked"). Before the pause before the commit, the first one sometimes passed without the lock:
a transition re-reads the unit, so the window was only re-read to commit."""
from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import func, select

from ledger_workers import contend
from resource_mgr.customers.models import Service
from tests.ledger_world import build_world
from resource_mgr.occupancy.models import Change, History, SharedHold, SharedUse, Unit

CONTENDERS = 4


@pytest.fixture
def world(db):
    return build_world(db, services=CONTENDERS + 2)


def race(db, op: str, **args) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(CONTENDERS), ctx.Queue()
    procs = [ctx.Process(target=contend, args=(db.url, barrier, results, n, op, args)) for n in range(CONTENDERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return sorted(outcomes)


def test_processes_racing_for_the_last_free_port_exactly_one_wins(db, world):
    uid = world["ports"][0]
    assert race(db, "preoccupy", unit_id=uid) == ["no_capacity"] * (CONTENDERS - 1) + ["won"]
    with db.read_session() as s:
        u = s.get(Unit, uid)
        assert u.reservation_id in {f"R{n}" for n in range(CONTENDERS)} and u.version == 2
        assert s.scalar(select(func.count()).select_from(History).where(History.resource_id == uid)) == 1


def test_processes_racing_for_the_last_places_of_a_shared_port(db, world):
    """Two places left on a PON port: two services get on, the others are refused, and `used`
    counts exactly the services on it."""
    pon, services = world["pon"], world["services"]
    with db.unit_of_work() as uow:
        port = uow.session.get(Unit, pon)
        port.capacity = 3
        port.occupy(Change("a"), service_id=services[-1])
        uow.commit()
    assert race(db, "occupy", unit_id=pon, services=services) == ["no_capacity"] * (CONTENDERS - 2) + ["won"] * 2
    with db.read_session() as s:
        assert s.get(Unit, pon).used == 3
        assert s.scalar(select(func.count()).select_from(SharedUse).where(SharedUse.unit_id == pon)) == 3


def test_processes_racing_for_a_held_shared_port(db, world):
    pon = world["pon"]
    with db.unit_of_work() as uow:
        uow.session.get(Unit, pon).capacity = 2
        uow.commit()
    assert race(db, "preoccupy", unit_id=pon) == ["no_capacity"] * (CONTENDERS - 2) + ["won"] * 2
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(SharedHold).where(SharedHold.unit_id == pon)) == 2


def test_processes_allocating_the_last_ports_of_a_box_get_distinct_ones(db, world):
    ports = world["ports"]
    with db.unit_of_work() as uow:  # two ports left
        for uid in ports[:-2]:
            uow.session.get(Unit, uid).occupy(Change("a"), service_id=_service(uow.session))
        uow.commit()
    assert race(db, "allocate", owner_id=world["box"]) == ["no_capacity"] * (CONTENDERS - 2) + ["won"] * 2
    with db.read_session() as s:
        held = s.execute(select(Unit.id, Unit.reservation_id).where(Unit.owner_id == world["box"],
                                                                   Unit.reservation_id.is_not(None))).all()
        assert sorted(uid for uid, _ in held) == sorted(ports[-2:])
        assert len({r for _, r in held}) == 2


def _service(session) -> str:
    unit = session.scalars(select(Unit.local_network_id).limit(1)).first()
    service = Service(local_network_id=unit, product="pots", technology="POTS")
    session.add(service)
    session.flush()
    return service.id
