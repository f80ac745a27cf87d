"""The copper-to-fibre planner over HTTP (API.md "Cutover (割接)", docs/api.md):

- `POST /api/v1/cutovers/plans/copper-to-fibre` body `{"scope_id"}` → 200 `{"scope", "rows",
  "notes", "unmapped", "counts"}`; `?format=csv` or `?format=xlsx` answers the same plan as a file
  to download (the mapping's columns first, then the notes), which can be uploaded as it is as a
  cutover's mapping.
- `GET` the same path with `?scope_id=` (and `format`): the same answer, for a download link.

Roles planner and admin, within their local networks (another city's scope is a 404). It reads
only: nothing is held until a cutover made from it is locked."""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, List, Nested, String
from apiflask.validators import Length, OneOf
from flask import Response

from resource_mgr.clock import utcnow
from resource_mgr.cutovers.files import mapping_csv, mapping_xlsx
from resource_mgr.cutovers.planner import download_rows, plan_copper_to_fibre
from resource_mgr.states import Role

from interfaces.http.auth import require
from interfaces.http.context import principal, read_session, runtime

bp = APIBlueprint("cutover_plans", __name__)

PLANNERS = (Role.PLANNER, Role.ADMIN)
FORMATS = ("json", "csv", "xlsx")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


_SHARE = {"description": "true: the copper services of an address share one FTTH line (one box port); false: "
                          "a line each; absent: as cutover validation accepts"}


class PlanIn(Schema):
    scope_id = String(required=True, validate=Length(1, 26),
                      metadata={"description": "a cross box, a copper distribution box or an area"})
    one_line_per_address = Boolean(load_default=None, allow_none=True, metadata=_SHARE)


class PlanQuery(Schema):
    format = String(load_default="json", validate=OneOf(FORMATS),
                    metadata={"description": "json (default), or csv / xlsx: the plan as a file to download"})


class PlanGetQuery(PlanQuery):
    scope_id = String(required=True, validate=Length(1, 26))
    one_line_per_address = Boolean(load_default=None, allow_none=True, metadata=_SHARE)


class RowOut(Schema):
    old = String(metadata={"description": "the service's head port (dsl_port or line_port)"})
    new = String(metadata={"description": "the fibre box port its FTTH path starts from"})
    keep_number = Boolean()


class UnmappedOut(Schema):
    service_id = String()
    product = String()
    number = String(allow_none=True)
    address_id = String(allow_none=True)
    reason_code = String(metadata={"description": "no_fibre_coverage, no_pon_capacity, budget, box_full, ..."})
    reason = String()
    reason_zh = String()


class PlanOut(Schema):
    scope = Dict(metadata={"description": "id, kind, name"})
    rows = List(Nested(RowOut), metadata={"description": "the mapping: POST /cutovers takes it as it is"})
    notes = List(Dict(), metadata={"description": "per row, in order: service_id, product, number, address_id, "
                                                  "address, old_port, new_box, via (design / existing_ftth)"})
    unmapped = List(Nested(UnmappedOut))
    counts = Dict(metadata={"description": "services, line_services, riders, rows, addresses, box_ports, "
                                           "unmapped, by_reason"})


def _answer(scope_id: str, fmt: str, share: bool | None) -> Any:
    rt = runtime()
    me = principal()
    ln = None if me.local_network_ids is None else set(me.local_network_ids)
    plan = plan_copper_to_fibre(read_session(), scope_id=scope_id, settings=rt.settings, now=utcnow(),
                                local_network_ids=ln, one_line_per_address=share)
    if fmt == "json":
        return plan
    rows = download_rows(plan)
    name = f"copper-to-fibre-{plan['scope']['kind']}-{scope_id}.{fmt}"
    body, mimetype = (mapping_csv(rows), "text/csv") if fmt == "csv" else (mapping_xlsx(rows), XLSX)
    resp = Response(body, mimetype=mimetype)
    if fmt == "csv":
        resp.headers["Content-Type"] = "text/csv; charset=utf-8"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["X-Unmapped-Count"] = str(len(plan["unmapped"]))
    return resp


_DOC = dict(responses={200: "The plan (JSON), or with format=csv / xlsx the mapping file (attachment)",
                       404: "Unknown scope_id, or one of another local network",
                       422: "The scope is not a cross box, a copper distribution box or an area"})


@bp.post("/cutovers/plans/copper-to-fibre")
@bp.input(PlanIn, arg_name="body")
@bp.input(PlanQuery, location="query", arg_name="query")
@bp.output(PlanOut)
@bp.doc(summary="Propose a copper-to-fibre cutover mapping for a cross box, copper box or area", **_DOC)
@require(*PLANNERS)
def plan_copper_to_fibre_post(body: dict[str, Any], query: dict[str, Any]):
    return _answer(body["scope_id"], query["format"], body.get("one_line_per_address"))


@bp.get("/cutovers/plans/copper-to-fibre")
@bp.input(PlanGetQuery, location="query", arg_name="query")
@bp.output(PlanOut)
@bp.doc(summary="The same plan for a download link (?scope_id=&format=csv|xlsx)", **_DOC)
@require(*PLANNERS)
def plan_copper_to_fibre_get(query: dict[str, Any]):
    return _answer(query["scope_id"], query["format"], query.get("one_line_per_address"))
