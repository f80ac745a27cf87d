"""FTTH design on hand-built networks (tests/design_world.py) whose answers are known."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from design_world import DesignWorld
from resource_mgr.config import Settings
from resource_mgr.design import NoDesign, design_path, optical_loss, qualify
from resource_mgr.states import AdminState

NOW = datetime.now(timezone.utc)
S = Settings()


def design(db, address, settings=S, **kw):
    with db.read_session() as s:
        return design_path(s, address_id=address, technology="FTTH", settings=settings, now=NOW, **kw)


def no_design(db, address, settings=S, **kw) -> NoDesign:
    with pytest.raises(NoDesign) as err:
        design(db, address, settings, **kw)
    return err.value


def world(db, **kw):
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        f = w.ftth(**kw)
        room = w.address("room 101", parent=f.building)
        w.cover(f.box, f.building)
        yield_ = (w, f, room)
        uow.commit()
    return yield_


def test_whole_path_customer_first_head_last(db):
    """FAT port 1 ─ riser core 1 ─ S2 out1 ═ S2 in ─ dist core ─ S1 out1 ═ S1 in ─ feeder core
    ─ ODF terminal ─ PON 1/1: the room inherits its building's coverage."""
    _w, f, room = world(db)
    d = design(db, room)
    assert d.unit_ids == [f.ports[0], f.riser_cores[0], f.s2_outs[0], f.s2_in, f.dist_core, f.s1_out, f.s1_in,
                          f.feeder_core, f.term, f.pon]
    assert [h.kind for h in d.hops][0] == "box_port" and d.hops[-1].kind == "pon_port"
    assert [h.shared for h in d.hops] == [False, False, False, True, True, True, True, True, True, True]
    assert d.hops[1].cable == d.hops[1].device and d.hops[0].cable is None
    assert d.hops[-1].site == "GZ-EX"
    assert d.box_id == f.box and d.technology == "FTTH"
    assert [w.action for w in d.work] == ["install_ont"]
    # 1:2 + 1:4, 2.53 km of fibre + the 20 m drop, six splices/fixed joints and one patch
    expected = optical_loss(splitter_ratios=[4, 2], fibre_m=2000 + 500 + 30 + 20,
                            connections=["fixed", "splice", "splice", "splice", "splice", "fixed", "patch"],
                            settings=S)
    assert d.loss_db == expected and d.optic_class == "C+" and d.budget_db == 32.0
    assert d.max_down_mbps == 1000.0
    j = d.as_json()
    assert set(j) == {"technology", "hops", "work", "loop_m", "loss_db", "optic_class", "budget_db", "max_down_mbps"}
    assert set(j["hops"][0]) == {"unit_id", "kind", "name", "device", "site", "cable", "shared"}


def test_box_full_behind_free_pon(db):
    """FAT (2 ports, both taken) ─ … ─ PON (free): no path, "box_full"."""
    w, f, room = world(db, ports=2)
    with db.unit_of_work() as uow:
        w.s = uow.session
        for p in f.ports:
            w.take(p)
        uow.commit()
    err = no_design(db, room)
    assert err.reasons == ["box_full"] and err.code == "no_capacity"
    assert "no free port" in err.detail and "沒有空閒端口" in err.reason_zh


def test_free_box_behind_full_pon(db):
    """FAT (4 free ports) ─ … ─ PON carrying 2 ONTs, max 2 per PON port: no path, "pon_full";
    allowing 3 per port opens it."""
    w, f, room = world(db)
    with db.unit_of_work() as uow:
        w.s = uow.session
        w.take(f.pon)
        w.take(f.pon)
        uow.commit()
    err = no_design(db, room, Settings(design_max_onts_per_pon=2))
    assert err.reasons == ["pon_full"]
    assert design(db, room, Settings(design_max_onts_per_pon=3)).unit_ids[-1] == f.pon


def test_held_place_on_shared_unit_counts_until_it_expires(db):
    """S2 in (1:4) with 4 live holds of other orders is full; an expired hold is free again."""
    w, f, room = world(db)
    with db.unit_of_work() as uow:
        w.s = uow.session
        for i in range(3):
            w.hold(f.s2_in, reservation_id=f"R{i}")
        w.hold(f.s2_in, reservation_id="R-OLD", until=NOW - timedelta(minutes=5))
        uow.commit()
    assert design(db, room).unit_ids[3] == f.s2_in  # 3 live holds + 1 expired: one place left
    with db.unit_of_work() as uow:
        w.s = uow.session
        w.hold(f.s2_in, reservation_id="R3")
        uow.commit()
    assert no_design(db, room).reasons == ["splitter_full"]
    # the caller's own hold does not count against it (a redesign of reservation R3)
    assert design(db, room, reservation_id="R3").unit_ids[3] == f.s2_in


def test_expired_preoccupation_counts_free(db):
    """FAT (1 port) pre-occupied by an order whose hold expired an hour ago: the port is free."""
    w, f, room = world(db, ports=1)
    with db.unit_of_work() as uow:
        w.s = uow.session
        w.hold(f.ports[0], until=NOW - timedelta(hours=1))
        uow.commit()
    assert design(db, room).unit_ids[0] == f.ports[0]
    with db.unit_of_work() as uow:
        w.s = uow.session
        w.hold(f.riser_cores[0], reservation_id="R-LIVE")
        uow.commit()
    assert no_design(db, room).reasons == ["fibre_full"]


def test_locked_faulty_and_reserved_units_are_never_used(db):
    """FAT ports 1..3: port 1 locked by a cutover, port 2 faulty, port 3 reserved → port 4;
    all four locked → "box_locked"."""
    w, f, room = world(db)
    with db.unit_of_work() as uow:
        w.s = uow.session
        w.set(f.ports[0], admin_state=AdminState.LOCKED)
        w.set(f.ports[1], admin_state=AdminState.FAULTY)
        w.set(f.ports[2], admin_state=AdminState.RESERVED)
        uow.commit()
    assert design(db, room).unit_ids[0] == f.ports[3]
    with db.unit_of_work() as uow:
        w.s = uow.session
        for p in f.ports:
            w.set(p, admin_state=AdminState.LOCKED)
        uow.commit()
    err = no_design(db, room)
    assert err.reasons == ["box_locked"] and "割接" in err.reason_zh


def test_budget_just_over_b_plus_and_under_c_plus(db):
    """A 1:8 + 1:8 tree with a feeder long enough for the loss to be 28.1 dB: B+ optics (28 dB)
    do not close, C+ (32 dB) do; a per-model class overrides the technology's."""
    base = optical_loss(splitter_ratios=[8, 8], fibre_m=500 + 30 + 20,
                        connections=["fixed", "splice", "splice", "splice", "splice", "fixed", "patch"], settings=S)
    feeder_m = (28.1 - base) / S.design_fibre_db_per_km * 1000
    _w, f, room = world(db, r1=8, r2=8, feeder_m=feeder_m)
    b_plus = Settings(design_optic_class_by_technology={"GPON": "B+"})
    err = no_design(db, room, b_plus)
    assert err.reasons == ["budget"] and "預算" in err.reason_zh
    d = design(db, room)
    assert 28.0 < d.loss_db < 32.0 and d.optic_class == "C+"
    with db.read_session() as s:
        from resource_mgr.inventory.models import Device
        model = s.get(Device, f.olt).model
    by_model = Settings(design_optic_class_by_technology={"GPON": "B+"}, design_optic_class_by_model={model: "C+"})
    assert design(db, room, by_model).optic_class == "C+"
    with db.read_session() as s:
        answer = qualify(s, address_id=room, technology="FTTH", settings=b_plus, now=NOW)
    assert not answer.available and answer.reasons == ["budget"] and answer.free_capacity == 0


def test_policy_fill_or_spread(db):
    """FAT ports 1-2 on tree 1 (PON 1/1, empty), ports 3-4 on tree 2 (PON 1/2, 3 ONTs):
    "fill" takes the fuller PON 1/2 (port 3), "spread" the emptier PON 1/1 (port 1)."""
    w, f, room = world(db, trees=2)
    with db.unit_of_work() as uow:
        w.s = uow.session
        for _ in range(3):
            w.take(f.trees[1].pon)
        uow.commit()
    filled = design(db, room, Settings(design_policy="fill"))
    assert filled.unit_ids[0] == f.ports[2] and filled.unit_ids[-1] == f.trees[1].pon
    spread = design(db, room, Settings(design_policy="spread"))
    assert spread.unit_ids[0] == f.ports[0] and spread.unit_ids[-1] == f.trees[0].pon


def test_avoid_keep_and_lock(db):
    """avoid skips a unit (redesign), keep prefers the kept one, lock=True locks and re-checks."""
    _w, f, room = world(db)
    assert design(db, room, avoid=frozenset({f.ports[0]})).unit_ids[0] == f.ports[1]
    assert design(db, room, keep=[f.ports[2]]).unit_ids[0] == f.ports[2]
    with db.unit_of_work() as uow:
        d = design_path(uow.session, address_id=room, technology="FTTH", settings=S, now=NOW, lock=True)
        assert d.unit_ids[0] == f.ports[0]


def test_qualify_counts_free_capacity_honestly(db):
    """4 free FAT ports behind a PON port with room for 3 (max 3 ONTs): 3 more services."""
    _w, f, room = world(db)
    with db.read_session() as s:
        answer = qualify(s, address_id=room, technology="FTTH", settings=Settings(design_max_onts_per_pon=3),
                         now=NOW)
        full = qualify(s, address_id=room, technology="FTTH", settings=S, now=NOW)
    assert answer.available and answer.free_capacity == 3
    assert full.free_capacity == 4 and full.max_down_mbps == 1000.0
    assert answer.serving_box == {"id": f.box, "name": answer.serving_box["name"], "distance_m": 20.0,
                                  "via": "coverage"}
    assert answer.design.unit_ids[0] == f.ports[0] and answer.reason and answer.reason_zh


def test_no_serving_box(db):
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        lonely = w.address("nowhere")
        uow.commit()
    err = no_design(db, lonely)
    assert err.reasons == ["no_serving_box"] and "光纖" in err.reason_zh
