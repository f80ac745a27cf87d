"""Geometry: one column type and one small spatial-query interface for both backends.

PostgreSQL stores PostGIS geometry (SRID 4326) and answers spatial questions in the database
with GiST indexes; SQLite stores WKB and answers them in process with a shapely STRtree. The rest
of the code sees shapely geometries and calls `spatial_for(dialect)`."""
from resource_mgr.geo.spatial import InProcessSpatial, PostGISSpatial, SpatialQueries, spatial_for
from resource_mgr.geo.types import Geometry, parse_geometry

__all__ = ["Geometry", "parse_geometry", "SpatialQueries", "PostGISSpatial", "InProcessSpatial", "spatial_for"]
