"""Background jobs: a record of state, progress and result that any process can read, the lease
of the runner working on one, and the scheduler lease (which process runs the periodic work)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.errors import IllegalTransition
from resource_mgr.ids import new_id
from resource_mgr.states import JobState

# Stored as the enum's values ("queued", ...), in a VARCHAR with a CHECK constraint on both backends.
JOB_STATE = Enum(JobState, name="job_state", native_enum=False, create_constraint=True, length=12,
                 values_callable=lambda states: [s.value for s in states], validate_strings=True)


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        # what the reaper looks for: lapsed running jobs, queued jobs never (or long ago) sent
        Index("ix_job_state_lease_expires_at", "state", "lease_expires_at"),
        Index("ix_job_kind_created_at", "kind", "created_at"),  # the scheduler's "when was the last sweep"
    )
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(40))  # import, export, cutover_apply, sweep, ...
    state: Mapped[JobState] = mapped_column(JOB_STATE, default=JobState.QUEUED)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(String(300), default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    errors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(100), default="system")
    local_network_id: Mapped[str | None] = mapped_column(ForeignKey("local_network.id"))
    # The local networks the job touches; None: any of them (only a principal of every local
    # network may read such a job). A job of one local network has [local_network_id].
    local_network_ids: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Handed to a runner (the broker, or an embedded pool) last at; None: never sent.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How many times a runner claimed the job (a runner that dies leaves one more).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The runner working on it ("host:pid:token") and until when, unless it renews the lease.
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

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
        self.lease_owner = self.lease_expires_at = None

    def fail(self, errors: list[Any], message: str = "") -> None:
        self.state, self.errors, self.finished_at = JobState.FAILED, errors, utcnow()
        self.message = message[:300]
        self.lease_owner = self.lease_expires_at = None


class SchedulerLease(Base):
    """Who runs a piece of periodic work (the expiry sweep, the job reaper) among several
    processes without a broker: the owner renews `expires_at`; when it lapses another takes over."""
    __tablename__ = "scheduler_lease"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
