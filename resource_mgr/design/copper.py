"""Copper (ADSL, VDSL, POTS): box port → distribution pair → cross box distribution terminal →
(jumper, existing or to make) feeder terminal → primary pair → MDF line terminal → (MDF jumper,
existing or to make) equipment terminal → DSLAM / switch port.

Wired chains come from the walk; a distribution terminal without a jumper is paired with a free,
unjumpered feeder terminal of the same cross box, a line terminal without one with a free,
unjumpered equipment terminal wired to a free head port at the same site (each pairing a
`make_jumper` work item). Pools are zipped, so the candidates never share an exclusive unit."""
from __future__ import annotations

from typing import Any

from resource_mgr.config import Settings
from resource_mgr.design.model import Work
from resource_mgr.design.policy import Candidate
from resource_mgr.design.rates import equivalent_loop_m, rate_for_loop
from resource_mgr.design.trace import Tracer, U
from resource_mgr.design.walk import Chain, box_reasons, units_of_owners, walk

HEAD_KIND = {"ADSL": "dsl_port", "VDSL": "dsl_port", "POTS": "line_port"}
NEW = "jumper"  # a jumper to make counts like one that exists


def _head_ok(tech: str, settings: Settings):
    kind, allowed = HEAD_KIND[tech], set(settings.design_head_technologies.get(tech, []))

    def ok(u: U) -> bool:
        return u.kind == kind and (u.technology or u.dev_technology or "") in allowed
    return ok


def _is_open(u: U) -> bool:
    return u.kind == "terminal" and u.side in ("distribution", "line")


def _any_head(u: U) -> bool:
    return u.kind in ("dsl_port", "line_port", "eth_port")


def _rewire_at_line(chain: Chain) -> Chain | None:
    """A wired chain that ends at another technology's port: open again at its line terminal."""
    for i in range(len(chain.units) - 1, -1, -1):
        if chain.units[i].kind == "terminal" and chain.units[i].side == "line":
            return Chain(chain.units[:i + 1], chain.links[:i], chain.containers[:i])
    return None


def _feeder_pool(tr: Tracer, cross_box: str, need: int, settings: Settings) -> list[Chain]:
    """Free feeder terminals of the cross box with no jumper yet, walked to the MDF."""
    fts = [u for u in tr.pool([cross_box], "terminal", side="feeder", limit=need * 2 + 4) if tr.room(u) > 0]
    tr.neighbours(u.id for u in fts)
    loose = [u for u in fts if not any(tr.unit(n).side == "distribution" for n, _k, _c in tr.links(u.id))]
    return _walk_chains(tr, [Chain([u]) for u in loose[:need + 2]], settings)


def _walk_chains(tr: Tracer, chains: list[Chain], settings: Settings) -> list[Chain]:
    w = walk(tr, chains, is_head=_any_head, is_open=_is_open, medium="copper", key="copper")
    return w.done + w.open


def _head_pool(tr: Tracer, tech: str, site_id: str, need: int, settings: Settings) -> list[tuple[U, U]]:
    """(equipment terminal, head port) pairs at the site, free and unjumpered, in policy order
    (devices by how full they are: fullest first for `fill`, emptiest for `spread`)."""
    kind, allowed = HEAD_KIND[tech], sorted(settings.design_head_technologies.get(tech, []))
    stats = tr.head_stats(site_id, kind, allowed)
    if not stats:
        return []
    fill = {root: (busy or 0) / total for root, total, busy in stats}
    tr.device_fill.update(fill)
    order = sorted(fill, key=lambda r: (-fill[r] if settings.design_policy == "fill" else fill[r], r))
    ports: list[U] = []
    for root in order:  # the first device in policy order usually has enough
        ports += [u for u in tr.pool([root], kind, techs=allowed, limit=need * 2 + 4) if tr.room(u) > 0]
        if len(ports) >= need + 2:
            break
    tr.neighbours(u.id for u in ports)
    ets = {p.id: [tr.unit(n) for n, _k, _c in tr.links(p.id) if tr.unit(n).kind == "terminal"] for p in ports}
    tr.neighbours(e.id for es in ets.values() for e in es)
    tr.ensure_state(e for es in ets.values() for e in es)
    pool = []
    for p in ports:
        for et in ets[p.id]:
            if et.site_id != site_id or tr.room(et) <= 0 or len(tr.links(et.id)) > 1:
                continue  # another site's frame, taken, or jumpered to a line already
            pool.append((et, p))
            break
    return pool


def _loop(c: Candidate, drop_m: float | None, settings: Settings) -> float:
    cables: dict[str, tuple[float, float | None]] = {}
    for u in c.units:
        if u.kind == "pair":
            cables[u.root_id] = (u.length_m or 0.0, u.conductor_mm)
    segs = list(cables.values()) + [((drop_m or 0.0), None)]
    return round(equivalent_loop_m(segs, settings), 1)


def candidates(tr: Tracer, tech: str, boxes: list[Any], settings: Settings,
               min_down_mbps: float | None) -> tuple[list[Candidate], list[str], dict[str, Any]]:
    rank = {b.box_id: i for i, b in enumerate(boxes)}
    drop = {b.box_id: b.distance_m for b in boxes}
    head_ok = _head_ok(tech, settings)
    ports = units_of_owners(tr, list(rank), "box_port")
    reasons: list[str] = []
    # every port is walked (topology is cached): the state of all of them and of their
    # chains comes in one query, and a port without room ends its chain at once
    w = walk(tr, [Chain([p]) for p in ports], is_head=_any_head, is_open=_is_open, medium="copper",
             key="copper")
    reasons += box_reasons(tr, ports, [p for p in ports if tr.room(p) > 0])
    done, at_dt, at_lt = [], [], []
    for chain in w.done:
        if head_ok(chain.last):
            done.append(chain)
        elif (again := _rewire_at_line(chain)) is not None:
            at_lt.append(again)
    for chain in w.open:
        (at_dt if chain.last.side == "distribution" else at_lt).append(chain)
    reasons += [r for r, _ in w.blocked]
    work: dict[int, list[Work]] = {}

    # distribution terminals without a jumper: a free feeder chain of the same cross box each
    by_box: dict[str, list[Chain]] = {}
    for chain in at_dt:
        by_box.setdefault(chain.last.root_id, []).append(chain)
    for cross_box, chains in by_box.items():
        pool = _feeder_pool(tr, cross_box, len(chains), settings)
        if not pool:
            reasons.append("cable_full")
        for dist, feed in zip(chains, pool):
            joined = Chain(dist.units + feed.units, dist.links + [NEW] + feed.links,
                           dist.containers + [cross_box] + feed.containers)
            work[id(joined)] = [Work("make_jumper", dist.last.id, feed.units[0].id, cross_box,
                                     f"jumper distribution terminal {dist.last.name} to feeder terminal "
                                     f"{feed.units[0].name} in cross box {dist.last.root_name}")]
            if head_ok(joined.last):
                done.append(joined)
            elif joined.last.kind == "terminal" and joined.last.side == "line":
                at_lt.append(joined)
            elif (again := _rewire_at_line(joined)) is not None:
                work[id(again)] = work.pop(id(joined))
                at_lt.append(again)

    # line terminals without a jumper (or jumpered to another technology): a free head port each
    by_site: dict[str | None, list[Chain]] = {}
    for chain in at_lt:
        by_site.setdefault(chain.last.site_id, []).append(chain)
    for site_id, chains in by_site.items():
        pool = _head_pool(tr, tech, site_id, len(chains), settings) if site_id else []
        if not pool:
            reasons.append("no_head_port")
        for line, (et, port) in zip(chains, pool):
            joined = Chain(line.units + [et, port], line.links + [NEW, "fixed"],
                           line.containers + [et.root_id, None])
            work[id(joined)] = work.pop(id(line), []) + [Work(
                "make_jumper", line.last.id, et.id, et.root_id,
                f"jumper MDF line terminal {line.last.name} to equipment terminal {et.name} "
                f"({port.root_name} port {port.name})")]
            done.append(joined)

    out: list[Candidate] = []
    facts: dict[str, Any] = {}
    for chain in done:
        port = chain.units[0]
        c = Candidate(units=chain.units, links=chain.links, work=work.get(id(chain), []), box_id=port.owner_id,
                      box_rank=rank.get(port.owner_id, len(rank)),
                      head_fill=tr.device_fill.get(chain.last.root_id))
        loop = _loop(c, drop.get(port.owner_id), settings)
        c.facts = {"loop_m": loop}
        if tech == "POTS":
            ok = loop <= settings.design_pots_max_loop_m
            c.facts["max_down_mbps"] = None
        else:
            rate = round(rate_for_loop(loop, tech, settings), 1)  # the rate said is the rate judged
            c.facts["max_down_mbps"] = rate
            ok = rate > 0 and (min_down_mbps is None or rate >= min_down_mbps)
        if not ok:
            reasons.append("loop_too_long")
            if "loop_m" not in facts or loop < facts["loop_m"]:
                facts = dict(c.facts)
            continue
        out.append(c)
    return out, reasons, facts
