"""Single points of failure: for a service, the resources whose loss alone takes it down.

A resource alone takes a service down exactly when it is on every one of its routes, itself or as
a container of a unit on it (the port's card, device and site; the core's cable, the cable's duct
segments and their manholes). So the answer is the intersection of the routes' element sets. When
the routes were cut short by the bound (more than `limit`), an element of the intersection might
be avoided by a route not listed: each one is then checked by failing it alone.
"""
from __future__ import annotations

from resource_mgr.topology.graph import NetworkGraph
from resource_mgr.topology.impact import DOWN, service_states
from resource_mgr.topology.routes import service_routes


def elements(graph: NetworkGraph, route: tuple[int, ...]) -> list[int]:
    """The route's units and their containers, customer side first, each once."""
    out, seen = [], set()
    for u in route:
        todo = [u]
        while todo:
            x = todo.pop(0)
            if x in seen:
                continue
            seen.add(x)
            out.append(x)
            todo += sorted(graph.containers(x))
    return out


def service_spof(graph: NetworkGraph, service: int, limit: int) -> list[int]:
    routes = service_routes(graph, service, limit)
    if not routes:
        return []
    first = elements(graph, routes[0])
    common = set(first)
    for route in routes[1:]:
        common &= set(elements(graph, route))
    found = [e for e in first if e in common]
    if len(routes) >= limit:
        found = [e for e in found if service_states(graph, {e}, limit)[0].get(service) == DOWN]
    return found
