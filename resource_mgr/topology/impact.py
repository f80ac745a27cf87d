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
from collections import Counter
from typing import Any

from resource_mgr.topology.graph import _NORMAL, FOLDED, RESOURCE, TRANSPORT, UNIT, NetworkGraph, _contents
from resource_mgr.topology.routes import transport_routes

UP, DEGRADED, DOWN = "up", "degraded", "down"


def failed_closure(graph: NetworkGraph, nodes: set[int]) -> set[int]:
    """The nodes and everything contained in them (that is in the graph, folded units too)."""
    out, todo, flag, pred, folded = set(nodes), list(nodes), graph.flag, graph.g._pred, graph.folded_units
    while todo:
        x = todo.pop()
        if flag[x] != RESOURCE:
            continue
        for p in pred[x]:
            if p not in out:
                out.add(p)
                todo.append(p)
        hit = folded.get(x)
        if hit is not None:
            out.update(hit)
    return out


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
    heads = {d for u in killed if u in index for d in index[u]}
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
    killed = failed_closure(graph, failed)
    heads = transport_states(graph, killed, limit)
    flag, succ, pred = graph.flag, graph.g._succ, graph.g._pred
    seeds = {n for n in killed if flag[n] == UNIT}
    for device, state in heads.items():
        if state == DOWN:
            seeds.update(p for p in _contents(graph, device) if flag[p] == UNIT)
    region, services = _back(graph, seeds)
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

    states: dict[int, str] = {}
    infos = graph.services
    folded_by = graph.folded_by
    for u in killed:  # a folded unit has one way on: its service is down
        if flag[u] == FOLDED:
            states[folded_by[u]] = DOWN
    for s in services:
        if s in states:
            continue
        info = infos.get(s)
        if info is None or not info.path:
            continue
        states[s] = DEGRADED if is_alive(info.path[info.fold]) else DOWN
    for device, state in heads.items():  # a head with a route left: whoever uses it is degraded at worst
        if state == DEGRADED:
            for s in head_services(graph, device):
                if s not in states:
                    states[s] = DEGRADED
    riders, by_bearer = list(states), graph.riders
    while riders:  # riders follow their bearers
        b = riders.pop()
        for p in by_bearer.get(b, ()):
            if p not in states:
                info = infos.get(p)
                if info is not None and info.bearer == b:
                    states[p] = states[b]
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
    by_product: Counter = Counter()
    by_area: Counter = Counter()
    down, degraded = [], []
    infos = graph.services
    for s, state in states.items():
        info = infos[s]
        if scope is not None and info.local_network_id not in scope:
            continue
        by_product[info.product, state] += 1
        by_area[info.area, state] += 1
        (down if state == DOWN else degraded).append(info)

    def page(items: list) -> list[dict[str, Any]]:  # only the first offset + limit in order
        first = heapq.nsmallest(offset + limit, items, key=lambda i: (i.grade == _NORMAL, i.id))
        return [i.summary() for i in first[offset:offset + limit]]

    def counts(table: Counter) -> dict[str, dict[str, int]]:
        return {k: {"down": table[k, DOWN], "degraded": table[k, DEGRADED]} for k in sorted({k for k, _s in table})}

    return {"down_count": len(down), "degraded_count": len(degraded), "by_product": counts(by_product),
            "by_area": counts(by_area), "services": page(down), "degraded_services": page(degraded),
            "affected_resources_count": affected}
