"""Templates make devices with their cards and ports, named by the local network's rules."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Card, CrossBox, Device, DeviceTemplate, DistributionBox, Site
from resource_mgr.inventory.templates import DEFAULT_TEMPLATES
from resource_mgr.numbers import services as numbers
from resource_mgr.numbers.grades import Grader
from resource_mgr.numbers.models import Number, NumberSegment
from resource_mgr.occupancy.models import Unit


@pytest.fixture
def uow(db):
    with db.unit_of_work() as unit_of_work:
        inv.seed_default_templates(unit_of_work.session)
        yield unit_of_work


@pytest.fixture
def gz(uow):
    s = uow.session
    ln = inv.create_local_network(s, code="GZ", name="廣州", area_code="20")
    site = inv.add_resource(s, Site(name="GZ-TH", local_network_id=ln.id))
    return ln, site


def units(s, root_id, kind=None):
    return inv.units_of(s, root_id, kind)


def test_seed_is_idempotent(uow):
    s = uow.session
    assert s.scalar(select(func.count()).select_from(DeviceTemplate)) == len(DEFAULT_TEMPLATES)
    assert inv.seed_default_templates(s) == 0
    assert s.scalar(select(func.count()).select_from(DeviceTemplate)) == len(DEFAULT_TEMPLATES)


def test_gpon_olt(uow, gz):
    s = uow.session
    ln, site = gz
    olt = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=ln.id, site_id=site.id)
    assert isinstance(olt, Device) and olt.name == "GZ-TH-OLT01" and olt.device_type == "olt"
    assert olt.parent_id == site.id and olt.technology == "GPON"
    cards = list(s.scalars(select(Card).where(Card.parent_id == olt.id).order_by(Card.slot)))
    assert [c.slot for c in cards] == list(range(1, 20))  # 17 GPON cards, then two uplink cards
    assert [c.name for c in cards][:2] == ["01", "02"] and cards[0].card_type == "GPON-16"
    ports = units(s, olt.id, "pon_port")
    assert len(ports) == 272
    assert {p.capacity for p in ports} == {64}
    assert {p.technology for p in ports} == {"GPON"}
    assert len({p.name for p in ports}) == 272
    first_card = [p for p in ports if p.owner_id == cards[0].id]
    assert [p.name for p in first_card] == [f"1/{n}" for n in range(1, 17)]
    assert all(p.occupancy == "free" and p.admin_state == "in_service" and p.used == 0 for p in ports)
    second = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=ln.id, site_id=site.id)
    assert second.name == "GZ-TH-OLT02"


@pytest.mark.parametrize("ratio", [4, 8, 16, 32, 64])
def test_splitters(uow, gz, ratio):
    s = uow.session
    ln, site = gz
    spl = inv.create_from_template(s, template=f"SPLITTER-1:{ratio}", local_network_id=ln.id, site_id=site.id)
    assert spl.split_ratio == ratio and spl.name == "GZ-TH-SPLITTER01"
    inp = units(s, spl.id, "splitter_in")
    out = units(s, spl.id, "splitter_out")
    assert [(u.name, u.capacity) for u in inp] == [("IN1", ratio)]
    assert [u.name for u in out] == [f"OUT{n}" for n in range(1, ratio + 1)]
    assert {u.capacity for u in out} == {1}


@pytest.mark.parametrize("pairs", [300, 600, 1200])
def test_cross_boxes(uow, gz, pairs):
    s = uow.session
    ln, site = gz
    box = inv.create_from_template(s, template=f"CROSS-BOX-{pairs}", local_network_id=ln.id, site_id=site.id)
    assert isinstance(box, CrossBox) and box.capacity_pairs == pairs and box.name == "GZ-TH-JJX001"
    terms = units(s, box.id, "terminal")
    feeder = [t for t in terms if t.side == "feeder"]
    dist = [t for t in terms if t.side == "distribution"]
    assert len(dist) == pairs and len(feeder) == pairs // 2
    assert dist[0].name == "distribution-0001" and feeder[-1].name == f"feeder-{pairs // 2:04d}"


@pytest.mark.parametrize("ports", [10, 20, 30])
def test_distribution_boxes(uow, gz, ports):
    s = uow.session
    ln, site = gz
    box = inv.create_from_template(s, template=f"DIST-BOX-{ports}", local_network_id=ln.id, site_id=site.id)
    assert isinstance(box, DistributionBox) and box.medium == "copper" and box.capacity == ports
    assert box.name == "GZ-TH-FXH0001"
    assert [u.name for u in units(s, box.id, "box_port")] == [f"{n:02d}" for n in range(1, ports + 1)]
    fat = inv.create_from_template(s, template="FAT-16", local_network_id=ln.id, site_id=site.id)
    assert fat.name == "GZ-TH-GFX0001" and fat.is_fibre_access_terminal
    box2 = inv.create_from_template(s, template="DIST-BOX-10", local_network_id=ln.id, site_id=site.id)
    assert box2.name == "GZ-TH-FXH0002"


def test_changed_naming_rule_changes_new_names_only(uow, gz):
    s = uow.session
    ln, site = gz
    old = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=ln.id, site_id=site.id)
    inv.set_naming_rule(s, ln.id, "port", "{device}-{slot:02d}-{port:02d}")
    inv.set_naming_rule(s, ln.id, "device", "{local_network}-{site}-{type}-{seq:03d}")
    new = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=ln.id, site_id=site.id)
    assert new.name == "GZ-GZ-TH-OLT-002" and old.name == "GZ-TH-OLT01"
    new_names = {u.name for u in units(s, new.id, "pon_port")}
    old_names = {u.name for u in units(s, old.id, "pon_port")}
    assert "GZ-GZ-TH-OLT-002-01-01" in new_names and "GZ-GZ-TH-OLT-002-17-16" in new_names
    assert "1/1" in old_names and "17/16" in old_names and not old_names & new_names
    # another local network keeps the defaults
    sz = inv.create_local_network(s, code="SZ", name="深圳", area_code="755")
    other = inv.create_from_template(s, template="OLT-GPON-17x16", local_network_id=sz.id)
    assert other.name == "SZ-OLT01" and "1/1" in {u.name for u in units(s, other.id, "pon_port")}


def test_update_template_does_not_rewrite_existing_devices(uow, gz):
    s = uow.session
    ln, site = gz
    old = inv.create_from_template(s, template="DIST-BOX-10", local_network_id=ln.id, site_id=site.id)
    tpl = inv.update_template(s, "DIST-BOX-10", {"capacity": 12, "medium": "copper",
                                                 "ports": [{"count": 12, "port_kind": "box_port"}]})
    assert tpl.version == 2
    new = inv.create_from_template(s, template="DIST-BOX-10", local_network_id=ln.id, site_id=site.id)
    assert len(units(s, old.id)) == 10 and old.capacity == 10
    assert len(units(s, new.id)) == 12 and new.capacity == 12
    s.expire_all()
    assert s.get(DeviceTemplate, tpl.id).spec["capacity"] == 12


def test_add_template_and_create_from_it(uow, gz):
    s = uow.session
    ln, site = gz
    inv.add_template(s, name="OLT-MINI", resource_kind="device", device_type="olt", vendor="ACME", spec={
        "technology": "XGS-PON", "cards": [{"slots": [0, 1], "card_type": "XGS-8", "ports": [
            {"count": 8, "port_kind": "pon_port", "capacity": 128, "first": 0}]}]})
    olt = inv.create_from_template(s, template="OLT-MINI", local_network_id=ln.id, site_id=site.id, name="MY-OLT")
    assert olt.name == "MY-OLT" and olt.vendor == "ACME"
    ports = units(s, olt.id)
    assert len(ports) == 16 and ports[0].seq == 0 and {p.capacity for p in ports} == {128}


def test_number_segment_with_grades(uow, gz):
    s = uow.session
    ln, _ = gz
    pool = numbers.create_pool(s, local_network_id=ln.id, name="GZ-TH-POOL", quarantine_days=60)
    seg = numbers.add_segment(s, pool_id=pool.id, first="87658880", last="87658899")
    assert isinstance(seg, NumberSegment) and seg.exchange_code == "8765" and seg.name == "87658880-87658899"
    rows = {n.number: n for n in s.scalars(select(Number).where(Number.segment_id == seg.id))}
    assert len(rows) == 20
    assert (rows["87658888"].grade, rows["87658888"].grade_level) == ("AAAA", 7)
    assert (rows["87658899"].grade, rows["87658899"].grade_level) == ("AABB", 3)
    assert (rows["87658890"].grade, rows["87658890"].grade_level) == ("normal", 0)
    assert rows["87658894"].grade == "unlucky" and rows["87658894"].tail4 == "8894"
    unit = rows["87658888"].unit
    assert unit.kind == "number" and unit.name == "87658888" and unit.occupancy == "free"
    assert unit.root_id == pool.id and unit.owner_id == seg.id
    graded = numbers.add_segment(s, pool_id=pool.id, first="2345670", last="2345679",
                                 grader=Grader.from_config({"rules": [{"name": "SEVEN", "level": 5, "tail": "7"}]}))
    seven = s.scalar(select(Number).where(Number.number == "2345677"))
    assert (seven.grade, seven.grade_level) == ("SEVEN", 5) and graded.exchange_code == "234"
