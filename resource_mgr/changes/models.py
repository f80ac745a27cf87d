"""The one-row counter that hands out change-feed positions (resource_mgr.changes.feed)."""
from __future__ import annotations

from sqlalchemy import CheckConstraint, Integer
from sqlalchemy.orm import Mapped, mapped_column

from resource_mgr.db import Base


class ChangeCounter(Base):
    """The last position handed out. Its single row (id 1) is locked by each committing
    transaction that wrote history, from stamping its rows until its commit completes: that
    lock is what puts positions in commit order."""

    __tablename__ = "change_counter"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)
