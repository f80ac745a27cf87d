"""Test-only job kinds, imported by the test modules and by the worker and runner processes they
start (`celery worker --include job_kinds`, PYTHONPATH=tests), so those know the kind too.

`test_steps`: params {"steps", "step_seconds", "marker"}: sleeps `steps` times, reporting
progress after each, and appends "start <pid>" / "done <pid>" lines to the `marker` file, so a
test sees how many runners started it and which one finished."""
from __future__ import annotations

import os
import time
from pathlib import Path

from resource_mgr.jobs import services as jobs
from resource_mgr.jobs.models import Job

STEPS = "test_steps"


def _note(marker: str | None, what: str) -> None:
    if marker:
        with open(marker, "a", encoding="utf-8") as out:
            out.write(f"{what} {os.getpid()}\n")


def run_steps(db, job_id, progress):
    with db.read_session() as s:
        params = dict(s.get(Job, job_id).params or {})
    steps, pause, marker = int(params.get("steps", 10)), float(params.get("step_seconds", 0.2)), params.get("marker")
    _note(marker, "start")
    for i in range(steps):
        time.sleep(pause)
        progress(i + 1, steps)
    _note(marker, "done")
    return {"message": f"{steps} step(s)", "pid": os.getpid()}


def marks(marker: Path) -> list[tuple[str, int]]:
    if not marker.exists():
        return []
    return [(w, int(p)) for w, p in (line.split() for line in marker.read_text().splitlines() if line.strip())]


jobs.register(STEPS, run_steps, rerun="idempotent")
