"""Small hand-built networks with a transport layer, for the topology tests. Build inside a unit of
work and commit; the pieces are plain rows, the wiring goes through the inventory (connect):

    with db.unit_of_work() as uow:
        w = TopoWorld(uow.session)
        a = w.site("A")
        olt, p = w.device("OLT1", "olt", a, pon_port=2, uplink_port=2)
        ...
        uow.commit()

Conventions as the transport data has them: a head device's `uplink_port`s wired (patch) to trunk
cores or straight to an aggregation switch's uplink ports; transport devices (aggregation_switch,
bras, core_router) pass traffic between any two of their uplink ports; a route ends at a core
router. Type-B: a splitter with two `splitter_in` units, each fed from its own PON port.
"""
from __future__ import annotations

import random
from typing import Any

import pytest

from shapely.geometry import Point
from sqlalchemy import select

from resource_mgr.customers.models import Customer, Service, ServiceUnit
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import (
    Address, Area, Cable, CableSpan, Card, Connection, Device, DistributionBox, Duct, DuctSegment, Manhole, Site,
)
from resource_mgr.occupancy.models import Change, Unit
from resource_mgr.states import CustomerGrade
from resource_mgr.topology import services as topo

LON, LAT = 113.32, 23.12
CHANGE = Change(principal="test")
SHARED = {"pon_port", "splitter_in"}


class TopoWorld:
    def __init__(self, session: Any, code: str = "TP") -> None:
        self.s = session
        self.ln = inv.create_local_network(session, code=code, name=code, area_code="20").id
        self.area = self._add(Area(name=f"{code}-区", level="district"))
        self.duct = self._add(Duct(name=f"{code}-管道"))
        self._n = 0

    def _add(self, obj: Any) -> Any:
        obj.local_network_id = self.ln
        self.s.add(obj)
        self.s.flush()
        return obj

    def _seq(self) -> int:
        self._n += 1
        return self._n

    def _units(self, owner: Any, root: Any, kind: str, count: int, capacity: int | None = None) -> list[str]:
        out = []
        for i in range(1, count + 1):
            cap = capacity if capacity is not None else (64 if kind in SHARED else 1)
            u = Unit(kind=kind, name=f"{kind}-{i}", seq=i, local_network_id=self.ln, owner_id=owner.id,
                     root_id=root.id, capacity=cap)
            self.s.add(u)
            self.s.flush()
            out.append(u.id)
        return out

    # -- resources ----------------------------------------------------------------------------

    def site(self, name: str) -> str:
        return self._add(Site(name=name, location=Point(LON, LAT), area_id=self.area.id)).id

    def manhole(self, name: str) -> str:
        return self._add(Manhole(name=name, location=Point(LON, LAT))).id

    def segment(self, name: str, a_end: str | None = None, z_end: str | None = None) -> str:
        return self._add(DuctSegment(name=name, parent_id=self.duct.id, a_end_id=a_end, z_end_id=z_end)).id

    def device(self, name: str, device_type: str, site: str | None, **ports: int) -> tuple[str, dict[str, list[str]]]:
        """A device with one card holding `ports` ({unit kind: count}); splitters hold theirs directly."""
        d = self._add(Device(name=name, device_type=device_type, site_id=site,
                             split_ratio=ports.get("splitter_out") if device_type == "splitter" else None))
        owner = d
        if device_type != "splitter":
            owner = self._add(Card(name="01", parent_id=d.id, slot=1, card_type="CARD"))
        return d.id, {kind: self._units(owner, d, kind, n) for kind, n in ports.items()}

    def cable(self, name: str, cores: int, *, stage: str = "feeder", spans: tuple[str, ...] = (),
              a_end: str | None = None, z_end: str | None = None) -> tuple[str, list[str]]:
        c = self._add(Cable(name=name, medium="fibre", stage=stage, unit_count=cores, a_end_id=a_end, z_end_id=z_end))
        for i, seg in enumerate(spans, 1):
            self.s.add(CableSpan(cable_id=c.id, seq=i, duct_segment_id=seg))
        self.s.flush()
        return c.id, self._units(c, c, "core", cores, capacity=1)

    def box(self, name: str, ports: int = 2) -> tuple[str, list[str]]:
        b = self._add(DistributionBox(name=name, medium="fibre", capacity=ports))
        return b.id, self._units(b, b, "box_port", ports)

    def link(self, a: str, z: str, kind: str = "patch") -> None:
        inv.connect(self.s, a, z, kind)

    def chain(self, *units: str, kind: str = "patch") -> None:
        for a, z in zip(units, units[1:]):
            self.link(a, z, kind)

    # -- services ------------------------------------------------------------------------------

    def service(self, path: list[str], *, product: str = "ftth_broadband", vip: bool = False,
                bearer: str | None = None) -> str:
        """A live service on `path` (customer side first; its steps must be wired or a splitter pass)."""
        n = self._seq()
        customer = Customer(local_network_id=self.ln, external_ref=f"C{n}", name=f"客户{n}",
                            grade=CustomerGrade.VIP if vip else CustomerGrade.NORMAL)
        self.s.add(customer)
        address = self._add(Address(name=f"地址{n}", area_id=self.area.id, search_key=f"地址{n}"))
        svc = Service(local_network_id=self.ln, product=product, technology="FTTH", customer_id=customer.id,
                      address_id=address.id, bearer_id=bearer, number=None)
        self.s.add(svc)
        self.s.flush()
        for i, u in enumerate(path, 1):
            self.s.add(ServiceUnit(service_id=svc.id, seq=i, unit_id=u))
        self.s.flush()
        return svc.id


def access_world(w: TopoWorld, *, dual_homed: bool = False, type_b: bool = False, shared_duct: bool = False) -> Any:
    """The standard small network (names as in the tests' diagrams):

        box port ─ drop core ─ S1 out1 ═ S1 in1 ─ feeder core f1 ─ PON1 [OLT1 @A]
        OLT1 up1 ─ T1 core1 ─ AGG1 u1 [@B] ; AGG1 u2 ─ CR1 p1 [@D]
      dual_homed:  OLT1 up2 ─ T2 core1 ─ AGG2 u1 [@C] ; AGG2 u2 ─ CR1 p2
      type_b:      S1 in2 ─ feeder core f2 ─ PON2 [OLT2 @A] ; OLT2 up1 ─ T1 core2 ─ AGG1 u3
      T1 runs through duct segment SG1 (manholes M1–M2), T2 through SG2 (M3–M4), or both through
      SG1 with shared_duct.
    """
    from types import SimpleNamespace

    n = SimpleNamespace()
    n.A, n.B, n.C, n.D = (w.site(x) for x in "ABCD")
    n.M1, n.M2, n.M3, n.M4 = (w.manhole(f"M{i}") for i in range(1, 5))
    n.SG1 = w.segment("SG1", n.M1, n.M2)
    n.SG2 = w.segment("SG2", n.M3, n.M4)
    n.OLT1, p = w.device("OLT1", "olt", n.A, pon_port=2, uplink_port=2)
    n.PON1, n.UP1, n.UP2 = p["pon_port"][0], p["uplink_port"][0], p["uplink_port"][1]
    n.AGG1, p = w.device("AGG1", "aggregation_switch", n.B, uplink_port=4)
    n.AGG1u = p["uplink_port"]
    n.CR1, p = w.device("CR1", "core_router", n.D, uplink_port=2)
    n.CR1p = p["uplink_port"]
    n.T1, n.T1c = w.cable("T1", 2, stage="trunk", spans=(n.SG1,), a_end=n.A, z_end=n.B)
    w.chain(n.UP1, n.T1c[0], n.AGG1u[0])
    w.link(n.AGG1u[1], n.CR1p[0])
    n.S1, p = w.device("S1", "splitter", None, splitter_in=2 if type_b else 1, splitter_out=4)
    n.S1in, n.S1out = p["splitter_in"], p["splitter_out"]
    n.F, n.Fc = w.cable("F", 2, stage="feeder", spans=(n.SG1,))
    n.BOX, n.BP = w.box("BOX1", 2)
    n.DROP, n.Dc = w.cable("DROP", 2, stage="distribution")
    w.chain(n.BP[0], n.Dc[0], n.S1out[0], kind="splice")
    w.chain(n.S1in[0], n.Fc[0], n.PON1, kind="splice")
    if dual_homed:
        n.AGG2, p = w.device("AGG2", "aggregation_switch", n.C, uplink_port=4)
        n.AGG2u = p["uplink_port"]
        n.T2, n.T2c = w.cable("T2", 2, stage="trunk", spans=(n.SG1 if shared_duct else n.SG2,), a_end=n.A, z_end=n.C)
        w.chain(n.UP2, n.T2c[0], n.AGG2u[0])
        w.link(n.AGG2u[1], n.CR1p[1])
    if type_b:
        n.OLT2, p = w.device("OLT2", "olt", n.A, pon_port=1, uplink_port=1)
        n.PON2, n.OLT2UP = p["pon_port"][0], p["uplink_port"][0]
        w.chain(n.S1in[1], n.Fc[1], n.PON2, kind="splice")
        w.chain(n.OLT2UP, n.T1c[1], n.AGG1u[2])
    n.path = [n.BP[0], n.Dc[0], n.S1out[0], n.S1in[0], n.Fc[0], n.PON1]
    n.transport1 = [n.UP1, n.T1c[0], n.AGG1u[0], n.AGG1u[1], n.CR1p[0]]
    n.svc = w.service(n.path, vip=True)
    n.iptv = w.service([], product="iptv", bearer=n.svc)
    return n


def random_world(w: TopoWorld, rng: random.Random) -> list[str]:
    """A random metro with rings, dual homing and type-B splitters; returns every id in it.

        boxes ─ drop cores ─ splitters (1 or 2 inputs) ─ feeder cores ─ PON ports [OLTs @A]
        OLT uplinks (1 or 2) ─ trunk cores ─ aggregation switches, in a ring (with a chord
        sometimes) ─ one or two of them ─ a core router
        every cable through a random few duct segments between random manholes
    """
    ids: list[str] = []
    sites = [w.site(f"S{i}") for i in range(rng.randint(3, 5))]
    holes = [w.manhole(f"M{i}") for i in range(rng.randint(2, 4))]
    segs = [w.segment(f"G{i}", rng.choice(holes), rng.choice(holes)) for i in range(rng.randint(2, 5))]
    ids += sites + holes + segs
    aggs = []
    for i in range(rng.randint(2, 4)):
        d, p = w.device(f"AGG{i}", "aggregation_switch", sites[1 + i % (len(sites) - 1)], uplink_port=8)
        aggs.append([d, list(p["uplink_port"])])
        ids += [d] + p["uplink_port"]
    cr, p = w.device("CR", "core_router", sites[-1], uplink_port=4)
    cr_ports = list(p["uplink_port"])
    ids += [cr] + cr_ports

    def trunk(a: str, z: str) -> None:
        cab, cores = w.cable(f"T{len(ids)}", 1, stage="trunk", spans=tuple(rng.sample(segs, rng.randint(0, 2))))
        ids.extend([cab] + cores)
        w.chain(a, cores[0], z)

    def port(agg: list) -> str:
        return agg[1].pop()

    for i in range(len(aggs)):  # the ring
        if len(aggs) > 2 or i == 0:
            trunk(port(aggs[i]), port(aggs[(i + 1) % len(aggs)]))
    if len(aggs) > 3 and rng.random() < 0.5:
        trunk(port(aggs[0]), port(aggs[2]))
    for agg in rng.sample(aggs, rng.randint(1, min(2, len(aggs)))):
        w.link(port(agg), cr_ports.pop())
    pons = []
    for i in range(rng.randint(1, 3)):
        ups = rng.randint(1, 2)
        d, p = w.device(f"OLT{i}", "olt", sites[0], pon_port=2, uplink_port=ups)
        ids += [d] + p["pon_port"] + p["uplink_port"]
        pons += p["pon_port"]
        for up, agg in zip(p["uplink_port"], rng.sample(aggs, ups)):
            trunk(up, port(agg))
    feeder, fcores = w.cable("F", 6, spans=tuple(rng.sample(segs, rng.randint(0, 2))))
    ids += [feeder] + fcores
    free_pons = list(pons)
    for i in range(rng.randint(1, 3)):
        ins = rng.randint(1, 2)
        sp, p = w.device(f"SP{i}", "splitter", None, splitter_in=ins, splitter_out=2)
        ids += [sp] + p["splitter_in"] + p["splitter_out"]
        for s_in in p["splitter_in"]:
            if not fcores or not free_pons:
                break
            core, pon = fcores.pop(), free_pons.pop(rng.randrange(len(free_pons)))
            w.chain(s_in, core, pon, kind="splice")
        else:
            for j, out in enumerate(p["splitter_out"]):
                box, ports = w.box(f"B{i}{j}", 1)
                drop, dcores = w.cable(f"D{i}{j}", 1, stage="distribution",
                                       spans=tuple(rng.sample(segs, rng.randint(0, 1))))
                ids += [box, drop] + ports + dcores
                w.chain(ports[0], dcores[0], out, kind="splice")
                first_in = p["splitter_in"][0]
                chain = [ports[0], dcores[0], out, first_in]
                f = next(iter(_wired_to(w, first_in)))
                chain += [f, next(iter(_wired_to(w, f) - {first_in}))]
                svc = w.service(chain, vip=rng.random() < 0.5)
                if rng.random() < 0.5:
                    w.service([], product="iptv", bearer=svc)
    return ids


def _wired_to(w: TopoWorld, unit: str) -> set[str]:
    rows = w.s.execute(select(Connection.a_unit_id, Connection.z_unit_id).where(
        (Connection.a_unit_id == unit) | (Connection.z_unit_id == unit))).all()
    return {z if a == unit else a for a, z in rows}


@pytest.fixture
def build(db):
    """make(**access_world options) -> the built world's names; every graph forgotten around it."""
    topo.forget_graphs()

    def make(**kw):
        with db.unit_of_work() as uow:
            n = access_world(TopoWorld(uow.session), **kw)
            uow.commit()
        return n

    yield make
    topo.forget_graphs()
