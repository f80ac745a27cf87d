"""Guards on what a request carries, run before any view parses it (after authentication and the
role check, so a caller without the role learns nothing more).

- Body type: a view that declares a body (`@bp.input(..., location="json" | "form" | "files" |
  "form_and_files" | "json_or_form")`) gets it in that media type or the request is refused 415
  problem+json `unsupported_media_type` (instead of the schema saying every field is missing).
  A request with no body and no Content-Type is left to the schema (its required fields).
- JSON bodies are decoded here once, safely, before webargs decodes them again: not UTF-8, not
  JSON, or nested deeper than MAX_JSON_DEPTH is 400 `invalid`; a string holding a NUL or a lone
  surrogate (no database can store either), an integer outside 64 bits, or a non-finite number
  (NaN, Infinity, 1e999) is 422 `invalid` naming the field. Only a body that passed reaches the
  schema, so the second decoding cannot fail.
- Query strings: a control character (NUL, newline, ...) in a query parameter is 422 `invalid`
  naming the parameter, never part of a filter; in a path parameter (an id) it is 404 `not_found`:
  no id holds one.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from apiflask import APIFlask
from flask import request
from werkzeug.exceptions import UnsupportedMediaType

from resource_mgr.errors import DomainError, Invalid, NotFound

MAX_JSON_DEPTH = 32
_INT64 = 2 ** 63
_BAD_STRING = re.compile(r"[\x00\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSON_TYPES = ("application/json",)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_ACCEPTED = {"json": _JSON_TYPES, "form": _FORM_TYPES, "files": ("multipart/form-data",),
             "form_and_files": ("multipart/form-data",), "json_or_form": _JSON_TYPES + _FORM_TYPES}


class BadJson(DomainError):
    """The body is not JSON this API can read (400: the request as a whole, no single field)."""

    code, status = "invalid", 400


class _Refused:
    """A JSON value decoded to a marker, so that the walk can name the field it was in."""

    def __init__(self, why: str) -> None:
        self.why = why


def _int(text: str) -> int | _Refused:
    # Checked on the text: int() of a 5,000-digit string raises (sys.int_info.str_digits_check_threshold).
    if len(text.lstrip("-")) > 19:
        return _Refused(f"a number of {len(text.lstrip('-'))} digits is out of range")
    value = int(text)
    return value if -_INT64 <= value < _INT64 else _Refused("the number is out of range")


def _float(text: str) -> float | _Refused:
    value = float(text)
    return value if math.isfinite(value) else _Refused("the number is out of range")


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number this API accepts")


def _body_location(view: Any) -> str | None:
    spec = getattr(view, "_spec", None) or {}
    if "body" not in spec:
        return None
    content_type = spec.get("content_type")
    types = content_type if isinstance(content_type, list) else [content_type]
    if "application/json" in types and len(types) > 1:
        return "json_or_form"
    if "application/json" in types:
        return "json"
    if "multipart/form-data" in types:
        return "files"
    return "form"


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def _check_media_type(location: str) -> None:
    mimetype = request.mimetype or ""
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    if not mimetype and not has_body:
        return  # nothing sent: the schema names what is missing
    accepted = _ACCEPTED[location]
    if mimetype in accepted or ("application/json" in accepted and _is_json(mimetype)):
        return
    raise UnsupportedMediaType(f"the body must be {' or '.join(accepted)}; got {mimetype or 'no Content-Type'}")


def _field(path: list[str]) -> str:
    return ".".join(path) or "body"


def check_json_value(value: Any) -> None:
    """Walk a decoded body (iteratively: a deep document must not exhaust the stack)."""
    stack: list[tuple[list[str], Any]] = [([], value)]
    while stack:
        path, node = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise BadJson(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, _Refused):
            raise Invalid(node.why, field=_field(path))
        if isinstance(node, str):
            if _BAD_STRING.search(node):
                raise Invalid("a NUL character or a lone surrogate (e.g. \\ud800) is not text this API stores",
                              field=_field(path))
        elif isinstance(node, dict):
            for key, item in node.items():
                if _BAD_STRING.search(key):
                    raise Invalid("a field name holds a NUL character or a lone surrogate", field=_field(path))
                stack.append((path + [key], item))
        elif isinstance(node, list):
            stack.extend((path + [str(i)], item) for i, item in enumerate(node))


def _check_json_body() -> None:
    if not _is_json(request.mimetype or ""):
        return  # json_or_form sent as a form
    raw = request.get_data(cache=True)
    if not raw:
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadJson(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise BadJson(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise BadJson(f"the body is not valid JSON: {str(exc)[:200]}") from None
    check_json_value(value)


def _check_parameters() -> None:
    for key, value in request.args.items(multi=True):
        if _CONTROL.search(key) or _CONTROL.search(value):
            name = key if not _CONTROL.search(key) else repr(key)[1:-1]
            raise Invalid(f"query parameter {name} holds a control character (e.g. NUL); it matches nothing",
                          field=name)
    for key, value in (request.view_args or {}).items():
        if isinstance(value, str) and (_CONTROL.search(value) or _BAD_STRING.search(value)):
            raise NotFound(f"no {key} holds a control character", field=key)


def install(app: APIFlask) -> None:
    """Register the guards (call after authentication and the role check are installed)."""

    @app.before_request
    def _guard_input() -> None:
        if request.endpoint is None:
            return
        _check_parameters()
        location = _body_location(app.view_functions.get(request.endpoint))
        if location is None:
            return
        _check_media_type(location)
        if location in ("json", "json_or_form"):
            _check_json_body()
