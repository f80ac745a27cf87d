"""TM Forum Open API facades, served next to the native API (outside /api/v1) and documented by
the official specification files in this folder, not by the native OpenAPI document."""
from __future__ import annotations

from apiflask import APIFlask

from interfaces.http.tmf import service_qualification

FACADES = (service_qualification,)


def install(app: APIFlask) -> None:
    for facade in FACADES:
        app.register_blueprint(facade.bp, url_prefix=facade.BASE_PATH)
