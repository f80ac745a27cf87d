"""Occupancy transitions persisted with their history, in one transaction."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from resource_mgr.clock import utcnow
from resource_mgr.errors import DomainError, Expired, Locked
from resource_mgr.numbers import services as numbers
from resource_mgr.numbers.models import Number
from tests.ledger_world import build_world
from resource_mgr.occupancy.models import Change, History, SharedHold, Unit
from resource_mgr.states import AdminState, Occupancy


@pytest.fixture
def world(db):
    return build_world(db)


def box_port(db, world, seq=1) -> str:
    with db.read_session() as s:
        return s.scalar(select(Unit.id).where(Unit.owner_id == world["box"], Unit.seq == seq))


def history_rows(db, unit_id=None) -> list[History]:
    with db.read_session() as s:
        stmt = select(History).order_by(History.id)
        if unit_id:
            stmt = stmt.where(History.resource_id == unit_id)
        return list(s.scalars(stmt))


def count(db, model) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_transitions_persist_with_history(db, world):
    uid = box_port(db, world)
    now = utcnow()
    with db.unit_of_work() as uow:
        u = uow.session.get(Unit, uid)
        u.preoccupy(Change("alice", order_ref="ORD-1", at=now), reservation_id="R1", until=now + timedelta(hours=72))
        uow.commit()
    with db.unit_of_work() as uow:
        u = uow.session.get(Unit, uid)
        u.occupy(Change("iom", order_ref="ORD-1", at=now + timedelta(hours=1)), service_id=world["services"][0], reservation_id="R1")
        uow.commit()
    with db.read_session() as s:
        u = s.get(Unit, uid)
        assert u.occupancy == Occupancy.OCCUPIED and u.reservation_id is None
    rows = history_rows(db, uid)
    assert [(h.action, h.principal, h.order_ref) for h in rows] == [
        ("preoccupy", "alice", "ORD-1"), ("occupy", "iom", "ORD-1")]
    assert rows[0].before["occupancy"] == "free" and rows[0].after["occupancy"] == "preoccupied"
    assert rows[0].after["reservation_id"] == "R1"
    assert rows[0].at == now
    assert rows[0].resource_kind == "box_port" and rows[0].local_network_id == world["ln"]
    assert rows[1].before["occupancy"] == "preoccupied" and rows[1].after["occupancy"] == "occupied"


def test_rolled_back_unit_of_work_leaves_neither_state_nor_history(db, world):
    uid = box_port(db, world)
    now = utcnow()
    with db.unit_of_work() as uow:
        u = uow.session.get(Unit, uid)
        u.preoccupy(Change("alice", order_ref="ORD-1", at=now), reservation_id="R1", until=now + timedelta(hours=1))
        uow.session.flush()
        assert uow.session.scalar(select(func.count()).select_from(History)
                                  .where(History.resource_id == uid)) == 1  # written in the same transaction
        # no commit: leaving the block rolls back
    with db.read_session() as s:
        assert s.get(Unit, uid).occupancy == Occupancy.FREE
    assert history_rows(db, uid) == []


def test_failed_transition_inside_a_use_case_rolls_back_everything(db, world):
    first, second = box_port(db, world, 1), box_port(db, world, 2)
    now = utcnow()
    with db.unit_of_work() as uow:
        uow.session.get(Unit, second).lock(Change("ops", cutover_id="CUT-1", at=now))
        uow.commit()
    with pytest.raises(Locked):
        with db.unit_of_work() as uow:
            for uid in (first, second):  # the path: the second unit is locked
                uow.session.get(Unit, uid).preoccupy(Change("alice", order_ref="ORD-1", at=now),
                                                     reservation_id="R1", until=now + timedelta(hours=1))
            uow.commit()
    with db.read_session() as s:
        assert s.get(Unit, first).occupancy == Occupancy.FREE
    assert history_rows(db, first) == [] and [h.action for h in history_rows(db, second)] == ["lock"]


def test_transient_unit_history_is_flushed_with_it(db, world):
    """History recorded before the unit is in a session is written with the unit."""
    now = utcnow()
    with db.unit_of_work() as uow:
        u = Unit(kind="pair", name="9999", seq=9999, local_network_id=world["ln"], owner_id=world["box"],
                 root_id=world["box"], capacity=1, used=0, occupancy=Occupancy.FREE, admin_state=AdminState.IN_SERVICE)
        u.occupy(Change("loader", order_ref="BULK-1", at=now), service_id=world["services"][1])
        u.lock(Change("loader", cutover_id="CUT-9", at=now))
        uow.session.add(u)
        uow.commit()
        uid = u.id
    rows = history_rows(db, uid)
    assert uid and [(h.action, h.resource_id) for h in rows] == [("occupy", uid), ("lock", uid)]
    assert rows[1].cutover_id == "CUT-9"


def test_choosable_treats_expired_preoccupation_as_free(db, world):
    ids = [box_port(db, world, n) for n in range(1, 7)]
    now = utcnow()
    with db.unit_of_work() as uow:
        u = {i: uow.session.get(Unit, i) for i in ids}
        c = Change("alice", order_ref="ORD-1", at=now - timedelta(hours=3))
        u[ids[0]].preoccupy(c, reservation_id="R1", until=now - timedelta(hours=1))  # expired
        u[ids[1]].preoccupy(c, reservation_id="R2", until=now + timedelta(hours=1))  # live
        u[ids[2]].occupy(c, service_id=world["services"][0])
        u[ids[3]].lock(Change("ops", cutover_id="CUT-1", at=now))
        u[ids[4]].mark_faulty(Change("ops", reason="broken", at=now))
        uow.commit()
    with db.read_session() as s:
        chosen = set(s.scalars(select(Unit.id).where(Unit.owner_id == world["box"], Unit.choosable(now))))
        assert ids[0] in chosen and ids[5] in chosen
        assert not chosen & {ids[1], ids[2], ids[3], ids[4]}
        assert len(chosen) == 10 - 4
        assert s.get(Unit, ids[0]).effective_occupancy(now) == Occupancy.FREE


def test_choosable_for_shared_units_and_numbers(db, world):
    now = utcnow()
    with db.unit_of_work() as uow:
        port = uow.session.scalars(select(Unit).where(Unit.root_id == world["olt"]).order_by(Unit.id)).first()
        port.capacity = 2
        port.occupy(Change("a", at=now), service_id=world["services"][0])
        port.preoccupy(Change("a", at=now), reservation_id="R1", until=now + timedelta(hours=1))
        uow.commit()
        port_id = port.id
    with db.read_session() as s:
        # one place used, the other held: nothing to offer (the SQL counts live holds)
        assert s.scalar(select(Unit.id).where(Unit.id == port_id, Unit.choosable(now))) is None
        later = now + timedelta(hours=2)  # the hold has expired: its place is offered again
        assert s.scalar(select(Unit.id).where(Unit.id == port_id, Unit.choosable(later))) == port_id
        assert s.scalar(select(func.count()).select_from(SharedHold)) == 1
    with db.unit_of_work() as uow:
        port = uow.session.get(Unit, port_id)
        port.occupy(Change("a", at=now), service_id=world["services"][1], reservation_id="R1")
        uow.commit()
    with db.read_session() as s:
        assert s.scalar(select(Unit.id).where(Unit.id == port_id, Unit.choosable(now))) is None
        assert s.scalar(select(func.count()).select_from(SharedHold)) == 0
        assert s.get(Unit, port_id).used == 2

    with db.unit_of_work() as uow:
        pool = numbers.create_pool(uow.session, local_network_id=world["ln"], name="GZ-POOL", quarantine_days=90)
        numbers.add_segment(uow.session, pool_id=pool.id, first="87650000", last="87650009")
        n = uow.session.scalar(select(Unit).join(Number, Number.id == Unit.id).where(Number.number == "87650001"))
        n.occupy(Change("a", at=now - timedelta(days=1)), service_id=world["services"][2])
        n.release(Change("a", at=now - timedelta(days=1)), service_id=world["services"][2], quarantine_days=pool.quarantine_days)
        uow.commit()
        nid = n.id
    with db.read_session() as s:
        free = set(s.scalars(select(Number.number).join(Unit, Unit.id == Number.id).where(Unit.choosable(now))))
        assert "87650001" not in free and len(free) == 9
        later = now + timedelta(days=90)
        assert "87650001" in set(s.scalars(select(Number.number).join(Unit, Unit.id == Number.id)
                                           .where(Unit.choosable(later))))
    assert [h.action for h in history_rows(db, nid)] == ["occupy", "release"]


def test_expired_hold_taken_by_another_order_persists(db, world):
    uid = box_port(db, world)
    now = utcnow()
    with db.unit_of_work() as uow:
        uow.session.get(Unit, uid).preoccupy(Change("a", order_ref="O1", at=now - timedelta(hours=2)),
                                             reservation_id="R1", until=now - timedelta(hours=1))
        uow.commit()
    with db.unit_of_work() as uow:
        u = uow.session.get(Unit, uid)
        with pytest.raises(Expired):
            u.occupy(Change("a", order_ref="O1", at=now), service_id=world["services"][0], reservation_id="R1")
        u.preoccupy(Change("b", order_ref="O2", at=now), reservation_id="R2", until=now + timedelta(hours=1))
        uow.commit()
    with db.read_session() as s:
        assert s.get(Unit, uid).reservation_id == "R2"
    assert [h.order_ref for h in history_rows(db, uid)] == ["O1", "O2"]


# Races between processes, which fail without the locking: test_ledger_races.py.


def test_refused_transition_writes_nothing(db, world):
    uid = box_port(db, world)
    now = utcnow()
    with db.unit_of_work() as uow:
        uow.session.get(Unit, uid).occupy(Change("a", order_ref="O1", at=now), service_id=world["services"][0])
        uow.commit()
    before = count(db, History)
    with db.unit_of_work() as uow:
        u = uow.session.get(Unit, uid)
        with pytest.raises(DomainError):
            u.preoccupy(Change("b", order_ref="O2", at=now), reservation_id="R2", until=now + timedelta(hours=1))
        with pytest.raises(DomainError):
            u.release(Change("b", at=now), service_id="S-OTHER")
        with pytest.raises(DomainError):
            u.unlock(Change("b", cutover_id="CUT-1", at=now))
        uow.commit()
    assert count(db, History) == before
    with db.read_session() as s:
        assert s.get(Unit, uid).occupancy == Occupancy.OCCUPIED
