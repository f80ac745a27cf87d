"""Which of the possible paths: the ordering every technology shares, and the honest count of
how many more services the paths found could take at once."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from resource_mgr.config import Settings
from resource_mgr.design.model import Work
from resource_mgr.design.trace import Tracer, U


@dataclass
class Candidate:
    units: list[U]  # customer side first, head port last
    links: list[str]  # connection kind into units[i + 1] ("through" a splitter, "new" for a jumper to make)
    work: list[Work]
    box_id: str | None
    box_rank: int
    head_fill: float | None = None  # for exclusive heads: how full their device is
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [u.id for u in self.units]


def sort_key(c: Candidate, tr: Tracer, settings: Settings, keep: frozenset[str]) -> tuple:
    """Kept units first (a redesign), then (with design_prefer_wired) fewer jumpers to make, the
    nearer serving box, then the policy on how full the head is (`fill`: fullest first;
    `spread`: emptiest first), from the head towards the customer, then the lowest port."""
    kept = -sum(1 for u in c.units if u.id in keep)
    work = sum(1 for w in c.work if w.action == "make_jumper") if settings.design_prefer_wired else 0
    fills = [tr.fill(u) for u in reversed(c.units) if u.shared]
    if c.head_fill is not None:
        fills.insert(0, c.head_fill)
    sign = -1.0 if settings.design_policy == "fill" else 1.0
    return (kept, work, c.box_rank, tuple(sign * f for f in fills), c.units[0].seq, c.units[0].id)


def count_fitting(candidates: Iterable[Candidate], tr: Tracer, cap: int) -> int:
    """How many of these paths could be taken together: each exclusive unit once, each shared
    unit up to its room (greedy, in the given order), at most `cap`."""
    taken: set[str] = set()
    room: dict[str, int] = {}
    count = 0
    for c in candidates:
        exclusive = [u.id for u in c.units if not u.shared]
        shared = [u for u in c.units if u.shared]
        if any(i in taken for i in exclusive):
            continue
        if any(room.setdefault(u.id, tr.room(u)) <= 0 for u in shared):
            continue
        taken.update(exclusive)
        for u in shared:
            room[u.id] -= 1
        count += 1
        if count >= cap:
            break
    return count
