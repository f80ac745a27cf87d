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


def _transport_index(graph: NetworkGraph, limit: int) -> dict[int, set[int]]:
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
    index = _transport_index(graph, limit)
    heads = {d for u in index.keys() & killed for d in index[u]}
    out = {}
    for device in heads:
        routes = transport_routes(graph, device, limit)
        cut = sum(1 for _r, units in routes if not killed.isdisjoint(units))
        if cut:
            out[device] = DOWN if cut == len(routes) else DEGRADED
    return out


def service_states(graph: NetworkGraph, failed: set[int], limit: int) -> tuple[dict[int, str], set[int]]:
    """({service node: degraded | down} for the services some of whose routes are cut, the failed
    nodes expanded down the containment)."""
    killed, seeds, gone = _closure(graph, failed)
    heads = transport_states(graph, killed, limit)
    flag, succ = graph.flag, graph.g._succ
    for device, state in heads.items():
        if state == DOWN:
            seeds += [p for p in _contents(graph, device) if flag[p] == UNIT]
    region, services = _back(graph, set(seeds))
    alive: dict[int, bool] = {}

    def is_alive(n: int) -> bool:
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

    infos = graph.services
    states: dict[int, str] = dict.fromkeys(gone, DOWN)  # a folded unit has one way on: down
    for s in services:
        if s in states:
            continue
        info = infos.get(s)
        if info is None or not info.path:
            continue
        states[s] = DEGRADED if is_alive(info.path[info.fold]) else DOWN
    for device, state in heads.items():  # a head with a route left: whoever uses it is degraded at worst
        if state == DEGRADED:
            worst = dict.fromkeys(head_services(graph, device), DEGRADED)
            worst.update(states)
            states = worst
    by_bearer = graph.riders
    riders = list(by_bearer.keys() & states.keys())
    while riders:  # riders follow their bearers
        b = riders.pop()
        for p in by_bearer.get(b, ()):
            if p not in states:
                info = infos.get(p)
                if info is not None and info.bearer == b:
                    states[p] = states[b]
                    if p in by_bearer:
                        riders.append(p)
    return states, killed


def _back(graph: NetworkGraph, seeds: set[int]) -> tuple[set[int], list[int]]:
    """Back along the route edges from the seeds: every access unit with a route through one, and
    the services whose routes go on from them."""
    flag, pred, starts = graph.flag, graph.g._pred, graph.starts
    region, todo, services = set(seeds), list(seeds), []
    for x in seeds:
        hit = starts.get(x)
        if hit is not None:
            services += hit
    while todo:
        x = todo.pop()
        for p in pred[x]:
            if flag[p] == UNIT and p not in region:
                region.add(p)
                todo.append(p)
                hit = starts.get(p)
                if hit is not None:
                    services += hit
    return region, services


def head_services(graph: NetworkGraph, device: int) -> list[int]:
    """The services with an access route to this head device (kept until the graph changes)."""
    hit = graph.head_services.get(device)
    if hit is None:
        ports = {p for p in _contents(graph, device) if graph.flag[p] == UNIT}
        hit = graph.head_services[device] = _back(graph, ports)[1]
    return hit


def answer(graph: NetworkGraph, states: dict[int, str], affected: int, *, limit: int, offset: int,
           local_network_ids: list[str] | None) -> dict[str, Any]:
    """The API's impact answer from the services' states."""
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

    def page(items: list) -> list[dict[str, Any]]:  # VIPs first, then by id; only the page is sorted
        want = offset + limit
        vips = sorted((i for i in items if i.grade != _NORMAL), key=_ID)
        first = vips[:want]
        if len(first) < want:
            first += heapq.nsmallest(want - len(first), (i for i in items if i.grade == _NORMAL), key=_ID)
        return [i.summary() for i in first[offset:want]]

    def counts(table: Counter) -> dict[str, dict[str, int]]:
        return {k: {"down": table[k, DOWN], "degraded": table[k, DEGRADED]} for k in sorted({k for k, _s in table})}

    return {"down_count": len(down), "degraded_count": len(degraded), "by_product": counts(by_product),
            "by_area": counts(by_area), "services": page(down), "degraded_services": page(degraded),
            "affected_resources_count": affected}
