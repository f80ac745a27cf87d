"""Reading the graph from the database: the build (everything, from streamed rows) and the loaders
the follower reuses for a few ids (resource_mgr.topology.follow).

The build reads tuples straight from the driver (a server-side cursor on PostgreSQL), a page at a
time, and turns each id into its integer at once: resources and their containment, live services,
the units on their paths, the paths, then folds each service's exclusive customer-side units
(graph.py) before any of them becomes a networkx node, and last the network side.
"""
from __future__ import annotations

import gc
import itertools
import sys
import time
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from resource_mgr.changes.services import head
from resource_mgr.customers.models import Customer, Service, ServiceUnit
from resource_mgr.inventory.models import (
    Address, Cable, CableSpan, Connection, CrossBox, Device, DuctSegment, Frame, Resource,
)
from resource_mgr.occupancy.models import Unit
from resource_mgr.topology.graph import (
    _NORMAL, FOLDED, HEAD_PORTS, LIVE, RESOURCE, SERVICE, SERVICE_NODE, TRANSPORT_DEVICES, UNIT,
    NetworkGraph, ServiceInfo, chunks, contents, is_terminal_device,
)

PAGE = 20_000
intern = sys.intern
_cursor_names = itertools.count(1)
_CONTAINER_KINDS = frozenset({"manhole", "pole", "duct", "duct_segment", "site", "device"})
_NEVER_FOLDED = HEAD_PORTS | {"splitter_in", "uplink_port"}


def stream(session: Session, stmt: Any) -> Iterator[tuple]:
    """The statement's rows as plain tuples from the driver, a page at a time (no row objects):
    a server-side cursor on PostgreSQL, the cursor itself on SQLite."""
    conn = session.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    raw = conn.connection.dbapi_connection
    postgres = conn.dialect.name == "postgresql"
    cur = raw.cursor(name=f"rmgr_topology_{next(_cursor_names)}") if postgres else raw.cursor()
    try:
        if postgres:
            cur.itersize = PAGE
        cur.execute(sql)
        while True:
            rows = cur.fetchmany(PAGE)
            if not rows:
                break
            yield from rows
    finally:
        cur.close()


# -- the build -----------------------------------------------------------------------------------

def build(graph: NetworkGraph, session: Session) -> None:
    """Read the whole graph. The cyclic garbage collector is paused while it is made (it would
    walk the growing heap again and again) and what it made is then frozen out of its reach
    (gc.freeze): the graph holds no cycles to collect, and a full collection walking its millions
    of objects would stall an impact answer for seconds."""
    paused = gc.isenabled()
    gc.disable()
    try:
        if graph.builds:  # a rebuild: let a collection see the old graph once before freezing again
            graph.reset()
            gc.unfreeze()
            gc.collect()
        _build(graph, session)
    finally:
        gc.freeze()
        if paused:
            gc.enable()


def _build(graph: NetworkGraph, session: Session) -> None:
    started = time.perf_counter()
    graph.reset()
    if session.get_bind().dialect.name == "postgresql":  # compiling each big read costs more than it saves
        session.execute(text("SET LOCAL jit = off"))
    graph.position = head(session)  # before reading: a change in between is applied again, not missed
    from resource_mgr.topology.follow import position_mark

    graph.mark = position_mark(session, graph.position)
    load_resources(graph, session, None)
    _build_services(graph, session)
    wire_network_side(graph, session)
    graph.build_seconds = time.perf_counter() - started
    graph.builds += 1
    graph.applied = 0


def _build_services(graph: NetworkGraph, session: Session) -> None:
    """Live services, the units on their paths, the paths; the exclusive customer-side units are
    folded into their service, the others become networkx nodes with their route edges."""
    ids, keys, g = graph.ids, graph.keys, graph.g
    bearers: list[tuple[int, str]] = []
    # the id tables filled inline (graph.new_id per row is a fifth of the build's Python time)
    add_key, add_kind, add_flag, services = keys.append, graph.kinds.append, graph.flag.append, graph.services
    service_kind = sys.intern(SERVICE)
    for sid, product, ln, number, address, bearer, cname, grade, area in stream(session, _service_stmt()):
        n = ids[sid] = len(keys)
        add_key(sid)
        add_kind(service_kind)
        add_flag(SERVICE_NODE)
        services[n] = ServiceInfo(sid, intern(product), cname, intern(grade or _NORMAL), number, address,
                                  intern(area or "unknown"), intern(ln), ())
        if bearer:
            bearers.append((n, bearer))
    # the units on live paths: ids first (not networkx nodes yet), their owner beside
    owner_of: dict[int, int] = {}
    missing: list[tuple[int, str, str]] = []
    for uid, kind, owner, root in stream(session, _path_units_stmt()):
        n = ids[uid] = len(keys)
        add_key(uid)
        add_kind(intern(kind))
        add_flag(UNIT)
        o = ids.get(owner)
        if o is None:
            o = ids.get(root)
        if o is None:
            missing.append((n, owner, root))
        else:
            owner_of[n] = o
    if missing:
        load_resources(graph, session, sorted({o for _n, o, _r in missing} | {r for _n, _o, r in missing}))
        for n, owner, root in missing:
            o = ids.get(owner) or ids.get(root)
            if o is not None:
                owner_of[n] = o
    uses = array("I", bytes(4 * len(keys)))
    current, path, s = None, [], None

    def close() -> None:
        if s is not None:
            services[s].path = tuple(path)
            for u in path:
                uses[u] += 1

    for sid, uid in stream(session, _path_stmt().order_by(ServiceUnit.__table__.c.service_id,
                                                          ServiceUnit.__table__.c.seq)):
        if sid != current:
            close()
            current, path, s = sid, [], ids.get(sid)
        u = ids.get(uid)
        if u is not None:
            path.append(u)
    close()
    multi = {ids[r] for (r,) in stream(session, _multi_input_stmt()) if r in ids}
    folded: set[int] = set()
    for s, info in services.items():
        count = _foldable(graph, info.path, uses, owner_of, multi)
        if count:
            info.fold = count
            for u, owner in zip(info.path[:count], (owner_of[u] for u in info.path[:count])):
                graph.flag[u] = FOLDED
                graph.folded_owner[u] = owner
                graph.folded_by[u] = s
                folded.add(u)
                graph.folded_units.setdefault(owner, []).append(u)
    del uses
    unit_nodes = [u for u in owner_of if u not in folded]
    g.add_nodes_from(unit_nodes)
    g.add_edges_from((u, owner_of[u]) for u in unit_nodes)
    g.add_nodes_from(n for n in range(len(keys)) if graph.flag[n] == UNIT and n not in folded)
    del owner_of
    edges = set()
    for s, info in services.items():
        p = info.path[info.fold:]
        edges.update(zip(p, p[1:]))
    g.add_edges_from(edges)
    del edges
    for n, bearer in bearers:
        b = ids.get(bearer)
        if b in services:
            services[n].bearer = b
    for s in services:
        graph.attach(s)
    for n in g:
        if graph.flag[n] == UNIT:
            graph.mark_transport(n)
    splitter_passes(graph, [n for n in g if graph.kinds[n] in ("splitter_out", "splitter_in")])


def _foldable(graph: NetworkGraph, path: tuple[int, ...], uses: array, owner_of: dict[int, int],
              multi: set[int]) -> int:
    """How many units at the customer end of a path have one way on, this path's next unit: used
    by this service alone, not a head port, splitter input or uplink, not a trunk core, and a
    splitter output only of a splitter with one input, the next unit. At least one unit stays."""
    kinds = graph.kinds
    count = 0
    for i in range(len(path) - 1):
        u = path[i]
        kind = kinds[u]
        if uses[u] != 1 or kind in _NEVER_FOLDED or u not in owner_of:
            break
        owner = owner_of[u]
        if kind == "core" and graph.cable_stage.get(owner) == "trunk":
            break
        if kind == "splitter_out":
            nxt = path[i + 1]
            if owner in multi or kinds[nxt] != "splitter_in" or owner_of.get(nxt) != owner:
                break
        count += 1
    return count


def _info(sid: str, product: str, ln: str, number: str | None, address: str | None, cname: str | None,
          grade: str | None, area: str | None) -> ServiceInfo:
    return ServiceInfo(id=sid, product=sys.intern(product), customer=cname, grade=sys.intern(grade or _NORMAL),
                       number=number, address_id=address, area=sys.intern(area or "unknown"),
                       local_network_id=sys.intern(ln), path=())


# -- loading (the build for everything, the follower for a few ids) --------------------------------

def _resource_stmt() -> Any:
    r, d, f, x, c, s = (Resource.__table__, Device.__table__, Frame.__table__, CrossBox.__table__,
                        Cable.__table__, DuctSegment.__table__)
    from resource_mgr.topology.graph import RESOURCE_KINDS

    return (select(r.c.id, r.c.kind, r.c.parent_id, r.c.local_network_id,
                   func.coalesce(d.c.site_id, f.c.site_id, x.c.site_id), d.c.device_type, c.c.stage,
                   s.c.a_end_id, s.c.z_end_id)
            .select_from(r.outerjoin(d, d.c.id == r.c.id).outerjoin(f, f.c.id == r.c.id)
                         .outerjoin(x, x.c.id == r.c.id).outerjoin(c, c.c.id == r.c.id)
                         .outerjoin(s, s.c.id == r.c.id))
            .where(r.c.kind.in_(RESOURCE_KINDS)))


def load_resources(graph: NetworkGraph, session: Session, ids: list[str] | None) -> set[str]:
    """(Re)read resources and their containment edges; returns the ids found."""
    found, edges, cables = set(), [], []
    g = graph.g
    if ids is None:
        rows: Iterable[tuple] = stream(session, _resource_stmt())
    else:
        rows = (row for part in chunks(ids) for row in session.execute(_resource_stmt().where(
            Resource.__table__.c.id.in_(part))))
    for rid, kind, parent, ln, site, dtype, stage, a_end, z_end in rows:
        found.add(rid)
        n = graph.node(rid, kind)
        if ids is not None:
            for v in graph.containers(n):
                g.remove_edge(n, v)
        if kind == "card":
            if parent:
                edges.append((rid, parent))
        elif kind in ("device", "frame", "cross_box"):
            if site:
                edges.append((rid, site))
        elif kind == "duct_segment":
            edges += [(rid, e) for e in (parent, a_end, z_end) if e]
        if kind == "device":
            graph.device_type[n] = dtype or ""
            graph.local_network[n] = ln
            graph.terminal.clear()
        if kind == "cable":
            graph.cable_stage[n] = stage or ""
            cables.append(rid)
    spans = CableSpan.__table__
    stmt = select(spans.c.cable_id, spans.c.duct_segment_id)
    if ids is None:
        edges += stream(session, stmt)
    else:
        edges += (row for part in chunks(cables) for row in session.execute(stmt.where(spans.c.cable_id.in_(part))))
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
        if graph.kinds[nb] in _CONTAINER_KINDS:
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


def _path_units_stmt() -> Any:
    u, su, s = Unit.__table__, ServiceUnit.__table__, Service.__table__
    inner = select(su.c.unit_id).join(s, s.c.id == su.c.service_id).where(s.c.state.in_(LIVE)).distinct().subquery()
    return select(u.c.id, u.c.kind, u.c.owner_id, u.c.root_id).join(inner, inner.c.unit_id == u.c.id)


def _multi_input_stmt() -> Any:
    u = Unit.__table__
    return select(u.c.root_id).where(u.c.kind == "splitter_in").group_by(u.c.root_id).having(func.count() > 1)


def load_services(graph: NetworkGraph, session: Session, ids: list[str]) -> dict[str, list[str]]:
    """(Re)read these live services (info and path ids); returns {service id: unit ids in order}.
    A service not live any more (or gone) leaves the graph. Their folded units are unfolded first."""
    rows, paths = [], {}
    su = ServiceUnit.__table__
    for part in chunks(ids):
        rows += session.execute(_service_stmt().where(Service.__table__.c.id.in_(part)))
        for sid, uid in session.execute(_path_stmt().where(su.c.service_id.in_(part))
                                        .order_by(su.c.service_id, su.c.seq)):
            paths.setdefault(sid, []).append(uid)
    graph.bearer_keys = {}
    for sid, product, ln, number, address, bearer, cname, grade, area in rows:
        n = graph.node(sid, SERVICE)
        old = graph.services.get(n)
        if old is not None:
            graph.unfold(n)
            graph.detach(n)
        graph.services[n] = _info(graph.keys[n], product, ln, number, address, cname, grade, area)
        if bearer:
            graph.bearer_keys[sid] = bearer
        paths.setdefault(sid, [])
    for sid in set(ids) - set(paths):
        if sid in graph.ids:
            graph.drop(graph.ids[sid])
    return paths


def unit_rows(session: Session, ids: Iterable[str]) -> Iterator[tuple]:
    u = Unit.__table__
    for part in chunks(sorted(ids)):
        yield from session.execute(select(u.c.id, u.c.kind, u.c.owner_id, u.c.root_id).where(u.c.id.in_(part)))


def add_units(graph: NetworkGraph, session: Session, rows: Iterable[tuple]) -> list[int]:
    """Unit nodes with their containment edge (to the owner, read if not in the graph yet); a
    folded one is unfolded (with its service's other folded units) first."""
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


def link_services(graph: NetworkGraph, session: Session, paths: dict[str, list[str]]) -> None:
    """The follower's part: these (unfolded, detached) services' paths, their route edges, their
    bearers; a unit another service had folded is unfolded first."""
    ids, g = graph.ids, graph.g
    missing = {u for p in paths.values() for u in p if u not in ids}
    for p in paths.values():
        for u in p:
            n = ids.get(u)
            if n is not None and graph.flag[n] == FOLDED:
                graph.unfold(graph.folded_by[n])
    if missing:
        add_units(graph, session, unit_rows(session, missing))
    edges = []
    linked = []
    for sid, path in paths.items():
        n = ids.get(sid)
        if n is None or n not in graph.services:
            continue
        nodes = tuple(ids[u] for u in path if u in ids)
        info = graph.services[n]
        info.path, info.fold, info.bearer = nodes, 0, None
        edges += zip(nodes, nodes[1:])
        linked.append(n)
    g.add_edges_from(edges)
    for sid, bearer in graph.bearer_keys.items():  # bearers last: one may be among those just read
        n, b = ids.get(sid), ids.get(bearer)
        if n in graph.services and b in graph.services:
            graph.services[n].bearer = b
    for n in linked:
        graph.attach(n)
    splitter_passes(graph, {v for p in paths.values() for v in (ids.get(u) for u in p) if v is not None})


def splitter_passes(graph: NetworkGraph, units: Iterable[int]) -> None:
    """A splitter output may use every input of its splitter (type-B protection: two inputs)."""
    g, kinds, flag = graph.g, graph.kinds, graph.flag
    edges, roots = [], set()
    for n in units:
        if flag[n] != UNIT or kinds[n] not in ("splitter_out", "splitter_in"):
            continue
        root = graph.root(n)
        if root is not None:
            roots.add(root)
    for root in roots:
        members = [p for p in contents(graph, root) if kinds[p] in ("splitter_out", "splitter_in")]
        ins = [p for p in members if kinds[p] == "splitter_in"]
        if ins:
            edges += [(o, i) for o in members if kinds[o] == "splitter_out" for i in ins]
    g.add_edges_from(edges)


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
    cols = (u.c.id, u.c.kind, u.c.owner_id, u.c.root_id)
    yield from session.execute(select(*cols).where(u.c.kind == "splitter_in", u.c.root_id.in_(_multi_input_stmt())))
    c = Connection.__table__
    # correlated EXISTS probes of the two connection indexes: `id IN (SELECT a_unit_id ...) OR ...`
    # cannot become a semi-join, and PostgreSQL ran it as a scan of connection per unit (> 5 min at M)
    wired = or_(select(c.c.id).where(c.c.a_unit_id == u.c.id).exists(),
                select(c.c.id).where(c.c.z_unit_id == u.c.id).exists())
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
        for _mine, other, *_ in rows:  # a wire to a folded unit: it has another way on now
            b = graph.ids[other]
            if graph.flag[b] == FOLDED:
                graph.unfold(graph.folded_by[b])
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
        if graph.device_type.get(device) in TRANSPORT_DEVICES and not is_terminal_device(graph, device):
            ports = [p for p in contents(graph, device) if graph.kinds[p] == "uplink_port"]
            for p in ports:
                graph.wired[p].update(q for q in ports if q != p)
    g.add_edges_from((a, b) for a, bs in graph.wired.items() for b in bs)
    splitter_passes(graph, list(seeds))
    if old:  # a wired edge taken away may also have been a path's step: put the paths' steps back
        path_edges(graph, session, [n for n in old if graph.keys[n] is not None])
    graph.changed_transport()


def path_edges(graph: NetworkGraph, session: Session, units: list[int]) -> None:
    """Add the route edges the live paths give these units (the next unit of each path through them)."""
    su, nxt, s = ServiceUnit.__table__, ServiceUnit.__table__.alias("nxt"), Service.__table__
    stmt = (select(su.c.unit_id, nxt.c.unit_id)
            .select_from(su.join(nxt, (nxt.c.service_id == su.c.service_id) & (nxt.c.seq == su.c.seq + 1))
                         .join(s, s.c.id == su.c.service_id))
            .where(s.c.state.in_(LIVE)))
    keys = [graph.keys[n] for n in units if graph.keys[n] is not None and graph.flag[n] != FOLDED]
    edges = []
    flag = graph.flag
    for part in chunks(keys):
        for a, b in session.execute(stmt.where(su.c.unit_id.in_(part)).distinct()):
            na, nb = graph.ids.get(a), graph.ids.get(b)
            if na is not None and nb is not None and flag[nb] != FOLDED and flag[na] != RESOURCE:
                edges.append((na, nb))
    graph.g.add_edges_from(edges)


def refresh_route_edges(graph: NetworkGraph, session: Session, units: Iterable[int]) -> None:
    """Make these units' route edges again from what is stored: the live paths through them, the
    network-side wiring, their splitter's inputs."""
    units = [n for n in set(units) if n in graph.g and graph.is_unit(n) and graph.flag[n] != FOLDED]
    for n in units:
        for v in graph.route_next(n):
            graph.g.remove_edge(n, v)
        graph.g.add_edges_from((n, v) for v in graph.wired.get(n, ()))
    path_edges(graph, session, units)
    splitter_passes(graph, units)


def _orient_transport(graph: NetworkGraph, a: int, b: int) -> None:
    """Transport links run both ways, except out of a head device's uplink (never into it) and into
    the route's end (never out of it)."""
    def head_side(n: int) -> bool:
        r = graph.root(n)
        return graph.kinds[n] == "uplink_port" and graph.device_type.get(r) not in TRANSPORT_DEVICES

    def end(n: int) -> bool:
        r = graph.root(n)
        return graph.kinds[n] == "uplink_port" and r is not None and is_terminal_device(graph, r)

    if not head_side(b) and not end(a):
        graph.wired[a].add(b)
    if not head_side(a) and not end(b):
        graph.wired[b].add(a)
