"""`keep_number: false`: a service the cutover moves gets a new number, the old one is released
into quarantine; rollback gives the old number back and frees the new one.

The new number is a normal-grade one of the exchange that serves the service's new line: the
pools of the switch whose line port is on its new path, or, for a line that has none (FTTH:
a POTS line moved to fibre becomes `ngn_phone`), the pools of the local network's NGN
softswitches, as orders choose them. Numbers go through the ledger's own transitions (they are
not units of the mapping, and are few); the old number's quarantine is its pool's.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.customers.models import Service
from resource_mgr.errors import NoCapacity
from resource_mgr.ids import new_id
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Change, Unit


def _pools(session: Session, service: Service, path: list[str]) -> list[str]:
    from resource_mgr.orders.plan import ngn_pools, pools_for_switch

    switch = session.scalar(select(Unit.root_id).where(Unit.id.in_(path), Unit.kind == "line_port").limit(1)) \
        if path else None
    pools = pools_for_switch(session, switch) if switch else ngn_pools(session, service.local_network_id)
    return [p.id for p in pools]


def renumber(session: Session, service: Service, new_path: list[str], change: Change, *,
             now: datetime) -> dict[str, Any] | None:
    """Give `service` a new number of the exchange serving `new_path`; the old number released
    into its pool's quarantine. What rollback needs to undo it (None: the service has no number)."""
    from resource_mgr.numbers.models import Number
    from resource_mgr.numbers.search import quarantine_days_for
    from resource_mgr.orders import numbering

    if not service.number:
        return None
    old = session.scalar(select(Number).where(Number.local_network_id == service.local_network_id,
                                              Number.number == service.number))
    holder = new_id()  # the cutover's hold on the new number, for the instant between choosing and occupying
    try:
        got = numbering.allocate(session, change, pool_ids=_pools(session, service, new_path), reservation_id=holder,
                                 until=now + timedelta(minutes=5))
    except NoCapacity as exc:
        raise NoCapacity(f"service {service.id} keeps no number (keep_number false), but {exc.detail}",
                         field="mapping", service_id=service.id, reasons=exc.extra.get("reasons")) from None
    ledger.occupy(session, [got.id], change, service_id=service.id, reservation_id=holder)
    if old is not None:
        ledger.release(session, [old.id], change, service_id=service.id,
                       quarantine_days=quarantine_days_for(session, old))
    service.number = got.number
    return {"old": old.number if old else service.number, "old_unit_id": old.id if old else None,
            "new": got.number, "new_unit_id": got.id}


def give_back(session: Session, service_id: str, moved: dict[str, Any], change: Change) -> None:
    """Rollback of `renumber`: the new number free again (no quarantine: nobody dialled it), the
    old one out of quarantine and the service's again."""
    ledger.release(session, [moved["new_unit_id"]], change, service_id=service_id)
    if moved.get("old_unit_id"):
        [old] = ledger.lock_units(session, [moved["old_unit_id"]])
        if old.quarantine_until is not None:
            old.end_quarantine(change)
        old.occupy(change, service_id=service_id)
