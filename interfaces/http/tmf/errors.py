"""Errors of the TMF facades: the TMF body `{"code", "reason", "message", "status"}` (status a
string), with only the statuses the specifications declare. Registered on each facade's
blueprint, so they answer for its routes, the authentication before them included."""
from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, g
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from resource_mgr.errors import DomainError

log = logging.getLogger("rmgr.http.tmf")

MEDIA_TYPE = "application/json;charset=utf-8"  # what the specifications produce
# A status the specifications do not declare is answered as the nearest one they do: every
# refusal of the request itself (unreadable, too large, wrong media type, invalid) is 400.
DECLARED = {400, 401, 403, 404, 405, 409, 429, 500, 503}


def tmf_json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False), status=status, content_type=MEDIA_TYPE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def tmf_error(status: int, code: str, reason: str, message: str = "",
              headers: dict[str, str] | None = None) -> Response:
    status = status if status in DECLARED else (400 if status < 500 else 500)
    body = {"code": code, "reason": reason[:500], "message": message or reason, "status": str(status)}
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["message"] = f"{body['message']} (request id {request_id})"
    return tmf_json(body, status, headers)


def register(bp: Blueprint) -> None:
    @bp.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="rmgr"'} if error.status == 401 else {}
        if "retry_after" in error.extra:
            headers["Retry-After"] = str(error.extra["retry_after"])
        field = f"{error.field}: " if error.field else ""
        return tmf_error(error.status, error.code, f"{field}{error.detail}", headers=headers)

    @bp.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else None
        return tmf_error(status, error.name.lower().replace(" ", "_"), error.description or error.name,
                         headers=headers)

    @bp.errorhandler(OperationalError)
    def _db_down(error: OperationalError) -> Response:
        log.error("database error: %s", error.orig)
        return tmf_error(503, "unavailable", "the database is not reachable or busy; retry shortly",
                         headers={"Retry-After": "5"})

    @bp.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return tmf_error(500, "internal", "an internal error occurred; it has been logged")
