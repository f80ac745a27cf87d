"""What the job and process tests share: making and reading a job, stopping a process group."""
from __future__ import annotations

import os
import signal
import subprocess

from resource_mgr.jobs import services as jobs
from resource_mgr.jobs.models import Job


def new_job(db, kind: str, **params) -> str:
    with db.unit_of_work() as uow:
        job = jobs.create_job(uow.session, kind, params, created_by="user:test")
        uow.commit()
    return job.id


def load(db, job_id: str) -> Job:
    with db.read_session() as s:
        return s.get(Job, job_id)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal a process started with start_new_session=True and its children; kill what lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
