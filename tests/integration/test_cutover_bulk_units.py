"""The cutover's bulk unit path (resource_mgr/cutovers/bulk.py: the ledger's transitions on
plain copies of the unit rows, written by Core statements) leaves exactly the rows the per-unit
ORM path (`per_unit=True`: `Unit.lock`, `Unit.preoccupy`, … one unit at a time) leaves.

Two twin worlds of tests/cutover_world.py (diagram there) in two local networks, built one
after the other (ids are time-ordered, so the k-th unit of one is the k-th of the other); the
same cutover on each, one through each path, at the same instants:

    D1 pair 2 → D2 pair 2, D1 pair 3 → D2 pair 3     (services on them: occupy, release, connections)
    D1 pair 4 → D2 pair 4                            (no service: the held place is released)
    DSLAM port 1 → FAT port 2                        (copper to fibre: shared PON port and splitters)

After lock, apply and rollback (and in a second pair of cutovers after lock and unlock) every
unit (all columns, the version counter too), shared use and hold, service, path hop,
connection, cutover row and history row (all but id and position; positions are checked
stamped) of one world equals the other's once its ids are translated."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.customers.models import Customer, Service, ServiceUnit
from resource_mgr.cutovers import apply as cut_apply
from resource_mgr.cutovers import services as cut
from resource_mgr.cutovers.models import Cutover, CutoverRow
from resource_mgr.inventory.models import Connection, Resource
from resource_mgr.occupancy.models import History, SharedHold, SharedUse, Unit
from resource_mgr.security.principal import Principal
from resource_mgr.states import Role

from cutover_world import build

BUILT = {"created_at"}  # when the twin was built: seconds apart, not the cutover's doing
PLANNER = Principal(name="user:planner", roles=frozenset({Role.PLANNER}), local_network_ids=None)


def _mapping(n) -> list[dict[str, Any]]:
    return ([{"old": n.c.pairs[k], "new": n.new_pairs[k]} for k in (1, 2, 3)]
            + [{"old": n.c.heads[0], "new": n.f.ports[1]}])


def _ids(s, model, ln: str) -> list[str]:
    return sorted(s.scalars(select(model.id).where(model.local_network_id == ln)))


def _translation(db, a, b) -> dict[str, str]:
    """B's ids → A's, table by table in creation order."""
    out = {b.ln: a.ln}
    with db.read_session() as s:
        for model in (Resource, Unit, Service, Customer, Connection):
            ia, ib = _ids(s, model, a.ln), _ids(s, model, b.ln)
            assert len(ia) == len(ib), model
            out.update(zip(ib, ia))
    return out


def _tr(value: Any, t: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {_tr(k, t): _tr(v, t) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tr(v, t) for v in value)
    return t.get(value, value) if isinstance(value, str) else value


def _rows(s, model, where, key, skip=()) -> dict[Any, dict[str, Any]]:
    cols = [c.key for c in model.__table__.columns if c.key not in skip]
    return {key(o): {c: getattr(o, c) for c in cols} for o in s.scalars(select(model).where(where))}


def _state(db, n, cutover_id: str, t: dict[str, str]) -> dict[str, Any]:
    with db.read_session() as s:
        units = _ids(s, Unit, n.ln)
        services = _ids(s, Service, n.ln)
        history = s.scalars(select(History).where(History.cutover_id == cutover_id).order_by(History.id)).all()
        assert all(h.position is not None for h in history)  # stamped by the change feed at commit
        cols = [c.key for c in History.__table__.columns if c.key not in ("id", "position")]
        state = {
            "units": _rows(s, Unit, Unit.id.in_(units), lambda u: u.id),
            "uses": _rows(s, SharedUse, SharedUse.unit_id.in_(units), lambda r: (r.unit_id, r.service_id)),
            "holds": _rows(s, SharedHold, SharedHold.unit_id.in_(units), lambda r: (r.unit_id, r.holder), {"id"}),
            "services": _rows(s, Service, Service.id.in_(services), lambda r: r.id, BUILT),
            "paths": _rows(s, ServiceUnit, ServiceUnit.service_id.in_(services), lambda r: (r.service_id, r.seq)),
            "connections": _rows(s, Connection, Connection.local_network_id == n.ln, lambda r: r.id, BUILT),
            "rows": _rows(s, CutoverRow, CutoverRow.cutover_id == cutover_id, lambda r: r.row),
            "history": [{c: getattr(h, c) for c in cols} for h in history],
        }
    return _tr(state, t)


def _holders(db, cutover_id: str) -> list[str]:
    with db.read_session() as s:
        rows = s.scalars(select(CutoverRow).where(CutoverRow.cutover_id == cutover_id).order_by(CutoverRow.row))
        return [h for r in rows for _, h in (r.holders or [])]


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for table in a:
        if table == "history":
            if a[table] != b[table]:
                out += [f"history {i}: {x} != {y}" for i, (x, y) in enumerate(zip(a[table], b[table])) if x != y]
                out.append(f"history rows: {len(a[table])} and {len(b[table])}")
            continue
        for key in sorted(set(a[table]) | set(b[table]), key=str):
            if a[table].get(key) != b[table].get(key):
                out.append(f"{table} {key}: {a[table].get(key)} != {b[table].get(key)}")
    return out


def _twins(db):
    worlds = []
    for code in ("GZ", "SZ"):
        with db.unit_of_work() as uow:
            worlds.append(build(uow.session, code=code))
            uow.commit()
    return worlds


def _create(db, settings, n, now) -> str:
    with db.unit_of_work(principal=PLANNER.name) as uow:
        c = cut.create_cutover(uow.session, principal=PLANNER, settings=settings, now=now, name="twin",
                               window_start=now, window_end=now + timedelta(hours=6), mapping=_mapping(n))
        assert c.valid, c.errors
        uow.commit()
        return c.id


def _job(db, work, cutover_id: str, now, per_unit: bool) -> None:
    with db.unit_of_work(principal="job:cutover") as uow:
        c = uow.session.get(Cutover, cutover_id)
        work(uow.session, c, principal=PLANNER.name, now=now, batch=2, step=lambda done, total: None,
             per_unit=per_unit)
        uow.commit()


def test_the_bulk_path_leaves_exactly_the_rows_of_the_per_unit_path(db):
    settings = load_settings(environ={}, database_url=db.url)
    a, b = _twins(db)
    t = _translation(db, a, b)
    now = utcnow()
    ids = {}
    for n in (a, b):  # same instants for both (history `at`, windows, holds' expiry)
        ids[n.ln] = _create(db, settings, n, now)
    t[ids[b.ln]] = ids[a.ln]
    steps = [
        ("lock", lambda n, per_unit: _lock(db, settings, ids[n.ln], now + timedelta(minutes=1), per_unit)),
        ("apply", lambda n, per_unit: _job(db, cut_apply.apply_cutover, ids[n.ln], now + timedelta(minutes=2),
                                           per_unit)),
        ("rollback", lambda n, per_unit: _job(db, cut_apply.rollback_cutover, ids[n.ln],
                                              now + timedelta(minutes=3), per_unit)),
    ]
    for name, step in steps:
        step(a, True)  # the reference: the ORM, one unit at a time
        step(b, False)  # the bulk path
        if name == "lock":  # a shared unit's second place has a holder of its own (a new id)
            t.update(zip(_holders(db, ids[b.ln]), _holders(db, ids[a.ln])))
        assert _diff(_state(db, a, ids[a.ln], {}), _state(db, b, ids[b.ln], t)) == [], name
    with db.read_session() as s:  # the cycle did something: services moved and came back
        assert s.query(History).filter(History.cutover_id == ids[b.ln], History.action == "occupy").count() >= 6


def _lock(db, settings, cutover_id: str, now, per_unit: bool) -> None:
    with db.unit_of_work(principal=PLANNER.name) as uow:
        cut.lock_cutover(uow.session, principal=PLANNER, settings=settings, now=now, cutover_id=cutover_id,
                         per_unit=per_unit)
        uow.commit()


def test_unlock_through_the_bulk_path_leaves_the_rows_of_the_per_unit_path(db):
    settings = load_settings(environ={}, database_url=db.url)
    a, b = _twins(db)
    t = _translation(db, a, b)
    now = utcnow()
    ids = {n.ln: _create(db, settings, n, now) for n in (a, b)}
    t[ids[b.ln]] = ids[a.ln]
    for n, per_unit in ((a, True), (b, False)):
        _lock(db, settings, ids[n.ln], now + timedelta(minutes=1), per_unit)
    t.update(zip(_holders(db, ids[b.ln]), _holders(db, ids[a.ln])))
    for n, per_unit in ((a, True), (b, False)):
        with db.unit_of_work(principal=PLANNER.name) as uow:
            cut.unlock_cutover(uow.session, principal=PLANNER, now=now + timedelta(minutes=2), cutover_id=ids[n.ln],
                               per_unit=per_unit)
            uow.commit()
    assert _diff(_state(db, a, ids[a.ln], {}), _state(db, b, ids[b.ln], t)) == []
