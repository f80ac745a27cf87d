"""Copper (ADSL, VDSL, POTS) and LAN design on hand-built networks (tests/design_world.py)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from shapely.geometry import Point

from design_world import LAT, LON, DesignWorld
from resource_mgr.config import Settings
from resource_mgr.design import NoDesign, design_path, qualify, rate_for_loop
from resource_mgr.states import AdminState

NOW = datetime.now(timezone.utc)
S = Settings()


def design(db, address, technology="ADSL", settings=S, **kw):
    with db.read_session() as s:
        return design_path(s, address_id=address, technology=technology, settings=settings, now=NOW, **kw)


def no_design(db, address, technology="ADSL", settings=S, **kw) -> NoDesign:
    with pytest.raises(NoDesign) as err:
        design(db, address, technology, settings, **kw)
    return err.value


def world(db, drop=None, **kw):
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        c = w.copper(**kw)
        room = w.address("room 1", parent=c.building)
        w.cover(c.box, c.building, drop)
        uow.commit()
    return w, c, room


def test_unjumpered_path_with_both_jumpers_to_make(db):
    """box port 1 ─ pair ─ distribution terminal 1 ┄(to make)┄ feeder terminal 1 ─ primary pair
    ─ line terminal 1 ┄(to make)┄ equipment terminal 1 ─ ADSL port 1/1: loop 300 + 700 m."""
    _w, c, room = world(db)
    d = design(db, room)
    assert d.unit_ids == [c.ports[0], c.pairs[0], c.dts[0], c.fts[0], c.ppairs[0], c.lts[0], c.ets[0], c.heads[0]]
    assert [(w.action, w.a_unit_id, w.z_unit_id, w.container_id) for w in d.work] == [
        ("make_jumper", c.dts[0], c.fts[0], c.cross), ("make_jumper", c.lts[0], c.ets[0], c.mdf)]
    assert d.loop_m == 1000.0 and d.max_down_mbps == round(rate_for_loop(1000, "ADSL", S), 1)
    assert d.hops[1].cable and d.hops[-1].site == "GZ-EX" and not any(h.shared for h in d.hops)


def test_prefer_wired(db):
    """Ports 1-2: port 2's cross-box and MDF jumpers exist (a line left after a removal), port 1
    has none: with design_prefer_wired port 2 and no work; without, the lowest port 1."""
    _w, c, room = world(db, ports=2)
    with db.unit_of_work() as uow:
        w = DesignWorld.__new__(DesignWorld)
        w.s = uow.session
        w.link(c.dts[1], c.fts[1], "jumper", c.cross)
        w.link(c.lts[1], c.ets[1], "jumper", c.mdf)
        uow.commit()
    wired = design(db, room)
    assert wired.unit_ids[0] == c.ports[1] and wired.unit_ids[-1] == c.heads[1] and wired.work == []
    plain = design(db, room, settings=Settings(design_prefer_wired=False))
    assert plain.unit_ids[0] == c.ports[0] and len(plain.work) == 2


def test_free_pair_but_no_free_dslam_port(db):
    """Free box port and pairs, every ADSL port of the exchange taken: "no_head_port"; POTS on
    the same copper (a switch at the exchange) still works."""
    w, c, room = world(db)
    with db.unit_of_work() as uow:
        w.s = uow.session
        for k in range(1, 9):
            w.take(w.unit(c.head, "dsl_port", k), "adsl_broadband", "ADSL")
        switch, mdf2 = w.make("T-PSTN-8"), w.make("T-MDF-8")  # a switch on another MDF of the exchange
        for k in range(1, 5):
            w.link(w.unit(mdf2, "terminal", k, "equipment"), w.unit(switch, "line_port", k))
        uow.commit()
    err = no_design(db, room)
    assert err.reasons == ["no_head_port"] and "ADSL" in err.detail
    pots = design(db, room, "POTS")
    assert pots.hops[-1].kind == "line_port" and pots.line_port_switch_id == switch
    assert pots.max_down_mbps is None and pots.loop_m == 1000.0


def test_jumpered_line_to_a_taken_port_is_not_a_path(db):
    """Port 1 is jumpered through to ADSL port 1/1, which another service occupies (stale data):
    the design takes port 2 instead of port 1."""
    w, c, room = world(db, ports=2, jumpered=1, mdf_jumpered=1)
    with db.unit_of_work() as uow:
        w.s = uow.session
        w.take(c.heads[0], "adsl_broadband", "ADSL")
        uow.commit()
    assert design(db, room).unit_ids[0] == c.ports[1]


def test_loop_just_over_the_vdsl_limit(db):
    """VDSL reaches 1500 m: 300 + 1201 m is too long (with ADSL offered at its rate), 300 +
    1199 m is not."""
    _w, _c, room = world(db, head="T-VDSL-8", primary_m=1201.0)
    err = no_design(db, room, "VDSL")
    assert err.reasons == ["loop_too_long"] and "過長" in err.reason_zh
    assert {"kind": "technology", "technology": "ADSL", "max_down_mbps": round(rate_for_loop(1501, "ADSL", S), 1),
            "loop_m": 1501.0} in err.alternatives


def test_loop_just_under_the_vdsl_limit(db):
    _w, _c, room = world(db, head="T-VDSL-8", primary_m=1199.0)
    d = design(db, room, "VDSL")
    assert d.loop_m == 1499.0 and 20.0 <= d.max_down_mbps < 21.0


def test_drop_and_gauge_count_in_the_loop(db):
    """A 40 m drop adds to the loop; 0.5 mm pairs count 95/148 of a 0.4 mm metre."""
    _w, _c, room = world(db, drop=40.0, gauge=0.5)
    d = design(db, room)
    assert d.loop_m == round(1000 * 95 / 148 + 40, 1)


def test_min_down_mbps_the_loop_cannot_reach(db):
    """ADSL on 1000 m gives ~22.7 Mbit/s: asking 24 is "loop_too_long" with the rate offered."""
    _w, _c, room = world(db)
    rate = round(rate_for_loop(1000, "ADSL", S), 1)
    err = no_design(db, room, min_down_mbps=24)
    assert err.reasons == ["loop_too_long"]
    assert {"kind": "rate", "technology": "ADSL", "max_down_mbps": rate, "loop_m": 1000.0} in err.alternatives
    assert design(db, room, min_down_mbps=rate).max_down_mbps == rate
    with db.read_session() as s:
        answer = qualify(s, address_id=room, technology="ADSL", settings=S, now=NOW, min_down_mbps=24)
    assert not answer.available and answer.reasons == ["loop_too_long"] and answer.alternatives


def test_copper_free_capacity(db):
    """4 box ports, 8 feeder terminals, 8 ADSL ports; one ADSL port faulty and 4 taken: 3 more."""
    w, c, room = world(db)
    with db.unit_of_work() as uow:
        w.s = uow.session
        for k in range(1, 5):
            w.take(w.unit(c.head, "dsl_port", k), "adsl_broadband", "ADSL")
        w.set(w.unit(c.head, "dsl_port", 5), admin_state=AdminState.FAULTY)
        uow.commit()
    with db.read_session() as s:
        answer = qualify(s, address_id=room, technology="ADSL", settings=S, now=NOW)
    assert answer.available and answer.free_capacity == 3
    # the design jumpers line terminal 1 to a free port's equipment terminal (port 6)
    assert answer.design.unit_ids[-1] == c.all_heads[5]


def test_lan_port_on_the_buildings_switch(db):
    """A LAN switch at the building's point: port 1; all 4 taken: "no_head_port"; a building with
    no switch near: "no_lan_switch"."""
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        b = w.address("office A", location=Point(LON, LAT))
        room = w.address("office A 1201", parent=b, location=Point(LON + 0.01, LAT))
        far = w.address("office B", location=Point(LON + 0.05, LAT))
        sw = w.make("T-LAN-4", at_site=False, location=Point(LON, LAT))
        uow.commit()
    d = design(db, room, "LAN")
    assert [h.kind for h in d.hops] == ["eth_port"] and d.hops[0].device and d.max_down_mbps == 1000.0
    with db.unit_of_work() as uow:
        w.s = uow.session
        for k in range(1, 5):
            w.take(w.unit(sw, "eth_port", k), "lan_broadband", "LAN")
        uow.commit()
    assert no_design(db, room, "LAN").reasons == ["no_head_port"]
    assert no_design(db, far, "LAN").reasons == ["no_lan_switch"]
