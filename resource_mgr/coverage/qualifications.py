"""Stored service qualifications (TMF645 checkServiceQualification): written once when asked,
read again only by the principal who asked, within its local networks."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from resource_mgr.coverage.models import ServiceQualification
from resource_mgr.errors import NotFound


def record(session: Session, *, qualification_id: str, principal: str, local_network_id: str | None,
           request: dict[str, Any], response: dict[str, Any], now: datetime) -> ServiceQualification:
    row = ServiceQualification(id=qualification_id, principal=principal, local_network_id=local_network_id,
                               created_at=now, request=request, response=response)
    session.add(row)
    session.flush()
    return row


def _visible(principal: str, local_network_ids: set[str] | frozenset[str] | None) -> list[Any]:
    where = [ServiceQualification.principal == principal]
    if local_network_ids is not None:  # one whose places resolved nowhere belongs to no city
        where.append(or_(ServiceQualification.local_network_id.in_(sorted(local_network_ids)),
                         ServiceQualification.local_network_id.is_(None)))
    return where


def get(session: Session, qualification_id: str, *, principal: str,
        local_network_ids: set[str] | frozenset[str] | None) -> ServiceQualification:
    row = session.scalars(select(ServiceQualification).where(
        ServiceQualification.id == qualification_id, *_visible(principal, local_network_ids))).first()
    if row is None:
        raise NotFound(f"no checkServiceQualification with id {qualification_id}", field="id")
    return row


def page(session: Session, *, principal: str, local_network_ids: set[str] | frozenset[str] | None,
         limit: int, offset: int) -> tuple[list[ServiceQualification], int]:
    """Newest first, and the total."""
    where = _visible(principal, local_network_ids)
    total = session.scalar(select(func.count()).select_from(ServiceQualification).where(*where)) or 0
    rows = list(session.scalars(select(ServiceQualification).where(*where).order_by(
        ServiceQualification.created_at.desc(), ServiceQualification.id.desc()).limit(limit).offset(offset)))
    return rows, total
