from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry
from sqlalchemy import LargeBinary, event
from sqlalchemy.orm import Mapper
from sqlalchemy.types import TypeDecorator, UserDefinedType

from resource_mgr.errors import Invalid

SRID = 4326
KINDS = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon", "GEOMETRY": None}


class _PostGISGeometry(UserDefinedType):
    cache_ok = True

    def __init__(self, geometry_type: str) -> None:
        self.geometry_type = geometry_type

    def get_col_spec(self, **kw: Any) -> str:
        return f"geometry({self.geometry_type},{SRID})"


class Geometry(TypeDecorator):
    """A shapely geometry in lon/lat (SRID 4326). PostGIS `geometry` on PostgreSQL (hex EWKB on
    the wire, no extra functions needed), WKB bytes on SQLite."""

    impl = LargeBinary
    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY") -> None:
        super().__init__()
        if geometry_type not in KINDS:
            raise ValueError(f"unknown geometry type {geometry_type}")
        self.geometry_type = geometry_type

    def __repr__(self) -> str:
        return f"Geometry({self.geometry_type!r})"

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PostGISGeometry(self.geometry_type))
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: BaseGeometry | None, dialect: Any) -> Any:
        if value is None:
            return None
        check_geometry(value, self.geometry_type)
        if dialect.name == "postgresql":
            return shapely.to_wkb(shapely.set_srid(value, SRID), hex=True, include_srid=True)
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Any) -> BaseGeometry | None:
        if value is None:
            return None
        if isinstance(value, memoryview):
            value = bytes(value)
        return shapely.from_wkb(value)


def check_geometry(value: Any, geometry_type: str = "GEOMETRY", field: str = "geometry") -> BaseGeometry:
    if not isinstance(value, BaseGeometry):
        raise Invalid(f"{field} must be a geometry", field=field)
    expected = KINDS[geometry_type]
    if expected and value.geom_type != expected:
        raise Invalid(f"{field} must be a {expected}, got {value.geom_type}", field=field)
    if value.is_empty or not shapely.is_valid(value):
        raise Invalid(f"{field} is empty or not valid: {shapely.is_valid_reason(value)}", field=field)
    minx, miny, maxx, maxy = value.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise Invalid(f"{field} is outside lon/lat range (lon -180..180, lat -90..90)", field=field)
    return value


def parse_geometry(value: Any, geometry_type: str = "GEOMETRY", field: str = "geometry") -> BaseGeometry:
    """GeoJSON geometry (dict), WKT text, or {"lon","lat"} → a checked shapely geometry."""
    try:
        if isinstance(value, BaseGeometry):
            geom = value
        elif isinstance(value, dict) and {"lon", "lat"} <= value.keys():
            geom = shapely.Point(float(value["lon"]), float(value["lat"]))
        elif isinstance(value, dict):
            geom = shapely.geometry.shape(value)
        elif isinstance(value, str):
            geom = shapely.from_wkt(value)
        else:
            raise Invalid(f"{field}: expected GeoJSON, WKT or {{lon, lat}}", field=field)
    except Invalid:
        raise
    except Exception as exc:  # shapely raises several kinds for malformed input
        raise Invalid(f"{field} is malformed: {exc}", field=field) from None
    return check_geometry(geom, geometry_type, field)


@event.listens_for(Mapper, "mapper_configured")
def _check_on_assignment(mapper: Mapper, class_: type) -> None:
    """Check a geometry when it is assigned to a mapped attribute, so a bad one is refused at
    once as `Invalid` naming the attribute (e.g. field="location"), before anything is written.
    Without this the check ran in `process_bind_param` during flush: after the parent row had
    been inserted, wrapped in an SQLAlchemy StatementError, with field="geometry"."""
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if not isinstance(column.type, Geometry) or column.table is not mapper.local_table:
            continue

        def check(_target: Any, value: Any, _old: Any, _initiator: Any,
                  geometry_type: str = column.type.geometry_type, key: str = prop.key) -> None:
            if value is not None:
                check_geometry(value, geometry_type, key)

        event.listen(getattr(class_, prop.key), "set", check, propagate=True)
