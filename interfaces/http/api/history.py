"""GET /api/v1/history: the operation log — every change of state (unit transitions) and every other
write (tokens, users, templates, imports: resource_mgr.security.audit), newest first.

Who may read it: auditor, admin, maintenance, dispatch and planner — everyone who changes or
checks inventory and orders. Not sales: the counter works on its own orders and needs no
one else's trail. Rows are limited to the caller's local networks; rows about no single local
network (a token valid for several) are seen only by principals with every local network.

It is also the change feed: every row has a `position` given in commit order
(resource_mgr.changes). With `after=N` the rows above position N come oldest first, so a
follower that asks again with the last position it saw misses nothing (docs/change-feed.md).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import DateTime, Dict, Integer, String
from apiflask.validators import Length, Range
from sqlalchemy import func, select

from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.occupancy.models import History
from resource_mgr.states import Role

from interfaces.http.api.common import PageQuery
from interfaces.http.auth import require
from interfaces.http.context import principal, read_session

bp = APIBlueprint("history", __name__)

HISTORY_READERS = (Role.AUDITOR, Role.ADMIN, Role.MAINTENANCE, Role.DISPATCH, Role.PLANNER)


class HistoryQuery(PageQuery):
    after = Integer(validate=Range(0, 2**31 - 1), metadata={
        "description": "change-feed mode: the rows with a position above this one, in position order"})
    principal = String(validate=Length(1, 100))
    resource_id = String(validate=Length(1, 26))
    order_ref = String(validate=Length(1, 100))
    service_id = String(validate=Length(1, 26))
    reservation_id = String(validate=Length(1, 26))
    cutover_id = String(validate=Length(1, 26))
    action = String(validate=Length(1, 40))
    since = DateTime(metadata={"description": "ISO 8601; without an offset, UTC"})
    until = DateTime(metadata={"description": "ISO 8601, exclusive; without an offset, UTC"})


class HistoryOut(Schema):
    id = Integer()
    position = Integer(metadata={"description": "place in the change feed, in commit order"})
    at = String(metadata={"format": "date-time"})
    principal = String()
    action = String()
    resource_id = String()
    resource_kind = String()
    local_network = String(allow_none=True)
    order_ref = String(allow_none=True)
    reservation_id = String(allow_none=True)
    service_id = String(allow_none=True)
    cutover_id = String(allow_none=True)
    reason = String(allow_none=True)
    before = Dict()
    after = Dict()


def _aware(value: Any) -> Any:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


_SPAN = datetime.max - datetime.min


def _offset_from_min(value: datetime) -> timedelta:
    """The instant as a distance from 0001-01-01T00:00Z, computed without converting to UTC (which
    overflows for 0001-01-01T00:00+01:00 or 9999-12-31T23:59-01:00)."""
    return (value.replace(tzinfo=None) - datetime.min) - (value.utcoffset() or timedelta(0))


def _utc_clamped(value: datetime) -> datetime:
    """The instant in UTC; an instant before 0001-01-01Z or after 9999-12-31Z (reachable only
    through an offset) is clamped to that bound, which selects exactly the same rows."""
    offset = _offset_from_min(value)
    if offset < timedelta(0):
        return datetime.min.replace(tzinfo=timezone.utc)
    if offset > _SPAN:
        return datetime.max.replace(tzinfo=timezone.utc)
    return datetime.min.replace(tzinfo=timezone.utc) + offset


@bp.get("/history")
@bp.input(HistoryQuery, location="query", arg_name="query")
@bp.output(HistoryOut(many=True))
@bp.doc(summary="Operation log, newest first; total in X-Total-Count")
@require(*HISTORY_READERS)
def list_history(query: dict[str, Any]):
    since, until = _aware(query.get("since")), _aware(query.get("until"))
    if since is not None and until is not None and _offset_from_min(until) <= _offset_from_min(since):
        raise Invalid("until must be after since", field="until")
    since = _utc_clamped(since) if since is not None else None
    until = _utc_clamped(until) if until is not None else None
    conditions = [principal().scope_filter(History.local_network_id)]
    feed = query.get("after") is not None
    if feed:
        conditions.append(History.position > query["after"])
    for name in ("principal", "resource_id", "order_ref", "service_id", "reservation_id", "cutover_id", "action"):
        if query.get(name):
            conditions.append(getattr(History, name) == query[name])
    if since is not None:
        conditions.append(History.at >= since)
    if until is not None:
        conditions.append(History.at < until)
    session = read_session()
    total = session.scalar(select(func.count()).select_from(History).where(*conditions))
    rows = session.execute(
        select(History, LocalNetwork.code).outerjoin(LocalNetwork, LocalNetwork.id == History.local_network_id)
        .where(*conditions).order_by(*((History.position,) if feed else (History.at.desc(), History.id.desc())))
        .limit(query["limit"]).offset(query["offset"])).all()
    out = [{
        "id": h.id, "position": h.position, "at": _aware(h.at).isoformat(), "principal": h.principal, "action": h.action,
        "resource_id": h.resource_id, "resource_kind": h.resource_kind, "local_network": code,
        "order_ref": h.order_ref, "reservation_id": h.reservation_id, "service_id": h.service_id,
        "cutover_id": h.cutover_id, "reason": h.reason, "before": h.before or {}, "after": h.after or {},
    } for h, code in rows]
    return out, 200, {"X-Total-Count": str(total)}
