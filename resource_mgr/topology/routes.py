"""Routes on the graph: a service's stored path continued through its head device's uplinks to the
core, and every other route it has (a type-B splitter's second input, a second uplink, the other
way round an aggregation ring), at most `limit` of them.

A route is a tuple of unit nodes, customer side first. The access part follows route edges that
are not transport (a DAG: paths, splitter passes, standby wiring) until a unit with nowhere further
to go, normally a head port; if that port's device has transport routes the route continues along
each of them. A transport route starts at one of the head device's uplink ports and ends at a port
of a core router (a BRAS where the city has none); it enters each device at most once.
"""
from __future__ import annotations

from resource_mgr.topology.graph import FOLDED, UNIT, NetworkGraph, _contents, is_terminal_device

Route = tuple[int, ...]


def access_routes(graph: NetworkGraph, start: int, limit: int) -> list[Route]:
    """Every access route from a unit towards its head ports (depth first, at most `limit`)."""
    out: list[Route] = []
    stack: list[tuple[int, Route]] = [(start, (start,))]
    while stack and len(out) < limit:
        n, route = stack.pop()
        nxt = [v for v in graph.g._succ[n] if graph.flag[v] == UNIT and v not in route]
        if not nxt:
            out.append(route)
            continue
        for v in reversed(sorted(nxt)):
            stack.append((v, route + (v,)))
    return out


def transport_routes(graph: NetworkGraph, device: int | None, limit: int) -> list[tuple[Route, frozenset[int]]]:
    """The device's routes to the core as (units, their set); [] when it has none (no uplink wired
    on to an end: then its routes end at the device itself). Kept until the transport changes."""
    if device is None:
        return []
    hit = graph.transport_cache.get(device)
    if hit is not None:
        return hit
    ports = sorted(p for p in _contents(graph, device) if graph.kinds[p] == "uplink_port" and graph.route_next(p))
    found: list[Route] = []
    for port in ports:
        # (unit, route so far, devices passed, whether it just crossed a device inside)
        stack: list[tuple[int, Route, frozenset[int | None], bool]] = [(port, (port,), frozenset({device}), True)]
        while stack and len(found) < limit:
            n, route, devices, crossed = stack.pop()
            here = graph.root(n)
            if here is not None and here != device and _is_end(graph, here):
                found.append(route)
                continue
            for v in sorted(graph.route_next(n), reverse=True):
                if v in route or not graph.is_transport_unit(v):
                    continue
                there = graph.root(v)
                inside = there == here and graph.kinds[v] == "uplink_port" and graph.kinds[n] == "uplink_port"
                if inside and crossed:
                    continue  # through a device once: in by one port, out by another, then a link
                if not inside and graph.kinds[v] == "uplink_port" and there in devices:
                    continue  # never into a device already passed
                stack.append((v, route + (v,), devices | {there}, inside))
    found.sort(key=len)
    result = [(r, frozenset(r)) for r in found[:limit]]
    graph.transport_cache[device] = result
    return result


def _is_end(graph: NetworkGraph, device: int) -> bool:
    return is_terminal_device(graph, device)


def carrier(graph: NetworkGraph, service: int) -> int:
    """The service whose path carries this one (itself, or its bearer's carrier for a rider)."""
    seen = set()
    while service in graph.services and graph.services[service].bearer is not None and service not in seen:
        seen.add(service)
        service = graph.services[service].bearer  # type: ignore[assignment]
    return service


def routes_from(graph: NetworkGraph, start: int, limit: int, primary: Route = ()) -> list[Route]:
    """Every route from a unit to the core: access variants × their head device's transport
    routes; the one that begins with `primary` (the stored path) first."""
    if graph.flag[start] == FOLDED:  # one way on: the rest of its service's folded units, then on
        info = graph.services[graph.folded_by[start]]
        i = info.path.index(start)
        prefix, anchor = info.path[i:info.fold], info.path[info.fold]
        rest = primary[len(prefix):] if primary[:len(prefix)] == prefix else ()
        return [prefix + r for r in routes_from(graph, anchor, limit, rest)]
    out: list[Route] = []
    accesses = access_routes(graph, start, limit)
    accesses.sort(key=lambda r: (r[:len(primary)] != primary if primary else False))
    for access in accesses:
        transports = transport_routes(graph, graph.root(access[-1]), limit)
        if not transports:
            out.append(access)
        for t, _units in transports:
            out.append(access + t)
        if len(out) >= limit:
            break
    return out[:limit]


def service_routes(graph: NetworkGraph, service: int, limit: int) -> list[Route]:
    """A service's routes, its stored path (continued to the core) first; a rider's are its bearer's."""
    info = graph.services.get(carrier(graph, service))
    if info is None or not info.path:
        return []
    return routes_from(graph, info.path[0], limit, info.path)
