"""The topology engine's use cases: the graph, routes, impact, single points of failure.

    graph = get_graph(session)          # this process's graph of the session's database, current
    impact(session, ["<duct segment id>", "<OLT id>"], limit=50)
    routes_of_service(session, service_id)

Each call first brings the graph up to every change committed before it (resource_mgr.topology
.follow), so an answer reflects them whichever process made them.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.config import Settings, load_settings
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory.models import Resource
from resource_mgr.occupancy.models import Unit
from resource_mgr.orders.routes import hops
from resource_mgr.states import CustomerGrade
from resource_mgr.topology.follow import follow
from resource_mgr.topology.graph import LIVE, NetworkGraph
from resource_mgr.topology.impact import UP, answer, service_states, split_states, transport_index
from resource_mgr.topology.routes import carrier, routes_from, service_routes, transport_routes
from resource_mgr.topology.spof import service_spof

_GRAPHS: dict[str, NetworkGraph] = {}
_GRAPHS_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _settings() -> Settings:
    return load_settings()


def _limit() -> int:
    return _settings().topology_max_routes


def get_graph(session: Session) -> NetworkGraph:
    """This process's graph of the session's database, brought up to date with the change feed.
    `build_seconds` says how long its last build took. Hold `graph.lock` while reading it."""
    url = str(session.get_bind().url)
    with _GRAPHS_LOCK:
        graph = _GRAPHS.get(url)
        if graph is None:
            graph = _GRAPHS[url] = NetworkGraph(url)
    with graph.lock:
        builds = graph.builds
        if not builds:
            graph.build(session)
        else:
            follow(session, graph, _settings().topology_rebuild_rows)
        if graph.builds != builds:  # the head devices' transport routes with the build, not on the first impact
            transport_index(graph, _limit())
    return graph


def forget_graphs() -> None:
    """Drop every process graph (tests that empty the database without history)."""
    with _GRAPHS_LOCK:
        _GRAPHS.clear()


def _node(session: Session, graph: NetworkGraph, rid: str) -> int | None:
    """The graph node of an id; None for a resource or unit that exists but no route uses."""
    n = graph.ids.get(rid)
    if n is not None:
        return n
    if session.get(Resource, rid) is not None or session.get(Unit, rid) is not None:
        return None
    raise NotFound(f"no resource or unit with id {rid}", field="resource_ids")


def impact(session: Session, resource_ids: list[str], *, limit: int = 50, offset: int = 0,
           local_network_ids: list[str] | None = None) -> dict[str, Any]:
    """Who is down and who is degraded if these resources fail (API.md, POST /impact)."""
    if not isinstance(resource_ids, list) or not all(isinstance(r, str) and r for r in resource_ids):
        raise Invalid("resource_ids must be a list of ids", field="resource_ids")
    graph = get_graph(session)
    with graph.lock:
        nodes, outside = set(), 0
        for rid in dict.fromkeys(resource_ids):
            n = _node(session, graph, rid)
            if n is None:
                outside += 1
            else:
                nodes.add(n)
        states, killed, devices = split_states(graph, nodes, _limit())
        return answer(graph, states, len(killed) + outside, limit=limit, offset=offset,
                      local_network_ids=local_network_ids, down_devices=devices)


def service_state(session: Session, service_id: str, failed: set[str]) -> str:
    """"up", "degraded" or "down" for one service if `failed` fail."""
    graph = get_graph(session)
    with graph.lock:
        s = graph.ids.get(service_id)
        if s is None or s not in graph.services:
            if session.get(Service, service_id) is None:
                raise NotFound(f"no service with id {service_id}", field="service_id")
            return UP
        nodes = {n for n in (_node(session, graph, r) for r in failed) if n is not None}
        return service_states(graph, nodes, _limit())[0].get(s, UP)


def _route_answer(session: Session, graph: NetworkGraph, routes: list[tuple[int, ...]]) -> tuple[list, list]:
    keys = [[graph.keys[n] for n in r] for r in routes]
    table = {h["unit_id"]: h for h in hops(session, sorted({k for r in keys for k in r if k}))}
    out = [[table[k] for k in r if k in table] for r in keys]
    return (out[0] if out else []), out[1:]


def routes_of_service(session: Session, service_id: str) -> dict[str, Any]:
    """{"service_id", "hops", "alternate_routes"[, "bearer_id"]}: the stored path continued to the
    core first, then every other route; a rider shows its bearer's."""
    graph = get_graph(session)
    with graph.lock:
        s = graph.ids.get(service_id)
        if s is None or s not in graph.services:
            service = session.get(Service, service_id)
            if service is None:
                raise NotFound(f"no service with id {service_id}", field="id")
            return _stored_only(session, service)  # removed: its last stored path, nothing more
        routes = service_routes(graph, s, _limit())
        primary, alternates = _route_answer(session, graph, routes)
        out: dict[str, Any] = {"service_id": service_id, "hops": primary, "alternate_routes": alternates}
        c = carrier(graph, s)
        if c != s:
            out["bearer_id"] = graph.keys[c]
        return out


def _stored_only(session: Session, service: Service) -> dict[str, Any]:
    ids = list(session.scalars(select(ServiceUnit.unit_id).where(ServiceUnit.service_id == service.id)
                               .order_by(ServiceUnit.seq)))
    return {"service_id": service.id, "hops": hops(session, ids), "alternate_routes": []}


def routes_of_resource(session: Session, resource_id: str) -> dict[str, Any]:
    """The route through a termination (a unit) or a resource: the routes of a live service using
    it when there is one (`service_id` says which), else the routes from it to the core."""
    graph = get_graph(session)
    with graph.lock:
        n = _node(session, graph, resource_id)
        out: dict[str, Any] = {"resource_id": resource_id, "service_id": None, "hops": [], "alternate_routes": []}
        if n is None:
            if session.get(Unit, resource_id) is not None:
                out["hops"] = hops(session, [resource_id])
            return out
        if graph.kinds[n] == "service":
            raise NotFound(f"no resource or unit with id {resource_id} (a service: use /services/{{id}}/route)",
                           field="id")
        units = [n] if graph.is_unit(n) else sorted(graph.units_in(n), key=lambda u: graph.keys[u] or "")
        sid = _service_through(session, [graph.keys[u] for u in units if graph.keys[u]])
        if sid is not None and graph.ids.get(sid) in graph.services:
            routes = service_routes(graph, graph.ids[sid], _limit())
            out["service_id"] = sid
        elif units:
            routes = routes_from(graph, units[0], _limit())
        else:
            routes = [r for r, _u in transport_routes(graph, n, _limit())]
        out["hops"], out["alternate_routes"] = _route_answer(session, graph, routes)
        return out


def _service_through(session: Session, unit_ids: list[str]) -> str | None:
    if not unit_ids:
        return None
    s = Service.__table__
    return session.scalar(select(ServiceUnit.service_id).join(s, s.c.id == ServiceUnit.service_id)
                          .where(ServiceUnit.unit_id.in_(unit_ids[:900]), s.c.state.in_(LIVE))
                          .order_by(ServiceUnit.service_id).limit(1))


def single_points_of_failure(session: Session, *, local_network_ids: list[str] | None = None, grade: str = "vip",
                             limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """For each live service of customers of `grade` (by service id, paged): the resources whose
    loss alone takes it down, customer side first."""
    grades = {g.value for g in CustomerGrade}
    if grade not in grades:
        raise Invalid(f"grade must be one of {', '.join(sorted(grades))}", field="grade")
    graph = get_graph(session)
    with graph.lock:
        scope = None if local_network_ids is None else set(local_network_ids)
        chosen = sorted((info.id, s) for s, info in graph.services.items()
                        if info.grade == grade and (scope is None or info.local_network_id in scope))
        rows = []
        for sid, s in chosen[offset:offset + limit]:
            rows.append((sid, graph.services[s].customer, service_spof(graph, s, _limit())))
        keys = sorted({graph.keys[e] for _sid, _c, found in rows for e in found if graph.keys[e]})
        names = _names(session, keys)
        return [{"service_id": sid, "customer": customer,
                 "resources": [{"id": graph.keys[e], "kind": graph.kinds[e], "name": names.get(graph.keys[e], "")}
                               for e in found if graph.keys[e]]}
                for sid, customer, found in rows]


def _names(session: Session, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    r, u = Resource.__table__, Unit.__table__
    for i in range(0, len(ids), 900):
        part = ids[i:i + 900]
        out.update(session.execute(select(r.c.id, r.c.name).where(r.c.id.in_(part))).all())
        out.update(session.execute(select(u.c.id, u.c.name).where(u.c.id.in_(part))).all())
    return out
