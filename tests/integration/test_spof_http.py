"""The single-points-of-failure report over HTTP and from `rmgr report spof`, and impact and alarms
on a network with redundancy, checked against failing each candidate alone (service_state).

Network TP (topology_world.access_world, dual-homed, both trunks in one duct segment), and a
twin in TQ that a TP-only principal must never see:

    box port ─ drop core ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1 @A, mgmt 10.1.1.1]
    OLT1 up1 ─ T1 ─ AGG1 [@B] ─ CR1 [@D]      T1, T2 and f1 all through duct segment SG1 (M1–M2)
    OLT1 up2 ─ T2 ─ AGG2 [@C] ─ CR1
    the VIP line on the box port; an IPTV service riding on it
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from click.testing import CliRunner
from topology_world import TopoWorld, access_world

from interfaces.cli.main import cli
from resource_mgr.inventory.models import Device
from resource_mgr.topology import services as topo
from security_helpers import bearer, issue, make_app


@pytest.fixture
def world(db) -> dict[str, Any]:
    topo.forget_graphs()
    with db.unit_of_work() as uow:
        n = access_world(TopoWorld(uow.session, code="TP"), dual_homed=True, shared_duct=True)
        uow.session.get(Device, n.OLT1).management_ip = "10.1.1.1"
        q = access_world(TopoWorld(uow.session, code="TQ"), dual_homed=True, shared_duct=True)
        uow.commit()
    app = make_app(db)
    yield {"n": n, "q": q, "client": app.test_client(), "maint": issue(db, ["maintenance"], ["TP"])[1],
           "planner_all": issue(db, ["planner"])[1], "sales": issue(db, ["sales"], ["TP"])[1]}
    topo.forget_graphs()


def test_spof_report_equals_failing_each_candidate_alone(db, world):
    n, c = world["n"], world["client"]
    r = c.get("/api/v1/reports/single-points-of-failure?grade=vip", headers=bearer(world["maint"]))
    assert r.status_code == 200, r.json
    assert [row["service_id"] for row in r.json] == [n.svc]  # TQ's VIP is outside the scope
    assert r.headers["X-Total-Count"] == "1"
    found = {x["id"] for x in r.json[0]["resources"]}
    # the shared duct segment, the access tree and the single core router are single points; the
    # two trunks and aggregation switches are not (the other homing survives)
    assert {n.BP[0], n.BOX, n.S1, n.PON1, n.OLT1, n.SG1, n.CR1} <= found
    assert not found & {n.T1, n.T2, n.AGG1, n.AGG2, n.UP1, n.UP2}
    with db.read_session() as s:
        for rid in found:
            assert topo.service_state(s, n.svc, {rid}) == "down", rid
        for rid in (n.T1, n.T2, n.AGG1, n.AGG2, n.B, n.C):
            assert topo.service_state(s, n.svc, {rid}) == "degraded", rid
    assert all(set(x) == {"id", "kind", "name"} for x in r.json[0]["resources"])


def test_spof_query_scope_and_paging(world):
    c, h = world["client"], bearer(world["planner_all"])
    both = c.get("/api/v1/reports/single-points-of-failure", headers=h)
    assert {row["service_id"] for row in both.json} == {world["n"].svc, world["q"].svc}
    assert both.headers["X-Total-Count"] == "2"
    only_tq = c.get("/api/v1/reports/single-points-of-failure?local_network=TQ", headers=h)
    assert [row["service_id"] for row in only_tq.json] == [world["q"].svc]
    page = c.get("/api/v1/reports/single-points-of-failure?limit=1&offset=1", headers=h)
    assert len(page.json) == 1 and page.headers["X-Total-Count"] == "2"
    assert c.get("/api/v1/reports/single-points-of-failure?grade=major_account", headers=h).json == []
    mine = bearer(world["maint"])
    assert c.get("/api/v1/reports/single-points-of-failure?local_network=TQ", headers=mine).status_code == 422
    assert c.get("/api/v1/reports/single-points-of-failure?grade=gold", headers=mine).status_code == 422
    assert c.get("/api/v1/reports/single-points-of-failure", headers=bearer(world["sales"])).status_code == 403


def test_spof_cli_json_and_csv(db, world, monkeypatch):
    monkeypatch.setenv("RMGR_DATABASE_URL", db.url)
    runner = CliRunner()
    out = runner.invoke(cli, ["report", "spof", "--local-network", "TP", "--no-progress"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    with db.read_session() as s:
        assert rows == topo.single_points_of_failure(s, local_network_ids=[_ln(s, "TP")])
    out = runner.invoke(cli, ["report", "spof", "--format", "csv", "--no-progress"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert {r["service_id"] for r in table} == {world["n"].svc, world["q"].svc}
    mine = {r["resource_id"] for r in table if r["service_id"] == world["n"].svc}
    assert mine == {x["id"] for x in rows[0]["resources"]}
    bad = runner.invoke(cli, ["report", "spof", "--local-network", "XX", "--no-progress"])
    assert bad.exit_code == 2 and "unknown local network" in bad.output


def _ln(s: Any, code: str) -> str:
    from sqlalchemy import select

    from resource_mgr.inventory.models import LocalNetwork

    return s.scalar(select(LocalNetwork.id).where(LocalNetwork.code == code))


def test_impact_over_http_down_and_degraded(db, world):
    n, c, h = world["n"], world["client"], bearer(world["maint"])
    down = c.post("/api/v1/impact", json={"resource_ids": [n.SG1]}, headers=h)
    assert down.status_code == 200, down.json
    assert down.json["down_count"] == 2 and down.json["degraded_count"] == 0  # the line and its rider
    assert down.json["services"][0]["id"] == n.svc and down.json["services"][0]["vip"] is True
    degraded = c.post("/api/v1/impact", json={"resource_ids": [n.T1, n.AGG1]}, headers=h)
    assert (degraded.json["down_count"], degraded.json["degraded_count"]) == (0, 2)
    both = c.post("/api/v1/impact", json={"resource_ids": [n.T1, n.T2]}, headers=h)
    assert both.json["down_count"] == 2
    paged = c.post("/api/v1/impact", json={"resource_ids": [n.SG1], "limit": 1, "offset": 1}, headers=h)
    assert paged.json["down_count"] == 2 and len(paged.json["services"]) == 1
    assert paged.json["services"][0]["id"] == n.iptv
    with db.read_session() as s:  # the same answer as the engine's, in the caller's scope
        assert down.json == topo.impact(s, [n.SG1], local_network_ids=[_ln(s, "TP")])


def test_alarm_answers_with_the_impact_and_emits_the_event(db, world):
    n, c, h = world["n"], world["client"], bearer(world["maint"])
    r = c.post("/api/v1/alarms", json={"source": "nms", "device": "10.1.1.1", "severity": "critical",
                                       "raised_at": "2026-12-01T10:00:00+08:00"}, headers=h)
    assert r.status_code == 201, r.json
    assert r.json["resource_id"] == n.OLT1 and r.json["impact"]["down_count"] == 2
    up = c.post("/api/v1/alarms", json={"source": "nms", "device": "AGG1", "severity": "major",
                                        "raised_at": "2026-12-01T10:00:00+08:00"}, headers=h)
    assert up.status_code == 201 and up.json["impact"]["degraded_count"] == 2
    assert up.json["impact"]["down_count"] == 0
