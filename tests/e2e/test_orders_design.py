"""Orders with the real path design, over HTTP: hand-built networks (tests/design_world.py) for
FTTH, ADSL with jumpers to make, POTS with a number of the line port's exchange, LAN and a
redesign; and the generator's XS network for every technology it has."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from shapely.geometry import Point
from sqlalchemy import func, select

from resource_mgr.bulk.generator import generate
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.customers.models import Service
from resource_mgr.design import design_path
from resource_mgr.design.errors import NoDesign
from resource_mgr.inventory.models import Address, Connection, LocalNetwork
from resource_mgr.numbers import services as numbers
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy.models import History, Unit
from resource_mgr.orders.models import Reservation
from tests.design_world import LAT, LON, DesignWorld


@pytest.fixture
def sz(live_server):
    """A network of its own (SZ), with tokens for it."""
    with live_server.db.unit_of_work() as uow:
        w = DesignWorld(uow.session, code="SZ")
        f = w.ftth(ports=2)
        w.cover(f.box, f.building)
        c = w.copper(ports=3)
        w.cover(c.box, c.building)
        p = w.copper(ports=2, head="T-PSTN-8", jumpered=2, mdf_jumpered=2)
        w.cover(p.box, p.building)
        pool = numbers.create_pool(uow.session, local_network_id=w.ln, name="SZ-POOL", switch_id=p.head)
        numbers.add_segment(uow.session, pool_id=pool.id, first="55500000", last="55500009")
        other = numbers.create_pool(uow.session, local_network_id=w.ln, name="SZ-OTHER")
        numbers.add_segment(uow.session, pool_id=other.id, first="55510000", last="55510009")
        p2 = w.copper(ports=2, head="T-PSTN-8", jumpered=2, mdf_jumpered=2)  # another exchange
        w.cover(p2.box, p2.building)
        pool2 = numbers.create_pool(uow.session, local_network_id=w.ln, name="SZ-POOL-2", switch_id=p2.head)
        numbers.add_segment(uow.session, pool_id=pool2.id, first="55520000", last="55520009")
        lan = w.make("T-LAN-4", at_site=False, location=Point(LON + 0.002, LAT + 0.002))
        office = w.address("office", location=Point(LON + 0.002, LAT + 0.002))
        uow.commit()
    live_server.token(["sales"], ["SZ"], name="sales_sz")
    live_server.token(["dispatch"], ["SZ"], name="dispatch_sz")
    return dict(f=f, c=c, p=p, p2=p2, lan=lan, office=office)


def reserve(live, **body):
    return live.post("/reservations", token="sales_sz", json=body)


def commit(live, rid, wo):
    r = live.post(f"/reservations/{rid}/commit", token="dispatch_sz", json={"work_order_ref": wo})
    assert r.status_code == 200, r.text
    return r.json()


def test_ftth_path_to_the_pon_port_and_no_capacity_when_the_box_is_full(live_server, sz):
    f = sz["f"]
    first = reserve(live_server, order_ref="F-1", action="new", products=["ftth_broadband"], address_id=f.building)
    assert first.status_code == 201, first.text
    d = first.json()["design"]
    assert [h["kind"] for h in d["hops"]][0] == "box_port" and d["hops"][-1]["unit_id"] == f.pon
    assert d["hops"][-1]["shared"] is True and any(w["action"] == "install_ont" for w in d["work"])
    assert d["loss_db"] is not None and d["budget_db"] is not None
    second = reserve(live_server, order_ref="F-2", action="new", products=["ftth_broadband"], address_id=f.building)
    assert second.status_code == 201
    assert second.json()["unit_ids"][0] != first.json()["unit_ids"][0]
    with live_server.db.read_session() as s:
        before = (s.scalar(select(func.count()).select_from(History)), s.scalar(select(func.count()).select_from(Reservation)))
    full = reserve(live_server, order_ref="F-3", action="new", products=["ftth_broadband"], address_id=f.building)
    assert full.status_code == 409 and full.json()["code"] == "no_capacity"
    assert full.json()["reasons"] and "alternatives" in full.json() and full.json()["reason_zh"]
    with live_server.db.read_session() as s:
        assert before == (s.scalar(select(func.count()).select_from(History)),
                          s.scalar(select(func.count()).select_from(Reservation)))
    # cancelling one makes room again
    live_server.post(f"/reservations/{second.json()['id']}/cancel", token="sales_sz", json={})
    again = reserve(live_server, order_ref="F-3", action="new", products=["ftth_broadband"], address_id=f.building)
    assert again.status_code == 201 and again.json()["unit_ids"][0] == second.json()["unit_ids"][0]
    done = commit(live_server, first.json()["id"], "WO-F1")
    route = live_server.get(f"/services/{done['service_id']}/route", token="dispatch_sz").json()
    assert [h["unit_id"] for h in route["hops"]] == first.json()["unit_ids"]
    assert route["hops"][-1]["kind"] == "pon_port" and route["hops"][-1]["device"]


def test_adsl_commit_makes_the_jumpers_the_design_asked_for(live_server, sz):
    c = sz["c"]
    r = reserve(live_server, order_ref="A-1", action="new", products=["adsl_broadband"], address_id=c.building)
    assert r.status_code == 201, r.text
    work = [w for w in r.json()["design"]["work"] if w["action"] == "make_jumper"]
    assert len(work) == 2 and r.json()["design"]["hops"][-1]["kind"] == "dsl_port"
    commit(live_server, r.json()["id"], "WO-A1")
    with live_server.db.read_session() as s:
        for w in work:
            assert s.scalar(select(Connection.kind).where(Connection.a_unit_id == w["a_unit_id"],
                                                          Connection.z_unit_id == w["z_unit_id"])) == "jumper"


def test_pots_takes_a_number_of_the_exchange_owning_the_line_port(live_server, sz):
    p = sz["p"]
    r = reserve(live_server, order_ref="P-1", action="new", products=["pots"], address_id=p.building)
    assert r.status_code == 201, r.text
    assert r.json()["number"].startswith("5550") and r.json()["design"]["hops"][-1]["kind"] == "line_port"
    # a chosen number of another exchange does not fit this line
    other = reserve(live_server, order_ref="P-2", action="new", products=["pots"], address_id=p.building,
                    number="55510003")
    assert other.status_code == 409 and other.json()["field"] == "number"
    sid = commit(live_server, r.json()["id"], "WO-P1")["service_id"]
    with live_server.db.read_session() as s:
        n = s.scalar(select(Number).where(Number.number == r.json()["number"]))
        assert n.unit.service_id == sid


def test_move_to_another_exchange_gives_a_new_number_and_quarantines_the_old(live_server, sz):
    p, p2 = sz["p"], sz["p2"]
    r = reserve(live_server, order_ref="MV-0", action="new", products=["pots"], address_id=p.building).json()
    sid = commit(live_server, r["id"], "WO-MV0")["service_id"]
    mv = reserve(live_server, order_ref="MV-1", action="move", service_id=sid, address_id=p2.building)
    assert mv.status_code == 201, mv.text
    new_number = mv.json()["number"]
    assert new_number.startswith("5552") and mv.json()["release"]["number"] == r["number"]
    commit(live_server, mv.json()["id"], "WO-MV1")
    svc = live_server.get(f"/services/{sid}", token="dispatch_sz").json()
    assert svc["number"] == new_number and svc["address_id"] == p2.building
    with live_server.db.read_session() as s:
        old = s.scalar(select(Number).where(Number.number == r["number"]))
        assert old.unit.occupancy.value == "free" and old.unit.is_quarantined(utcnow())
        assert s.scalar(select(Number).where(Number.number == new_number)).unit.service_id == sid


def test_lan_port_of_the_buildings_switch(live_server, sz):
    r = reserve(live_server, order_ref="L-1", action="new", products=["lan_broadband"], address_id=sz["office"])
    assert r.status_code == 201, r.text
    assert [h["kind"] for h in r.json()["design"]["hops"]] == ["eth_port"]
    sid = commit(live_server, r.json()["id"], "WO-L1")["service_id"]
    assert live_server.get(f"/services/{sid}", token="dispatch_sz").json()["technology"] == "LAN"


def test_redesign_with_the_real_design_keeps_the_rest(live_server, sz):
    c = sz["c"]
    r = reserve(live_server, order_ref="RD-1", action="new", products=["adsl_broadband"], address_id=c.building).json()
    port = r["unit_ids"][0]
    rd = live_server.post(f"/reservations/{r['id']}/redesign", token="dispatch_sz",
                          json={"replace": [port], "reason": "water in the box port", "mark_faulty": True})
    assert rd.status_code == 200, rd.text
    new = rd.json()["unit_ids"]
    assert port not in new and new[0] in c.ports
    with live_server.db.read_session() as s:
        assert s.get(Unit, port).admin_state.value == "faulty"
        assert all(s.get(Unit, u).reservation_id == r["id"] for u in new if s.get(Unit, u).capacity == 1)


# -- the generator's XS network ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def xs_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("xs") / "xs"
    generate("XS", 5, out, as_of=datetime.now(timezone.utc).replace(microsecond=0))
    return out


def _designable(db, technology: str, n: int = 1) -> list[str]:
    settings, found = load_settings(environ={}), []
    with db.read_session() as s:
        for a in s.scalars(select(Address.id).order_by(Address.id).limit(300)):
            try:
                design_path(s, address_id=a, technology=technology, settings=settings, now=utcnow())
            except NoDesign:
                continue
            found.append(a)
            if len(found) == n:
                break
    return found


def test_every_technology_of_the_xs_network_reserves_and_commits(db, xs_bundle):
    from tests.e2e.conftest import ALL_ROLES, LiveServer, start_server, stop_server
    from interfaces.http.app import create_app

    assert import_bundle(db, str(xs_bundle)).written
    with db.read_session() as s:
        networks = dict(s.execute(select(LocalNetwork.code, LocalNetwork.id)).all())
    settings = load_settings(environ={}, database_url=db.url, testing=True)
    server, thread, url = start_server(create_app(settings, database=db))
    live = LiveServer(url=url, db=db, settings=settings, networks=networks)
    try:
        live.token(ALL_ROLES, ["*"], name="admin")
        for tech, products in (("FTTH", ["ftth_broadband", "iptv"]), ("ADSL", ["adsl_broadband"]),
                               ("VDSL", ["vdsl_broadband"]), ("POTS", ["pots"])):
            [address] = _designable(db, tech)
            r = live.post("/reservations", json={"order_ref": f"XS-{tech}", "action": "new", "products": products,
                                                 "address_id": address})
            assert r.status_code == 201, (tech, r.text)
            assert r.json()["technology"] == tech
            if tech == "POTS":
                assert r.json()["number"]
                with db.read_session() as s:
                    n = s.scalar(select(Number).where(Number.number == r.json()["number"]))
                    switch = r.json()["design"]["line_port_switch_id"]
                    assert n.pool_id in {p.id for p in numbers_pools(s, switch)}
            c = live.post(f"/reservations/{r.json()['id']}/commit", json={"work_order_ref": f"WO-{tech}"})
            assert c.status_code == 200, c.text
            with db.read_session() as s:
                made = s.scalars(select(Service).where(Service.order_ref == f"XS-{tech}")).all()
                assert {m.product for m in made} == set(products)
                line = next(m for m in made if m.bearer_id is None)
                assert [u.unit_id for u in line.path] == r.json()["unit_ids"]
                assert all(s.get(Unit, u).carries(line.id) for u in r.json()["unit_ids"])
    finally:
        live.http.close()
        stop_server(server, thread)


def numbers_pools(session, switch_id):
    from resource_mgr.orders.plan import pools_for_switch
    return pools_for_switch(session, switch_id)
