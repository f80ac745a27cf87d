"""Orders end to end over HTTP with the real path design: reserve, replay, commit, services and
route, cancel, redesign, numbers, move / change / remove, expiry, and every bad input of the
contract (right code, nothing changed)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from resource_mgr.clock import utcnow
from resource_mgr.customers.models import Service
from resource_mgr.events.models import Event
from resource_mgr.numbers import services as numbers
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy.models import Change, History, Unit
from resource_mgr.orders.expiry import expire_due
from resource_mgr.orders.models import Reservation
from resource_mgr.states import Occupancy
from tests.design_world import DesignWorld


@pytest.fixture
def world(live_server):
    """In GZ (live_server's tokens): a 4-port FAT behind 1:2 + 1:4 splitters and a GPON port, and a
    4-port copper box with its jumpers to a PSTN switch whose pool has 87650000-19 (30 days'
    quarantine), both covering addresses A1 and A2; in FS a pool with 66660000-03."""
    gz, fs = live_server.networks["GZ"], live_server.networks["FS"]
    with live_server.db.unit_of_work() as uow:
        w = DesignWorld(uow.session, local_network_id=gz)
        a1, a2 = w.address("A1"), w.address("A2")
        f = w.ftth(ports=4, building=a1)
        p = w.copper(ports=4, head="T-PSTN-8", jumpered=4, mdf_jumpered=4, building=a1)
        for box in (f.box, p.box):
            for a in (a1, a2):
                w.cover(box, a)
        pool = numbers.create_pool(uow.session, local_network_id=gz, name="GZ-POOL", switch_id=p.head,
                                   quarantine_days=30)
        numbers.add_segment(uow.session, pool_id=pool.id, first="87650000", last="87650019")
        fs_pool = numbers.create_pool(uow.session, local_network_id=fs, name="FS-POOL")
        numbers.add_segment(uow.session, pool_id=fs_pool.id, first="66660000", last="66660003")
        uow.commit()
    return dict(a1=a1, a2=a2, f=f, p=p, fat_ports=f.ports, pool=pool.id)


def reserve(live, token="sales_gz", **body):
    return live.post("/reservations", token=token, json=body)


def units(live, ids):
    with live.db.read_session() as s:
        return {u.id: (u.occupancy.value, u.reservation_id, u.service_id, u.used)
                for u in s.scalars(select(Unit).where(Unit.id.in_(ids)))}


def occupy(live, unit_ids):
    """Put these units in service, each for a service of its own (as an earlier order would)."""
    with live.db.unit_of_work() as uow:
        for uid in unit_ids:
            svc = Service(local_network_id=live.networks["GZ"], product="ftth_broadband", technology="FTTH")
            uow.session.add(svc)
            uow.session.flush()
            uow.session.get(Unit, uid).occupy(Change(principal="test"), service_id=svc.id)
        uow.commit()


def snapshot(live):
    """Everything an order can change: units, reservations, services, history."""
    with live.db.read_session() as s:
        return (sorted((u.id, u.occupancy.value, u.reservation_id, u.service_id, u.used, u.admin_state.value,
                        u.version) for u in s.scalars(select(Unit).where(Unit.version > 1))),
                s.scalar(select(func.count()).select_from(Reservation)),
                s.scalar(select(func.count()).select_from(Service)),
                s.scalar(select(func.count()).select_from(History)))


def test_ftth_new_install_reserve_replay_commit_route(live_server, world):
    body = dict(order_ref="BSS-1#1", action="new", products=["ftth_broadband"], address_id=world["a1"])
    r = reserve(live_server, **body)
    assert r.status_code == 201, r.text
    res = r.json()
    assert res["state"] == "preoccupied" and res["design"]["hops"] and res["local_network"] == "GZ"
    held = res["unit_ids"]
    assert [h["unit_id"] for h in res["design"]["hops"]] == held
    assert all(v[0] == "preoccupied" or v[3] == 0 for v in units(live_server, held).values())
    # the same request again: the same reservation, 200; another request under it: 409 conflict
    again = reserve(live_server, **body)
    assert again.status_code == 200 and again.json()["id"] == res["id"]
    other = reserve(live_server, **{**body, "address_id": world["a2"]})
    assert other.status_code == 409 and other.json()["code"] == "conflict" and other.json()["field"] == "order_ref"
    # the dispatch work queue
    queue = live_server.get("/reservations?state=preoccupied&local_network=GZ", token="dispatch_gz")
    assert [x["id"] for x in queue.json()] == [res["id"]] and queue.headers["X-Total-Count"] == "1"
    # sales cannot commit, dispatch can
    assert live_server.post(f"/reservations/{res['id']}/commit", token="sales_gz",
                            json={"work_order_ref": "WO-1"}).status_code == 403
    c = live_server.post(f"/reservations/{res['id']}/commit", token="dispatch_gz", json={"work_order_ref": "WO-1"})
    assert c.status_code == 200, c.text
    done = c.json()
    assert done["state"] == "committed" and done["service_id"]
    sid = done["service_id"]
    state = units(live_server, held)
    box_port = held[0]
    assert state[box_port][:3] == ("occupied", None, sid)
    assert all(v[0] == "occupied" for v in state.values())
    svc = live_server.get(f"/services/{sid}", token="reader_gz").json()
    assert svc["product"] == "ftth_broadband" and svc["state"] == "active" and svc["address_id"] == world["a1"]
    route = live_server.get(f"/services/{sid}/route", token="reader_gz").json()
    assert [h["unit_id"] for h in route["hops"]] == held
    assert route["hops"][-1]["shared"] is True and route["hops"][0]["shared"] is False
    listed = live_server.get(f"/services?address_id={world['a1']}", token="reader_gz")
    assert [x["id"] for x in listed.json()] == [sid]
    # a retried commit answers the same; another work order is a conflict; cancel after commit too
    before = snapshot(live_server)
    again = live_server.post(f"/reservations/{res['id']}/commit", token="dispatch_gz", json={"work_order_ref": "WO-1"})
    assert again.status_code == 200 and again.json()["service_id"] == sid
    twice = live_server.post(f"/reservations/{res['id']}/commit", token="dispatch_gz", json={"work_order_ref": "WO-2"})
    assert twice.status_code == 409 and twice.json()["code"] == "conflict"
    cancel = live_server.post(f"/reservations/{res['id']}/cancel", token="sales_gz", json={})
    assert cancel.status_code == 409 and cancel.json()["code"] == "conflict"
    assert snapshot(live_server) == before
    # every unit's history row and the reservation's own rows name it
    with live_server.db.read_session() as s:
        rows = s.scalars(select(History).where(History.resource_id.in_(held))).all()
        assert rows and all(h.reservation_id == res["id"] and h.order_ref == "BSS-1#1" for h in rows)
        assert {h.action for h in s.scalars(select(History).where(History.resource_id == res["id"]))} == {
            "reserve", "commit"}
        # the events, in the same transactions, each naming the order
        events = s.scalars(select(Event).order_by(Event.created_at, Event.id)).all()
        assert [e.type for e in events] == ["reservation.preoccupied", "reservation.committed", "service.created"]
        assert {(e.reservation_id, e.order_ref) for e in events} == {(res["id"], "BSS-1#1")}
        assert events[-1].service_id == sid
    # another city's principal sees nothing of it
    assert live_server.get(f"/reservations/{res['id']}", token="sales_fs").status_code == 404
    assert live_server.get(f"/services/{sid}", token="sales_fs").status_code == 404


def test_iptv_rides_on_the_live_broadband_and_needs_one(live_server, world):
    before = snapshot(live_server)
    r = reserve(live_server, order_ref="TV-0", action="new", products=["iptv"], address_id=world["a1"])
    assert r.status_code == 409 and r.json()["code"] == "no_capacity" and "broadband" in r.json()["detail"]
    assert r.json()["alternatives"]
    assert snapshot(live_server) == before
    bb = reserve(live_server, order_ref="BB-1", action="new", products=["ftth_broadband"], address_id=world["a1"]).json()
    sid = live_server.post(f"/reservations/{bb['id']}/commit", token="dispatch_gz",
                           json={"work_order_ref": "WO-BB"}).json()["service_id"]
    tv = reserve(live_server, order_ref="TV-1", action="new", products=["iptv"], address_id=world["a1"])
    assert tv.status_code == 201 and tv.json()["bearer_id"] == sid and tv.json()["unit_ids"] == []
    done = live_server.post(f"/reservations/{tv.json()['id']}/commit", token="dispatch_gz",
                            json={"work_order_ref": "WO-TV"}).json()
    svc = live_server.get(f"/services/{done['service_id']}").json()
    assert svc["product"] == "iptv" and svc["bearer_id"] == sid
    route = live_server.get(f"/services/{done['service_id']}/route").json()
    assert route["bearer_id"] == sid and route["hops"]


def test_pots_gets_a_number_of_the_line_ports_exchange_and_remove_quarantines_it(live_server, world):
    r = reserve(live_server, order_ref="PH-1", action="new", products=["pots"], address_id=world["a1"])
    assert r.status_code == 201, r.text
    res = r.json()
    assert res["number"] and res["number"].startswith("8765")
    sid = live_server.post(f"/reservations/{res['id']}/commit", token="dispatch_gz",
                           json={"work_order_ref": "WO-PH"}).json()["service_id"]
    assert live_server.get(f"/services?number={res['number']}").json()[0]["id"] == sid
    rm = reserve(live_server, order_ref="PH-1-RM", action="remove", service_id=sid)
    assert rm.status_code == 201, rm.text
    assert set(rm.json()["release"]["unit_ids"]) == set(res["unit_ids"]) and rm.json()["release"]["number"] == res["number"]
    assert rm.json()["release"]["number_unit_id"], rm.json()
    done = live_server.post(f"/reservations/{rm.json()['id']}/commit", token="dispatch_gz",
                            json={"work_order_ref": "WO-RM"})
    assert done.status_code == 200, done.text
    assert live_server.get(f"/services/{sid}").json()["state"] == "removed"
    assert all(v[0] == "free" for v in units(live_server, res["unit_ids"]).values())
    with live_server.db.read_session() as s:
        number = s.scalar(select(Number).where(Number.number == res["number"]))
        assert number.unit.occupancy == Occupancy.FREE
        left = number.unit.quarantine_until - utcnow()
        assert timedelta(days=29) < left <= timedelta(days=30)  # the pool's 30 days
    # the quarantined number cannot be chosen again
    q = live_server.post(f"/numbers/{res['number']}/preoccupy", token="sales_gz", json={"order_ref": "PH-2"})
    assert q.status_code == 409 and q.json()["code"] == "quarantined"


def test_chosen_number_then_reserve_keeps_it_and_bad_numbers(live_server, world):
    n = live_server.post("/numbers/87650007/preoccupy", token="sales_gz", json={"order_ref": "PH-9", "ttl_hours": 2})
    assert n.status_code == 201, n.text
    assert n.json()["number"] == "87650007"
    again = live_server.post("/numbers/87650007/preoccupy", token="sales_gz", json={"order_ref": "PH-9"})
    assert again.status_code == 200 and again.json()["id"] == n.json()["id"]
    taken = live_server.post("/numbers/87650007/preoccupy", token="sales_gz", json={"order_ref": "PH-10"})
    assert taken.status_code == 409 and taken.json()["code"] == "conflict"
    r = reserve(live_server, order_ref="PH-9", action="new", products=["pots"], address_id=world["a1"])
    assert r.status_code == 201 and r.json()["id"] == n.json()["id"] and r.json()["number"] == "87650007"
    before = snapshot(live_server)
    assert live_server.post("/numbers/99999999/preoccupy", token="sales_gz",
                            json={"order_ref": "X"}).json()["code"] == "not_found"
    other = reserve(live_server, order_ref="PH-11", action="new", products=["pots"], address_id=world["a1"],
                    number="66660001", token="admin")  # a number of FS for a GZ address
    assert other.status_code == 422 and other.json()["field"] == "number"
    assert live_server.post("/numbers/66660001/preoccupy", token="sales_gz",
                            json={"order_ref": "X"}).status_code == 404  # FS is outside the token's scope
    assert snapshot(live_server) == before


def test_cancel_releases_everything_and_is_idempotent(live_server, world):
    res = reserve(live_server, order_ref="C-1", action="new", products=["pots"], address_id=world["a1"]).json()
    held = res["unit_ids"]
    c = live_server.post(f"/reservations/{res['id']}/cancel", token="sales_gz", json={"reason": "customer left"})
    assert c.status_code == 200 and c.json()["state"] == "cancelled"
    assert all(v[0] == "free" for v in units(live_server, held).values())
    with live_server.db.read_session() as s:
        assert s.scalar(select(Number).where(Number.number == res["number"])).unit.occupancy == Occupancy.FREE
    with live_server.db.read_session() as s:
        assert s.scalars(select(Event.type).where(Event.reservation_id == res["id"]).order_by(Event.created_at)).all() \
            == ["reservation.preoccupied", "reservation.cancelled"]
    again = live_server.post(f"/reservations/{res['id']}/cancel", token="sales_gz", json={})
    assert again.status_code == 200 and again.json()["state"] == "cancelled"
    commit = live_server.post(f"/reservations/{res['id']}/commit", token="dispatch_gz", json={"work_order_ref": "W"})
    assert commit.status_code == 409 and commit.json()["code"] == "conflict"


def test_redesign_swaps_the_named_unit_and_keeps_the_rest(live_server, world):
    res = reserve(live_server, order_ref="R-1", action="new", products=["ftth_broadband"], address_id=world["a1"]).json()
    port = res["unit_ids"][0]
    # the box port's own riser core and splitter output go with it; the shared tree behind is kept
    tree = [h["unit_id"] for h in res["design"]["hops"] if h["shared"]]
    assert port in world["fat_ports"] and tree and tree[-1] == world["f"].pon
    before = snapshot(live_server)
    not_held = next(u for u in world["fat_ports"] if u not in res["unit_ids"])
    bad = live_server.post(f"/reservations/{res['id']}/redesign", token="dispatch_gz",
                           json={"replace": [not_held], "reason": "x"})
    assert bad.status_code == 422 and bad.json()["field"] == "replace"
    assert snapshot(live_server) == before
    r = live_server.post(f"/reservations/{res['id']}/redesign", token="dispatch_gz",
                         json={"replace": [port], "reason": "port broken", "mark_faulty": True})
    assert r.status_code == 200, r.text
    new = r.json()["unit_ids"]
    assert port not in new and new[0] in world["fat_ports"]
    assert new == [h["unit_id"] for h in r.json()["design"]["hops"]]
    assert [u for u in new if u in tree] == tree  # the rest kept, in order
    dropped = [u for u in res["unit_ids"] if u not in new]
    with live_server.db.read_session() as s:
        old = s.get(Unit, port)
        assert old.admin_state.value == "faulty" and old.occupancy == Occupancy.FREE
        assert s.get(Unit, new[0]).reservation_id == res["id"]
        assert all(s.get(Unit, u).occupancy == Occupancy.FREE and s.get(Unit, u).reservation_id is None
                   for u in dropped)


def test_move_keeps_the_number_on_the_same_exchange_and_change_to_fibre_keeps_it(live_server, world):
    res = reserve(live_server, order_ref="M-0", action="new", products=["pots"], address_id=world["a1"]).json()
    sid = live_server.post(f"/reservations/{res['id']}/commit", token="dispatch_gz",
                           json={"work_order_ref": "W-M0"}).json()["service_id"]
    mv = reserve(live_server, order_ref="M-1", action="move", service_id=sid, address_id=world["a2"],
                 products=["pots"])
    assert mv.status_code == 201, mv.text
    assert mv.json()["number"] == res["number"] and set(mv.json()["release"]["unit_ids"]) == set(res["unit_ids"])
    live_server.post(f"/reservations/{mv.json()['id']}/commit", token="dispatch_gz", json={"work_order_ref": "W-M1"})
    svc = live_server.get(f"/services/{sid}").json()
    assert svc["address_id"] == world["a2"] and svc["number"] == res["number"]
    assert all(v[0] == "free" for v in units(live_server, res["unit_ids"]).values())
    ch = reserve(live_server, order_ref="M-2", action="change", service_id=sid, products=["ftth_broadband"])
    assert ch.status_code == 201, ch.text
    assert ch.json()["technology"] == "FTTH" and ch.json()["number"] == res["number"]
    live_server.post(f"/reservations/{ch.json()['id']}/commit", token="dispatch_gz", json={"work_order_ref": "W-M2"})
    svc = live_server.get(f"/services/{sid}").json()
    assert svc["technology"] == "FTTH" and svc["number"] == res["number"] and svc["product"] == "ftth_broadband"
    with live_server.db.read_session() as s:
        assert s.scalar(select(Number).where(Number.number == res["number"])).unit.service_id == sid


def test_expiry_marks_the_reservation_and_commit_of_an_expired_one(live_server, world):
    a = reserve(live_server, order_ref="E-1", action="new", products=["ftth_broadband"], address_id=world["a1"],
                ttl_hours=1).json()
    b = reserve(live_server, order_ref="E-2", action="new", products=["ftth_broadband"], address_id=world["a1"],
                ttl_hours=1).json()
    # every other port of the box is in service: after the sweep, A's box port is the only free one
    others = [u for u in world["fat_ports"] if u not in a["unit_ids"] + b["unit_ids"]]
    occupy(live_server, others)
    later = utcnow() + timedelta(hours=2)
    # E-2 expired but nobody took its units: commit renews it and goes on
    with live_server.db.unit_of_work() as uow:
        from resource_mgr.orders.completion import commit
        from resource_mgr.security.principal import SYSTEM
        from resource_mgr.config import load_settings
        done = commit(uow.session, principal=SYSTEM, settings=load_settings(environ={}), now=later,
                      reservation_id=b["id"], work_order_ref="W-E2")
        assert done.state.value == "committed"
        uow.commit()
    with live_server.db.unit_of_work() as uow:
        ended = expire_due(uow.session, later)
        uow.commit()
    assert ended == {a["id"]: a["principal"]}
    with live_server.db.read_session() as s:
        assert s.scalar(select(Event.type).where(Event.reservation_id == a["id"], Event.type == "reservation.expired"))
    got = live_server.get(f"/reservations/{a['id']}").json()
    assert got["state"] == "expired"
    assert units(live_server, a["unit_ids"])[a["unit_ids"][0]][0] == "free"
    # its box port is taken by a new order: its commit is refused, nothing changes
    taker = reserve(live_server, order_ref="E-3", action="new", products=["ftth_broadband"], address_id=world["a1"])
    assert taker.status_code == 201, taker.text
    assert taker.json()["unit_ids"][0] == a["unit_ids"][0]
    before = snapshot(live_server)
    c = live_server.post(f"/reservations/{a['id']}/commit", token="dispatch_gz", json={"work_order_ref": "W-E1"})
    assert c.status_code == 409 and c.json()["code"] == "expired"
    assert snapshot(live_server) == before
    # swept, but nothing it held was taken: renewed and committed
    live_server.post(f"/reservations/{taker.json()['id']}/cancel", token="sales_gz", json={})
    c = live_server.post(f"/reservations/{a['id']}/commit", token="dispatch_gz", json={"work_order_ref": "W-E1"})
    assert c.status_code == 200 and c.json()["state"] == "committed", c.text
    assert units(live_server, a["unit_ids"])[a["unit_ids"][0]][0] == "occupied"


def test_bad_inputs_answer_the_right_code_and_change_nothing(live_server, world):
    before = snapshot(live_server)
    cases = [
        (dict(order_ref="B1", action="new", products=["ftth_broadband"], address_id="NOPE"), 404, "address_id"),
        (dict(order_ref="B2", action="new", products=["fax"], address_id=world["a1"]), 422, "products"),
        (dict(order_ref="B3", action="new", products=[], address_id=world["a1"]), 422, "products"),
        (dict(order_ref="B4", action="new", products=["pots"], address_id=world["a1"], number="12ab"), 422, "number"),
        (dict(order_ref="B5", action="new", products=["pots"], address_id=world["a1"], number="87659999"), 404,
         "number"),
        (dict(order_ref="B6", action="fly", products=["pots"], address_id=world["a1"]), 422, "action"),
        (dict(order_ref="B7", action="remove", service_id="NOPE"), 404, "service_id"),
        (dict(order_ref="B8", action="new", products=["ftth_broadband"]), 422, "address_id"),
        (dict(order_ref="B9", action="new", products=["ftth_broadband"], address_id=world["a1"], ttl_hours=0), 422,
         "ttl_hours"),
    ]
    for body, status, field in cases:
        r = reserve(live_server, **body)
        assert (r.status_code, r.json().get("field")) == (status, field), (body, r.text)
    # roles and scope
    body = dict(order_ref="B10", action="new", products=["ftth_broadband"], address_id=world["a1"])
    assert reserve(live_server, token="reader_gz", **body).status_code == 403
    assert reserve(live_server, token="dispatch_gz", **body).status_code == 403
    assert reserve(live_server, token="sales_fs", **body).status_code == 404  # another city's address
    assert live_server.get("/reservations/NOPE").status_code == 404
    assert live_server.post("/reservations/NOPE/commit", token="dispatch_gz",
                            json={"work_order_ref": "W"}).status_code == 404
    assert snapshot(live_server) == before

