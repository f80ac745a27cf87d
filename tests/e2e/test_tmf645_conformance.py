"""The TMF645 facade conforms to the official specification file (the copy in
interfaces/http/tmf/): schemathesis generates requests for the three operations we serve from that
file and sends them to a real HTTP server of the app; every response must have a status code the
file declares for the operation, a body conforming to its schema, the declared content type, and
never be a 5xx. Deterministic (derandomized) and bounded (RMGR_TMF_EXAMPLES examples per operation
and generation mode, default 30).

Generated bodies rarely name a product and an address we have, so the run also sends explicit
examples that do (a qualified, an alternate and an unqualified item), and GETs ids that exist."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance,
)

from interfaces.http.tmf.service_qualification import BASE_PATH

SPEC = Path(__file__).resolve().parents[2] / "interfaces/http/tmf/TMF645-ServiceQualification-v4.0.1.swagger.json"
EXAMPLES = int(os.environ.get("RMGR_TMF_EXAMPLES", "30"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
SERVED = {("POST", "/checkServiceQualification"), ("GET", "/checkServiceQualification"),
          ("GET", "/checkServiceQualification/{id}")}


def _operations(schema):
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SERVED:
            found[(operation.method.upper(), operation.path)] = operation
    assert set(found) == SERVED, "the file names the operations we serve"
    return found


def test_spec_copy_is_the_official_file():
    # unchanged copy: its own title and version, every operation of the API, not trimmed
    import json

    doc = json.loads(SPEC.read_text(encoding="utf-8"))
    assert doc["swagger"] == "2.0" and doc["info"]["version"] == "4.0.1"
    assert doc["basePath"] == BASE_PATH
    assert "/queryServiceQualification" in doc["paths"] and "/hub" in doc["paths"]


def test_generated_requests_get_conforming_answers(tmf_world):
    live, headers = tmf_world["live"], tmf_world["headers"]
    schema = schemathesis.openapi.from_path(str(SPEC))
    operations = _operations(schema)
    base_url = live.url + BASE_PATH
    failures: list[str] = []
    for key, operation in sorted(operations.items()):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES, deadline=10000, database=None, derandomize=True, print_blob=False,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(base_url=base_url, headers=headers)
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, f"{key}: no valid input can be generated"
            except (Exception, BaseExceptionGroup) as exc:  # collect every failure, then report them all
                failures.append(f"{key[0]} {key[1]} ({mode.value}): {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)


def test_explicit_answers_conform(tmf_world):
    """Real qualifications (qualified, alternate, unqualified, an unknown address), a read by id,
    a list with fields, and the errors, checked against the file's schemas."""
    live, headers = tmf_world["live"], tmf_world["headers"]
    schema = schemathesis.openapi.from_path(str(SPEC))
    operations = _operations(schema)
    base = live.url + BASE_PATH
    post = operations[("POST", "/checkServiceQualification")]
    ids = []
    for body in tmf_world["bodies"]:
        case = post.Case(body=body, media_type="application/json")
        response = case.call(base_url=base, headers=headers)
        assert response.status_code in (200, 201), response.text
        case.validate_response(response, checks=CHECKS)
        ids.append(response.json()["id"])
    one = operations[("GET", "/checkServiceQualification/{id}")]
    for qualification_id in ids + ["no-such-id"]:
        for query in ({}, {"fields": "state,qualificationResult"}):
            case = one.Case(path_parameters={"id": qualification_id}, query=query)
            response = case.call(base_url=base, headers=headers)
            assert response.status_code == (404 if qualification_id == "no-such-id" else 200), response.text
            case.validate_response(response, checks=CHECKS)
    listing = operations[("GET", "/checkServiceQualification")]
    for query in ({}, {"limit": 1, "offset": 1}, {"fields": "id"}, {"limit": -1}, {"offset": "x"}):
        case = listing.Case(query=query)
        response = case.call(base_url=base, headers=headers)
        case.validate_response(response, checks=CHECKS)
    # without a token: the TMF error body, not problem+json
    case = listing.Case(query={})
    response = case.call(base_url=base)
    assert response.status_code == 401
    case.validate_response(response, checks=CHECKS)
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) >= {"code", "reason", "message", "status"} and response.json()["status"] == "401"


@pytest.fixture
def tmf_world(coverage_live):
    return coverage_live
