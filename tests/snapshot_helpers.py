"""Copies of a test database's rows, to put a world that is slow to build (an imported generated
city) back into an emptied database in a fraction of the time: the world is built once, its rows
are read out, and later tests get exactly those rows back (same ids, same history positions, the
same change counter), through COPY on PostgreSQL and plain INSERTs on SQLite. Triggers fire as
for any insert (the SQLite address search table fills itself), so the copy is the world as built.

    snap = take(db)          # after building the world, before the test changes it
    ...
    put_back(db, snap)       # into the emptied database of a later test
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import text

from resource_mgr.db import Database
from db_helpers import _data_tables

T = TypeVar("T")


@dataclass
class Snapshot:
    url: str
    # parents before children: (table, columns, rows) — rows are COPY data on PostgreSQL
    tables: list[tuple[str, list[str], object]] = field(default_factory=list)


def _columns(conn, dialect: str, table: str) -> list[str]:
    if dialect == "postgresql":
        return list(conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = :t AND is_generated = 'NEVER' ORDER BY ordinal_position"), {"t": table}).scalars())
    return [r[1] for r in conn.exec_driver_sql(f'PRAGMA table_xinfo("{table}")') if r[6] == 0]  # not generated


def _names(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def take(database: Database) -> Snapshot:
    snap = Snapshot(url=database.url)
    with database.engine.begin() as conn:
        for table in reversed(_data_tables(database)):
            columns = _columns(conn, database.dialect, table)
            if database.dialect == "postgresql":
                cur = conn.connection.driver_connection.cursor()
                with cur.copy(f'COPY "{table}" ({_names(columns)}) TO STDOUT (FORMAT binary)') as copy:
                    data = b"".join(bytes(block) for block in copy)
                has_rows = conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{table}")')).scalar()
                rows: object = data if has_rows else None
            else:
                rows = [tuple(r) for r in conn.exec_driver_sql(f'SELECT {_names(columns)} FROM "{table}"')] or None
            if rows is not None:
                snap.tables.append((table, columns, rows))
    return snap


def put_back(database: Database, snap: Snapshot) -> None:
    """Into an empty database with the same schema (the `db` fixture's)."""
    assert snap.url == database.url, "a snapshot goes back into the database it was taken from"
    with database.engine.begin() as conn:
        if database.dialect == "sqlite":  # a row may come before the row it refers to in its table
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        else:
            # The rows were consistent when taken: skip the per-row foreign-key triggers as the
            # importer does (resource_mgr/bulk/importing/writer.py); the tests connect as a superuser.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
        for table, columns, rows in snap.tables:
            if database.dialect == "postgresql":
                cur = conn.connection.driver_connection.cursor()
                with cur.copy(f'COPY "{table}" ({_names(columns)}) FROM STDIN (FORMAT binary)') as copy:
                    copy.write(rows)
            else:
                marks = ", ".join("?" for _ in columns)
                conn.exec_driver_sql(f'INSERT INTO "{table}" ({_names(columns)}) VALUES ({marks})', rows)


def is_empty(database: Database) -> bool:
    tables = _data_tables(database)
    probe = " UNION ALL ".join(f"SELECT 1 WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables)
    with database.engine.connect() as conn:
        return not tables or conn.execute(text(probe)).first() is None


# -- a test's world, built once per database -----------------------------------------------------

_WORLDS: dict[tuple[str, str], tuple[Snapshot, Any]] = {}


def cached_world(database: Database, key: str, build: Callable[[Database], T]) -> T:
    """`build(database)` the first time on an emptied database; for later tests (the database
    emptied again, by the `db` fixture) its rows are put back and a copy of what it returned is
    returned: the same rows, the same ids. For a function-scoped world fixture whose build is
    deterministic apart from its ids and returns plain values (ids, dicts, lists, namespaces of
    them):

        @pytest.fixture
        def world(db):
            return cached_world(db, "number-search", _build)

    The caches of the design and topology are dropped after a put-back, as after any import.
    Not for a database that is not empty (the build then runs as usual and nothing is kept)."""
    k = (database.url, key)
    empty = is_empty(database)
    if empty and k in _WORLDS:
        snap, value = _WORLDS[k]
        put_back(database, snap)
        _forget_caches()
        return copy.deepcopy(value)
    value = build(database)
    if empty:
        _WORLDS[k] = (take(database), copy.deepcopy(value))
    return value


def _forget_caches() -> None:
    from resource_mgr.design.trace import clear_topology_cache
    from resource_mgr.topology import services as topology

    clear_topology_cache()
    topology.forget_graphs()
