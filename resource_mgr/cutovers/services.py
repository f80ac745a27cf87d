"""Cutover use cases: create (with its validation), read, lock, unlock, and start apply or
rollback (the work itself is resource_mgr.cutovers.apply, run as a background job).

Each use case runs in the caller's unit of work (one transaction) and changes units only
through the ledger, whose history rows carry the cutover's id.

- **lock** (draft, valid → locked): every unit of the mapping is row-locked (id order), the
  mapping validated again against what is committed now, then every old unit is locked by the
  cutover (`Unit.lock`: no order may take it, designs skip it) and every new unit pre-occupied
  by it until the window's end plus `cutover_grace_hours`; for a copper-to-fibre row the whole
  FTTH path is designed (and locked) again and pre-occupied. All of it or, on the first
  refusal, nothing: a reservation racing the lock either took a unit first (the lock is then
  `409 conflict` and changes nothing) or finds the units locked or held.
- **unlock** (locked or failed → cancelled): the pre-occupations released, the old units
  unlocked: everything as before the lock.
- **apply** (locked or failed → applying) and **rollback** (applied) create the job.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from resource_mgr.clock import aware
from resource_mgr.config import Settings
from resource_mgr.cutovers import errors as cutover_errors
from resource_mgr.cutovers.bulk import BulkUnits, PerUnit, set_admin_reason, units_for
from resource_mgr.cutovers.models import COPPER_TO_FIBRE, Cutover, CutoverRow
from resource_mgr.cutovers.validation import chunks, validate
from resource_mgr.errors import Conflict, Invalid
from resource_mgr.events.services import emit
from resource_mgr.ids import new_id
from resource_mgr.jobs import services as jobs
from resource_mgr.jobs.models import Job
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Change, SharedHold, Unit
from resource_mgr.security import audit
from resource_mgr.security.principal import Principal
from resource_mgr.states import CutoverState, JobState, Occupancy

Units = BulkUnits | PerUnit

APPLY_KIND = "cutover_apply"
ROLLBACK_KIND = "cutover_rollback"


# -- reading ---------------------------------------------------------------------------------------

def get_cutover(session: Session, cutover_id: str, principal: Principal, *, lock: bool = False) -> Cutover:
    # FOR UPDATE on PostgreSQL (SQLite has one writer and renders none)
    cutover = session.get(Cutover, cutover_id, with_for_update=lock, populate_existing=lock)
    if cutover is None or not principal.sees(cutover.local_network_id):
        raise cutover_errors.not_found(cutover_id)
    return cutover


def rows_of(session: Session, cutover_id: str) -> list[CutoverRow]:
    return list(session.scalars(select(CutoverRow).where(CutoverRow.cutover_id == cutover_id)
                                .order_by(CutoverRow.row)))


def mapping_of(rows: list[CutoverRow]) -> list[dict[str, Any]]:
    return [{"old": r.old_unit_id, "new": r.new_unit_id, "keep_number": r.keep_number} for r in rows]


def progress_of(session: Session, cutover: Cutover) -> dict[str, int]:
    """The running job's counters while it runs, the cutover's own otherwise."""
    if cutover.job_id and cutover.state in (CutoverState.APPLYING, CutoverState.APPLIED):
        job = session.get(Job, cutover.job_id)
        if job is not None and job.state in (JobState.QUEUED, JobState.RUNNING):
            return {"done": job.done, "total": job.total or cutover.row_count}
    return {"done": cutover.done, "total": cutover.total or cutover.row_count}


# -- create ----------------------------------------------------------------------------------------

def _check_mapping(mapping: Any, settings: Settings) -> list[dict[str, Any]]:
    if not isinstance(mapping, list) or not mapping:
        raise Invalid("mapping must hold at least one row {old, new, keep_number?}", field="mapping")
    if len(mapping) > settings.cutover_max_rows:
        raise Invalid(f"mapping has {len(mapping)} rows; at most {settings.cutover_max_rows}", field="mapping")
    rows = []
    for i, row in enumerate(mapping, 1):
        if not isinstance(row, dict):
            raise Invalid(f"mapping row {i} is not an object {{old, new, keep_number?}}", field=f"mapping[{i}]")
        old, new, keep = row.get("old"), row.get("new"), row.get("keep_number", True)
        for name, value in (("old", old), ("new", new)):
            if not isinstance(value, str) or not value.strip() or len(value.strip()) > 64:
                raise Invalid(f"mapping row {i}: {name} must be a unit id (1 to 64 characters)",
                              field=f"mapping[{i}].{name}")
        if keep is None:
            keep = True
        if not isinstance(keep, bool):
            raise Invalid(f"mapping row {i}: keep_number must be true or false", field=f"mapping[{i}].keep_number")
        rows.append({"old": old.strip(), "new": new.strip(), "keep_number": keep})
    return rows


def create_cutover(session: Session, *, principal: Principal, settings: Settings, now: datetime, name: str,
                   window_start: datetime, window_end: datetime, mapping: Any) -> Cutover:
    """A cutover in `draft` with its validation report (valid or not: the report says why)."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 200:
        raise Invalid("name must be 1 to 200 characters", field="name")
    if window_start is None or window_end is None:
        raise Invalid("window_start and window_end are needed", field="window_start" if window_start is None
                      else "window_end")
    if window_end <= window_start:
        raise Invalid("window_end must be after window_start", field="window_end")
    rows = _check_mapping(mapping, settings)
    report = validate(session, rows, settings=settings, now=now, local_network_ids=principal.local_network_ids)
    ln = report.local_network_id
    if ln is None and principal.local_network_ids is not None and len(principal.local_network_ids) == 1:
        ln = next(iter(principal.local_network_ids))
    if ln is not None:
        principal.check_write_scope(ln)
    cutover = Cutover(id=new_id(), name=name, local_network_id=ln, state=CutoverState.DRAFT,
                      window_start=window_start, window_end=window_end, row_count=len(rows), valid=report.valid,
                      errors=[e.as_json() for e in report.errors], done=0, total=len(rows),
                      created_by=principal.name, created_at=now, updated_at=now)
    session.add(cutover)
    session.flush()
    plans = {p.row: p for p in report.rows}
    values = [{"cutover_id": cutover.id, "row": i, "old_unit_id": r["old"], "new_unit_id": r["new"],
               "keep_number": r["keep_number"], "mode": plans[i].mode, "path": plans[i].path,
               "moved": {"work": plans[i].work} if plans[i].work is not None else None}
              for i, r in enumerate(rows, 1)]
    for i in range(0, len(values), 5000):
        session.execute(CutoverRow.__table__.insert(), values[i:i + 5000])
    _record(session, cutover, "create", principal.name, now, None)
    return cutover


# -- lock and unlock -------------------------------------------------------------------------------

def _change(cutover: Cutover, principal: str, now: datetime, **extra: Any) -> Change:
    return Change(principal=principal, cutover_id=cutover.id, reason=f"cutover {cutover.name}"[:300], at=now, **extra)


def _record(session: Session, cutover: Cutover, action: str, principal: str, now: datetime,
            before: dict[str, Any] | None) -> None:
    audit.record(session, principal, resource_id=cutover.id, resource_kind="cutover", action=action,
                 local_network_id=cutover.local_network_id, before=before, after=snapshot(cutover),
                 cutover_id=cutover.id, at=now)


def snapshot(cutover: Cutover) -> dict[str, Any]:
    return {"state": cutover.state.value, "rows": cutover.row_count, "valid": cutover.valid, "job_id": cutover.job_id}


def _event(session: Session, cutover: Cutover, type_: str, now: datetime, **data: Any) -> None:
    if cutover.local_network_id is None:
        return  # a cutover naming no known unit changes nothing anyone listens for
    emit(session, type_, local_network_id=cutover.local_network_id, cutover_id=cutover.id, occurred_at=now,
         data={"name": cutover.name, "state": cutover.state.value, "rows": cutover.row_count,
               "window_start": cutover.window_start.isoformat(), "window_end": cutover.window_end.isoformat(),
               **data})


def lock_cutover(session: Session, *, principal: Principal, settings: Settings, now: datetime,
                 cutover_id: str, per_unit: bool = False) -> Cutover:
    """`per_unit`: through the ORM transitions one unit at a time (the reference path the bulk
    path is tested against, resource_mgr.cutovers.bulk)."""
    cutover = get_cutover(session, cutover_id, principal, lock=True)
    if cutover.state != CutoverState.DRAFT:
        raise cutover_errors.wrong_state(cutover, "lock", "draft")
    if not cutover.valid:
        raise Conflict(f"cutover {cutover.id} has {len(cutover.errors)} invalid row(s) and stays a draft: fix the "
                       "mapping and create it again", field="validation", errors=cutover.errors[:100])
    if now >= cutover.window_end:
        raise Conflict(f"cutover {cutover.id}'s window ended at {cutover.window_end.isoformat()}", field="window_end")
    before = snapshot(cutover)
    rows = rows_of(session, cutover.id)
    # row locks first (id order, as every allocation takes them), then the check on what is committed
    units = units_for(session, per_unit=per_unit)
    units.take({r.old_unit_id for r in rows} | {r.new_unit_id for r in rows})
    report = validate(session, mapping_of(rows), settings=settings, now=now,
                      local_network_ids=principal.local_network_ids, cutover_id=cutover.id)
    if not report.valid:
        raise cutover_errors.no_longer_valid(cutover, [e.as_json() for e in report.errors])
    _refuse_pending_orders(session, rows, now)
    until = cutover.window_end + timedelta(hours=settings.cutover_grace_hours)
    change = _change(cutover, principal.name, now)
    held_by_cutover: set[str] = set()

    def holder_for(unit: Any) -> str:
        if unit.shared and unit.id in held_by_cutover:
            return new_id()  # one more place on a shared unit: a holder of its own
        held_by_cutover.add(unit.id)
        return cutover.id

    plans = {p.row: p for p in report.rows}
    updates: list[dict[str, Any]] = []
    avoid: set[str] = set()
    with session.no_autoflush:
        _lock_rows(session, settings, now, cutover, rows, plans, units, change, until, holder_for, updates, avoid)
    units.write()
    _update_rows(session, updates)
    cutover.state, cutover.locked_at, cutover.updated_at = CutoverState.LOCKED, now, now
    _record(session, cutover, "lock", principal.name, now, before)
    _event(session, cutover, "cutover.locked", now)
    session.flush()
    return cutover


def _lock_rows(session: Session, settings: Settings, now: datetime, cutover: Cutover, rows: list[CutoverRow],
               plans: dict[int, Any], units: Units, change: Change, until: datetime, holder_for: Any,
               updates: list[dict[str, Any]], avoid: set[str]) -> None:
    for row in rows:
        plan = plans[row.row]
        old = units.units[row.old_unit_id]
        admin_reason = old.admin_reason
        old.lock(change)
        if row.mode == COPPER_TO_FIBRE:
            # the design reads what is written: the places earlier rows took are written first
            units.write()
            path, work = _design_again(session, settings, now, row, plan, avoid)
            places = [(uid, 1) for uid in path]
            units.take(path)
        else:
            path, work = None, None
            places = [(row.new_unit_id, max(1, len(plan.services)))]
        holders: list[list[str]] = []
        for uid, count in places:
            unit = units.units[uid]
            for _ in range(count if unit.shared else 1):
                holder = holder_for(unit)
                unit.preoccupy(change, reservation_id=holder, until=until)
                holders.append([uid, holder])
            if not unit.shared:
                avoid.add(uid)
        moved: dict[str, Any] = {"admin_reason": admin_reason}
        if work is not None:
            moved["work"] = work  # the field work of the path as designed now (docs/api.md "field work")
        updates.append({"cutover_id": cutover.id, "row": row.row, "path": path, "holders": holders,
                        "moved": moved})


def _update_rows(session: Session, updates: list[dict[str, Any]]) -> None:
    for i in range(0, len(updates), 2000):
        session.execute(update(CutoverRow), updates[i:i + 2000])


def _refuse_pending_orders(session: Session, rows: list[CutoverRow], now: datetime) -> None:
    """An old unit a pending order holds would strand the order (its commit would land on a
    locked unit): the dispatcher resolves each first (commits, cancels or lets it expire) or
    leaves those rows out. The 409 names every one: `pending_orders` [{row, unit_id, unit_name,
    reservation_id, order_ref, work_order_ref, expires_at}], `pending_count` (docs/api.md)."""
    from resource_mgr.orders.models import Reservation

    row_of: dict[str, int] = {}
    for r in rows:
        row_of.setdefault(r.old_unit_id, r.row)
    held: list[tuple[str, str, str, Any]] = []  # unit id, name, holder, until
    hold = SharedHold.__table__
    for part in chunks(sorted(row_of)):
        held += session.execute(select(Unit.id, Unit.name, Unit.reservation_id, Unit.preoccupied_until).where(
            Unit.id.in_(part), Unit.capacity == 1, Unit.occupancy == Occupancy.PREOCCUPIED,
            Unit.preoccupied_until > now)).all()
        held += session.execute(select(Unit.id, Unit.name, hold.c.holder, hold.c.expires_at)
                                .join(hold, hold.c.unit_id == Unit.id)
                                .where(Unit.id.in_(part), Unit.capacity > 1, hold.c.expires_at > now)).all()
    if not held:
        return
    orders: dict[str, Any] = {}
    for part in chunks(sorted({h[2] for h in held})):
        orders.update({o.id: o for o in session.execute(
            select(Reservation.id, Reservation.order_ref, Reservation.work_order_ref)
            .where(Reservation.id.in_(part)))})
    held = sorted((h for h in held if h[2] in orders), key=lambda h: (row_of[h[0]], h[2]))
    if not held:
        return  # held by no order (another cutover's pre-occupation is judged by validation)
    pending = [{"row": row_of[uid], "unit_id": uid, "unit_name": name, "reservation_id": rid,
                "order_ref": orders[rid].order_ref, "work_order_ref": orders[rid].work_order_ref,
                "expires_at": aware(until).isoformat()} for uid, name, rid, until in held]
    first = pending[0]
    refs = sorted({p["order_ref"] for p in pending})
    raise Conflict(f"{len(pending)} old unit(s) are held by {len(refs)} pending order(s): "
                   + ", ".join(refs[:10]) + (", …" if len(refs) > 10 else "")
                   + f"; first row {first['row']}, {first['unit_name']} ({first['unit_id']}) by reservation "
                   f"{first['reservation_id']} (order {first['order_ref']}). Commit or cancel them (or let them "
                   "expire), or leave those rows out, then lock again", field="mapping", unit_id=first["unit_id"],
                   pending_orders=pending[:100], pending_count=len(pending))


def _design_again(session: Session, settings: Settings, now: datetime, row: CutoverRow, plan: Any,
                  avoid: set[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """The FTTH path of a copper-to-fibre row, designed and row-locked now from its box port, and
    its field work."""
    from resource_mgr.customers.models import Service
    from resource_mgr.design.services import design_path

    service = session.get(Service, plan.services[0])
    design = design_path(session, address_id=service.address_id, technology="FTTH", settings=settings, now=now,
                         keep=[row.new_unit_id], avoid=frozenset(avoid), lock=True)
    if row.new_unit_id not in design.unit_ids:
        raise Conflict(f"row {row.row}: box port {row.new_unit_id} no longer gives an FTTH path to service "
                       f"{service.id}", field="mapping", row=row.row)
    return list(design.unit_ids), [w.as_json() for w in design.work]


def lock_all(session: Session, ids: Any) -> dict[str, Unit]:
    """Row-lock these units (id order) and hold them: the session keeps objects only while someone
    refers to them, and a unit it forgot would be read again one statement at a time."""
    wanted = sorted(set(ids))
    out: dict[str, Unit] = {}
    todo = [i for i in wanted if not ledger.is_locked(session, i)]
    for part in chunks(todo, 500):
        for unit in ledger.lock_query(session, select(Unit).where(Unit.id.in_(part)).order_by(Unit.id)):
            out[unit.id] = unit
    for part in chunks([i for i in wanted if i not in out]):  # locked earlier in this transaction
        for unit in session.scalars(select(Unit).where(Unit.id.in_(part))):
            out[unit.id] = unit
    missing = [i for i in wanted if i not in out]
    if missing:
        raise Conflict(f"unit {missing[0]} of the cutover no longer exists", field="mapping", unit_id=missing[0])
    return out


_WRITTEN = ("occupancy", "reservation_id", "preoccupied_until", "service_id", "used", "admin_state", "locked_by",
            "admin_reason", "quarantine_until")


def write_units(session: Session, units: Any) -> int:
    """Write the units the transitions changed in one executemany UPDATE (the ORM writes a
    versioned row one statement at a time: 40,000 round trips for a 20,000-row cutover). Each
    row is checked against its version (they are row-locked by us: a miss is a defect)."""
    table = Unit.__table__
    dirty = [u for u in units if instance_state(u).modified and session.is_modified(u, include_collections=False)]
    if not dirty:
        return 0
    stmt = (update(table).where(table.c.id == bindparam("w_id"), table.c.version == bindparam("w_version"))
            .values(version=table.c.version + 1,
                    **{c: bindparam(f"w_{c}", type_=table.c[c].type) for c in _WRITTEN}))
    values = [{"w_id": u.id, "w_version": u.version, **{f"w_{c}": getattr(u, c) for c in _WRITTEN}} for u in dirty]
    written = 0
    for i in range(0, len(values), 2000):
        written += session.connection().execute(stmt, values[i:i + 2000]).rowcount
    if written != len(values):
        raise Conflict("units of the cutover were changed under their row locks", field="mapping")
    for u in dirty:
        for c in _WRITTEN:
            set_committed_value(u, c, getattr(u, c))
        set_committed_value(u, "version", u.version + 1)
    return written


def unlock_cutover(session: Session, *, principal: Principal, now: datetime, cutover_id: str,
                   per_unit: bool = False) -> Cutover:
    cutover = get_cutover(session, cutover_id, principal, lock=True)
    if cutover.state not in (CutoverState.LOCKED, CutoverState.FAILED):
        raise cutover_errors.wrong_state(cutover, "unlock", "locked (or failed, not applied)")
    before = snapshot(cutover)
    release_locks(session, cutover, rows_of(session, cutover.id), principal.name, now, per_unit=per_unit)
    cutover.state, cutover.ended_at, cutover.updated_at = CutoverState.CANCELLED, now, now
    _record(session, cutover, "unlock", principal.name, now, before)
    _event(session, cutover, "cutover.cancelled", now)
    session.flush()
    return cutover


def release_locks(session: Session, cutover: Cutover, rows: list[CutoverRow], principal: str, now: datetime,
                  *, holds: bool = True, per_unit: bool = False) -> None:
    """Unlock the old units and (`holds`) release the new units' pre-occupations."""
    change = _change(cutover, principal, now)
    ids = {r.old_unit_id for r in rows} | ({uid for r in rows for uid, _ in (r.holders or [])} if holds else set())
    units = units_for(session, per_unit=per_unit)
    found = units.take(ids)
    with session.no_autoflush:
        for row in rows:
            if holds:
                for uid, holder in row.holders or []:
                    found[uid].release_preoccupation(change, reservation_id=holder)
            unlock_old(found[row.old_unit_id], row, change)
    units.write()


def unlock_old(unit: Any, row: CutoverRow, change: Change) -> None:
    """The old unit in service again, with the note it had before the lock."""
    unit.unlock(change)
    set_admin_reason(unit, (row.moved or {}).get("admin_reason"))


# -- apply and rollback: the jobs ------------------------------------------------------------------

def _start_job(session: Session, cutover: Cutover, kind: str, principal: Principal, now: datetime) -> Job:
    job = jobs.create_job(session, kind, {"cutover_id": cutover.id}, created_by=principal.name,
                          local_network_id=cutover.local_network_id)
    job.total = cutover.row_count
    cutover.job_id, cutover.updated_at = job.id, now
    return job


def start_apply(session: Session, *, principal: Principal, now: datetime, cutover_id: str) -> tuple[Cutover, Job]:
    cutover = get_cutover(session, cutover_id, principal, lock=True)
    if cutover.state not in (CutoverState.LOCKED, CutoverState.FAILED):
        raise cutover_errors.wrong_state(cutover, "apply", "locked (or failed)")
    before = snapshot(cutover)
    cutover.state, cutover.done = CutoverState.APPLYING, 0
    job = _start_job(session, cutover, APPLY_KIND, principal, now)
    _record(session, cutover, "apply", principal.name, now, before)
    session.flush()
    return cutover, job


def start_rollback(session: Session, *, principal: Principal, now: datetime, cutover_id: str) -> tuple[Cutover, Job]:
    cutover = get_cutover(session, cutover_id, principal, lock=True)
    if cutover.state != CutoverState.APPLIED:
        raise cutover_errors.wrong_state(cutover, "roll back", "applied")
    running = session.get(Job, cutover.job_id) if cutover.job_id else None
    if running is not None and running.kind == ROLLBACK_KIND and running.state in (JobState.QUEUED, JobState.RUNNING):
        raise Conflict(f"cutover {cutover.id} is being rolled back already (job {running.id})", field="state",
                       job_id=running.id)
    before = snapshot(cutover)
    cutover.done = 0
    job = _start_job(session, cutover, ROLLBACK_KIND, principal, now)
    _record(session, cutover, "rollback", principal.name, now, before)
    session.flush()
    return cutover, job


# -- field work ------------------------------------------------------------------------------

def field_work(session: Session, cutover: Cutover, *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """The field work of the copper-to-fibre rows, row by row, as orders list theirs (`work`:
    install the ONT, make the jumpers of the FTTH path) and the copper path the service leaves.
    As validated for a draft; as designed at lock once locked (the path the apply occupies)."""
    rows = [r for r in rows_of(session, cutover.id) if r.mode == COPPER_TO_FIBRE]
    page = rows[offset:offset + limit]
    return {"total": len(rows), "limit": limit, "offset": offset,
            "rows": [{"row": r.row, "old": r.old_unit_id, "new": r.new_unit_id, "path": r.path or [],
                      "work": list((r.moved or {}).get("work") or [])} for r in page]}


# -- impact ----------------------------------------------------------------------------------------

def impact_of(session: Session, cutover: Cutover, *, limit: int = 50, offset: int = 0,
              local_network_ids: Any = None) -> dict[str, Any]:
    """Who to notify: the topology's impact (the `POST /impact` answer) of the old units."""
    from resource_mgr.topology.services import impact

    olds = sorted({r.old_unit_id for r in rows_of(session, cutover.id)})
    known = set()
    for part in chunks(olds):
        known.update(session.scalars(select(Unit.id).where(Unit.id.in_(part))))
    return impact(session, [u for u in olds if u in known], limit=limit, offset=offset,
                  local_network_ids=local_network_ids)

