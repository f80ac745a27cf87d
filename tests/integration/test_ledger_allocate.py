"""`ledger.allocate` writes what the transition writes. On PostgreSQL it pre-occupies a unit in
one statement once the row is locked (ledger._preoccupy_new) instead of going through
`Unit.preoccupy`: each test does the same to twin units, one through `allocate` and one through
`ledger.preoccupy` (the transition itself), and compares the rows, the holds and the history."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.errors import NoCapacity
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Change, History, SharedHold, Unit
from resource_mgr.states import Occupancy
from tests.ledger_world import build_world


@pytest.fixture
def world(db):
    return build_world(db, services=8)


def _state(db, unit_id: str) -> dict:
    """What a unit's row, holds and history (but the setup's) say, without ids that differ between twins."""
    with db.read_session() as s:
        u = s.get(Unit, unit_id)
        holds = sorted((h.holder, h.expires_at) for h in s.scalars(select(SharedHold).where(SharedHold.unit_id == unit_id)))
        history = [(h.action, h.principal, h.order_ref, h.reservation_id, h.service_id, h.at, h.before, h.after,
                    h.position is not None)
                   for h in s.scalars(select(History).where(History.resource_id == unit_id,
                                                            History.principal != "setup").order_by(History.id))]
        return {"row": (u.occupancy, u.reservation_id, u.preoccupied_until, u.service_id, u.used, u.version),
                "holds": holds, "history": history}


def _twice(db, twins: list[str], change: Change, reservation_id: str, until) -> None:
    """Pre-occupy the first twin through `allocate`, the second through the transition."""
    with db.unit_of_work() as uow:
        got = ledger.allocate(uow.session, change, among=[Unit.id == twins[0]], reservation_id=reservation_id,
                              until=until)
        assert [u.id for u in got] == twins[:1]
        uow.commit()
    with db.unit_of_work() as uow:
        ledger.preoccupy(uow.session, twins[1:], change, reservation_id=reservation_id, until=until)
        uow.commit()


def test_a_shared_unit_gets_the_same_hold_and_history_either_way(db, world):
    now, twins = utcnow(), world.pons[:2]
    with db.unit_of_work() as uow:  # on each: a service, a hold gone stale and a live one
        for n, uid in enumerate(twins):
            ledger.occupy(uow.session, [uid], Change("setup", at=now), service_id=world.services[n])
            ledger.preoccupy(uow.session, [uid], Change("setup", at=now - timedelta(hours=2)),
                             reservation_id="R-OLD", until=now - timedelta(hours=1))
            ledger.preoccupy(uow.session, [uid], Change("setup", at=now), reservation_id="R-LIVE",
                             until=now + timedelta(hours=1))
        uow.commit()
    change = Change("alice", order_ref="ORD-1", at=now)
    _twice(db, twins, change, "R-NEW", now + timedelta(hours=3))
    _twice(db, twins, change, "R-NEW", now + timedelta(hours=4))  # the same reservation again: extended
    fast, orm = _state(db, twins[0]), _state(db, twins[1])
    assert fast == orm
    assert fast["holds"][-1] == ("R-OLD", now - timedelta(hours=1))  # the stale one is the sweep's
    assert ("R-NEW", now + timedelta(hours=4)) in fast["holds"] and len(fast["holds"]) == 3
    assert [h[0] for h in fast["history"]] == ["preoccupy", "preoccupy"]
    added = fast["history"][0]
    assert added[6] == {"occupancy": "occupied", "admin_state": "in_service", "used": 1, "held": 1}
    assert added[7] == {"occupancy": "occupied", "admin_state": "in_service", "used": 1, "held": 2}
    assert all(h[-1] for h in fast["history"])  # every row has its change-feed position


def test_an_exclusive_unit_gets_the_same_row_and_history_either_way(db, world):
    now, twins = utcnow(), world.ports[:2]
    with db.unit_of_work() as uow:  # a pre-occupation that has expired counts as free
        ledger.preoccupy(uow.session, twins, Change("setup", at=now - timedelta(hours=2)),
                         reservation_id="R-OLD", until=now - timedelta(hours=1))
        uow.commit()
    _twice(db, twins, Change("alice", order_ref="ORD-2", at=now), "R-NEW", now + timedelta(hours=3))
    fast, orm = _state(db, twins[0]), _state(db, twins[1])
    assert fast == orm
    assert fast["row"][:3] == (Occupancy.PREOCCUPIED, "R-NEW", now + timedelta(hours=3)) and fast["row"][-1] == 3
    [(action, *_, before, after, _stamped)] = fast["history"]
    assert action == "preoccupy" and before["reservation_id"] == "R-OLD"  # before: the expired holder
    assert (before["occupancy"], after["occupancy"], after["reservation_id"]) == ("free", "preoccupied", "R-NEW")


def test_the_allocated_copy_is_current_for_the_rest_of_the_transaction(db, world):
    """What the caller does next with the units it got (occupy them, say) sees what was written."""
    now, pon, port = utcnow(), world.pons[0], world.ports[0]
    with db.unit_of_work() as uow:
        s = uow.session
        change = Change("alice", at=now)
        [shared] = ledger.allocate(s, change, among=[Unit.id == pon], reservation_id="R1",
                                   until=now + timedelta(hours=1))
        [exclusive] = ledger.allocate(s, change, among=[Unit.id == port], reservation_id="R1",
                                      until=now + timedelta(hours=1))
        assert [h.holder for h in shared.holds] == ["R1"] and shared.occupancy == Occupancy.PREOCCUPIED
        assert exclusive.reservation_id == "R1" and exclusive.occupancy == Occupancy.PREOCCUPIED
        shared.occupy(change, service_id=world.services[0], reservation_id="R1")
        exclusive.occupy(change, service_id=world.services[0], reservation_id="R1")
        uow.commit()
    with db.read_session() as s:
        assert (s.get(Unit, pon).used, s.get(Unit, pon).version) == (1, 3)
        assert s.scalars(select(SharedHold).where(SharedHold.unit_id == pon)).all() == []
        assert (s.get(Unit, port).service_id, s.get(Unit, port).version) == (world.services[0], 3)
        assert [h.action for h in s.scalars(select(History).where(History.resource_id == pon)
                                             .order_by(History.id))] == ["preoccupy", "occupy"]


def test_a_full_shared_unit_is_refused_and_left_as_it_was(db, world):
    now, pon = utcnow(), world.pons[0]
    with db.unit_of_work() as uow:
        uow.session.get(Unit, pon).capacity = 2
        uow.commit()
    with db.unit_of_work() as uow:
        ledger.occupy(uow.session, [pon], Change("a", at=now), service_id=world.services[0])
        ledger.preoccupy(uow.session, [pon], Change("a", at=now), reservation_id="R1", until=now + timedelta(hours=1))
        uow.commit()
    before = _state(db, pon)
    with db.unit_of_work() as uow, pytest.raises(NoCapacity, match="0 of 1 found"):
        ledger.allocate(uow.session, Change("b", at=now), among=[Unit.id == pon], reservation_id="R2",
                        until=now + timedelta(hours=1))
    assert _state(db, pon) == before
