"""Geometry columns round-trip and spatial queries answer the same on both backends."""
from __future__ import annotations

import math

import pytest
import shapely
from shapely import LineString, Point, Polygon
from sqlalchemy import select

from resource_mgr.geo import spatial_for
from resource_mgr.geo.spatial import length_m, metres_between
from resource_mgr.inventory.models import (
    Address, Cable, CrossBox, Device, DistributionBox, DuctSegment, LocalNetwork, Manhole, Pole, Site,
)

# Tianhe, Guangzhou
LON, LAT = 113.3245, 23.1291
M_LAT = 1 / 111_195.0  # degrees of latitude per metre
M_LON = M_LAT / math.cos(math.radians(LAT))


def east(m: float, north: float = 0.0) -> Point:
    return Point(LON + m * M_LON, LAT + north * M_LAT)


@pytest.fixture
def ln(db):
    with db.unit_of_work() as uow:
        network = LocalNetwork(code="GZ", name="廣州", area_code="20")
        uow.session.add(network)
        uow.commit()
        return network.id


POINT = Point(LON, LAT)
LINE = LineString([(LON, LAT), (LON + 0.001, LAT + 0.0005), (LON + 0.002, LAT + 0.0004)])


def _objects(ln_id: str):
    common = dict(local_network_id=ln_id)
    return [
        (Site, "location", Site(name="GZ-TH", location=POINT, **common)),
        (Address, "location", Address(name="天河路1號", search_key="天河路1號", location=Point(LON + 0.0001, LAT), **common)),
        (Manhole, "location", Manhole(name="MH-1", location=Point(LON, LAT + 0.0001), **common)),
        (Pole, "location", Pole(name="P-1", location=Point(LON + 0.0002, LAT + 0.0002), **common)),
        (DuctSegment, "route", DuctSegment(name="DS-1", route=LINE, length_m=length_m(LINE), **common)),
        (Cable, "route", Cable(name="C-1", medium="fibre", unit_count=24, route=LINE, **common)),
        (Device, "location", Device(name="SPL-1", device_type="splitter", location=Point(-73.9857, 40.7484), **common)),
        (CrossBox, "location", CrossBox(name="JJX-1", capacity_pairs=300, location=Point(179.999999, -89.5), **common)),
        (DistributionBox, "location", DistributionBox(name="FXH-1", medium="copper", capacity=10,
                                                      location=Point(LON - 0.123456789, LAT + 0.000000001), **common)),
    ]


def test_every_geometry_column_round_trips(db, ln):
    written = {}
    with db.unit_of_work() as uow:
        for model, attr, obj in _objects(ln):
            uow.session.add(obj)
            uow.session.flush()
            written[(model, attr)] = (obj.id, getattr(obj, attr))
        uow.commit()
    assert len(written) == 9
    with db.read_session() as session:
        for (model, attr), (id_, geom) in written.items():
            back = session.scalar(select(getattr(model, attr)).where(model.id == id_))
            assert back.geom_type == geom.geom_type, model
            assert shapely.equals_exact(back, geom, tolerance=0), (model, back.wkt, geom.wkt)
            assert back.wkt == geom.wkt
    # None round-trips too
    with db.unit_of_work() as uow:
        uow.session.add(Site(name="GZ-NOWHERE", local_network_id=ln))
        uow.commit()
    with db.read_session() as session:
        assert session.scalar(select(Site.location).where(Site.name == "GZ-NOWHERE")) is None


@pytest.fixture
def manholes(db, ln):
    """Manholes 0, 50, 120, 300, 800 m east of the origin and one 90 m north."""
    spots = {"MH-0": east(0), "MH-50": east(50), "MH-120": east(120), "MH-300": east(300),
             "MH-800": east(800), "MH-N90": east(0, 90)}
    with db.unit_of_work() as uow:
        uow.session.add_all(Manhole(name=n, local_network_id=ln, location=p) for n, p in spots.items())
        uow.commit()
    return spots


def test_nearest_within_distance_in_order(db, manholes):
    q = spatial_for(db.dialect)
    with db.read_session() as session:
        found = q.nearest(session, Manhole.location, east(10), within_m=200)
    names = [m.name for m, _ in found]
    assert names == ["MH-0", "MH-50", "MH-N90", "MH-120"]
    for m, d in found:
        assert d == pytest.approx(metres_between(east(10), manholes[m.name]), rel=1e-4, abs=0.01)
    assert found[0][1] == pytest.approx(10, abs=0.05)
    assert found[-1][1] == pytest.approx(110, abs=0.2)


def test_nearest_limit_where_and_empty(db, manholes):
    q = spatial_for(db.dialect)
    with db.read_session() as session:
        assert [m.name for m, _ in q.nearest(session, Manhole.location, east(10), within_m=1000, limit=2)] == ["MH-0", "MH-50"]
        assert [m.name for m, _ in q.nearest(session, Manhole.location, east(10), within_m=1000,
                                             where=[Manhole.name != "MH-0"], limit=1)] == ["MH-50"]
        assert q.nearest(session, Manhole.location, east(0, 5000), within_m=100) == []
        far = q.nearest(session, Manhole.location, east(-100), within_m=5000)
        assert [m.name for m, _ in far] == ["MH-0", "MH-N90", "MH-50", "MH-120", "MH-300", "MH-800"]
        assert [d for _, d in far] == sorted(d for _, d in far)


def test_nearest_on_empty_table(db, ln):
    with db.read_session() as session:
        assert spatial_for(db.dialect).nearest(session, Pole.location, POINT, within_m=1000) == []
        assert spatial_for(db.dialect).intersecting(session, Pole.location, POINT.buffer(1)) == []


def test_nearest_line(db, ln):
    """Distance to a cable route is to the nearest point of the line."""
    route = LineString([east(0), east(500)])
    with db.unit_of_work() as uow:
        uow.session.add(Cable(name="C-1", local_network_id=ln, medium="fibre", unit_count=12, route=route))
        uow.session.add(Cable(name="C-2", local_network_id=ln, medium="fibre", unit_count=12,
                              route=LineString([east(0, 300), east(500, 300)])))
        uow.commit()
    with db.read_session() as session:
        found = spatial_for(db.dialect).nearest(session, Cable.route, east(250, 40), within_m=100)
    assert [c.name for c, _ in found] == ["C-1"]
    assert found[0][1] == pytest.approx(40, rel=0.01)


def test_intersecting(db, manholes, ln):
    q = spatial_for(db.dialect)
    area = Polygon([east(-10, -10).coords[0], east(130, -10).coords[0], east(130, 10).coords[0], east(-10, 10).coords[0]])
    with db.unit_of_work() as uow:
        uow.session.add(Cable(name="C-X", local_network_id=ln, medium="copper", unit_count=100,
                              route=LineString([east(60, -50), east(60, 50)])))
        uow.session.add(Cable(name="C-FAR", local_network_id=ln, medium="copper", unit_count=100,
                              route=LineString([east(600, -50), east(600, 50)])))
        uow.commit()
    with db.read_session() as session:
        assert sorted(m.name for m in q.intersecting(session, Manhole.location, area)) == ["MH-0", "MH-120", "MH-50"]
        assert [c.name for c in q.intersecting(session, Cable.route, area)] == ["C-X"]
        assert [c.name for c in q.intersecting(session, Cable.route, LineString([east(0), east(100)]))] == ["C-X"]
        assert q.intersecting(session, Manhole.location, area, where=[Manhole.name == "MH-50"])[0].name == "MH-50"
        assert q.intersecting(session, Manhole.location, east(5000).buffer(0.001)) == []
