"""End to end over a real HTTP server (waitress on a free port): health, authentication,
inventory reads with pagination, filters and scope, and a background job started and polled."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from shapely.geometry import LineString, Point
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Site
from resource_mgr.occupancy.models import Change, History, Unit
from resource_mgr.states import JobState, Occupancy

PROBLEM = "application/problem+json"


def build_network(db: Any, ln_id: str, prefix: str) -> dict[str, Any]:
    """A site with a 1:8 splitter, a fibre access terminal (FAT-8) and a 12-core cable; box port 1
    pre-occupied until tomorrow, port 2 pre-occupied but expired an hour ago."""
    now = utcnow()
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        site = inv.add_resource(s, Site(name=f"{prefix}局", local_network_id=ln_id, location=Point(113.3, 23.1)))
        splitter = inv.create_from_template(s, template="SPLITTER-1:8", local_network_id=ln_id, site_id=site.id)
        fat = inv.create_from_template(s, template="FAT-8", local_network_id=ln_id, location=Point(113.31, 23.12))
        cable = inv.create_cable(s, local_network_id=ln_id, name=f"{prefix}-GL001", medium="fibre", unit_count=12,
                                 a_end_id=splitter.id, z_end_id=fat.id,
                                 route=LineString([(113.3, 23.1), (113.31, 23.12)]))
        ports = sorted(inv.units_of(s, fat.id, "box_port"), key=lambda u: u.seq)
        ports[0].preoccupy(Change(principal="user:alice", order_ref=f"{prefix}-ORD-1", at=now),
                           reservation_id=f"R-{prefix}-LIVE", until=now + timedelta(days=1))
        ports[1].preoccupy(Change(principal="user:alice", order_ref=f"{prefix}-ORD-2", at=now - timedelta(days=2)),
                           reservation_id=f"R-{prefix}-GONE", until=now - timedelta(hours=1))
        ids = {"site": site.id, "splitter": splitter.id, "fat": fat.id, "cable": cable.id,
               "live_port": ports[0].id, "expired_port": ports[1].id, "ports": [p.id for p in ports]}
        uow.commit()
    return ids


@pytest.fixture
def net(live_server):
    return {"GZ": build_network(live_server.db, live_server.networks["GZ"], "GZ"),
            "FS": build_network(live_server.db, live_server.networks["FS"], "FS")}


def assert_problem(r: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code and body["status"] == status and body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return body


def test_health_needs_no_token(live_server):
    r = live_server.get("/health", token=None)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_no_token_or_a_wrong_one_is_401_problem(live_server):
    assert_problem(live_server.get("/resources", token=None), 401, "unauthorized")
    assert_problem(live_server.get("/resources", token="rmgr_not-a-token"), 401, "unauthorized")
    assert_problem(live_server.get("/jobs/X", token=None), 401, "unauthorized")


def test_list_paginates_with_total_header(live_server, net):
    seen: list[str] = []
    for offset in (0, 3, 6):
        r = live_server.get("/resources", params={"kind": "box_port", "local_network": "GZ", "limit": 3,
                                                  "offset": offset})
        assert r.status_code == 200
        assert r.headers["X-Total-Count"] == "8"
        seen += [item["id"] for item in r.json()]
    assert len(seen) == 8 and set(seen) == set(net["GZ"]["ports"])
    r = live_server.get("/resources", params={"kind": "box_port", "offset": 100})
    assert r.json() == [] and r.headers["X-Total-Count"] == "16"


def test_list_filters(live_server, net):
    gz = net["GZ"]
    r = live_server.get("/resources", params={"kind": "device"})
    assert {d["id"] for d in r.json()} == {gz["splitter"], net["FS"]["splitter"]}
    r = live_server.get("/resources", params={"q": "gz-gl", "local_network": "GZ"})
    assert [d["id"] for d in r.json()] == [gz["cable"]]
    r = live_server.get("/resources", params={"site": gz["site"], "kind": "device"})
    assert [d["id"] for d in r.json()] == [gz["splitter"]]
    r = live_server.get("/resources", params={"site": gz["site"], "kind": "splitter_out"})
    assert r.headers["X-Total-Count"] == "8"
    # effective occupancy: the expired pre-occupation counts as free
    r = live_server.get("/resources", params={"kind": "box_port", "state": "preoccupied", "local_network": "GZ"})
    assert [d["id"] for d in r.json()] == [gz["live_port"]]
    r = live_server.get("/resources", params={"kind": "box_port", "state": "free", "local_network": "GZ"})
    assert r.headers["X-Total-Count"] == "7" and gz["expired_port"] in {d["id"] for d in r.json()}
    r = live_server.get("/resources", params={"kind": "cable", "state": "in_service"})
    assert r.headers["X-Total-Count"] == "2"
    r = live_server.get("/resources", params={"kind": "cable", "state": "retired"})
    assert r.json() == []


def test_list_is_scoped_to_the_principals_networks(live_server, net):
    r = live_server.get("/resources", token="reader_gz", params={"kind": "site"})
    assert [d["id"] for d in r.json()] == [net["GZ"]["site"]]
    assert all(d["local_network"] == "GZ" for d in r.json())
    r = live_server.get("/resources", token="reader_gz", params={"local_network": "FS"})
    assert r.json() == [] and r.headers["X-Total-Count"] == "0"
    r = live_server.get("/resources", token="sales_fs", params={"kind": "box_port", "limit": 1000})
    assert {d["id"] for d in r.json()} == set(net["FS"]["ports"])


@pytest.mark.parametrize("params, field", [
    ({"kind": "spaceship"}, "kind"), ({"state": "broken"}, "state"), ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"), ({"offset": -1}, "offset"), ({"local_network": "XX"}, "local_network"),
    ({"site": "NO-SUCH-SITE"}, "site"),
])
def test_bad_list_queries_are_422_naming_the_field(live_server, net, params, field):
    assert_problem(live_server.get("/resources", params=params), 422, "invalid", field)


def test_another_networks_site_filter_is_refused_like_an_unknown_one(live_server, net):
    assert_problem(live_server.get("/resources", token="sales_fs", params={"site": net["GZ"]["site"]}),
                   422, "invalid", "site")


def test_device_by_id(live_server, net):
    gz = net["GZ"]
    r = live_server.get(f"/resources/{gz['splitter']}", token="reader_gz")
    assert r.status_code == 200
    d = r.json()
    assert d["kind"] == "device" and d["device_type"] == "splitter" and d["split_ratio"] == 8
    assert d["local_network"] == "GZ" and d["site_id"] == gz["site"]
    assert d["units"] == {"total": 9, "free": 9, "preoccupied": 0, "occupied": 0}
    fat = live_server.get(f"/resources/{gz['fat']}").json()
    assert fat["kind"] == "distribution_box" and fat["fibre_access_terminal"] is True
    assert fat["location"] == {"type": "Point", "coordinates": [113.31, 23.12]}
    assert fat["units"] == {"total": 8, "free": 7, "preoccupied": 1, "occupied": 0}
    cable = live_server.get(f"/resources/{gz['cable']}").json()
    assert cable["medium"] == "fibre" and cable["unit_count"] == 12 and cable["length_m"] > 2000
    assert cable["route"]["type"] == "LineString"


def test_unit_by_id(live_server, net):
    gz = net["GZ"]
    live = live_server.get(f"/resources/{gz['live_port']}").json()
    assert live["kind"] == "box_port" and live["occupancy"] == "preoccupied"
    assert live["admin_state"] == "in_service" and live["reservation_id"] == "R-GZ-LIVE"
    assert live["service_id"] is None and live["shared"] is False and live["root_id"] == gz["fat"]
    gone = live_server.get(f"/resources/{gz['expired_port']}").json()
    assert gone["occupancy"] == "free" and gone["reservation_id"] is None
    splitter_in = live_server.get(f"/resources/{gz['splitter']}/units", params={"kind": "splitter_in"}).json()
    assert len(splitter_in) == 1
    assert splitter_in[0]["shared"] is True and splitter_in[0]["capacity"] == 8 and splitter_in[0]["used"] == 0
    assert "reservation_id" not in splitter_in[0]


def test_units_of_a_box(live_server, net):
    gz = net["GZ"]
    r = live_server.get(f"/resources/{gz['fat']}/units")
    assert r.headers["X-Total-Count"] == "8"
    assert [u["seq"] for u in r.json()] == list(range(1, 9))
    r = live_server.get(f"/resources/{gz['fat']}/units", params={"occupancy": "free", "limit": 2})
    assert r.headers["X-Total-Count"] == "7" and len(r.json()) == 2
    assert_problem(live_server.get(f"/resources/{gz['fat']}/units", params={"occupancy": "gone"}),
                   422, "invalid", "occupancy")
    assert_problem(live_server.get(f"/resources/{gz['fat']}/units", token="sales_fs"), 404, "not_found")


def test_unknown_and_other_network_ids_are_the_same_404(live_server, net):
    unknown = assert_problem(live_server.get("/resources/01NOSUCHRESOURCE000000000"), 404, "not_found")
    other = assert_problem(live_server.get(f"/resources/{net['GZ']['splitter']}", token="sales_fs"),
                           404, "not_found")
    assert other["title"] == unknown["title"] and "no resource with id" in other["detail"]
    assert_problem(live_server.get(f"/resources/{net['GZ']['live_port']}", token="sales_fs"), 404, "not_found")


def wait_for_job(live_server: Any, job_id: str, token: str = "admin", timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = live_server.get(f"/jobs/{job_id}", token=token)
        assert r.status_code == 200, r.text
        job = r.json()
        assert 0.0 <= job["progress"] <= 1.0
        if job["state"] in (JobState.SUCCEEDED, JobState.FAILED) or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_sweep_job_over_http(live_server, net):
    assert_problem(live_server.post("/jobs/sweep", token="sales_gz"), 403, "forbidden")
    r = live_server.post("/jobs/sweep", token="dispatch_gz")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "sweep_expired" and job["state"] in ("queued", "running", "succeeded")
    assert r.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    done = wait_for_job(live_server, job["id"], token="dispatch_gz")
    assert done["state"] == "succeeded", done
    assert done["progress"] == 1.0 and done["finished_at"] and done["started_at"] and done["errors"] == []
    # a dispatcher of GZ sweeps GZ only
    assert done["result"]["units"] == 1 and done["result"]["by_principal"] == {"user:alice": 1}
    with live_server.db.read_session() as s:
        gz_port = s.get(Unit, net["GZ"]["expired_port"])
        fs_port = s.get(Unit, net["FS"]["expired_port"])
        assert gz_port.occupancy == Occupancy.FREE and gz_port.reservation_id is None
        assert fs_port.occupancy == Occupancy.PREOCCUPIED
        rows = s.scalars(select(History).where(History.resource_id == gz_port.id, History.action == "expire")).all()
        assert [(h.principal, h.reservation_id) for h in rows] == [("system:sweeper", "R-GZ-GONE")]
    # the job is not another network's business; unknown jobs are 404 too
    assert_problem(live_server.get(f"/jobs/{job['id']}", token="sales_fs"), 404, "not_found")
    assert_problem(live_server.get("/jobs/01NOSUCHJOB00000000000000"), 404, "not_found")
    # an administrator of every network sweeps what is left (FS)
    again = wait_for_job(live_server, live_server.post("/jobs/sweep").json()["id"])
    assert again["state"] == "succeeded" and again["result"]["units"] == 1


def test_openapi_describes_the_endpoints(live_server):
    spec = live_server.get("/openapi.json", token=None).json()
    for path in ("/api/v1/resources", "/api/v1/resources/{resource_id}", "/api/v1/resources/{resource_id}/units",
                 "/api/v1/jobs/{job_id}", "/api/v1/jobs/sweep"):
        assert path in spec["paths"], path
    params = {p["name"] for p in spec["paths"]["/api/v1/resources"]["get"]["parameters"]}
    assert {"kind", "site", "state", "q", "local_network", "limit", "offset"} <= params
    assert "202" in spec["paths"]["/api/v1/jobs/sweep"]["post"]["responses"]


def test_shared_unit_occupancy_is_effective_now(live_server, net):
    """A shared unit (the splitter input) with only an expired hold reads free, in the list
    filter and by id; with a live hold it reads pre-occupied."""

    gz = net["GZ"]
    splitter_in = live_server.get(f"/resources/{gz['splitter']}/units", params={"kind": "splitter_in"}).json()[0]
    now = utcnow()
    with live_server.db.unit_of_work() as uow:
        unit = uow.session.get(Unit, splitter_in["id"])
        unit.preoccupy(Change(principal="user:alice", at=now - timedelta(days=1)), reservation_id="R-OLD",
                       until=now - timedelta(minutes=1))
        uow.commit()

    def state_of() -> tuple[str, set[str]]:
        one = live_server.get(f"/resources/{splitter_in['id']}").json()
        listed = {d["id"] for d in live_server.get("/resources", params={
            "kind": "splitter_in", "state": one["occupancy"], "local_network": "GZ"}).json()}
        return one["occupancy"], listed

    occupancy, listed = state_of()
    assert occupancy == "free" and splitter_in["id"] in listed
    with live_server.db.unit_of_work() as uow:
        uow.session.get(Unit, splitter_in["id"]).preoccupy(
            Change(principal="user:bob", at=now), reservation_id="R-NEW", until=now + timedelta(hours=2))
        uow.commit()
    occupancy, listed = state_of()
    assert occupancy == "preoccupied" and splitter_in["id"] in listed
    assert live_server.get(f"/resources/{splitter_in['id']}").json()["held"] == 1
    free = live_server.get("/resources", params={"kind": "splitter_in", "state": "free", "local_network": "GZ"})
    assert free.json() == []
