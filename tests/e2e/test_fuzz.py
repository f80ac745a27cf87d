"""A bounded schemathesis run against the app's own OpenAPI document (/api/v1/openapi.json).

Every operation gets FUZZ_EXAMPLES valid and FUZZ_EXAMPLES invalid generated requests (default 25; RMGR_FUZZ_EXAMPLES overrides)
with an admin token holding every role on every local network, on a database with real inventory
in two local networks. Checks: no 5xx, the status code, content type, headers and body of every
response conform to the document (invalid input must be a documented 4xx problem, never a 5xx). Failures of all operations are collected and reported together.
Bounded: per-example deadline, and a total budget after which the remaining operations get a few
examples only, so the run stays well under two minutes. Runs in CI: nothing is skipped.
"""
from __future__ import annotations

import os
import time

import pytest
import schemathesis
from schemathesis import GenerationMode
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_headers_conformance, response_schema_conformance,
    status_code_conformance,
)

from resource_mgr.states import Role
from security_helpers import build_world, issue, make_app

FUZZ_EXAMPLES = int(os.environ.get("RMGR_FUZZ_EXAMPLES", "25"))
BUDGET_SECONDS = float(os.environ.get("RMGR_FUZZ_BUDGET", "90"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture
def fuzz_target(db):
    build_world(db)
    _, secret = issue(db, list(Role), ["*"])
    app = make_app(db)
    return app, {"Authorization": f"Bearer {secret}"}


def test_fuzz_the_openapi_document(fuzz_target):
    app, headers = fuzz_target
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5, "the document lists the operations"
    started = time.monotonic()
    failures: list[str] = []
    ran = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            examples = FUZZ_EXAMPLES if time.monotonic() - started < BUDGET_SECONDS else 3

            @settings(max_examples=examples, deadline=5000, database=None, derandomize=True, print_blob=False,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(headers=headers)
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:  # nothing can be invalid (no parameters, no body): nothing to try
                assert mode == GenerationMode.NEGATIVE, f"{operation.path}: no valid input can be generated"
            except (Exception, BaseExceptionGroup) as exc:  # collect every failure, then report them all
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {str(exc)[:1500]}")
        ran += 1
    elapsed = time.monotonic() - started
    assert ran == len(operations)
    assert not failures, f"{len(failures)} operation(s) failed in {elapsed:.0f}s:\n\n" + "\n\n".join(failures)
