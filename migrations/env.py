"""Alembic environment, configured from code by resource_mgr.migrate (no alembic.ini).

Either the caller hands over a connection in `config.attributes["connection"]` (upgrade() does,
so the whole upgrade is one transaction), or the URL comes from `sqlalchemy.url`."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from resource_mgr.migrate import context_options, enable_geometry_reflection
from resource_mgr.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    enable_geometry_reflection(connection.dialect)  # autogenerate compares geometry types
    context.configure(connection=connection, target_metadata=target_metadata,
                      **context_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    dialect = (url or "sqlite").split(":", 1)[0].split("+", 1)[0]
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      **context_options(dialect))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass a connection or set sqlalchemy.url")
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
