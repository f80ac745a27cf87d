"""Background jobs: GET /api/v1/jobs/{id} (any job: state, progress, result, errors) and
POST /api/v1/jobs/sweep (free expired pre-occupations now).

A job is seen as its local networks allow: a principal limited to some local networks reads a
job only if every local network the job touches is one of its own; another is 404, as for
resources. Who created it does not matter (every `--system bss` token is "system:bss")."""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import DateTime, Dict, Float, Integer, List, Raw, String
from sqlalchemy import select
from werkzeug.exceptions import MethodNotAllowed

from resource_mgr.errors import NotFound
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.jobs import services as jobs
from resource_mgr.jobs.models import Job
from resource_mgr.occupancy.sweep import JOB_KIND as SWEEP
from resource_mgr.states import JobState, Role

from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session, runtime, unit_of_work
from interfaces.tasks.dispatch import enqueue

bp = APIBlueprint("jobs", __name__)

SWEEP_PATH = "sweep"


class JobOut(Schema):
    id = String(required=True)
    kind = String(required=True)
    state = String(required=True, metadata={"enum": [s.value for s in JobState]})
    progress = Float(required=True, metadata={"description": "0..1"})
    done = Integer()
    total = Integer()
    message = String()
    params = Dict()
    result = Dict(allow_none=True)
    errors = List(Raw())
    created_by = String()
    attempts = Integer(metadata={"description": "how many times a runner took it up (a runner that died leaves one more)"})
    local_network = String(allow_none=True)
    created_at = DateTime()
    started_at = DateTime(allow_none=True)
    finished_at = DateTime(allow_none=True)


# Parameters that are the server's business (where an upload waits), not shown to clients.
PRIVATE_PARAMS = frozenset({"path", "scheduler"})


def job_out(session: Any, job: Job) -> dict[str, Any]:
    code = session.scalar(select(LocalNetwork.code).where(LocalNetwork.id == job.local_network_id)) \
        if job.local_network_id else None
    params = {k: v for k, v in (job.params or {}).items() if k not in PRIVATE_PARAMS and not k.startswith("_")}
    return {"id": job.id, "kind": job.kind, "state": str(job.state), "progress": job.progress, "done": job.done,
            "total": job.total, "message": job.message or "", "params": params, "result": job.result,
            "errors": job.errors or [], "created_by": job.created_by, "attempts": job.attempts or 0,
            "local_network": code, "created_at": job.created_at, "started_at": job.started_at,
            "finished_at": job.finished_at}


def visible(job: Job) -> bool:
    """Every local network the job touches is the principal's (a job of any local network, only
    for a principal of all of them)."""
    me = principal()
    if me.local_network_ids is None:
        return True
    scope = job.local_network_ids if job.local_network_ids is not None else \
        ([job.local_network_id] if job.local_network_id else None)
    return scope is not None and all(me.sees(ln) for ln in scope)


@bp.get("/jobs/<job_id>")
@bp.doc(summary="A background job: state, progress, result, errors", responses=[200, 401, 404, 405])
@bp.output(JobOut)
@require(*READERS)
def get_job(job_id: str):
    if job_id == SWEEP_PATH:  # GET /jobs/sweep: the sweep is started with POST, it is no job id
        raise MethodNotAllowed(valid_methods=["POST"], description="/jobs/sweep starts a sweep: use POST")
    session = read_session()
    job = session.get(Job, job_id)
    if job is None or not visible(job):
        raise NotFound(f"no job with id {job_id}", field="id")
    return job_out(session, job)


@bp.post("/jobs/sweep")
@bp.doc(summary="Free expired pre-occupations now (a background job)",
        description="Answers 202 with the queued job; poll GET /jobs/{id}. A principal limited to "
                    "some local networks sweeps only those.", responses=[202, 401, 403])
@bp.output(JobOut, status_code=202)
@require(Role.ADMIN, Role.DISPATCH)
def start_sweep():
    me = principal()
    rt = runtime()
    ids = None if me.local_network_ids is None else sorted(me.local_network_ids)
    with unit_of_work() as uow:
        job = jobs.create_job(uow.session, SWEEP, {"local_network_ids": ids}, created_by=me.name,
                              local_network_id=ids[0] if ids and len(ids) == 1 else None, local_network_ids=ids)
        body = job_out(uow.session, job)
        enqueue(uow, rt.db, rt.settings, job.id)
        uow.commit()
    return body, 202, {"Location": f"/api/v1/jobs/{body['id']}"}
