"""Number pools and segments: creating numbers (graded once, here). Choosing a number (search,
find, check, golden numbers held) lives in numbers.search and is re-exported here."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.config import Settings
from resource_mgr.errors import Conflict, Invalid
from resource_mgr.ids import new_id
from resource_mgr.inventory.models import Device, LocalNetwork
from resource_mgr.inventory.services import add_resource, get
from resource_mgr.numbers.grades import Grader
from resource_mgr.numbers.models import EPOCH, Number, NumberPool, NumberSegment
from resource_mgr.numbers.patterns import rshape
from resource_mgr.numbers.search import (  # noqa: F401  (the interface of numbers)
    check_choosable, end_quarantines, exchange_of, find_number, golden_held, is_golden, pools_for_switch,
    quarantine_days_for, search_numbers,
)
from resource_mgr.occupancy.models import Unit
from resource_mgr.states import AdminState, Occupancy

MAX_SEGMENT = 10_000  # an exchange code's block
SWITCH_TYPES = ("pstn_switch", "ngn_softswitch", "access_gateway")  # the devices a pool may belong to


def create_pool(session: Session, *, local_network_id: str, name: str, switch_id: str | None = None,
                quarantine_days: int | None = None, settings: Settings | None = None) -> NumberPool:
    """A pool on a switch; its quarantine defaults to the setting number_quarantine_days."""
    if quarantine_days is None:
        quarantine_days = (settings or Settings()).number_quarantine_days
    ln = get(session, LocalNetwork, local_network_id, "local_network")
    if switch_id:
        switch = get(session, Device, switch_id, "switch_id")
        if switch.device_type not in SWITCH_TYPES:
            raise Invalid("a number pool belongs to a PSTN switch, softswitch or access gateway", field="switch_id")
    if quarantine_days < 0:
        raise Invalid("quarantine_days must not be negative", field="quarantine_days")
    pool = NumberPool(name=name, local_network_id=ln.id, switch_id=switch_id, area_code=ln.area_code,
                      quarantine_days=quarantine_days)
    return add_resource(session, pool)  # type: ignore[return-value]


def add_segment(session: Session, *, pool_id: str, first: str, last: str, grader: Grader | None = None) -> NumberSegment:
    """號段 first..last (local numbers of equal length, 7 or 8 digits, at most one exchange
    code's block of 10,000): creates every number, graded. Numbers are unique within the pool's
    local network (another area code may have the same local numbers)."""
    pool = get(session, NumberPool, pool_id, "pool_id")
    if not (first.isdigit() and last.isdigit() and len(first) == len(last) and len(first) in (7, 8)):
        raise Invalid("first and last must be local numbers of 7 or 8 digits", field="first")
    if first[0] in "01":
        raise Invalid("a local number cannot start with 0 or 1", field="first")
    lo, hi = int(first), int(last)
    if hi < lo:
        raise Invalid("last must not be below first", field="last")
    if hi - lo + 1 > MAX_SEGMENT:
        raise Invalid(f"a segment holds at most {MAX_SEGMENT} numbers", field="last")
    width = len(first)
    numbers = [str(n).zfill(width) for n in range(lo, hi + 1)]
    ln = pool.local_network_id
    clash = session.scalar(select(Number.number).where(Number.local_network_id == ln,
                                                       Number.number.between(first, last)).limit(1))
    if clash:
        raise Conflict(f"number {clash} already exists in this local network", field="first")
    grader = grader or Grader()
    exchange = first[: width - 4]
    segment = NumberSegment(name=f"{first}-{last}", local_network_id=pool.local_network_id, parent_id=pool.id,
                            exchange_code=exchange, first=first, last=last)
    add_resource(session, segment)
    units, rows = [], []
    for number in numbers:
        grade, level = grader.grade(number)
        uid = new_id()
        units.append(dict(id=uid, kind="number", name=number, seq=int(number), local_network_id=ln,
                          owner_id=segment.id, root_id=pool.id, capacity=1, used=0, occupancy=Occupancy.FREE,
                          admin_state=AdminState.IN_SERVICE, side="", technology=""))
        rows.append(dict(id=uid, local_network_id=ln, number=number, pool_id=pool.id, segment_id=segment.id,
                         exchange_code=number[: width - 4], tail4=number[-4:], grade=grade, grade_level=level,
                         rnumber=number[::-1], rshape=rshape(number), choosable_from=EPOCH))
    session.execute(Unit.__table__.insert(), units)
    session.execute(Number.__table__.insert(), rows)
    return segment
