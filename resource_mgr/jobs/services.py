"""Background jobs: a registry of job kinds, creating a job, and running one.

A job is a row (`Job`) that any process can read; the work itself runs outside the request,
in a thread of the serving process (embedded default) or in a Celery worker. Either way the
entry point is `run_job(db, job_id)`:

- it claims the job with one conditional UPDATE (queued → running), so running the same job
  twice (a redelivered Celery message, two workers) does the work once and the second call just
  reports the state it found;
- the handler does its work in its own units of work and reports progress between them;
- whatever the handler raises, the job ends `failed` with the error in `errors` and `message`:
  a job is never left `running` by an exception.

A handler is `handler(db, job_id, progress) -> dict | None`; `progress(done, total)` writes the
counters in a short transaction of its own, so call it between your units of work, never while
one of yours is open (on SQLite that one holds the write lock).
"""
from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

import resource_mgr.models  # noqa: F401  (every mapper configured, in any process)
from resource_mgr.clock import utcnow
from resource_mgr.db import Database
from resource_mgr.errors import DomainError, Invalid, NotFound
from resource_mgr.ids import new_id
from resource_mgr.jobs.models import Job
from resource_mgr.states import JobState

log = logging.getLogger("rmgr.jobs")

Progress = Callable[[int, int], None]
Handler = Callable[[Database, str, Progress], "dict[str, Any] | None"]

# Modules that register job kinds when imported; `handler_for` imports them on first use so a
# worker process knows every kind without importing the HTTP layer.
KIND_MODULES: list[str] = ["resource_mgr.occupancy.sweep", "resource_mgr.bulk.importer"]

_registry: dict[str, Handler] = {}
_loaded = False
_lock = threading.Lock()


def register(kind: str, handler: Handler) -> Handler:
    if not kind or len(kind) > 40:
        raise ValueError("a job kind is 1–40 characters")
    _registry[kind] = handler
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


def handler_for(kind: str) -> Handler:
    _load_kinds()
    try:
        return _registry[kind]
    except KeyError:
        raise Invalid(f"unknown job kind {kind!r}; known: {', '.join(sorted(_registry))}", field="kind") from None


def create_job(session: Session, kind: str, params: dict[str, Any] | None = None, created_by: str = "system",
               local_network_id: str | None = None) -> Job:
    """A queued job of a registered kind, in the caller's transaction (enqueue it after commit)."""
    handler_for(kind)
    job = Job(id=new_id(), kind=kind, state=JobState.QUEUED, params=dict(params or {}), total=0, done=0,
              message="", errors=[], created_by=created_by, local_network_id=local_network_id,
              created_at=utcnow())
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job with id {job_id}", field="id")
    return job


def _progress_writer(db: Database, job_id: str) -> Progress:
    def progress(done: int, total: int) -> None:
        with db.unit_of_work() as uow:
            uow.session.execute(update(Job).where(Job.id == job_id, Job.state == JobState.RUNNING)
                                .values(done=max(int(done), 0), total=max(int(total), 0)))
            uow.commit()

    return progress


def _error_entry(exc: BaseException) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": type(exc).__name__, "detail": str(exc)[:1000]}
    if isinstance(exc, DomainError):
        entry["code"] = exc.code
        if exc.field:
            entry["field"] = exc.field
    return entry


def _record_failure(db: Database, job_id: str, exc: BaseException) -> None:
    with db.unit_of_work() as uow:
        job = uow.session.get(Job, job_id)
        if job is not None and job.state == JobState.RUNNING:
            job.fail([_error_entry(exc)], message=f"{type(exc).__name__}: {exc}")
        uow.commit()


def run_job(db: Database, job_id: str) -> str:
    """Run a queued job to its end and return its final state. A job already running or finished
    is left alone (its state is returned); an unknown id raises NotFound."""
    with db.unit_of_work() as uow:
        job = uow.session.get(Job, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}", field="job_id")
        kind = job.kind
        claimed = uow.session.execute(
            update(Job).where(Job.id == job_id, Job.state == JobState.QUEUED)
            .values(state=JobState.RUNNING, started_at=utcnow())
            .execution_options(synchronize_session=False)).rowcount
        uow.commit()
    if claimed != 1:
        with db.read_session() as session:
            state = session.scalar(select(Job.state).where(Job.id == job_id))
        log.info("job %s not run: it is %s", job_id, state)
        return str(state)

    log.info("job %s (%s) started", job_id, kind)
    try:
        handler = handler_for(kind)
        result = handler(db, job_id, _progress_writer(db, job_id))
        with db.unit_of_work() as uow:
            job = uow.session.get(Job, job_id)
            result = dict(result or {})
            job.finish(result)
            if isinstance(result.get("message"), str):
                job.message = result["message"][:300]
            uow.commit()
    except BaseException as exc:  # noqa: BLE001 — recorded, then re-raised if not an ordinary error
        log.exception("job %s (%s) failed", job_id, kind)
        try:
            _record_failure(db, job_id, exc)
        except Exception:  # the database itself may be what failed; say so, keep the first error
            log.exception("job %s: could not record the failure", job_id)
        if not isinstance(exc, Exception):
            raise
        return JobState.FAILED.value
    log.info("job %s (%s) succeeded", job_id, kind)
    return JobState.SUCCEEDED.value


def create_and_run(db: Database, kind: str, *, created_by: str, params: dict[str, Any] | None = None) -> str:
    """Record a job and run it here and now (periodic work: the scheduler is already in the
    background). The job row still shows what happened."""
    with db.unit_of_work(principal=created_by) as uow:
        job = create_job(uow.session, kind, params, created_by=created_by)
        uow.commit()
    return run_job(db, job.id)
