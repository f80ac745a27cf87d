"""The network as one networkx graph, per process and database (docs/topology.md).

Nodes are small integers (`NetworkGraph.ids` maps the opaque ids to them): resources (sites,
devices, cards, frames, cross boxes, boxes, cables, ducts, duct segments, manholes, poles), the
units that matter (on a live service's path, or on the network side: the second input of a type-B
splitter and the wiring behind it, uplink ports, trunk cores) and live services. Free units that
no route can use are not nodes: they are most of the units and change nothing about any answer.

Every edge says "depends on" (u → v: u fails when v fails, or u may use v):
- containment (AND): unit → its owner (card, cable, box, frame, splitter), card → device,
  device / frame / cross box → site, cable → each duct segment it spans, duct segment → its duct
  and its end manholes / poles;
- route (OR, unit → unit, towards the core): the next unit of a stored path, a splitter output
  → every input of its splitter, wiring on the network side (type-B standby chains oriented away
  from the splitter, transport links both ways between transport devices, a transport device's
  internal switching between its uplink ports);
- dependency: a service → the customer-side unit of its path; a rider → its bearer.
Which kind an edge is follows from the kinds of its ends (unit → unit is a route edge).
"""
from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from resource_mgr.changes.services import head
from resource_mgr.customers.models import Customer, Service, ServiceUnit
from resource_mgr.inventory.models import (
    Address, Cable, CableSpan, Connection, CrossBox, Device, DuctSegment, Frame, Resource,
)
from resource_mgr.occupancy.models import UNIT_KINDS, Unit
from resource_mgr.states import CustomerGrade, ServiceState

RESOURCE_KINDS = ("site", "device", "card", "frame", "cross_box", "distribution_box", "cable", "duct",
                  "duct_segment", "manhole", "pole")
UNIT_KIND_SET = frozenset(UNIT_KINDS) | {"uplink_port"}
HEAD_PORTS = frozenset({"pon_port", "dsl_port", "line_port", "eth_port"})
TRANSPORT_DEVICES = frozenset({"aggregation_switch", "bras", "core_router"})
LIVE = (ServiceState.ACTIVE.value, ServiceState.SUSPENDED.value)
SERVICE = "service"
_NORMAL = CustomerGrade.NORMAL.value
CHUNK = 900
# what a node is, one byte per node (graph.flag): the hot loops test this instead of kind strings
RESOURCE, UNIT, TRANSPORT, SERVICE_NODE = 0, 1, 2, 3
_NO_ATTRS: dict = {}


def _no_attrs() -> dict:
    return _NO_ATTRS


class LeanDiGraph(nx.DiGraph):
    """networkx's DiGraph with one shared empty attribute dict for every node and edge (the facts
    about nodes live beside the graph, in lists indexed by node): a dict fewer per node and per
    edge. networkx documents these factories for this use; never write node or edge attributes."""

    node_attr_dict_factory = staticmethod(_no_attrs)
    edge_attr_dict_factory = staticmethod(_no_attrs)


@dataclass(slots=True)
class ServiceInfo:
    id: str
    product: str
    customer: str | None
    grade: str
    number: str | None
    address_id: str | None
    area: str
    local_network_id: str
    path: tuple[int, ...]
    bearer: int | None = None

    @property
    def vip(self) -> bool:
        return self.grade != _NORMAL

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "product": self.product, "customer": self.customer, "vip": self.vip,
                "number": self.number, "address_id": self.address_id}


def chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]


class NetworkGraph:
    """One process's graph of one database; `lock` guards every read and change of it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.RLock()
        self.position = 0
        self.mark: tuple | None = None  # the history row at `position` (a wiped feed has another)
        self.build_seconds = 0.0
        self.builds = 0
        self.applied = 0  # history rows applied incrementally since the last build
        self.reset()

    def reset(self) -> None:
        self.g = LeanDiGraph()
        self.ids: dict[str, int] = {}
        self.keys: list[str | None] = []
        self.kinds: list[str] = []
        self.flag = bytearray()
        self.device_type: dict[int, str] = {}
        self.cable_stage: dict[int, str] = {}
        self.local_network: dict[int, str] = {}  # devices: for the route's end (core router, else BRAS)
        self.services: dict[int, ServiceInfo] = {}
        self.wired: dict[int, set[int]] = defaultdict(set)  # network-side route edges, by source
        self.transport_cache: dict[int, list[tuple[tuple[int, ...], frozenset[int]]]] = {}
        self.transport_index: dict[int, set[int]] | None = None
        self.bearer_keys: dict[str, str] = {}
        self.head_services: dict[int, list[int]] = {}  # impact's cache, emptied by every change
        self.version = 0

    # -- nodes -----------------------------------------------------------------------------

    def node(self, key: str, kind: str) -> int:
        n = self.ids.get(key)
        flag = SERVICE_NODE if kind == SERVICE else UNIT if kind in UNIT_KIND_SET else RESOURCE
        if n is None:
            n = self.ids[key] = len(self.keys)
            self.keys.append(key)
            self.kinds.append(sys.intern(kind))
            self.flag.append(flag)
            self.g.add_node(n)
        else:
            self.kinds[n] = sys.intern(kind)
            if self.flag[n] != TRANSPORT or flag != UNIT:
                self.flag[n] = flag
        return n

    def drop(self, n: int) -> None:
        key = self.keys[n]
        if key is not None:
            self.ids.pop(key, None)
            self.keys[n] = None
        if n in self.g:
            self.g.remove_node(n)
        self.services.pop(n, None)
        self.wired.pop(n, None)

    def is_unit(self, n: int) -> bool:
        return self.flag[n] in (UNIT, TRANSPORT)

    def is_resource(self, n: int) -> bool:
        return self.flag[n] == RESOURCE

    def route_next(self, n: int) -> list[int]:
        """The units a unit's routes may continue to (towards the core)."""
        flag = self.flag
        return [v for v in self.g._succ[n] if flag[v] == UNIT or flag[v] == TRANSPORT]

    def containers(self, n: int) -> list[int]:
        flag = self.flag
        return [v for v in self.g._succ[n] if flag[v] == RESOURCE]

    def root(self, unit: int) -> int | None:
        """The unit's device, cable, box or frame (its owner, or the owner's device for a card)."""
        for v in self.containers(unit):
            if self.kinds[v] == "card":
                return next(iter(self.containers(v)), v)
            return v
        return None

    def up_closure(self, n: int) -> set[int]:
        """The node and everything it is contained in (its card, device, site, cable, ducts...)."""
        out, todo = {n}, [n]
        while todo:
            x = todo.pop()
            for v in self.containers(x):
                if v not in out:
                    out.add(v)
                    todo.append(v)
        return out

    def is_transport_unit(self, n: int) -> bool:
        return self.flag[n] == TRANSPORT

    def mark_transport(self, n: int) -> None:
        """A unit of the transport layer: an uplink port, or a core of a trunk cable."""
        kind = self.kinds[n]
        transport = kind == "uplink_port"
        if kind == "core":
            r = self.root(n)
            transport = r is not None and self.cable_stage.get(r) == "trunk"
        self.flag[n] = TRANSPORT if transport else UNIT

    def terminal_types(self, local_network_id: str | None) -> frozenset[str]:
        """Where a route ends: a core router, or a BRAS where the city has no core router."""
        types = {t for d, t in self.device_type.items() if t in ("core_router", "bras")
                 and self.local_network.get(d) == local_network_id}
        return frozenset({"core_router"} if "core_router" in types else {"bras"})

    def changed_transport(self) -> None:
        self.transport_cache.clear()
        self.transport_index = None
        self.version += 1

    # -- building --------------------------------------------------------------------------

    def build(self, session: Session) -> None:
        started = time.perf_counter()
        self.reset()
        self.position = head(session)  # before reading: a change in between is applied again, not missed
        from resource_mgr.topology.follow import position_mark

        self.mark = position_mark(session, self.position)
        load_resources(self, session, None)
        paths = load_services(self, session, None)
        load_path_units(self, session, paths)
        wire_network_side(self, session)
        self.build_seconds = time.perf_counter() - started
        self.builds += 1
        self.applied = 0


# -- loading (used by the build for everything and by the follower for a few ids) ----------------

def _resource_rows(session: Session, ids: list[str] | None) -> Iterator[tuple]:
    r, d, f, x, c, s = (Resource.__table__, Device.__table__, Frame.__table__, CrossBox.__table__,
                        Cable.__table__, DuctSegment.__table__)
    stmt = (select(r.c.id, r.c.kind, r.c.parent_id, r.c.local_network_id,
                   func.coalesce(d.c.site_id, f.c.site_id, x.c.site_id), d.c.device_type, c.c.stage,
                   s.c.a_end_id, s.c.z_end_id)
            .select_from(r.outerjoin(d, d.c.id == r.c.id).outerjoin(f, f.c.id == r.c.id)
                         .outerjoin(x, x.c.id == r.c.id).outerjoin(c, c.c.id == r.c.id)
                         .outerjoin(s, s.c.id == r.c.id))
            .where(r.c.kind.in_(RESOURCE_KINDS)))
    if ids is None:
        yield from session.execute(stmt.execution_options(yield_per=20_000))
    else:
        for part in chunks(ids):
            yield from session.execute(stmt.where(r.c.id.in_(part)))


def load_resources(graph: NetworkGraph, session: Session, ids: list[str] | None) -> set[str]:
    """(Re)read resources and their containment edges; returns the ids found."""
    found, edges, cables = set(), [], []
    g = graph.g
    for rid, kind, parent, ln, site, dtype, stage, a_end, z_end in _resource_rows(session, ids):
        found.add(rid)
        n = graph.node(rid, kind)
        if ids is not None:
            for v in graph.containers(n):
                g.remove_edge(n, v)
        targets: list[str] = []
        if kind == "card" and parent:
            targets.append(parent)
        elif kind in ("device", "frame", "cross_box") and site:
            targets.append(site)
        elif kind == "duct_segment":
            targets += [e for e in (parent, a_end, z_end) if e]
        if kind == "device":
            graph.device_type[n] = dtype or ""
            graph.local_network[n] = ln
        if kind == "cable":
            graph.cable_stage[n] = stage or ""
            cables.append(rid)
        edges += [(rid, t) for t in targets]
    spans = CableSpan.__table__
    stmt = select(spans.c.cable_id, spans.c.duct_segment_id)
    rows = (session.execute(stmt.execution_options(yield_per=20_000)) if ids is None else
            (row for part in chunks(cables) for row in session.execute(stmt.where(spans.c.cable_id.in_(part)))))
    edges += list(rows)
    add = []
    for a, b in edges:
        na, nb = graph.ids.get(a), graph.ids.get(b)
        if na is None:
            continue
        if nb is None:  # an end outside the graph's kinds (a site's parent area...) or not read yet
            if ids is None:
                continue
            if not load_resources(graph, session, [b]):
                continue
            nb = graph.ids[b]
        if graph.kinds[nb] in ("manhole", "pole", "duct", "duct_segment", "site", "device"):
            add.append((na, nb))
    g.add_edges_from(add)
    return found


def _service_stmt() -> Any:
    s, cu, ad, ar = Service.__table__, Customer.__table__, Address.__table__, Resource.__table__.alias("area")
    return (select(s.c.id, s.c.product, s.c.local_network_id, s.c.number, s.c.address_id, s.c.bearer_id,
                   cu.c.name, cu.c.grade, ar.c.name)
            .select_from(s.outerjoin(cu, cu.c.id == s.c.customer_id).outerjoin(ad, ad.c.id == s.c.address_id)
                         .outerjoin(ar, ar.c.id == ad.c.area_id))
            .where(s.c.state.in_(LIVE)))


def _path_stmt() -> Any:
    su, s = ServiceUnit.__table__, Service.__table__
    return (select(su.c.service_id, su.c.unit_id).select_from(su.join(s, s.c.id == su.c.service_id))
            .where(s.c.state.in_(LIVE)))


def load_services(graph: NetworkGraph, session: Session, ids: list[str] | None) -> dict[str, list[str]]:
    """(Re)read live services (info and path ids); returns {service id: unit ids in order}. A
    service not live any more (or gone) loses its node."""
    rows, paths = [], {}
    su = ServiceUnit.__table__
    if ids is None:
        rows = list(session.execute(_service_stmt().execution_options(yield_per=20_000)))
        for sid, uid in session.execute(_path_stmt().order_by(su.c.service_id, su.c.seq)
                                        .execution_options(yield_per=50_000)):
            paths.setdefault(sid, []).append(uid)
    else:
        for part in chunks(ids):
            rows += session.execute(_service_stmt().where(Service.__table__.c.id.in_(part)))
            for sid, uid in session.execute(_path_stmt().where(su.c.service_id.in_(part))
                                            .order_by(su.c.service_id, su.c.seq)):
                paths.setdefault(sid, []).append(uid)
    graph.bearer_keys = {}
    for sid, product, ln, number, address, bearer, cname, grade, area in rows:
        n = graph.node(sid, SERVICE)
        graph.services[n] = ServiceInfo(
            id=sid, product=sys.intern(product), customer=cname, grade=sys.intern(grade or _NORMAL),
            number=number, address_id=address, area=sys.intern(area or "unknown"), local_network_id=sys.intern(ln), path=())
        if bearer:
            graph.bearer_keys[sid] = bearer
        paths.setdefault(sid, [])
    if ids is not None:
        for sid in set(ids) - set(paths):
            if sid in graph.ids:
                graph.drop(graph.ids[sid])
    return paths


def _unit_rows(session: Session, ids: Iterable[str]) -> Iterator[tuple]:
    u = Unit.__table__
    for part in chunks(sorted(ids)):
        yield from session.execute(select(u.c.id, u.c.kind, u.c.owner_id, u.c.root_id).where(u.c.id.in_(part)))


def _all_path_unit_rows(session: Session) -> Iterator[tuple]:
    u, su, s = Unit.__table__, ServiceUnit.__table__, Service.__table__
    inner = select(su.c.unit_id).join(s, s.c.id == su.c.service_id).where(s.c.state.in_(LIVE)).distinct().subquery()
    yield from session.execute(select(u.c.id, u.c.kind, u.c.owner_id, u.c.root_id)
                               .join(inner, inner.c.unit_id == u.c.id).execution_options(yield_per=50_000))


def add_units(graph: NetworkGraph, session: Session, rows: Iterable[tuple]) -> list[int]:
    """Unit nodes with their containment edge (to the owner, read if not in the graph yet)."""
    made, edges, missing = [], [], []
    for uid, kind, owner, root in rows:
        n = graph.node(uid, kind)
        made.append(n)
        for v in graph.containers(n):
            graph.g.remove_edge(n, v)
        target = owner if owner in graph.ids else None
        if target is None:
            missing.append((n, owner, root))
        else:
            edges.append((n, graph.ids[target]))
    if missing:
        load_resources(graph, session, sorted({o for _n, o, _r in missing} | {r for _n, _o, r in missing}))
        for n, owner, root in missing:
            target = graph.ids.get(owner) or graph.ids.get(root)
            if target is not None:
                edges.append((n, target))
    graph.g.add_edges_from(edges)
    for n in made:
        graph.mark_transport(n)
    return made


def load_path_units(graph: NetworkGraph, session: Session, paths: dict[str, list[str]]) -> None:
    """The build's part for services: every unit on a live path, the path edges, service links."""
    add_units(graph, session, _all_path_unit_rows(session))
    link_services(graph, session, paths)


def link_services(graph: NetworkGraph, session: Session, paths: dict[str, list[str]]) -> None:
    ids, g = graph.ids, graph.g
    missing = {u for p in paths.values() for u in p if u not in ids}
    if missing:
        add_units(graph, session, _unit_rows(session, missing))
    edges = []
    for sid, path in paths.items():
        n = ids.get(sid)
        if n is None or n not in graph.services:
            continue
        for v in list(g.succ[n]):
            g.remove_edge(n, v)
        nodes = tuple(ids[u] for u in path if u in ids)
        info = graph.services[n]
        info.path = nodes
        edges += zip(nodes, nodes[1:])
        if nodes:
            edges.append((n, nodes[0]))
    g.add_edges_from(edges)
    for sid, bearer in graph.bearer_keys.items():  # bearers last: one may be among those just read
        n, b = ids.get(sid), ids.get(bearer)
        if n in graph.services and b in graph.services:
            graph.services[n].bearer = b
            g.add_edge(n, b)
    _splitter_passes(graph, {v for p in paths.values() for v in (ids.get(u) for u in p) if v is not None})


def _splitter_passes(graph: NetworkGraph, units: Iterable[int]) -> None:
    """A splitter output may use every input of its splitter (type-B protection: two inputs)."""
    g, kinds = graph.g, graph.kinds
    edges = []
    for n in units:
        if kinds[n] not in ("splitter_out", "splitter_in"):
            continue
        root = graph.root(n)
        if root is None:
            continue
        members = [p for p in _contents(graph, root) if kinds[p] in ("splitter_out", "splitter_in")]
        ins = [p for p in members if kinds[p] == "splitter_in"]
        edges += [(o, i) for o in members if kinds[o] == "splitter_out" for i in ins]
    g.add_edges_from(edges)


def _contents(graph: NetworkGraph, resource: int) -> list[int]:
    """The units of a device, cable, box or frame (directly or on its cards)."""
    out = []
    for p in graph.g.pred[resource]:
        k = graph.kinds[p]
        if k in UNIT_KIND_SET:
            out.append(p)
        elif k == "card":
            out += [q for q in graph.g.pred[p] if graph.kinds[q] in UNIT_KIND_SET]
    return out


# -- the network side: type-B standby inputs and the transport layer -------------------------------

def _neighbour_rows(session: Session, ids: list[str]) -> Iterator[tuple]:
    """(unit id, other unit id, other kind, other owner, other root) for connections of these units."""
    c, u = Connection.__table__, Unit.__table__
    for part in chunks(ids):
        for mine, other in ((c.c.a_unit_id, c.c.z_unit_id), (c.c.z_unit_id, c.c.a_unit_id)):
            yield from session.execute(select(mine, u.c.id, u.c.kind, u.c.owner_id, u.c.root_id)
                                       .join(u, u.c.id == other).where(mine.in_(part)))


def _seed_rows(session: Session) -> Iterator[tuple]:
    u, cab = Unit.__table__, Cable.__table__
    multi = select(u.c.root_id).where(u.c.kind == "splitter_in").group_by(u.c.root_id).having(func.count() > 1)
    cols = (u.c.id, u.c.kind, u.c.owner_id, u.c.root_id)
    yield from session.execute(select(*cols).where(u.c.kind == "splitter_in", u.c.root_id.in_(multi)))
    c = Connection.__table__
    wired = or_(u.c.id.in_(select(c.c.a_unit_id)), u.c.id.in_(select(c.c.z_unit_id)))
    yield from session.execute(select(*cols).where(or_(
        u.c.kind == "uplink_port", u.c.root_id.in_(select(cab.c.id).where(cab.c.stage == "trunk"))), wired))


def wire_network_side(graph: NetworkGraph, session: Session) -> None:
    """(Re)make the network-side route edges: from every input of a multi-input splitter along its
    wiring to a head port (or a unit on a path), and the transport layer between uplink ports."""
    g, old = graph.g, graph.wired
    for src, targets in old.items():
        for t in targets:
            if g.has_edge(src, t):
                g.remove_edge(src, t)
    graph.wired = defaultdict(set)
    seeds = add_units(graph, session, list(_seed_rows(session)))
    on_path = {n for info in graph.services.values() for n in info.path}
    transport = {n for n in seeds if graph.is_transport_unit(n)}
    seen, frontier = set(seeds), list(seeds)
    while frontier:
        rows = list(_neighbour_rows(session, [graph.keys[n] for n in frontier]))
        others = {r[1]: r[1:] for r in rows if r[1] not in graph.ids}
        add_units(graph, session, others.values())
        nxt = []
        for mine, other, *_ in rows:
            a, b = graph.ids[mine], graph.ids[other]
            if graph.is_transport_unit(a) or graph.is_transport_unit(b):
                if graph.is_transport_unit(a) and graph.is_transport_unit(b):
                    transport |= {a, b}
                    _orient_transport(graph, a, b)
                    if b not in seen:
                        seen.add(b)
                        nxt.append(b)
                continue
            if graph.kinds[a] == "splitter_in" and graph.root(a) == graph.root(b):
                continue
            if a in on_path and graph.kinds[a] != "splitter_in":
                continue  # a path unit's route is its path
            graph.wired[a].add(b)
            if b not in seen and graph.kinds[b] not in HEAD_PORTS and b not in on_path:
                seen.add(b)
                nxt.append(b)
        frontier = nxt
    for device in {graph.root(n) for n in transport} - {None}:
        if graph.device_type.get(device) in TRANSPORT_DEVICES and not _is_terminal_device(graph, device):
            ports = [p for p in _contents(graph, device) if graph.kinds[p] == "uplink_port"]
            for p in ports:
                graph.wired[p].update(q for q in ports if q != p)
    g.add_edges_from((a, b) for a, bs in graph.wired.items() for b in bs)
    _splitter_passes(graph, list(seeds))
    if old:  # a wired edge taken away may also have been a path's step: put the paths' steps back
        path_edges(graph, session, list(old))
    graph.changed_transport()


def path_edges(graph: NetworkGraph, session: Session, units: list[int]) -> None:
    """Add the route edges the live paths give these units (the next unit of each path through them)."""
    su, nxt, s = ServiceUnit.__table__, ServiceUnit.__table__.alias("nxt"), Service.__table__
    stmt = (select(su.c.unit_id, nxt.c.unit_id)
            .select_from(su.join(nxt, (nxt.c.service_id == su.c.service_id) & (nxt.c.seq == su.c.seq + 1))
                         .join(s, s.c.id == su.c.service_id))
            .where(s.c.state.in_(LIVE)))
    keys = [graph.keys[n] for n in units if graph.keys[n] is not None]
    edges = []
    for part in chunks(keys):
        for a, b in session.execute(stmt.where(su.c.unit_id.in_(part)).distinct()):
            if a in graph.ids and b in graph.ids:
                edges.append((graph.ids[a], graph.ids[b]))
    graph.g.add_edges_from(edges)


def refresh_route_edges(graph: NetworkGraph, session: Session, units: Iterable[int]) -> None:
    """Make these units' route edges again from what is stored: the live paths through them, the
    network-side wiring, their splitter's inputs."""
    units = [n for n in set(units) if n in graph.g and graph.is_unit(n)]
    for n in units:
        for v in graph.route_next(n):
            graph.g.remove_edge(n, v)
        graph.g.add_edges_from((n, v) for v in graph.wired.get(n, ()))
    path_edges(graph, session, units)
    _splitter_passes(graph, units)


def _is_terminal_device(graph: NetworkGraph, device: int) -> bool:
    return graph.device_type.get(device) in graph.terminal_types(graph.local_network.get(device))


def _orient_transport(graph: NetworkGraph, a: int, b: int) -> None:
    """Transport links run both ways, except out of a head device's uplink (never into it) and into
    the route's end (never out of it)."""
    def head_side(n: int) -> bool:
        r = graph.root(n)
        return graph.kinds[n] == "uplink_port" and graph.device_type.get(r) not in TRANSPORT_DEVICES

    def end(n: int) -> bool:
        r = graph.root(n)
        return graph.kinds[n] == "uplink_port" and r is not None and _is_terminal_device(graph, r)

    if not head_side(b) and not end(a):
        graph.wired[a].add(b)
    if not head_side(a) and not end(b):
        graph.wired[b].add(a)
