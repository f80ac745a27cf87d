"""Which boxes serve an address, and where a point is.

Coverage rows link an address node (a building or a unit, as operators keep them) to the boxes
that serve it; a room or floor inherits the coverage of the nearest address above it that has
coverage of that medium, which overrides everything higher up. An address with no coverage in
its tree is served by the boxes of that medium within the drop-length limit of its point
(settings `addresses_drop_limit_<medium>_m`), nearest first.

Nearest-neighbour search: PostGIS KNN (`<->` on the GiST index, inside a bounding box of the
limit) on PostgreSQL; on SQLite an STRtree per table and medium kept per process and rebuilt
when the change feed head, the number of rows or their highest id moves (`_PointIndex`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import shapely
from shapely import STRtree
from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from resource_mgr.config import Settings
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.geo.spatial import _degrees_for, metres_between
from resource_mgr.geo.types import SRID
from resource_mgr.inventory.models import Address, Coverage, DistributionBox, Resource, Site
from resource_mgr.addresses.tree import ancestors
from resource_mgr.states import ResourceStatus

Medium = Literal["fibre", "copper"]
MEDIA = ("fibre", "copper")


@dataclass(frozen=True)
class ServingBox:
    box_id: str
    name: str
    distance_m: float | None
    via: Literal["coverage", "nearby"]


def drop_limit_m(medium: str, settings: Settings) -> float:
    return {"fibre": settings.addresses_drop_limit_fibre_m, "copper": settings.addresses_drop_limit_copper_m}[medium]


def serving_boxes(session: Session, address_id: str, *, medium: Medium, settings: Settings,
                  limit: int = 10, chain: list[str] | None = None) -> list[ServingBox]:
    """`chain`: the address's ancestors (tree.ancestors) when the caller has them already."""
    if medium not in MEDIA:
        raise Invalid(f"medium must be one of {', '.join(MEDIA)}", field="medium")
    chain = ancestors(session, address_id) if chain is None else chain
    rows = session.execute(
        select(Coverage.address_id, DistributionBox.id, DistributionBox.name, DistributionBox.status,
               Coverage.distance_m)
        .join(DistributionBox, DistributionBox.id == Coverage.box_id)
        .where(Coverage.address_id.in_(chain), DistributionBox.medium == medium)).all()
    by_address: dict[str, list] = {}
    for r in rows:
        by_address.setdefault(r[0], []).append(r)
    for node in chain:  # self first: the nearest node with coverage of this medium decides
        if node in by_address:
            found = [ServingBox(r[1], r[2], r[4], "coverage") for r in by_address[node]
                     if r[3] == ResourceStatus.IN_SERVICE]
            if found:
                found.sort(key=lambda b: (b.distance_m is None, b.distance_m or 0.0, b.name))
                return found[:limit]
            # Only boxes out of service (planned, retired) cover it: as if it had no coverage,
            # so the next address up decides.
    address = session.get(Address, address_id)
    if address is None or address.location is None:
        return []
    p = address.location
    return nearest_boxes(session, (p.x, p.y), medium=medium, max_m=drop_limit_m(medium, settings),
                         local_network_ids={address.local_network_id}, limit=limit)


def nearest_boxes(session: Session, point: tuple[float, float], *, medium: Medium, max_m: float,
                  local_network_ids: set[str] | None, limit: int = 10) -> list[ServingBox]:
    """In-service boxes of `medium` within `max_m` metres of `point` (lon, lat), nearest first,
    in those local networks (None: all)."""
    if medium not in MEDIA:
        raise Invalid(f"medium must be one of {', '.join(MEDIA)}", field="medium")
    lon, lat = float(point[0]), float(point[1])
    where = [DistributionBox.medium == medium, DistributionBox.status == ResourceStatus.IN_SERVICE]
    if local_network_ids is not None:
        where.append(DistributionBox.local_network_id.in_(local_network_ids))
    if session.get_bind().dialect.name == "postgresql":
        hits = _knn_postgis(session, DistributionBox.location, lon, lat, max_m, limit, where,
                            (DistributionBox.id, DistributionBox.name))
    else:
        ids = _POINTS.within(session, DistributionBox.__table__, medium, lon, lat, max_m)
        found = {r[0]: r[1] for r in session.execute(
            select(DistributionBox.id, DistributionBox.name).where(DistributionBox.id.in_(list(ids)), *where))}
        hits = sorted(((ids[i], i, found[i]) for i in found), key=lambda h: (h[0], h[2]))[:limit]
        hits = [(i, name, d) for d, i, name in hits]
    return [ServingBox(i, name, round(d, 1), "nearby") for i, name, d in hits]


def _knn_postgis(session, column, lon, lat, max_m, limit, where, cols):
    """KNN by `<->` (GiST index order, in degrees) inside the bounding box of the limit, then the
    exact spherical distance: a few more candidates than asked, since degree order is not
    quite metre order away from the equator."""
    pt = func.ST_SetSRID(func.ST_MakePoint(literal(lon), literal(lat)), SRID)
    distance = func.ST_DistanceSphere(column, pt)
    stmt = (select(*cols, distance.label("d"))
            .where(column.op("&&")(func.ST_Expand(pt, _degrees_for(max_m, lat))), *where)
            .order_by(column.op("<->")(pt)).limit(limit * 4 + 16))
    rows = [(*r[:-1], float(r[-1])) for r in session.execute(stmt) if float(r[-1]) <= max_m]
    rows.sort(key=lambda r: (r[-1], r[1] if len(r) > 2 else ""))
    return rows[:limit]


class _PointIndex:
    """Per process, per database, table and medium: an STRtree of the rows' points (SQLite, which
    has no spatial index of its own). Rebuilt when the change feed head, the row count or the
    highest id moves: imports and logged inventory writes move the head, added or removed rows
    the count or the highest id (ids grow with time). A point moved by a write that logs no
    history is seen after the next logged change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trees: dict[tuple, tuple] = {}

    def _get(self, session: Session, table, medium: str | None):
        from resource_mgr.changes.services import head
        where = [table.c.medium == medium] if medium else []
        n, top = session.execute(select(func.count(), func.max(table.c.id)).select_from(table).where(*where)).one()
        stamp = (head(session), n, top)
        key = (str(session.get_bind().url), table.name, medium)
        with self._lock:
            cached = self._trees.get(key)
        if cached is None or cached[0] != stamp:
            rows = session.execute(select(table.c.id, table.c.location)
                                   .where(table.c.location.is_not(None), *where)).all()
            ids, geoms = [r[0] for r in rows], [r[1] for r in rows]
            cached = (stamp, ids, geoms, STRtree(geoms) if geoms else None)
            with self._lock:
                self._trees[key] = cached
        return cached[1:]

    def within(self, session: Session, table, medium: str | None, lon: float, lat: float,
               max_m: float) -> dict[str, float]:
        """id → metres for every row within `max_m` of the point."""
        ids, geoms, tree = self._get(session, table, medium)
        if tree is None:
            return {}
        p, d = shapely.Point(lon, lat), _degrees_for(max_m, lat)
        out = {}
        for i in tree.query(shapely.box(lon - d, lat - d, lon + d, lat + d)):
            if (dist := metres_between(p, geoms[i])) <= max_m:
                out[ids[i]] = dist
        return out

    def nearest(self, session: Session, table, lon: float, lat: float, max_m: float) -> tuple[str, float] | None:
        ids, geoms, tree = self._get(session, table, None)
        if tree is None:
            return None
        p = shapely.Point(lon, lat)
        found = tree.query_nearest(p, max_distance=_degrees_for(max_m, lat))
        best = min(((metres_between(p, geoms[i]), ids[i]) for i in found), default=None)
        return (best[1], best[0]) if best and best[0] <= max_m else None


_POINTS = _PointIndex()
_LEVEL_ORDER = {"building": 0, "unit": 1, "floor": 2, "room": 3, "street": 4}


def resolve_point(session: Session, point: tuple[float, float], *, local_network_ids: set[str] | None,
                  settings: Settings | None = None) -> Address | None:
    """The nearest standard address to `point` within `addresses_resolve_point_m` (~100 m), in
    those local networks. A point does not say which room: of the addresses at the nearest spot
    (within a metre of it) the top one is taken, a building or unit before the rooms inside."""
    max_m = (settings or Settings()).addresses_resolve_point_m
    lon, lat = float(point[0]), float(point[1])
    where = [] if local_network_ids is None else [Address.local_network_id.in_(local_network_ids)]
    if session.get_bind().dialect.name == "postgresql":
        rows = _knn_postgis(session, Address.location, lon, lat, max_m, 50, where, (Address.id, Address.name))
        hits = {r[0]: r[-1] for r in rows}
    else:
        hits = _POINTS.within(session, Address.__table__, None, lon, lat, max_m)
    if not hits:
        return None
    near = sorted(hits.items(), key=lambda h: h[1])[:200]
    found = list(session.scalars(select(Address).where(Address.id.in_([i for i, _ in near]), *where)))
    if not found:
        return None
    d0 = min(hits[a.id] for a in found)
    return min((a for a in found if hits[a.id] <= d0 + 1.0),
               key=lambda a: (_LEVEL_ORDER[a.level], len(a.name), a.id))


def local_network_of_point(session: Session, point: tuple[float, float], *,
                           settings: Settings | None = None) -> str | None:
    """The local network id of the nearest address, else the nearest site, within
    `addresses_local_network_radius_m` of the point; None when nothing is that near."""
    max_m = (settings or Settings()).addresses_local_network_radius_m
    lon, lat = float(point[0]), float(point[1])
    for model in (Address, Site):
        if session.get_bind().dialect.name == "postgresql":
            rows = _knn_postgis(session, model.location, lon, lat, max_m, 1, [], (model.id, model.name))
            hit = rows[0][0] if rows else None
        else:
            found = _POINTS.nearest(session, model.__table__, lon, lat, max_m)
            hit = found[0] if found else None
        if hit:
            return session.scalar(select(Resource.local_network_id).where(Resource.id == hit))
    return None


def address_or_404(session: Session, address_id: str, local_network_ids: set[str] | None) -> Address:
    address = session.get(Address, address_id)
    if address is None or (local_network_ids is not None and address.local_network_id not in local_network_ids):
        raise NotFound(f"no address {address_id}", field="address_id")
    return address


