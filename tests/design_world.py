"""Small hand-made access networks whose design answers are known, for the design, coverage and
orders tests. Build inside a unit of work and commit:

    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        f = w.ftth(ports=4)            # one FAT behind 1:2 + 1:4 splitters and a GPON port
        c = w.copper(ports=4)          # one copper box behind a cross box, MDF and a DSLAM
        room = w.address("room", parent=f.building)
        w.cover(f.box, f.building)
        uow.commit()

FTTH (`ftth`):

    PON port ─patch─ ODF terminal ─fixed─ feeder core ─splice─ S1 in ═ S1 out1 ─splice─
      distribution core ─splice─ S2 in ═ S2 out k ─splice─ riser core k ─fixed─ FAT port k

Copper (`copper`), box port k ... head port k, with the jumpers made or not:

    box port k ─fixed─ distribution pair k ─fixed─ cross box distribution terminal k
      ─(jumper)─ feeder terminal k ─fixed─ primary pair k ─fixed─ MDF line terminal k
      ─(jumper)─ MDF equipment terminal k ─fixed─ DSLAM (or switch) port k
    (all 8 ports of the small DSLAM / switch have their equipment terminal on the 8-pair MDF)

Units are reached by `w.unit(root_id, kind, seq)`; `w.take(unit_id)` occupies a unit by a new
service, `w.hold(unit_id, until=...)` pre-occupies it for a reservation, `w.set(unit_id, ...)`
sets admin state or capacity."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

from shapely.geometry import Point
from sqlalchemy import select

from resource_mgr.customers.models import Service
from resource_mgr.design.trace import clear_topology_cache
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Address, Coverage, DeviceTemplate, Site
from resource_mgr.occupancy.models import Change, Unit
from resource_mgr.states import AdminState

LON, LAT = 113.32, 23.12
CHANGE = Change(principal="test")


def _small_templates(session) -> None:
    have = set(session.scalars(select(DeviceTemplate.name)))
    small = [
        ("T-OLT-GPON-2", "device", "olt", {"technology": "GPON", "cards": [{"slots": [1], "card_type": "GPON-2",
         "ports": [{"count": 2, "port_kind": "pon_port", "capacity": 64, "technology": "GPON"}]}]}),
        ("T-OLT-XGS-2", "device", "olt", {"technology": "XGS-PON", "cards": [{"slots": [1], "card_type": "XGS-2",
         "ports": [{"count": 2, "port_kind": "pon_port", "capacity": 128, "technology": "XGS-PON"}]}]}),
        ("T-ODF-8", "frame", "", {"frame_type": "odf", "medium": "fibre", "ports": [
            {"count": 8, "port_kind": "terminal", "side": "line"}]}),
        ("T-MDF-8", "frame", "", {"frame_type": "mdf", "medium": "copper", "ports": [
            {"count": 8, "port_kind": "terminal", "side": "line"},
            {"count": 8, "port_kind": "terminal", "side": "equipment"}]}),
        ("T-CROSS-8", "cross_box", "", {"capacity": 8, "medium": "copper", "ports": [
            {"count": 8, "port_kind": "terminal", "side": "feeder"},
            {"count": 8, "port_kind": "terminal", "side": "distribution"}]}),
        ("T-ADSL-8", "device", "dslam", {"technology": "ADSL2+", "cards": [{"slots": [1], "card_type": "ADSL2+-8",
         "ports": [{"count": 8, "port_kind": "dsl_port", "technology": "ADSL2+"}]}]}),
        ("T-VDSL-8", "device", "dslam", {"technology": "VDSL2", "cards": [{"slots": [1], "card_type": "VDSL2-8",
         "ports": [{"count": 8, "port_kind": "dsl_port", "technology": "VDSL2"}]}]}),
        ("T-PSTN-8", "device", "pstn_switch", {"technology": "PSTN", "cards": [{"slots": [1], "card_type": "ASL-8",
         "ports": [{"count": 8, "port_kind": "line_port", "technology": "PSTN"}]}]}),
        ("T-LAN-4", "device", "lan_switch", {"technology": "LAN", "ports": [
            {"count": 4, "port_kind": "eth_port", "technology": "LAN"}]}),
        *[(f"T-FAT-{n}", "distribution_box", "", {"capacity": n, "medium": "fibre", "ports": [
            {"count": n, "port_kind": "box_port"}]}) for n in range(1, 9)],
        *[(f"T-DBOX-{n}", "distribution_box", "", {"capacity": n, "medium": "copper", "ports": [
            {"count": n, "port_kind": "box_port"}]}) for n in range(1, 9)],
    ]
    for name, kind, dtype, spec in small:
        if name not in have:
            inv.add_template(session, name=name, resource_kind=kind, device_type=dtype, spec=spec)


class DesignWorld:
    def __init__(self, session, *, code: str = "GZ", local_network_id: str | None = None) -> None:
        """A new local network `code`, or the existing `local_network_id` (e.g. live_server's GZ)."""
        self.s = session
        inv.seed_default_templates(session)
        _small_templates(session)
        self.ln = local_network_id or inv.create_local_network(session, code=code, name=code, area_code="20").id
        self.site = inv.add_resource(session, Site(name=f"{code}-EX", local_network_id=self.ln,
                                                   location=Point(LON, LAT))).id
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n:03d}"

    # -- pieces ------------------------------------------------------------------------------

    def make(self, template: str, *, at_site: bool = True, location: Point | None = None, **attrs: Any) -> str:
        return inv.create_from_template(self.s, template=template, local_network_id=self.ln,
                                        site_id=self.site if at_site else None, name=self._name(template + "-"),
                                        location=location, **attrs).id

    def unit(self, root_id: str, kind: str, seq: int = 1, side: str | None = None) -> str:
        stmt = select(Unit.id).where(Unit.root_id == root_id, Unit.kind == kind, Unit.seq == seq)
        if side is not None:
            stmt = stmt.where(Unit.side == side)
        return self.s.scalar(stmt)

    def cable(self, medium: str, count: int, length_m: float, *, stage: str = "distribution",
              gauge: float | None = 0.4) -> str:
        return inv.create_cable(self.s, local_network_id=self.ln, name=self._name("CABLE-"), medium=medium,
                                unit_count=count, length_m_=length_m, stage=stage,
                                conductor_mm=gauge if medium == "copper" else None).id

    def link(self, a: str, z: str, kind: str = "fixed", container: str | None = None) -> None:
        inv.connect(self.s, a, z, kind, container)

    def set(self, unit_id: str, **attrs: Any) -> Unit:
        unit = self.s.get(Unit, unit_id)
        for key, value in attrs.items():
            setattr(unit, key, value)
        if attrs.get("admin_state") == AdminState.LOCKED and "locked_by" not in attrs:
            unit.locked_by = "CUTOVER1"
        self.s.flush()
        clear_topology_cache()  # a write that logs no history: the design's per-process cache cannot see it
        return unit

    def take(self, unit_id: str, product: str = "ftth_broadband", technology: str = "FTTH") -> str:
        svc = Service(local_network_id=self.ln, product=product, technology=technology)
        self.s.add(svc)
        self.s.flush()
        self.s.get(Unit, unit_id).occupy(CHANGE, service_id=svc.id)
        self.s.flush()
        return svc.id

    def hold(self, unit_id: str, *, reservation_id: str = "R-OTHER", until: datetime | None = None) -> None:
        now = datetime.now(timezone.utc)
        until = until or now + timedelta(hours=2)
        at = min(now, until - timedelta(minutes=1))
        self.s.get(Unit, unit_id).preoccupy(Change(principal="test", at=at), reservation_id=reservation_id,
                                            until=until)
        self.s.flush()

    def address(self, text: str, *, parent: str | None = None, location: Point | None = None) -> str:
        a = Address(name=text, local_network_id=self.ln, parent_id=parent, search_key=text,
                    location=location or Point(LON + 0.001, LAT + 0.001))
        return inv.add_resource(self.s, a).id

    def cover(self, box_id: str, address_id: str, distance_m: float | None = 20.0) -> None:
        self.s.add(Coverage(box_id=box_id, address_id=address_id, distance_m=distance_m))
        self.s.flush()
        clear_topology_cache()  # logs no history (coverage comes by import): see set()

    # -- whole networks ------------------------------------------------------------------------

    def ftth(self, *, ports: int = 4, olt: str | None = None, pon: int = 1, technology: str = "GPON",
             r1: int = 2, r2: int = 4, feeder_m: float = 2000.0, dist_m: float = 500.0,
             riser_m: float = 30.0, trees: int = 1, building: str | None = None) -> SimpleNamespace:
        """One FAT of `ports` ports; its ports are shared out in order over `trees` splitter trees
        (tree t: a 1:`r2` splitter behind output 1 of a 1:`r1` splitter, a feeder core, an ODF
        terminal and PON port `pon + t` of `olt`, a new OLT of `technology` unless given)."""
        olt = olt or self.make("T-OLT-GPON-2" if technology == "GPON" else "T-OLT-XGS-2")
        box = self.make(f"T-FAT-{ports}", at_site=False, location=Point(LON + 0.001, LAT + 0.001))
        riser = self.cable("fibre", ports, riser_m)
        odf = self.make("T-ODF-8")
        per = -(-ports // trees)
        n = SimpleNamespace(olt=olt, odf=odf, box=box, ports=[], riser_cores=[], trees=[])
        for t in range(trees):
            pon_u = self.unit(olt, "pon_port", pon + t)
            s1 = self.make(f"SPLITTER-1:{r1}", split_stage=1)
            s2 = self.make(f"SPLITTER-1:{r2}", at_site=False, split_stage=2)
            term = self.unit(odf, "terminal", t + 1)
            feeder, dist = self.cable("fibre", 1, feeder_m, stage="feeder"), self.cable("fibre", 1, dist_m)
            fcore, dcore = self.unit(feeder, "core"), self.unit(dist, "core")
            self.set(term, capacity=r1 * r2)
            self.set(fcore, capacity=r1 * r2)
            self.set(dcore, capacity=r2)
            self.link(term, pon_u, "patch")
            self.link(fcore, term, "fixed")
            s1_in, s1_out = self.unit(s1, "splitter_in"), self.unit(s1, "splitter_out", 1)
            self.set(s1_out, capacity=r2)
            self.set(s1_in, capacity=r1 * r2)  # the whole tree behind it, as the generator has it
            self.link(s1_in, fcore, "splice")
            self.link(dcore, s1_out, "splice")
            s2_in = self.unit(s2, "splitter_in")
            self.link(s2_in, dcore, "splice")
            n.trees.append(SimpleNamespace(pon=pon_u, term=term, feeder_core=fcore, s1=s1, s1_in=s1_in,
                                           s1_out=s1_out, dist_core=dcore, s2=s2, s2_in=s2_in, s2_outs=[]))
        for k in range(1, ports + 1):
            port, core = self.unit(box, "box_port", k), self.unit(riser, "core", k)
            self.link(port, core, "fixed")
            tree = n.trees[(k - 1) // per]
            j = (k - 1) % per + 1
            if j <= r2:
                out = self.unit(tree.s2, "splitter_out", j)
                self.link(core, out, "splice")
                tree.s2_outs.append(out)
            n.ports.append(port)
            n.riser_cores.append(core)
        n.__dict__.update({k: v for k, v in vars(n.trees[0]).items()})  # tree 1 at the top: f.pon, f.s2 ...
        n.building = building or self.address(self._name("building-"))
        return n

    def copper(self, *, ports: int = 4, head: str = "T-ADSL-8", dist_m: float = 300.0, primary_m: float = 700.0,
               gauge: float = 0.4, jumpered: int = 0, mdf_jumpered: int = 0,
               building: str | None = None) -> SimpleNamespace:
        """One copper box of `ports` ports; the first `jumpered` distribution terminals have their
        cross-box jumper, the first `mdf_jumpered` line terminals their MDF jumper."""
        dslam, mdf, cross = self.make(head), self.make("T-MDF-8"), self.make("T-CROSS-8", at_site=False)
        box = self.make(f"T-DBOX-{ports}", at_site=False, location=Point(LON + 0.001, LAT + 0.001))
        dcab = self.cable("copper", ports, dist_m, gauge=gauge)
        pcab = self.cable("copper", ports, primary_m, stage="primary", gauge=gauge)
        kind = "line_port" if "PSTN" in head else "dsl_port"
        n = SimpleNamespace(head=dslam, mdf=mdf, cross=cross, box=box, ports=[], pairs=[], dts=[], fts=[], ppairs=[],
                            lts=[], ets=[], heads=[])
        for k in range(1, ports + 1):
            port, pair = self.unit(box, "box_port", k), self.unit(dcab, "pair", k)
            dt, ft = self.unit(cross, "terminal", k, "distribution"), self.unit(cross, "terminal", k, "feeder")
            pp, lt = self.unit(pcab, "pair", k), self.unit(mdf, "terminal", k, "line")
            et, hp = self.unit(mdf, "terminal", k, "equipment"), self.unit(dslam, kind, k)
            self.link(port, pair)
            self.link(pair, dt)
            self.link(ft, pp)
            self.link(pp, lt)
            if k <= jumpered:
                self.link(dt, ft, "jumper", cross)
            if k <= mdf_jumpered:
                self.link(lt, et, "jumper", mdf)
            for lst, v in ((n.ports, port), (n.pairs, pair), (n.dts, dt), (n.fts, ft), (n.ppairs, pp),
                           (n.lts, lt), (n.ets, et), (n.heads, hp)):
                lst.append(v)
        for k in range(1, 9):  # every head port has its equipment terminal
            et, hp = self.unit(mdf, "terminal", k, "equipment"), self.unit(dslam, kind, k)
            self.link(et, hp)
        n.all_ets = [self.unit(mdf, "terminal", k, "equipment") for k in range(1, 9)]
        n.all_heads = [self.unit(dslam, kind, k) for k in range(1, 9)]
        n.building = building or self.address(self._name("building-"))
        return n
