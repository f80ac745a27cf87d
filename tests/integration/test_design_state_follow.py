"""The state of units a process keeps for design (resource_mgr/design/trace.py) follows the change
feed: a unit taken or freed by another OS process (its own engine and cache) is seen by the next
check and design here, in both directions, for exclusive units and for places on a shared unit;
and a warm check really answers from what is kept (it reads no unit state), so a stale cache
would fail these tests."""
from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest
from sqlalchemy import event

from design_workers import change_units
from design_world import DesignWorld
from resource_mgr.clock import utcnow
from resource_mgr.config import Settings
from resource_mgr.design import NoDesign, design_path, qualify
from resource_mgr.design.trace import clear_topology_cache

S = Settings()


def _world(db):
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        f = w.ftth(ports=2)
        room = w.address("room 1", parent=f.building)
        w.cover(f.box, f.building)
        uow.commit()
    clear_topology_cache()
    return f, room


def _elsewhere(db, action: str, unit_ids: list[str], reservation_id: str, until=None) -> None:
    """The change made and committed by another OS process."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    p = ctx.Process(target=change_units, args=(db.url, action, unit_ids, reservation_id, until, results))
    p.start()
    outcome = results.get(timeout=120)
    p.join(timeout=30)
    assert outcome == "ok", outcome


def _answer(db, room, settings=S, now=None):
    """The coverage answer and the order's design (None: NoDesign), which must agree."""
    now = now or utcnow()
    with db.read_session() as s:
        a = qualify(s, address_id=room, technology="FTTH", settings=settings, now=now)
    with db.read_session() as s:
        try:
            d = design_path(s, address_id=room, technology="FTTH", settings=settings, now=now)
        except NoDesign:
            d = None
    assert a.available == (d is not None)
    if d is not None:
        assert a.design.unit_ids == d.unit_ids
    return a


@pytest.fixture
def reads(db):
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)
    event.listen(db.engine, "before_cursor_execute", count)
    yield seen
    event.remove(db.engine, "before_cursor_execute", count)


def _state_reads(seen: list[str]) -> int:
    return sum(1 for s in seen if "unit.preoccupied_until" in s)


def test_ports_taken_and_freed_by_another_process_are_seen_by_the_next_check(db, reads):
    f, room = _world(db)
    first = _answer(db, room)
    assert first.available and first.free_capacity == 2 and first.design.unit_ids[0] == f.ports[0]
    reads.clear()
    again = _answer(db, room)
    assert again.design.unit_ids == first.design.unit_ids
    assert _state_reads(reads) == 0, "a warm check answers from the state kept in this process"

    _elsewhere(db, "preoccupy", [f.ports[0]], "01OTHERORDER0000000000000A", utcnow() + timedelta(hours=2))
    reads.clear()
    one_left = _answer(db, room)
    assert one_left.available and one_left.free_capacity == 1 and one_left.design.unit_ids[0] == f.ports[1]
    assert _state_reads(reads) >= 1, "the units the feed named are read again"

    _elsewhere(db, "preoccupy", [f.ports[1]], "01OTHERORDER0000000000000B", utcnow() + timedelta(hours=2))
    full = _answer(db, room)
    assert not full.available and "box_full" in full.reasons

    _elsewhere(db, "release", [f.ports[0]], "01OTHERORDER0000000000000A")
    freed = _answer(db, room)
    assert freed.available and freed.free_capacity == 1 and freed.design.unit_ids[0] == f.ports[0]


def test_a_place_held_on_the_pon_port_by_another_process_and_its_expiry(db):
    """One ONT per PON port: a hold by another order fills it (a free box behind a full PON
    port); the hold counts until it expires, judged by the check's `now` (no change in the feed),
    and its release is seen at once."""
    settings = Settings(design_max_onts_per_pon=1)
    f, room = _world(db)
    assert _answer(db, room, settings).available
    until = utcnow() + timedelta(hours=1)
    _elsewhere(db, "preoccupy", [f.pon], "01OTHERORDER0000000000000C", until)
    held = _answer(db, room, settings)
    assert not held.available and "pon_full" in held.reasons, held.reasons
    assert _answer(db, room, settings, now=until + timedelta(minutes=1)).available  # expired: free
    assert not _answer(db, room, settings).available
    _elsewhere(db, "release", [f.pon], "01OTHERORDER0000000000000C")
    assert _answer(db, room, settings).available
