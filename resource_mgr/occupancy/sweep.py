"""The expiry sweeper: frees pre-occupations whose time is up and writes them into history.

An expired pre-occupation already counts as free for everyone (`Unit.effective_occupancy`,
`Unit.choosable`); the sweep makes the rows say so, records one "expire" history row per unit and
reservation (principal "system:sweeper"), and tells the trust limits who let them expire: the
principal of the unit's latest "preoccupy" row for that reservation. One expired pre-occupation
is one reservation of one principal, however many units it held.
"""
from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.clock import aware, utcnow
from resource_mgr.db import Database
from resource_mgr.occupancy.ledger import lock_query
from resource_mgr.occupancy.models import Change, History, SharedHold, Unit
from resource_mgr.states import Occupancy

SWEEPER = "system:sweeper"
JOB_KIND = "sweep_expired"
BATCH = 500


@dataclass
class SweepResult:
    units: int = 0  # units freed (an exclusive unit, or one hold on a shared unit)
    by_principal: dict[str, int] = field(default_factory=dict)  # expired reservations per principal
    reservations: set[str] = field(default_factory=set)
    unattributed: int = 0  # reservations with no "preoccupy" row (bulk-loaded data)
    by_reservation: dict[str, str | None] = field(default_factory=dict)  # reservation → principal


def _scoped(stmt: Any, column: Any, local_network_ids: Iterable[str] | None) -> Any:
    return stmt if local_network_ids is None else stmt.where(column.in_(sorted(local_network_ids)))


def _expired_exclusive(session: Session, now: datetime, local_network_ids: Iterable[str] | None,
                       limit: int | None) -> list[Unit]:
    stmt = select(Unit).where(Unit.capacity == 1, Unit.occupancy == Occupancy.PREOCCUPIED,
                              Unit.preoccupied_until <= now).order_by(Unit.id)
    stmt = _scoped(stmt, Unit.local_network_id, local_network_ids)
    if limit:
        stmt = stmt.limit(limit)
    return lock_query(session, stmt, skip_locked=True)  # a unit being changed now is swept next time


def _expired_shared(session: Session, now: datetime, local_network_ids: Iterable[str] | None,
                    limit: int | None) -> list[Unit]:
    ids = select(SharedHold.unit_id).join(Unit, Unit.id == SharedHold.unit_id).where(
        SharedHold.expires_at <= now).distinct()
    ids = _scoped(ids, Unit.local_network_id, local_network_ids)
    stmt = select(Unit).where(Unit.id.in_(ids)).order_by(Unit.id)
    if limit:
        stmt = stmt.limit(limit)
    return lock_query(session, stmt, skip_locked=True)  # a unit being changed now is swept next time


def _preoccupiers(session: Session, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(unit id, reservation id) → the principal of the latest "preoccupy" row for them. A row
    names the reservation in its `reservation_id` or, for an exclusive unit, in its `after` state."""
    found: dict[tuple[str, str], tuple[Any, int, str]] = {}
    unit_ids = sorted({u for u, _ in pairs})
    for i in range(0, len(unit_ids), 500):
        rows = session.execute(select(History.resource_id, History.reservation_id, History.after, History.at,
                                      History.id, History.principal)
                               .where(History.action == "preoccupy", History.resource_id.in_(unit_ids[i:i + 500])))
        for unit_id, reservation_id, after, at, hid, principal in rows:
            named = {reservation_id, (after or {}).get("reservation_id")} - {None}
            for rid in named:
                key = (unit_id, rid)
                if key in pairs and (key not in found or (aware(at), hid) > found[key][:2]):
                    found[key] = (aware(at), hid, principal)
    return {key: value[2] for key, value in found.items()}


def sweep(session: Session, now: datetime | None = None, *, local_network_ids: Iterable[str] | None = None,
          limit: int | None = None) -> SweepResult:
    """Free every expired pre-occupation (at most `limit` units of each sort when given), in the
    caller's transaction. See `sweep_expired` for the plain per-principal counts."""
    now = now or utcnow()
    ids = None if local_network_ids is None else list(local_network_ids)
    cleaning = Change(principal=SWEEPER, at=now, reason="pre-occupation expired")
    expired: list[tuple[Unit, str]] = [  # unit, reservation
        (unit, reservation_id)
        for unit in _expired_exclusive(session, now, ids, limit) + _expired_shared(session, now, ids, limit)
        for reservation_id in unit.expire(cleaning)
    ]

    result = SweepResult()
    pairs = {(u.id, r) for u, r in expired if r}
    who = _preoccupiers(session, pairs) if pairs else {}
    per_reservation: dict[str, str | None] = {}
    for unit, reservation_id in expired:
        result.units += 1
        if reservation_id:
            principal = who.get((unit.id, reservation_id))
            if per_reservation.get(reservation_id) is None:
                per_reservation[reservation_id] = principal
    counts: Counter[str] = Counter()
    for reservation_id, principal in per_reservation.items():
        result.reservations.add(reservation_id)
        if principal:
            counts[principal] += 1
        else:
            result.unattributed += 1
    result.by_principal = dict(counts)
    result.by_reservation = per_reservation
    session.flush()
    return result


def sweep_expired(session: Session, now: datetime | None = None) -> dict[str, int]:
    """Free every unit whose pre-occupation has expired (exclusive units and shared holds), one
    "expire" history row each; returns how many pre-occupations (reservations) expired per
    principal who made them: {"user:alice": 2}."""
    return sweep(session, now).by_principal


def record_trust(session: Session, counts: dict[str, int]) -> bool:
    """Hand the counts to the trust limits, when that module is installed."""
    try:
        trust = importlib.import_module("resource_mgr.security.trust")
    except ImportError:
        return False
    if not hasattr(trust, "record_expirations"):
        return False
    trust.record_expirations(session, counts)
    return True


def count_expired(session: Session, now: datetime, local_network_ids: Iterable[str] | None = None) -> int:
    from sqlalchemy import func

    exclusive = _scoped(select(func.count()).select_from(Unit).where(
        Unit.capacity == 1, Unit.occupancy == Occupancy.PREOCCUPIED, Unit.preoccupied_until <= now),
        Unit.local_network_id, local_network_ids)
    shared = _scoped(select(func.count(func.distinct(SharedHold.unit_id))).join(
        Unit, Unit.id == SharedHold.unit_id).where(SharedHold.expires_at <= now), Unit.local_network_id,
        local_network_ids)
    return int(session.scalar(exclusive) or 0) + int(session.scalar(shared) or 0)


def expire_reservations(session: Session, now: datetime, limit: int | None = None,
                        local_network_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Reservations past their expiry marked expired (resource_mgr.orders, when installed), their
    units freed: {reservation id: its principal}. Counted per reservation, even when a unit it held
    was taken over by another order before the sweep ran."""
    try:
        expiry = importlib.import_module("resource_mgr.orders.expiry")
    except ImportError:
        return {}
    return expiry.expire_due(session, now, limit=limit, local_network_ids=local_network_ids)


def run_sweep_job(db: Database, job_id: str, progress: Any) -> dict[str, Any]:
    """Job handler: sweep in batches, one unit of work each, progress between them. Params:
    `local_network_ids` (a list, or absent for every local network)."""
    from resource_mgr.jobs.models import Job

    with db.read_session() as session:
        params = session.get(Job, job_id).params or {}
        ids = params.get("local_network_ids")
        total = count_expired(session, utcnow(), ids)
    progress(0, total)
    units = 0
    seen: dict[str, str | None] = {}  # a reservation split over batches counts once
    trust_recorded = False
    while True:
        with db.unit_of_work(principal=SWEEPER) as uow:
            now = utcnow()
            # reservations first: what they held is freed naming them; the sweep frees the rest
            ended = expire_reservations(uow.session, now, BATCH, ids)
            batch = sweep(uow.session, now, local_network_ids=ids, limit=BATCH)
            batch.by_reservation = {**batch.by_reservation, **ended}
            batch.reservations |= set(ended)
            fresh = Counter(p for r, p in batch.by_reservation.items() if r not in seen and p)
            if fresh:
                trust_recorded = record_trust(uow.session, dict(fresh)) or trust_recorded
            uow.commit()
        for reservation_id, principal in batch.by_reservation.items():
            seen.setdefault(reservation_id, principal)
        units += batch.units
        progress(units, max(total, units))
        if batch.units < BATCH and len(ended) < BATCH:
            break
    by_principal = Counter(p for p in seen.values() if p)
    return {"message": f"freed {units} unit(s) of {len(seen)} expired pre-occupation(s)",
            "units": units, "reservations": len(seen), "by_principal": dict(by_principal),
            "unattributed": sum(1 for p in seen.values() if not p), "trust_recorded": trust_recorded}


def _register() -> None:
    from resource_mgr.jobs.services import register

    register(JOB_KIND, run_sweep_job, rerun="idempotent")  # a second sweep finds nothing left to free


_register()
