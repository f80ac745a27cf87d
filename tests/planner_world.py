"""A small copper area to move to fibre, for the copper-to-fibre planner's tests. One cross box
carries four ADSL lines (DSLAM side, terminals 1-4) and four POTS lines (PSTN side, terminals
5-8); the rooms are in buildings with different fibre plant:

    DSLAM ─ MDF-A ─ primary ─┐                ┌─ dist ─ DBOX-A (ports 1-4: ADSL lines)
                             ├─ CROSS (8+8) ──┤
    PSTN  ─ MDF-B ─ primary ─┘                └─ dist ─ DBOX-B (ports 1-4: POTS lines)

    B1  covered by FAT-1 (1 port)        room A: ADSL + POTS      room F: POTS
    B2  no fibre anywhere near           room C: ADSL
    B3  covered by FAT-3 (4 ports) behind a PON port of capacity 2 carrying one ONT already
                                         room X: live FTTH + POTS   room D1: POTS   room D2: ADSL
    B5  covered by FAT-5 behind a 50 km feeder (the budget does not close)   room H: ADSL

    area "Street 1" holds B1 and B2 (area_id on the buildings only)
"""
from __future__ import annotations

from types import SimpleNamespace

from shapely.geometry import Point

from design_world import CHANGE, LAT, LON, DesignWorld
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Address, Area
from resource_mgr.occupancy.models import Unit


def line(w: DesignWorld, product: str, technology: str, address: str, path: list[str],
         number: str | None = None) -> str:
    """A live service at the address occupying every unit of `path` (customer side first)."""
    svc = Service(local_network_id=w.ln, product=product, technology=technology, address_id=address, number=number)
    w.s.add(svc)
    w.s.flush()
    for seq, uid in enumerate(path, 1):
        w.s.add(ServiceUnit(service_id=svc.id, seq=seq, unit_id=uid))
        w.s.get(Unit, uid).occupy(CHANGE, service_id=svc.id)
    w.s.flush()
    return svc.id


def pots_side(w: DesignWorld, cross: str) -> SimpleNamespace:
    """A PSTN switch wired through terminals 5-8 of `cross` to a 4-port copper box, jumpers made."""
    pstn, mdf = w.make("T-PSTN-8"), w.make("T-MDF-8")
    box = w.make("T-DBOX-4", at_site=False, location=Point(LON + 0.001, LAT + 0.001))
    dcab, pcab = w.cable("copper", 4, 300.0), w.cable("copper", 4, 700.0, stage="primary")
    paths = []
    for k in range(1, 5):
        port, pair = w.unit(box, "box_port", k), w.unit(dcab, "pair", k)
        dt, ft = w.unit(cross, "terminal", 4 + k, "distribution"), w.unit(cross, "terminal", 4 + k, "feeder")
        pp, lt = w.unit(pcab, "pair", k), w.unit(mdf, "terminal", k, "line")
        et, hp = w.unit(mdf, "terminal", k, "equipment"), w.unit(pstn, "line_port", k)
        w.link(port, pair)
        w.link(pair, dt)
        w.link(dt, ft, "jumper", cross)
        w.link(ft, pp)
        w.link(pp, lt)
        w.link(lt, et, "jumper", mdf)
        w.link(et, hp)
        paths.append([port, pair, dt, ft, pp, lt, et, hp])
    return SimpleNamespace(head=pstn, box=box, paths=paths, heads=[p[-1] for p in paths])


def build(session) -> SimpleNamespace:
    w = DesignWorld(session)
    c = w.copper(ports=4, jumpered=4, mdf_jumpered=4)
    adsl = [[c.ports[k], c.pairs[k], c.dts[k], c.fts[k], c.ppairs[k], c.lts[k], c.ets[k], c.heads[k]]
            for k in range(4)]
    pots = pots_side(w, c.cross)
    far = Point(LON + 0.2, LAT + 0.2)  # ~30 km away: no fibre box near
    street = inv.add_resource(session, Area(name="Street 1", local_network_id=w.ln, level="street")).id
    f1 = w.ftth(ports=1)
    f3 = w.ftth(ports=4)
    f5 = w.ftth(ports=2, feeder_m=50_000.0)
    b2 = w.address("building-B2", location=far)
    for b in (f1.building, b2):
        session.get(Address, b).area_id = street
    rooms = {
        "A": w.address("B1 room A", parent=f1.building), "F": w.address("B1 room F", parent=f1.building),
        "C": w.address("B2 room C", parent=b2, location=far),
        "X": w.address("B3 room X", parent=f3.building), "D1": w.address("B3 room D1", parent=f3.building),
        "D2": w.address("B3 room D2", parent=f3.building), "H": w.address("B5 room H", parent=f5.building),
    }
    for f in (f1, f3, f5):
        w.cover(f.box, f.building)
    w.set(f3.pon, capacity=2)
    ftth_x = line(w, "ftth_broadband", "FTTH", rooms["X"],
                  [f3.ports[0], f3.riser_cores[0], f3.s2_outs[0], f3.s2_in, f3.dist_core, f3.s1_out, f3.s1_in,
                   f3.feeder_core, f3.term, f3.pon])
    svc = {
        "A_adsl": line(w, "adsl_broadband", "ADSL", rooms["A"], adsl[0]),
        "C_adsl": line(w, "adsl_broadband", "ADSL", rooms["C"], adsl[1]),
        "D2_adsl": line(w, "adsl_broadband", "ADSL", rooms["D2"], adsl[2]),
        "H_adsl": line(w, "adsl_broadband", "ADSL", rooms["H"], adsl[3]),
        "A_pots": line(w, "pots", "POTS", rooms["A"], pots.paths[0], "20000001"),
        "F_pots": line(w, "pots", "POTS", rooms["F"], pots.paths[1], "20000002"),
        "X_pots": line(w, "pots", "POTS", rooms["X"], pots.paths[2], "20000003"),
        "D1_pots": line(w, "pots", "POTS", rooms["D1"], pots.paths[3], "20000004"),
    }
    session.flush()
    return SimpleNamespace(w=w, c=c, pots=pots, adsl_heads=[p[-1] for p in adsl], f1=f1, f3=f3, f5=f5,
                           rooms=rooms, svc=svc, ftth_x=ftth_x, street=street, b2=b2)
