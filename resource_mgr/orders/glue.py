"""The other features orders calls: the path design and the event outbox."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from resource_mgr.config import Settings
from resource_mgr import design
from resource_mgr.events.services import emit as outbox
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import History
from resource_mgr.orders.models import Reservation
from resource_mgr.states import Technology


def design_path(session: Session, *, address_id: str, technology: Technology, settings: Settings, now: datetime,
                avoid: frozenset[str] = frozenset(), keep: Sequence[str] = (), reservation_id: str | None = None) -> Any:
    """The best complete path now, its chosen units locked and re-checked (`lock=True`); the
    units `reservation_id` holds count as free (a redesign keeps them)."""
    extra = {"reservation_id": reservation_id} if reservation_id else {}
    return design.design_path(session, address_id=address_id, technology=technology, settings=settings, now=now,
                  avoid=avoid, keep=keep, lock=True, **extra)


def lock_shared(session: Session, unit_ids: Sequence[str], *, uses: bool = False) -> None:
    """Lock the units (ledger.lock_units) and load the holds (and with `uses` the services) of the
    shared ones in one query each (ledger.load_shared)."""
    ledger.load_shared(session, ledger.lock_units(session, unit_ids), uses=uses)


def emit(session: Session, type_: str, reservation: Reservation, *, service_id: str | None = None,
         data: dict[str, Any] | None = None, occurred_at: datetime | None = None) -> None:
    """An event to BSS and IOM, written in this transaction (sent after the commit)."""
    outbox(session, type_, local_network_id=reservation.local_network_id, order_ref=reservation.order_ref,
           reservation_id=reservation.id, service_id=service_id or reservation.service_id, data=data or {},
           occurred_at=occurred_at)


def record(session: Session, reservation: Reservation, action: str, *, principal: str, at: datetime,
           before: dict[str, Any], reason: str | None = None) -> None:
    """A history row about the reservation itself (the units' rows name it too), so
    GET /history?order_ref= tells the order's story."""
    session.add(History(
        at=at, principal=principal, local_network_id=reservation.local_network_id, resource_id=reservation.id,
        resource_kind="reservation", action=action, order_ref=reservation.order_ref,
        reservation_id=reservation.id, service_id=reservation.service_id, reason=reason, before=before,
        after=snapshot(reservation)))


def snapshot(reservation: Reservation) -> dict[str, Any]:
    return {"state": reservation.state.value if reservation.state else None,
            "expires_at": reservation.expires_at.isoformat() if reservation.expires_at else None,
            "units": len(reservation.unit_ids or ()), "number": reservation.number,
            "service_id": reservation.service_id}
