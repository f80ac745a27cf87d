"""Alarms and faults over HTTP (API.md, Maintenance): resolving what the network management system
names, one open fault per alarm, clearing, the list and its scope, the events and history rows.

The world (network GZ, and SZ with one OLT of its own):

    GZ-OLT (mgmt 10.20.0.1) card 1 ─ PON 1 ─patch─ ODF terminal ─ feeder core ─ S1 ─ dist core ─ S2 ─ FAT
           card 1 ─ PON 2        (no service)
    SZ-OLT (mgmt 10.75.0.1) card 1 ─ PON 1, PON 2
"""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from design_world import DesignWorld
from resource_mgr.events.models import Event
from resource_mgr.faults.models import Fault
from resource_mgr.inventory.models import Device
from resource_mgr.occupancy.models import History, Unit
from resource_mgr.topology import services as topo
from security_helpers import bearer, issue, make_app

RAISED = "2026-12-01T08:00:00+08:00"


@pytest.fixture
def world(db) -> dict[str, Any]:
    topo.forget_graphs()  # the database is emptied between tests: no graph may outlive its data
    with db.unit_of_work() as uow:
        s = uow.session
        gz = DesignWorld(s, code="GZ")
        f = gz.ftth(ports=4)
        olt = s.get(Device, f.olt)
        olt.name, olt.management_ip = "GZ-TH-OLT01", "10.20.0.1"
        sz = DesignWorld(s, code="SZ")
        sz_olt = s.get(Device, sz.make("T-OLT-GPON-2"))
        sz_olt.name, sz_olt.management_ip = "SZ-FT-OLT07", "10.75.0.1"
        s.flush()
        pons = {u.seq: u for u in s.scalars(select(Unit).where(Unit.root_id == olt.id, Unit.kind == "pon_port"))}
        out = {"olt": olt.id, "pon1": pons[1].id, "pon2": pons[2].id, "pon1_name": pons[1].name,
               "sz_olt": sz_olt.id, "box": f.box, "gz": gz.ln, "sz": sz.ln,
               "sz_pon": s.scalar(select(Unit.id).where(Unit.root_id == sz_olt.id, Unit.seq == 1))}
        uow.commit()
    app = make_app(db)
    out["client"] = app.test_client()
    out["maint"] = issue(db, ["maintenance"], ["GZ"])[1]
    out["maint_sz"] = issue(db, ["maintenance"], ["SZ"])[1]
    out["admin"] = issue(db, ["admin"])[1]
    out["auditor"] = issue(db, ["auditor"], ["GZ"])[1]
    out["sales"] = issue(db, ["sales"], ["GZ"])[1]
    yield out
    topo.forget_graphs()


def alarm(w: dict[str, Any], token: str = "maint", **body: Any) -> Any:
    payload = {"source": "nms-u2000", "severity": "major", "raised_at": RAISED, **body}
    return w["client"].post("/api/v1/alarms", json=payload, headers=bearer(w[token]))


def _events(db, fault_id: str) -> list[Event]:
    with db.read_session() as s:
        return list(s.scalars(select(Event).where(Event.fault_id == fault_id).order_by(Event.created_at)))


def test_alarm_by_name_opens_a_fault_on_the_port_with_its_impact(db, world):
    r = alarm(world, device="GZ-TH-OLT01", port="1/1")
    assert r.status_code == 201, r.json
    body = r.json
    assert body["resource_id"] == world["pon1"] and body["fault"]["resource_kind"] == "pon_port"
    assert body["fault"]["state"] == "open" and body["fault"]["severity"] == "major"
    assert body["fault"]["local_network"] == "GZ" and body["fault"]["device_id"] == world["olt"]
    assert set(body["impact"]) >= {"down_count", "degraded_count", "by_product", "by_area", "services",
                                   "degraded_services", "affected_resources_count"}
    events = _events(db, body["fault_id"])
    assert [e.type for e in events] == ["fault.opened"]
    assert events[0].data["resource_id"] == world["pon1"] and events[0].local_network_id == world["gz"]
    with db.read_session() as s:
        rows = list(s.scalars(select(History).where(History.resource_id == body["fault_id"])))
    assert [(h.action, h.resource_kind, h.local_network_id) for h in rows] == [("fault_opened", "fault", world["gz"])]


def test_alarm_by_management_address_names_the_device(db, world):
    r = alarm(world, device="10.20.0.1")
    assert r.status_code == 201, r.json
    assert r.json["resource_id"] == world["olt"] and r.json["fault"]["resource_kind"] == "device"
    # the name in other case is the same device: the same alarm, the same open fault
    again = alarm(world, device="gz-th-olt01")
    assert again.status_code == 200 and again.json["fault_id"] == r.json["fault_id"]


@pytest.mark.parametrize("port", ["1/2", "0/1/2", "2", "1-2"])
def test_port_by_slot_port_or_number(world, port):
    r = alarm(world, device="GZ-TH-OLT01", port=port)
    assert r.status_code == 201, r.json
    assert r.json["resource_id"] == world["pon2"]


def test_port_by_its_name(world):
    r = alarm(world, device="10.20.0.1", port=world["pon1_name"])
    assert r.status_code == 201 and r.json["resource_id"] == world["pon1"]


def test_the_same_alarm_again_updates_the_open_fault(db, world):
    first = alarm(world, device="GZ-TH-OLT01", port="1/1", severity="minor")
    again = alarm(world, device="10.20.0.1", port="1", severity="critical", raised_at="2026-12-01T09:30:00+08:00")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["fault_id"] == first.json["fault_id"]
    fault = again.json["fault"]
    assert fault["count"] == 2 and fault["severity"] == "critical"
    assert fault["raised_at"].startswith("2026-12-01T00:00:00") and fault["last_raised_at"].startswith("2026-12-01T01:30")
    # another source, or another port, is another alarm
    other = alarm(world, source="nms-zte", device="GZ-TH-OLT01", port="1/1")
    assert other.status_code == 201 and other.json["fault_id"] != first.json["fault_id"]
    assert alarm(world, device="GZ-TH-OLT01", port="1/2").status_code == 201
    assert [e.type for e in _events(db, first.json["fault_id"])] == ["fault.opened"]  # no event for a repeat
    with db.read_session() as s:
        assert s.scalar(select(Fault.count).where(Fault.id == first.json["fault_id"])) == 2
        actions = list(s.scalars(select(History.action).where(History.resource_id == first.json["fault_id"])
                                 .order_by(History.id)))
    assert actions == ["fault_opened", "fault_raised_again"]


def test_unknown_device_is_404_with_close_names(world):
    r = alarm(world, device="GZ-TH-OLT1")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert r.json["code"] == "not_found" and r.json["field"] == "device"
    assert r.json["close_names"][0] == "GZ-TH-OLT01" and len(r.json["close_names"]) <= 5
    assert "SZ-FT-OLT07" not in r.json["close_names"]  # another city's names are not offered
    # another city's device is unknown here, by name and by address
    assert alarm(world, device="SZ-FT-OLT07").status_code == 404
    assert alarm(world, device="10.75.0.1").status_code == 404
    assert alarm(world, "maint_sz", device="10.75.0.1").status_code == 201


def test_unknown_port_is_404_with_close_names(world):
    r = alarm(world, device="GZ-TH-OLT01", port="1/9")
    assert r.status_code == 404 and r.json["field"] == "port"
    assert isinstance(r.json["close_names"], list)
    named = alarm(world, device="GZ-TH-OLT01", port=world["pon1_name"] + "x")
    assert named.status_code == 404 and named.json["close_names"][0] == world["pon1_name"]


@pytest.mark.parametrize("body, field", [
    ({"device": ""}, "device"), ({"severity": "bad"}, "severity"), ({"raised_at": "yesterday"}, "raised_at"),
    ({"source": None}, "source"), ({"device": 12}, "device"),
])
def test_bad_alarm_is_422_and_writes_nothing(db, world, body, field):
    payload = {"device": "GZ-TH-OLT01", **body}
    r = alarm(world, **payload)
    assert r.status_code == 422 and r.json["code"] == "invalid" and field in r.json["field"], r.json
    with db.read_session() as s:
        assert s.scalar(select(Fault.id)) is None


def test_clear_and_clear_again(db, world):
    opened = alarm(world, device="GZ-TH-OLT01", port="1/1").json
    fid = opened["fault_id"]
    r = world["client"].post(f"/api/v1/faults/{fid}/clear", json={"reason": "fibre respliced"},
                             headers=bearer(world["maint"]))
    assert r.status_code == 200 and r.json["state"] == "cleared" and r.json["cleared_at"]
    assert r.json["clear_reason"] == "fibre respliced"
    again = world["client"].post(f"/api/v1/faults/{fid}/clear", json={}, headers=bearer(world["maint"]))
    assert again.status_code == 409 and again.json["code"] == "conflict"
    assert [e.type for e in _events(db, fid)] == ["fault.opened", "fault.cleared"]
    # the alarm after its fault was cleared opens a new fault
    reopened = alarm(world, device="GZ-TH-OLT01", port="1/1")
    assert reopened.status_code == 201 and reopened.json["fault_id"] != fid
    # another city's principal cannot clear it (it does not exist for them)
    other = world["client"].post(f"/api/v1/faults/{reopened.json['fault_id']}/clear", json={},
                                 headers=bearer(world["maint_sz"]))
    assert other.status_code == 404


def test_an_alarm_of_severity_cleared_clears_the_open_fault(db, world):
    fid = alarm(world, device="GZ-TH-OLT01", port="1/1").json["fault_id"]
    r = alarm(world, device="10.20.0.1", port="1/1", severity="cleared")
    assert r.status_code == 200 and r.json["fault_id"] == fid and r.json["state"] == "cleared"
    assert r.json["impact"] is None
    assert alarm(world, device="10.20.0.1", port="1/1", severity="cleared").status_code == 404


def test_faults_list_filters_pages_and_scope(world):
    c, h = world["client"], bearer(world["maint"])
    ids = [alarm(world, device="GZ-TH-OLT01", port=p).json["fault_id"] for p in ("1/1", "1/2")]
    device_fault = alarm(world, device="GZ-TH-OLT01").json["fault_id"]
    sz_fault = alarm(world, "maint_sz", device="SZ-FT-OLT07").json["fault_id"]
    c.post(f"/api/v1/faults/{ids[0]}/clear", json={}, headers=h)

    r = c.get("/api/v1/faults", headers=h)
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "3"
    assert {f["id"] for f in r.json} == {*ids, device_fault}
    opened = c.get("/api/v1/faults?state=open", headers=h)
    assert {f["id"] for f in opened.json} == {ids[1], device_fault} and opened.headers["X-Total-Count"] == "2"
    cleared = c.get("/api/v1/faults?state=cleared", headers=h)
    assert [f["id"] for f in cleared.json] == [ids[0]]
    page = c.get("/api/v1/faults?limit=1&offset=1", headers=h)
    assert len(page.json) == 1 and page.headers["X-Total-Count"] == "3"
    assert c.get(f"/api/v1/faults?resource_id={world['pon2']}", headers=h).json[0]["id"] == ids[1]
    assert c.get("/api/v1/faults?state=bogus", headers=h).status_code == 422
    assert c.get("/api/v1/faults?local_network=SZ", headers=h).status_code == 422
    # the admin of every network sees SZ's too; SZ's maintenance only its own
    assert c.get("/api/v1/faults", headers=bearer(world["admin"])).headers["X-Total-Count"] == "4"
    assert [f["id"] for f in c.get("/api/v1/faults", headers=bearer(world["maint_sz"])).json] == [sz_fault]
    assert c.get(f"/api/v1/faults/{sz_fault}", headers=h).status_code == 404
    one = c.get(f"/api/v1/faults/{ids[1]}", headers=bearer(world["auditor"]))
    assert one.status_code == 200 and one.json["resource_id"] == world["pon2"]


def test_roles(world):
    c = world["client"]
    assert alarm(world, "sales", device="GZ-TH-OLT01").status_code == 403
    assert alarm(world, "auditor", device="GZ-TH-OLT01").status_code == 403
    assert alarm(world, "admin", device="GZ-TH-OLT01").status_code == 201
    assert c.get("/api/v1/faults", headers=bearer(world["sales"])).status_code == 403
    assert c.get("/api/v1/faults", headers=bearer(world["auditor"])).status_code == 200
    assert c.post("/api/v1/impact", json={"resource_ids": [world["olt"]]},
                  headers=bearer(world["sales"])).status_code == 403


@pytest.mark.parametrize("body", [
    {}, {"resource_ids": []}, {"resource_ids": "abc"}, {"resource_ids": [1, 2]}, {"resource_ids": [None]},
    {"resource_ids": ["x"], "limit": 0}, {"resource_ids": ["x"], "offset": -1}, {"resource_ids": ["x" * 27]},
])
def test_impact_bad_input_is_422(world, body):
    r = world["client"].post("/api/v1/impact", json=body, headers=bearer(world["maint"]))
    assert r.status_code == 422 and r.json["code"] == "invalid", r.json


def test_impact_unknown_ids_are_404_naming_them(world):
    c, h = world["client"], bearer(world["maint"])
    r = c.post("/api/v1/impact", json={"resource_ids": [world["olt"], "NOPE1", world["sz_olt"]]}, headers=h)
    assert r.status_code == 404 and r.json["code"] == "not_found"
    assert r.json["unknown_ids"] == ["NOPE1", world["sz_olt"]]  # another city's is unknown here
    assert "NOPE1" in r.json["detail"]
    ok = c.post("/api/v1/impact", json={"resource_ids": [world["olt"], world["pon1"], world["olt"]]}, headers=h)
    assert ok.status_code == 200, ok.json
    assert {"down_count", "degraded_count", "services", "degraded_services"} <= set(ok.json)
