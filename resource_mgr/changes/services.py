"""Reading the change feed: what a follower (the topology graph in every process) applies.

A follower keeps one number, the last position it applied. `changes_since(session, n, limit)`
returns the committed changes after n in position order; it applies them and asks again from
`last_position`. Positions are handed out in commit order (resource_mgr.changes.feed), so nothing
committed later can appear below a position already read: no change is missed, none twice.
Positions may have gaps; a follower must not wait for them to fill.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resource_mgr.errors import Invalid
from resource_mgr.occupancy.models import History

MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Changes:
    """One page of the feed. `changes` are History rows in position order (each has its
    `position`); resume with `changes_since(session, last_position)`. `more` says the page was
    full, so asking again at once will find more."""

    changes: list[History]
    last_position: int
    more: bool


def changes_since(session: Session, position: int, limit: int = 1000) -> Changes:
    """The committed changes with a position above `position`, at most `limit`, lowest first."""
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise Invalid("position must be a whole number ≥ 0 (0: from the beginning)", field="position")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    rows = list(session.scalars(
        select(History).where(History.position > position).order_by(History.position).limit(limit)))
    return Changes(changes=rows, last_position=rows[-1].position if rows else position, more=len(rows) == limit)


def head(session: Session) -> int:
    """The highest committed position (0 for an empty feed): where a follower that has just
    loaded the current state starts following. Read it before loading that state (or in the same
    snapshot): a change committed in between is then applied twice, never missed."""
    return session.scalar(select(func.coalesce(func.max(History.position), 0))) or 0
