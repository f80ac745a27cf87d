"""Shared pieces of the v1 API: pagination (limit/offset, total in X-Total-Count)."""
from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Integer
from apiflask.validators import Range
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


class PageQuery(Schema):
    limit = Integer(load_default=50, validate=Range(1, 1000))
    offset = Integer(load_default=0, validate=Range(0, 10_000_000))


def paginate(session: Session, stmt: Select, limit: int, offset: int) -> tuple[list[Any], dict[str, str]]:
    """One page of `stmt` and the X-Total-Count header."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = list(session.scalars(stmt.limit(limit).offset(offset)))
    return rows, {"X-Total-Count": str(total)}
