"""The ledger safe by construction: stale writes fail, the database refuses inconsistent rows,
shared units know their services, one effective-occupancy definition, the allocation path."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from resource_mgr.bulk.importer import import_bundle
from resource_mgr.clock import utcnow
from resource_mgr.errors import Conflict, IllegalTransition, NoCapacity, NotFound
from tests.ledger_world import build_world
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Change, History, SharedHold, SharedUse, Unit
from resource_mgr.occupancy.sweep import sweep
from resource_mgr.states import AdminState, Occupancy

EXAMPLE = Path(__file__).parents[1] / "data" / "bulk_example"


@pytest.fixture
def world(db):
    return build_world(db)


def _history(db, unit_id: str) -> list[History]:
    with db.read_session() as s:
        return list(s.scalars(select(History).where(History.resource_id == unit_id).order_by(History.id)))


# -- a stale copy cannot win -----------------------------------------------------------------

def test_a_write_from_a_stale_copy_is_a_conflict(db, world):
    uid = world.ports[0]
    stale = db.read_session()
    copy = stale.get(Unit, uid)
    stale.commit()  # the copy outlives its transaction (expire_on_commit is off)
    with db.unit_of_work() as uow:
        ledger.preoccupy(uow.session, [uid], Change("alice", at=utcnow()), reservation_id="R1",
                         until=utcnow() + timedelta(hours=1))
        uow.commit()
    copy.admin_reason = "written without a transition, from what was read before"
    with pytest.raises(Conflict) as refused:  # a domain error (409), not StaleDataError (a 500)
        stale.commit()
    assert refused.value.code == "conflict" and refused.value.extra == {"unit_id": uid}
    stale.close()
    with db.read_session() as s:
        u = s.get(Unit, uid)
        assert (u.occupancy, u.reservation_id, u.admin_reason, u.version) == (Occupancy.PREOCCUPIED, "R1", None, 2)


def test_a_transition_on_a_stale_copy_reloads_it_first(db, world):
    """The issue's case: two sessions occupy the same PON port, neither locking; both count."""
    pon = world.pons[0]
    late = db.read_session()
    copy = late.get(Unit, pon)
    late.commit()
    with db.unit_of_work() as uow:
        uow.session.get(Unit, pon).occupy(Change("a", at=utcnow()), service_id=world.services[0])
        uow.commit()
    assert copy.used == 0  # what the late session read
    copy.occupy(Change("b", at=utcnow()), service_id=world.services[1])
    late.commit()
    late.close()
    with db.read_session() as s:
        u = s.get(Unit, pon)
        assert u.used == 2 and sorted(x.service_id for x in u.uses) == sorted(world.services[:2])


def test_two_open_transactions_occupying_a_shared_port_both_count(db, world):
    if db.dialect != "postgresql":
        pytest.skip("two open writing transactions need row locks (SQLite has one writer)")
    pon = world.pons[0]
    with db.unit_of_work() as first, db.unit_of_work() as second:
        a = first.session.get(Unit, pon)
        b = second.session.get(Unit, pon)
        assert a.used == b.used == 0
        a.occupy(Change("a", at=utcnow()), service_id=world.services[0])
        first.commit()
        b.occupy(Change("b", at=utcnow()), service_id=world.services[1])  # locks, sees used = 1
        second.commit()
    with db.read_session() as s:
        assert s.get(Unit, pon).used == 2
        assert s.scalar(select(func.count()).select_from(SharedUse).where(SharedUse.unit_id == pon)) == 2


# -- the database refuses inconsistent rows ---------------------------------------------------

@pytest.mark.parametrize("assignment", [
    "used = 65",  # over capacity
    "used = -1",
    "capacity = 0",
    "occupancy = 'busy'",
    "admin_state = 'broken'",
    "admin_state = 'locked'",  # without the cutover that locks
    "locked_by = 'CUT-1'",  # in service, yet locked
    "service_id = '{service}'",  # a shared unit keeps its services in shared_use
    "used = 1",  # carries a service, yet free
])
def test_constraints_refuse_an_inconsistent_shared_unit(db, world, assignment):
    _refused(db, world.pons[0], assignment.format(service=world.services[0]))


@pytest.mark.parametrize("assignment", [
    "occupancy = 'occupied'",  # by nobody
    "occupancy = 'preoccupied'",  # for no reservation
    "reservation_id = 'R1'",  # free, yet held
    "service_id = '{service}'",  # free, yet occupied
    "occupancy = 'occupied', service_id = '{service}', reservation_id = 'R1'",
    "used = 1",
])
def test_constraints_refuse_an_inconsistent_exclusive_unit(db, world, assignment):
    _refused(db, world.ports[0], assignment.format(service=world.services[0]))


def _refused(db, unit_id: str, assignment: str) -> None:
    with pytest.raises(IntegrityError):
        with db.engine.begin() as conn:
            conn.execute(text(f"UPDATE unit SET {assignment} WHERE id = :id"), {"id": unit_id})
    with db.engine.begin() as conn:  # a consistent change passes the same constraints
        conn.execute(text("UPDATE unit SET admin_reason = 'checked' WHERE id = :id"), {"id": unit_id})


def test_a_status_outside_states_is_refused_before_the_database(db, world):
    with db.unit_of_work() as uow:
        u = uow.session.get(Unit, world.ports[0])
        assert isinstance(u.occupancy, Occupancy) and isinstance(u.admin_state, AdminState)
        u.occupancy = "busy"
        with pytest.raises(StatementError):
            uow.session.flush()


# -- shared units know their services ----------------------------------------------------------

def test_release_of_a_service_not_on_a_shared_unit_is_refused(db, world):
    pon, (s1, *_) = world.pons[0], world.services
    with db.unit_of_work() as uow:
        ledger.occupy(uow.session, [pon], Change("a", at=utcnow()), service_id=s1)
        uow.commit()
    with db.unit_of_work() as uow, pytest.raises(IllegalTransition, match="S-NEVER-HERE is not on it"):
        ledger.release(uow.session, [pon], Change("a", at=utcnow()), service_id="S-NEVER-HERE")
    with db.unit_of_work() as uow:
        ledger.release(uow.session, [pon], Change("a", at=utcnow()), service_id=s1)
        uow.commit()
    with db.read_session() as s:
        assert s.get(Unit, pon).used == 0 and s.scalar(select(func.count()).select_from(SharedUse)) == 0


@pytest.mark.parametrize("which", ["pons", "ports"])
def test_a_retried_commit_changes_nothing(db, world, which):
    """Each step runs twice, in its own unit of work, as a client retrying would."""
    uid, s1, now = getattr(world, which)[0], world.services[0], utcnow()
    steps = [
        lambda s: ledger.preoccupy(s, [uid], Change("a", at=now), reservation_id="R1", until=now + timedelta(hours=1)),
        lambda s: ledger.occupy(s, [uid], Change("a", at=now), service_id=s1, reservation_id="R1"),
        lambda s: ledger.release(s, [uid], Change("a", at=now), service_id=s1),
        lambda s: ledger.preoccupy(s, [uid], Change("a", at=now), reservation_id="R2", until=now + timedelta(hours=1)),
        lambda s: ledger.release_preoccupation(s, [uid], Change("a", at=now), reservation_id="R2"),
    ]
    first: tuple = ()
    for step in steps:
        for attempt in range(2):
            with db.unit_of_work() as uow:
                step(uow.session)
                uow.commit()
            with db.read_session() as s:
                state = s.get(Unit, uid)
                seen = (state.occupancy, state.used, state.version, len(_history(db, uid)))
            if attempt:
                assert seen == first, "the retry changed something"
            first = seen
    assert [h.action for h in _history(db, uid)] == [
        "preoccupy", "occupy", "release", "preoccupy", "release_preoccupation"]


def test_a_full_port_with_held_places_is_not_offered(db, world):
    pon, now = world.pons[0], utcnow()
    with db.unit_of_work() as uow:
        u = uow.session.get(Unit, pon)
        u.capacity = 3
        u.occupy(Change("a", at=now), service_id=world.services[0])
        u.preoccupy(Change("a", at=now), reservation_id="R1", until=now + timedelta(hours=1))
        u.preoccupy(Change("a", at=now), reservation_id="R2", until=now + timedelta(hours=3))
        uow.commit()
    with db.read_session() as s:
        offered = lambda at: s.scalar(select(Unit.id).where(Unit.id == pon, Unit.choosable(at)))  # noqa: E731
        assert offered(now) is None
        assert offered(now + timedelta(hours=2)) == pon  # R1's hold has expired


# -- one definition of the effective occupancy -------------------------------------------------

def test_effective_occupancy_in_sql_is_the_one_in_python(db, world):
    now = utcnow()
    past, soon = now - timedelta(hours=1), now + timedelta(hours=1)
    with db.unit_of_work() as uow:
        s = uow.session
        p = [s.get(Unit, i) for i in world.ports[:4]]
        n = [s.get(Unit, i) for i in world.pons[:5]]
        p[0].preoccupy(Change("a", at=past - timedelta(hours=1)), reservation_id="R1", until=past)
        p[1].preoccupy(Change("a", at=now), reservation_id="R2", until=soon)
        p[2].occupy(Change("a", at=now), service_id=world.services[0])
        n[0].preoccupy(Change("a", at=past - timedelta(hours=1)), reservation_id="R3", until=past)  # only expired
        n[1].preoccupy(Change("a", at=now), reservation_id="R4", until=soon)
        n[2].occupy(Change("a", at=now), service_id=world.services[1])
        n[3].capacity = 2
        n[3].occupy(Change("a", at=now), service_id=world.services[2])
        n[3].preoccupy(Change("a", at=now), reservation_id="R5", until=soon)
        p[3].lock(Change("ops", cutover_id="CUT-1", at=now))
        uow.commit()
    ids = world.ports[:5] + world.pons[:5]
    for at in (now, now + timedelta(hours=2)):
        with db.read_session() as s:
            sql = dict(s.execute(select(Unit.id, Unit.effective_occupancy(at)).where(Unit.id.in_(ids))).all())
            chosen = set(s.scalars(select(Unit.id).where(Unit.id.in_(ids), Unit.choosable(at))))
            for unit in s.scalars(select(Unit).where(Unit.id.in_(ids))):
                assert sql[unit.id] == unit.effective_occupancy(at), (unit.kind, unit.name, at)
                assert (unit.id in chosen) == (unit.spare(at) > 0 and unit.admin_state == AdminState.IN_SERVICE)
    assert sql[world.pons[0]] == Occupancy.FREE  # its column still says pre-occupied


def test_metrics_count_shared_units_by_their_effective_occupancy(db, world):
    from interfaces.http.observability import DatabaseCollector

    now = utcnow()
    with db.unit_of_work() as uow:
        s = uow.session
        s.get(Unit, world.pons[0]).preoccupy(Change("a", at=now - timedelta(hours=2)), reservation_id="R1",
                                             until=now - timedelta(hours=1))  # expired, not swept
        s.get(Unit, world.pons[1]).preoccupy(Change("a", at=now), reservation_id="R2", until=now + timedelta(hours=1))
        uow.commit()
    app = SimpleNamespace(extensions={"rmgr": SimpleNamespace(db=db)})
    units = next(iter(DatabaseCollector(app).collect()))
    counts = {tuple(sample.labels.values()): sample.value for sample in units.samples}
    total = len(world.pons)
    assert counts[("pon_port", "preoccupied")] == 1
    assert counts[("pon_port", "free")] == total - 1


# -- the allocation path -----------------------------------------------------------------------

def test_allocate_takes_the_lowest_free_places_and_says_when_none_is_left(db, world):
    now = utcnow()
    with db.unit_of_work() as uow:
        ledger.occupy(uow.session, world.ports[:1], Change("a", at=now), service_id=world.services[0])
        uow.commit()
    taken = []
    for n in range(9):
        with db.unit_of_work() as uow:
            got = ledger.allocate(uow.session, Change("a", at=now), among=[Unit.owner_id == world.box],
                                  reservation_id=f"R{n}", until=now + timedelta(hours=1))
            taken += [u.id for u in got]
            uow.commit()
    assert taken == world.ports[1:]
    with db.unit_of_work() as uow, pytest.raises(NoCapacity, match="0 of 1 found"):
        ledger.allocate(uow.session, Change("a", at=now), among=[Unit.owner_id == world.box],
                        reservation_id="R-LATE", until=now + timedelta(hours=1), what="box port")


def test_allocate_on_a_shared_port_gives_one_place_per_reservation(db, world):
    now, pon = utcnow(), world.pons[0]
    with db.unit_of_work() as uow:
        uow.session.get(Unit, pon).capacity = 2
        uow.commit()
    for n in range(2):
        with db.unit_of_work() as uow:
            assert [u.id for u in ledger.allocate(uow.session, Change("a", at=now), among=[Unit.id == pon],
                                                  reservation_id=f"R{n}", until=now + timedelta(hours=1))] == [pon]
            uow.commit()
    with db.unit_of_work() as uow, pytest.raises(NoCapacity):
        ledger.allocate(uow.session, Change("a", at=now), among=[Unit.id == pon], reservation_id="R9",
                        until=now + timedelta(hours=1))
    with db.read_session() as s:
        assert sorted(s.scalars(select(SharedHold.holder).where(SharedHold.unit_id == pon))) == ["R0", "R1"]


def test_a_path_is_taken_whole_or_not_at_all(db, world):
    now = utcnow()
    with db.unit_of_work() as uow:
        ledger.preoccupy(uow.session, world.ports[2:3], Change("b", at=now), reservation_id="R-OTHER",
                         until=now + timedelta(hours=1))
        uow.commit()
    with db.unit_of_work() as uow, pytest.raises(NoCapacity):
        ledger.preoccupy(uow.session, [world.pons[0], *world.ports[:3]], Change("a", at=now), reservation_id="R1",
                         until=now + timedelta(hours=1))
        uow.commit()
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Unit).where(Unit.reservation_id == "R1")) == 0
        assert s.scalar(select(func.count()).select_from(SharedHold)) == 0
    with db.unit_of_work() as uow, pytest.raises(NotFound):
        ledger.lock_units(uow.session, ["NO-SUCH-UNIT"])


def test_the_sweep_attributes_an_expired_shared_hold_to_who_made_it(db, world):
    now = utcnow()
    with db.unit_of_work() as uow:
        # the change does not repeat the reservation: the history row names it all the same
        ledger.preoccupy(uow.session, [world.pons[0], world.ports[0]], Change("user:alice", at=now - timedelta(hours=2)),
                         reservation_id="R1", until=now - timedelta(hours=1))
        uow.commit()
    with db.unit_of_work() as uow:
        result = sweep(uow.session, now)
        uow.commit()
    assert result.by_principal == {"user:alice": 1} and result.unattributed == 0 and result.units == 2
    assert [h.reservation_id for h in _history(db, world.pons[0])] == ["R1", "R1"]


# -- the bulk import writes the same ledger ----------------------------------------------------

def test_import_writes_shared_services_and_versions_that_satisfy_the_rules(db):
    report = import_bundle(db, str(EXAMPLE))
    assert report.ok and report.written, report.problems
    with db.read_session() as s:
        counted = dict(s.execute(select(SharedUse.unit_id, func.count()).group_by(SharedUse.unit_id)).all())
        shared = s.execute(select(Unit.id, Unit.used).where(Unit.capacity > 1)).all()
        assert shared and any(used for _, used in shared)
        assert {uid: used for uid, used in shared if used} == counted
        assert set(s.scalars(select(Unit.version).distinct())) == {1}
        pon = s.scalar(select(Unit).where(Unit.id.in_(list(counted))).limit(1))
        service = pon.uses[0].service_id
    with db.unit_of_work() as uow:  # what was imported is released like anything else
        assert ledger.release(uow.session, [pon.id], Change("a", at=utcnow()), service_id=service)[0].used == pon.used - 1
        uow.commit()
