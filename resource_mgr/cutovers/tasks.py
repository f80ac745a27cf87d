"""The cutover job kinds. Both are idempotent: each does its work in one transaction that also
marks the cutover (applied, rolled back), so a run after a runner died either starts from the
start (nothing was committed) or finds the mark and only reports it (docs/jobs.md)."""
from __future__ import annotations

from resource_mgr.cutovers.apply import run_apply_job, run_rollback_job
from resource_mgr.cutovers.services import APPLY_KIND, ROLLBACK_KIND
from resource_mgr.jobs.services import register

register(APPLY_KIND, run_apply_job, rerun="idempotent")
register(ROLLBACK_KIND, run_rollback_job, rerun="idempotent")
