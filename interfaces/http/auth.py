"""Authentication (bearer tokens) and authorisation (roles per endpoint, local-network scope).

Every endpoint either declares the roles it needs with `@require(...)` or is marked `@public`;
`check_every_endpoint_declared` refuses to start an app where one does neither, so no endpoint
can be added without thinking about who may call it."""
from __future__ import annotations

import functools
import re
from typing import Any, Callable

from apiflask import APIFlask
from flask import g, request

from resource_mgr.errors import Unauthorized
from resource_mgr.clock import aware, utcnow
from resource_mgr.security.services import TOKEN_USE_RESOLUTION, record_token_use, resolve_token, token_use_recorded
from resource_mgr.states import Role

from interfaces.http import errors
from interfaces.http.context import runtime

READERS = frozenset(Role)  # any role may read inventory within its scope


def public(view: Callable) -> Callable:
    view._rmgr_public = True  # type: ignore[attr-defined]
    return view


def require(*roles: Role) -> Callable[[Callable], Callable]:
    """The view may be called only by a principal holding one of `roles`."""
    needed = frozenset(roles)

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.principal.require_any(needed, f"{request.method} {request.path}")
            return view(*args, **kwargs)

        wrapper._rmgr_roles = needed  # type: ignore[attr-defined]
        spec = getattr(wrapper, "_spec", {})
        spec.setdefault("security", [{"bearerAuth": []}])
        wrapper._spec = spec  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _is_public(app: APIFlask, endpoint: str | None) -> bool:
    if endpoint is None:
        return True  # 404/405: let the error handlers answer
    view = app.view_functions.get(endpoint)
    return view is None or getattr(view, "_rmgr_public", False) or endpoint in app.config["RMGR_PUBLIC_ENDPOINTS"]


def install(app: APIFlask, between: Callable[[APIFlask], None] | None = None) -> None:
    """Authentication: resolve the bearer token to g.principal, or remember why it failed in
    g.auth_error; then `between(app)` (the rate limiter, keyed by that principal); then the
    enforcement (401 / 403). So failed attempts (guessing tokens) are rate limited too."""
    app.security_schemes = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    app.config.setdefault("RMGR_PUBLIC_ENDPOINTS", {"static", "openapi.spec", "openapi.docs", "openapi.swagger_ui_static",
                                                       "openapi.swagger_ui_oauth_redirect"})

    @app.before_request
    def _authenticate() -> None:
        g.auth_error = None
        if _is_public(app, request.endpoint):
            return
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            g.auth_error = Unauthorized("send Authorization: Bearer <token>")
            return
        rt = runtime()
        secret = secret.strip()
        try:  # from the process's token cache when it has it (no database round trip)
            g.principal, last_used_at = resolve_token(rt.db, secret, rt.settings.auth_token_cache_seconds)
        except Unauthorized as exc:
            g.auth_error = exc
            return
        # Outside the read: a write only when the recorded use is a minute old, never waiting.
        now = utcnow()
        if last_used_at is None or now - aware(last_used_at) >= TOKEN_USE_RESOLUTION:
            if record_token_use(rt.db, g.principal.token_id, last_used_at, now):
                token_use_recorded(rt.db, secret, now)  # the cached read: no write for a minute

    if between is not None:
        between(app)
    _install_enforcement(app)

    @app.spec_processor
    def _document(spec: dict[str, Any]) -> dict[str, Any]:
        document_security(app, spec)
        return errors.document_problems(spec)


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def document_security(app: APIFlask, spec: dict[str, Any]) -> None:
    """Say in the OpenAPI document which operations need a bearer token and which roles."""
    spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http", "scheme": "bearer"}
    paths = spec.get("paths") or {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        roles = getattr(view, "_rmgr_roles", None)
        item = paths.get(_openapi_path(rule.rule))
        if not roles or not item:
            continue
        for method in rule.methods or ():
            op = item.get(method.lower())
            if isinstance(op, dict):
                op["security"] = [{"bearerAuth": []}]
                note = f"Roles: {', '.join(sorted(r.value for r in roles))}."
                if note not in op.get("description", ""):
                    op["description"] = (op.get("description", "") + "\n\n" + note).strip()


def _install_enforcement(app: APIFlask) -> None:
    """Refuse an unauthenticated request (401 saying why), then check the view's roles (403)
    before the body or query is parsed, so a caller without the role learns nothing more."""

    @app.before_request
    def _enforce() -> None:
        error = g.pop("auth_error", None)
        if error is not None:
            raise error
        if _is_public(app, request.endpoint):
            return
        view = app.view_functions.get(request.endpoint or "")
        roles = getattr(view, "_rmgr_roles", None)
        if roles:
            g.principal.require_any(roles, f"{request.method} {request.path}")


def check_every_endpoint_declared(app: APIFlask) -> None:
    undeclared = [
        name for name, view in app.view_functions.items()
        if not getattr(view, "_rmgr_roles", None) and not _is_public(app, name)
    ]
    if undeclared:
        raise RuntimeError(f"endpoints without @require or @public: {', '.join(sorted(undeclared))}")
