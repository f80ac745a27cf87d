"""Cutovers (割接, API.md "Cutover"): POST/GET /cutovers, GET /cutovers/{id}[/impact],
POST /cutovers/{id}/lock | unlock | apply | rollback.

Roles: planner and admin write; every role reads, within its local networks (another city's
cutover is a 404). POST /cutovers takes JSON (`mapping`) or multipart/form-data with a CSV or
Excel `file` (columns old,new[,keep_number]) and the same other fields. Apply and rollback
answer 202 with the job (GET /jobs/{id}); the cutover shows its progress meanwhile."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import OneOf, Range
from flask import request
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.cutovers import services
from resource_mgr.cutovers.files import read_mapping
from resource_mgr.cutovers.models import Cutover
from resource_mgr.cutovers.schemas import cutover_json
from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.orders import retry
from resource_mgr.states import CutoverState, Role

from interfaces.http.api.common import PageQuery, paginate
from interfaces.http.api.jobs import JobOut, job_out
from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session, runtime
from interfaces.http.inputs import UnsupportedMediaType, _check_json_body
from interfaces.tasks.dispatch import enqueue

bp = APIBlueprint("cutovers", __name__)

WRITERS = (Role.PLANNER, Role.ADMIN)


class RowErrorOut(Schema):
    row = Integer()
    old = String()
    new = String()
    code = String(metadata={"enum": ["unknown_unit", "kind_mismatch", "new_not_free", "locked_elsewhere",
                                     "duplicate", "route_break", "other_network"]})
    reason = String()


class ValidationOut(Schema):
    valid = Boolean()
    errors = List(Nested(RowErrorOut))


class CutoverOut(Schema):
    id = String()
    name = String()
    state = String(metadata={"enum": [s.value for s in CutoverState]})
    local_network = String(allow_none=True)
    window_start = String(metadata={"format": "date-time"})
    window_end = String(metadata={"format": "date-time"})
    rows = Integer()
    validation = Nested(ValidationOut)
    progress = Dict(metadata={"description": "{done, total}: rows applied (or rolled back) of all"})
    job_id = String(allow_none=True)
    created_by = String()
    created_at = String(metadata={"format": "date-time"})
    locked_at = String(allow_none=True)
    applied_at = String(allow_none=True)
    ended_at = String(allow_none=True)


class CutoverQuery(PageQuery):
    state = String(validate=OneOf([s.value for s in CutoverState]))


class ImpactQuery(Schema):
    limit = Integer(load_default=50, validate=Range(1, 1000))
    offset = Integer(load_default=0, validate=Range(0, 10_000_000))


class CutoverChangeOut(Schema):
    cutover = Nested(CutoverOut)
    job = Nested(JobOut)


def _when(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{field} is needed: an ISO 8601 time with its offset", field=field)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{field} is not an ISO 8601 time", field=field) from None
    if parsed.tzinfo is None:
        raise Invalid(f"{field} needs its offset (e.g. +08:00)", field=field)
    return parsed


def _body() -> dict[str, Any]:
    """The JSON body, or the form with its mapping file read."""
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise Invalid("send the mapping as a CSV or Excel `file`", field="file")
        form = request.form
        return {"name": form.get("name"), "window_start": form.get("window_start"),
                "window_end": form.get("window_end"),
                "mapping": read_mapping(upload.read(), upload.filename or "mapping.csv")}
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        raise UnsupportedMediaType(f"the body must be application/json or multipart/form-data; got "
                                   f"{mimetype or 'no Content-Type'}")
    _check_json_body()  # the API's safe reading: depth, NaN, NUL characters
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object {name, window_start, window_end, mapping}", field="body")
    return body


def _run(use_case: Any) -> Any:
    rt = runtime()
    return retry.run(rt.db, principal().name, rt.settings.orders_retry_attempts, use_case)


@bp.post("/cutovers")
@bp.output(CutoverOut, status_code=201)
@bp.doc(summary="Create a cutover (validated at once; with errors it stays a draft)",
        description="JSON `{name, window_start, window_end, mapping: [{old, new, keep_number?}...]}` or "
                    "multipart/form-data with the same fields and a CSV or Excel `file` (columns "
                    "old,new[,keep_number]). The answer carries the validation report: every row that "
                    "cannot be applied, with its code and reason.",
        responses={201: "Created (valid or not)", 415: "neither JSON nor multipart", 422: "a field is wrong"})
@require(*WRITERS)
def create_cutover():
    body = _body()
    settings = runtime().settings
    name = body.get("name")
    if not isinstance(name, str):
        raise Invalid("name is needed (1 to 200 characters)", field="name")
    start, end = _when(body.get("window_start"), "window_start"), _when(body.get("window_end"), "window_end")

    def use_case(uow: Any) -> dict[str, Any]:
        cutover = services.create_cutover(uow.session, principal=principal(), settings=settings, now=utcnow(),
                                          name=name, window_start=start, window_end=end,
                                          mapping=body.get("mapping"))
        return cutover_json(uow.session, cutover)

    out = _run(use_case)
    return out, 201, {"Location": f"/api/v1/cutovers/{out['id']}"}


@bp.get("/cutovers")
@bp.input(CutoverQuery, location="query", arg_name="query")
@bp.output(CutoverOut(many=True))
@bp.doc(summary="Cutovers, newest first (state=...); total in X-Total-Count")
@require(*READERS)
def list_cutovers(query: dict[str, Any]):
    session = read_session()
    stmt = select(Cutover).where(principal().scope_filter(Cutover.local_network_id))
    if principal().local_network_ids is not None:
        stmt = stmt.where(Cutover.local_network_id.is_not(None))
    if query.get("state"):
        stmt = stmt.where(Cutover.state == CutoverState(query["state"]))
    stmt = stmt.order_by(Cutover.created_at.desc(), Cutover.id.desc())
    rows, headers = paginate(session, stmt, query["limit"], query["offset"])
    codes = dict(session.execute(select(LocalNetwork.id, LocalNetwork.code)).all())
    return [cutover_json(session, c, codes.get(c.local_network_id)) for c in rows], 200, headers


@bp.get("/cutovers/<string:cutover_id>")
@bp.output(CutoverOut)
@bp.doc(summary="One cutover: state, validation, progress {done, total}, job_id")
@require(*READERS)
def get_cutover(cutover_id: str):
    session = read_session()
    return cutover_json(session, services.get_cutover(session, cutover_id, principal()))


@bp.get("/cutovers/<string:cutover_id>/impact")
@bp.input(ImpactQuery, location="query", arg_name="query")
@bp.doc(summary="Who to notify: the impact (as POST /impact answers) of the cutover's old units")
@require(*READERS)
def cutover_impact(cutover_id: str, query: dict[str, Any]):
    session = read_session()
    cutover = services.get_cutover(session, cutover_id, principal())
    return services.impact_of(session, cutover, limit=query["limit"], offset=query["offset"],
                              local_network_ids=principal().local_network_ids)


@bp.get("/cutovers/<string:cutover_id>/work")
@bp.input(ImpactQuery, location="query", arg_name="query")
@bp.doc(summary="The field work of the copper-to-fibre rows (install the ONT, make the jumpers), row by row")
@require(*READERS)
def cutover_work(cutover_id: str, query: dict[str, Any]):
    session = read_session()
    cutover = services.get_cutover(session, cutover_id, principal())
    return services.field_work(session, cutover, limit=query["limit"], offset=query["offset"])


def _transition(cutover_id: str, action: str) -> dict[str, Any]:
    settings = runtime().settings

    def use_case(uow: Any) -> dict[str, Any]:
        me, now = principal(), utcnow()
        if action == "lock":
            cutover = services.lock_cutover(uow.session, principal=me, settings=settings, now=now,
                                            cutover_id=cutover_id)
        else:
            cutover = services.unlock_cutover(uow.session, principal=me, now=now, cutover_id=cutover_id)
        return cutover_json(uow.session, cutover)

    return _run(use_case)


@bp.post("/cutovers/<string:cutover_id>/lock")
@bp.output(CutoverOut)
@bp.doc(summary="Lock the old units and pre-occupy the new ones (draft → locked)",
        responses={409: "conflict: wrong state, invalid rows, or a unit taken since validation"})
@require(*WRITERS)
def lock_cutover(cutover_id: str):
    return _transition(cutover_id, "lock")


@bp.post("/cutovers/<string:cutover_id>/unlock")
@bp.output(CutoverOut)
@bp.doc(summary="Undo the lock (locked, not applied → cancelled): everything as before it",
        responses={409: "conflict: wrong state"})
@require(*WRITERS)
def unlock_cutover(cutover_id: str):
    return _transition(cutover_id, "unlock")


def _start(cutover_id: str, start: Any) -> tuple[dict[str, Any], int, dict[str, str]]:
    rt = runtime()
    with rt.db.unit_of_work(principal=principal().name) as uow:
        cutover, job = start(uow.session, principal=principal(), now=utcnow(), cutover_id=cutover_id)
        out = {"cutover": cutover_json(uow.session, cutover), "job": job_out(uow.session, job),
               "job_id": job.id}
        enqueue(uow, rt.db, rt.settings, job.id)
        uow.commit()
    return out, 202, {"Location": f"/api/v1/jobs/{out['job_id']}"}


@bp.post("/cutovers/<string:cutover_id>/apply")
@bp.doc(summary="Apply as a background job (locked → applying → applied | failed); 202 with job_id",
        responses={202: "{job_id, job, cutover}", 409: "conflict: wrong state"})
@require(*WRITERS)
def apply_cutover(cutover_id: str):
    return _start(cutover_id, services.start_apply)


@bp.post("/cutovers/<string:cutover_id>/rollback")
@bp.doc(summary="Roll back an applied cutover as a background job (applied → rolled_back); 202 with job_id",
        responses={202: "{job_id, job, cutover}", 409: "conflict: wrong state"})
@require(*WRITERS)
def rollback_cutover(cutover_id: str):
    return _start(cutover_id, services.start_rollback)
