"""The design's per-process topology follows the change feed change by change: a connection or
a resource committed by another session is seen by the next design, and a change elsewhere in
the plant does not empty what is cached (resource_mgr/design/trace.py, `_Topology.follow`)."""
from __future__ import annotations

from datetime import datetime, timezone

from shapely.geometry import Point
from sqlalchemy import event

from design_world import LAT, LON, DesignWorld
from resource_mgr.config import Settings
from resource_mgr.design import design_path
from resource_mgr.design import trace
from resource_mgr.inventory import services as inv

NOW = datetime.now(timezone.utc)
S = Settings()


def _copper(db, **kw):
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        c = w.copper(ports=2, **kw)
        room = w.address("room 1", parent=c.building)
        w.cover(c.box, c.building)
        uow.commit()
    return w, c, room


def _design(db, room, tech="ADSL"):
    with db.read_session() as s:
        return design_path(s, address_id=room, technology=tech, settings=S, now=NOW)


def _topology(db) -> trace._Topology:
    return trace._TOPOLOGIES[str(db.engine.url)]


def _counting(db):
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        seen.append(statement)
    event.listen(db.engine, "before_cursor_execute", count)
    return seen, lambda: event.remove(db.engine, "before_cursor_execute", count)


def test_a_jumper_committed_elsewhere_is_seen_and_the_rest_stays_cached(db):
    """box port k ─ dist pair k ─ cross box DT k ┄(jumper?)┄ FT k ─ primary pair k ─ MDF LT k
    ┄(jumper)┄ ET k ─ DSLAM port k, k = 1, 2; only the MDF jumpers exist at first.

    The first design asks for the cross-box jumper DT1 ┄ FT1. Another session makes it (through
    the inventory, as an order's completion does): the next design uses it and asks for no work,
    and the topology cached for the plant it did not touch (the MDF side) is still there."""
    trace.clear_topology_cache()
    w, c, room = _copper(db, mdf_jumpered=2)
    first = _design(db, room)
    assert [(x.action, x.a_unit_id, x.z_unit_id) for x in first.work] == [("make_jumper", c.dts[0], c.fts[0])]
    topo = _topology(db)
    assert c.lts[0] in topo.links and c.pairs[0] in topo.links

    with db.unit_of_work() as uow:
        inv.connect(uow.session, c.dts[0], c.fts[0], "jumper", c.cross)
        uow.commit()

    second = _design(db, room)
    assert second.work == [] and second.unit_ids[:4] == [c.ports[0], c.pairs[0], c.dts[0], c.fts[0]]
    assert _topology(db) is topo, "a new jumper must not start the topology again"
    assert c.lts[0] in topo.links and c.pairs[0] in topo.links
    assert any(other == c.fts[0] for other, _kind, _container in topo.links[c.dts[0]])


def test_an_unrelated_change_keeps_the_cache_and_costs_no_topology_reads(db):
    """FTTH (tests/design_world.py):

        PON ─ ODF term ─ feeder core ─ S1 in ═ S1 out ─ dist core ─ S2 in ═ S2 out k ─ riser k ─ FAT port k

    After a warm design, another session adds a fibre box and a cable somewhere else: the next
    design keeps the same cached topology and reads no connections (the walk is all cached)."""
    trace.clear_topology_cache()
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        f = w.ftth(ports=4)
        room = w.address("room 101", parent=f.building)
        w.cover(f.box, f.building)
        uow.commit()
    d = _design(db, room, "FTTH")
    topo = _topology(db)
    cached = len(topo.static)

    with db.unit_of_work() as uow:
        inv.create_from_template(uow.session, template="T-FAT-4", local_network_id=w.ln, site_id=None,
                                 name="FAT-ELSEWHERE", location=Point(LON + 0.02, LAT + 0.02))
        inv.create_cable(uow.session, local_network_id=w.ln, name="CABLE-ELSEWHERE", medium="fibre",
                         unit_count=8, length_m_=400.0, stage="distribution", conductor_mm=None)
        uow.commit()

    seen, stop = _counting(db)
    try:
        again = _design(db, room, "FTTH")
    finally:
        stop()
    assert again.unit_ids == d.unit_ids
    assert _topology(db) is topo and len(topo.static) >= cached
    assert not [q for q in seen if "connection" in q.lower()], "the walk must come from the cache"


def test_a_changed_resource_is_read_again(db):
    """The primary cable of a copper line grows longer (an inventory correction logged in the
    history): the next design's loop is the new length, not the cached one."""
    trace.clear_topology_cache()
    w, c, room = _copper(db, jumpered=2, mdf_jumpered=2, primary_m=700.0)
    before = _design(db, room)
    with db.unit_of_work() as uow:
        from resource_mgr.inventory.models import Cable
        from resource_mgr.occupancy.models import Unit

        cable = uow.session.get(Cable, uow.session.get(Unit, c.ppairs[0]).root_id)
        cable.length_m = 1400.0
        inv._log(uow.session, "resource_update", cable.id, "cable", cable.local_network_id,
                 {"length_m": 700.0}, {"length_m": 1400.0})
        uow.commit()
    after = _design(db, room)
    assert after.loop_m > before.loop_m + 600
