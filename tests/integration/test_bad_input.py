"""Bad input is refused with the right error and field, and leaves the database unchanged."""
from __future__ import annotations

from datetime import timedelta

import pytest
from shapely import LineString, Point, Polygon
from sqlalchemy import func, select

from resource_mgr.clock import utcnow
from resource_mgr.errors import Conflict, DomainError, IllegalTransition, Invalid, NoCapacity, NotFound
from resource_mgr.geo import parse_geometry
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import CrossBox, Device, Manhole, Resource, Site
from resource_mgr.numbers import services as numbers
from resource_mgr.occupancy.models import Change, History, Unit

TABLES = (Resource, Unit, History)


def counts(db) -> dict[str, int]:
    with db.read_session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) for m in TABLES}


@pytest.fixture
def world(db):
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        gz = inv.create_local_network(s, code="GZ", name="廣州", area_code="20")
        sz = inv.create_local_network(s, code="SZ", name="深圳", area_code="755")
        th = inv.add_resource(s, Site(name="TH", local_network_id=gz.id, location=Point(113.32, 23.13)))
        yx = inv.add_resource(s, Site(name="YX", local_network_id=gz.id))
        box = inv.create_from_template(s, template="DIST-BOX-10", local_network_id=gz.id, site_id=th.id)
        uow.commit()
        return {"gz": gz.id, "sz": sz.id, "th": th.id, "yx": yx.id, "box": box.id}


def refused_unchanged(db, exc: type[DomainError], field: str | None, fn) -> DomainError:
    """Run `fn(session)` in a unit of work that commits if it returns; it must raise `exc` with
    `field`, and no row may change."""
    before = counts(db)
    with pytest.raises(exc) as info:
        with db.unit_of_work() as uow:
            fn(uow.session)
            uow.commit()
    assert info.value.field == field, info.value.detail
    assert counts(db) == before
    return info.value


def test_unknown_template(db, world):
    err = refused_unchanged(db, Invalid, "template", lambda s: inv.create_from_template(
        s, template="OLT-DOES-NOT-EXIST", local_network_id=world["gz"], site_id=world["th"]))
    assert "OLT-DOES-NOT-EXIST" in err.detail
    refused_unchanged(db, Invalid, "template", lambda s: inv.update_template(s, "NOPE", {"ports": []}))


def test_bad_template_definitions(db, world):
    refused_unchanged(db, Invalid, "spec.ports.0.count", lambda s: inv.add_template(
        s, name="BAD", resource_kind="distribution_box", spec={"ports": [{"count": -1, "port_kind": "box_port"}]}))
    refused_unchanged(db, Invalid, "resource_kind", lambda s: inv.add_template(
        s, name="BAD", resource_kind="spaceship", spec={"ports": [{"count": 1, "port_kind": "box_port"}]}))
    refused_unchanged(db, Invalid, "device_type", lambda s: inv.add_template(
        s, name="BAD", resource_kind="device", device_type="toaster", spec={"ports": [{"count": 1, "port_kind": "eth_port"}]}))
    refused_unchanged(db, Conflict, "name", lambda s: inv.add_template(
        s, name="DIST-BOX-10", resource_kind="distribution_box", spec={"ports": [{"count": 1, "port_kind": "box_port"}]}))
    refused_unchanged(db, Invalid, "spec", lambda s: inv.update_template(s, "DIST-BOX-10", {}))


def test_bad_naming_rules(db, world):
    refused_unchanged(db, Invalid, "pattern", lambda s: inv.set_naming_rule(s, world["gz"], "device", "{site}-{colour}"))
    refused_unchanged(db, Invalid, "kind", lambda s: inv.set_naming_rule(s, world["gz"], "spaceship", "{seq}"))


def test_duplicate_names_in_a_scope(db, world):
    # top level: unique within the local network, allowed in another one
    refused_unchanged(db, Conflict, "name", lambda s: inv.add_resource(s, Site(name="TH", local_network_id=world["gz"])))
    with db.unit_of_work() as uow:
        inv.add_resource(uow.session, Site(name="TH", local_network_id=world["sz"]))
        uow.commit()
    # under a parent: unique within the parent, allowed under another parent
    refused_unchanged(db, Conflict, "name", lambda s: inv.create_from_template(
        s, template="DIST-BOX-20", local_network_id=world["gz"], site_id=world["th"], name="TH-FXH0001"))
    with db.unit_of_work() as uow:
        inv.create_from_template(uow.session, template="CROSS-BOX-300", local_network_id=world["gz"],
                                 site_id=world["th"], name="JJX-A")
        uow.commit()
    refused_unchanged(db, Conflict, "name", lambda s: inv.create_from_template(
        s, template="CROSS-BOX-600", local_network_id=world["gz"], site_id=world["th"], name="JJX-A"))
    with db.unit_of_work() as uow:
        other = inv.create_from_template(uow.session, template="CROSS-BOX-300", local_network_id=world["gz"],
                                         site_id=world["yx"], name="JJX-A")
        uow.commit()
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(CrossBox).where(CrossBox.name == "JJX-A")) == 2
        assert s.get(CrossBox, other.id).parent_id == world["yx"]
    # a blank name
    refused_unchanged(db, Invalid, "name", lambda s: inv.add_resource(s, Site(name="  ", local_network_id=world["gz"])))


def test_duplicate_local_network_and_numbers(db, world):
    refused_unchanged(db, Conflict, "code", lambda s: inv.create_local_network(s, code="GZ", name="x", area_code="20"))
    refused_unchanged(db, Invalid, "area_code", lambda s: inv.create_local_network(s, code="FS", name="x", area_code="7a"))
    with db.unit_of_work() as uow:
        pool = numbers.create_pool(uow.session, local_network_id=world["gz"], name="POOL")
        numbers.add_segment(uow.session, pool_id=pool.id, first="87650000", last="87650099")
        uow.commit()
    refused_unchanged(db, Conflict, "first", lambda s: numbers.add_segment(s, pool_id=pool.id, first="87650050", last="87650150"))
    refused_unchanged(db, Invalid, "first", lambda s: numbers.add_segment(s, pool_id=pool.id, first="07650000", last="07650001"))
    refused_unchanged(db, Invalid, "first", lambda s: numbers.add_segment(s, pool_id=pool.id, first="8765", last="8766"))
    refused_unchanged(db, Invalid, "last", lambda s: numbers.add_segment(s, pool_id=pool.id, first="87660009", last="87660000"))
    refused_unchanged(db, Invalid, "last", lambda s: numbers.add_segment(s, pool_id=pool.id, first="87660000", last="87679999"))
    refused_unchanged(db, Invalid, "quarantine_days", lambda s: numbers.create_pool(
        s, local_network_id=world["gz"], name="POOL2", quarantine_days=-1))


@pytest.mark.parametrize("location, why", [
    (LineString([(113.3, 23.1), (113.4, 23.2)]), "must be a Point"),
    (Point(200, 23.1), "outside lon/lat range"),
    (Point(113.3, -91), "outside lon/lat range"),
    (Point(), "empty"),
    ("POINT (113.3 23.1)", "must be a geometry"),
])
def test_malformed_geometry_on_create(db, world, location, why):
    err = refused_unchanged(db, Invalid, "location", lambda s: inv.create_from_template(
        s, template="DIST-BOX-10", local_network_id=world["gz"], site_id=world["th"], location=location))
    assert why in err.detail


@pytest.mark.parametrize("model, attr, value", [
    (Manhole, "location", LineString([(113.3, 23.1), (113.4, 23.2)])),
    (Manhole, "location", Point(113.3, 123)),
    (Site, "location", Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])),
])
def test_malformed_geometry_on_any_model(db, world, model, attr, value):
    def add(s):
        obj = model(name="X", local_network_id=world["gz"], **{attr: value})
        inv.add_resource(s, obj)
    refused_unchanged(db, Invalid, attr, add)


def test_malformed_cable_route(db, world):
    refused_unchanged(db, Invalid, "route", lambda s: inv.create_cable(
        s, local_network_id=world["gz"], name="C1", medium="fibre", unit_count=12, route=Point(113.3, 23.1)))
    refused_unchanged(db, Invalid, "route", lambda s: inv.create_cable(
        s, local_network_id=world["gz"], name="C1", medium="fibre", unit_count=12,
        route=LineString([(113.3, 23.1), (190, 23.1)])))
    refused_unchanged(db, Invalid, "medium", lambda s: inv.create_cable(
        s, local_network_id=world["gz"], name="C1", medium="string", unit_count=12))
    refused_unchanged(db, Invalid, "unit_count", lambda s: inv.create_cable(
        s, local_network_id=world["gz"], name="C1", medium="copper", unit_count=0))


@pytest.mark.parametrize("value, kind, why", [
    ("POINT (113.3 23.1", "POINT", "malformed"),
    ("garbage", "GEOMETRY", "malformed"),
    ("", "GEOMETRY", "malformed"),
    ({"type": "Point"}, "POINT", "malformed"),
    ({"type": "Blob", "coordinates": [1, 2]}, "GEOMETRY", "malformed"),
    ({"lon": "east", "lat": 23.1}, "POINT", "malformed"),
    ({"lon": 181, "lat": 23.1}, "POINT", "outside"),
    ("POLYGON ((0 0, 1 1, 1 0, 0 1, 0 0))", "POLYGON", "not valid"),  # a bow tie
    ("LINESTRING (0 0, 1 1)", "POINT", "must be a Point"),
    (42, "POINT", "expected GeoJSON"),
    (None, "POINT", "expected GeoJSON"),
])
def test_parse_geometry_refuses(value, kind, why):
    with pytest.raises(Invalid) as info:
        parse_geometry(value, kind, field="location")
    assert info.value.field == "location"
    assert why in info.value.detail


def test_parse_geometry_accepts():
    assert parse_geometry({"lon": 113.3, "lat": 23.1}, "POINT").equals(Point(113.3, 23.1))
    assert parse_geometry({"type": "Point", "coordinates": [113.3, 23.1]}, "POINT").equals(Point(113.3, 23.1))
    assert parse_geometry("LINESTRING (0 0, 1 1)", "LINESTRING").geom_type == "LineString"


def test_invalid_transitions_leave_the_database_unchanged(db, world):
    now = utcnow()
    with db.read_session() as s:
        uid = s.scalar(select(Unit.id).where(Unit.owner_id == world["box"], Unit.seq == 1))
    with db.unit_of_work() as uow:
        uow.session.get(Unit, uid).preoccupy(Change("a", order_ref="O1", at=now), reservation_id="R1",
                                             until=now + timedelta(hours=1))
        uow.commit()
    refused_unchanged(db, NoCapacity, None, lambda s: s.get(Unit, uid).preoccupy(
        Change("b", order_ref="O2", at=now), reservation_id="R2", until=now + timedelta(hours=1)))
    refused_unchanged(db, IllegalTransition, None, lambda s: s.get(Unit, uid).release(Change("b", at=now), service_id=None))
    refused_unchanged(db, IllegalTransition, None, lambda s: s.get(Unit, uid).unlock(Change("b", cutover_id="C1", at=now)))
    refused_unchanged(db, IllegalTransition, None, lambda s: s.get(Unit, uid).reserve(Change("b", at=now)))
    refused_unchanged(db, Invalid, "reason", lambda s: s.get(Unit, uid).mark_faulty(Change("b", at=now)))
    refused_unchanged(db, Invalid, "ttl_hours", lambda s: s.get(Unit, uid).preoccupy(
        Change("a", order_ref="O1", at=now), reservation_id="R1", until=now - timedelta(hours=1)))
    with db.read_session() as s:
        u = s.get(Unit, uid)
        assert (u.occupancy, u.reservation_id, u.admin_state) == ("preoccupied", "R1", "in_service")


def test_unknown_references(db, world):
    refused_unchanged(db, NotFound, "site_id", lambda s: inv.create_from_template(
        s, template="DIST-BOX-10", local_network_id=world["gz"], site_id="NOPE"))
    refused_unchanged(db, Invalid, "site_id", lambda s: inv.create_from_template(
        s, template="DIST-BOX-10", local_network_id=world["sz"], site_id=world["th"]))
    refused_unchanged(db, NotFound, "local_network", lambda s: inv.create_from_template(
        s, template="DIST-BOX-10", local_network_id="NOPE"))
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Device)) == 0
