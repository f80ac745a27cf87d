"""Walk from customer-side units towards the head, a whole frontier per query.

Every chain grows one hop per level: along the unit's connections (never back to where it came
from), or through a splitter from an output to the same splitter's input. A chain ends
`done` at a head unit, `open` at a terminal whose jumper is still to be made (a cross box's
distribution terminal, an MDF line terminal), or `blocked` at a unit with no room left (its
kind says why) or at a dead end."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from resource_mgr.design.errors import BLOCKED_BY_KIND
from resource_mgr.design.trace import Tracer, U

THROUGH = "through"  # a pass through a splitter, not a connection
MAX_LEVELS = 24
MAX_CHAINS = 5000
DOWNSTREAM = frozenset({"ont_port", "box_port"})


@dataclass
class Chain:
    units: list[U]
    links: list[str] = field(default_factory=list)  # connection kind into units[i + 1]
    containers: list[str | None] = field(default_factory=list)

    @property
    def last(self) -> U:
        return self.units[-1]

    def grow(self, u: U, kind: str, container: str | None) -> Chain:
        return Chain(self.units + [u], self.links + [kind], self.containers + [container])

    def ids(self) -> list[str]:
        return [u.id for u in self.units]


@dataclass
class Walked:
    done: list[Chain] = field(default_factory=list)
    open: list[Chain] = field(default_factory=list)
    blocked: list[tuple[str, Chain]] = field(default_factory=list)  # (reason, chain)


def blocked_reason(u: U, medium: str) -> str:
    if u.kind == "terminal":
        return "fibre_full" if medium == "fibre" else "cable_full"
    return BLOCKED_BY_KIND.get(u.kind, "unavailable_unit")


def walk(tr: Tracer, starts: Iterable[Chain], *, is_head: Callable[[U], bool],
         is_open: Callable[[U], bool] = lambda u: False, medium: str = "fibre") -> Walked:
    out = Walked()
    active = list(starts)
    splitter_in: dict[str, U | None] = {}
    for _ in range(MAX_LEVELS):
        if not active:
            break
        ends = [c.last for c in active if not is_head(c.last)]
        need_in = sorted({u.root_id for u in ends if u.kind == "splitter_out"} - splitter_in.keys())
        if need_in:
            for root in need_in:
                splitter_in[root] = None
            for u in tr.by_root(need_in, "splitter_in"):
                splitter_in[u.root_id] = u
        tr.neighbours(u.id for u in ends if u.kind != "splitter_out")
        grown: list[Chain] = []
        for chain in active:
            u = chain.last
            if is_head(u):
                out.done.append(chain)
                continue
            if u.kind == "splitter_out":
                s_in = splitter_in.get(u.root_id)
                nexts = [(s_in.id, THROUGH, None)] if s_in is not None else []
            else:
                prev = chain.units[-2].id if len(chain.units) > 1 else None
                seen = set(chain.ids())
                nexts = [n for n in tr.next_of(u.id, prev) if n[0] not in seen
                         and tr.units[n[0]].kind not in DOWNSTREAM]
            if not nexts:
                if is_open(u):
                    out.open.append(chain)
                else:
                    out.blocked.append(("not_wired", chain))
                continue
            for uid, kind, container in nexts:
                n = tr.units[uid]
                if tr.room(n) <= 0:
                    reason = blocked_reason(n, medium)
                    out.blocked.append((reason, chain.grow(n, kind, container)))
                    continue
                grown.append(chain.grow(n, kind, container))
        active = grown[:MAX_CHAINS]
    for chain in active:
        if is_head(chain.last):
            out.done.append(chain)
        else:
            out.blocked.append(("not_wired", chain))
    return out


def units_of_owners(tr: Tracer, owner_ids: list[str], kind: str) -> list[U]:
    return tr.by_owner(owner_ids, kind)

