"""Jobs without a broker, across processes: a runner process killed mid-job is replaced by a new
one that takes its jobs over on start; `rmgr serve --workers N` sweeps from one process at a
time (the scheduler lease), and another takes over when that one is killed."""
from __future__ import annotations

import os
import re
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from resource_mgr.jobs import services as jobs
from resource_mgr.jobs.models import Job, SchedulerLease
from resource_mgr.occupancy.sweep import JOB_KIND as SWEEP
from resource_mgr.states import JobState

import job_kinds
from job_kinds import STEPS, marks
from tests.job_helpers import load, stop

ROOT = Path(__file__).resolve().parents[2]
FAST = {"RMGR_JOB_LEASE_SECONDS": "3", "RMGR_JOB_REAP_INTERVAL_SECONDS": "1", "RMGR_JOB_SEND_GRACE_SECONDS": "1",
        "RMGR_SCHEDULER_LEASE_SECONDS": "3", "RMGR_SWEEP_INTERVAL_SECONDS": "1"}

# The embedded runner as a serving process runs it, without HTTP: the scheduler thread (which,
# holding the lease, reaps and sends jobs to this process's pool), with one job thread.
RUNNER = """
import threading
import job_kinds
from interfaces.tasks import dispatch
from resource_mgr.config import load_settings
from resource_mgr.db import Database
dispatch.EMBEDDED_THREADS = 1
settings = load_settings()
dispatch.start_embedded_scheduler(Database(settings.database_url), settings)
print("runner started", flush=True)
threading.Event().wait()
"""


def env_for(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMGR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env.update(RMGR_DATABASE_URL=database_url, **FAST, **extra)
    return env


def start(args: list[str], database_url: str, log: Path, **extra: str) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env_for(database_url, **extra), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def until(what, timeout: float, why) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, why()
        time.sleep(0.1)


def test_a_killed_embedded_runner_is_replaced_and_the_new_one_takes_its_jobs_over(db, database_url, tmp_path):
    marker = tmp_path / "marks"
    with db.unit_of_work() as uow:  # committed, never sent: the runner's reaper sends them
        first = jobs.create_job(uow.session, STEPS, {"steps": 30, "step_seconds": 0.2, "marker": str(marker)}).id
        second = jobs.create_job(uow.session, STEPS, {"steps": 2, "step_seconds": 0.1}).id
        uow.commit()
    log_a = tmp_path / "runner-a.log"
    a = start([sys.executable, "-c", RUNNER], database_url, log_a)
    procs = [a]
    try:
        # a runs the first job; the second waits in a's pool (one thread)
        until(lambda: load(db, first).state == JobState.RUNNING and load(db, first).done >= 2, 60, log_a.read_text)
        assert load(db, second).state == JobState.QUEUED and load(db, second).lease_owner.split(":")[1] == str(a.pid)
        stop(a, signal.SIGKILL)
        assert (load(db, first).state, load(db, second).state) == (JobState.RUNNING, JobState.QUEUED)

        log_b = tmp_path / "runner-b.log"
        b = start([sys.executable, "-c", RUNNER], database_url, log_b)
        procs.append(b)
        until(lambda: load(db, first).state == JobState.SUCCEEDED and load(db, second).state == JobState.SUCCEEDED,
              60, lambda: f"{load(db, first).state} {load(db, second).state}\n" + log_b.read_text())
        done = load(db, first)
        assert done.attempts == 2 and done.result["pid"] == b.pid
        assert [pid for what, pid in marks(marker)] == [a.pid, b.pid, b.pid]  # started by a, then b; done by b
        assert load(db, second).attempts == 1 and load(db, second).result["pid"] == b.pid
    finally:
        for proc in procs:
            stop(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lease(db) -> SchedulerLease | None:
    with db.read_session() as s:
        return s.get(SchedulerLease, "scheduler")


def _scheduled_sweeps(db) -> list[Job]:
    with db.read_session() as s:
        return list(s.scalars(select(Job).where(Job.kind == SWEEP, Job.created_by == "system:scheduler")
                              .order_by(Job.created_at)))


def _pid(owner: str) -> int:
    return int(owner.split(":")[1])


@pytest.mark.skipif(platform.system() != "Linux", reason="several workers need gunicorn (Linux)")
def test_serve_with_several_workers_runs_one_sweeper_and_another_takes_over(db, database_url, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    serve = start([sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port), "--workers", "3",
                   "--threads", "2"], database_url, log)
    try:
        until(lambda: _ok(port), 60, log.read_text)
        until(lambda: len(_scheduled_sweeps(db)) >= 4, 60, log.read_text)
        time.sleep(3)  # every worker has had turns at the lease by now
        sweeps = _scheduled_sweeps(db)
        leader = _lease(db).owner
        owners = {j.params["scheduler"] for j in sweeps}
        assert owners == {leader}, f"sweeps by {owners}: more than one sweeper"
        assert _leaders(log) == [leader], "more than one process took the sweeper's turn"
        assert all(j.state == JobState.SUCCEEDED for j in sweeps[:-1])
        # no two scheduled sweeps at once: each starts after the one before has finished
        assert all(b.created_at >= a.finished_at for a, b in zip(sweeps, sweeps[1:]))

        os.kill(_pid(leader), signal.SIGKILL)  # gunicorn starts a new worker; one of the others leads
        until(lambda: (_lease(db).owner != leader), 30, log.read_text)
        heir = _lease(db).owner
        assert _pid(heir) != _pid(leader)
        count = len(_scheduled_sweeps(db))
        until(lambda: len(_scheduled_sweeps(db)) >= count + 3, 30, log.read_text)
        after = [j for j in _scheduled_sweeps(db) if j.params["scheduler"] != leader]
        assert {j.params["scheduler"] for j in after} == {heir}
        assert _leaders(log) == [leader, heir]
    finally:
        stop(serve)


def _leaders(log: Path) -> list[str]:
    """The processes that said they took over the sweep and the reaper, in order."""
    return re.findall(r"this process \((\S+)\) runs the sweep and the job reaper now", log.read_text())


def _ok(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


assert job_kinds  # imported for its kind (the runner processes import it too)
