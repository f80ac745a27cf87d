"""The cutover as the API shows it (API.md "Cutover")."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.clock import aware
from resource_mgr.cutovers.models import Cutover
from resource_mgr.cutovers.services import progress_of
from resource_mgr.inventory.models import LocalNetwork


def _iso(value: Any) -> str | None:
    return aware(value).isoformat() if value is not None else None


def cutover_json(session: Session, cutover: Cutover, code: str | None = None) -> dict[str, Any]:
    if code is None and cutover.local_network_id:
        code = session.scalar(select(LocalNetwork.code).where(LocalNetwork.id == cutover.local_network_id))
    return {
        "id": cutover.id, "name": cutover.name, "state": cutover.state.value, "local_network": code,
        "window_start": _iso(cutover.window_start), "window_end": _iso(cutover.window_end),
        "rows": cutover.row_count,
        "validation": {"valid": cutover.valid, "errors": list(cutover.errors or [])},
        "progress": progress_of(session, cutover), "job_id": cutover.job_id,
        "created_by": cutover.created_by, "created_at": _iso(cutover.created_at),
        "locked_at": _iso(cutover.locked_at), "applied_at": _iso(cutover.applied_at),
        "ended_at": _iso(cutover.ended_at),
    }
