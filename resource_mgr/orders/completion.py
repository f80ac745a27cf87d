"""Commit (竣工): the pre-occupied units become occupied by the service, what the order gives
back is released, a removed number enters its pool's quarantine.

- `new`: a new service (with its path, in order) and the services that ride on it.
- `move` / `change`: the same service, on its new path (and new address, technology, product);
  the old units the new path does not reuse are released; a number that changes exchange is
  released to quarantine and the new one occupied.
- `remove`: the service and its riders end; their units and number are released.

Commit of an expired reservation (marked expired by the sweep or not yet): `409 expired`, unless
every unit it held is still free (or still its own), in which case the hold is renewed and the
commit goes on: the field work is done, and nothing was lost to another order. A second commit with the same `work_order_ref` answers
the first one's result; with another it is `409 conflict`.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from resource_mgr.config import Settings
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.errors import Conflict, Expired, Invalid
from resource_mgr.ids import new_id
from resource_mgr.inventory.models import Connection
from resource_mgr.inventory.services import connect
from resource_mgr.numbers.models import Number, NumberPool
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Change, Unit
from resource_mgr.orders import glue
from resource_mgr.orders.models import Reservation
from resource_mgr.orders.services import get_reservation, reservation_summary, ttl_for
from resource_mgr.security import trust
from resource_mgr.security.principal import Principal
from resource_mgr.states import ReservationState, ServiceState


def commit(session: Session, *, principal: Principal, settings: Settings, now: datetime, reservation_id: str,
           work_order_ref: str, completed_at: datetime | None = None) -> Reservation:
    if not work_order_ref or len(work_order_ref) > 100:
        raise Invalid("work_order_ref must be 1 to 100 characters", field="work_order_ref")
    if completed_at is not None and completed_at > now + timedelta(minutes=5):
        raise Invalid("completed_at is in the future", field="completed_at")
    res = get_reservation(session, reservation_id, principal, lock=True)
    if res.state == ReservationState.COMMITTED:
        if res.work_order_ref == work_order_ref:
            return res  # a retried commit
        raise Conflict(f"reservation {res.id} was committed already (work order {res.work_order_ref})", field="id")
    if res.state == ReservationState.CANCELLED:
        raise Conflict(f"reservation {res.id} was cancelled", field="id")
    if res.request is None:
        raise Conflict(f"reservation {res.id} holds only number {res.number}: reserve the order first", field="id")
    if not res.products:
        raise Conflict(f"reservation {res.id} was imported and names no products: cancel it, or commit it in the "
                       "system it came from", field="id")
    before = glue.snapshot(res)
    change = Change(principal=principal.name, order_ref=res.order_ref, reservation_id=res.id, at=now,
                    reason=f"work order {work_order_ref}")
    if not res.live(now):  # expired, swept or not: renewed when nothing it held was taken since
        _renew(session, res, change, settings)
        res.state, res.ended_at = ReservationState.PREOCCUPIED, None
    at = completed_at or now
    if res.action == "new":
        service = _create(session, res, change, at)
        events = [("service.created", service)]
    elif res.action == "remove":
        service = _remove(session, res, change, settings, at)
        events = [("service.removed", service)]
    else:
        service = _change(session, res, change, settings)
        events = [("service.changed", service)]
    _make_jumpers(session, res)
    res.state, res.committed_at, res.updated_at, res.work_order_ref = ReservationState.COMMITTED, at, now, work_order_ref
    res.service_id = service.id
    trust.record_commit(session, res.principal)
    glue.record(session, res, "commit", principal=principal.name, at=now, before=before,
                reason=f"work order {work_order_ref}")
    glue.emit(session, "reservation.committed", res, data=reservation_summary(res), occurred_at=now)
    for type_, svc in events:
        glue.emit(session, type_, res, service_id=svc.id, data=service_json(svc), occurred_at=now)
    session.flush()
    return res


def _renew(session: Session, res: Reservation, change: Change, settings: Settings) -> None:
    """Hold again what an expired reservation held, if nobody took any of it meanwhile."""
    for unit in ledger.lock_units(session, res.held_unit_ids()):
        ours = (any(h.holder == res.id for h in unit.holds) if unit.shared else unit.reservation_id == res.id)
        if not ours and unit.spare(change.at) == 0:
            raise Expired(f"reservation {res.id} expired at {res.expires_at.isoformat()} and {unit.kind} "
                          f"{unit.name} has been taken since: reserve again", field="id", unit_id=unit.id)
    res.expires_at = change.at + timedelta(hours=ttl_for(res.action, None, settings))
    ledger.preoccupy(session, res.held_unit_ids(), change, reservation_id=res.id, until=res.expires_at)


def _set_path(service: Service, unit_ids: list[str]) -> None:
    service.path[:] = [ServiceUnit(service_id=service.id, seq=i, unit_id=u) for i, u in enumerate(unit_ids, 1)]


def _create(session: Session, res: Reservation, change: Change, at: datetime) -> Service:
    """The line service (on the path) and the services riding on it (or on the bearer)."""
    line_product = _line_product(res)
    number_product = next((p for p in ("pots", "ngn_phone") if p in res.products), line_product)
    made: list[Service] = []
    for product in ([line_product] if line_product else []) + [p for p in res.products if p != line_product]:
        made.append(Service(
            id=new_id(), local_network_id=res.local_network_id, product=product, technology=res.technology or "",
            address_id=res.address_id, order_ref=res.order_ref, created_at=at,
            bearer_id=None if product == line_product else (made[0].id if line_product else res.bearer_id),
            number=res.number if product == number_product else None))
        session.add(made[-1])
        session.flush()  # the bearer before its riders
        set_committed_value(made[-1], "path", [])  # new: nothing to read (a lazy load each otherwise)
    line = made[0]
    if line_product is not None:
        _set_path(line, list(res.unit_ids))
        ledger.occupy(session, res.unit_ids, change, service_id=line.id, reservation_id=res.id)
    if res.number_unit_id:
        holder = next((s for s in made if s.number), line)
        ledger.occupy(session, [res.number_unit_id], change, service_id=holder.id, reservation_id=res.id)
    return line


def _line_product(res: Reservation) -> str | None:
    from resource_mgr.orders.plan import BROADBAND
    line = next((p for p in res.products if p in {b.value for b in BROADBAND}), None)
    if line:
        return line
    if res.bearer_id:
        return None  # riders only
    return next((p for p in res.products if p in ("pots", "ngn_phone")), None)


def _quarantine_days(session: Session, number_unit_id: str, settings: Settings) -> int:
    days = session.scalar(select(NumberPool.quarantine_days).join(Number, Number.pool_id == NumberPool.id)
                          .where(Number.id == number_unit_id))
    return settings.number_quarantine_days if days is None else days


def _give_back(session: Session, res: Reservation, change: Change, settings: Settings, service: Service) -> None:
    release = res.release or {}
    if release.get("unit_ids"):
        ledger.release(session, release["unit_ids"], change, service_id=service.id)
    if release.get("number_unit_id"):
        holder = session.scalar(select(Unit.service_id).where(Unit.id == release["number_unit_id"]))
        ledger.release(session, [release["number_unit_id"]], change, service_id=holder or service.id,
                       quarantine_days=_quarantine_days(session, release["number_unit_id"], settings))


def _remove(session: Session, res: Reservation, change: Change, settings: Settings, at: datetime) -> Service:
    service = session.get(Service, res.service_id)
    _give_back(session, res, change, settings, service)
    riders = list(session.scalars(select(Service).where(Service.bearer_id == service.id,
                                                        Service.state == ServiceState.ACTIVE)))
    for svc in (service, *riders):
        svc.state, svc.removed_at = ServiceState.REMOVED, at
    return service


def _change(session: Session, res: Reservation, change: Change, settings: Settings) -> Service:
    """Move or change: the service keeps its id; its path becomes the new one."""
    service = session.get(Service, res.service_id)
    _give_back(session, res, change, settings, service)
    ledger.occupy(session, res.unit_ids, change, service_id=service.id, reservation_id=res.id)
    if res.number_unit_id:
        number_holder = service
        if service.number is None or service.product not in ("pots", "ngn_phone"):
            number_holder = session.scalar(select(Service).where(
                Service.bearer_id == service.id, Service.state == ServiceState.ACTIVE,
                Service.product.in_(("pots", "ngn_phone")))) or service
        ledger.occupy(session, [res.number_unit_id], change, service_id=number_holder.id, reservation_id=res.id)
        number_holder.number = res.number
    _set_path(service, list(res.unit_ids))
    service.address_id = res.address_id or service.address_id
    service.technology = res.technology or service.technology
    line = _line_product(res)
    if line and res.action == "change":
        service.product = line
    riders = session.scalars(select(Service).where(Service.bearer_id == service.id, Service.state == ServiceState.ACTIVE))
    for rider in riders:  # they ride along
        rider.address_id, rider.technology = service.address_id, service.technology
    return service


def _make_jumpers(session: Session, res: Reservation) -> None:
    """The jumpers the design asked the field to make exist now (cross box, MDF)."""
    for work in (res.design or {}).get("work") or []:
        if work.get("action") != "make_jumper" or not work.get("a_unit_id") or not work.get("z_unit_id"):
            continue
        a, z = work["a_unit_id"], work["z_unit_id"]
        exists = session.scalar(select(Connection.id).where(
            ((Connection.a_unit_id == a) & (Connection.z_unit_id == z))
            | ((Connection.a_unit_id == z) & (Connection.z_unit_id == a))))
        if exists is None:  # made through the inventory, so the change feed (and every topology cache) sees it
            connect(session, a, z, "jumper", container_id=work.get("container_id"))


def service_json(service: Service, *, local_network: str | None = None) -> dict[str, Any]:
    customer = service.customer
    return {
        "id": service.id, "product": service.product, "technology": service.technology,
        "state": str(service.state.value if hasattr(service.state, "value") else service.state),
        "address_id": service.address_id, "number": service.number, "bearer_id": service.bearer_id,
        "order_ref": service.order_ref, "local_network": local_network,
        "customer": None if customer is None else {"id": customer.id, "external_ref": customer.external_ref,
                                                   "name": customer.name, "grade": str(customer.grade)},
        "created_at": service.created_at.isoformat() if service.created_at else None,
        "removed_at": service.removed_at.isoformat() if service.removed_at else None,
    }
