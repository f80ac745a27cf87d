"""Expiry of reservations: past `expires_at` their units are free for anyone already (the
ledger counts an expired pre-occupation as free); this marks the reservation expired, clears
what it still holds (one "expire" history row per unit, naming it), records a history row about
the reservation and sends `reservation.expired`. Run by the sweep job (resource_mgr.occupancy.sweep).

Expiries are counted per reservation: one whose unit was taken over by a new order before the
sweep ran is still one expiry of the principal who let it lapse (`expire_due` returns them)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.occupancy.models import Change
from resource_mgr.orders import glue
from resource_mgr.orders.models import Reservation
from resource_mgr.orders.services import release_held, reservation_summary
from resource_mgr.states import ReservationState

EXPIRER = "system:sweeper"


def expire_due(session: Session, now: datetime, *, limit: int | None = None,
               local_network_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Mark every pre-occupied reservation past its expiry expired, in the caller's transaction.
    Returns {reservation id: the principal who made it}. A reservation being changed right now
    (its row locked) is left for the next run."""
    stmt = (select(Reservation).where(Reservation.state == ReservationState.PREOCCUPIED,
                                      Reservation.expires_at <= now)
            .order_by(Reservation.expires_at, Reservation.id).execution_options(populate_existing=True))
    if local_network_ids is not None:
        stmt = stmt.where(Reservation.local_network_id.in_(sorted(local_network_ids)))
    if limit:
        stmt = stmt.limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    out: dict[str, str] = {}
    for res in session.scalars(stmt).all():
        before = glue.snapshot(res)
        change = Change(principal=EXPIRER, order_ref=res.order_ref, reservation_id=res.id, at=now,
                        reason="pre-occupation expired")
        release_held(session, res, change, expire=True)
        res.state, res.ended_at, res.updated_at = ReservationState.EXPIRED, now, now
        glue.record(session, res, "expire", principal=EXPIRER, at=now, before=before, reason="pre-occupation expired")
        glue.emit(session, "reservation.expired", res, data=reservation_summary(res), occurred_at=now)
        out[res.id] = res.principal
    session.flush()
    return out
