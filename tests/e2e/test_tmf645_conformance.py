"""The TMF645 facade conforms to the official specification file (the copy in
interfaces/http/tmf/): schemathesis generates requests for the three operations we serve from that
file and sends them to a real HTTP server of the app; every response must have a status code the
file declares for the operation, a body conforming to its schema, the declared content type, and
never be a 5xx. Deterministic (derandomized) and bounded (RMGR_TMF_EXAMPLES examples per operation
and generation mode, default 25).

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

from coverage_world import addresses, live_xs
from interfaces.http.tmf.service_qualification import BASE_PATH

SPEC = Path(__file__).resolve().parents[2] / "interfaces/http/tmf/TMF645-ServiceQualification-v4.0.1.swagger.json"
EXAMPLES = int(os.environ.get("RMGR_TMF_EXAMPLES", "25"))
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
    # byte for byte the file of tmforum-apis/TMF645_ServiceQualification at 36240168 (README.md)
    import hashlib
    import json

    assert hashlib.sha256(SPEC.read_bytes()).hexdigest() == \
        "4bc2641e160fe3bc27b5cd4ac785667aac679dd594017d17554c3b0e9ac1d8da"
    doc = json.loads(SPEC.read_text(encoding="utf-8"))
    assert doc["swagger"] == "2.0" and doc["basePath"] == BASE_PATH
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
    content_type = {k.lower(): v for k, v in response.headers.items()}["content-type"]
    assert (content_type[0] if isinstance(content_type, list) else content_type).startswith("application/json")
    assert set(response.json()) >= {"code", "reason", "message", "status"} and response.json()["status"] == "401"


PRODUCTS = ["ftth_broadband", "adsl_broadband", "vdsl_broadband", "lan_broadband", "pots", "ngn_phone", "iptv",
            "voip"]


def item(product, place, item_id=None):
    out = {"service": {"serviceSpecification": {"id": product, "name": product}, "place": [place]}}
    if item_id:
        out["id"] = item_id
    return out


@pytest.fixture
def tmf_world(db, tmp_path_factory):
    for live in live_xs(db, tmp_path_factory):
        with db.read_session() as s:
            room = addresses(s, "room", 1)[0]
            ref = {"id": room.id, "role": "installationAddress", "@referredType": "GeographicAddress"}
            by_text = {"role": "installationAddress", "@type": "GeographicAddress", "name": room.name}
        bodies = [
            {"instantSyncQualification": True, "externalId": "BSS-1",
             "serviceQualificationItem": [item(p, ref, str(i)) for i, p in enumerate(PRODUCTS)]},
            {"serviceQualificationItem": [item("ftth_broadband", by_text), item("fax", ref),
                                          item("pots", {"id": "nope", "role": "installationAddress"})]},
            {"instantSyncQualification": False, "serviceQualificationItem": [item("fax", ref)]},
        ]
        yield {"live": live, "headers": live.headers("sales_fs"), "bodies": bodies, "room": room.id}


def test_qualification_results_follow_the_native_check(tmf_world):
    live, headers, bodies = tmf_world["live"], tmf_world["headers"], tmf_world["bodies"]
    url = live.url + BASE_PATH + "/checkServiceQualification"
    native = live.check({"address_id": tmf_world["room"]}).json()
    want = {p["product"]: p["result"] for p in native["products"]}

    r = live.http.post(url, json=bodies[0], headers=headers, timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json;charset=utf-8"
    q = r.json()
    assert q["state"] == "done" and q["externalId"] == "BSS-1" and r.headers["Location"] == q["href"]
    items = {i["service"]["serviceSpecification"]["name"]: i for i in q["serviceQualificationItem"]}
    assert {p: i["qualificationResult"] for p, i in items.items()} == want
    results = set(want.values())
    assert q["qualificationResult"] == ("unqualified" if "unqualified" in results else
                                        "alternate" if "alternate" in results else "qualified")
    for p, i in items.items():
        assert i["service"]["place"][0]["id"] == tmf_world["room"]
        if want[p] != "qualified":
            assert i["eligibilityUnavailabilityReason"][0]["label"]
        if want[p] == "alternate":
            proposed = [a["alternateService"]["serviceSpecification"]["name"] for a in i["alternateServiceProposal"]]
            assert proposed and all(x in want for x in proposed)

    r = live.http.post(url, json=bodies[1], headers=headers, timeout=60)
    assert r.status_code == 201  # not instantSyncQualification: the task, already done
    by_text, unknown_product, unknown_place = r.json()["serviceQualificationItem"]
    assert by_text["state"] == "done" and by_text["service"]["place"][0]["id"] == tmf_world["room"]
    assert unknown_product["state"] == unknown_place["state"] == "terminatedWithError"
    assert "unknown product" in unknown_product["terminationError"][0]["value"]
    assert "no address" in unknown_place["terminationError"][0]["value"]
    assert r.json()["qualificationResult"] == "unqualified" and r.json()["state"] == "done"

    r = live.http.post(url, json=bodies[2], headers=headers, timeout=60)
    assert r.status_code == 201 and r.json()["state"] == "terminatedWithError"
    last = r.json()["id"]

    # stored: read again by the same principal, newest first; nobody else sees them
    listed = live.http.get(url, params={"limit": 2, "fields": "state"}, headers=headers, timeout=30)
    assert listed.headers["X-Total-Count"] == "3" and listed.headers["X-Result-Count"] == "2"
    assert listed.json()[0]["id"] == last and set(listed.json()[0]) == {"id", "href", "@type", "state"}
    assert live.http.get(f"{url}/{last}", headers=headers, timeout=30).json()["state"] == "terminatedWithError"
    other = live.headers("reader")  # another principal
    assert live.http.get(f"{url}/{last}", headers=other, timeout=30).status_code == 404
    assert live.http.get(url, headers=other, timeout=30).headers["X-Total-Count"] == "0"

    # a request that is not a checkServiceQualification: 400 with the TMF error body
    for bad in ({"serviceQualificationItem": []}, [1], {"serviceQualificationItem": [{"service": 5}]},
                {"instantSyncQualification": "yes", "serviceQualificationItem": [{}]}):
        r = live.http.post(url, json=bad, headers=headers, timeout=30)
        assert r.status_code == 400 and r.json()["code"] == "invalid" and r.json()["status"] == "400", r.text
    r = live.http.post(url, data=b"{not json", headers={**headers, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400
