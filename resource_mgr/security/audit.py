"""The operation log for writes that are not unit transitions.

Unit transitions (preoccupy, occupy, release, lock ...) write their own History rows
(resource_mgr.occupancy.models.Unit._record). Every other write — a token created or revoked, a user
created, a template or naming rule changed, an import run — calls `record` in the same unit of work,
so `GET /api/v1/history` shows one log with who, when, what, before and after for everything.

Every row is also an entry of the change feed (resource_mgr.changes): the unit of work gives it
its position as the transaction commits, so a rolled-back write leaves no entry.

Secrets never go into before/after: callers pass what identifies the change, not credentials.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from resource_mgr.clock import utcnow
from resource_mgr.errors import Invalid
from resource_mgr.occupancy.models import History
from resource_mgr.security.principal import Principal

_SECRET_KEYS = frozenset({"password", "password_hash", "secret", "token", "token_hash"})


def _clean(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (values or {}).items() if k not in _SECRET_KEYS}


def record(session: Session, principal: Principal | str | None, *, resource_id: str, resource_kind: str, action: str,
           local_network_id: str | None, before: dict[str, Any] | None, after: dict[str, Any] | None,
           order_ref: str | None = None, reservation_id: str | None = None, service_id: str | None = None,
           cutover_id: str | None = None, reason: str | None = None, at: datetime | None = None) -> History:
    """Add one History row attributed to `principal` (a Principal or its name, e.g. "user:alice",
    "cli:root"; None: the unit of work's principal). `local_network_id` scopes who may read it
    (None: only all-network principals)."""
    if principal is None:
        principal = session.info.get("principal")
    name = principal.name if isinstance(principal, Principal) else principal
    if not name:
        raise Invalid("every write must name its principal", field="principal")
    row = History(at=at or utcnow(), principal=name[:100], local_network_id=local_network_id,
                  resource_id=str(resource_id)[:26], resource_kind=resource_kind[:40], action=action[:40],
                  order_ref=order_ref, reservation_id=reservation_id, service_id=service_id,
                  cutover_id=cutover_id, reason=reason[:300] if reason else None,
                  before=_clean(before), after=_clean(after))
    session.add(row)
    session.flush()
    return row
