"""Walk from customer-side units towards the head, a whole frontier per query on a miss.

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
from resource_mgr.states import AdminState

THROUGH = "through"  # a pass through a splitter, not a connection
MAX_LEVELS = 24
MAX_CHAINS = 5000
MAX_WALKS = 200_000  # start units whose chains are kept with the topology
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
    blocked: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (reason, unit ids to it)


def blocked_reason(u: U, medium: str) -> str:
    if u.admin_state == AdminState.LOCKED:
        return "locked"
    if u.kind == "terminal":
        return "fibre_full" if medium == "fibre" else "cable_full"
    return BLOCKED_BY_KIND.get(u.kind, "unavailable_unit")


def walk(tr: Tracer, starts: Iterable[Chain], *, is_head: Callable[[U], bool],
         is_open: Callable[[U], bool] = lambda u: False, medium: str = "fibre", key: str | None = None) -> Walked:
    """Grow the chains along the topology, then read the state of every unit reached in one
    query and cut each chain at its first unit without room.

    The chains a single-unit start grows to depend on the topology only: with a `key` (naming
    is_head and is_open) they are kept with the topology per start unit and reused until the
    topology changes, so a warm walk costs no growing at all."""
    starts = list(starts)
    again = (key, tuple(c.units[0].id for c in starts)) if key is not None and all(
        len(c.units) == 1 for c in starts) else None
    if again is not None and again in tr.walked:  # the same walk again in this design (ADSL, VDSL, POTS)
        return tr.walked[again]
    memo = tr.topo.walks if key is not None and not tr.fresh else None
    ends: list[tuple] = []  # (topological outcome, unit ids, links, containers)
    todo: list[Chain] = []
    for chain in starts:
        kept = memo.get((key, chain.units[0].id)) if memo is not None and len(chain.units) == 1 else None
        if kept is None:
            todo.append(chain)
        else:
            ends += kept
    if todo:
        grown, complete = _grow(tr, todo, is_head, is_open)
        found = [(outcome, tuple(c.ids()), tuple(c.links), tuple(c.containers)) for outcome, c in grown]
        ends += found
        by_start: dict[str, list] = {c.units[0].id: [] for c in todo if len(c.units) == 1}
        if memo is not None and complete and len(by_start) == len(todo) and tr.topo.version == tr.version:
            for chain in found:
                by_start[chain[1][0]].append(chain)
            with tr.topo.lock:
                if tr.topo.version == tr.version and tr.topo.walks is memo:
                    if len(memo) + len(by_start) > MAX_WALKS:
                        memo.clear()
                    memo.update({(key, start): chains for start, chains in by_start.items()})
    # the state of every unit reached, then each chain up to its first unit without room; only
    # the chains that get through become units (most end at their start: a port taken)
    tr.load_states({i for chain in ends for i in chain[1]})
    out = Walked()
    room, unit = tr.room_of, tr.unit
    for outcome, ids, links, containers in ends:
        cut = next((i for i, uid in enumerate(ids) if room(uid) <= 0), None)
        if cut is not None:
            if cut:  # a start without room is the box's business (box_reasons)
                out.blocked.append((blocked_reason(unit(ids[cut]), medium), ids[:cut + 1]))
        elif outcome == "done" or outcome == "open":
            chain = Chain([unit(i) for i in ids], list(links), list(containers))
            (out.done if outcome == "done" else out.open).append(chain)
        else:
            out.blocked.append(("not_wired", ids))
    if again is not None:
        tr.walked[again] = out
    return out


def _grow(tr: Tracer, starts: list[Chain], is_head: Callable[[U], bool],
          is_open: Callable[[U], bool]) -> tuple[list[tuple[str, Chain]], bool]:
    """Every chain from these starts to a head, an open terminal or a dead end (topology only),
    a whole frontier per query on a miss; False when MAX_CHAINS cut some off."""
    ends: list[tuple[str, Chain]] = []
    active = list(starts)
    complete = True
    splitter_in: dict[str, U | None] = {}
    for _ in range(MAX_LEVELS):
        if not active:
            break
        last = [c.last for c in active if not is_head(c.last)]
        need_in = sorted({u.root_id for u in last if u.kind == "splitter_out"} - splitter_in.keys())
        if need_in:
            for root in need_in:
                splitter_in[root] = None
            for u in tr.by_root(need_in, "splitter_in"):
                known = splitter_in[u.root_id]
                if known is None or u.seq < known.seq:  # a type-B splitter: the first input, its primary
                    splitter_in[u.root_id] = u
        tr.neighbours(u.id for u in last if u.kind != "splitter_out")
        grown: list[Chain] = []
        for chain in active:
            u = chain.last
            if is_head(u):
                ends.append(("done", chain))
                continue
            if u.kind == "splitter_out":
                s_in = splitter_in.get(u.root_id)
                nexts = [(s_in.id, THROUGH, None)] if s_in is not None else []
            else:
                prev = chain.units[-2].id if len(chain.units) > 1 else None
                seen = set(chain.ids())
                nexts = [n for n in tr.next_of(u.id, prev) if n[0] not in seen
                         and tr.unit(n[0]).kind not in DOWNSTREAM]
            if not nexts:
                ends.append(("open" if is_open(u) else "not_wired", chain))
                continue
            grown += [chain.grow(tr.unit(uid), kind, container) for uid, kind, container in nexts]
        if len(grown) > MAX_CHAINS:
            complete = False
        active = grown[:MAX_CHAINS]
    ends += [("done" if is_head(c.last) else "not_wired", c) for c in active]
    return ends, complete


def box_reasons(tr: Tracer, ports: list[U], free: list[U]) -> list[str]:
    """Why a box gives no path before the walk starts: no free port (locked ones said apart)."""
    if not ports or free:
        return []
    return ["box_locked"] if any(p.admin_state == AdminState.LOCKED for p in ports) else ["box_full"]


def units_of_owners(tr: Tracer, owner_ids: list[str], kind: str) -> list[U]:
    return tr.by_owner(owner_ids, kind)

