"""POST /api/v1/imports: upload a bundle (zip or tar of the bulk format, docs/data-format.md);
it is stored, an `import` job is created and queued, and the answer is the job (202) — follow its
progress at GET /api/v1/jobs/{id}. A bundle with bad rows fails the job; its `result` lists
every problem (file, line, column, reason) and nothing is written."""
from __future__ import annotations

import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, File

from resource_mgr.bulk.importer import JOB_KIND
from resource_mgr.errors import Forbidden, Invalid
from resource_mgr.ids import new_id
from resource_mgr.jobs import services as jobs
from resource_mgr.states import Role

from interfaces.http.api.jobs import JobOut, job_out
from interfaces.http.auth import require
from interfaces.http.context import principal, runtime, unit_of_work
from interfaces.tasks.dispatch import enqueue

bp = APIBlueprint("imports", __name__)

# Where uploads wait for their job. A Celery worker on another host must see the same path
# (a shared volume); the embedded runner and a local worker do.
UPLOAD_DIR = Path(tempfile.gettempdir()) / "rmgr-imports"


class ImportIn(Schema):
    file = File(required=True, metadata={"description": "the bundle: a .zip or .tar(.gz) of the CSV files"})
    allow_partial = Boolean(load_default=False,
                            metadata={"description": "write the good rows even if some are bad"})


@bp.post("/imports")
@bp.doc(summary="Import a bundle (bulk data) as a background job",
        description="multipart/form-data with `file` (zip or tar of the bundle) and optional "
                    "`allow_partial`. Answers 202 with the queued job; poll GET /jobs/{id}. Every row is "
                    "checked first; by default nothing is written unless every row is good.",
        responses=[202, 401, 403, 422])
@bp.input(ImportIn, location="form_and_files", arg_name="body")
@bp.output(JobOut, status_code=202)
@require(Role.ADMIN, Role.PLANNER)
def start_import(body):
    me = principal()
    if me.local_network_ids is not None:
        raise Forbidden("a bulk import may create any local network: it needs a principal for all of them",
                        field="local_networks")
    upload = body["file"]
    UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    name = os.path.basename(upload.filename or "bundle")
    path = UPLOAD_DIR / f"{new_id()}-{name}"
    upload.save(path)
    if not (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
        path.unlink(missing_ok=True)
        raise Invalid("file must be a .zip or .tar(.gz) of the bundle's CSV files", field="file")
    rt = runtime()
    with unit_of_work() as uow:
        job = jobs.create_job(uow.session, JOB_KIND, {"path": str(path), "filename": name,
                                                      "allow_partial": bool(body.get("allow_partial"))},
                              created_by=me.name)
        out = job_out(uow.session, job)
        enqueue(uow, rt.db, rt.settings, job.id)
        uow.commit()
    return out, 202, {"Location": f"/api/v1/jobs/{out['id']}"}
