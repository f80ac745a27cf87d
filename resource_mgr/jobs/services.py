"""Background jobs: a registry of job kinds, creating a job, and running one.

A job is a row (`Job`) that any process can read; the work itself runs outside the request,
in a thread of the serving process (embedded default) or in a Celery worker. Either way the
entry point is `run_job(db, job_id)`:

- it claims the job with one conditional UPDATE (queued → running) that also takes a lease
  (owner, expires_at) and counts the attempt, so running the same job twice (a redelivered
  Celery message, two workers, the reaper) does the work once and the second call just reports
  the state it found;
- while the handler runs, a heartbeat thread renews the lease (every third of it), and so does
  each progress call; a runner that dies stops renewing, and its job is taken over (by
  `run_job` itself when the lease has lapsed, or by the reaper, resource_mgr.jobs.reaper);
- the result, or the failure, is written only while the runner still holds the lease: a runner
  that lost its job to another (it was stuck past its lease) writes nothing and stops at its next
  progress call;
- whatever the handler raises, the job ends `failed` with a clean problem in `errors`
  (resource_mgr.jobs.problems: no server path, no raw SQL): a job is never left `running` by an
  exception.

A handler is `handler(db, job_id, progress) -> dict | None`; `progress(done, total)` writes the
counters in a short transaction of its own, so call it between your units of work, never while
one of yours is open (on SQLite that one holds the write lock). Each kind says at registration
what running it again after its runner died does (`Rerun`): a job that is neither idempotent nor
resumable is failed rather than run twice.
"""
from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

import resource_mgr.models  # noqa: F401  (every mapper configured, in any process)
from resource_mgr.clock import utcnow
from resource_mgr.db import Database
from resource_mgr.errors import Conflict, Invalid, NotFound
from resource_mgr.ids import new_id
from resource_mgr.jobs import leases
from resource_mgr.jobs.leases import DEFAULT_POLICY, JobPolicy
from resource_mgr.jobs.models import Job
from resource_mgr.jobs.problems import problem_entry
from resource_mgr.states import JobState

log = logging.getLogger("rmgr.jobs")

Progress = Callable[[int, int], None]
Handler = Callable[[Database, str, Progress], "dict[str, Any] | None"]


class Rerun(StrEnum):
    """What running a job again after its runner died does."""
    IDEMPOTENT = "idempotent"  # from the start, safely: what it did is done again as a no-op, or rolled back
    RESUMABLE = "resumable"  # it carries on from what it recorded (its own rows, Job.done)
    NEVER = "never"  # not safe to run twice: a job whose runner died fails and says so


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    rerun: Rerun


# Modules that register job kinds when imported; `handler_for` imports them on first use so a
# worker process knows every kind without importing the HTTP layer.
KIND_MODULES: list[str] = ["resource_mgr.occupancy.sweep", "resource_mgr.bulk.importer", "resource_mgr.events.delivery",
                           "resource_mgr.cutovers.tasks"]

_registry: dict[str, JobKind] = {}
_loaded = False
_lock = threading.Lock()


def register(kind: str, handler: Handler, *, rerun: Rerun | str = Rerun.NEVER) -> Handler:
    """Make `kind` a job kind run by `handler`. `rerun` says whether a job whose runner died may
    run again (idempotent, resumable) or must fail (never, the cautious default)."""
    if not kind or len(kind) > 40:
        raise ValueError("a job kind is 1–40 characters")
    _registry[kind] = JobKind(kind, handler, Rerun(rerun))
    return handler


def _load_kinds() -> None:
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            for name in KIND_MODULES:
                importlib.import_module(name)
            _loaded = True


def kinds() -> list[str]:
    _load_kinds()
    return sorted(_registry)


def kind_of(kind: str) -> JobKind:
    _load_kinds()
    try:
        return _registry[kind]
    except KeyError:
        raise Invalid(f"unknown job kind {kind!r}; known: {', '.join(sorted(_registry))}", field="kind") from None


def handler_for(kind: str) -> Handler:
    return kind_of(kind).handler


def rerun_of(kind: str) -> Rerun:
    """How a kind may be run again; an unknown kind (a module this process lacks) never is."""
    try:
        return kind_of(kind).rerun
    except Invalid:
        return Rerun.NEVER


def create_job(session: Session, kind: str, params: dict[str, Any] | None = None, created_by: str = "system",
               local_network_id: str | None = None, local_network_ids: list[str] | None = None) -> Job:
    """A queued job of a registered kind, in the caller's transaction (enqueue it after commit).
    `local_network_ids`: the local networks it touches (None: any, or just `local_network_id`)."""
    kind_of(kind)
    scope = sorted(set(local_network_ids)) if local_network_ids is not None else \
        ([local_network_id] if local_network_id else None)
    job = Job(id=new_id(), kind=kind, state=JobState.QUEUED, params=dict(params or {}), total=0, done=0,
              message="", errors=[], created_by=created_by, local_network_id=local_network_id,
              local_network_ids=scope, created_at=utcnow(), attempts=0)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}", field="id")
    return job


class LeaseLost(Conflict):
    """This runner no longer holds the job (it was stuck past its lease and another took over)."""


class _Lease:
    """The lease of one claim, renewed by a heartbeat thread while the handler runs."""

    def __init__(self, db: Database, job_id: str, owner: str, policy: JobPolicy) -> None:
        self.db, self.job_id, self.owner, self.policy = db, job_id, owner, policy
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"rmgr-lease-{job_id}", daemon=True)

    def _mine(self) -> Any:
        return (Job.id == self.job_id, Job.state == JobState.RUNNING, Job.lease_owner == self.owner)

    def renew(self, **values: Any) -> bool:
        expires = utcnow() + timedelta(seconds=self.policy.lease_seconds)
        with self.db.unit_of_work() as uow:
            count = uow.session.execute(update(Job).where(*self._mine()).values(lease_expires_at=expires, **values)
                                        .execution_options(synchronize_session=False)).rowcount
            uow.commit()
        if count != 1:
            self.lost.set()
        return count == 1

    def _beat(self) -> None:
        while not self._stop.wait(self.policy.heartbeat_seconds) and not self.lost.is_set():
            try:
                if not self.renew():
                    log.warning("job %s: lease lost to another runner", self.job_id)
            except Exception as exc:  # e.g. SQLite busy behind a long import: try again next beat
                log.warning("job %s: lease not renewed (%s)", self.job_id, type(exc).__name__)

    def start(self) -> "_Lease":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.policy.lease_seconds)

    def progress(self, done: int, total: int) -> None:
        if self.lost.is_set() or not self.renew(done=max(int(done), 0), total=max(int(total), 0)):
            raise LeaseLost(f"job {self.job_id} was taken over by another runner; this one stops")


def _end(db: Database, job_id: str, owner: str, *, result: dict[str, Any] | None = None,
         exc: BaseException | None = None) -> bool:
    """Finish or fail the job, if this runner still holds it."""
    with db.unit_of_work() as uow:
        job = uow.session.get(Job, job_id, with_for_update=True)
        if job is None or job.state != JobState.RUNNING or job.lease_owner != owner:
            return False
        if exc is None:
            result = dict(result or {})
            job.finish(result)
            if isinstance(result.get("message"), str):
                job.message = result["message"][:300]
        else:
            entry = problem_entry(exc)
            job.fail([entry], message=entry["detail"])
        uow.commit()
    return True


def abandoned_reason(job: Job, policy: JobPolicy, rerun: Rerun) -> str | None:
    """Why a job whose runner died must not run again, or None when it may."""
    if rerun == Rerun.NEVER:
        return (f"its runner stopped before it finished, and a {job.kind} job is not safe to run twice: "
                "check what it did and start a new one")
    if job.attempts >= policy.max_attempts:
        return (f"its runner stopped before it finished {job.attempts} time(s) (killed, out of memory, or the "
                "host went down); it is not tried again")
    return None


def fail_abandoned(job: Job, message: str) -> None:
    job.fail([{"type": "Abandoned", "code": "abandoned", "detail": message}], message=message)


def _claim(db: Database, job_id: str, owner: str, policy: JobPolicy) -> tuple[str | None, str]:
    """(kind, "") when this runner now holds the job, else (None, the state it is in)."""
    with db.unit_of_work() as uow:
        s = uow.session
        job = s.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}", field="job_id")
        now = utcnow()
        if job.state == JobState.QUEUED:
            condition = [Job.state == JobState.QUEUED]
        elif job.state == JobState.RUNNING and leases.lapsed(job.lease_owner, job.lease_expires_at, now):
            why = abandoned_reason(job, policy, rerun_of(job.kind))
            if why is not None:
                job = s.get(Job, job_id, with_for_update=True, populate_existing=True)
                if job.state == JobState.RUNNING and leases.lapsed(job.lease_owner, job.lease_expires_at, now):
                    fail_abandoned(job, why)
                    uow.commit()
                    log.warning("job %s failed: %s", job_id, why)
                return None, str(job.state)
            condition = [Job.state == JobState.RUNNING, Job.lease_owner == job.lease_owner]
            log.warning("job %s: its runner %s is gone; taking it over", job_id, job.lease_owner)
        else:
            return None, str(job.state)
        claimed = s.execute(
            update(Job).where(Job.id == job_id, *condition)
            .values(state=JobState.RUNNING, started_at=now, attempts=Job.attempts + 1, lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=policy.lease_seconds), message="")
            .execution_options(synchronize_session=False)).rowcount
        kind = job.kind
        uow.commit()
    if claimed != 1:
        with db.read_session() as session:
            return None, str(session.scalar(select(Job.state).where(Job.id == job_id)))
    return kind, ""


def run_job(db: Database, job_id: str, *, policy: JobPolicy | None = None) -> str:
    """Run a queued job (or take over one whose runner died) to its end and return its final
    state. A job finished, or running under a live lease, is left alone (its state is
    returned); an unknown id raises NotFound."""
    policy = policy or DEFAULT_POLICY
    owner = leases.new_owner()
    kind, state = _claim(db, job_id, owner, policy)
    if kind is None:
        log.info("job %s not run: it is %s", job_id, state)
        return state

    log.info("job %s (%s) started by %s", job_id, kind, owner)
    lease = _Lease(db, job_id, owner, policy).start()
    try:
        result = handler_for(kind)(db, job_id, lease.progress)
        lease.stop()
        if not _end(db, job_id, owner, result=result):
            log.warning("job %s (%s) done here, but another runner holds it now: result not written", job_id, kind)
            return _state(db, job_id)
    except BaseException as exc:  # noqa: BLE001 — recorded, then re-raised if not an ordinary error
        lease.stop()
        if isinstance(exc, LeaseLost):
            log.warning("job %s (%s): %s", job_id, kind, exc)
            return _state(db, job_id)
        log.exception("job %s (%s) failed", job_id, kind)
        try:
            _end(db, job_id, owner, exc=exc)
        except Exception:  # the database itself may be what failed; say so, keep the first error
            log.exception("job %s: could not record the failure", job_id)
        if not isinstance(exc, Exception):
            raise
        return JobState.FAILED.value
    log.info("job %s (%s) succeeded", job_id, kind)
    return JobState.SUCCEEDED.value


def _state(db: Database, job_id: str) -> str:
    with db.read_session() as session:
        return str(session.scalar(select(Job.state).where(Job.id == job_id)))


def create_and_run(db: Database, kind: str, *, created_by: str, params: dict[str, Any] | None = None,
                   policy: JobPolicy | None = None) -> str:
    """Record a job and run it here and now (periodic work: the scheduler is already in the
    background). The job row still shows what happened."""
    with db.unit_of_work(principal=created_by) as uow:
        job = create_job(uow.session, kind, params, created_by=created_by)
        uow.commit()
    return run_job(db, job.id, policy=policy)
