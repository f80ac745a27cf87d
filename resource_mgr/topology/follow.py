"""Keeping a process's graph current from the change feed (resource_mgr.changes).

On every use the graph reads the history rows after its last position, in position order, and
applies them: the services, units, resources and connections they name are read again from the
database and replaced in the graph. Rows that change only a unit's state (occupy, release, lock...)
matter through the service they name. A bulk import (or more rows than `rebuild_rows`) builds the
graph again instead, the one time reading everything is cheaper.
"""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resource_mgr.changes.services import changes_since
from resource_mgr.customers.models import Service
from resource_mgr.inventory.models import Connection
from resource_mgr.occupancy.models import History
from resource_mgr.topology.graph import RESOURCE_KINDS, TRANSPORT_DEVICES, UNIT_KIND_SET, NetworkGraph, chunks
from resource_mgr.topology.load import (
    add_units, link_services, load_resources, load_services, refresh_route_edges, unit_rows, wire_network_side,
)

STATE_ACTIONS = frozenset({"preoccupy", "release_preoccupation", "occupy", "release", "expire", "end_quarantine",
                           "lock", "unlock", "mark_faulty", "repair", "reserve", "unreserve"})
IGNORED = frozenset({"reservation", "user", "api_token", "naming_rule", "device_template", "local_network",
                     "subscription", "number", "number_pool", "number_segment", "address", "area"})
NETWORK_SIDE = frozenset({"splitter_in", "uplink_port"})


class Touched:
    def __init__(self) -> None:
        self.services: set[str] = set()
        self.units: set[str] = set()
        self.resources: set[str] = set()
        self.connection_units: set[str] = set()
        self.rebuild = False
        self.rows = 0
        self.last_mark: tuple | None = None  # the history row at the new position


def collect(session: Session, graph: NetworkGraph, rebuild_rows: int) -> tuple[Touched, int]:
    touched, position = Touched(), graph.position
    while True:
        page = changes_since(session, position, limit=5000)
        for h in page.changes:
            touched.rows += 1
            touched.last_mark = (h.id, h.resource_id, h.action)
            if h.service_id:
                touched.services.add(h.service_id)
            kind = h.resource_kind
            if h.action == "import" or kind == "bulk_import":
                touched.rebuild = True
            elif kind == "service":
                touched.services.add(h.resource_id)
            elif kind == "connection":
                for side in (h.before or {}, h.after or {}):
                    touched.connection_units.update(side.get(k) for k in ("a_unit_id", "z_unit_id") if side.get(k))
                touched.resources.add(h.resource_id)  # a connection id: not a resource, harmless
            elif kind in UNIT_KIND_SET:
                if h.action not in STATE_ACTIONS:
                    touched.units.add(h.resource_id)
            elif kind in RESOURCE_KINDS:
                touched.resources.add(h.resource_id)
        position = page.last_position
        if touched.rows > rebuild_rows:
            touched.rebuild = True
        if not page.more or touched.rebuild:
            break
    return touched, position


def _connection_ends(session: Session, ids: set[str], touched: Touched) -> None:
    """Connection rows without their ends in the history (written before the ends were logged)."""
    c = Connection.__table__
    for part in chunks(sorted(ids)):
        for a, z in session.execute(select(c.c.a_unit_id, c.c.z_unit_id).where(c.c.id.in_(part))):
            touched.connection_units.update((a, z))


def apply(session: Session, graph: NetworkGraph, touched: Touched) -> None:
    network_side = False
    resources = {r for r in touched.resources if r not in graph.ids or not graph.is_unit(graph.ids[r])}
    _connection_ends(session, resources, touched)
    if resources:
        found = load_resources(graph, session, sorted(resources))
        for rid in resources - found:
            n = graph.ids.get(rid)
            if n is not None and graph.is_resource(n):
                for p in graph.units_in(n):
                    graph.drop(p)
                graph.drop(n)
                network_side = True
        for rid in found:
            n = graph.ids[rid]
            if graph.device_type.get(n) in TRANSPORT_DEVICES or graph.cable_stage.get(n) == "trunk":
                network_side = True
        graph.changed_transport()
    units = touched.units | touched.connection_units
    if units:
        rows = list(unit_rows(session, units))
        for _id, kind, _owner, root in rows:
            if kind in NETWORK_SIDE or root in graph.ids and graph.cable_stage.get(graph.ids[root]) == "trunk":
                network_side = True
        known = {r[0] for r in rows}
        for uid in units - known:
            if uid in graph.ids:
                graph.drop(graph.ids[uid])
                network_side = True
        wired = set(graph.wired) | {t for ts in graph.wired.values() for t in ts}
        rows = [r for r in rows if r[0] in graph.ids or r[1] in NETWORK_SIDE]
        made = add_units(graph, session, rows)
        if any(n in wired for n in made) or any(graph.is_transport_unit(n) for n in made):
            network_side = True
        refresh_route_edges(graph, session, made)
    if touched.services:
        ids = set(touched.services)
        s = Service.__table__
        for part in chunks(sorted(ids)):  # riders ride along (their rows are not always logged)
            ids.update(session.scalars(select(s.c.id).where(s.c.bearer_id.in_(part))))
        old = {n for sid in ids if sid in graph.ids and graph.ids[sid] in graph.services
               for n in graph.services[graph.ids[sid]].path}
        paths = load_services(graph, session, sorted(ids))
        link_services(graph, session, paths)
        new = {graph.ids[u] for p in paths.values() for u in p if u in graph.ids}
        refresh_route_edges(graph, session, old | new)
    if network_side:
        wire_network_side(graph, session)


def follow(session: Session, graph: NetworkGraph, rebuild_rows: int) -> None:
    """Bring the graph up to every change committed before now. With nothing new that is one
    query on the position index: the highest position and the row at the graph's."""
    h = History.__table__
    newest = select(func.coalesce(func.max(h.c.position), 0)).scalar_subquery()
    if graph.position:
        row = session.execute(select(h.c.id, h.c.resource_id, h.c.action, newest)
                              .where(h.c.position == graph.position)).first()
        if row is None or tuple(row[:3]) != graph.mark:
            graph.build(session)  # the feed was emptied or replaced behind the graph (a wiped database)
            return
        if row[3] == graph.position:
            return
    elif not session.scalar(select(newest)):
        return
    touched, position = collect(session, graph, rebuild_rows)
    if touched.rebuild:
        graph.build(session)
        return
    if touched.rows:
        graph.forget_answers()
        apply(session, graph, touched)
        graph.applied += touched.rows
        graph.mark = touched.last_mark
    graph.position = position


def position_mark(session: Session, position: int) -> tuple | None:
    """What the history row at a position is: the same row still there means the same feed (ids and
    positions start again from 1 in an emptied database, so the row's subject is compared too)."""
    if not position:
        return None
    row = session.execute(select(History.id, History.resource_id, History.action)
                          .where(History.position == position)).first()
    return tuple(row) if row is not None else None


__all__ = ["follow", "position_mark"]
