"""Emptying and rebuilding test databases, for conftest.py and for test modules that manage a
database of their own (import from here, never from conftest: tests/e2e has a conftest
too, and which one the name finds depends on the order of collection)."""
from __future__ import annotations

from sqlalchemy import inspect, text

from resource_mgr import migrate
from resource_mgr.db import Database
from resource_mgr.models import Base

# Not application data: never emptied between tests.
KEEP_TABLES = frozenset({"alembic_version"}) | migrate.POSTGIS_TABLES


def reset_database(database: Database) -> None:
    """Make the database empty: nothing of ours left, not even alembic_version. SQLite test
    databases are fresh files already; on PostgreSQL the public schema is recreated (PostGIS
    lives there, so the extension is installed again)."""
    if database.dialect == "postgresql":
        with database.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        database.engine.dispose()  # pooled connections may hold plans for dropped objects
    else:
        with database.engine.begin() as conn:
            names = inspect(conn).get_table_names()
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for name in names:
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
        database.engine.dispose()  # foreign_keys=ON again on the next connection


def create_schema(database: Database) -> None:
    reset_database(database)
    migrate.upgrade(database.url)


def _data_tables(database: Database) -> list[str]:
    """The live tables that hold rows, children before parents (SQLite enforces foreign keys)."""
    # FTS5 shadow tables (address_fts_data, ...) are the search table's own: emptying them
    # directly would corrupt it; the address rows' triggers empty address_fts.
    live = {t for t in inspect(database.engine).get_table_names()
            if not t.startswith(migrate.SEARCH_TABLE_PREFIX)} - KEEP_TABLES
    known = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in live]
    return sorted(live - set(known)) + known


# Up to this many rows in all, DELETE empties the tables; above it TRUNCATE does (DELETE runs the
# foreign-key checks row by row, TRUNCATE has a fixed cost of ~15 ms a table on PostgreSQL).
DELETE_UP_TO_ROWS = 5000


def clear_all(database: Database) -> None:
    """Empty every table that holds rows. Most tests fill a few tables with a few rows, so the
    filled ones are found first (one query) and only those are emptied: TRUNCATE of all 41 tables
    cost ~0.3 s a test on PostgreSQL, twice per test."""
    tables = _data_tables(database)
    if not tables:
        return
    with database.engine.begin() as conn:
        probe = " UNION ALL ".join(
            f"SELECT '{t}', (SELECT count(*) FROM (SELECT 1 FROM \"{t}\" LIMIT {DELETE_UP_TO_ROWS + 1}) AS x) "
            f"WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables)
        rows = dict(conn.execute(text(probe)).all())
        filled = [t for t in tables if t in rows]  # children before parents
        if not filled:
            return
        if database.dialect == "postgresql":
            if sum(rows.values()) > DELETE_UP_TO_ROWS:
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in filled) + " CASCADE"))
            else:
                for table in filled:
                    conn.execute(text(f'DELETE FROM "{table}"'))
            return
    # SQLite checks each deleted parent row against its children; every table is emptied, so
    # nothing is left to check (the pragma is ignored inside a transaction: the raw connection).
    # The address rows' delete trigger looks each one up in address_fts (~9 ms a row: 18 s for
    # the XS city), so the search table is emptied first, as a whole (its own DELETE, not its
    # shadow tables), and the trigger finds nothing.
    raw = database.engine.raw_connection()
    try:
        sqlite = raw.driver_connection
        sqlite.execute("PRAGMA foreign_keys=OFF")
        try:
            sqlite.execute("BEGIN IMMEDIATE")
            for (search,) in sqlite.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (migrate.SEARCH_TABLE_PREFIX,)).fetchall():
                sqlite.execute(f'DELETE FROM "{search}"')
            for table in filled:
                sqlite.execute(f'DELETE FROM "{table}"')
            sqlite.execute("COMMIT")
        finally:
            if sqlite.in_transaction:
                sqlite.execute("ROLLBACK")
            sqlite.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()
