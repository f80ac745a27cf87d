"""The Celery application and its task entry points.

`celery -A interfaces.tasks.celery_app worker` finds `app`, built at import from load_settings()
without connecting to anything (Celery connects when a worker starts or a task is sent). Tasks
take ids, never ORM objects, and each job runs in its own units of work (`run_job`)."""
from __future__ import annotations

import logging
import threading

from celery import Celery

from resource_mgr.config import Settings, load_settings
from resource_mgr.db import Database

log = logging.getLogger("rmgr.tasks")

RUN_JOB = "rmgr.run_job"
SWEEP_EXPIRED = "rmgr.sweep_expired"

_databases: dict[str, Database] = {}
_db_lock = threading.Lock()


def _database(url: str) -> Database:
    """One engine per worker process and database URL, made on first use."""
    with _db_lock:
        if url not in _databases:
            _databases[url] = Database(url)
        return _databases[url]


def run_job(self, job_id: str) -> str:  # noqa: ANN001
    """Run one background job by id (never an ORM object)."""
    from resource_mgr.jobs.services import run_job as run

    if not isinstance(job_id, str):
        raise TypeError("run_job takes a job id (a string)")
    return run(_database(self.app.conf.rmgr_database_url), job_id)


def sweep_expired(self) -> str:  # noqa: ANN001
    """Free expired pre-occupations (sent by beat on the schedule)."""
    from resource_mgr.jobs.services import create_and_run
    from resource_mgr.occupancy.sweep import JOB_KIND

    return create_and_run(_database(self.app.conf.rmgr_database_url), JOB_KIND, created_by="system:scheduler")


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings. Without a broker (embedded default) it uses the in-memory
    transport, so importing this module never needs Redis; dispatch.enqueue does not send tasks
    then, it runs jobs in a thread of the serving process. The tasks are the module's functions,
    shared by every app made here; each reads its database from its own app's configuration
    (Celery keeps one callable per task name)."""
    app = Celery("rmgr", broker=settings.celery_broker_url or "memory://",
                 backend=settings.celery_result_backend or None, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # a job whose worker dies is delivered again; run_job skips it if started
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # the job row is the result
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        enable_utc=True,
        rmgr_database_url=settings.database_url,
        # `celery -A interfaces.tasks.celery_app beat` frees expired pre-occupations on a schedule.
        beat_schedule={"sweep-expired-preoccupations": {
            "task": SWEEP_EXPIRED, "schedule": float(settings.sweep_interval_seconds)}},
    )
    app.task(name=RUN_JOB, bind=True)(run_job)
    app.task(name=SWEEP_EXPIRED, bind=True)(sweep_expired)
    return app


settings = load_settings()
app = make_celery(settings)
