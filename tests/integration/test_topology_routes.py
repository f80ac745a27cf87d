"""Routes from the topology engine: the stored path continued to the core, and every alternate
route of a dual-homed or type-B protected line; the same over HTTP."""
from __future__ import annotations

from security_helpers import bearer, issue, make_app
from topology_world import build  # noqa: F401 (a fixture)

from resource_mgr.topology import services as topo


def ids(route):
    return [h["unit_id"] for h in route]


def test_plain_route_runs_from_the_box_to_the_core_router(db, build):
    """
        box port ─ drop core ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1 @A]
        OLT1 up1 ─ T1 core1 ─ AGG1 u1 ═ AGG1 u2 ─ CR1 p1
    """
    n = build()
    with db.read_session() as s:
        route = topo.routes_of_service(s, n.svc)
        assert ids(route["hops"]) == n.path + n.transport1
        assert route["alternate_routes"] == []
        assert route["hops"][0]["kind"] == "box_port" and route["hops"][-1]["device"] == "CR1"
        assert route["hops"][7]["cable"] == "T1" and route["hops"][5]["site"] == "A"
        rider = topo.routes_of_service(s, n.iptv)
        assert rider["bearer_id"] == n.svc and rider["hops"] == route["hops"]
        through = topo.routes_of_resource(s, n.Fc[0])
        assert through["service_id"] == n.svc and ids(through["hops"]) == ids(route["hops"])
        uplink = topo.routes_of_resource(s, n.OLT1)
        assert uplink["service_id"] == n.svc


def test_dual_homed_head_gives_a_second_route_through_the_other_aggregation(db, build):
    """
        ... PON1 [OLT1] up1 ─ T1 ─ AGG1 u1 ═ u2 ─ CR1 p1
                        up2 ─ T2 ─ AGG2 u1 ═ u2 ─ CR1 p2
    """
    n = build(dual_homed=True)
    with db.read_session() as s:
        route = topo.routes_of_service(s, n.svc)
        assert ids(route["hops"]) == n.path + n.transport1
        assert [ids(r) for r in route["alternate_routes"]] == [
            n.path + [n.UP2, n.T2c[0], n.AGG2u[0], n.AGG2u[1], n.CR1p[1]]]


def test_type_b_line_has_the_second_splitter_input_as_alternate(db, build):
    """
        box port ─ drop core ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1] up1 ─ T1 core1 ─ AGG1 u1 ═ u2 ─ CR1
                                      ╲═ S1 in2 ─ f2 ─ PON2 [OLT2] up1 ─ T1 core2 ─ AGG1 u3 ═ u2 ─ CR1
    """
    n = build(type_b=True)
    with db.read_session() as s:
        route = topo.routes_of_service(s, n.svc)
        assert ids(route["hops"]) == n.path + n.transport1
        assert [ids(r) for r in route["alternate_routes"]] == [
            n.path[:3] + [n.S1in[1], n.Fc[1], n.PON2, n.OLT2UP, n.T1c[1], n.AGG1u[2], n.AGG1u[1], n.CR1p[0]]]


def test_routes_over_http(db, build):
    """The dual-homed world (see above) through GET /services/{id}/route and /resources/{id}/route."""
    n = build(dual_homed=True)
    client = make_app(db).test_client()
    _, secret = issue(db, ["maintenance"])
    answer = client.get(f"/api/v1/services/{n.svc}/route", headers=bearer(secret))
    assert answer.status_code == 200, answer.json
    assert ids(answer.json["hops"]) == n.path + n.transport1 and len(answer.json["alternate_routes"]) == 1
    rider = client.get(f"/api/v1/services/{n.iptv}/route", headers=bearer(secret)).json
    assert rider["bearer_id"] == n.svc and rider["hops"] == answer.json["hops"]
    port = client.get(f"/api/v1/resources/{n.PON1}/route", headers=bearer(secret))
    assert port.status_code == 200 and port.json["service_id"] == n.svc
    assert port.json["alternate_routes"] == answer.json["alternate_routes"]
    missing = client.get("/api/v1/resources/NOPE/route", headers=bearer(secret))
    assert missing.status_code == 404 and missing.json["code"] == "not_found"
