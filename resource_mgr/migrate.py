"""Schema migrations (Alembic), driven from code: no alembic.ini is needed at run time.

The revisions live in the `migrations` package, which ships with the install. `rmgr db upgrade`
calls `upgrade()`; the test suite builds its schema the same way, so what is tested is what is
deployed, and `drift()` proves the revisions and the models describe the same schema.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import LargeBinary, MetaData, create_engine
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.pool import NullPool
from sqlalchemy.types import UserDefinedType

import migrations
from resource_mgr.geo.types import SRID, Geometry

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent

# PostGIS installs these into the database itself; they are not ours to compare or migrate.
POSTGIS_TABLES = frozenset({
    "spatial_ref_sys", "geometry_columns", "geography_columns", "raster_columns",
    "raster_overviews", "topology", "layer",
})
POSTGIS_SCHEMAS = frozenset({"tiger", "tiger_data", "topology"})
# SQLite's FTS5 address search table and its shadow tables: made and kept by the migration
# c3a0d9e1f401 (triggers), not by the models.
SEARCH_TABLE_PREFIX = "address_fts"


def normalise_url(database_url: str) -> str:
    """postgresql:// means the psycopg 3 driver here (the one we install)."""
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url[len("postgresql://"):]
    return database_url


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        # ConfigParser interpolation: a % in a password must be doubled.
        cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return cfg


def _engine(database_url: str) -> Engine:
    # NullPool: migrations are one-off; leave no idle connections behind (DROP DATABASE in CI).
    return create_engine(normalise_url(database_url), poolclass=NullPool)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest)."""
    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(database_url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration revisions in {MIGRATIONS_DIR / 'versions'}")
    return head


def current_revision(database_url: str) -> str | None:
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def is_at_head(database_url: str) -> bool:
    return current_revision(database_url) == head_revision()


# ---- comparison hooks, shared by env.py (autogenerate) and drift() ----------------------------

def applies_to(obj: Any, dialect_name: str) -> bool:
    """False for schema items declared with `.ddl_if(dialect=...)` for other backends (the GiST
    indexes are PostgreSQL-only)."""
    ddl_if = getattr(obj, "_ddl_if", None)
    if ddl_if is None or ddl_if.dialect is None:
        return True
    dialects = (ddl_if.dialect,) if isinstance(ddl_if.dialect, str) else tuple(ddl_if.dialect)
    return dialect_name in dialects


def make_include_object(dialect_name: str):
    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and (name in POSTGIS_TABLES or (name or "").startswith(SEARCH_TABLE_PREFIX)):
            return False
        if type_ == "table" and getattr(obj, "schema", None) in POSTGIS_SCHEMAS:
            return False
        if type_ == "index" and not reflected and not applies_to(obj, dialect_name):
            return False
        return True

    return include_object


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if type_ == "schema":
        return name not in POSTGIS_SCHEMAS
    if type_ == "table":
        return name not in POSTGIS_TABLES and not (name or "").startswith(SEARCH_TABLE_PREFIX)
    return True


class ReflectedGeometry(UserDefinedType):
    """What a PostGIS `geometry(Point,4326)` column reflects as, so that compare_type() sees the
    geometry type and SRID (SQLAlchemy alone reflects an unknown type that Alembic skips)."""

    cache_ok = True

    def __init__(self, geometry_type: str = "GEOMETRY", srid: str | int = 0) -> None:
        self.geometry_type = str(geometry_type).upper()
        self.srid = int(srid)

    def get_col_spec(self, **kw: Any) -> str:
        return f"geometry({self.geometry_type},{self.srid})"


def enable_geometry_reflection(dialect: Dialect) -> None:
    """Per dialect instance (one engine), so nothing outside migrations is affected."""
    if dialect.name == "postgresql" and "geometry" not in dialect.ischema_names:
        dialect.ischema_names = {**dialect.ischema_names, "geometry": ReflectedGeometry}


def compare_type(context: MigrationContext, inspected_column: Any, metadata_column: Any,
                 inspected_type: Any, metadata_type: Any) -> bool | None:
    """Our Geometry against what the database has. False: same; True: different; None: let
    Alembic decide (every other type)."""
    if not isinstance(metadata_type, Geometry):
        return None
    if context.dialect.name != "postgresql":
        # A WKB blob on SQLite.
        return not isinstance(inspected_type, LargeBinary)
    if not isinstance(inspected_type, ReflectedGeometry):
        return True  # not a PostGIS geometry column at all
    return (inspected_type.geometry_type, inspected_type.srid) != (metadata_type.geometry_type, SRID)


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write our own column types as they appear in the models."""
    from resource_mgr.db import UTCDateTime

    if type_ == "type" and isinstance(obj, Geometry):
        autogen_context.imports.add("from resource_mgr.geo.types import Geometry")
        return f"Geometry({obj.geometry_type!r})"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from resource_mgr.db import UTCDateTime")
        return "UTCDateTime()"
    return False


def context_options(dialect_name: str) -> dict[str, Any]:
    return {
        "compare_type": compare_type,
        "compare_server_default": False,
        "include_object": make_include_object(dialect_name),
        "include_name": include_name,
        "render_item": render_item,
        # SQLite can barely ALTER; batch mode rebuilds tables, so one revision runs on both.
        "render_as_batch": dialect_name == "sqlite",
    }


def diff_connection(conn: Connection, metadata: MetaData | None = None) -> list:
    if metadata is None:
        from resource_mgr.models import Base

        metadata = Base.metadata
    enable_geometry_reflection(conn.dialect)
    context = MigrationContext.configure(conn, opts=context_options(conn.dialect.name))
    return compare_metadata(context, metadata) + _index_predicate_diffs(conn, metadata)


def _index_predicate_diffs(conn: Connection, metadata: MetaData) -> list:
    """Alembic does not compare the WHERE of partial indexes: ("modify_partial_index", index) for
    each index that is partial in the models and not in the database, or the other way round."""
    from sqlalchemy import inspect

    key = f"{conn.dialect.name}_where"
    inspector = inspect(conn)
    live_tables = set(inspector.get_table_names())
    diffs = []
    for table in metadata.sorted_tables:
        if table.name not in live_tables:
            continue
        live = {i["name"]: (i.get("dialect_options") or {}).get(key) is not None
                for i in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name in live and live[index.name] != (index.dialect_options[conn.dialect.name].get("where")
                                                           is not None):
                diffs.append(("modify_partial_index", index))
    return diffs


def drift(database_url: str, metadata: MetaData | None = None) -> list:
    """Differences between the live schema and the models (empty when they agree). `metadata`
    defaults to the models' metadata; tests pass a deliberately altered copy."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            return diff_connection(conn, metadata)
    finally:
        engine.dispose()


def describe(diffs: list) -> list[str]:
    """One readable line per difference, e.g. "add_column unit.drift_probe" (Alembic's raw
    tuples print whole Table objects)."""
    lines = []
    for diff in diffs:
        if isinstance(diff, list):  # modify_* ops come as a list of tuples for one column
            lines.extend(f"{d[0]} {d[2]}.{d[3]}" for d in diff)
            continue
        op, *rest = diff
        target = rest[-1] if rest else None
        if op.endswith("_table"):
            lines.append(f"{op} {target.name}")
        elif op.endswith("_column"):
            lines.append(f"{op} {rest[1]}.{target.name}")
        elif op.endswith(("_index", "_constraint", "_fk")):
            table = getattr(getattr(target, "table", None), "name", None) or getattr(target, "parent", None)
            lines.append(f"{op} {getattr(target, 'name', target)} on {getattr(table, 'name', table)}")
        else:
            lines.append(f"{op} {rest!r}")
    return lines
