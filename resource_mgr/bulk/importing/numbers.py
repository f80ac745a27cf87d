"""Numbers: segments (號段) and their overlaps, numbers.csv, grading, and the number rows (a unit
and a number row per number of every segment)."""
from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

from sqlalchemy import select

from resource_mgr.bulk.format import BundleReader
from resource_mgr.bulk.importing.rows import rows
from resource_mgr.bulk.importing.state import ImportState
from resource_mgr.numbers.grades import Grader, letter_pattern_regex
from resource_mgr.numbers.models import Number
from resource_mgr.states import AdminState, Occupancy

NUMBER_COLS = ("id", "number", "pool_id", "segment_id", "exchange_code", "tail4", "grade", "grade_level")
_FREE, _OCCUPIED, _PREOCCUPIED = Occupancy.FREE.value, Occupancy.OCCUPIED.value, Occupancy.PREOCCUPIED.value
_IN_SERVICE, _LOCKED = AdminState.IN_SERVICE.value, AdminState.LOCKED.value


class FastGrader:
    """The default Grader's answers, with each rule's pattern compiled once and answers cached
    by the tail they depend on (a tail rule looks at its length of digits, a run at its length,
    the bonus at the last digit)."""

    def __init__(self, grader: Grader | None = None) -> None:
        self.g = grader or Grader()
        self.rules = [(r, None if r.run else re.compile(letter_pattern_regex("*" + r.tail).pattern))
                      for r in sorted(self.g.rules, key=lambda r: -r.level)]
        self.depth = max([len(r.tail) for r in self.g.rules] + [r.run for r in self.g.rules] + [1])
        self.cache: dict[str, tuple[str, int]] = {}

    def grade(self, number: str) -> tuple[str, int]:
        if len(number) <= self.depth:
            return self.g.grade(number)
        tail = number[-self.depth:]
        hit = self.cache.get(tail)
        if hit is None:
            hit = self.cache[tail] = self.compute(number)
        return hit

    def compute(self, number: str) -> tuple[str, int]:
        last = number[-1]
        bonus = self.g.lucky.get(last, 0) + self.g.unlucky.get(last, 0)
        for rule, rx in self.rules:
            if (rule.matches(number) if rx is None else rx.match(number) is not None):
                return rule.name, max(rule.level + bonus, 1)
        if bonus < 0:
            return "unlucky", bonus
        return "normal", 0


def segment_row(st: ImportState, f, line, id_, ln, v):
    """The row maker of number_segments.csv (see resources.resources)."""
    first, last = v["first"], v["last"]
    if not (first.isdigit() and last.isdigit() and len(first) == len(last) and len(first) in (7, 8)):
        st.problem(f, line, "first", "first and last must be local numbers of 7 or 8 digits")
        return None
    if first[0] in "01":
        st.problem(f, line, "first", "a local number cannot start with 0 or 1")
        return None
    lo, hi = int(first), int(last)
    if hi < lo:
        st.problem(f, line, "last", "last must not be below first")
        return None
    if hi - lo + 1 > 10_000:
        st.problem(f, line, "last", "a segment holds at most 10000 numbers")
        return None
    if st.existing_numbers:
        with st.db.read_session() as s:
            clash = s.scalar(select(Number.number).where(Number.number.between(first, last)).limit(1))
        if clash:
            st.problem(f, line, "first", f"number {clash} already exists in the database")
            return None
    pool_key = v["pool"]
    width = len(first)
    base = st.ids.reserve(hi - lo + 1)
    st.segments.append((lo, hi, width, id_, pool_key, line, base))
    st.pool_segments[pool_key].append((lo, hi, width, id_, base))
    return (id_, first[: width - 4], first, last)


def segment_overlaps(st: ImportState) -> None:
    st.segments.sort()
    for prev, cur in zip(st.segments, st.segments[1:]):
        if cur[0] <= prev[1]:
            st.problem("number_segments.csv", cur[5], "first",
                       f"numbers {cur[0]}..{min(cur[1], prev[1])} overlap the segment on line {prev[5]}")
    st.segment_firsts = [s[0] for s in st.segments]


def segment_of(st: ImportState, number: str) -> tuple | None:
    if not number.isdigit():
        return None
    n = int(number)
    i = bisect.bisect_right(st.segment_firsts, n) - 1
    if i >= 0:
        seg = st.segments[i]
        if seg[0] <= n <= seg[1] and len(number) == seg[2]:
            return seg
    return None


def numbers(st: ImportState, reader: BundleReader) -> None:
    for spec, line, v in rows(st, reader, "numbers"):
        number = v["number"]
        seg = segment_of(st, number)
        if seg is None:
            st.problem(spec.filename, line, "number", f"number {number!r} is in no segment of the bundle")
            continue
        if number in st.number_over:
            st.problem(spec.filename, line, "number", f"duplicate number {number}")
            continue
        if v["admin_state"] == _LOCKED:
            st.problem(spec.filename, line, "admin_state", "numbers are locked by cutovers, not by import")
            continue
        st.number_over[number] = {k: v[k] for k in ("grade", "grade_level", "admin_state", "admin_reason",
                                                    "quarantine_until") if v[k] is not None}


def write_numbers(st: ImportState) -> None:
    """A unit row and a number row for every number of every segment, with its occupancy."""
    from resource_mgr.bulk.importing.units import UNIT_COLS

    out = st.out
    text = st.ids.text
    value = out.value
    number_rows: list[tuple] = []

    def dt(v):
        return None if v is None else value(v)

    def units() -> Iterator[tuple]:
        for pool_key, segs in st.pool_segments.items():
            owner = st.owners.get(pool_key)
            if owner is None:
                continue
            refs = st.uref.get(pool_key, {})
            for lo, hi, width, seg_id, base in segs:
                exchange = str(lo).zfill(width)[: width - 4]
                for n in range(lo, hi + 1):
                    number = str(n).zfill(width)
                    slot = refs.get(("number", number)) if refs else None
                    over = st.number_over.get(number)
                    grade, level = st.grader.grade(number)
                    admin, reason, q = _IN_SERVICE, None, None
                    if over:
                        grade = over.get("grade", grade)
                        level = over.get("grade_level", level)
                        admin = over.get("admin_state", admin)
                        reason = over.get("admin_reason")
                        q = dt(over.get("quarantine_until"))
                    uid = text(base + n - lo)
                    if slot is None:
                        occ, service, reservation, until = _FREE, None, None, None
                    else:
                        service = st.slot_service.get(slot)
                        reservation = until = None
                        if service is not None:
                            occ = _OCCUPIED
                        elif slot in st.slot_res:
                            reservation, u = st.slot_res[slot]
                            until = dt(u)
                            occ = _PREOCCUPIED
                        else:
                            occ = _FREE
                    number_rows.append((uid, number, owner.id, seg_id, exchange, number[-4:], grade, level))
                    yield (uid, "number", number, n, owner.ln, seg_id, owner.id, "", "", occ, reservation, until,
                           service, 1, 0, admin, None, reason, q)

    pending: list[tuple] = []
    for row in units():
        pending.append(row)
        if len(pending) >= 50_000:
            out.fast("unit", UNIT_COLS, pending, convert=False)
            out.fast("number", NUMBER_COLS, number_rows, convert=False)
            pending = []
            number_rows.clear()
    out.fast("unit", UNIT_COLS, pending, convert=False)
    out.fast("number", NUMBER_COLS, number_rows, convert=False)
