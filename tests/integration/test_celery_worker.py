"""Jobs through Celery: a REAL worker (`celery -A interfaces.tasks.celery_app worker --pool=solo`)
on Redis db 7 (+2 per xdist worker), against the test database (the SQLite file or the PostgreSQL test database)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.errors import Unavailable
from resource_mgr.inventory import services as inv
from resource_mgr.jobs import services as jobs
from resource_mgr.jobs.models import Job
from resource_mgr.occupancy.models import Change, History, Unit
from resource_mgr.states import JobState, Occupancy

from interfaces.tasks import dispatch
from tests.job_helpers import stop
from tests.parallel_helpers import celery_broker_url

ROOT = Path(__file__).resolve().parents[2]
BROKER = celery_broker_url()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMGR_")}
    # tests/ too: the workers import the test-only job kinds (job_kinds.py)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def test_the_celery_module_imports_without_a_broker_running():
    """Built from load_settings() at import, connecting to nothing (port 1 has no broker)."""
    out = subprocess.run(
        [sys.executable, "-c", "import interfaces.tasks.celery_app as m; "
                               "print(m.app.conf.broker_url, m.app.conf.task_acks_late, m.app.conf.task_reject_on_worker_lost, "
                               "m.app.conf.worker_prefetch_multiplier, sorted(t for t in m.app.tasks if t.startswith('rmgr')), "
                               "sorted(m.app.conf.beat_schedule))"],
        cwd=ROOT, env=clean_env(RMGR_CELERY_BROKER_URL="redis://127.0.0.1:1/0"), capture_output=True, text=True,
        timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["redis://127.0.0.1:1/0", "True", "True", "1", "['rmgr.deliver_events',",
                                  "'rmgr.reap_jobs',", "'rmgr.run_job',", "'rmgr.sweep_expired']", "['deliver-events',",
                                  "'reap-jobs',", "'sweep-expired-preoccupations']"]


def test_an_unreachable_broker_is_503_and_the_job_is_not_left_queued(db):
    settings = load_settings(environ={}, database_url=db.url, celery_broker_url="redis://127.0.0.1:1/0")
    with db.unit_of_work() as uow:
        job = jobs.create_job(uow.session, "sweep_expired", {})
        uow.commit()
    with pytest.raises(Unavailable):
        dispatch.submit(db, settings, job.id)
    with db.read_session() as s:
        stored = s.get(Job, job.id)
        assert stored.state == JobState.FAILED and "broker" in stored.message


@pytest.fixture
def redis_db():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(BROKER, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip(f"no Redis at {BROKER}")
    client.flushdb()  # our own db number: no stale messages from an earlier run
    yield client
    client.flushdb()


def start_celery(database_url: str, log: Path, *args: str, **env: str) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "interfaces.tasks.celery_app", *args],
            cwd=ROOT, env=clean_env(RMGR_DATABASE_URL=database_url, RMGR_CELERY_BROKER_URL=BROKER, **env),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_worker(database_url: str, log: Path, name: str, **env: str) -> subprocess.Popen:
    return start_celery(database_url, log, "worker", "--pool=solo", "--loglevel=INFO", "--without-gossip",
                        "--without-mingle", "--without-heartbeat", "--include", "job_kinds",
                        "-n", f"{name}-{os.getpid()}@%h", **env)


@pytest.fixture
def worker(db, database_url, redis_db, tmp_path):
    log = tmp_path / "worker.log"
    proc = start_worker(database_url, log, "rmgr-test")
    try:
        yield proc, log
    finally:
        stop(proc)


def wait_for(db, job_id: str, proc, log: Path, timeout: float = 60) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        with db.read_session() as s:
            job = s.get(Job, job_id)
        if job.state in (JobState.SUCCEEDED, JobState.FAILED):
            return job
        assert proc.poll() is None, "the worker died:\n" + log.read_text()
        assert time.monotonic() < deadline, f"job still {job.state}; worker log:\n" + log.read_text()
        time.sleep(0.2)


@pytest.mark.celery_worker
def test_a_sweep_job_runs_in_a_real_worker(db, worker):
    proc, log = worker
    now = utcnow()
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        ln = inv.create_local_network(s, code="GZ", name="廣州", area_code="20")
        fat = inv.create_from_template(s, template="FAT-8", local_network_id=ln.id)
        port = min(inv.units_of(s, fat.id, "box_port"), key=lambda u: u.seq)
        port.preoccupy(Change(principal="user:alice", reservation_id="R1", at=now - timedelta(days=1)),
                       reservation_id="R1", until=now - timedelta(minutes=5))
        port_id = port.id
        uow.commit()
    settings = load_settings(environ={}, database_url=db.url, celery_broker_url=BROKER)
    with db.unit_of_work() as uow:
        job = jobs.create_job(uow.session, "sweep_expired", {}, created_by="user:test")
        dispatch.enqueue(uow, db, settings, job.id)  # sent only after this commit
        uow.commit()

    done = wait_for(db, job.id, proc, log)
    assert done.state == JobState.SUCCEEDED, (done.errors, log.read_text())
    assert done.result["units"] == 1 and done.result["by_principal"] == {"user:alice": 1}
    with db.read_session() as s:
        assert s.get(Unit, port_id).occupancy == Occupancy.FREE

    # the same task delivered again (acks_late redelivery): the finished job is left alone
    dispatch.submit(db, settings, job.id)
    deadline = time.monotonic() + 30
    while "not run: it is succeeded" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(History).where(History.action == "expire")) == 1
        assert s.get(Job, job.id).finished_at == done.finished_at


@pytest.mark.celery_worker
def test_a_job_whose_worker_is_killed_is_completed_by_another(db, database_url, redis_db, tmp_path):
    """SIGKILL the worker mid-job: nothing acknowledges or fails the job, its lease stops being
    renewed; beat's reaper queues it again and a second worker runs it to its end."""
    from job_kinds import STEPS, marks

    fast = {"RMGR_JOB_LEASE_SECONDS": "3", "RMGR_JOB_REAP_INTERVAL_SECONDS": "1",
            "RMGR_SWEEP_INTERVAL_SECONDS": "3600"}
    marker = tmp_path / "marks"
    first = start_worker(database_url, tmp_path / "w1.log", "rmgr-first", **fast)
    procs = [first]
    try:
        settings = load_settings(environ={}, database_url=db.url, celery_broker_url=BROKER)
        with db.unit_of_work() as uow:
            job = jobs.create_job(uow.session, STEPS, {"steps": 30, "step_seconds": 0.2, "marker": str(marker)})
            dispatch.enqueue(uow, db, settings, job.id)
            uow.commit()
        deadline = time.monotonic() + 60
        while True:  # the first worker is in the middle of it
            with db.read_session() as s:
                running = s.get(Job, job.id)
            if running.state == JobState.RUNNING and running.done >= 3:
                break
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "w1.log").read_text()
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        with db.read_session() as s:
            left = s.get(Job, job.id)
        assert left.state == JobState.RUNNING and left.done < 30  # what the dead worker left

        second = start_worker(database_url, tmp_path / "w2.log", "rmgr-second", **fast)
        beat = start_celery(database_url, tmp_path / "beat.log", "beat", "--loglevel=INFO",
                            "-s", str(tmp_path / "beat-schedule"), **fast)
        procs += [second, beat]
        done = wait_for(db, job.id, second, tmp_path / "w2.log", timeout=90)
        assert done.state == JobState.SUCCEEDED, (done.errors, (tmp_path / "w2.log").read_text())
        assert done.attempts == 2 and (done.done, done.total) == (30, 30)
        starts = [pid for what, pid in marks(marker) if what == "start"]
        assert starts == [first.pid, second.pid] and marks(marker)[-1] == ("done", second.pid)
        assert done.result["pid"] == second.pid
    finally:
        for proc in procs:
            stop(proc)
