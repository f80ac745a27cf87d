"""The Celery application and its task entry points.

`celery -A interfaces.tasks.celery_app worker` finds `app`, built at import from load_settings()
without connecting to anything (Celery connects when a worker starts or a task is sent). Tasks
take ids, never ORM objects, are safe to run twice, and each job runs in its own units of work
(`run_job`). `celery -A interfaces.tasks.celery_app beat` (one beat process) sends the expiry
sweep, the job reaper and the poll for event deliveries due on their schedules.

What recovers a job whose worker died: not the broker alone. `acks_late` with
`reject_on_worker_lost` puts the message back when a prefork child dies, but on Redis a message
of a worker killed outright comes back only after the transport's visibility timeout (an hour by
default). The job's lease does it: the dead worker stops renewing it, and the reaper (beat,
every `job_reap_interval_seconds`) queues the job again and sends it, up to `job_max_attempts`
claims (docs/jobs.md)."""
from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery

from resource_mgr.config import Settings, load_settings
from resource_mgr.db import Database

log = logging.getLogger("rmgr.tasks")

RUN_JOB = "rmgr.run_job"
SWEEP_EXPIRED = "rmgr.sweep_expired"
REAP_JOBS = "rmgr.reap_jobs"
DELIVER_EVENTS = "rmgr.deliver_events"
SEND_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}

_databases: dict[str, Database] = {}
_db_lock = threading.Lock()


def _database(url: str) -> Database:
    """One engine per worker process and database URL, made on first use."""
    with _db_lock:
        if url not in _databases:
            _databases[url] = Database(url)
            _install_event_delivery(_databases[url])
        return _databases[url]


def _install_event_delivery(db: Database) -> None:
    """Events emitted by a task (an expiry sweep) start their delivery job after its commit."""
    from interfaces.tasks.dispatch import install_event_delivery

    install_event_delivery(db, settings)  # this process's settings: its broker


def _policy(app: Celery) -> Any:
    from resource_mgr.jobs.leases import JobPolicy

    return JobPolicy(**app.conf.rmgr_job_policy)


def run_job(self, job_id: str) -> str:  # noqa: ANN001
    """Run one background job by id (never an ORM object). Safe to deliver twice."""
    from resource_mgr.jobs.services import run_job as run

    if not isinstance(job_id, str):
        raise TypeError("run_job takes a job id (a string)")
    return run(_database(self.app.conf.rmgr_database_url), job_id, policy=_policy(self.app))


def sweep_expired(self) -> str:  # noqa: ANN001
    """Free expired pre-occupations (sent by beat on the schedule)."""
    from resource_mgr.jobs.services import create_and_run
    from resource_mgr.occupancy.sweep import JOB_KIND

    return create_and_run(_database(self.app.conf.rmgr_database_url), JOB_KIND, created_by="system:scheduler",
                          policy=_policy(self.app))


def reap_jobs(self) -> dict[str, int]:  # noqa: ANN001
    """Queue again the jobs whose worker died, and send those never sent (sent by beat)."""
    from resource_mgr.jobs.reaper import reap, unsent

    db = _database(self.app.conf.rmgr_database_url)
    reaped = reap(db, _policy(self.app))
    failed: list[str] = []
    for job_id in reaped.send:  # after reap's commit: a worker finds the row as sent
        try:
            self.app.send_task(RUN_JOB, args=[job_id], retry=True, retry_policy=SEND_RETRY)
        except Exception as exc:
            log.error("reaper: could not send job %s: %s", job_id, exc)
            failed.append(job_id)
    unsent(db, failed)
    return reaped.as_dict()


def deliver_events(self) -> str | None:  # noqa: ANN001
    """Deliver the event deliveries now due (sent by beat every `event_poll_seconds`): when any
    is due and no delivery job is queued or running, one is made and run here."""
    from resource_mgr.events import delivery
    from resource_mgr.jobs.services import run_job

    db = _database(self.app.conf.rmgr_database_url)
    with db.unit_of_work(principal=delivery.CREATED_BY) as uow:
        job_id = delivery.new_job(uow.session, delivery.DeliveryPolicy.from_dict(self.app.conf.rmgr_event_policy),
                                  only_if_due=True)
        uow.commit()
    return None if job_id is None else run_job(db, job_id, policy=_policy(self.app))


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings. Without a broker (embedded default) it uses the in-memory
    transport, so importing this module never needs Redis; dispatch.enqueue does not send tasks
    then, it runs jobs in a thread of the serving process. The tasks are the module's functions,
    shared by every app made here; each reads its database from its own app's configuration
    (Celery keeps one callable per task name)."""
    from resource_mgr.events.delivery import DeliveryPolicy
    from resource_mgr.jobs.leases import JobPolicy

    app = Celery("rmgr", broker=settings.celery_broker_url or "memory://",
                 backend=settings.celery_result_backend or None, set_as_current=False)
    app.conf.update(
        # Acknowledged when the task ends, and put back if a prefork child dies under it; the
        # job's lease and the reaper cover a worker killed outright (see the module's doc).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # the job row is the result
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        enable_utc=True,
        rmgr_database_url=settings.database_url,
        rmgr_job_policy=JobPolicy.from_settings(settings).as_dict(),
        rmgr_event_policy=DeliveryPolicy.from_settings(settings).as_dict(),
        beat_schedule={
            "sweep-expired-preoccupations": {"task": SWEEP_EXPIRED, "schedule": float(settings.sweep_interval_seconds)},
            "reap-jobs": {"task": REAP_JOBS, "schedule": float(settings.job_reap_interval_seconds)},
            # a poll not run within its interval (a busy worker) is dropped: the next one does it
            "deliver-events": {"task": DELIVER_EVENTS, "schedule": float(settings.event_poll_seconds),
                               "options": {"expires": max(float(settings.event_poll_seconds), 1.0)}},
        },
    )
    app.task(name=RUN_JOB, bind=True)(run_job)
    app.task(name=SWEEP_EXPIRED, bind=True)(sweep_expired)
    app.task(name=REAP_JOBS, bind=True)(reap_jobs)
    app.task(name=DELIVER_EVENTS, bind=True)(deliver_events)
    return app


settings = load_settings()
app = make_celery(settings)
