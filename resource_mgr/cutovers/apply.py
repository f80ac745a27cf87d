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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.cutovers.models import COPPER_TO_FIBRE, Cutover, CutoverRow
from resource_mgr.cutovers.services import _change, _event, _record, rows_of, snapshot, unlock_old
from resource_mgr.cutovers.validation import (
    FIBRE_PRODUCT, connection_moves, connections_of, load_units, paths_of, services_on,
)
from resource_mgr.inventory.models import Connection
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import SharedUse, Unit
from resource_mgr.security import audit
from resource_mgr.states import CutoverState, ServiceState

log = logging.getLogger("rmgr.cutovers")

Step = Callable[[int, int], None]  # after each batch: (rows done, rows in all)


def _service_state(service: Service) -> dict[str, Any]:
    return {"product": service.product, "technology": service.technology, "number": service.number,
            "address_id": service.address_id, "path": [su.unit_id for su in service.path]}


def _set_path(session: Session, service: Service, unit_ids: list[str]) -> None:
    service.path[:] = []
    session.flush()
    service.path[:] = [ServiceUnit(service_id=service.id, seq=i, unit_id=u) for i, u in enumerate(unit_ids, 1)]


def _riders(session: Session, service_ids: list[str]) -> dict[str, list[Service]]:
    out: dict[str, list[Service]] = {}
    for svc in session.scalars(select(Service).where(Service.bearer_id.in_(service_ids),
                                                     Service.state == ServiceState.ACTIVE)):
        out.setdefault(svc.bearer_id, []).append(svc)
    return out


def apply_cutover(session: Session, cutover: Cutover, *, principal: str, now: datetime, batch: int,
                  step: Step) -> dict[str, Any]:
    rows = rows_of(session, cutover.id)
    change = _change(cutover, principal, now)
    olds = [r.old_unit_id for r in rows]
    units = load_units(session, olds)
    on_old = services_on(session, units, olds)
    services_all = sorted({s for ss in on_old.values() for s in ss})
    copper_paths = paths_of(session, services_all)
    fibre_units = {uid for r in rows if r.mode == COPPER_TO_FIBRE for uid in (r.path or [])}
    copper_units = {uid for r in rows if r.mode == COPPER_TO_FIBRE for s in on_old.get(r.old_unit_id, [])
                    for uid in copper_paths.get(s, [])}
    ledger.lock_units(session, sorted(set(olds) | {r.new_unit_id for r in rows} | fibre_units | copper_units))
    services = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(services_all)))} \
        if services_all else {}
    # connections re-pointed where the new unit has none (judged before anything moves)
    same = [r for r in rows if r.mode != COPPER_TO_FIBRE]
    connections = connections_of(session, {r.old_unit_id for r in same} | {r.new_unit_id for r in same})
    plans = [type("P", (), {"old": r.old_unit_id, "new": r.new_unit_id, "mode": r.mode}) for r in same]
    moves = connection_moves(plans, connections)
    subst = {r.old_unit_id: r.new_unit_id for r in same}
    riders = _riders(session, services_all) if services_all else {}
    snapshots: dict[str, dict[str, Any]] = {}
    moved_services = 0
    updates: list[dict[str, Any]] = []
    for n, row in enumerate(rows, 1):
        moved: dict[str, Any] = {**(row.moved or {}), "services": {}, "connections": [], "since": {}}
        holders = [h for h in (row.holders or [])]
        old = session.get(Unit, row.old_unit_id)
        for sid in on_old.get(row.old_unit_id, []):
            service = services[sid]
            if sid not in snapshots:
                snapshots[sid] = _service_state(service)
                moved["services"][sid] = snapshots[sid]
                moved["services"][sid]["riders"] = {r.id: r.technology for r in riders.get(sid, [])}
            if old.shared:
                use = next(u for u in old.uses if u.service_id == sid)
                moved["since"][sid] = use.since.isoformat()
            svc_change = _change(cutover, principal, now, service_id=sid)
            if row.mode == COPPER_TO_FIBRE:
                for uid, holder in holders:
                    session.get(Unit, uid).occupy(svc_change, service_id=sid, reservation_id=holder)
                holders = []
                for uid in copper_paths.get(sid, []):
                    unit = session.get(Unit, uid)
                    if unit.carries(sid):
                        unit.release(svc_change, service_id=sid)
                _set_path(session, service, list(row.path or []))
                service.product = FIBRE_PRODUCT.get(service.product, service.product)
                service.technology = "FTTH"
                for rider in riders.get(sid, []):
                    rider.technology = "FTTH"
            else:
                uid, holder = holders.pop(0)
                session.get(Unit, uid).occupy(svc_change, service_id=sid, reservation_id=holder)
                old.release(svc_change, service_id=sid)
            moved_services += 1
        for uid, holder in holders:  # places held but not needed (an old unit with fewer services)
            session.get(Unit, uid).release_preoccupation(change, reservation_id=holder)
        updates.append({"cutover_id": cutover.id, "row": row.row, "moved": moved})
        if n % batch == 0 or n == len(rows):
            step(n, len(rows))
    # the paths of like-for-like moves, every service once (a service may cross several rows)
    for sid, snap in snapshots.items():
        if any(u in subst for u in snap["path"]):
            _set_path(session, services[sid], [subst.get(u, u) for u in snap["path"]])
    moved_connections = _move_connections(session, cutover, principal, now, connections, moves, updates)
    for i in range(0, len(updates), 2000):
        session.execute(update(CutoverRow), updates[i:i + 2000])
    return {"services": moved_services, "connections": moved_connections}


def _move_connections(session: Session, cutover: Cutover, principal: str, now: datetime,
                      connections: dict[str, tuple[str, str]], moves: dict[str, str],
                      updates: list[dict[str, Any]]) -> int:
    row_of = {u["row"]: u for u in updates}
    rows = {r.old_unit_id: r.row for r in session.scalars(select(CutoverRow).where(
        CutoverRow.cutover_id == cutover.id, CutoverRow.old_unit_id.in_(list(moves))))} if moves else {}
    count = 0
    for cid, (a, z) in sorted(connections.items()):
        na, nz = moves.get(a, a), moves.get(z, z)
        if (na, nz) == (a, z):
            continue
        conn = session.get(Connection, cid)
        conn.a_unit_id, conn.z_unit_id = na, nz
        audit.record(session, principal, resource_id=cid, resource_kind="connection", action="move",
                     local_network_id=conn.local_network_id, before={"a_unit_id": a, "z_unit_id": z},
                     after={"a_unit_id": na, "z_unit_id": nz}, cutover_id=cutover.id,
                     reason=f"cutover {cutover.name}"[:300], at=now)
        row = rows.get(a) if a in moves else rows.get(z)
        row_of[row]["moved"]["connections"].append({"id": cid, "a_unit_id": a, "z_unit_id": z})
        count += 1
    return count


def rollback_cutover(session: Session, cutover: Cutover, *, principal: str, now: datetime, batch: int,
                     step: Step) -> dict[str, Any]:
    """Put back what `moved` recorded, then unlock the old units (as before the lock)."""
    rows = rows_of(session, cutover.id)
    change = _change(cutover, principal, now)
    snaps = {sid: snap for r in rows for sid, snap in ((r.moved or {}).get("services") or {}).items()}
    ids = {r.old_unit_id for r in rows} | {r.new_unit_id for r in rows}
    ids |= {uid for snap in snaps.values() for uid in snap["path"]}
    ids |= {uid for r in rows for uid in (r.path or [])}
    ledger.lock_units(session, sorted(ids))
    services = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_(sorted(snaps))))} \
        if snaps else {}
    for row in rows:  # the old units in service again, so the services can go back onto them
        unlock_old(session, row, change)
    since_of = {(r.old_unit_id, sid): since for r in rows
                for sid, since in ((r.moved or {}).get("since") or {}).items()}
    for n, row in enumerate(rows, 1):
        moved = row.moved or {}
        for sid in (moved.get("services") or {}):
            svc_change = _change(cutover, principal, now, service_id=sid)
            service = services[sid]
            now_on = [su.unit_id for su in service.path]
            before = snaps[sid]["path"]
            for uid in now_on:
                if uid not in before:
                    unit = session.get(Unit, uid)
                    if unit.carries(sid):
                        unit.release(svc_change, service_id=sid)
            for uid in before:
                unit = session.get(Unit, uid)
                if not unit.carries(sid):
                    unit.occupy(svc_change, service_id=sid)
                    since = since_of.get((uid, sid))
                    if unit.shared and since:
                        use = next(u for u in unit.uses if u.service_id == sid)
                        use.since = datetime.fromisoformat(since)
        for conn in moved.get("connections") or []:
            c = session.get(Connection, conn["id"])
            before = {"a_unit_id": c.a_unit_id, "z_unit_id": c.z_unit_id}
            c.a_unit_id, c.z_unit_id = conn["a_unit_id"], conn["z_unit_id"]
            audit.record(session, principal, resource_id=c.id, resource_kind="connection", action="move",
                         local_network_id=c.local_network_id, before=before,
                         after={"a_unit_id": c.a_unit_id, "z_unit_id": c.z_unit_id}, cutover_id=cutover.id,
                         reason=f"rollback of cutover {cutover.name}"[:300], at=now)
        if n % batch == 0 or n == len(rows):
            step(n, len(rows))
    for sid, snap in snaps.items():
        service = services[sid]
        if [su.unit_id for su in service.path] != snap["path"]:
            _set_path(session, service, list(snap["path"]))
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
