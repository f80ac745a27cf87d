"""A cutover (割接) project and its mapping rows.

`Cutover` holds the name, the window, the state (draft → locked → applying → applied →
rolled_back, or cancelled / failed), the validation report and the progress of its job.
`CutoverRow` is one line of the mapping as given (old unit, new unit, keep_number), in input
order (`row`, 1-based), and what the cutover did with it: the FTTH path designed for a
copper-to-fibre row (`path`), the holders of the new unit's pre-occupation (`holders`), and
what apply changed (`moved`: the services' paths, products and numbers before, the connections
re-pointed) so that rollback puts back exactly what was there.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.ids import new_id
from resource_mgr.occupancy.models import StatusType
from resource_mgr.states import CutoverState

# how a row moves its services: the same kind of unit, or a copper head port to an FTTH path
SAME_KIND = "same"
COPPER_TO_FIBRE = "ftth"


class Cutover(Base):
    __tablename__ = "cutover"
    __table_args__ = (
        Index("ix_cutover_state_created_at", "state", "created_at"),
        Index("ix_cutover_local_network_id", "local_network_id"),
    )
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    # the local network of its units (None only when no row names a unit that exists)
    local_network_id: Mapped[str | None] = mapped_column(ForeignKey("local_network.id"))
    state: Mapped[CutoverState] = mapped_column(StatusType(CutoverState), default=CutoverState.DRAFT)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    valid: Mapped[bool] = mapped_column(Boolean, default=False)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # the last apply or rollback job, and its counters as the cutover shows them
    job_id: Mapped[str | None] = mapped_column(String(26))
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # rolled back or cancelled
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    __mapper_args__ = {"version_id_col": version}


class CutoverRow(Base):
    __tablename__ = "cutover_row"
    __table_args__ = (Index("ix_cutover_row_old_unit_id", "old_unit_id"),
                      Index("ix_cutover_row_new_unit_id", "new_unit_id"))
    cutover_id: Mapped[str] = mapped_column(ForeignKey("cutover.id", ondelete="CASCADE"), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1-based, input order
    # as given: an unknown id stays here (the report says so); no foreign key
    old_unit_id: Mapped[str] = mapped_column(String(64))
    new_unit_id: Mapped[str] = mapped_column(String(64))
    keep_number: Mapped[bool] = mapped_column(Boolean, default=True)
    mode: Mapped[str] = mapped_column(String(10), default=SAME_KIND)
    path: Mapped[list[str] | None] = mapped_column(JSON)  # copper to fibre: the FTTH path, customer side first
    holders: Mapped[list[str] | None] = mapped_column(JSON)  # the pre-occupations the lock made on new units
    moved: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # what apply changed (rollback puts it back)
