"""Cutovers in the domain (resource_mgr.cutovers), on both backends: validation codes, lock,
apply, rollback equality, unlock, copper to fibre, the locked-unit refusals. The network is
tests/cutover_world.py (its docstring has the diagram); the jobs run here by `run_job`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.cutovers import services as cut
from resource_mgr.cutovers.models import Cutover
from resource_mgr.errors import Conflict, Locked
from resource_mgr.events.models import Event
from resource_mgr.inventory.models import Connection
from resource_mgr.jobs.services import run_job
from resource_mgr.occupancy.models import Change, History, Unit
from resource_mgr.security.principal import Principal
from resource_mgr.states import AdminState, CutoverState, JobState, Occupancy, Role

from cutover_world import build, diff, snapshot
from design_world import DesignWorld

PLANNER = Principal(name="user:planner", roles=frozenset({Role.PLANNER}), local_network_ids=None)


@pytest.fixture
def settings(db):
    return load_settings(environ={}, database_url=db.url)


@pytest.fixture
def world(db):
    with db.unit_of_work() as uow:
        n = build(uow.session)
        uow.commit()
    return n


def create(db, settings, mapping, name="D1 → D2"):
    now = utcnow()
    with db.unit_of_work(principal=PLANNER.name) as uow:
        c = cut.create_cutover(uow.session, principal=PLANNER, settings=settings, now=now, name=name,
                               window_start=now, window_end=now + timedelta(hours=6), mapping=mapping)
        uow.commit()
    return c


def lock(db, settings, cutover_id):
    with db.unit_of_work(principal=PLANNER.name) as uow:
        c = cut.lock_cutover(uow.session, principal=PLANNER, settings=settings, now=utcnow(), cutover_id=cutover_id)
        uow.commit()
    return c


def run(db, start, cutover_id):
    with db.unit_of_work(principal=PLANNER.name) as uow:
        _, job = start(uow.session, principal=PLANNER, now=utcnow(), cutover_id=cutover_id)
        uow.commit()
    assert run_job(db, job.id) == JobState.SUCCEEDED.value, job.id
    with db.read_session() as s:
        return s.get(Cutover, cutover_id)


def cable_mapping(n, pairs=(0, 1, 2, 3)):
    return [{"old": n.c.pairs[k], "new": n.new_pairs[k]} for k in pairs]


def test_a_cable_replacement_locks_applies_and_rolls_back_exactly(db, settings, world):
    n = world
    before = snapshot_of(db)
    c = create(db, settings, cable_mapping(n))
    assert c.valid and c.errors == [] and c.state == CutoverState.DRAFT and c.row_count == 4
    c = lock(db, settings, c.id)
    assert c.state == CutoverState.LOCKED
    with db.read_session() as s:
        for k in range(4):
            old, new = s.get(Unit, n.c.pairs[k]), s.get(Unit, n.new_pairs[k])
            assert old.admin_state == AdminState.LOCKED and old.locked_by == c.id
            assert new.occupancy == Occupancy.PREOCCUPIED and new.reservation_id == c.id
            assert new.preoccupied_until >= c.window_end + timedelta(hours=settings.cutover_grace_hours)
        assert s.scalar(select(func.count()).select_from(History).where(
            History.cutover_id == c.id, History.action == "preoccupy")) == 4
    c = run(db, cut.start_apply, c.id)
    assert c.state == CutoverState.APPLIED and (c.done, c.total) == (4, 4)
    with db.read_session() as s:
        for k, sid in enumerate(n.services):
            path = list(s.scalars(select(ServiceUnit.unit_id).where(ServiceUnit.service_id == sid)
                                  .order_by(ServiceUnit.seq)))
            assert path[1] == n.new_pairs[k] and n.c.pairs[k] not in path
            new, old = s.get(Unit, n.new_pairs[k]), s.get(Unit, n.c.pairs[k])
            assert new.occupancy == Occupancy.OCCUPIED and new.service_id == sid
            assert old.occupancy == Occupancy.FREE and old.admin_state == AdminState.LOCKED
            # the route runs through the new pair: box port ─ new pair ─ distribution terminal
            ends = {frozenset((a, z)) for a, z in s.execute(select(Connection.a_unit_id, Connection.z_unit_id))}
            assert frozenset((n.c.ports[k], n.new_pairs[k])) in ends
            assert frozenset((n.new_pairs[k], n.c.dts[k])) in ends
            assert not any(n.c.pairs[k] in e for e in ends)
        moved = s.scalars(select(History).where(History.cutover_id == c.id, History.resource_kind == "pair",
                                                History.action.in_(("occupy", "release")))).all()
        assert sorted(h.resource_id for h in moved if h.action == "occupy") == sorted(n.new_pairs[:3])
        assert sorted(h.resource_id for h in moved if h.action == "release") == sorted(n.c.pairs[:3])
        assert {e.type for e in s.scalars(select(Event).where(Event.cutover_id == c.id))} == \
            {"cutover.locked", "cutover.applied"}
    c = run(db, cut.start_rollback, c.id)
    assert c.state == CutoverState.ROLLED_BACK
    assert diff(before, snapshot_of(db)) == []  # every unit, service, path, connection as before
    with db.read_session() as s:
        assert "cutover.rolled_back" in {e.type for e in s.scalars(select(Event).where(Event.cutover_id == c.id))}


def snapshot_of(db):
    with db.read_session() as s:
        return snapshot(s)


def test_unlock_returns_everything_as_before_the_lock(db, settings, world):
    before = snapshot_of(db)
    c = lock(db, settings, create(db, settings, cable_mapping(world)).id)
    with db.unit_of_work(principal=PLANNER.name) as uow:
        c = cut.unlock_cutover(uow.session, principal=PLANNER, now=utcnow(), cutover_id=c.id)
        uow.commit()
    assert c.state == CutoverState.CANCELLED
    assert diff(before, snapshot_of(db)) == []
    with db.read_session() as s:
        assert "cutover.cancelled" in {e.type for e in s.scalars(select(Event).where(Event.cutover_id == c.id))}


def test_wrong_state_transitions_are_conflicts(db, settings, world):
    c = create(db, settings, cable_mapping(world))
    for start in (cut.start_apply, cut.start_rollback):
        with db.unit_of_work() as uow, pytest.raises(Conflict):
            start(uow.session, principal=PLANNER, now=utcnow(), cutover_id=c.id)
    with db.unit_of_work() as uow, pytest.raises(Conflict):
        cut.unlock_cutover(uow.session, principal=PLANNER, now=utcnow(), cutover_id=c.id)
    lock(db, settings, c.id)
    with pytest.raises(Conflict):
        lock(db, settings, c.id)


def test_every_kind_of_invalid_row_is_reported(db, settings, world):
    n = world
    with db.unit_of_work() as uow:
        w = n.w
        w.s = uow.session
        elsewhere = DesignWorld(uow.session, code="SZ").copper(ports=1)
        core = n.f.riser_cores[1]
        w.take(n.new_pairs[1], product="pots", technology="POTS")
        w.set(n.new_pairs[2], admin_state=AdminState.LOCKED, locked_by="01OTHERCUTOVER000000000000")
        w.link(n.new_pairs[3], n.c.dts[3])  # wired already: the old pair's connections cannot move to it
        spare = w.cable("copper", 2, 100.0)
        spare_pair = w.unit(spare, "pair", 1)
        uow.commit()
    mapping = [
        {"old": "NO-SUCH-UNIT", "new": n.new_pairs[0]},                  # 1 unknown_unit
        {"old": n.c.pairs[0], "new": core},                              # 2 kind_mismatch
        {"old": n.c.pairs[1], "new": n.new_pairs[1]},                    # 3 new_not_free
        {"old": n.c.pairs[2], "new": n.new_pairs[2]},                    # 4 locked_elsewhere
        {"old": n.c.pairs[2], "new": spare_pair},                        # 5 duplicate (old of row 4)
        {"old": n.c.pairs[0], "new": elsewhere.pairs[0]},                # 6 other_network
        {"old": n.c.ppairs[0], "new": n.new_pairs[3]},                   # 7 kind fits; route_break
    ]
    c = create(db, settings, mapping)
    assert not c.valid and c.state == CutoverState.DRAFT
    codes = {e["row"]: e["code"] for e in c.errors}
    assert codes == {1: "unknown_unit", 2: "kind_mismatch", 3: "new_not_free", 4: "locked_elsewhere",
                     5: "duplicate", 6: "other_network", 7: "route_break"}, c.errors
    assert all(e["reason"] and e["old"] == mapping[e["row"] - 1]["old"] for e in c.errors)
    with pytest.raises(Conflict):  # a cutover with errors cannot be locked
        lock(db, settings, c.id)


def test_locked_units_are_refused_to_orders_and_never_designed(db, settings, world):
    n = world
    c = lock(db, settings, create(db, settings, [{"old": n.c.heads[3], "new": n.c.all_heads[5]}]).id)
    from resource_mgr.design.errors import NoDesign
    from resource_mgr.design.services import design_path

    with db.read_session() as s:
        # box port 4 is the only free one, and its path ends on the locked DSLAM port 4
        with pytest.raises(NoDesign) as refused:
            design_path(s, address_id=n.c.building, technology="ADSL", settings=settings, now=utcnow())
        assert refused.value.reasons == ["locked"]
        unit = s.get(Unit, n.c.heads[3])
        with pytest.raises(Locked):
            unit.preoccupy(Change(principal="user:bss", cutover_id=None), reservation_id="R1",
                           until=utcnow() + timedelta(hours=1))
    assert c.state == CutoverState.LOCKED


def test_copper_to_fibre_moves_the_dsl_service_onto_an_ftth_path_and_back(db, settings, world):
    n = world
    before = snapshot_of(db)
    sid = n.services[0]
    c = create(db, settings, [{"old": n.c.heads[0], "new": n.f.ports[1]}])
    assert c.valid, c.errors
    with db.read_session() as s:  # the field work, as validated: the ONT to install at FAT port 2
        work = cut.field_work(s, c)
        assert work["total"] == 1 and work["rows"][0]["path"][0] == n.f.ports[1]
        assert [w["action"] for w in work["rows"][0]["work"]] == ["install_ont"]
        assert work["rows"][0]["work"][0]["a_unit_id"] == n.f.ports[1]
    c = lock(db, settings, c.id)
    with db.read_session() as s:
        assert [w["action"] for w in cut.field_work(s, c)["rows"][0]["work"]] == ["install_ont"]  # as locked
        assert s.get(Unit, n.f.ports[1]).reservation_id == c.id
        assert s.get(Unit, n.f.pon).active_holds(utcnow())  # the whole FTTH path is held
    c = run(db, cut.start_apply, c.id)
    with db.read_session() as s:
        svc = s.get(Service, sid)
        assert (svc.product, svc.technology) == ("ftth_broadband", "FTTH")
        path = [su.unit_id for su in svc.path]
        assert path[0] == n.f.ports[1] and path[-1] == n.f.pon
        assert s.get(Unit, n.f.pon).carries(sid)
        assert s.get(Unit, n.c.ports[0]).occupancy == Occupancy.FREE
        assert s.get(Unit, n.c.heads[0]).occupancy == Occupancy.FREE
    run(db, cut.start_rollback, c.id)
    assert diff(before, snapshot_of(db)) == []


def test_an_order_for_the_building_cannot_take_the_locked_path(db, settings, world):
    """The only free copper path runs through D1 pair 4: once the cutover locks it, the order is
    refused (no_capacity, reason `locked`) and holds nothing; after unlock the same order succeeds."""
    from resource_mgr.errors import NoCapacity
    from resource_mgr.orders import services as orders

    n = world
    sales = Principal(name="user:sales", roles=frozenset({Role.SALES}), local_network_ids=None)
    c = lock(db, settings, create(db, settings, cable_mapping(n)).id)

    def reserve():
        with db.unit_of_work(principal=sales.name) as uow:
            res, _ = orders.reserve(uow.session, principal=sales, settings=settings, now=utcnow(), order_ref="O-1",
                                    action="new", products=["adsl_broadband"], address_id=n.c.building)
            uow.commit()
        return res

    with pytest.raises(NoCapacity) as refused:
        reserve()
    assert refused.value.extra["reasons"] == ["locked"]
    with db.unit_of_work(principal=PLANNER.name) as uow:
        cut.unlock_cutover(uow.session, principal=PLANNER, now=utcnow(), cutover_id=c.id)
        uow.commit()
    assert n.c.pairs[3] in reserve().unit_ids


def test_pon_room_counts_the_designs_ont_limit(db, settings, world):
    """PON port 1 (two ONTs on it) → PON port 2 of the same OLT (capacity 64, empty): it fits,
    unless the design's `design_max_onts_per_pon` leaves fewer places than the services to move,
    as the design itself would count them."""
    from resource_mgr.config import Settings
    from resource_mgr.cutovers.validation import validate

    n = world
    with db.unit_of_work() as uow:
        n.w.s = uow.session
        for _ in range(2):
            n.w.take(n.f.pon)
        pon2 = n.w.unit(n.f.olt, "pon_port", 2)
        uow.commit()
    rows = [{"old": n.f.pon, "new": pon2}]
    with db.read_session() as s:
        assert validate(s, rows, settings=settings, now=utcnow(), local_network_ids=None).valid
        report = validate(s, rows, settings=Settings(design_max_onts_per_pon=1), now=utcnow(),
                          local_network_ids=None)
    assert [e.code for e in report.errors] == ["new_not_free"], report.errors
    assert "design_max_onts_per_pon" in report.errors[0].reason


def test_keep_number_false_gives_a_number_of_the_exchange_and_quarantines_the_old_one(db, settings):
    """A POTS line on D1 pair 1 (number 8765 2340, switch S's pool) moved to D2 pair 1 without
    keeping its number: it gets a free normal number of S's pool, 8765 2340 is released into the
    pool's 30-day quarantine; rollback gives 8765 2340 back and frees the new one (every unit and
    service as before, field by field)."""
    from resource_mgr.numbers import services as numbers
    from resource_mgr.numbers.models import Number

    from cutover_world import CHANGE, serve

    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session, code="NB")
        c = w.copper(ports=2, head="T-PSTN-8", jumpered=2, mdf_jumpered=2)
        new_pair = w.unit(w.cable("copper", 2, 300.0), "pair", 1)
        pool = numbers.create_pool(uow.session, local_network_id=w.ln, name="NB-POOL", switch_id=c.head,
                                   quarantine_days=30)
        numbers.add_segment(uow.session, pool_id=pool.id, first="87652340", last="87652349")
        path = [c.ports[0], c.pairs[0], c.dts[0], c.fts[0], c.ppairs[0], c.lts[0], c.ets[0], c.heads[0]]
        sid = serve(w, path, product="pots", technology="POTS", address=c.building, number="87652340")
        old_number = uow.session.scalar(select(Number.id).where(Number.number == "87652340"))
        uow.session.get(Unit, old_number).occupy(CHANGE, service_id=sid)
        uow.commit()
    before = snapshot_of(db)
    c_ = create(db, settings, [{"old": c.pairs[0], "new": new_pair, "keep_number": False}])
    assert c_.valid, c_.errors
    lock(db, settings, c_.id)
    applied = run(db, cut.start_apply, c_.id)
    with db.read_session() as s:
        svc = s.get(Service, sid)
        assert svc.number != "87652340"
        new = s.scalar(select(Number).where(Number.number == svc.number))
        assert new.pool_id == pool.id
        assert s.get(Unit, new.id).service_id == sid and s.get(Unit, new.id).occupancy == Occupancy.OCCUPIED
        old = s.get(Unit, old_number)
        assert old.occupancy == Occupancy.FREE and old.service_id is None
        assert old.quarantine_until >= applied.applied_at + timedelta(days=29)
        assert [su.unit_id for su in svc.path][1] == new_pair
    run(db, cut.start_rollback, c_.id)
    assert diff(before, snapshot_of(db)) == []


def test_a_pending_order_on_an_old_unit_makes_the_lock_409_naming_the_order(db, settings, world):
    """Order O-7 holds the building's only free copper path (through D1 pair 4): locking the cable
    replacement would strand it, so the lock is 409 and names the reservation and its order_ref
    (the dispatcher commits or cancels it, then locks again); nothing is locked meanwhile."""
    from resource_mgr.orders import services as orders

    n = world
    sales = Principal(name="user:sales", roles=frozenset({Role.SALES}), local_network_ids=None)
    c = create(db, settings, cable_mapping(n))
    with db.unit_of_work(principal=sales.name) as uow:
        res, _ = orders.reserve(uow.session, principal=sales, settings=settings, now=utcnow(), order_ref="O-7",
                                action="new", products=["adsl_broadband"], address_id=n.c.building)
        uow.commit()
    assert n.c.pairs[3] in res.unit_ids
    with pytest.raises(Conflict) as refused:
        lock(db, settings, c.id)
    pending = refused.value.extra["pending_orders"]
    assert [(p["row"], p["unit_id"], p["reservation_id"], p["order_ref"]) for p in pending] == \
        [(4, n.c.pairs[3], res.id, "O-7")]
    assert refused.value.extra["pending_count"] == 1 and "O-7" in refused.value.detail
    with db.read_session() as s:
        assert s.get(Cutover, c.id).state == CutoverState.DRAFT
        assert s.scalar(select(func.count()).select_from(Unit).where(Unit.locked_by == c.id)) == 0
    with db.unit_of_work(principal=sales.name) as uow:  # resolved: cancelled, the lock goes through
        orders.cancel(uow.session, principal=sales, now=utcnow(), reservation_id=res.id, reason="cutover")
        uow.commit()
    assert lock(db, settings, c.id).state == CutoverState.LOCKED


def test_an_ngn_phone_over_copper_moves_to_fibre_as_a_pots_line_does(db, settings, world):
    """An NGN phone on a copper line (line port 1 of a gateway, number kept) mapped to FAT port 2:
    it validates (it was `route_break`), moves onto the FTTH path as `ngn_phone` over FTTH with its
    number, and rolls back exactly."""
    from cutover_world import serve

    n = world
    with db.unit_of_work() as uow:
        n.w.s = uow.session
        g = n.w.copper(ports=1, head="T-PSTN-8", jumpered=1, mdf_jumpered=1, building=n.c.building)
        path = [g.ports[0], g.pairs[0], g.dts[0], g.fts[0], g.ppairs[0], g.lts[0], g.ets[0], g.heads[0]]
        sid = serve(n.w, path, product="ngn_phone", technology="POTS", address=n.c.building, number="87659999")
        uow.commit()
    before = snapshot_of(db)
    c = create(db, settings, [{"old": g.heads[0], "new": n.f.ports[1]}])
    assert c.valid, c.errors
    run(db, cut.start_apply, lock(db, settings, c.id).id)
    with db.read_session() as s:
        svc = s.get(Service, sid)
        assert (svc.product, svc.technology, svc.number) == ("ngn_phone", "FTTH", "87659999")
        assert [su.unit_id for su in svc.path][0] == n.f.ports[1]
        assert s.get(Unit, g.heads[0]).occupancy == Occupancy.FREE
    run(db, cut.start_rollback, c.id)
    assert diff(before, snapshot_of(db)) == []
