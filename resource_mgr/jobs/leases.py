"""Leases: who is working on a job (or running the periodic work) and until when.

A runner is named "host:pid:token". Its lease lapses when `expires_at` passes without a
renewal, or at once when the owner is a process of this host that no longer exists (a killed
worker on this machine is known dead without waiting). A process of this host that is alive
keeps its lease even past `expires_at`: on SQLite a long import holds the only write lock, so
its heartbeat cannot write, and taking over a job whose runner is merely blocked would run it
twice. Clocks: expiry times are written with each host's clock; keep hosts in NTP sync.
"""
from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.db import Database
from resource_mgr.jobs.models import SchedulerLease

HOST = socket.gethostname()[:60] or "localhost"


@dataclass(frozen=True)
class JobPolicy:
    """How long a lease lasts, how often a dying job is tried, when unsent jobs are sent."""
    lease_seconds: int = 60
    max_attempts: int = 3
    send_grace_seconds: int = 30
    resend_seconds: int = 900

    @property
    def heartbeat_seconds(self) -> float:
        return max(self.lease_seconds / 3, 0.2)

    @classmethod
    def from_settings(cls, settings: Any) -> "JobPolicy":
        return cls(lease_seconds=settings.job_lease_seconds, max_attempts=settings.job_max_attempts,
                   send_grace_seconds=settings.job_send_grace_seconds, resend_seconds=settings.job_resend_seconds)

    def as_dict(self) -> dict[str, int]:
        return {"lease_seconds": self.lease_seconds, "max_attempts": self.max_attempts,
                "send_grace_seconds": self.send_grace_seconds, "resend_seconds": self.resend_seconds}


DEFAULT_POLICY = JobPolicy()


def new_owner() -> str:
    """A fresh runner name for one claim: this host, this process, a random token."""
    return f"{HOST}:{os.getpid()}:{secrets.token_hex(6)}"


_process_owner: dict[int, str] = {}


def process_owner() -> str:
    """This process's name (a new one after a fork: a forked worker is another process)."""
    pid = os.getpid()
    if pid not in _process_owner:
        _process_owner[pid] = f"{HOST}:{pid}:{secrets.token_hex(6)}"
    return _process_owner[pid]


def alive_here(owner: str | None) -> bool | None:
    """True/False when `owner` is a process of this host that exists / does not; None when it
    is another host's (or not a runner name), so only its lease's expiry can tell."""
    if not owner:
        return None
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OSError:
        return None
    return True


def lapsed(owner: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """Whether the holder of this lease is gone (see the module's doc)."""
    if owner is None or expires_at is None:
        return True
    here = alive_here(owner)
    if here is not None:
        return not here
    return expires_at <= now


def owned_here_clause(column: Any) -> Any:
    """Rows whose owner is a process of this host (their liveness is checked, not their expiry)."""
    return column.startswith(f"{HOST}:", autoescape=True)


# -- the scheduler lease ----------------------------------------------------------------------------

SCHEDULER = "scheduler"


@dataclass
class LeaseState:
    held: bool
    owner: str | None = None
    acquired: bool = False  # newly taken (it was someone else's, or nobody's)
    previous: str | None = field(default=None)


def _insert_missing(session: Any, name: str, owner: str, now: datetime, seconds: int) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    session.execute(insert(SchedulerLease).values(name=name, owner=owner, expires_at=now + timedelta(seconds=seconds),
                                                  acquired_at=now).on_conflict_do_nothing(index_elements=["name"]))


def hold(db: Database, owner: str, seconds: int, name: str = SCHEDULER, now: datetime | None = None) -> LeaseState:
    """Take or renew the lease `name` for `owner` unless another live holder has it."""
    now = now or utcnow()
    with db.unit_of_work(principal="system:scheduler") as uow:
        s = uow.session
        lease = s.scalar(select(SchedulerLease).where(SchedulerLease.name == name).with_for_update())
        if lease is None:
            _insert_missing(s, name, owner, now, seconds)
            s.expire_all()
            lease = s.scalar(select(SchedulerLease).where(SchedulerLease.name == name).with_for_update())
            if lease.owner == owner:
                uow.commit()
                return LeaseState(held=True, owner=owner, acquired=True)
        if lease.owner != owner and not lapsed(lease.owner, lease.expires_at, now):
            return LeaseState(held=False, owner=lease.owner)
        acquired = lease.owner != owner
        previous = lease.owner if acquired else None
        lease.owner, lease.expires_at = owner, now + timedelta(seconds=seconds)
        if acquired:
            lease.acquired_at = now
        uow.commit()
    return LeaseState(held=True, owner=owner, acquired=acquired, previous=previous)


def release(db: Database, owner: str, name: str = SCHEDULER) -> None:
    """Give the lease up (a clean stop), so another process takes it at once."""
    with db.unit_of_work(principal="system:scheduler") as uow:
        lease = uow.session.scalar(select(SchedulerLease).where(SchedulerLease.name == name).with_for_update())
        if lease is not None and lease.owner == owner:
            lease.expires_at = utcnow() - timedelta(seconds=1)
            lease.owner = f"released:{owner}"[:100]
        uow.commit()
