"""resource_mgr.coverage.check on the generator's XS city, changed by hand for each case: a box
full behind a free PON port, a free box behind a full PON port, a loop just over the VDSL limit,
an optical budget between B+ and C+, an address served only by a nearby box, a locked box,
coverage inherited from the building and overridden at a unit; and coverage agreeing with the
design orders pre-occupy with."""
from __future__ import annotations

import pytest
from shapely import Point
from sqlalchemy import delete, select

from coverage_world import coverage_of, fill_pon, find, free_ports, hold, load_xs
from resource_mgr.addresses import normalise
from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.coverage import services as coverage
from resource_mgr.design import NoDesign, design_path, qualify
from resource_mgr.design.trace import clear_topology_cache
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory.models import Address, Coverage, DistributionBox
from resource_mgr.occupancy.models import Change, Unit
from resource_mgr.states import Technology

FTTH, ADSL, VDSL = Technology.FTTH, Technology.ADSL, Technology.VDSL


@pytest.fixture
def city(db, tmp_path_factory):
    return load_xs(db, tmp_path_factory)


def answer(db, settings, address_id, **kw):
    with db.read_session() as s:
        return coverage.check(s, local_network_ids=None, address_id=address_id, settings=settings, now=utcnow(), **kw)


def tech(result, name):
    return next(t for t in result["technologies"] if t["technology"] == name)


def product(result, name):
    return next(p for p in result["products"] if p["product"] == name)


def boxes_serving(db, settings, address_id, medium):
    from resource_mgr.addresses import serving_boxes
    with db.read_session() as s:
        return [b.box_id for b in serving_boxes(s, address_id, medium=medium, settings=settings)]


def test_box_full_behind_a_free_pon_port(db, city):
    with db.read_session() as s:
        address, before = find(s, city, FTTH, lambda a: a.available)
    pon = before.design.hops[-1].unit_id
    with db.unit_of_work() as uow:
        for box in boxes_serving(db, city, address.id, "fibre"):
            ports = free_ports(uow.session, box)
            if ports:
                hold(uow, ports)
        uow.commit()
    result = answer(db, city, address.id)
    ftth = tech(result, "FTTH")
    assert not ftth["available"] and ftth["free_capacity"] == 0
    assert "box_full" in ftth["reasons"] and ftth["serving_box"] is not None
    assert "serving box has no free port" in ftth["reason"] and ftth["reason_zh"]
    with db.read_session() as s:  # the PON port behind it still had room
        pon_unit = s.get(Unit, pon)
        assert pon_unit.used + len(pon_unit.active_holds(utcnow())) < pon_unit.capacity
    ftth_product = product(result, "ftth_broadband")
    assert ftth_product["result"] in ("alternate", "unqualified") and "box_full" in ftth_product["reasons"]
    if any(tech(result, t)["available"] for t in ("ADSL", "VDSL", "LAN")):
        assert ftth_product["result"] == "alternate"
        assert {a["product"] for a in ftth_product["alternatives"] if a["kind"] == "product"} <= set(coverage.BROADBAND)


def test_free_box_behind_a_full_pon_port(db, city):
    with db.read_session() as s:
        address, before = find(s, city, FTTH, lambda a: a.available and a.free_capacity <= 8)
    fill_pon(db, before.design.hops[-1].unit_id, city)
    with db.read_session() as s:
        again = qualify(s, address_id=address.id, technology=FTTH, settings=city, now=utcnow())
        box_free = free_ports(s, before.design.box_id)
    if again.available:  # the box reaches another PON port too: fill that one as well
        fill_pon(db, again.design.hops[-1].unit_id, city)
    ftth = tech(answer(db, city, address.id), "FTTH")
    assert box_free, "the box still has free ports"
    assert not ftth["available"] and "pon_full" in ftth["reasons"], ftth


def test_loop_just_over_the_vdsl_limit_offers_adsl(db, city):
    with db.read_session() as s:
        address, vdsl = find(s, city, VDSL, lambda a: a.available and a.design.loop_m > 400)
    loop = vdsl.design.loop_m
    table = [(m, r) for m, r in city.design_vdsl_rate_table if m < loop - 1] + [(loop - 1, 15.0)]
    settings = load_settings(environ={}, database_url=db.url, design_vdsl_rate_table=table)
    result = answer(db, settings, address.id)
    v, a = tech(result, "VDSL"), tech(result, "ADSL")
    assert not v["available"] and "loop_too_long" in v["reasons"]
    assert a["available"] and a["max_down_mbps"] > 0
    vdsl_product = product(result, "vdsl_broadband")
    assert vdsl_product["result"] == "alternate"
    offered = [x["product"] for x in vdsl_product["alternatives"] if x["kind"] == "product"]
    assert "adsl_broadband" in offered
    assert "adsl_broadband" in vdsl_product["reason"] and "可改辦" in vdsl_product["reason_zh"]
    # and with the table as it was, VDSL is there
    assert product(answer(db, city, address.id), "vdsl_broadband")["result"] == "qualified"


def test_optical_budget_between_b_plus_and_c_plus(db, city):
    low, high = city.design_optic_classes["B+"], city.design_optic_classes["C+"]
    with db.read_session() as s:
        address, ftth = find(s, city, FTTH, lambda a: a.available and low < a.design.loss_db <= high)
    assert ftth.design.optic_class == "C+"
    result = answer(db, city, address.id)
    assert tech(result, "FTTH")["available"] and tech(result, "FTTH")["loss_db"] > low
    b_plus = load_settings(environ={}, database_url=db.url, design_optic_class_default="B+",
                           design_optic_class_by_technology={"GPON": "B+", "XGS-PON": "B+"})
    result = answer(db, b_plus, address.id)
    f = tech(result, "FTTH")
    assert not f["available"] and "budget" in f["reasons"] and "budget" in f["reason"]
    assert product(result, "ftth_broadband")["result"] in ("alternate", "unqualified")


def test_address_with_only_a_geographic_match(db, city):
    with db.unit_of_work() as uow:
        s = uow.session
        fat = s.scalars(select(DistributionBox).where(DistributionBox.medium == "fibre")
                        .order_by(DistributionBox.id)).first()
        p = fat.location
        text = "佛山市禅城区测试路1号新楼1栋"
        new = Address(name=text, local_network_id=fat.local_network_id, search_key=normalise(text),
                      location=Point(p.x + 0.0002, p.y), district="禅城区", road="测试路", number="1", building="1栋")
        s.add(new)
        uow.commit()
        new_id, fat_id = new.id, fat.id
    with db.read_session() as s:
        assert coverage_of(s, new_id) == []
    ftth = tech(answer(db, city, new_id), "FTTH")
    assert ftth["serving_box"] is not None and ftth["serving_box"]["via"] == "nearby"
    assert ftth["serving_box"]["distance_m"] <= city.addresses_drop_limit_fibre_m
    # found by text too: typed in full it is the address meant
    with db.read_session() as s:
        got = coverage.check(s, local_network_ids=None, address_text=text, settings=city, now=utcnow())
    assert got["address"]["id"] == new_id and fat_id


def test_locked_box(db, city):
    with db.read_session() as s:
        address, before = find(s, city, FTTH, lambda a: a.available)
    with db.unit_of_work() as uow:
        for box in boxes_serving(db, city, address.id, "fibre"):
            for unit in uow.session.scalars(select(Unit).where(Unit.root_id == box, Unit.kind == "box_port")):
                unit.lock(Change(principal="test", cutover_id="01CUTOVER0000000000000000"))
        uow.commit()
    ftth = tech(answer(db, city, address.id), "FTTH")
    assert not ftth["available"] and ftth["reasons"] and "no_serving_box" not in ftth["reasons"]
    with db.read_session() as s, pytest.raises(NoDesign):  # and an order could not have it either
        design_path(s, address_id=address.id, technology=FTTH, settings=city, now=utcnow())


def test_coverage_inherited_from_the_building_and_overridden_at_a_unit(db, city):
    with db.read_session() as s:
        room, _ = find(s, city, FTTH, lambda a: a.available and a.serving_box["via"] == "coverage")
        from resource_mgr.addresses import ancestors
        chain = ancestors(s, room.id)
        covered = [a for a in chain if [c for c in coverage_of(s, a) if s.get(DistributionBox, c.box_id).medium == "fibre"]]
        unit = covered[0]
        building = chain[-1]
        other = s.scalars(select(DistributionBox.id).where(DistributionBox.medium == "fibre",
                                                           DistributionBox.id.notin_(
                                                               [c.box_id for c in coverage_of(s, unit)]))
                          .order_by(DistributionBox.id)).first()
    assert unit != building, "the generator covers units"
    with db.unit_of_work() as uow:  # the building gets another box: the unit's own coverage still decides
        uow.session.execute(delete(Coverage).where(Coverage.address_id == building))
        uow.session.add(Coverage(box_id=other, address_id=building, distance_m=5.0))
        uow.commit()
    clear_topology_cache()  # coverage written past the import logs no history: the cache cannot see it
    served = tech(answer(db, city, room.id), "FTTH")["serving_box"]
    assert served["via"] == "coverage" and served["id"] != other
    with db.unit_of_work() as uow:  # without the unit's, the building's is inherited
        uow.session.execute(delete(Coverage).where(Coverage.address_id.in_(chain[:-1])))
        uow.commit()
    clear_topology_cache()
    assert tech(answer(db, city, room.id), "FTTH")["serving_box"]["id"] == other


def test_iptv_and_voip_ride_on_broadband(db, city):
    from resource_mgr.customers.models import Service
    with db.read_session() as s:
        live = s.scalars(select(Service).where(Service.product == "ftth_broadband", Service.state == "active",
                                               Service.address_id.isnot(None)).order_by(Service.id)).first()
        address_id = live.address_id
    result = answer(db, city, address_id, products=["iptv", "voip"])
    assert [p["result"] for p in result["products"]] == ["qualified", "qualified"]
    assert all(p["reasons"] == ["bearer_live"] and live.id in p["reason"] for p in result["products"])


def test_inputs_are_checked(db, city):
    with db.read_session() as s:
        a = s.scalars(select(Address).order_by(Address.id)).first()
        other = {"01OTHERNETWORK00000000000"}
        with pytest.raises(NotFound):
            coverage.check(s, local_network_ids=other, address_id=a.id, settings=city, now=utcnow())
        with pytest.raises(Invalid) as e:
            coverage.check(s, local_network_ids=None, address_id=a.id, products=["fax"], settings=city, now=utcnow())
        assert e.value.field == "products.0"
        with pytest.raises(Invalid) as e:
            coverage.check(s, local_network_ids=None, settings=city, now=utcnow())
        assert e.value.field == "address_id"


def test_coverage_agrees_with_the_design_orders_use(db, city):
    """For a sample of addresses and every technology: available ⇔ design_path succeeds with the
    locks an order takes (in a transaction rolled back), and the same path."""
    from coverage_world import addresses
    checked = 0
    with db.read_session() as s:
        sample = [a.id for a in addresses(s, None, 400)][::16]
    for address_id in sample:
        result = answer(db, city, address_id)
        for t in result["technologies"]:
            with db.unit_of_work() as uow:
                try:
                    d = design_path(uow.session, address_id=address_id, technology=t["technology"], settings=city,
                                    now=utcnow(), lock=True)
                except NoDesign as exc:
                    assert not t["available"], (address_id, t)
                    assert set(exc.reasons) == set(t["reasons"])
                else:
                    assert t["available"], (address_id, t, d.as_json())
                    assert t["max_down_mbps"] == d.max_down_mbps
                uow.rollback()
            checked += 1
    assert checked >= 100
