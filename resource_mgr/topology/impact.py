"""Impact of a set of failed resources: who is down (every route cut), who is degraded (some
route cut, one left), by product and by area, VIPs first.

No walk over every service: the failed set is expanded down the containment edges (a manhole to
its duct segments, their cables and cores; a site to its devices, frames, cards and ports), then
only the routes through what failed are looked at. The transport part is judged per head device
from its few transport routes; the access part by walking back from the failed units along the
route edges (the services whose routes use them) and deciding, for just those units, whether one
route to the core is left.
"""
from __future__ import annotations

import heapq
import itertools
import operator
from collections import Counter
from collections.abc import Sequence
from typing import Any

from resource_mgr.topology.graph import _NORMAL, FOLDED, RESOURCE, TRANSPORT, UNIT, NetworkGraph, _contents
from resource_mgr.topology.routes import transport_routes

UP, DEGRADED, DOWN = "up", "degraded", "down"
_PRODUCT, _AREA, _ID = operator.attrgetter("product"), operator.attrgetter("area"), operator.attrgetter("id")


def failed_closure(graph: NetworkGraph, nodes: set[int]) -> set[int]:
    """The nodes and everything contained in them (that is in the graph, folded units too)."""
    return _closure(graph, nodes)[0]


def _closure(graph: NetworkGraph, nodes: set[int]) -> tuple[set[int], list[int], list[int]]:
    """(the failed closure, its access units (route seeds), the services of its folded units)."""
    out, todo, flag, pred, folded = set(nodes), list(nodes), graph.flag, graph.g._pred, graph.folded_units
    seeds = [n for n in nodes if flag[n] == UNIT]
    gone = [n for n in nodes if flag[n] == FOLDED]
    while todo:
        x = todo.pop()
        if flag[x] != RESOURCE:
            continue
        for p in pred[x]:
            if p not in out:
                out.add(p)
                f = flag[p]
                if f == RESOURCE:
                    todo.append(p)
                elif f == UNIT:
                    seeds.append(p)
        hit = folded.get(x)
        if hit is not None:
            out.update(hit)
            gone += hit
    folded_by = graph.folded_by
    return out, seeds, [folded_by[u] for u in gone]


def transport_index(graph: NetworkGraph, limit: int) -> dict[int, set[int]]:
    """Transport unit → the head devices whose transport routes use it."""
    if graph.transport_index is None:
        index: dict[int, set[int]] = {}
        heads = {graph.root(p) for p in range(len(graph.kinds))
                 if graph.keys[p] is not None and graph.flag[p] == TRANSPORT and graph.kinds[p] == "uplink_port"}
        for device in heads - {None}:
            for _route, units in transport_routes(graph, device, limit):
                for u in units:
                    index.setdefault(u, set()).add(device)
        graph.transport_index = index
    return graph.transport_index


def transport_states(graph: NetworkGraph, killed: set[int], limit: int) -> dict[int, str]:
    """The head devices some of whose transport routes are cut: degraded or down."""
    index = transport_index(graph, limit)
    heads = {d for u in index.keys() & killed for d in index[u]}
    out = {}
    for device in heads:
        routes = transport_routes(graph, device, limit)
        cut = sum(1 for _r, units in routes if not killed.isdisjoint(units))
        if cut:
            out[device] = DOWN if cut == len(routes) else DEGRADED
    return out


MULTI = -1  # a unit whose access routes end at more than one device (or in a cycle)


def home(graph: NetworkGraph, unit: int) -> int | None:
    """The one device (or cable, box...) every access route from this unit ends at, or MULTI
    (kept until the graph changes). Most units have one: only type-B protected lines have two."""
    homes = graph.homes
    hit = homes.get(unit, homes)
    if hit is not homes:
        return hit  # type: ignore[return-value]
    flag, succ = graph.flag, graph.g._succ
    stack = [unit]
    while stack:  # depth first, a unit decided once its next units are
        n = stack[-1]
        if n in homes and homes[n] is not _PENDING:
            stack.pop()
            continue
        nxt = [v for v in succ[n] if flag[v] == UNIT]
        if not nxt:
            homes[n] = graph.root(n)
            stack.pop()
            continue
        todo = [v for v in nxt if v not in homes]
        if todo and homes.get(n) is not _PENDING:
            homes[n] = _PENDING
            stack += todo
            continue
        found = {homes[v] for v in nxt}
        homes[n] = MULTI if len(found) != 1 or _PENDING in found else found.pop()  # type: ignore[assignment]
        stack.pop()
    return homes[unit]


_PENDING: Any = object()


def homed(graph: NetworkGraph, device: int) -> tuple[list[int], list[int], list[int]]:
    """(the services whose every access route ends at this device and their riders without a path,
    the multi-homed units with a next unit homed here, the bearers among the first with a rider
    with a path of its own), kept until the graph changes: when the device is down its single-homed
    services are down without a walk, and the walk starts from those multi-homed units."""
    hit = graph.homed.get(device)
    if hit is not None:
        return hit
    flag, pred, starts = graph.flag, graph.g._pred, graph.starts
    single: list[int] = []
    multi: set[int] = set()
    todo = [p for p in _contents(graph, device) if flag[p] == UNIT and home(graph, p) == device]
    seen = set(todo)
    while todo:
        x = todo.pop()
        hit_s = starts.get(x)
        if hit_s is not None:
            single += hit_s
        for p in pred[x]:
            if flag[p] == UNIT and p not in seen:
                seen.add(p)
                if home(graph, p) == device:
                    todo.append(p)
                else:
                    multi.add(p)
    members, infos, by_bearer = set(single), graph.services, graph.riders
    todo, bearers = [b for b in single if b in by_bearer], []
    while todo:  # riders without a path of their own follow their bearers: down with them
        b = todo.pop()
        for p in by_bearer[b]:
            info = infos.get(p)
            if info is None or info.bearer != b or p in members:
                continue
            if info.path:
                bearers.append(b)  # a rider with its own path elsewhere: decided by each impact
                continue
            members.add(p)
            single.append(p)
            if p in by_bearer:
                todo.append(p)
    out = graph.homed[device] = (single, sorted(multi), bearers)
    return out


def service_states(graph: NetworkGraph, failed: set[int], limit: int) -> tuple[dict[int, str], set[int]]:
    """({service node: degraded | down} for the services some of whose routes are cut, the failed
    nodes expanded down the containment)."""
    rest, killed, devices = split_states(graph, failed, limit)
    if not devices:
        return rest, killed
    states: dict[int, str] = {}
    for device in devices:
        states.update(dict.fromkeys(homed(graph, device)[0], DOWN))
    states.update(rest)
    return states, killed


def split_states(graph: NetworkGraph, failed: set[int], limit: int) -> tuple[dict[int, str], set[int], list[int]]:
    """(the states of the services not single-homed to a down head device, the failed closure,
    the down head devices: each one's single-homed services are down too, none of them in the
    first).

    A head device that is down (failed, or every transport route cut) takes its single-homed
    services down at once (`homed`); only the units of other homes, and the multi-homed ones next
    to a down device, are walked, and each unit with services starting there decides them all."""
    killed, seeds, gone = _closure(graph, failed)
    heads = transport_states(graph, killed, limit)
    flag, succ, device_type = graph.flag, graph.g._succ, graph.device_type
    dead = {d for d, state in heads.items() if state == DOWN}
    dead.update(n for n in killed if n in device_type)
    states: dict[int, str] = {}
    walk = [s for s in seeds if home(graph, s) not in dead]
    devices = []
    for device in dead:
        single, multi, _bearers = homed(graph, device)
        if single:
            devices.append(device)
        walk += multi
    region, units = _back(graph, set(walk))
    alive: dict[int, bool] = {}
    homes = graph.homes

    def is_alive(n: int) -> bool:
        h = homes.get(n)
        if h is None and n not in homes:
            h = home(graph, n)
        if h in dead:
            return False
        if n not in region:
            return True
        hit = alive.get(n)
        if hit is not None:
            return hit
        alive[n] = False  # a cycle (bad data) gives no route
        if n in killed:
            return False
        result, access = False, False
        for v in succ[n]:
            if flag[v] == UNIT:
                access = True
                if is_alive(v):
                    result = True
                    break
        if not access:
            result = heads.get(graph.root(n)) != DOWN
        alive[n] = result
        return result

    starts = graph.starts
    for u in units:  # every service starting at a unit shares its answer
        states.update(dict.fromkeys(starts[u], DEGRADED if is_alive(u) else DOWN))
    if gone:  # a folded unit has one way on: down (unless counted with its down head device)
        states.update(dict.fromkeys((s for s in gone if _anchor_home(graph, s) not in dead), DOWN))
    infos = graph.services
    for device, state in heads.items():  # a head with a route left: whoever uses it is degraded at worst
        if state == DEGRADED:
            worst = dict.fromkeys(head_services(graph, device), DEGRADED)
            worst.update(states)
            states = worst
    by_bearer = graph.riders
    riders = list(by_bearer.keys() & states.keys())
    for device in devices:  # and the down devices' bearers of riders with a path of their own
        riders += homed(graph, device)[2]
    while riders:  # riders follow their bearers
        b = riders.pop()
        grouped = b not in states  # single-homed to a down device: so are its riders without a path
        for p in by_bearer.get(b, ()):
            if p not in states:
                info = infos.get(p)
                if info is not None and info.bearer == b:
                    if info.path and (grouped or devices) and _anchor_home(graph, p) in dead:
                        continue  # single-homed to a down device itself
                    if grouped and not info.path:
                        continue
                    states[p] = states.get(b, DOWN)
                    if p in by_bearer:
                        riders.append(p)
    return states, killed, devices


def _anchor_home(graph: NetworkGraph, service: int) -> int | None:
    info = graph.services.get(service)
    return home(graph, info.path[info.fold]) if info is not None and info.path else None


def _back(graph: NetworkGraph, seeds: set[int]) -> tuple[set[int], list[int]]:
    """Back along the route edges from the seeds: every access unit with a route through one, and
    those of them where services' routes start."""
    flag, pred, starts = graph.flag, graph.g._pred, graph.starts
    region, todo = set(seeds), list(seeds)
    units = [x for x in seeds if x in starts]
    while todo:
        x = todo.pop()
        for p in pred[x]:
            if flag[p] == UNIT and p not in region:
                region.add(p)
                todo.append(p)
                if p in starts:
                    units.append(p)
    return region, units


def head_services(graph: NetworkGraph, device: int) -> list[int]:
    """The services with an access route to this head device (kept until the graph changes)."""
    hit = graph.head_services.get(device)
    if hit is None:
        ports = {p for p in _contents(graph, device) if graph.flag[p] == UNIT}
        hit = graph.head_services[device] = [s for u in _back(graph, ports)[1] for s in graph.starts[u]]
    return hit


def _down_answer(graph: NetworkGraph, device: int) -> tuple[list, list, Counter]:
    """A down device's single-homed services as the answer counts them (kept until the graph
    changes): VIPs by id, the others by id, and how many by (local network, product, area)."""
    hit = graph.homed_answers.get(device)
    if hit is None:
        infos = graph.services
        chosen = sorted((infos[s] for s in homed(graph, device)[0]), key=_ID)
        table = Counter(zip(map(operator.attrgetter("local_network_id"), chosen), map(_PRODUCT, chosen),
                            map(_AREA, chosen)))
        hit = graph.homed_answers[device] = ([i for i in chosen if i.grade != _NORMAL],
                                             [i for i in chosen if i.grade == _NORMAL], table)
    return hit


def answer(graph: NetworkGraph, states: dict[int, str], affected: int, *, limit: int, offset: int,
           local_network_ids: list[str] | None, down_devices: Sequence[int] = ()) -> dict[str, Any]:
    """The API's impact answer from the services' states (and the down devices whose single-homed
    services are down too, none of them in `states`: see split_states)."""
    scope = None if local_network_ids is None else set(local_network_ids)
    infos = graph.services
    chosen = [infos[s] for s in states]
    marks = list(states.values())
    if scope is not None:
        keep = [i.local_network_id in scope for i in chosen]
        chosen = list(itertools.compress(chosen, keep))
        marks = list(itertools.compress(marks, keep))
    by_product = Counter(zip(map(_PRODUCT, chosen), marks))
    by_area = Counter(zip(map(_AREA, chosen), marks))
    is_down = [m == DOWN for m in marks]
    down = list(itertools.compress(chosen, is_down))
    degraded = list(itertools.compress(chosen, map(operator.not_, is_down)))
    groups = [_down_answer(graph, d) for d in down_devices]
    down_count = len(down)
    for _vips, _normals, table in groups:
        for (ln, product, area), k in table.items():
            if scope is None or ln in scope:
                by_product[product, DOWN] += k
                by_area[area, DOWN] += k
                down_count += k

    def scoped(items: list) -> Any:
        return items if scope is None else (i for i in items if i.local_network_id in scope)

    def page(items: list, more: list) -> list[dict[str, Any]]:  # VIPs first, then by id; only the page is sorted
        want = offset + limit
        vips = sorted((i for i in items if i.grade != _NORMAL), key=_ID)
        if more:
            vips = heapq.merge(vips, *(scoped(g[0]) for g in more), key=_ID)
        first = list(itertools.islice(vips, want))
        if len(first) < want:
            normals = heapq.nsmallest(want - len(first), (i for i in items if i.grade == _NORMAL), key=_ID)
            if more:
                normals = heapq.merge(normals, *(scoped(g[1]) for g in more), key=_ID)
            first += itertools.islice(normals, want - len(first))
        return [i.summary() for i in first[offset:want]]

    def counts(table: Counter) -> dict[str, dict[str, int]]:
        return {k: {"down": table[k, DOWN], "degraded": table[k, DEGRADED]} for k in sorted({k for k, _s in table})}

    return {"down_count": down_count, "degraded_count": len(degraded), "by_product": counts(by_product),
            "by_area": counts(by_area), "services": page(down, groups), "degraded_services": page(degraded, []),
            "affected_resources_count": affected}
