"""The PostgreSQL engine pings a pooled connection only after it sat idle (pool_pre_ping would
cost every unit of work a round trip): one that died while idle is replaced, not surfaced."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from resource_mgr import db as dbmod
from resource_mgr.db import Database


@pytest.fixture
def pg(db):
    if db.dialect != "postgresql":
        pytest.skip("the idle ping is for PostgreSQL's pooled connections")
    database = Database(db.url)
    yield database
    database.dispose()


def _backend_pid(database: Database) -> int:
    with database.engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _kill(database: Database, pid: int) -> None:
    with database.engine.connect() as conn:  # a second pooled connection does the killing
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()


def test_a_connection_that_died_while_idle_is_replaced(pg, monkeypatch):
    pid = _backend_pid(pg)
    with pg.engine.connect() as a, pg.engine.connect() as b:  # two in the pool, the killed one first
        pids = {a.execute(text("SELECT pg_backend_pid()")).scalar_one(),
                b.execute(text("SELECT pg_backend_pid()")).scalar_one()}
        assert pid in pids
    for p in pids:
        _kill(Database(pg.url), p)
    monkeypatch.setattr(dbmod, "_PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle
    with pg.unit_of_work() as uow:
        assert uow.session.execute(text("SELECT 1")).scalar_one() == 1
        assert uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one() not in pids


@pytest.mark.parametrize("idle_after, cursors", [(60.0, 1), (0.0, 2)])
def test_a_connection_used_a_moment_ago_is_not_pinged(pg, monkeypatch, idle_after, cursors):
    """The cursors opened on the connection for one statement: the statement's, and the ping's
    only when the connection counts as idle."""
    _backend_pid(pg)  # one connection in the pool, just checked in
    opened: list[str] = []
    with pg.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        real = raw.cursor

        def counting_cursor(*a, **k):
            opened.append("cursor")
            return real(*a, **k)

        raw.cursor = counting_cursor  # type: ignore[method-assign]
    monkeypatch.setattr(dbmod, "_PING_AFTER_IDLE_SECONDS", idle_after)
    with pg.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert len(opened) == cursors
