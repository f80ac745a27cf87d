"""TMF645 Service Qualification v4 at /tmf-api/serviceQualificationManagement/v4:
POST /checkServiceQualification, GET /checkServiceQualification/{id}, GET /checkServiceQualification.

Qualifying takes milliseconds, so every request is answered at once, finished (state `done`):
with instantSyncQualification true 200, otherwise 201 (the task was created, and is already
done). Each qualification is stored, readable again by the principal who asked. Roles as the
native coverage check: sales and anyone who may read."""
from __future__ import annotations

import json
import math
from typing import Any

from flask import Blueprint, Response, request

from resource_mgr.clock import utcnow
from resource_mgr.coverage import qualifications
from resource_mgr.ids import new_id
from resource_mgr.states import Role

from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session, runtime, unit_of_work
from interfaces.http.inputs import MAX_JSON_DEPTH, check_json_value
from interfaces.http.tmf import errors, tmf645

BASE_PATH = "/tmf-api/serviceQualificationManagement/v4"
RESOURCE = "checkServiceQualification"
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000

bp = Blueprint("tmf645", __name__)
errors.register(bp)
ROLES = (Role.SALES, *READERS)


def _href(qualification_id: str) -> str:
    return f"{request.host_url.rstrip('/')}{BASE_PATH}/{RESOURCE}/{qualification_id}"


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of range")
    return value


def _body() -> Any:
    mimetype = request.mimetype or ""
    if mimetype and not (mimetype == "application/json" or mimetype.endswith("+json")):
        raise tmf645.BadRequest(f"the body must be application/json; got {mimetype}")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise tmf645.BadRequest(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise tmf645.BadRequest(f"the body is not valid JSON: {str(exc)[:200]}") from None
    check_json_value(body)  # no NUL or lone surrogate (no database stores them), bounded depth
    return body


def _fields(qualification: dict[str, Any]) -> dict[str, Any]:
    """`fields=a,b`: only those first-level attributes (id, href and @type always)."""
    wanted = request.args.get("fields")
    if not wanted or not wanted.strip():
        return qualification
    names = {f.strip() for f in wanted.split(",") if f.strip()} | {"id", "href", "@type"}
    return {k: v for k, v in qualification.items() if k in names}


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise tmf645.BadRequest(f"{name} must be an integer", field=name) from None
    if not low <= value <= high:
        raise tmf645.BadRequest(f"{name} must be within {low}..{high}", field=name)
    return value


def _with_href(stored: dict[str, Any]) -> dict[str, Any]:
    return {**stored, "href": _href(stored["id"])}


@bp.post(f"/{RESOURCE}")
@require(*ROLES)
def create() -> Response:
    body = _body()
    top, items = tmf645.read_request(body)
    me, settings, now = principal(), runtime().settings, utcnow()
    qualification_id = new_id()
    # Qualify in a read (on SQLite a unit of work holds the write lock), then store the answer.
    answered, network = tmf645.qualify(read_session(), items, local_network_ids=me.local_network_ids,
                                       settings=settings, now=now)
    stamp = now.isoformat()
    result = {"id": qualification_id, **{k: v for k, v in top.items() if v is not None},
              "checkServiceQualificationDate": stamp, "effectiveQualificationDate": stamp,
              "state": tmf645.state(answered), "qualificationResult": tmf645.overall(answered),
              "serviceQualificationItem": answered, "@type": "CheckServiceQualification"}
    with unit_of_work() as uow:
        qualifications.record(uow.session, qualification_id=qualification_id, principal=me.name,
                              local_network_id=network, request=body, response=result, now=now)
        uow.commit()
    status = 200 if top.get("instantSyncQualification") else 201
    return errors.tmf_json(_with_href(result), status, {"Location": _href(qualification_id)})


@bp.get(f"/{RESOURCE}/<qualification_id>")
@require(*ROLES)
def retrieve(qualification_id: str) -> Response:
    me = principal()
    with runtime().db.read_session() as session:
        row = qualifications.get(session, qualification_id, principal=me.name, local_network_ids=me.local_network_ids)
        return errors.tmf_json(_fields(_with_href(row.response)))


@bp.get(f"/{RESOURCE}")
@require(*ROLES)
def list_() -> Response:
    me = principal()
    offset = _int_arg("offset", 0, 0, 10_000_000)
    limit = _int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    with runtime().db.read_session() as session:
        rows, total = qualifications.page(session, principal=me.name, local_network_ids=me.local_network_ids,
                                          limit=limit, offset=offset)
        body = [_fields(_with_href(row.response)) for row in rows]
    return errors.tmf_json(body, 200, {"X-Total-Count": str(total), "X-Result-Count": str(len(body))})
