"""The HTTP application factory. Nothing connects at import time: `create_app(settings)` builds
the engine (which connects lazily on first use) and registers every blueprint found in
`interfaces.http.api` (each module that defines `bp`)."""
from __future__ import annotations

import importlib
import pkgutil

from apiflask import APIFlask

from resource_mgr.config import Settings, load_settings
from resource_mgr.db import Database

from interfaces.http import auth, errors, inputs, limits, load, observability
from interfaces.http.context import Runtime
from interfaces.http import tmf

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> APIFlask:
    settings = settings or load_settings()
    app = APIFlask(
        "rmgr", title="Number-and-line resource management API", version="1.0",
        spec_path=f"{API_PREFIX}/openapi.json", docs_path=f"{API_PREFIX}/docs",
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TESTING=settings.testing,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
        HTTP_ERROR_SCHEMA=errors.ProblemSchema,
        VALIDATION_ERROR_SCHEMA=errors.ProblemSchema,
        VALIDATION_ERROR_STATUS_CODE=422,
        SPEC_FORMAT="json",
        INFO={"description": "BSS, IOM and network-management integration contract (API.md)."},
    )
    app.extensions["rmgr"] = Runtime(settings=settings, db=database or Database(settings.database_url))
    if database is None:  # an engine of its own (a test's shared one keeps its connections as they are)
        load.install_connection_settings(app.extensions["rmgr"].db.engine)
    errors.register_error_handlers(app)
    observability.install(app)  # first: request id and timing for every answer, even a 401
    load.install(app)  # then the bound on list reads running at once: a refusal costs nothing
    auth.install(app, between=limits.install)  # authenticate, rate limit per principal, then 401/403
    inputs.install(app)  # then media type, safe JSON, no control characters in parameters

    import interfaces.http.api as api_pkg

    for info in sorted(pkgutil.iter_modules(api_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{api_pkg.__name__}.{info.name}")
        if hasattr(module, "bp"):
            app.register_blueprint(module.bp, url_prefix=API_PREFIX + getattr(module, "URL_PREFIX", ""))
        if hasattr(module, "init_app"):
            module.init_app(app)
    tmf.install(app)  # the TM Forum facades, outside /api/v1

    @app.teardown_request
    def _close_read_session(_exc: BaseException | None) -> None:
        from flask import g

        session = g.pop("read_session", None)
        if session is not None:
            session.close()

    auth.check_every_endpoint_declared(app)
    return app
