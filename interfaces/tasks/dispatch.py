"""Getting a job run: through Celery when a broker is configured, otherwise in a small thread
pool of the serving process (embedded default). Either way after the unit of work that created
the job has committed, so a worker never looks for a job that is not there yet."""
from __future__ import annotations

import atexit
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from resource_mgr.config import Settings
from resource_mgr.db import Database, UnitOfWork
from resource_mgr.errors import Unavailable

log = logging.getLogger("rmgr.tasks")

EMBEDDED_THREADS = 2

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_celery_apps: dict[tuple[str, str], Any] = {}


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=EMBEDDED_THREADS, thread_name_prefix="rmgr-job")
            atexit.register(_executor.shutdown, wait=False, cancel_futures=True)
        return _executor


def _run_embedded(db: Database, job_id: str) -> None:
    from resource_mgr.jobs.services import run_job

    try:
        run_job(db, job_id)
    except Exception:  # run_job records failures itself; this is only for "no such job"
        log.exception("embedded job %s could not run", job_id)


def _celery_for(settings: Settings) -> Any:
    key = (settings.celery_broker_url, settings.celery_result_backend)
    if key not in _celery_apps:
        from interfaces.tasks.celery_app import make_celery

        _celery_apps[key] = make_celery(settings)
    return _celery_apps[key]


def _mark_unqueued(db: Database, job_id: str, exc: Exception) -> None:
    from resource_mgr.clock import utcnow
    from resource_mgr.jobs.models import Job
    from resource_mgr.states import JobState

    with db.unit_of_work() as uow:
        job = uow.session.get(Job, job_id)
        if job is not None and job.state == JobState.QUEUED:
            job.state, job.finished_at = JobState.FAILED, utcnow()
            job.errors = [{"type": type(exc).__name__, "detail": str(exc)[:1000], "code": "unavailable"}]
            job.message = "the job could not be queued: the task broker is not reachable"
        uow.commit()


def submit(db: Database, settings: Settings, job_id: str) -> Future | None:
    """Send or start the job now (the job row must already be committed)."""
    if settings.celery_broker_url:
        try:
            _celery_for(settings).send_task("rmgr.run_job", args=[job_id], retry=True,
                                            retry_policy={"max_retries": 2, "interval_start": 0.2,
                                                          "interval_step": 0.5, "interval_max": 1})
        except Exception as exc:
            log.error("could not send job %s to the broker: %s", job_id, exc)
            _mark_unqueued(db, job_id, exc)
            raise Unavailable("the task broker is not reachable; the job was not queued", job_id=job_id) from None
        return None
    return _pool().submit(_run_embedded, db, job_id)


def enqueue(uow: UnitOfWork | None, db: Database, settings: Settings, job_id: str) -> None:
    """Have the job run once `uow` commits (at once when there is no unit of work)."""
    if uow is None:
        submit(db, settings, job_id)
    else:
        uow.after_commit(lambda: submit(db, settings, job_id))


def start_embedded_scheduler(db: Database, settings: Settings) -> threading.Thread | None:
    """Without a broker there is no Celery beat: a daemon thread of the (single) serving process
    sweeps expired pre-occupations every `sweep_interval_seconds`."""
    if settings.celery_broker_url:
        return None
    from resource_mgr.jobs.services import create_and_run
    from resource_mgr.occupancy.sweep import JOB_KIND

    def loop() -> None:
        while not _stop.wait(settings.sweep_interval_seconds):
            try:
                create_and_run(db, JOB_KIND, created_by="system:scheduler")
            except Exception:  # the job row records failures; keep the schedule going
                log.exception("scheduled sweep failed")

    thread = threading.Thread(target=loop, name="rmgr-scheduler", daemon=True)
    thread.start()
    return thread


_stop = threading.Event()
