"""Spatial questions behind one interface: nearest features within a distance, and features
intersecting a geometry. Distances are metres on the sphere."""
from __future__ import annotations

import math
from typing import Any, Protocol, Sequence

import shapely
from shapely import STRtree
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, literal, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from resource_mgr.geo.types import SRID

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG_LAT = math.pi * EARTH_RADIUS_M / 180


def metres_between(a: BaseGeometry, b: BaseGeometry) -> float:
    """Distance in metres between two lon/lat geometries: exact haversine for two points, a local
    equirectangular projection (good to well under 1% within a city) otherwise."""
    if a.geom_type == "Point" and b.geom_type == "Point":
        lon1, lat1, lon2, lat2 = map(math.radians, (a.x, a.y, b.x, b.y))
        h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    lat0 = math.radians((a.centroid.y + b.centroid.y) / 2)
    return float(shapely.distance(_to_metres(a, lat0), _to_metres(b, lat0)))


def length_m(line: BaseGeometry) -> float:
    """Length in metres of a lon/lat line."""
    coords = list(line.coords)
    return sum(metres_between(shapely.Point(p), shapely.Point(q)) for p, q in zip(coords, coords[1:]))


def _to_metres(geom: BaseGeometry, lat0: float) -> BaseGeometry:
    kx = M_PER_DEG_LAT * math.cos(lat0)
    return shapely.transform(geom, lambda xy: xy * [kx, M_PER_DEG_LAT])


def _degrees_for(metres: float, lat: float) -> float:
    # Widest of the two axes, so a box of this half-width contains the whole circle.
    return metres / (M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 0.01))


class SpatialQueries(Protocol):
    def nearest(
        self, session: Session, column: InstrumentedAttribute, point: BaseGeometry, *,
        within_m: float, limit: int = 10, where: Sequence[Any] = (),
    ) -> list[tuple[Any, float]]:
        """Rows whose geometry lies within `within_m` metres of `point`, nearest first, with
        the distance in metres."""

    def intersecting(
        self, session: Session, column: InstrumentedAttribute, geometry: BaseGeometry, *,
        where: Sequence[Any] = (),
    ) -> list[Any]:
        """Rows whose geometry intersects `geometry`."""


class PostGISSpatial:
    """Pushes the question down to PostGIS: a bounding-box prefilter that uses the GiST index,
    then the exact spherical distance."""

    def nearest(self, session, column, point, *, within_m, limit=10, where=()):
        pt = func.ST_SetSRID(func.ST_MakePoint(literal(point.x), literal(point.y)), SRID)
        distance = func.ST_DistanceSphere(column, pt)
        box = func.ST_Expand(pt, _degrees_for(within_m, point.y))
        stmt = (
            select(column.class_, distance.label("distance_m"))
            .where(column.op("&&")(box), distance <= within_m, *where)
            .order_by(distance)
            .limit(limit)
        )
        return [(row[0], float(row[1])) for row in session.execute(stmt)]

    def intersecting(self, session, column, geometry, *, where=()):
        geom = func.ST_GeomFromEWKB(shapely.to_wkb(shapely.set_srid(geometry, SRID), include_srid=True))
        stmt = select(column.class_).where(func.ST_Intersects(column, geom), *where)
        return list(session.scalars(stmt))


class InProcessSpatial:
    """For SQLite without SpatiaLite: candidates come from a shapely STRtree over the rows'
    geometries, exact distances from `metres_between`."""

    def _tree(self, session, column, where):
        model = column.class_
        pk = model.__mapper__.primary_key[0]
        rows = session.execute(select(pk, column).where(column.is_not(None), *where)).all()
        ids = [r[0] for r in rows]
        geoms = [r[1] for r in rows]
        return model, ids, geoms, STRtree(geoms)

    def nearest(self, session, column, point, *, within_m, limit=10, where=()):
        model, ids, geoms, tree = self._tree(session, column, where)
        if not ids:
            return []
        d = _degrees_for(within_m, point.y)
        candidates = tree.query(shapely.box(point.x - d, point.y - d, point.x + d, point.y + d))
        scored = sorted(
            (dist, ids[i]) for i in candidates if (dist := metres_between(point, geoms[i])) <= within_m
        )[:limit]
        objs = {o.__mapper__.primary_key_from_instance(o)[0]: o for o in
                session.scalars(select(model).where(model.__mapper__.primary_key[0].in_([i for _, i in scored])))}
        return [(objs[i], dist) for dist, i in scored]

    def intersecting(self, session, column, geometry, *, where=()):
        model, ids, geoms, tree = self._tree(session, column, where)
        if not ids:
            return []
        hits = [ids[i] for i in tree.query(geometry, predicate="intersects")]
        if not hits:
            return []
        return list(session.scalars(select(model).where(model.__mapper__.primary_key[0].in_(hits))))


def spatial_for(dialect_name: str) -> SpatialQueries:
    return PostGISSpatial() if dialect_name == "postgresql" else InProcessSpatial()
