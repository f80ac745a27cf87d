"""Getting a job run: through Celery when a broker is configured, otherwise in a small thread
pool of the serving process (embedded default). Either way after the unit of work that created
the job has committed, so a worker never looks for a job that is not there yet.

Without a broker there is no Celery beat either: every serving process runs an embedded
scheduler thread, and the one holding the scheduler lease (a row in the database) runs the
periodic work: the job reaper, the expiry sweep and the poll for event deliveries due. So `rmgr serve --workers N` sweeps once,
not N times, and when that process dies another takes the lease over (docs/jobs.md)."""
from __future__ import annotations

import atexit
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from resource_mgr.config import Settings
from resource_mgr.db import Database, UnitOfWork
from resource_mgr.errors import Unavailable

log = logging.getLogger("rmgr.tasks")

EMBEDDED_THREADS = 2
SCHEDULER = "system:scheduler"
# The scheduler's first turn waits this long, so that a process just started (a gunicorn worker)
# answers its first requests before it imports and runs the periodic work.
FIRST_TURN_AFTER_SECONDS = 2.0

_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None
_executor_lock = threading.Lock()
_celery_apps: dict[tuple[str, str], Any] = {}


def _pool() -> ThreadPoolExecutor:
    import os

    global _executor, _executor_pid
    with _executor_lock:
        if _executor is None or _executor_pid != os.getpid():  # a forked worker has no threads of its own yet
            _executor = ThreadPoolExecutor(max_workers=EMBEDDED_THREADS, thread_name_prefix="rmgr-job")
            _executor_pid = os.getpid()
            atexit.register(_executor.shutdown, wait=False, cancel_futures=True)
        return _executor


def _run_embedded(db: Database, settings: Settings, job_id: str) -> None:
    from resource_mgr.jobs.leases import JobPolicy
    from resource_mgr.jobs.services import run_job

    try:
        run_job(db, job_id, policy=JobPolicy.from_settings(settings))
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

    log.error("could not send job %s to the broker: %s", job_id, exc)
    with db.unit_of_work() as uow:
        job = uow.session.get(Job, job_id)
        if job is not None and job.state == JobState.QUEUED:
            job.state, job.finished_at = JobState.FAILED, utcnow()
            job.errors = [{"type": "Unavailable", "code": "unavailable",
                           "detail": "the task broker is not reachable"}]
            job.message = "the job could not be queued: the task broker is not reachable"
        uow.commit()


def _send(db: Database, settings: Settings, job_id: str) -> Future | None:
    """Hand one committed job to the broker or to this process's pool, and record it."""
    from resource_mgr.jobs.leases import process_owner

    if settings.celery_broker_url:
        from interfaces.tasks.celery_app import RUN_JOB, SEND_RETRY

        try:
            _celery_for(settings).send_task(RUN_JOB, args=[job_id], retry=True, retry_policy=SEND_RETRY)
        except Exception as exc:  # kombu's OperationalError, a refused connection, a DNS failure...
            raise Unavailable("the task broker is not reachable; the job was not queued", job_id=job_id) from exc
        _mark_sent(db, job_id, None)
        return None
    _mark_sent(db, job_id, process_owner())  # if this process dies, the reaper sends it elsewhere
    return _pool().submit(_run_embedded, db, settings, job_id)


def _mark_sent(db: Database, job_id: str, pool_owner: str | None) -> None:
    from resource_mgr.jobs.reaper import mark_sent

    try:
        mark_sent(db, job_id, pool_owner)
    except Exception as exc:  # only bookkeeping: the reaper may send it once more, which is harmless
        log.warning("job %s sent, but not recorded as sent: %s", job_id, type(exc).__name__)


def submit(db: Database, settings: Settings, job_id: str) -> Future | None:
    """Send or start the job now (the job row must already be committed). An unreachable
    broker fails the job (503 to the caller) rather than leave it queued for nobody."""
    try:
        return _send(db, settings, job_id)
    except Unavailable as exc:
        _mark_unqueued(db, job_id, exc.__cause__ or exc)
        raise Unavailable("the task broker is not reachable; the job was not queued", job_id=job_id) from None


def enqueue(uow: UnitOfWork | None, db: Database, settings: Settings, job_id: str) -> None:
    """Have the job run once `uow` commits (at once when there is no unit of work)."""
    if uow is None:
        submit(db, settings, job_id)
    else:
        uow.after_commit(lambda: submit(db, settings, job_id))


# -- event delivery (resource_mgr/events) ----------------------------------------------------------

def start_event_delivery(db: Database, settings: Settings, *, only_if_due: bool = False) -> str | None:
    """Make sure a delivery job will look at the outbox: none is made when one queued (not yet
    started, so it sees what is committed now) will, or, polling (`only_if_due`), when nothing
    is due or one is running. Returns the id of the job sent, if one was made."""
    from resource_mgr.events import delivery

    with db.unit_of_work(principal=delivery.CREATED_BY) as uow:
        job_id = delivery.new_job(uow.session, delivery.DeliveryPolicy.from_settings(settings),
                                  only_if_due=only_if_due)
        uow.commit()
    if job_id is not None:
        submit(db, settings, job_id)
    return job_id


class _EventKicker:
    """Starts delivery jobs from a thread of its own, so that a unit of work that emitted pays
    nothing after its commit but setting a flag (its request answers as fast as one that did not
    emit). Kicks that come while a start is under way make one more start after it: each kick is
    followed by a start that began after it. A process that dies before the start leaves the
    events to the periodic poll."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    def __call__(self) -> None:
        import os

        with self._lock:  # a forked worker has no thread of its own yet
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._loop, name="rmgr-event-kick", daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                start_event_delivery(self.db, self.settings)
            except Exception as exc:  # the broker or the database is down: the poll starts it later
                log.warning("no event delivery job started now (%s); the periodic poll will", type(exc).__name__)


def install_event_delivery(db: Database, settings: Settings) -> None:
    """After a unit of work on `db` that emitted events commits, start a delivery job (the
    serving process and the Celery worker call this for their database)."""
    from resource_mgr.events.services import install_kick

    install_kick(db.engine, _EventKicker(db, settings))


# -- the embedded scheduler -----------------------------------------------------------------------

def _sweep_due(db: Database, settings: Settings) -> bool:
    """No scheduled sweep in flight, and the last one was made an interval ago or more."""
    from sqlalchemy import func, select

    from resource_mgr.clock import utcnow
    from resource_mgr.jobs.models import Job
    from resource_mgr.occupancy.sweep import JOB_KIND
    from resource_mgr.states import JobState

    with db.read_session() as s:
        mine = (Job.kind == JOB_KIND, Job.created_by == SCHEDULER)
        if s.scalar(select(Job.id).where(*mine, Job.state.in_([JobState.QUEUED, JobState.RUNNING])).limit(1)):
            return False
        last = s.scalar(select(func.max(Job.created_at)).where(*mine))
    from resource_mgr.clock import aware

    return last is None or aware(last) <= utcnow() - timedelta(seconds=settings.sweep_interval_seconds)


def _start_sweep(db: Database, settings: Settings, owner: str) -> None:
    from resource_mgr.jobs.services import create_job
    from resource_mgr.occupancy.sweep import JOB_KIND

    with db.unit_of_work(principal=SCHEDULER) as uow:
        job = create_job(uow.session, JOB_KIND, {"scheduler": owner}, created_by=SCHEDULER)
        uow.commit()
    _send(db, settings, job.id)


def _reap(db: Database, settings: Settings) -> None:
    from resource_mgr.jobs.leases import JobPolicy
    from resource_mgr.jobs.reaper import reap, unsent

    reaped = reap(db, JobPolicy.from_settings(settings))
    failed = []
    for job_id in reaped.send:
        try:
            _send(db, settings, job_id)
        except Unavailable:
            failed.append(job_id)
    unsent(db, failed)


def scheduler_tick(db: Database, settings: Settings, owner: str, state: dict[str, Any]) -> bool:
    """One turn of the embedded scheduler: hold the lease (or not), and if held run what is due.
    Returns whether this process leads."""
    from resource_mgr.jobs import leases

    lease = leases.hold(db, owner, settings.scheduler_lease_seconds)
    if not lease.held:
        if state.get("leading"):
            log.warning("scheduler lease now held by %s; this process stops sweeping", lease.owner)
        state["leading"] = False
        return False
    if lease.acquired or not state.get("leading"):
        log.info("this process (%s) runs the sweep and the job reaper now%s", owner,
                 f" (after {lease.previous})" if lease.previous else "")
        state["leading"], state["reaped_at"] = True, None
    now = time.monotonic()
    if state.get("reaped_at") is None or now - state["reaped_at"] >= settings.job_reap_interval_seconds:
        state["reaped_at"] = now
        _reap(db, settings)
    if _sweep_due(db, settings):
        _start_sweep(db, settings, owner)
    if state.get("events_at") is None or now - state["events_at"] >= settings.event_poll_seconds:
        state["events_at"] = now
        start_event_delivery(db, settings, only_if_due=True)  # retries now due, kicks that were lost
    return True


def start_embedded_scheduler(db: Database, settings: Settings) -> threading.Thread | None:
    """Without a broker there is no Celery beat: a daemon thread of each serving process takes
    its turn at the scheduler lease; the holder reaps jobs every `job_reap_interval_seconds`
    (at once on start: a job left by a dead process is taken over) and sweeps expired
    pre-occupations every `sweep_interval_seconds`."""
    if settings.celery_broker_url:
        return None
    from resource_mgr.jobs import leases

    owner = leases.process_owner()
    tick = max(0.2, min(settings.scheduler_lease_seconds / 3, settings.job_reap_interval_seconds,
                        settings.sweep_interval_seconds, settings.event_poll_seconds))

    def loop() -> None:
        state: dict[str, Any] = {}
        if _stop.wait(FIRST_TURN_AFTER_SECONDS):
            return
        while True:
            try:
                scheduler_tick(db, settings, owner, state)
            except Exception:  # a failed turn (database busy or down): keep the schedule going
                log.exception("embedded scheduler turn failed")
            if _stop.wait(tick):
                break
        if state.get("leading"):
            try:
                leases.release(db, owner)
            except Exception:
                log.exception("could not release the scheduler lease")

    thread = threading.Thread(target=loop, name="rmgr-scheduler", daemon=True)
    thread.start()
    return thread


_stop = threading.Event()
