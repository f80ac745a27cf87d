"""Alarms, faults, impact and the single-points-of-failure report over real HTTP (waitress).

The network, in live_server's GZ (design_world.DesignWorld):

    OLT (mgmt 10.20.9.9) PON 1 ─ ODF terminal ─ feeder core ─ S1 ─ dist core ─ S2 ─ FAT port 1..4
    one FTTH service on FAT port 1
"""
from __future__ import annotations

from design_world import DesignWorld
from resource_mgr.customers.models import ServiceUnit
from resource_mgr.inventory.models import Device
from resource_mgr.topology import services as topo


def test_alarm_fault_clear_and_impact_over_http(live_server):
    topo.forget_graphs()
    with live_server.db.unit_of_work() as uow:
        w = DesignWorld(uow.session, local_network_id=live_server.networks["GZ"])
        f = w.ftth(ports=4)
        olt = uow.session.get(Device, f.olt)
        olt.management_ip = "10.20.9.9"
        name = olt.name
        svc = w.take(f.ports[0])
        path = [f.ports[0], f.riser_cores[0], f.s2_outs[0], f.s2_in, f.dist_core, f.s1_out, f.s1_in,
                f.feeder_core, f.term, f.pon]
        uow.session.add_all(ServiceUnit(service_id=svc, seq=i, unit_id=u) for i, u in enumerate(path))
        uow.commit()
    maint = live_server.token(["maintenance"], ["GZ"])
    body = {"source": "nms-e2e", "device": "10.20.9.9", "port": "1/1", "severity": "critical",
            "raised_at": "2026-12-01T08:00:00+08:00"}
    r = live_server.post("/alarms", token=maint, json=body)
    assert r.status_code == 201, r.text
    fault_id = r.json()["fault_id"]
    assert r.json()["impact"]["down_count"] == 1 and r.json()["impact"]["services"][0]["id"] == svc
    again = live_server.post("/alarms", token=maint, json={**body, "device": name.lower()})
    assert again.status_code == 200 and again.json()["fault_id"] == fault_id and again.json()["count"] == 2
    missing = live_server.post("/alarms", token=maint, json={**body, "device": name + "X"})
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("application/problem+json")
    assert name in missing.json()["close_names"]

    listed = live_server.get("/faults?state=open", token="reader_gz")
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "1"
    assert live_server.post(f"/faults/{fault_id}/clear", token="reader_gz", json={}).status_code == 403
    cleared = live_server.post(f"/faults/{fault_id}/clear", token=maint, json={"reason": "e2e"})
    assert cleared.status_code == 200 and cleared.json()["state"] == "cleared"
    assert live_server.post(f"/faults/{fault_id}/clear", token=maint, json={}).status_code == 409
    assert live_server.get(f"/faults/{fault_id}", token="reader_gz").json()["state"] == "cleared"

    impact = live_server.post("/impact", token=maint, json={"resource_ids": [f.box]})
    assert impact.status_code == 200 and impact.json()["down_count"] == 1
    assert live_server.post("/impact", token=maint, json={"resource_ids": []}).status_code == 422
    spof = live_server.get("/reports/single-points-of-failure?local_network=GZ", token=maint)
    assert spof.status_code == 200 and spof.json() == [] and spof.headers["X-Total-Count"] == "0"
    topo.forget_graphs()
