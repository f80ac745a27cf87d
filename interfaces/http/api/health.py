"""GET /api/v1/health: no authentication; says whether the parts the API needs are reachable.

Checks: the database (SELECT 1), the schema (migrations at head, resource_mgr.migrate.is_at_head),
and the Celery broker when settings.celery_broker_url is set (embedded mode has none). 200 when all
pass, 503 `degraded` otherwise; each check names what failed but never a URL or password."""
from __future__ import annotations

import functools
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Dict, String
from sqlalchemy import text

from interfaces.http.auth import public
from interfaces.http.context import runtime

bp = APIBlueprint("health", __name__)


class HealthOut(Schema):
    status = String(metadata={"enum": ["ok", "degraded"]})
    checks = Dict()


@functools.lru_cache(maxsize=1)
def _head_revision() -> str:
    """The newest migration of this code: read from the migration scripts once per process."""
    from resource_mgr import migrate

    return migrate.head_revision()


def _database_and_migrations() -> tuple[dict[str, Any], dict[str, Any]]:
    """One pooled connection for both checks (a new engine per probe, and re-reading the migration
    scripts, made health cost tens of milliseconds even idle)."""
    with runtime().db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        database = {"ok": True, "backend": runtime().db.dialect}
        try:
            current = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        except Exception:  # no alembic_version table: never migrated
            current = set()
    at_head = current == {_head_revision()}
    migrations: dict[str, Any] = {"ok": at_head}
    if not at_head:
        migrations["error"] = "the database schema is not at the newest migration; run `rmgr db upgrade`"
    return database, migrations


def _broker(url: str) -> dict[str, Any]:
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return {"ok": True, "kind": "redis"}
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {"ok": True, "kind": url.split(":", 1)[0]}


def _check(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        return fn(*args)
    except Exception as exc:  # reported, not raised: health must answer when a part is down
        return {"ok": False, "error": type(exc).__name__}


@bp.get("/health")
@bp.output(HealthOut, status_code=200, description="Every part is reachable")
@bp.doc(summary="Liveness and readiness", responses={503: "A part is not reachable (same body, status degraded)"})
@public
def health():
    try:
        database, migrations = _database_and_migrations()
    except Exception as exc:  # reported, not raised: health must answer when a part is down
        database, migrations = {"ok": False, "error": type(exc).__name__}, {"ok": False, "error": "no database"}
    checks: dict[str, dict[str, Any]] = {"database": database, "migrations": migrations}
    broker_url = runtime().settings.celery_broker_url
    if broker_url:
        checks["broker"] = _check(_broker, broker_url)
    ok = all(c["ok"] for c in checks.values())
    return {"status": "ok" if ok else "degraded", "checks": checks}, 200 if ok else 503
