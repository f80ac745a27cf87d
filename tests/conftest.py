"""Shared fixtures. The backend comes from RMGR_TEST_DATABASE_URL (a PostgreSQL+PostGIS URL);
without it the suite runs on a fresh SQLite file. The same tests run on both.

The schema is built by the Alembic migrations (resource_mgr.migrate.upgrade), not create_all, so
the suite tests the schema that is deployed; test_migrations.py checks it matches the models."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from resource_mgr import migrate
from resource_mgr.db import Database

from db_helpers import clear_all, create_schema, reset_database
from parallel_helpers import CostRecorder, load_costs, slowest_modules_first


def pytest_configure(config: pytest.Config) -> None:
    """`-n 2` (addopts) is for the suite. Named files or tests only, and no -n of one's own: in
    this process, as --dist loadscope would give a file to one worker anyway, and two workers
    cost their start-up (each imports everything and builds its schema)."""
    record = os.environ.get("RMGR_TEST_RECORD_COSTS")
    if record and not hasattr(config, "workerinput"):
        config.pluginmanager.register(CostRecorder(record), "rmgr-cost-recorder")
    if hasattr(config, "workerinput") or not config.pluginmanager.hasplugin("xdist"):
        return
    given = config.invocation_params.args
    if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in given):
        return
    paths = [a for a in config.args if not a.startswith("-")]
    if paths and all(os.path.isfile(a.split("::")[0]) for a in paths):
        config.option.numprocesses = 0
        config.option.dist = "no"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the costliest modules first: loadscope hands them out in this order
    (tests/parallel_helpers.py, slowest_modules_first)."""
    if hasattr(config, "workerinput"):
        slowest_modules_first(items, load_costs())


def _test_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("RMGR_TEST_DATABASE_URL")
    if url:
        url = migrate.normalise_url(url)
        worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1 ... under `-n N`
        return _worker_database(url, worker) if worker else url
    # SQLite: under xdist each worker has its own base temp directory, hence its own file
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"


def _worker_database(url: str, worker: str) -> str:
    """Each xdist worker its own PostgreSQL database next to the one given: <name>_<worker>,
    made if missing (the schema is built afresh anyway) and left for the next run."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    given = make_url(url)
    name = f"{given.database}_{worker}"[:63]
    admin = create_engine(given.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return given.set(database=name).render_as_string(hide_password=False)


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


@pytest.fixture(scope="module")
def module_db(database: Database):
    """For a module whose tests all only read one world built once: emptied before and after the
    module, not between its tests. Such a module must not also use `db` (it empties everything)."""
    clear_all(database)
    yield database
    clear_all(database)
