"""The copper-to-fibre planner (resource_mgr/cutovers/planner.py) on a hand-built copper area
whose answers are known (the network is drawn in tests/planner_world.py):

    DSLAM ─ MDF-A ─┐             ┌─ DBOX-A (ADSL: rooms A, C, D2, H)
                   ├─ CROSS ─────┤
    PSTN  ─ MDF-B ─┘             └─ DBOX-B (POTS: rooms A, F, X, D1)

    B1 ─ FAT-1 (1 port)            A: ADSL + POTS → one box port     F: POTS → box_full
    B2   no fibre                  C: ADSL → no_fibre_coverage
    B3 ─ FAT-3 ─ … ─ PON (room 1)  X: FTTH live + POTS → X's port    D1: POTS → the last PON place
                                   D2: ADSL → no_pon_capacity
    B5 ─ FAT-5 ─ 50 km feeder      H: ADSL → budget
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

import planner_world
from design_world import DesignWorld
from resource_mgr.config import Settings
from resource_mgr.cutovers.planner import download_rows, plan_copper_to_fibre
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.states import AdminState

NOW = datetime.now(timezone.utc)
S = Settings()


@pytest.fixture
def world(db):
    with db.unit_of_work() as uow:
        pw = planner_world.build(uow.session)
        uow.commit()
    return pw


def plan(db, scope_id, local_network_ids=None, **kw):
    with db.read_session() as s:
        return plan_copper_to_fibre(s, scope_id=scope_id, settings=S, now=NOW, local_network_ids=local_network_ids,
                                    **kw)


def test_cross_box_plan_one_line_per_address(db, world):
    calls = []
    out = plan(db, world.c.cross, {world.w.ln}, progress=lambda d, t: calls.append((d, t)), one_line_per_address=True)
    pw = world
    assert out["rows"] == [
        {"old": pw.adsl_heads[0], "new": pw.f1.ports[0], "keep_number": True},  # room A: one FTTH line
        {"old": pw.pots.heads[0], "new": pw.f1.ports[0], "keep_number": True},
        {"old": pw.pots.heads[3], "new": pw.f3.ports[1], "keep_number": True},  # D1: the PON's last place
        {"old": pw.pots.heads[2], "new": pw.f3.ports[0], "keep_number": True},  # X: rides on its FTTH line
    ]
    assert [n["service_id"] for n in out["notes"]] == [pw.svc["A_adsl"], pw.svc["A_pots"], pw.svc["D1_pots"],
                                                       pw.svc["X_pots"]]
    assert [n["via"] for n in out["notes"]] == ["design", "design", "design", "existing_ftth"]
    assert out["notes"][1]["number"] == "20000001" and out["notes"][0]["address"] == "B1 room A"
    assert all(n["new_box"] for n in out["notes"])
    reasons = {u["service_id"]: u["reason_code"] for u in out["unmapped"]}
    assert reasons == {pw.svc["F_pots"]: "box_full", pw.svc["C_adsl"]: "no_fibre_coverage",
                       pw.svc["D2_adsl"]: "no_pon_capacity", pw.svc["H_adsl"]: "budget"}
    by = {u["reason_code"]: u for u in out["unmapped"]}
    assert "no fibre box serves this address" in by["no_fibre_coverage"]["reason"]
    assert "光纖" in by["no_fibre_coverage"]["reason_zh"]
    assert "PON port" in by["no_pon_capacity"]["reason"] and "PON口已滿" in by["no_pon_capacity"]["reason_zh"]
    assert "budget" in by["budget"]["reason"] and "光功率預算不足" in by["budget"]["reason_zh"]
    assert out["counts"] == {"services": 8, "line_services": 8, "riders": 0, "rows": 4, "addresses": 7,
                             "box_ports": 3, "unmapped": 4,
                             "by_reason": {"box_full": 1, "no_fibre_coverage": 1, "no_pon_capacity": 1, "budget": 1}}
    assert out["scope"] == {"id": pw.c.cross, "kind": "cross_box", "name": out["scope"]["name"]}
    assert calls[-1] == (7, 7) and len(calls) == 7
    assert set(download_rows(out)[0]) >= {"old", "new", "keep_number", "service_id", "address", "number"}


def test_cross_box_plan_a_line_per_service_validates_clean(db, world):
    """Without shared lines (what the cutover's validation takes today) room A's POTS needs a
    port of its own (FAT-1 has one: box_full) and room X's POTS a new line (the PON is full)."""
    from resource_mgr.cutovers.planner import shared_lines
    from resource_mgr.cutovers.validation import validate

    pw = world
    out = plan(db, pw.c.cross, one_line_per_address=False)
    assert out["rows"] == [{"old": pw.adsl_heads[0], "new": pw.f1.ports[0], "keep_number": True},
                           {"old": pw.pots.heads[3], "new": pw.f3.ports[1], "keep_number": True}]
    assert {u["service_id"]: u["reason_code"] for u in out["unmapped"]} == {
        pw.svc["A_pots"]: "box_full", pw.svc["F_pots"]: "box_full", pw.svc["C_adsl"]: "no_fibre_coverage",
        pw.svc["D2_adsl"]: "no_pon_capacity", pw.svc["X_pots"]: "no_pon_capacity", pw.svc["H_adsl"]: "budget"}
    default = plan(db, pw.c.cross)
    assert default["rows"] == (plan(db, pw.c.cross, one_line_per_address=True)["rows"] if shared_lines()
                               else out["rows"])
    with db.read_session() as s:
        v = validate(s, default["rows"], settings=S, now=NOW, local_network_ids={pw.w.ln})
    assert v.valid, [e.as_json() for e in v.errors]


def test_plan_reads_only(db, world):
    from sqlalchemy import func, select
    from resource_mgr.occupancy.models import History, Unit

    with db.read_session() as s:
        before = (s.scalar(select(func.count()).select_from(History)),
                  s.scalar(select(func.count()).where(Unit.occupancy != "free")))
    plan(db, world.c.cross)
    with db.read_session() as s:
        assert (s.scalar(select(func.count()).select_from(History)),
                s.scalar(select(func.count()).where(Unit.occupancy != "free"))) == before


def test_distribution_box_and_area_scopes(db, world):
    pw = world
    out = plan(db, pw.c.box, one_line_per_address=True)  # DBOX-A: the ADSL lines only, so D2 has the PON's last place
    assert out["rows"] == [{"old": pw.adsl_heads[0], "new": pw.f1.ports[0], "keep_number": True},
                           {"old": pw.adsl_heads[2], "new": pw.f3.ports[1], "keep_number": True}]
    assert {u["service_id"] for u in out["unmapped"]} == {pw.svc["C_adsl"], pw.svc["H_adsl"]}
    # Street 1: B1 and B2 (area on the buildings, services in their rooms)
    out = plan(db, pw.street, one_line_per_address=True)
    assert out["rows"] == [{"old": pw.adsl_heads[0], "new": pw.f1.ports[0], "keep_number": True},
                           {"old": pw.pots.heads[0], "new": pw.f1.ports[0], "keep_number": True}]
    assert {u["service_id"]: u["reason_code"] for u in out["unmapped"]} == {
        pw.svc["F_pots"]: "box_full", pw.svc["C_adsl"]: "no_fibre_coverage"}


def test_locked_head_port_and_rider(db, world):
    """A POTS line whose switch port another cutover locked is listed, not mapped; a phone riding
    on room A's ADSL line is counted and moves with it."""
    pw = world
    with db.unit_of_work() as uow:
        pw.w.s = uow.session
        pw.w.set(pw.pots.heads[0], admin_state=AdminState.LOCKED)
        from resource_mgr.customers.models import Service
        uow.session.add(Service(local_network_id=pw.w.ln, product="pots", technology="ADSL", address_id=pw.rooms["A"],
                                bearer_id=pw.svc["A_adsl"], number="20000009"))
        uow.commit()
    out = plan(db, pw.street, one_line_per_address=True)
    assert out["rows"] == [{"old": pw.adsl_heads[0], "new": pw.f1.ports[0], "keep_number": True}]
    codes = {u["service_id"]: u["reason_code"] for u in out["unmapped"]}
    assert codes[pw.svc["A_pots"]] == "locked"
    assert out["counts"]["riders"] == 1 and out["counts"]["services"] == 5


def test_bad_scopes(db, world):
    pw = world
    with pytest.raises(NotFound):
        plan(db, "01NOSUCHSCOPE0000000000000")
    with pytest.raises(Invalid, match="fibre distribution box") as e:
        plan(db, pw.f1.box)
    assert e.value.field == "scope_id"
    with pytest.raises(Invalid, match="device"):
        plan(db, pw.c.head)
    with db.unit_of_work() as uow:
        other = DesignWorld(uow.session, code="SZ")
        cross = other.copper(ports=1).cross
        uow.commit()
    with pytest.raises(NotFound):
        plan(db, cross, {pw.w.ln})
    assert plan(db, cross, {other.ln})["rows"] == []
