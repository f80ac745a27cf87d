"""The reaper: finds jobs nobody will run and says which to send (again).

- A running job whose lease lapsed (its runner died: a killed Celery worker, a serving process
  gone with its embedded pool) is queued again, or failed when its kind must not run twice or it
  has used its attempts.
- A queued job not sent within the grace period after it was committed (the process died
  between the commit and the send), sent long ago but still queued (a lost message), or waiting
  in the pool of a process of this host that no longer exists, is sent.

`reap` changes the rows in one transaction and returns the ids; the caller sends them after
the commit (Celery beat's task sends them to the broker, the embedded scheduler to its pool), and
calls `unsent` for those it could not send. Sending a job twice is harmless: the claim in
`run_job` lets one runner in.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from resource_mgr.clock import utcnow
from resource_mgr.db import Database
from resource_mgr.jobs import leases
from resource_mgr.jobs.leases import DEFAULT_POLICY, JobPolicy
from resource_mgr.jobs.models import Job
from resource_mgr.jobs.services import abandoned_reason, fail_abandoned, rerun_of
from resource_mgr.states import JobState

log = logging.getLogger("rmgr.jobs")

BATCH = 500
REAPER = "system:reaper"


@dataclass
class Reaped:
    send: list[str] = field(default_factory=list)  # to send now (queued again, or never sent)
    requeued: list[str] = field(default_factory=list)  # running jobs whose runner died, queued again
    failed: list[str] = field(default_factory=list)  # ... failed instead (attempts used, or not re-runnable)

    def as_dict(self) -> dict[str, int]:
        return {"sent": len(self.send), "requeued": len(self.requeued), "failed": len(self.failed)}


def reap(db: Database, policy: JobPolicy | None = None, now: datetime | None = None) -> Reaped:
    policy = policy or DEFAULT_POLICY
    now = now or utcnow()
    out = Reaped()
    with db.unit_of_work(principal=REAPER) as uow:
        s = uow.session
        skip_locked = s.get_bind().dialect.name == "postgresql"
        running = select(Job).where(Job.state == JobState.RUNNING, or_(
            Job.lease_expires_at.is_(None), Job.lease_expires_at <= now,
            leases.owned_here_clause(Job.lease_owner))).order_by(Job.created_at).limit(BATCH)
        for job in s.scalars(running.with_for_update(skip_locked=True) if skip_locked else running):
            if not leases.lapsed(job.lease_owner, job.lease_expires_at, now):
                continue
            why = abandoned_reason(job, policy, rerun_of(job.kind))
            gone = job.lease_owner
            if why is not None:
                fail_abandoned(job, why)
                out.failed.append(job.id)
                log.warning("job %s (%s) failed: %s", job.id, job.kind, why)
                continue
            job.state, job.lease_owner, job.lease_expires_at, job.sent_at = JobState.QUEUED, None, None, now
            job.message = (f"its runner stopped before it finished; queued again "
                           f"(attempt {job.attempts + 1} of {policy.max_attempts})")
            out.requeued.append(job.id)
            out.send.append(job.id)
            log.warning("job %s (%s): runner %s gone, queued again", job.id, job.kind, gone)

        grace = now - timedelta(seconds=policy.send_grace_seconds)
        resend = now - timedelta(seconds=policy.resend_seconds)
        queued = select(Job).where(Job.state == JobState.QUEUED, Job.id.not_in(out.send) if out.send else True, or_(
            and_(Job.sent_at.is_(None), Job.created_at <= grace),
            Job.sent_at <= resend,
            leases.owned_here_clause(Job.lease_owner))).order_by(Job.created_at).limit(BATCH)
        for job in s.scalars(queued.with_for_update(skip_locked=True) if skip_locked else queued):
            # in the pool of a process of this host (lease_owner): sent again only if it is gone
            if job.sent_at is not None and job.sent_at > resend and leases.alive_here(job.lease_owner) is not False:
                continue
            job.sent_at, job.lease_owner = now, None
            out.send.append(job.id)
        uow.commit()
    if out.send or out.failed:
        log.info("reaper: %s", out.as_dict())
    return out


def mark_sent(db: Database, job_id: str, pool_owner: str | None = None) -> None:
    """Record that a queued job was handed to a runner (the broker; or this process's pool,
    named by `pool_owner`, so that if this process dies the reaper sends it elsewhere at once)."""
    with db.unit_of_work() as uow:
        uow.session.execute(update(Job).where(Job.id == job_id, Job.state == JobState.QUEUED)
                            .values(sent_at=utcnow(), lease_owner=pool_owner)
                            .execution_options(synchronize_session=False))
        uow.commit()


def unsent(db: Database, job_ids: list[str]) -> None:
    """These could not be sent: the reaper tries them again after the grace period."""
    if not job_ids:
        return
    with db.unit_of_work() as uow:
        uow.session.execute(update(Job).where(Job.id.in_(job_ids), Job.state == JobState.QUEUED)
                            .values(sent_at=None, lease_owner=None).execution_options(synchronize_session=False))
        uow.commit()
