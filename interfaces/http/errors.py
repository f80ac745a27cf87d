"""Every error is RFC 9457 problem+json with a stable machine `code` and, where it applies, the
field that is wrong. No stack trace ever reaches a client."""
from __future__ import annotations

import logging
from typing import Any

from apiflask import APIFlask, HTTPError, Schema
from apiflask.fields import Dict, Integer, List, String
from flask import Response, g, json
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from resource_mgr.errors import DomainError

log = logging.getLogger("rmgr.http")

PROBLEM_TYPE = "https://rmgr.example/problems/"
CODES_BY_STATUS = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                   405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
                   422: "invalid", 429: "rate_limited", 503: "unavailable"}
TITLES = {"invalid": "Invalid request", "unauthorized": "Authentication required", "forbidden": "Forbidden",
          "not_found": "Not found", "method_not_allowed": "Method not allowed", "conflict": "Conflict",
          "no_capacity": "No capacity", "locked": "Locked", "expired": "Expired", "quarantined": "Quarantined",
          "too_large": "Request too large", "unsupported_media_type": "Unsupported media type",
          "rate_limited": "Too many requests",
          "unavailable": "Service unavailable", "internal": "Internal error", "quota_exceeded": "Quota exceeded"}


class ProblemSchema(Schema):
    type = String()
    title = String()
    status = Integer()
    detail = String()
    code = String()
    field = String()
    errors = List(Dict())
    request_id = String()


def problem(status: int, code: str, detail: str, *, field: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_TYPE + code, "title": TITLES.get(code, code), "status": status,
                            "detail": detail, "code": code}
    if field:
        body["field"] = field
    body.update({k: v for k, v in extra.items() if v is not None})
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def _validation_fields(detail: Any) -> list[dict[str, str]]:
    """APIFlask/webargs detail {"json": {"a": {"b": ["msg"]}}} → [{"field": "a.b", "reason": "msg"}]."""
    out: list[dict[str, str]] = []

    def walk(node: Any, path: list[str]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, path + [str(key)])
        elif isinstance(node, list) and all(isinstance(m, str) for m in node):
            out.append({"field": ".".join(path[1:]) or path[0], "in": path[0], "reason": "; ".join(node)})
        elif isinstance(node, list):
            for item in node:
                walk(item, path)
        else:
            out.append({"field": ".".join(path[1:]) or (path[0] if path else ""), "reason": str(node)})

    walk(detail, [])
    return out


_PROBLEM_JSON_SCHEMA = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                   "detail": {"type": "string"}, "code": {"type": "string"}, "field": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object"}}, "request_id": {"type": "string"}},
    "required": ["type", "title", "status", "detail", "code"],
}
_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document say what the API really answers: every error is
    application/problem+json; every operation may answer 429 (rate limit), a secured one 401 and
    403, one with a body 400 and 413, one with path parameters 404."""
    def problem_response(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM_JSON_SCHEMA}}}

    for path, item in (spec.get("paths") or {}).items():
        for method, op in item.items():
            if method not in _HTTP_METHODS or not isinstance(op, dict):
                continue
            responses = op.setdefault("responses", {})
            extra = {"429": "Too many requests for this principal or address; see Retry-After",
                     "503": "Busy (the database, or as many list reads as the server runs at once); "
                            "see Retry-After"}
            if op.get("security", spec.get("security")):
                extra.update({"401": "No valid bearer token (the detail says why)",
                              "403": "The token lacks a role this operation needs"})
            if "requestBody" in op or method in ("post", "put", "patch"):
                extra.update({"400": "The body is not valid JSON", "413": "The request body is too large",
                              "415": "The body is not of the media type the operation takes "
                                     "(code unsupported_media_type)"})
            if "{" in path:
                extra["404"] = "Not found, or outside the caller's local networks"
            for code, description in extra.items():
                responses.setdefault(code, problem_response(description))
            for code, response in responses.items():
                content = response.get("content") if isinstance(response, dict) else None
                if str(code)[:1] in "45" and content and "application/json" in content:
                    response["content"] = {"application/problem+json": {"schema": _PROBLEM_JSON_SCHEMA}}
    return spec


def register_error_handlers(app: APIFlask) -> None:
    @app.error_processor
    def _http_error(error: HTTPError) -> Response:
        code = CODES_BY_STATUS.get(error.status_code, "invalid" if error.status_code < 500 else "internal")
        fields = _validation_fields(error.detail) if error.detail else []
        detail = error.message or TITLES.get(code, "")
        if fields:
            detail = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
        return problem(error.status_code, code, detail, field=fields[0]["field"] if fields else None,
                       errors=fields or None, headers=dict(error.headers or {}))

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Response:
        extra = {k: v for k, v in error.extra.items() if isinstance(v, (str, int, float, list, dict, bool))}
        headers = {"WWW-Authenticate": 'Bearer realm="rmgr"'} if error.status == 401 else {}
        if "retry_after" in extra:  # a header, not part of the problem
            headers["Retry-After"] = str(extra.pop("retry_after"))
        return problem(error.status, error.code, error.detail, field=error.field, headers=headers, **extra)

    @app.errorhandler(IntegrityError)
    def _integrity(error: IntegrityError) -> Response:
        # A race the service's own checks could not see (two writers, one unique key).
        log.warning("integrity error: %s", error.orig)
        return problem(409, "conflict", "the change conflicts with data written at the same time; retry")

    @app.errorhandler(OperationalError)
    def _db_down(error: OperationalError) -> Response:
        log.error("database error: %s", error.orig)
        return problem(503, "unavailable", "the database is not reachable or busy; retry shortly",
                       headers={"Retry-After": "5"})

    @app.errorhandler(HTTPException)
    def _werkzeug(error: HTTPException) -> Response:
        status = error.code or 500
        code = CODES_BY_STATUS.get(status, "invalid" if status < 500 else "internal")
        headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else None
        return problem(status, code, error.description or TITLES.get(code, ""), headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return problem(500, "internal", "an internal error occurred; it has been logged with this request id")
