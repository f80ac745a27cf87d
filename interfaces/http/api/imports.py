"""POST /api/v1/imports: upload a bundle (zip or tar of the bulk format, docs/data-format.md);
it is stored under a name the server makes, an `import` job is created and queued, and the
answer is the job (202) — follow its progress at GET /api/v1/jobs/{id}. A bundle with bad rows
fails the job; its `result` lists every problem (file, line, column, reason) and nothing is
written. The upload is removed when its job ends, whichever way."""
from __future__ import annotations

import tarfile
import zipfile

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, File

from resource_mgr.bulk import uploads
from resource_mgr.bulk.format import BundleReader, BundleRefused
from resource_mgr.bulk.importer import JOB_KIND, ImportLimits
from resource_mgr.errors import Forbidden, Invalid
from resource_mgr.jobs import services as jobs
from resource_mgr.states import Role

from interfaces.http.api.jobs import JobOut, job_out
from interfaces.http.auth import require
from interfaces.http.context import principal, runtime, unit_of_work
from interfaces.tasks.dispatch import enqueue

bp = APIBlueprint("imports", __name__)

# A body that is not multipart/form-data is answered 415 `unsupported_media_type` before the view,
# as for every endpoint with a body (interfaces/http/inputs.py).


class ImportIn(Schema):
    file = File(required=True, metadata={"description": "the bundle: a .zip or .tar(.gz) of the CSV files"})
    allow_partial = Boolean(load_default=False,
                            metadata={"description": "write the good rows even if some are bad"})


@bp.post("/imports")
@bp.doc(summary="Import a bundle (bulk data) as a background job",
        description="multipart/form-data with `file` (zip or tar of the bundle) and optional "
                    "`allow_partial`. Answers 202 with the queued job; poll GET /jobs/{id}. Every row is "
                    "checked first; by default nothing is written unless every row is good. An archive "
                    "holding links, devices, names outside it (`../x`, `/x`) or two files of one name, or "
                    "expanding past the limits, is refused (422).",
        responses=[202, 401, 403, 415, 422])
@bp.input(ImportIn, location="form_and_files", arg_name="body")
@bp.output(JobOut, status_code=202)
@require(Role.ADMIN, Role.PLANNER)
def start_import(body):
    me = principal()
    if me.local_network_ids is not None:
        raise Forbidden("a bulk import may create any local network: it needs a principal for all of them",
                        field="local_networks")
    upload = body["file"]
    filename = uploads.client_filename(upload.filename)
    rt = runtime()
    name, path = uploads.new_upload(rt.settings)
    upload.save(path)
    try:
        if not (zipfile.is_zipfile(path) or tarfile.is_tarfile(path)):
            raise Invalid("file must be a .zip or .tar(.gz) of the bundle's CSV files", field="file")
        limits = ImportLimits.from_settings(rt.settings)
        try:  # the archive's entries and declared sizes, checked now (the job checks them again)
            BundleReader(path, max_bytes=limits.max_bytes, max_rows=limits.max_rows,
                         max_ratio=limits.max_ratio).close()
        except BundleRefused as exc:
            raise Invalid(f"the archive is refused: {exc}", field="file",
                          errors=[p.as_dict() for p in exc.problems[:100]]) from None
        except (OSError, ValueError, EOFError, tarfile.TarError, zipfile.BadZipFile):
            raise Invalid("file is not a readable .zip or .tar(.gz)", field="file") from None
        with unit_of_work() as uow:
            job = jobs.create_job(uow.session, JOB_KIND, {"upload": name, "filename": filename,
                                                          "allow_partial": bool(body.get("allow_partial"))},
                                  created_by=me.name)
            out = job_out(uow.session, job)
            enqueue(uow, rt.db, rt.settings, job.id)
            uow.commit()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return out, 202, {"Location": f"/api/v1/jobs/{out['id']}"}
