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

from collections import Counter
from typing import Any

from resource_mgr.topology.graph import SERVICE, NetworkGraph, _contents
from resource_mgr.topology.routes import transport_routes

UP, DEGRADED, DOWN = "up", "degraded", "down"


def failed_closure(graph: NetworkGraph, nodes: set[int]) -> set[int]:
    """The nodes and everything contained in them (that is in the graph)."""
    out, todo, kinds = set(nodes), list(nodes), graph.kinds
    while todo:
        x = todo.pop()
        if kinds[x] == SERVICE or graph.is_unit(x):
            continue
        for p in graph.g.pred[x]:
            if p not in out and kinds[p] != SERVICE:
                out.add(p)
                todo.append(p)
    return out


def _transport_index(graph: NetworkGraph, limit: int) -> dict[int, set[int]]:
    """Transport unit → the head devices whose transport routes use it."""
    if graph.transport_index is None:
        index: dict[int, set[int]] = {}
        heads = {graph.root(p) for p in range(len(graph.kinds))
                 if graph.keys[p] is not None and graph.kinds[p] == "uplink_port"}
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
    kinds, g = graph.kinds, graph.g
    seeds = {n for n in killed if graph.is_unit(n) and not graph.is_transport_unit(n)}
    for device, _state in heads.items():
        seeds.update(p for p in _contents(graph, device) if not graph.is_transport_unit(p))
    region, todo = set(seeds), list(seeds)
    while todo:  # back along the route edges: every unit with a route through a seed
        x = todo.pop()
        for p in g.pred[x]:
            if p not in region and graph.is_unit(p) and not graph.is_transport_unit(p):
                region.add(p)
                todo.append(p)
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
        nxt = [v for v in graph.route_next(n) if not graph.is_transport_unit(v)]
        if nxt:
            result = any(is_alive(v) for v in nxt)
        else:
            result = heads.get(graph.root(n)) != DOWN
        alive[n] = result
        return result

    states: dict[int, str] = {}
    todo_services = [p for x in region for p in g.pred[x] if kinds[p] == SERVICE]
    for s in todo_services:
        info = graph.services.get(s)
        if info is None or not info.path:
            continue
        states[s] = DEGRADED if is_alive(info.path[0]) else DOWN
    riders = list(states)
    while riders:  # riders follow their bearers
        b = riders.pop()
        for p in g.pred[b]:
            if kinds[p] == SERVICE and p not in states and graph.services.get(p) is not None \
                    and graph.services[p].bearer == b:
                states[p] = states[b]
                riders.append(p)
    return states, killed


def answer(graph: NetworkGraph, states: dict[int, str], affected: int, *, limit: int, offset: int,
           local_network_ids: list[str] | None) -> dict[str, Any]:
    """The API's impact answer from the services' states."""
    scope = None if local_network_ids is None else set(local_network_ids)
    by_product: dict[str, Counter] = {}
    by_area: dict[str, Counter] = {}
    down, degraded = [], []
    for s, state in states.items():
        info = graph.services[s]
        if scope is not None and info.local_network_id not in scope:
            continue
        by_product.setdefault(info.product, Counter())[state] += 1
        by_area.setdefault(info.area, Counter())[state] += 1
        (down if state == DOWN else degraded).append(info)

    def page(items: list) -> list[dict[str, Any]]:
        items.sort(key=lambda i: (not i.vip, i.id))
        return [i.summary() for i in items[offset:offset + limit]]

    def counts(table: dict[str, Counter]) -> dict[str, dict[str, int]]:
        return {k: {"down": c[DOWN], "degraded": c[DEGRADED]} for k, c in sorted(table.items())}

    return {"down_count": len(down), "degraded_count": len(degraded), "by_product": counts(by_product),
            "by_area": counts(by_area), "services": page(down), "degraded_services": page(degraded),
            "affected_resources_count": affected}
