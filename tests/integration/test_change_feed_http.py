"""GET /api/v1/history?after=N: the change feed over HTTP, oldest first from a position."""
from __future__ import annotations

from security_helpers import bearer, build_world, issue, make_app

from resource_mgr.security import audit


def test_history_after_a_position_is_the_feed_in_commit_order(db):
    world = build_world(db)
    app = make_app(db)
    client = app.test_client()
    _, everyone = issue(db, ["auditor"])
    _, gz_only = issue(db, ["auditor"], [world["A"]["code"]])

    first = client.get("/api/v1/history", query_string={"after": 0, "limit": 3}, headers=bearer(everyone))
    assert first.status_code == 200, first.json
    positions = [r["position"] for r in first.json]
    assert len(positions) == 3 and positions == sorted(positions) and positions[0] >= 1
    rest = client.get("/api/v1/history", query_string={"after": positions[-1], "limit": 1000},
                      headers=bearer(everyone)).json
    assert [r["position"] for r in rest] == sorted(r["position"] for r in rest)
    assert rest and rest[0]["position"] > positions[-1]
    newest_first = client.get("/api/v1/history", query_string={"limit": 1000}, headers=bearer(everyone)).json
    assert sorted(r["position"] for r in newest_first) == positions + [r["position"] for r in rest]

    with db.unit_of_work(principal="user:x") as uow:
        audit.record(uow.session, None, resource_id="later", resource_kind="test", action="t",
                     local_network_id=world["A"]["ln"], before=None, after={})
        uow.commit()
    later = client.get("/api/v1/history", query_string={"after": rest[-1]["position"]}, headers=bearer(everyone)).json
    assert [r["resource_id"] for r in later] == ["later"]

    scoped = client.get("/api/v1/history", query_string={"after": 0, "limit": 1000}, headers=bearer(gz_only)).json
    assert scoped and {r["local_network"] for r in scoped} == {"GZ"}

    for bad in (-1, 2**31, 10**40, "x"):
        response = client.get("/api/v1/history", query_string={"after": bad}, headers=bearer(everyone))
        assert response.status_code == 422 and response.json["field"] == "after", (bad, response.json)
