"""Which boxes serve an address: coverage inherited down the address tree, overridden lower
down, out-of-service boxes left out, else the boxes within the drop length (both backends)."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from resource_mgr.addresses import (
    ServingBox, address_json, ancestors, local_network_of_point, nearest_boxes, resolve_point, serving_boxes,
)
from resource_mgr.config import Settings
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory.models import Address, DistributionBox, Resource
from resource_mgr.states import ResourceStatus
from tests.address_world import at, build

SETTINGS = Settings()


@pytest.fixture
def w(db):
    return build(db)


def names(boxes: list[ServingBox]) -> list[str]:
    return [b.name for b in boxes]


def test_ancestors_walk_up_to_the_building(db, w):
    with db.read_session() as s:
        assert ancestors(s, w.r201) == [w.r201, w.u2, w.b1]
        assert ancestors(s, w.b1) == [w.b1]
        with pytest.raises(NotFound):
            ancestors(s, w.fat_b1)  # a box is not an address


def test_a_room_inherits_its_buildings_coverage(db, w):
    with db.read_session() as s:
        # 101室 → 1单元 (only a planned box: skipped) → 1栋 decides
        got = serving_boxes(s, w.r101, medium="fibre", settings=SETTINGS)
        assert got == [ServingBox(w.fat_b1, "FAT-B1", 1.0, "coverage")]
        assert names(serving_boxes(s, w.r101, medium="copper", settings=SETTINGS)) == ["FXH-B1"]
        assert names(serving_boxes(s, w.b1, medium="fibre", settings=SETTINGS)) == ["FAT-B1"]


def test_coverage_at_a_unit_overrides_the_building(db, w):
    with db.read_session() as s:
        got = serving_boxes(s, w.r201, medium="fibre", settings=SETTINGS)
        # ordered by distance, None last; the building's FAT-B1 is not offered
        assert got == [ServingBox(w.fat_u2, "FAT-U2", 3.0, "coverage"),
                       ServingBox(w.fat_u2b, "FAT-U2B", None, "coverage")]
        assert names(serving_boxes(s, w.r201, medium="fibre", settings=SETTINGS, limit=1)) == ["FAT-U2"]
        # no copper coverage at the unit: the building's copper box still serves it
        assert names(serving_boxes(s, w.r201, medium="copper", settings=SETTINGS)) == ["FXH-B1"]


def test_boxes_out_of_service_are_left_out(db, w):
    with db.unit_of_work() as uow:
        uow.session.execute(update(Resource).where(Resource.id == w.fat_u2).values(status=ResourceStatus.RETIRED))
        uow.commit()
    with db.read_session() as s:
        assert names(serving_boxes(s, w.r201, medium="fibre", settings=SETTINGS)) == ["FAT-U2B"]
    with db.unit_of_work() as uow:
        uow.session.execute(update(Resource).where(Resource.id == w.fat_u2b).values(status=ResourceStatus.PLANNED))
        uow.commit()
    with db.read_session() as s:
        # nothing in service at the unit: the building decides again
        assert names(serving_boxes(s, w.r201, medium="fibre", settings=SETTINGS)) == ["FAT-B1"]


def test_without_coverage_the_nearest_boxes_within_the_drop_limit_serve(db, w):
    with db.read_session() as s:
        got = serving_boxes(s, w.b2r, medium="fibre", settings=SETTINGS)
        # FAT-NEAR 40 m; FAT-FAR 160 m is past the 100 m fibre limit; FAT-OLD (5 m) is retired
        assert names(got) == ["FAT-NEAR"] and got[0].via == "nearby"
        assert got[0].distance_m == pytest.approx(40, abs=0.5)
        # copper's limit is 300 m: the copper box 160 m away serves
        copper = serving_boxes(s, w.b2r, medium="copper", settings=SETTINGS)
        assert names(copper) == ["FXH-FAR"] and copper[0].distance_m == pytest.approx(160, abs=0.5)


def test_the_drop_limit_is_a_setting(db, w):
    with db.read_session() as s:
        wide = Settings(addresses_drop_limit_fibre_m=200)
        assert names(serving_boxes(s, w.b2, medium="fibre", settings=wide)) == ["FAT-NEAR", "FAT-FAR"]
        narrow = Settings(addresses_drop_limit_fibre_m=30)
        assert serving_boxes(s, w.b2, medium="fibre", settings=narrow) == []
        with pytest.raises(Invalid):
            serving_boxes(s, w.b2, medium="coax", settings=SETTINGS)


def test_nearby_boxes_follow_changes_of_the_boxes(db, w):
    """The SQLite in-process index is rebuilt when boxes are added (PostGIS needs no cache)."""
    with db.read_session() as s:
        assert names(serving_boxes(s, w.b2, medium="fibre", settings=SETTINGS)) == ["FAT-NEAR"]
    with db.unit_of_work() as uow:
        uow.session.add(DistributionBox(name="FAT-NEW", medium="fibre", capacity=8, local_network_id=w.gz,
                                        location=at(0, 510)))
        uow.commit()
    with db.read_session() as s:
        assert names(serving_boxes(s, w.b2, medium="fibre", settings=SETTINGS)) == ["FAT-NEW", "FAT-NEAR"]


def test_nearest_boxes_keeps_to_the_local_networks(db, w):
    with db.read_session() as s:
        p = s.get(Address, w.fs_b1).location
        assert names(nearest_boxes(s, (p.x, p.y), medium="fibre", max_m=50, local_network_ids={w.fs},
                                   limit=5)) == ["FAT-FS"]
        assert nearest_boxes(s, (p.x, p.y), medium="fibre", max_m=50, local_network_ids={w.gz}, limit=5) == []
        near = nearest_boxes(s, (at(0, 500).x, at(0, 500).y), medium="fibre", max_m=1000,
                             local_network_ids=None, limit=2)
        assert names(near) == ["FAT-NEAR", "FAT-FAR"]
        assert near[0].distance_m < near[1].distance_m


def test_resolve_point_and_local_network_of_point(db, w):
    with db.read_session() as s:
        # at a unit's point: the unit, not one of its rooms
        hit = resolve_point(s, (at(-7).x, at(-7).y), local_network_ids={w.gz})
        assert hit is not None and hit.id == w.u1
        assert resolve_point(s, (at(0, 30).x, at(0, 30).y), local_network_ids={w.gz}).id == w.b1
        assert resolve_point(s, (at(0, 30).x, at(0, 30).y), local_network_ids={w.fs}) is None
        assert resolve_point(s, (at(0, 250).x, at(0, 250).y), local_network_ids=None) is None  # > 100 m
        assert local_network_of_point(s, (at(100).x, at(100).y)) == w.gz
        assert local_network_of_point(s, (113.121, 23.021)) == w.fs
        assert local_network_of_point(s, (100.0, 40.0)) is None


def test_address_json(db, w):
    with db.read_session() as s:
        a = s.scalar(select(Address).where(Address.id == w.r201))
        j = address_json(a)
        assert j["id"] == w.r201 and j["text"].endswith("1栋2单元201室") and j["local_network"] == "GZ"
        assert j["parent_id"] == w.u2 and j["level"] == "room"
        assert j["location"]["lon"] == pytest.approx(at(7).x) and j["location"]["lat"] == pytest.approx(LAT_)
        assert address_json(s.get(Address, w.b1))["level"] == "building"
        assert address_json(s.get(Address, w.street))["level"] == "street"


LAT_ = at(7).y
