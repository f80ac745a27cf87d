"""The number of an order: the one BSS chose (checked choosable by resource_mgr.numbers), or one
given from the pools of the switch that owns the line port."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.errors import Invalid, NoCapacity, NotFound
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.numbers import search
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Change, Unit


def find_number(session: Session, number: str, *, local_network_ids: Iterable[str] | None,
                local_network_id: str | None) -> Number:
    """The number in the order's local network. One of another local network in the principal's
    scope is 422 (it cannot serve this address); one nobody in scope has is 404."""
    if not number or not number.isdigit():
        raise Invalid("a number is digits only", field="number")
    stmt = select(Number).where(Number.number == number)
    if local_network_id:
        found = session.scalar(stmt.where(Number.local_network_id == local_network_id))
        if found is not None:
            return found
    scope = None if local_network_ids is None else sorted(local_network_ids)
    others = list(session.scalars(stmt if scope is None else stmt.where(Number.local_network_id.in_(scope))))
    if local_network_id is None and len(others) == 1:
        return others[0]
    if local_network_id is None and others:
        raise Invalid(f"number {number} exists in several of your local networks: say which (local_network)",
                      field="local_network")
    if others:
        code = session.scalar(select(LocalNetwork.code).where(LocalNetwork.id == others[0].local_network_id))
        raise Invalid(f"number {number} belongs to local network {code}, not to the order's", field="number")
    raise NotFound(f"no number {number}", field="number")


def lookup(session: Session, number: str, *, local_network_ids: Iterable[str] | None,
           local_network_id: str | None) -> Number:
    try:
        return search.find_number(session, number, local_network_ids=local_network_ids,
                                  local_network_id=local_network_id)
    except NotFound:
        # a number of another local network in scope is ours to explain (422, not 404)
        return find_number(session, number, local_network_ids=local_network_ids, local_network_id=local_network_id)


def checked(number: Number, now: datetime, *, reservation_id: str | None) -> None:
    search.check_choosable(number, now, reservation_id=reservation_id)


def is_golden(number: Number | None) -> bool:
    return number is not None and search.is_golden(number)


def golden_held(session: Session, principal: str, now: datetime) -> int:
    return search.golden_held(session, principal, now)


def allocate(session: Session, change: Change, *, pool_ids: list[str], reservation_id: str,
             until: datetime) -> Number:
    """Pre-occupy a normal-grade number of these pools (golden ones are chosen by hand)."""
    if not pool_ids:
        raise NoCapacity("no number pool serves this line", field="number", reasons=["no_number_pool"],
                         reason_zh="該交換機沒有號碼池")
    normal = select(Number.id).where(Number.pool_id.in_(pool_ids), Number.grade_level <= 0)
    try:
        [unit] = ledger.allocate(session, change, among=[Unit.kind == "number", Unit.root_id.in_(pool_ids),
                                                         Unit.id.in_(normal)],
                                 reservation_id=reservation_id, until=until, what="number")
    except NoCapacity:
        raise NoCapacity("the pools of the exchange serving this line have no free number",
                         field="number", reasons=["no_free_number"], reason_zh="號碼池已無空閒號碼",
                         alternatives=[]) from None
    return session.get(Number, unit.id)
