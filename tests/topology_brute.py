"""The brute-force impact the topology tests compare with: every live service's routes, each
checked against the failed set, containment read from the database here (not from the graph)."""
from __future__ import annotations

from sqlalchemy import select

from resource_mgr.inventory.models import CableSpan, CrossBox, Device, DuctSegment, Frame, Resource
from resource_mgr.occupancy.models import Unit
from resource_mgr.topology import services as topo
from resource_mgr.topology.routes import service_routes


class Containment:
    """Everything a unit or resource is in, from the stored rows."""

    def __init__(self, session) -> None:
        self.up: dict[str, set[str]] = {}
        for uid, owner, root in session.execute(select(Unit.id, Unit.owner_id, Unit.root_id)):
            self.up.setdefault(uid, set()).update({owner, root})
        r, seg = Resource.__table__, DuctSegment.__table__
        for rid, parent in session.execute(select(r.c.id, r.c.parent_id).where(r.c.kind == "card")):
            self.up.setdefault(rid, set()).add(parent)
        for model in (Device, Frame, CrossBox):
            for rid, site in session.execute(select(model.id, model.site_id)):
                if site:
                    self.up.setdefault(rid, set()).add(site)
        for cable, segment in session.execute(select(CableSpan.cable_id, CableSpan.duct_segment_id)):
            self.up.setdefault(cable, set()).add(segment)
        for sid, a, z, parent in session.execute(select(seg.c.id, seg.c.a_end_id, seg.c.z_end_id, r.c.parent_id)
                                                 .join(r, r.c.id == seg.c.id)):
            self.up.setdefault(sid, set()).update(x for x in (a, z, parent) if x)
        self.cache: dict[str, frozenset[str]] = {}

    def closure(self, key: str) -> frozenset[str]:
        hit = self.cache.get(key)
        if hit is None:
            out, todo = {key}, [key]
            while todo:
                for v in self.up.get(todo.pop(), ()):
                    if v not in out:
                        out.add(v)
                        todo.append(v)
            hit = self.cache[key] = frozenset(out)
        return hit


class BruteForce:
    """Every live service's routes as sets of everything on them (units and their containers)."""

    def __init__(self, session, containment: Containment | None = None, limit: int = 64) -> None:
        containment = containment or Containment(session)
        graph = topo.get_graph(session)
        self.routes: dict[str, list[frozenset[str]]] = {}
        with graph.lock:
            for s, info in graph.services.items():
                routes = service_routes(graph, s, limit)
                assert len(routes) < limit, "the bound would make the brute force partial"
                self.routes[info.id] = [frozenset().union(*(containment.closure(graph.keys[u]) for u in r))
                                        for r in routes]

    def states(self, failed: set[str]) -> dict[str, str]:
        """{service id: "down" | "degraded"} for every live service some route of which is cut."""
        out = {}
        for sid, routes in self.routes.items():
            cut = [not r.isdisjoint(failed) for r in routes]
            if routes and all(cut):
                out[sid] = "down"
            elif any(cut):
                out[sid] = "degraded"
        return out


def brute_states(session, failed: set[str], containment: Containment | None = None, limit: int = 64) -> dict[str, str]:
    return BruteForce(session, containment, limit).states(failed)


def engine_states(session, failed: set[str]) -> dict[str, str]:
    answer = topo.impact(session, sorted(failed), limit=10**7)
    out = {s["id"]: "down" for s in answer["services"]}
    out.update({s["id"]: "degraded" for s in answer["degraded_services"]})
    assert answer["down_count"] == len(answer["services"]) and answer["degraded_count"] == len(answer["degraded_services"])
    for table in (answer["by_product"], answer["by_area"]):  # counted apart from the lists (a down device's cache)
        assert sum(v["down"] for v in table.values()) == answer["down_count"]
        assert sum(v["degraded"] for v in table.values()) == answer["degraded_count"]
    page = topo.impact(session, sorted(failed), limit=3, offset=2)
    assert page["services"] == answer["services"][2:5] and page["degraded_services"] == answer["degraded_services"][2:5]
    return out
