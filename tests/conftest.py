"""Shared fixtures. The backend comes from RMGR_TEST_DATABASE_URL (a PostgreSQL+PostGIS URL);
without it the suite runs on a fresh SQLite file. The same tests run on both.

The schema is built by the Alembic migrations (resource_mgr.migrate.upgrade), not create_all, so
the suite tests the schema that is deployed; test_migrations.py checks it matches the models."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import inspect, text

from resource_mgr import migrate
from resource_mgr.db import Database
from resource_mgr.models import Base

# Not application data: never emptied between tests.
KEEP_TABLES = frozenset({"alembic_version"}) | migrate.POSTGIS_TABLES


def _test_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("RMGR_TEST_DATABASE_URL")
    if url:
        return migrate.normalise_url(url)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"


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


def clear_all(database: Database) -> None:
    tables = _data_tables(database)
    if not tables:
        return
    with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _test_url(tmp_path_factory)


@pytest.fixture(scope="session")
def database(database_url: str):
    database = Database(database_url)
    create_schema(database)
    yield database
    database.dispose()


@pytest.fixture
def db(database: Database):
    """A database with the full schema and no rows; emptied again after the test."""
    clear_all(database)
    yield database
    clear_all(database)
