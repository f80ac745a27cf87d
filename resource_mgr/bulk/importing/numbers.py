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
from resource_mgr.numbers.models import EPOCH, Number, choosable_from
from resource_mgr.numbers.patterns import shape
from resource_mgr.states import AdminState, Occupancy

NUMBER_COLS = ("id", "local_network_id", "number", "pool_id", "segment_id", "exchange_code", "tail4", "grade",
               "grade_level", "rnumber", "rshape", "choosable_from")
_IN_SERVICE, _LOCKED = AdminState.IN_SERVICE.value, AdminState.LOCKED.value
_FREE = Occupancy.FREE.value


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
    if st.existing_numbers:  # numbers are unique per local network: another may have the same
        with st.db.read_session() as s:
            clash = s.scalar(select(Number.number).where(Number.local_network_id == ln,
                                                         Number.number.between(first, last)).limit(1))
        if clash:
            st.problem(f, line, "first", f"number {clash} already exists in this local network")
            return None
    pool_key = v["pool"]
    width = len(first)
    base = st.ids.reserve(hi - lo + 1)
    st.segments.append((lo, hi, width, id_, pool_key, line, base, ln))
    st.pool_segments[pool_key].append((lo, hi, width, id_, base))
    return (id_, first[: width - 4], first, last)


def segment_overlaps(st: ImportState) -> None:
    """Segments may not overlap within a local network (another area code has its own numbers)."""
    by_ln: dict[str, list[tuple]] = {}
    for seg in sorted(st.segments):
        by_ln.setdefault(seg[7], []).append(seg)
    for segs in by_ln.values():
        for prev, cur in zip(segs, segs[1:]):
            if cur[0] <= prev[1]:
                st.problem("number_segments.csv", cur[5], "first",
                           f"numbers {cur[0]}..{min(cur[1], prev[1])} overlap the segment on line {prev[5]}")
    st.segments_by_ln = by_ln
    st.segment_firsts = {ln: [s[0] for s in segs] for ln, segs in by_ln.items()}


def segment_of(st: ImportState, number: str, ln: str) -> tuple | None:
    """The bundle's segment of local network `ln` that makes `number`, or None."""
    if not number.isdigit():
        return None
    firsts = st.segment_firsts.get(ln)
    if not firsts:
        return None
    n = int(number)
    i = bisect.bisect_right(firsts, n) - 1
    if i >= 0:
        seg = st.segments_by_ln[ln][i]
        if seg[0] <= n <= seg[1] and len(number) == seg[2]:
            return seg
    return None


def numbers(st: ImportState, reader: BundleReader) -> None:
    f = "numbers.csv"
    for spec, line, v in rows(st, reader, "numbers"):
        number = v["number"]
        if v.get("pool") is not None:  # names the local network: its pool's
            pool = st.owners.get(v["pool"])
            if pool is None or pool.mode != "pool":
                st.problem(f, line, "pool", f"unknown number pool {v['pool']!r} (not defined earlier in the bundle)")
                continue
            seg = segment_of(st, number, pool.ln)
            if seg is None or seg[4] != v["pool"]:
                st.problem(f, line, "number", f"number {number!r} is in no segment of pool {v['pool']!r}")
                continue
        else:
            found = [s for s in (segment_of(st, number, ln) for ln in st.segment_firsts) if s is not None]
            if not found:
                st.problem(f, line, "number", f"number {number!r} is in no segment of the bundle")
                continue
            if len(found) > 1:
                st.problem(f, line, "number", f"number {number!r} is in segments of {len(found)} local networks: "
                                              "name its pool")
                continue
            seg = found[0]
        key = (seg[7], number)
        if key in st.number_over:
            st.problem(f, line, "number", f"duplicate number {number}")
            continue
        if v["admin_state"] == _LOCKED:
            st.problem(f, line, "admin_state", "numbers are locked by cutovers, not by import")
            continue
        st.number_over[key] = {k: v[k] for k in ("grade", "grade_level", "admin_state", "admin_reason",
                                                 "quarantine_until") if v[k] is not None}


def write_numbers(st: ImportState) -> None:
    """A unit row and a number row for every number of every segment, with its occupancy."""
    from resource_mgr.bulk.importing.units import UNIT_COLS
    from resource_mgr.occupancy.derive import FIRST_VERSION

    out = st.out
    text = st.ids.text
    value = out.value
    number_rows: list[tuple] = []
    number_over = st.number_over
    unit_columns = st.ledger.unit_columns

    def dt(v):
        return None if v is None else value(v)

    epoch = dt(EPOCH)

    def units() -> Iterator[tuple]:
        for pool_key, segs in st.pool_segments.items():
            owner = st.owners.get(pool_key)
            if owner is None:
                continue
            refs = st.uref.get(pool_key, {})
            ln = owner.ln
            for lo, hi, width, seg_id, base in segs:
                exchange = str(lo).zfill(width)[: width - 4]
                for n in range(lo, hi + 1):
                    number = str(n).zfill(width)
                    slot = refs.get(("number", number)) if refs else None
                    over = number_over.get((ln, number)) if number_over else None
                    grade, level = st.grader.grade(number)
                    admin, reason, q = _IN_SERVICE, None, None
                    if over:
                        grade = over.get("grade", grade)
                        level = over.get("grade_level", level)
                        admin = over.get("admin_state", admin)
                        reason = over.get("admin_reason")
                        q = dt(over.get("quarantine_until"))
                    uid = text(base + n - lo)
                    occ, reservation, until, service, _used = unit_columns(slot, 1)
                    # the search columns (numbers.patterns, numbers.models.choosable_from)
                    rnumber = number[::-1]
                    free = epoch if (occ == _FREE and admin == _IN_SERVICE and q is None) else \
                        dt(choosable_from(occ, admin, until, over.get("quarantine_until") if over else None))
                    until = dt(until)
                    number_rows.append((uid, ln, number, owner.id, seg_id, exchange, number[-4:], grade, level,
                                        rnumber, shape(rnumber), free))
                    yield (uid, "number", number, n, ln, seg_id, owner.id, "", "", occ, reservation, until,
                           service, 1, 0, admin, None, reason, q, FIRST_VERSION)

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
