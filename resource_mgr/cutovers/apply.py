"""Apply and rollback of a locked cutover, each in ONE transaction.

All or nothing as users see it: the whole apply (every service moved, every unit occupied or
released through the ledger, every connection re-pointed, the cutover marked `applied`) is one
transaction. A worker killed halfway leaves nothing of it (the database rolls the transaction
back) and the cutover `applying`; the job's lease lapses, the reaper queues the job again and
the next worker runs it from the start. The same transaction marks the cutover applied, so a
worker that dies after the commit but before the job is marked succeeded leaves a cutover the
re-run finds `applied` and only reports. Progress (`Job.done`) is written between batches in
transactions of its own, on PostgreSQL only (on SQLite the apply's transaction holds the one
write lock).

Apply, per row (old → new):
- like for like: each service on the old unit occupies the new one (taking the place the lock
  pre-occupied), its path names the new unit instead of the old, the old unit is released (it
  stays locked by the cutover: nothing lands on it until a rollback unlocks it); the old unit's
  connections are re-pointed to the new unit when the new one has none, so routes run through it.
- copper to fibre: the service occupies the FTTH path designed at lock, releases its copper
  path, and becomes ftth_broadband (ADSL/VDSL) or ngn_phone (POTS), keeping its number; the
  services riding on it follow.
`moved` on each row records what was there before; rollback puts exactly that back (and then
unlocks the old units: a rolled-back cutover leaves everything as before its lock).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.cutovers.models import COPPER_TO_FIBRE, Cutover, CutoverRow
from resource_mgr.clock import aware
from resource_mgr.cutovers.numbers import give_back, renumber
from resource_mgr.cutovers.bulk import UnitCopy, set_use_since, units_for, use_since
from resource_mgr.cutovers.services import _change, _event, _record, rows_of, snapshot, unlock_old
from resource_mgr.cutovers.validation import (
    FIBRE_PRODUCT, RowPlan, among, connection_moves, connections_of, load_units, paths_of, services_on,
)
from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import Connection
from resource_mgr.occupancy.models import History
from resource_mgr.states import CutoverState, Occupancy, ServiceState

log = logging.getLogger("rmgr.cutovers")

Step = Callable[[int, int], None]  # after each batch: (rows done, rows in all)


def _service_state(service: Service, path: list[str]) -> dict[str, Any]:
    return {"product": service.product, "technology": service.technology, "number": service.number,
            "address_id": service.address_id, "path": list(path)}


def _write_paths(session: Session, paths: dict[str, list[str]], before: dict[str, list[str]]) -> None:
    """Give these services their new paths (Core statements). A path of the same length keeps its
    hops' places: only the hops that changed are updated (a like-for-like move changes one hop of
    eight); any other is replaced whole."""
    table = ServiceUnit.__table__
    hops, whole = [], []
    for sid in sorted(paths):
        new, old = paths[sid], before.get(sid, [])
        changed = [(o, n) for o, n in zip(old, new) if o != n]
        # one row per hop matched by its unit: only if no unit is twice in the path and no new unit
        # is one of the old ones (an UPDATE run after another must not match the row it just wrote)
        if len(new) == len(old) and len(set(old)) == len(old) and not {n for _, n in changed} & set(old):
            hops += [{"h_service": sid, "h_old": o, "h_new": n} for o, n in changed]
        else:
            whole.append(sid)
    stmt = (update(table).where(table.c.service_id == bindparam("h_service"), table.c.unit_id == bindparam("h_old"))
            .values(unit_id=bindparam("h_new")))
    for i in range(0, len(hops), 5000):
        session.connection().execute(stmt, hops[i:i + 5000])
    for cond in among(session, table.c.service_id, whole):
        session.execute(delete(table).where(cond))
    values = [{"service_id": sid, "seq": i, "unit_id": u} for sid in whole for i, u in enumerate(paths[sid], 1)]
    for k in range(0, len(values), 5000):
        session.execute(insert(table), values[k:k + 5000])


def _services(session: Session, ids: list[str]) -> dict[str, Service]:
    out: dict[str, Service] = {}
    for cond in among(session, Service.id, ids):
        out.update({s.id: s for s in session.scalars(select(Service).where(cond))})
    return out


def _riders(session: Session, service_ids: list[str]) -> dict[str, list[Service]]:
    out: dict[str, list[Service]] = {}
    for cond in among(session, Service.bearer_id, service_ids):
        for svc in session.scalars(select(Service).where(cond,
                                                         Service.state == ServiceState.ACTIVE)):
            out.setdefault(svc.bearer_id, []).append(svc)
    return out


def _on(unit: Any) -> list[str]:
    """The services on a unit (copy or ORM), as validation.services_on orders them."""
    if unit.shared:
        return sorted(unit.uses) if isinstance(unit, UnitCopy) else sorted(u.service_id for u in unit.uses)
    return [unit.service_id] if unit.occupancy == Occupancy.OCCUPIED and unit.service_id else []


def apply_cutover(session: Session, cutover: Cutover, *, principal: str, now: datetime, batch: int,
                  step: Step, per_unit: bool = False) -> dict[str, Any]:
    rows = rows_of(session, cutover.id)
    session.autoflush = False  # flushed per batch (units.write): the ledger's reads need no flush between
    change = _change(cutover, principal, now)
    olds = [r.old_unit_id for r in rows]
    on_old = services_on(session, load_units(session, olds), olds)  # which units to lock (read again locked)
    services_all = sorted({s for ss in on_old.values() for s in ss})
    paths = paths_of(session, services_all)
    ids = set(olds) | {r.new_unit_id for r in rows} | {uid for r in rows for uid, _ in (r.holders or [])}
    ids |= {uid for r in rows if r.mode == COPPER_TO_FIBRE for s in on_old.get(r.old_unit_id, [])
            for uid in paths.get(s, [])}
    units = units_for(session, per_unit=per_unit)
    found = units.take(ids)
    on_old = {uid: _on(found[uid]) for uid in olds}  # as committed, now that they are locked
    services = _services(session, services_all)
    riders = _riders(session, services_all)
    # connections re-pointed where the new unit has none (judged before anything moves)
    same = [r for r in rows if r.mode != COPPER_TO_FIBRE]
    connections = connections_of(session, {r.old_unit_id for r in same} | {r.new_unit_id for r in same})
    moves = connection_moves([RowPlan(row=r.row, old=r.old_unit_id, new=r.new_unit_id, keep_number=r.keep_number,
                                      mode=r.mode) for r in same], connections)
    subst = {r.old_unit_id: r.new_unit_id for r in same}
    new_paths: dict[str, list[str]] = {}
    renumbered: set[str] = set()
    moved_services = 0
    updates: list[dict[str, Any]] = []
    for n, row in enumerate(rows, 1):
        moved: dict[str, Any] = {**(row.moved or {}), "services": {}, "connections": [], "since": {}}
        holders = list(row.holders or [])
        old = found[row.old_unit_id]
        for sid in on_old.get(row.old_unit_id, []):
            service = services[sid]
            if sid not in new_paths:
                moved["services"][sid] = {**_service_state(service, paths.get(sid, [])),
                                          "riders": {r.id: r.technology for r in riders.get(sid, [])}}
                new_paths[sid] = [subst.get(u, u) for u in paths.get(sid, [])]
            if old.shared:
                moved["since"][sid] = aware(use_since(old, sid)).isoformat()
            svc_change = _change(cutover, principal, now, service_id=sid)
            if row.mode == COPPER_TO_FIBRE:
                for uid, holder in holders:
                    found[uid].occupy(svc_change, service_id=sid, reservation_id=holder)
                holders = []
                for uid in paths.get(sid, []):
                    if found[uid].carries(sid):
                        found[uid].release(svc_change, service_id=sid)
                new_paths[sid] = list(row.path or [])
                service.product = FIBRE_PRODUCT.get(service.product, service.product)
                service.technology = "FTTH"
                for rider in riders.get(sid, []):
                    rider.technology = "FTTH"
            else:
                uid, holder = holders.pop(0)
                found[uid].occupy(svc_change, service_id=sid, reservation_id=holder)
                old.release(svc_change, service_id=sid)
            if not row.keep_number and sid not in renumbered:  # a new number of the exchange of its new line
                renumbered.add(sid)
                got = renumber(session, service, new_paths[sid], svc_change, now=now)
                if got is not None:
                    moved.setdefault("numbers", {})[sid] = got
            moved_services += 1
        for uid, holder in holders:  # places held but not needed (an old unit with fewer services)
            found[uid].release_preoccupation(change, reservation_id=holder)
        updates.append({"cutover_id": cutover.id, "row": row.row, "moved": moved})
        if n % batch == 0 or n == len(rows):
            units.write()
            session.flush()
            step(n, len(rows))
    _write_paths(session, {sid: p for sid, p in new_paths.items() if p != paths.get(sid, [])}, paths)
    moved_connections = _move_connections(session, cutover, principal, now, connections, moves, updates)
    for i in range(0, len(updates), 2000):
        session.execute(update(CutoverRow), updates[i:i + 2000])
    work = sum(len((u["moved"] or {}).get("work") or []) for u in updates)
    return {"services": moved_services, "connections": moved_connections, "field_work": work}


def _move_connections(session: Session, cutover: Cutover, principal: str, now: datetime,
                      connections: dict[str, tuple[str, str]], moves: dict[str, str],
                      updates: list[dict[str, Any]]) -> int:
    row_of = {u["row"]: u for u in updates}
    rows = {r.old_unit_id: r.row for r in rows_of(session, cutover.id) if r.old_unit_id in moves}
    changed = sorted(cid for cid, (a, z) in connections.items() if a in moves or z in moves)
    ends = []
    for cid in changed:
        a, z = connections[cid]
        after = {"a_unit_id": moves.get(a, a), "z_unit_id": moves.get(z, z)}
        ends.append((cid, {"a_unit_id": a, "z_unit_id": z}, after))
        row = rows.get(a) if a in moves else rows.get(z)
        row_of[row]["moved"]["connections"].append({"id": cid, "a_unit_id": a, "z_unit_id": z})
    write_connection_moves(session, principal, ends, cutover_id=cutover.id, reason=f"cutover {cutover.name}", at=now)
    return len(changed)


def write_connection_moves(session: Session, principal: str, ends: list[tuple[str, dict[str, str], dict[str, str]]],
                           *, cutover_id: str, reason: str, at: datetime) -> None:
    """Re-point connections (id, ends before, ends after; in this order) and write the "move" row
    `audit.record` writes for each, in executemany batches: `audit.record` flushes the session
    once per row, a round trip or two per connection of the cutover."""
    if not ends:
        return
    if not principal:
        raise Invalid("every write must name its principal", field="principal")
    table = Connection.__table__
    networks: dict[str, str] = {}
    for cond in among(session, table.c.id, {cid for cid, _, _ in ends}):
        networks.update(session.execute(select(table.c.id, table.c.local_network_id).where(cond)).all())
    stmt = (update(table).where(table.c.id == bindparam("m_id"))
            .values(a_unit_id=bindparam("m_a"), z_unit_id=bindparam("m_z")))
    moves = [{"m_id": cid, "m_a": after["a_unit_id"], "m_z": after["z_unit_id"]} for cid, _, after in ends]
    history = [{"at": at, "principal": principal[:100], "local_network_id": networks[cid], "resource_id": cid[:26],
                "resource_kind": "connection", "action": "move", "order_ref": None, "reservation_id": None,
                "service_id": None, "cutover_id": cutover_id, "reason": reason[:300] or None,
                "before": dict(before), "after": dict(after)} for cid, before, after in ends]
    for i in range(0, len(moves), 2000):
        session.connection().execute(stmt, moves[i:i + 2000])
        session.execute(insert(History), history[i:i + 2000])  # the change feed stamps them at commit


def connections_by_id(session: Session, ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for cond in among(session, Connection.id, ids):
        out.update({cid: {"a_unit_id": a, "z_unit_id": z} for cid, a, z in session.execute(
            select(Connection.id, Connection.a_unit_id, Connection.z_unit_id).where(cond))})
    return out


def rollback_cutover(session: Session, cutover: Cutover, *, principal: str, now: datetime, batch: int,
                     step: Step, per_unit: bool = False) -> dict[str, Any]:
    """Put back what `moved` recorded, then unlock the old units (as before the lock)."""
    rows = rows_of(session, cutover.id)
    session.autoflush = False  # flushed per batch, as apply
    change = _change(cutover, principal, now)
    snaps = {sid: snap for r in rows for sid, snap in ((r.moved or {}).get("services") or {}).items()}
    current = paths_of(session, sorted(snaps))
    ids = {r.old_unit_id for r in rows} | {r.new_unit_id for r in rows}
    ids |= {uid for snap in snaps.values() for uid in snap["path"]}
    ids |= {uid for path in current.values() for uid in path}
    units = units_for(session, per_unit=per_unit)
    found = units.take(ids)
    services = _services(session, sorted(snaps))
    with session.no_autoflush:
        for row in rows:  # the old units in service again, so the services can go back onto them
            unlock_old(found[row.old_unit_id], row, change)
    units.write()
    back: list[tuple[str, dict[str, str]]] = []  # connections to put back: (id, ends before the apply)
    since_of = {(r.old_unit_id, sid): since for r in rows
                for sid, since in ((r.moved or {}).get("since") or {}).items()}
    for n, row in enumerate(rows, 1):
        moved = row.moved or {}
        for sid in (moved.get("services") or {}):
            svc_change = _change(cutover, principal, now, service_id=sid)
            before = snaps[sid]["path"]
            for uid in current.get(sid, []):
                if uid not in before and found[uid].carries(sid):
                    found[uid].release(svc_change, service_id=sid)
            for uid in before:
                unit = found[uid]
                if not unit.carries(sid):
                    unit.occupy(svc_change, service_id=sid)
                    since = since_of.get((uid, sid))
                    if unit.shared and since:
                        set_use_since(unit, sid, datetime.fromisoformat(since))
        back += [(conn["id"], {"a_unit_id": conn["a_unit_id"], "z_unit_id": conn["z_unit_id"]})
                 for conn in moved.get("connections") or []]
        if n % batch == 0 or n == len(rows):
            units.write()
            session.flush()
            step(n, len(rows))
    for row in rows:  # numbers given by the apply (keep_number false) back
        for sid, numbers in ((row.moved or {}).get("numbers") or {}).items():
            give_back(session, sid, numbers, _change(cutover, principal, now, service_id=sid))
    now_ends = connections_by_id(session, [cid for cid, _ in back])
    write_connection_moves(session, principal, [(cid, now_ends[cid], ends) for cid, ends in back],
                           cutover_id=cutover.id, reason=f"rollback of cutover {cutover.name}", at=now)
    _write_paths(session, {sid: snap["path"] for sid, snap in snaps.items() if current.get(sid, []) != snap["path"]},
                 current)
    for sid, snap in snaps.items():
        service = services[sid]
        service.product, service.technology = snap["product"], snap["technology"]
        service.number, service.address_id = snap["number"], snap["address_id"]
        for rider_id, technology in (snap.get("riders") or {}).items():
            session.get(Service, rider_id).technology = technology
    return {"services": len(snaps)}


# -- the job handlers ------------------------------------------------------------------------------

def _pause(settings: Any) -> None:
    if settings.cutover_batch_pause_seconds:
        time.sleep(settings.cutover_batch_pause_seconds)


def run_job(db: Any, job_id: str, progress: Any, *, rollback: bool) -> dict[str, Any]:
    from resource_mgr.config import load_settings
    from resource_mgr.jobs.models import Job

    settings = load_settings()
    with db.read_session() as s:
        job = s.get(Job, job_id)
        cutover_id, principal = job.params["cutover_id"], job.created_by
    postgres = db.dialect == "postgresql"
    want, done_state = (CutoverState.APPLIED, CutoverState.ROLLED_BACK) if rollback else \
        (CutoverState.APPLYING, CutoverState.APPLIED)

    def step(done: int, total: int) -> None:
        log.info("cutover %s: %d of %d rows %s (not visible until the end)", cutover_id, done, total,
                 "rolled back" if rollback else "applied")
        if postgres:  # SQLite: the apply holds the one write lock; the counters come at the end
            progress(done, total)
        _pause(settings)

    try:
        with db.unit_of_work(principal=principal) as uow:
            s = uow.session
            stmt = select(Cutover).where(Cutover.id == cutover_id).execution_options(populate_existing=True)
            cutover = s.scalar(stmt.with_for_update() if postgres else stmt)
            if cutover.state == done_state and cutover.job_id == job_id:
                return {"cutover_id": cutover.id, "state": cutover.state.value, "message":
                        f"cutover {cutover.id} had been {cutover.state.value} by an earlier run of this job; "
                        "nothing was done again"}
            if cutover.state != want or cutover.job_id != job_id:
                raise cutover_errors_wrong(cutover, rollback)
            before = snapshot(cutover)
            now = _now()
            work = rollback_cutover if rollback else apply_cutover
            result = work(s, cutover, principal=principal, now=now, batch=settings.cutover_batch_rows, step=step)
            cutover.state, cutover.updated_at = done_state, now
            cutover.done = cutover.total = cutover.row_count
            if rollback:
                cutover.ended_at = now
            else:
                cutover.applied_at = now
            _record(s, cutover, "rolled_back" if rollback else "applied", principal, now, before)
            _event(s, cutover, "cutover.rolled_back" if rollback else "cutover.applied", now, **result)
            uow.commit()
    except Exception as exc:
        from resource_mgr.jobs.services import LeaseLost

        if not rollback and not isinstance(exc, LeaseLost):  # lost: another runner has it now
            _mark_failed(db, cutover_id, job_id)
        raise
    return {"cutover_id": cutover_id, "state": done_state.value, **result}


def cutover_errors_wrong(cutover: Cutover, rollback: bool) -> Exception:
    from resource_mgr.errors import Conflict

    return Conflict(f"cutover {cutover.id} is {cutover.state.value} (job {cutover.job_id}): this job has nothing "
                    f"to {'roll back' if rollback else 'apply'}", field="state")


def _mark_failed(db: Any, cutover_id: str, job_id: str) -> None:
    """An apply that failed changed nothing: the cutover says `failed` (still locked, may be applied
    again or unlocked)."""
    try:
        with db.unit_of_work() as uow:
            cutover = uow.session.get(Cutover, cutover_id)
            if cutover is not None and cutover.state == CutoverState.APPLYING and cutover.job_id == job_id:
                cutover.state, cutover.updated_at = CutoverState.FAILED, _now()
                uow.commit()
    except Exception:
        log.exception("cutover %s: could not mark the failed apply", cutover_id)


def _now() -> datetime:
    from resource_mgr.clock import utcnow

    return utcnow()


def run_apply_job(db: Any, job_id: str, progress: Any) -> dict[str, Any]:
    return run_job(db, job_id, progress, rollback=False)


def run_rollback_job(db: Any, job_id: str, progress: Any) -> dict[str, Any]:
    return run_job(db, job_id, progress, rollback=True)
