"""A fault: one alarm of the network management system resolved to a device or one of its ports,
open until cleared. The same alarm raised again while the fault is open updates it (severity,
last time, count) instead of opening another.

`open_key` is what "the same alarm" means — the source and the resolved resource — and is set
only while the fault is open: the unique constraint on it makes two concurrent raises of one alarm
open one fault (the loser retries and finds it), while any number of cleared faults of that alarm
stay in the record (NULLs are distinct on both backends)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.ids import new_id

FAULT_STATES = ("open", "cleared")
# ITU-T X.733 perceived severities, as network management systems send them ("cleared" clears).
SEVERITIES = ("critical", "major", "minor", "warning", "indeterminate", "cleared")


def open_key(source: str, resource_id: str) -> str:
    return f"{source}|{resource_id}"


class Fault(Base):
    __tablename__ = "fault"
    __table_args__ = (
        UniqueConstraint("open_key"),
        Index("ix_fault_local_network_id_state", "local_network_id", "state"),
        Index("ix_fault_resource_id", "resource_id"),
        CheckConstraint("state IN ('open', 'cleared')", name="state_known"),
        CheckConstraint("(state = 'open') = (open_key IS NOT NULL AND cleared_at IS NULL)", name="open_or_cleared"),
    )
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id"))
    state: Mapped[str] = mapped_column(String(12), default="open")
    open_key: Mapped[str | None] = mapped_column(String(140))
    source: Mapped[str] = mapped_column(String(100))  # the reporting system, e.g. "nms-huawei-u2000"
    # as the alarm named them (a name or a management address; a port name or number)
    device_ref: Mapped[str] = mapped_column(String(200))
    port_ref: Mapped[str | None] = mapped_column(String(100))
    device_id: Mapped[str] = mapped_column(ForeignKey("resource.id"))
    # the faulty resource: the port (a unit) when the alarm named one, else the device
    resource_id: Mapped[str] = mapped_column(String(26))
    resource_kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(20))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)  # first raise
    last_raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=1)
    opened_by: Mapped[str] = mapped_column(String(100))
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleared_by: Mapped[str | None] = mapped_column(String(100))
    clear_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
