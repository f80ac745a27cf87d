"""Background jobs: a record of state, progress and result that any process can read."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.errors import IllegalTransition
from resource_mgr.ids import new_id
from resource_mgr.states import JobState


class Job(Base):
    __tablename__ = "job"
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(40))  # import, export, cutover_apply, sweep, ...
    state: Mapped[str] = mapped_column(String(12), default=JobState.QUEUED)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(String(300), default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    local_network_id: Mapped[str | None] = mapped_column(ForeignKey("local_network.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def progress(self) -> float:
        if self.state == JobState.SUCCEEDED:
            return 1.0
        return round(self.done / self.total, 4) if self.total else 0.0

    def start(self) -> None:
        if self.state != JobState.QUEUED:
            raise IllegalTransition(f"job {self.id} is {self.state}, not queued")
        self.state, self.started_at = JobState.RUNNING, utcnow()

    def finish(self, result: dict[str, Any]) -> None:
        self.state, self.result, self.finished_at = JobState.SUCCEEDED, result, utcnow()
        self.done = max(self.done, self.total)

    def fail(self, errors: list[Any], message: str = "") -> None:
        self.state, self.errors, self.finished_at = JobState.FAILED, errors, utcnow()
        self.message = message[:300]
