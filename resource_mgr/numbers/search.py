"""Choosing a number: search (pattern, tail, contains, grade, exchange), one number by its
digits, whether an order may take it, its exchange, and golden numbers held per principal.

Choosable means: in service (never locked, faulty or reserved), out of quarantine (a quarantine
whose end has passed is over: the filter compares `quarantine_until` with now, so nothing has to
run for a number to come back), and free (a pre-occupation past its expiry counts as free).
The number row carries `choosable_from` (numbers.models), kept from its unit by a database
trigger (migration c3a0d9e1f403), so every filter is an index range on the number table alone
(see numbers.patterns) and a search with its count reads only the index.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, union_all
from sqlalchemy.orm import Session, lazyload

from resource_mgr.clock import aware
from resource_mgr.errors import Conflict, Invalid, Locked, NoCapacity, NotFound, Quarantined
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.numbers.grades import DEFAULT_RULES
from resource_mgr.numbers.models import Number, NumberPool
from resource_mgr.numbers.patterns import parse_digits, parse_pattern, prefix_bound
from resource_mgr.occupancy.models import Change, History, Unit
from resource_mgr.states import AdminState, Occupancy

MAX_LIMIT = 1000
MAX_TAIL_RANGES = 1000  # a pattern read as more ranges than this is a shape range instead
GOLDEN = "golden"  # grade filter: any graded number (grade_level > 0)
PLAIN_GRADES = ("normal", "unlucky")
QUARANTINE_ENDER = "system:sweeper"


def grade_names() -> list[str]:
    """The grade filter's values: the grade rules' names, normal, unlucky and golden."""
    return [*dict.fromkeys(r.name for r in DEFAULT_RULES), *PLAIN_GRADES, GOLDEN]


def choosable(now: datetime) -> ColumnElement[bool]:
    """SQL on Unit: a number's unit a new order may take now (numbers are exclusive units: the
    shared branch of Unit.choosable does not apply). The search uses Number.choosable_from, the
    same rule kept on the number row by a trigger."""
    return and_(
        Unit.admin_state == AdminState.IN_SERVICE,
        or_(Unit.quarantine_until.is_(None), Unit.quarantine_until <= now),
        or_(Unit.occupancy == Occupancy.FREE,
            and_(Unit.occupancy == Occupancy.PREOCCUPIED, Unit.preoccupied_until <= now)),
    )


def _prefix(column: Any, prefix: str) -> ColumnElement[bool]:
    """column starts with prefix, as a B-tree range (LIKE 'x%' is not one on SQLite)."""
    upper = prefix_bound(prefix)
    return column >= prefix if upper is None else and_(column >= prefix, column < upper)


def pattern_filter(text: str) -> ColumnElement[bool]:
    """The pattern as a range on `rshape` (and `rnumber` for its last digits)."""
    p = parse_pattern(text)
    where = [Number.rshape == p.shape_prefix if p.whole else _prefix(Number.rshape, p.shape_prefix)]
    if p.digit_prefix:
        where.append(_prefix(Number.rnumber, p.digit_prefix))
    if p.number_mask:  # on the number, which the index holds (rnumber is not in the shape index)
        where.append(Number.number.like(p.number_mask))
    return and_(*where)


def pattern_ranges(text: str, most: int = MAX_TAIL_RANGES) -> list[ColumnElement[bool]] | None:
    """The pattern as a few short ranges of the `rnumber` index, one per way its letters can be
    read (patterns.SearchPattern.tail_prefixes: `*88AB` → 72 ranges), or None when it is not of
    that form. Each range reads only the numbers matching: the shape range of pattern_filter
    holds every number ending in two different digits after two equal ones, and the digits 88
    were a filter on it."""
    p = parse_pattern(text)
    tails = p.tail_prefixes(most)
    if tails is None:
        return None
    return [_prefix(Number.rnumber, t) for t in tails]


def _local_network(session: Session, local_network: str) -> str:
    """A local network given by code (or id): its id; an unknown one is refused."""
    ln_id = session.scalar(select(LocalNetwork.id).where(
        or_(LocalNetwork.code == local_network, LocalNetwork.id == local_network)).limit(1))
    if ln_id is None:
        raise Invalid(f"unknown local network {local_network!r}", field="local_network")
    return ln_id


def search_filters(session: Session, *, local_network_ids: set[str] | None, local_network: str | None = None,
                   exchange: str | None = None, pattern: str | None = None, tail: str | None = None,
                   contains: str | None = None, grade: str | None = None,
                   ranges: list[ColumnElement[bool]] | None = None) -> list[ColumnElement[bool]] | None:
    """The WHERE of a search on Number, or None when nothing can match (a local network out of
    scope). Bad values are refused naming their field. Given a list `ranges`, a pattern that reads
    as a few tail ranges (pattern_ranges) is put there instead (a match is in one of them, and the
    WHERE), else the pattern is in the WHERE."""
    where: list[ColumnElement[bool]] = []
    networks = None if local_network_ids is None else set(local_network_ids)
    if local_network:
        ln_id = _local_network(session, local_network)
        if networks is not None and ln_id not in networks:
            return None  # another city's numbers: as if there were none
        networks = {ln_id}
    if networks is not None:
        if not networks:
            return None
        where.append(Number.local_network_id == next(iter(networks)) if len(networks) == 1
                     else Number.local_network_id.in_(sorted(networks)))
    if exchange:
        exchange = exchange.strip()
        if exchange.isdigit():  # an exchange code: the number's leading digits
            where += [Number.exchange_code == exchange, _prefix(Number.number, exchange)]
        else:  # a switch (device id): the numbers of its pools
            where.append(Number.pool_id.in_(select(NumberPool.id).where(NumberPool.switch_id == exchange)))
    if pattern:
        tails = pattern_ranges(pattern) if ranges is not None else None
        if tails is None:
            where.append(pattern_filter(pattern))
        elif not tails:
            return None  # more different letters than digits left: nothing can match
        else:
            ranges += tails
    if tail:
        where.append(_prefix(Number.rnumber, parse_digits(tail, "tail")[::-1]))
    if contains:
        where.append(Number.number.contains(parse_digits(contains, "contains")))
    if grade:
        name = grade.strip()
        known = {g.upper(): g for g in grade_names()}
        if name.upper() not in known:
            raise Invalid(f"unknown grade {grade!r}; one of {', '.join(grade_names())}", field="grade")
        name = known[name.upper()]
        where.append(Number.grade_level > 0 if name == GOLDEN else Number.grade == name)
    return where


@dataclass(frozen=True)
class NumberPage:
    """One page of a search: its numbers, how many match in all (-1 when not counted) and whether
    that total is a bound (`capped`: at least `total` match; they were not all counted)."""

    rows: list[Number]
    total: int
    capped: bool = False


def search_numbers(session: Session, *, local_network_ids: set[str] | None, local_network: str | None = None,
                   exchange: str | None = None, pattern: str | None = None, tail: str | None = None,
                   contains: str | None = None, grade: str | None = None, limit: int = 50, offset: int = 0,
                   now: datetime, count: bool = True) -> tuple[list[Number], int]:
    """Choosable numbers matching every filter given, best grade first, then by number; and how
    many match in all, counted exactly (-1 with count=False). `local_network` is a code (or id)."""
    page = search_page(session, local_network_ids=local_network_ids, local_network=local_network,
                       exchange=exchange, pattern=pattern, tail=tail, contains=contains, grade=grade,
                       limit=limit, offset=offset, now=now, count=count, count_limit=None)
    return page.rows, page.total


def search_page(session: Session, *, local_network_ids: set[str] | None, local_network: str | None = None,
                exchange: str | None = None, pattern: str | None = None, tail: str | None = None,
                contains: str | None = None, grade: str | None = None, limit: int = 50, offset: int = 0,
                now: datetime, count: bool = True, count_limit: int | None = None,
                tail_ranges: bool = True) -> NumberPage:
    """search_numbers, with the total counted exactly up to `count_limit` (None: no bound): past
    it the total is `count_limit` (or the page's end, if further) and `capped`. Counting a million
    matches reads a million index entries; a bound keeps a broad search as quick as a narrow one.
    `tail_ranges=False` reads a pattern as its shape range even when it reads as tail ranges (the
    same numbers: for tests and the benchmark's comparison)."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be 1 to {MAX_LIMIT}", field="limit")
    if not isinstance(offset, int) or offset < 0:
        raise Invalid("offset must not be negative", field="offset")
    ranges: list[ColumnElement[bool]] = []
    where = search_filters(session, local_network_ids=local_network_ids, local_network=local_network,
                           exchange=exchange, pattern=pattern, tail=tail, contains=contains, grade=grade,
                           ranges=ranges if tail_ranges else None)
    if where is None:
        return NumberPage([], 0)
    where.append(Number.choosable_from <= now)
    order = (Number.grade_level.desc(), Number.number, Number.local_network_id)
    if ranges:
        # one index-only read per range, glued: an OR of them would be a bitmap read of the table
        matching = union_all(*[select(Number.id, Number.grade_level, Number.number, Number.local_network_id)
                               .where(*where, r) for r in ranges]).subquery()
        page_ids = (select(matching.c.id)
                    .order_by(matching.c.grade_level.desc(), matching.c.number, matching.c.local_network_id))
        ones = select(matching.c.id)
    else:
        page_ids = select(Number.id).where(*where).order_by(*order)
        ones = select(Number.id).where(*where)
    # the page's ids from the index alone, then those few rows (with their units). Tail ranges
    # read every match to sort them anyway: they count them in the same read.
    counted = None
    if ranges and count:
        got = session.execute(page_ids.add_columns(func.count().over()).limit(limit).offset(offset)).all()
        ids = [i for i, _ in got]
        counted = int(got[0][1]) if got else None
    else:
        ids = list(session.scalars(page_ids.limit(limit).offset(offset)))
    # without their units (a search shows numbers; `.unit` still loads on access)
    loaded = {n.id: n for n in session.scalars(select(Number).options(lazyload(Number.unit))
                                               .where(Number.id.in_(ids)))} if ids else {}
    rows = [loaded[i] for i in ids]
    if not count:
        return NumberPage(rows, -1)
    if counted is not None:  # the same answer as counting below
        if count_limit is not None and counted > max(count_limit, offset + len(rows)):
            return NumberPage(rows, max(count_limit, offset + len(rows)), True)
        return NumberPage(rows, counted)
    if offset == 0 and len(rows) < limit:
        return NumberPage(rows, len(rows))  # the page holds them all
    if count_limit is None:
        return NumberPage(rows, int(session.scalar(select(func.count()).select_from(ones.subquery())) or 0))
    bound = max(count_limit, offset + len(rows))
    total = int(session.scalar(select(func.count()).select_from(ones.limit(bound + 1).subquery())) or 0)
    return NumberPage(rows, bound, True) if total > bound else NumberPage(rows, total)


# -- one number ---------------------------------------------------------------------------------

def find_number(session: Session, number: str, *, local_network_ids: Iterable[str] | None,
                local_network_id: str | None = None) -> Number:
    """The number with these digits in the principal's local networks (in `local_network_id`
    when given). Unknown, or another city's, is NotFound (field number); the same digits in two
    of the principal's local networks need the local network named."""
    digits = (number or "").strip()
    stmt = select(Number).where(Number.number == digits)
    if local_network_id is not None:
        stmt = stmt.where(Number.local_network_id == local_network_id)
    if local_network_ids is not None:
        stmt = stmt.where(Number.local_network_id.in_(sorted(local_network_ids)))
    found = list(session.scalars(stmt.limit(2))) if digits.isdigit() else []
    if not found:
        raise NotFound(f"no number {number}" + (" in that local network" if local_network_id else ""),
                       field="number")
    if len(found) > 1:
        raise Invalid(f"number {digits} exists in several of your local networks: name the local network",
                      field="local_network")
    return found[0]


def check_choosable(number: Number, now: datetime, *, reservation_id: str | None = None) -> None:
    """Whether an order may take the number now; a number the same reservation already holds
    passes. Locked → Locked, in quarantine → Quarantined, faulty or reserved for planning or in
    use by a service → NoCapacity, held by another order → Conflict."""
    unit = number.unit
    n = number.number
    if unit.admin_state == AdminState.LOCKED:
        raise Locked(f"number {n} is locked by cutover {unit.locked_by}", field="number", unit_id=unit.id)
    if unit.is_quarantined(now):
        until = aware(unit.quarantine_until).isoformat()
        raise Quarantined(f"number {n} is in quarantine until {until}", field="number", unit_id=unit.id,
                          quarantine_until=until)
    if unit.admin_state == AdminState.FAULTY:
        raise NoCapacity(f"number {n} is marked faulty", field="number", unit_id=unit.id)
    if unit.admin_state == AdminState.RESERVED:
        raise NoCapacity(f"number {n} is reserved ({unit.admin_reason or 'for planning'})", field="number",
                         unit_id=unit.id)
    state = unit.effective_occupancy(now)
    if state == Occupancy.PREOCCUPIED:
        if reservation_id is not None and unit.reservation_id == reservation_id:
            return
        raise Conflict(f"number {n} is held by another order until "
                       f"{aware(unit.preoccupied_until).isoformat()}", field="number", unit_id=unit.id)
    if state == Occupancy.OCCUPIED:
        raise NoCapacity(f"number {n} is in use by service {unit.service_id}", field="number", unit_id=unit.id)


# -- exchanges and pools --------------------------------------------------------------------------

def exchange_of(session: Session, number: Number) -> str | None:
    """The switch device id of the number's pool (None for a pool on no switch)."""
    return session.scalar(select(NumberPool.switch_id).where(NumberPool.id == number.pool_id))


def pools_for_switch(session: Session, switch_id: str) -> list[NumberPool]:
    return list(session.scalars(select(NumberPool).where(NumberPool.switch_id == switch_id)
                                .order_by(NumberPool.name, NumberPool.id)))


def quarantine_days_for(session: Session, number: Number) -> int:
    """The quarantine a released number enters: its pool's (pools default to the setting
    number_quarantine_days when created)."""
    return int(session.scalar(select(NumberPool.quarantine_days).where(NumberPool.id == number.pool_id)) or 0)


def end_quarantines(session: Session, now: datetime, *, local_network_ids: Iterable[str] | None = None,
                    limit: int | None = None) -> int:
    """Clear the quarantine of numbers whose period is over, one "end_quarantine" history row
    each. Not needed for choosing (the filter already treats them as free): it makes the rows
    and the history say so. Returns how many."""
    from resource_mgr.occupancy.ledger import lock_query

    stmt = select(Unit).where(Unit.kind == "number", Unit.quarantine_until.is_not(None),
                              Unit.quarantine_until <= now).order_by(Unit.id)
    if local_network_ids is not None:
        stmt = stmt.where(Unit.local_network_id.in_(sorted(local_network_ids)))
    if limit:
        stmt = stmt.limit(limit)
    units = lock_query(session, stmt, skip_locked=True)
    change = Change(principal=QUARANTINE_ENDER, at=now, reason="quarantine over")
    for unit in units:
        unit.end_quarantine(change)
    session.flush()
    return len(units)


# -- golden numbers -------------------------------------------------------------------------------

def is_golden(number: Number) -> bool:
    """Graded by a rule (靚號): any positive grade level."""
    return (number.grade_level or 0) > 0


def golden_held(session: Session, principal_name: str, now: datetime) -> int:
    """Golden numbers the principal holds pre-occupied now (unexpired): the holder is the
    principal of the number's latest "preoccupy" history row for the reservation holding it, so
    an order taken over by another principal counts for the one who pre-occupied it last."""
    holder = (select(History.principal)
              .where(History.resource_id == Unit.id, History.action == "preoccupy",
                     History.reservation_id == Unit.reservation_id)
              .order_by(History.id.desc()).limit(1).correlate(Unit).scalar_subquery())
    stmt = (select(func.count()).select_from(Unit).join(Number, Number.id == Unit.id)
            .where(Unit.reservation_id.is_not(None), Unit.kind == "number",
                   Unit.occupancy == Occupancy.PREOCCUPIED, Unit.preoccupied_until > now,
                   Number.grade_level > 0, holder == principal_name))
    return int(session.scalar(stmt) or 0)
