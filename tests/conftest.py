"""Shared fixtures. The backend comes from RMGR_TEST_DATABASE_URL (a PostgreSQL+PostGIS URL);
without it the suite runs on a fresh SQLite file. The same tests run on both."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from resource_mgr.db import Database
from resource_mgr.models import Base


def _test_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("RMGR_TEST_DATABASE_URL")
    if url:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"


def create_schema(database: Database) -> None:
    if database.dialect == "postgresql":
        with database.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    Base.metadata.drop_all(database.engine)
    Base.metadata.create_all(database.engine)


def clear_all(database: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
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
