"""A bounded cost for list reads, so that health and short requests stay fast under load.

A list read (any GET whose view takes `PageQuery`: /resources, /resources/{id}/units, /history,
/admin/tokens, /admin/trust ...) can cost up to a second of CPU (1000 rows shaped and serialised)
and the server has a handful of threads sharing one interpreter lock. Without a bound, 200 clients
making such reads fill every thread and the queue in front of them, and /health waits behind
them for tens of seconds (scripts/bench_load.py measures it).

- At most settings.list_read_concurrency list reads run at once in a process (0: no bound). One
  more is answered at once 503 problem+json `unavailable` with Retry-After
  (settings.list_read_retry_after_seconds): it costs a fraction of a millisecond, holds no thread,
  and the slots left over serve everything else. The check runs first, before authentication, so
  a refusal reads nothing from the database.
- On PostgreSQL a list read's statements are also bounded in time (settings.
  list_read_statement_timeout_ms, 0: none): past it the query is cancelled and the answer is the
  same 503 `unavailable` (errors.py maps the database's cancellation to it). Reads run without
  JIT compilation (see bound_statement_time).

With gunicorn (--workers N) the bound is per process, N times the setting in all.
"""
from __future__ import annotations

import threading
from typing import Any

from apiflask import APIFlask
from flask import g, request
from sqlalchemy import event, text

from resource_mgr.errors import Unavailable

from interfaces.http.api.common import PageQuery


class ListReadGate:
    """A non-blocking counting semaphore: take a slot or be refused at once."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots) if slots else None

    def try_enter(self) -> bool:
        return self._free is None or self._free.acquire(blocking=False)

    def leave(self) -> None:
        if self._free is not None:
            self._free.release()


def is_list_read(view: Any) -> bool:
    spec = getattr(view, "_spec", None) or {}
    return any(isinstance(schema, PageQuery) for schema, _location in spec.get("args") or ())


def install(app: APIFlask) -> None:
    """Register the gate: call before authentication is installed, so a refusal costs nothing."""
    settings = app.extensions["rmgr"].settings
    gate = ListReadGate(settings.list_read_concurrency)
    app.extensions["rmgr_list_read_gate"] = gate
    list_reads: dict[str, bool] = {}

    def _is_list_read(endpoint: str) -> bool:
        if endpoint not in list_reads:
            list_reads[endpoint] = is_list_read(app.view_functions.get(endpoint))
        return list_reads[endpoint]

    @app.before_request
    def _enter_list_read() -> None:
        if request.method != "GET" or request.endpoint is None or not _is_list_read(request.endpoint):
            return
        if not gate.try_enter():
            retry = settings.list_read_retry_after_seconds
            raise Unavailable(f"the server is answering as many list reads as it may at once "
                              f"({gate.slots}); retry in {retry} s", retry_after=retry)
        g.list_read_slot = True

    @app.teardown_request
    def _leave_list_read(_exc: BaseException | None) -> None:
        if g.pop("list_read_slot", False):
            gate.leave()


def install_connection_settings(engine: Any) -> None:
    """On PostgreSQL, every new connection of the API's engine runs without JIT compilation (see
    bound_statement_time), set once when it is made rather than in every request."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def _no_jit(dbapi_conn: Any, record: Any) -> None:
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET jit = off")
        dbapi_conn.commit()
        record.info[_JIT_OFF] = True


_JIT_OFF = "rmgr_jit_off"


def bound_statement_time(session: Any) -> None:
    """Called with every request's read session (context.read_session). On PostgreSQL: no JIT (the
    polymorphic resource query joins 16 tables; on fresh statistics its estimated cost passes
    jit_above_cost and compiling it took 0.1 to 4 s for a few rows) — set per connection by
    install_connection_settings, here only for a connection made before it — and for a list read
    or an address search the statement timeout. Nothing to send: no round trip."""
    if session.get_bind().dialect.name != "postgresql":
        return
    timeout = _statement_timeout()
    statements = [] if session.connection().connection.info.get(_JIT_OFF) else ["SET LOCAL jit = off"]
    if timeout:
        statements.append(f"SET LOCAL statement_timeout = {int(timeout)}")
    if statements:
        session.execute(text("; ".join(statements)))


def _statement_timeout() -> int:
    if not (g.get("list_read_slot") or g.get("bounded_read")):
        return 0
    from interfaces.http.context import runtime

    return runtime().settings.list_read_statement_timeout_ms
