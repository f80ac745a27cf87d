"""GET /api/v1/health: no authentication; says whether the parts the API needs are reachable."""
from __future__ import annotations

from apiflask import APIBlueprint
from sqlalchemy import text

from interfaces.http.auth import public
from interfaces.http.context import runtime

bp = APIBlueprint("health", __name__)


@bp.get("/health")
@bp.doc(summary="Liveness and readiness", responses=[200, 503])
@public
def health():
    checks: dict[str, dict[str, object]] = {}
    try:
        with runtime().db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "backend": runtime().db.dialect}
    except Exception as exc:  # reported, not raised: health must answer when the database is down
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    ok = all(c["ok"] for c in checks.values())
    return {"status": "ok" if ok else "degraded", "checks": checks}, 200 if ok else 503
