"""Reservations: design and pre-occupy (reserve), hold a chosen number, cancel, redesign.
Commit is in resource_mgr.orders.completion, expiry in resource_mgr.orders.expiry.

Every use case runs in the caller's unit of work (resource_mgr.orders.retry runs it again when
the database says so) and changes units only through the ledger, which locks, re-checks and
writes the history rows naming the reservation.

Idempotency on `order_ref` (unique per local network): the same request again returns the same
reservation (`created` False: the API answers 200 instead of 201); a different request under it
is `409 conflict`. A reservation made by `preoccupy_number` holds only a number and no request
yet: the order's POST /reservations fills it in (and keeps that number).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resource_mgr.config import Settings
from resource_mgr.customers.models import Service
from resource_mgr.errors import Conflict, Expired, Invalid, NoCapacity, NotFound
from resource_mgr.ids import new_id
from resource_mgr.inventory.models import Address, LocalNetwork
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Change, Unit
from resource_mgr.orders import glue, numbering
from resource_mgr.orders.models import ACTIONS, Reservation
from resource_mgr.orders.plan import BROADBAND, Plan, live_bearer, ngn_pools, parse_products, plan, pools_for_switch
from resource_mgr.orders.retry import Retry
from resource_mgr.security import trust
from resource_mgr.security.principal import Principal
from resource_mgr.states import ReservationState, ServiceState, Technology


# -- reading -----------------------------------------------------------------------------------

def get_reservation(session: Session, reservation_id: str, principal: Principal, *, lock: bool = False) -> Reservation:
    # FOR UPDATE on PostgreSQL (SQLite has one writer and renders none)
    res = session.get(Reservation, reservation_id, with_for_update=lock, populate_existing=lock)
    if res is None or not principal.sees(res.local_network_id):
        raise NotFound(f"no reservation with id {reservation_id}", field="id")
    return res


def _by_order_ref(session: Session, local_network_id: str, order_ref: str) -> Reservation | None:
    stmt = (select(Reservation).where(Reservation.local_network_id == local_network_id,
                                      Reservation.order_ref == order_ref)
            .execution_options(populate_existing=True))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def _address(session: Session, address_id: str | None, principal: Principal) -> Address:
    if not address_id:
        raise Invalid("address_id is needed for this action", field="address_id")
    address = session.get(Address, address_id)
    if address is None or not principal.sees(address.local_network_id):
        raise NotFound(f"no address with id {address_id}", field="address_id")
    return address


def _service(session: Session, service_id: str | None, principal: Principal) -> Service:
    if not service_id:
        raise Invalid("service_id is needed for this action", field="service_id")
    service = session.get(Service, service_id)
    if service is None or not principal.sees(service.local_network_id):
        raise NotFound(f"no service with id {service_id}", field="service_id")
    return service


def _check_changeable(session: Session, service: Service, order_ref: str) -> None:
    if service.state != ServiceState.ACTIVE:
        raise Conflict(f"service {service.id} is {service.state}", field="service_id")
    if service.bearer_id is not None:
        raise Invalid(f"service {service.id} rides on service {service.bearer_id}: order against that line",
                      field="service_id")
    pending = session.scalar(select(Reservation.order_ref).where(
        Reservation.service_id == service.id, Reservation.state == ReservationState.PREOCCUPIED,
        Reservation.action != "new", Reservation.order_ref != order_ref))
    if pending:
        raise Conflict(f"service {service.id} already has a pending order {pending}", field="service_id")


def ttl_for(action: str, ttl_hours: int | None, settings: Settings) -> int:
    if ttl_hours is not None:
        if not 1 <= ttl_hours <= settings.orders_max_ttl_hours:
            raise Invalid(f"ttl_hours must be between 1 and {settings.orders_max_ttl_hours}", field="ttl_hours")
        return ttl_hours
    return {"new": settings.preoccupy_ttl_hours, "move": settings.orders_ttl_move_hours,
            "change": settings.orders_ttl_change_hours, "remove": settings.orders_ttl_remove_hours}[action]


def live_count(session: Session, principal: str, now: datetime) -> int:
    return int(session.scalar(select(func.count()).select_from(Reservation).where(
        Reservation.principal == principal, Reservation.state == ReservationState.PREOCCUPIED,
        Reservation.expires_at > now)) or 0)


def _check_quota(session: Session, principal: Principal, settings: Settings, now: datetime, *,
                 new: bool, number: Number | None) -> None:
    golden = numbering.is_golden(number)
    if not new and not golden:
        return
    trust.check_quota(session, principal.name, settings, current_preoccupations=live_count(session, principal.name, now)
                      if new else 0, golden=golden,
                      current_golden=numbering.golden_held(session, principal.name, now) if golden else 0)


def _normalise(action: str, products: list[str] | None, address_id: str | None, number: str | None,
               service_id: str | None, technology: str | None, ttl_hours: int | None) -> dict[str, Any]:
    return {"action": action, "products": sorted(products or []), "address_id": address_id, "number": number,
            "service_id": service_id, "technology": technology, "ttl_hours": ttl_hours}


# -- reserve -----------------------------------------------------------------------------------

def reserve(session: Session, *, principal: Principal, settings: Settings, now: datetime, order_ref: str,
            action: str, products: list[str] | None = None, address_id: str | None = None,
            number: str | None = None, service_id: str | None = None, technology: str | None = None,
            ttl_hours: int | None = None) -> tuple[Reservation, bool]:
    """Design the complete path for the order and pre-occupy every unit (and the number) in this
    transaction. Returns (reservation, created)."""
    if not order_ref or len(order_ref) > 100:
        raise Invalid("order_ref must be 1 to 100 characters", field="order_ref")
    if action not in ACTIONS:
        raise Invalid(f"action must be one of {', '.join(ACTIONS)}", field="action")
    if technology is not None and technology not in {t.value for t in Technology}:
        raise Invalid(f"unknown technology {technology!r}", field="technology")
    request = _normalise(action, products, address_id, number, service_id, technology, ttl_hours)
    hours = ttl_for(action, ttl_hours, settings)

    service = _service(session, service_id, principal) if action != "new" else None
    if action in ("new", "move") or (action == "change" and address_id):
        address = _address(session, address_id, principal)
    else:
        address = session.get(Address, service.address_id) if service and service.address_id else None
    local_network_id = address.local_network_id if address is not None else service.local_network_id
    if service is not None and service.local_network_id != local_network_id:
        raise Invalid("a move stays in the service's local network", field="address_id")
    principal.check_write_scope(local_network_id)

    existing = _by_order_ref(session, local_network_id, order_ref)
    if existing is not None and existing.request is not None:
        if existing.request == request:
            return existing, False
        raise Conflict(f"order_ref {order_ref} already names another request (reservation {existing.id})",
                       field="order_ref", reservation_id=existing.id)
    if service is not None:
        _check_changeable(session, service, order_ref)
    if existing is not None:
        _usable(existing, now)
        if number and existing.number and number != existing.number:
            raise Conflict(f"order {order_ref} holds number {existing.number}, not {number}", field="number")

    if action == "remove":
        prods = [service.product]
    else:
        prods = parse_products(products or ([service.product] if service else None))
    res = existing or Reservation(id=new_id(), local_network_id=local_network_id, order_ref=order_ref,
                                  principal=principal.name, created_at=now)
    res.action, res.products, res.request = action, [str(p) for p in prods], request
    res.address_id = address.id if address is not None else None
    res.service_id = service.id if service is not None else None
    res.expires_at, res.updated_at, res.state = now + timedelta(hours=hours), now, ReservationState.PREOCCUPIED
    change = Change(principal=principal.name, order_ref=order_ref, reservation_id=res.id, at=now)

    chosen = None
    if number or (existing is not None and existing.number_unit_id):
        chosen = (session.get(Number, existing.number_unit_id) if existing is not None and existing.number_unit_id
                  else numbering.lookup(session, number, local_network_ids=principal.local_network_ids,
                                        local_network_id=local_network_id))
        numbering.checked(chosen, now, reservation_id=res.id if existing is not None else None)
    _check_quota(session, principal, settings, now, new=existing is None, number=chosen)
    if existing is None:
        session.add(res)
        session.flush()  # the order_ref's row first: a concurrent twin waits here, then finds it

    if action == "remove":
        _plan_remove(session, res, service)
    else:
        # the customer's live line at the address: only an order with no line of its own rides on it
        needs_bearer = address is not None and not any(pr in BROADBAND for pr in prods)
        bearer = live_bearer(session, address_id=address.id, local_network_id=local_network_id) if needs_bearer else None
        if service is not None and bearer is not None and bearer.id == service.id:
            bearer = None
        p = plan(prods, technology or (service.technology if action == "move" and service else None), bearer=bearer)
        _hold_path(session, res, p, address, change, settings, now, bearer=bearer)
        if service is not None and service.number and chosen is None:
            res.number, res.number_unit_id = service.number, None  # kept unless another exchange serves
        _hold_number(session, res, p, chosen, service, change, settings, now)
        if service is not None:  # move / change: commit gives back what the new path does not reuse
            keep = set(res.held_unit_ids())
            old = [su.unit_id for su in service.path]
            release: dict[str, Any] = {"unit_ids": [u for u in old if u not in keep]}
            if service.number and res.number != service.number:
                release.update(number=service.number, number_unit_id=_number_unit(session, service))
            res.release = release  # a new value: a JSON column does not see changes in place
    glue.record(session, res, "reserve", principal=principal.name, at=now, before={})
    glue.emit(session, "reservation.preoccupied", res, data=reservation_summary(res), occurred_at=now)
    session.flush()
    return res, True


def _usable(res: Reservation, now: datetime) -> None:
    if res.state == ReservationState.PREOCCUPIED and res.live(now):
        return
    if res.state in (ReservationState.EXPIRED, ReservationState.PREOCCUPIED):
        raise Expired(f"reservation {res.id} of order {res.order_ref} has expired", field="order_ref")
    raise Conflict(f"reservation {res.id} of order {res.order_ref} is {res.state.value}", field="order_ref")


def _number_unit(session: Session, service: Service) -> str | None:
    return session.scalar(select(Unit.id).where(Unit.kind == "number", Unit.service_id == service.id))


def _plan_remove(session: Session, res: Reservation, service: Service) -> None:
    res.technology, res.design, res.unit_ids = service.technology, None, []
    release: dict[str, Any] = {"unit_ids": [su.unit_id for su in service.path]}
    if service.number:
        res.number = service.number
        release.update(number=service.number, number_unit_id=_number_unit(session, service))
    res.release = release  # a new value: a JSON column does not see changes in place


def _hold_path(session: Session, res: Reservation, p: Plan, address: Address | None, change: Change,
               settings: Settings, now: datetime, *, bearer: Service | None) -> None:
    if p.technology is None:
        res.technology = bearer.technology if bearer else None
        res.bearer_id = bearer.id if bearer is not None else None
        res.unit_ids, res.design = [], None
        return
    design = glue.design_path(session, address_id=address.id, technology=p.technology, settings=settings, now=now)
    # set after the design: the reservation's row is written once, not by the design's autoflush
    res.technology, res.bearer_id = p.technology.value, None
    res.unit_ids = list(design.unit_ids)
    res.design = {**design.as_json(), "line_port_switch_id": getattr(design, "line_port_switch_id", None)}
    _preoccupy(session, res.unit_ids, change, res)


def _preoccupy(session: Session, unit_ids: list[str], change: Change, res: Reservation) -> None:
    try:
        glue.lock_shared(session, unit_ids)  # already locked by the design: their holds in one query
        ledger.preoccupy(session, unit_ids, change, reservation_id=res.id, until=res.expires_at)
    except NoCapacity as exc:  # taken between the design and the lock: design again, from the start
        raise Retry("a designed unit was taken meanwhile", last_error=exc) from exc


def _hold_number(session: Session, res: Reservation, p: Plan, chosen: Number | None, service: Service | None,
                 change: Change, settings: Settings, now: datetime) -> None:
    if not p.needs_number:
        if chosen is not None:
            raise Invalid(f"products {', '.join(res.products)} carry no number", field="number")
        return
    switch = (res.design or {}).get("line_port_switch_id")
    pools = ngn_pools(session, res.local_network_id) if p.ngn_over_fibre else (
        pools_for_switch(session, switch) if switch else [])
    pool_ids = [pl.id for pl in pools]
    if service is not None and service.number and chosen is None:
        # move / change: the number stays when the new line is served by the same exchange (a
        # change keeps it anyway: the customer asked for another line, not another number)
        current = session.scalar(select(Number).where(Number.local_network_id == service.local_network_id,
                                                      Number.number == service.number))
        if current is not None and (not pool_ids or current.pool_id in pool_ids or res.action == "change"):
            return
    if chosen is not None:
        if pool_ids and chosen.pool_id not in pool_ids:
            raise Conflict(f"number {chosen.number} belongs to another exchange than the one serving this line",
                           field="number")
        ledger.preoccupy(session, [chosen.id], change, reservation_id=res.id, until=res.expires_at)
        res.number, res.number_unit_id = chosen.number, chosen.id
        return
    if not pool_ids and not switch:
        raise NoCapacity("the design names no exchange for this line, so no number can be given",
                         field="number", reasons=["no_number_pool"])
    got = numbering.allocate(session, change, pool_ids=pool_ids, reservation_id=res.id, until=res.expires_at)
    res.number, res.number_unit_id = got.number, got.id


# -- a chosen number ---------------------------------------------------------------------------

def preoccupy_number(session: Session, *, principal: Principal, settings: Settings, now: datetime, number: str,
                     order_ref: str, ttl_hours: int | None = None,
                     local_network: str | None = None) -> tuple[Reservation, bool]:
    """Hold `number` for the order: a new reservation holding only it, or the order's
    reservation extended with it (and to the new expiry when later)."""
    if not order_ref or len(order_ref) > 100:
        raise Invalid("order_ref must be 1 to 100 characters", field="order_ref")
    ln_id = None
    if local_network:
        ln_id = session.scalar(select(LocalNetwork.id).where(LocalNetwork.code == local_network))
        if ln_id is None or not principal.sees(ln_id):
            raise NotFound(f"no local network {local_network}", field="local_network")
    found = numbering.lookup(session, number, local_network_ids=principal.local_network_ids, local_network_id=ln_id)
    principal.check_write_scope(found.local_network_id)
    res = _by_order_ref(session, found.local_network_id, order_ref)
    hours = ttl_for("new", ttl_hours, settings)
    until = now + timedelta(hours=hours)
    if res is not None:
        _usable(res, now)
        if res.number_unit_id and res.number_unit_id != found.id:
            raise Conflict(f"order {order_ref} holds number {res.number} already: cancel it to choose another",
                           field="number")
        if res.number and not res.number_unit_id:
            raise Conflict(f"order {order_ref} keeps number {res.number}", field="number")
    numbering.checked(found, now, reservation_id=res.id if res is not None else None)
    _check_quota(session, principal, settings, now, new=res is None, number=found)
    created = res is None
    if created:
        res = Reservation(id=new_id(), local_network_id=found.local_network_id, order_ref=order_ref, action="new",
                          products=[], principal=principal.name, created_at=now, unit_ids=[], release={},
                          state=ReservationState.PREOCCUPIED, expires_at=until, updated_at=now)
        session.add(res)
        session.flush()
        before: dict[str, Any] = {}
    else:
        before = glue.snapshot(res)
        res.expires_at = max(res.expires_at, until)
        res.updated_at = now
    change = Change(principal=principal.name, order_ref=order_ref, reservation_id=res.id, at=now)
    res.number, res.number_unit_id = found.number, found.id
    ledger.preoccupy(session, res.held_unit_ids(), change, reservation_id=res.id, until=res.expires_at)
    glue.record(session, res, "preoccupy_number", principal=principal.name, at=now, before=before)
    glue.emit(session, "reservation.preoccupied", res, data=reservation_summary(res), occurred_at=now)
    session.flush()
    return res, created


# -- cancel ------------------------------------------------------------------------------------

def release_held(session: Session, res: Reservation, change: Change, *, expire: bool = False) -> list[str]:
    """Give back every unit the reservation still holds (one taken over by another order after
    its expiry is not ours any more, and is left alone). Returns the ids given back."""
    units = ledger.lock_units(session, res.held_unit_ids())
    freed = []
    for unit in units:
        held = (any(h.holder == res.id for h in unit.holds) if unit.shared
                else unit.reservation_id == res.id and unit.service_id is None)
        if not held:
            continue
        if expire:
            unit.expire(change)
        else:
            unit.release_preoccupation(change, reservation_id=res.id)
        freed.append(unit.id)
    return freed


def cancel(session: Session, *, principal: Principal, now: datetime, reservation_id: str,
           reason: str | None = None) -> Reservation:
    res = get_reservation(session, reservation_id, principal, lock=True)
    if res.state == ReservationState.CANCELLED:
        return res  # a retried cancel
    if res.state == ReservationState.COMMITTED:
        raise Conflict(f"reservation {res.id} is committed (service {res.service_id}): remove the service instead",
                       field="id")
    if res.state == ReservationState.EXPIRED:
        raise Expired(f"reservation {res.id} expired at {res.expires_at.isoformat()}: it holds nothing", field="id")
    before = glue.snapshot(res)
    change = Change(principal=principal.name, order_ref=res.order_ref, reservation_id=res.id, at=now,
                    reason=reason or "order cancelled")
    release_held(session, res, change)
    res.state, res.ended_at, res.updated_at = ReservationState.CANCELLED, now, now
    glue.record(session, res, "cancel", principal=principal.name, at=now, before=before, reason=reason)
    glue.emit(session, "reservation.cancelled", res, data=reservation_summary(res), occurred_at=now)
    session.flush()
    return res


# -- redesign ----------------------------------------------------------------------------------

def redesign(session: Session, *, principal: Principal, settings: Settings, now: datetime, reservation_id: str,
             replace: list[str], reason: str | None = None, mark_faulty: bool = False) -> Reservation:
    """Swap the named units for equivalent free ones (optionally marking them faulty), keeping
    the rest of the path where the design can."""
    res = get_reservation(session, reservation_id, principal, lock=True)
    if res.state != ReservationState.PREOCCUPIED:
        raise Conflict(f"reservation {res.id} is {res.state.value}: only a pre-occupied one is redesigned", field="id")
    if not res.live(now):
        raise Expired(f"reservation {res.id} expired at {res.expires_at.isoformat()}", field="id")
    if not replace:
        raise Invalid("replace must name at least one unit", field="replace")
    if mark_faulty and not reason:
        raise Invalid("marking units faulty needs a reason", field="reason")
    held = set(res.unit_ids)
    foreign = [u for u in replace if u not in held]
    if foreign:
        raise Invalid(f"unit {foreign[0]} is not on the path reservation {res.id} holds", field="replace",
                      unit_id=foreign[0])
    if not res.address_id or not res.technology:
        raise Conflict(f"reservation {res.id} holds no designed path", field="id")
    before = glue.snapshot(res)
    change = Change(principal=principal.name, order_ref=res.order_ref, reservation_id=res.id, at=now,
                    reason=reason or "redesign")
    ledger.release_preoccupation(session, sorted(set(replace)), change, reservation_id=res.id)
    if mark_faulty:
        for unit in ledger.lock_units(session, replace):
            unit.mark_faulty(change)
    gone = frozenset(replace)
    keep = [u for u in res.unit_ids if u not in gone]
    design = glue.design_path(session, address_id=res.address_id, technology=Technology(res.technology),
                              settings=settings, now=now, avoid=gone, keep=keep, reservation_id=res.id)
    new_ids = list(design.unit_ids)
    if gone & set(new_ids):
        raise NoCapacity("the design could not do without the units to replace", field="replace")
    dropped = [u for u in keep if u not in set(new_ids)]
    if dropped:
        ledger.release_preoccupation(session, dropped, change, reservation_id=res.id)
    _preoccupy(session, new_ids, change, res)  # the kept ones are held already: unchanged
    old_design = res.design or {}
    res.unit_ids = new_ids
    res.design = {**design.as_json(), "line_port_switch_id": old_design.get("line_port_switch_id")}
    res.updated_at = now
    data = {**reservation_summary(res), "replaced": sorted(gone), "dropped": dropped,
            "added": [u for u in new_ids if u not in held], "mark_faulty": mark_faulty, "reason": reason}
    glue.record(session, res, "redesign", principal=principal.name, at=now, before=before, reason=reason)
    glue.emit(session, "reservation.redesigned", res, data=data, occurred_at=now)
    session.flush()
    return res


def reservation_summary(res: Reservation) -> dict[str, Any]:
    return {"id": res.id, "order_ref": res.order_ref, "action": res.action, "state": res.state.value,
            "products": list(res.products or []), "technology": res.technology, "address_id": res.address_id,
            "number": res.number, "service_id": res.service_id,
            "expires_at": res.expires_at.isoformat() if res.expires_at else None,
            "unit_ids": list(res.unit_ids or []), "release": dict(res.release or {}),
            "work": list((res.design or {}).get("work") or [])}
