"""Engine, sessions and the unit of work. Nothing here connects at import time."""
from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from resource_mgr.changes import feed
from resource_mgr.clock import aware

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on both backends (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the domain works in aware UTC")
        return value if dialect.name == "postgresql" else value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return aware(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# SQLite has no row locks: a writing unit of work takes the database write lock up front
# (BEGIN IMMEDIATE) so that "lock, re-check, allocate" is serialised; readers stay concurrent (WAL).
_sqlite_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlite_immediate", default=False)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if _sqlite_immediate.get() else "BEGIN")

        return engine
    engine = create_engine(url, pool_recycle=_RECYCLE_SECONDS, **kwargs)
    _ping_when_idle(engine)
    return engine


# A connection that has just been used is alive: pinging it at every checkout (pool_pre_ping)
# costs every unit of work a round trip. Connections die while idle (a server restart, a
# firewall's idle timeout), so only one idle for a while is pinged; a dead one is replaced
# (DisconnectionError makes the pool retry with a new connection). pool_recycle bounds a
# connection's age.
_PING_AFTER_IDLE_SECONDS = 2.0
_RECYCLE_SECONDS = 1800
_IDLE_SINCE = "rmgr_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < _PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_conn.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_conn.rollback()
        except Exception as exc:
            raise DisconnectionError("the pooled connection is dead") from exc


class Database:
    """One per process: the engine and the session factory for a database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        feed.install(self.session_factory)  # history rows get commit-ordered positions

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def unit_of_work(self, **context: Any) -> "UnitOfWork":
        return UnitOfWork(self.session_factory, **context)

    def read_session(self) -> Session:
        return self.session_factory()

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    """One use case, one transaction. Commit explicitly; leaving without commit rolls back.

    Work that must only happen once the data is durable (sending a Celery task, a webhook) is
    registered with `after_commit` and run after the commit succeeds.

    Every History row added in it gets its change-feed position as the transaction commits
    (resource_mgr.changes.feed; rows written past the session: `feed.mark_written`). `session.info["principal"]` names who works,
    for use cases that record history without being given a principal."""

    def __init__(self, session_factory: sessionmaker, *, principal: str | None = None) -> None:
        self._factory = session_factory
        self.principal = principal
        self._after_commit: list[Callable[[], None]] = []
        self.session: Session

    def __enter__(self) -> "UnitOfWork":
        self._token = _sqlite_immediate.set(True)
        self.session = self._factory()
        if self.principal:
            self.session.info["principal"] = self.principal
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.session.rollback()
            self.session.close()
        finally:
            _sqlite_immediate.reset(self._token)

    def commit(self) -> None:
        self.session.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        self.session.rollback()
        self._after_commit.clear()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)
