"""What a request handler needs: the settings, the database, the principal, a unit of work."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import current_app, g

from resource_mgr.config import Settings
from resource_mgr.db import Database, UnitOfWork
from resource_mgr.security.principal import Principal


@dataclass
class Runtime:
    settings: Settings
    db: Database
    extras: dict[str, Any] = field(default_factory=dict)


def runtime() -> Runtime:
    return current_app.extensions["rmgr"]


def principal() -> Principal:
    return g.principal


def unit_of_work() -> UnitOfWork:
    return runtime().db.unit_of_work(principal=principal().name)


def read_session():
    """A session for reads, closed at the end of the request."""
    if "read_session" not in g:
        from interfaces.http.load import bound_statement_time

        g.read_session = runtime().db.read_session()
        bound_statement_time(g.read_session)
    return g.read_session
