"""GET /api/v1/addresses is a counter's interactive read: not refused by the list-read bound
(interfaces/http/load.py), bounded instead by its own gate that waits for a slot."""
from __future__ import annotations

from security_helpers import bearer, issue, make_app
from tests.address_world import build


def test_search_is_not_under_the_list_read_bound_and_waits_for_its_own(db):
    build(db)
    app = make_app(db, list_read_concurrency=1, addresses_search_concurrency=1, addresses_search_wait_ms=50)
    _, token = issue(db, ["sales"])
    client = app.test_client()
    list_gate = app.extensions["rmgr_list_read_gate"]
    assert list_gate.try_enter()  # a list read in progress holds the only list-read slot
    try:
        found = client.get("/api/v1/addresses?q=中山路&limit=5", headers=bearer(token))
        assert found.status_code == 200 and found.json and int(found.headers["X-Total-Count"]) >= 1
        assert client.get("/api/v1/history", headers=bearer(token)).status_code in (403, 503)
    finally:
        list_gate.leave()
    gate = app.extensions["rmgr_address_search_gate"]
    assert gate.enter(0)  # every search slot taken: one more waits 50 ms, then 503 with Retry-After
    try:
        busy = client.get("/api/v1/addresses?q=中山路", headers=bearer(token))
        assert busy.status_code == 503 and busy.json["code"] == "unavailable" and busy.headers["Retry-After"] == "1"
    finally:
        gate.leave()
    assert client.get("/api/v1/addresses?q=中山路", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/addresses?q=中山路&limit=0", headers=bearer(token)).status_code == 422
