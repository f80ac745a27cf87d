"""The transport layer of the generated city (resource_mgr.bulk.generator calls it).

What it adds to every size, streamed to the same BundleWriter:

- per exchange area an aggregation switch at the exchange and one in an aggregation machine
  room (汇聚机房, a `machine_room` site at a road crossing 1–2 km away; a one-exchange city gets
  two rooms, so that its ring has three sites);
- at the main exchange (the first, central one) a pair of core routers and a BRAS hung off both
  (旁挂: routes end at a core router, the BRAS is not on them);
- aggregation rings: core router 1 → the aggregation nodes of up to `RING_EXCHANGES` exchange
  areas → core router 2, the two routers joined, so every ring closes on the core pair. Nodes
  at one site are patched directly; others are joined by a `trunk` cable (one core per link)
  through the duct segments of the roads, and between exchange areas through an inter-area
  trunk duct (straight, a manhole every ≤ `TRUNK_MANHOLE_M`) from one area's edge to the next;
- head equipment homing: OLTs and ADSL DSLAMs dual-homed (uplink card 1 to the exchange's
  aggregation switch, uplink card 2 over the exchange ↔ machine-room trunk cable to the
  machine room's), VDSL DSLAMs (the small ones) single-homed to the machine room for a share
  `SINGLE_HOMED_SMALL_DSLAMS` (so a machine-room fault leaves some down and others degraded),
  LAN switches homed once to the exchange's aggregation switch over a fibre feeder cable;
- PON type-B protection: a first-stage splitter carrying VIP FTTH lines is, with probability
  `VIP_PROTECTED_SHARE`, a 2:N splitter whose second input is wired through its own feeder core
  and ODF terminal (or, at the exchange, directly) to a PON port on another card or OLT;
- a management address on every managed device: 10.(80 + s // 64).((s % 64) * 4 + n // 250).(n % 250 + 1)
  for the n-th device of site number s (exchange i: s = i; its machine rooms 1000 + 2i + j).
  OLTs keep the generator's own 10.75.i.n.

Deterministic: choices come from random.Random seeded per exchange ("<seed>:transport:<i>") and
for the city ("<seed>:transport"), never from the generator's own streams, so the access network
it wrote is unchanged by this layer.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from resource_mgr.inventory.templates import DEFAULT_TEMPLATES

VIP_PROTECTED_SHARE = 0.5  # first-stage splitters with VIP FTTH lines made type-B protected
SINGLE_HOMED_SMALL_DSLAMS = 0.5  # share of the small (VDSL) DSLAMs homed to one node only
RING_EXCHANGES = 4  # exchange areas per aggregation ring (two aggregation nodes each)
TRUNK_MANHOLE_M = 500.0  # manhole spacing on inter-area trunk ducts
STD_FIBRE = (12, 24, 48, 72, 96, 144, 288)

_SPECS = {name: spec for name, _, _, spec in DEFAULT_TEMPLATES}


def uplink_slots(template: str) -> list[int]:
    """The slots of a template's uplink cards, in order."""
    return [s for c in _SPECS[template].get("cards", []) if c["ports"][0]["port_kind"] == "uplink_port"
            for s in c["slots"]]


def _std(need: int) -> int:
    return next((s for s in STD_FIBRE if s >= need), STD_FIBRE[-1])


class _Ports:
    """The uplink ports of a transport device, handed out in order; `card` asks for one card."""

    def __init__(self, key: str, template: str) -> None:
        card = _SPECS[template]["cards"][0]
        self.key = key
        self.free = {s: list(range(card["ports"][0]["count"], 0, -1)) for s in card["slots"]}

    def take(self, card: int | None = None) -> str:
        order = [card] if card is not None and self.free.get(card) else \
            sorted(self.free, key=lambda s: (s <= 2, s))  # cards 1, 2 are kept for ring links
        for slot in order:
            if self.free[slot]:
                return f"{self.key}#uplink_port#{slot}/{self.free[slot].pop()}"
        raise RuntimeError(f"{self.key}: no free uplink port")


@dataclass
class _Node:
    device: str
    ports: _Ports
    site: str
    site_ll: tuple[float, float]
    area: "_Area"
    pt: tuple[int, int]  # lattice crossing the site sits at


class _Area:
    """What the transport layer keeps of an exchange area once it is written: its geometry (the
    exchange's own methods, borrowed) and its aggregation nodes."""

    def __init__(self, ex: Any) -> None:
        self._cls = type(ex)
        for name in ("idx", "E", "name", "site", "site_ll", "x0", "y0", "R", "g", "k", "n", "centre",
                     "street_key"):
            setattr(self, name, getattr(ex, name))
        self.nodes: list[_Node] = []

    def ll(self, x: float, y: float) -> tuple[float, float]:
        return self._cls.ll(self, x, y)

    def lat_xy(self, ix: int, iy: int) -> tuple[float, float]:
        return self._cls.lat_xy(self, ix, iy)

    def lat_ll(self, ix: int, iy: int) -> tuple[float, float]:
        return self._cls.lat_ll(self, ix, iy)

    def route(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[list, list[str]]:
        return self._cls.route(self, a, b)


@dataclass
class _Protected:
    s1: str
    core: str | None  # the second input's feeder core (None: the splitter is at the exchange)
    capacity: int
    xgs: bool


@dataclass
class Transport:
    city: Any
    heads: list[tuple[str, str, str, Any]] = field(default_factory=list)  # this exchange's (key, type, template, building)
    areas: list[_Area] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.w = self.city.w
        self.rng = random.Random(f"{self.city.seed}:transport")
        self._ex_rng: dict[int, random.Random] = {}
        self._ip: dict[int, int] = {}
        self._protected: list[_Protected] = []
        self._small_dslams = 0
        self._ducts: dict[tuple, tuple[list, list[str]]] = {}
        self._n: dict[str, int] = {}

    def _next(self, what: str) -> int:
        self._n[what] = self._n.get(what, 0) + 1
        return self._n[what]

    def _count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def _rng(self, ex: Any) -> random.Random:
        if ex.idx not in self._ex_rng:
            self._ex_rng = {ex.idx: random.Random(f"{self.city.seed}:transport:{ex.idx}")}
        return self._ex_rng[ex.idx]

    def ip(self, site_no: int) -> str:
        """The next management address of a site (see the module docstring)."""
        n = self._ip.get(site_no, 0)
        self._ip[site_no] = n + 1
        if n >= 1000:
            raise RuntimeError(f"site {site_no}: more than 1000 managed devices")
        return f"10.{80 + site_no // 64}.{(site_no % 64) * 4 + n // 250}.{n % 250 + 1}"

    def conn(self, a: str, z: str) -> None:
        self.w.write("connections", {"kind": "patch", "a": a, "z": z})

    # -- hooks called while an exchange is built ----------------------------------------------------

    def head(self, ex: Any, key: str, device_type: str, template: str, building: Any = None) -> None:
        """A head device just written (OLT, DSLAM, LAN switch): homed when the exchange is done."""
        if uplink_slots(template):
            self.heads.append((key, device_type, template, building))

    def protected(self, ex: Any, groups: list) -> set[int]:
        """Which first-stage splitters of a cabinet (groups of second-stage trees) are type-B."""
        rng = self._rng(ex)
        out = set()
        for i, group in enumerate(groups):
            vip = any(room.grade == "vip" and "ftth_broadband" in room.products
                      for _, _, outs in group for _, room in outs)
            if vip and rng.random() < VIP_PROTECTED_SHARE:
                out.add(i)
        return out

    def protect_input(self, ex: Any, s1: str, feeder: str | None, core_no: int, capacity: int, xgs: bool) -> None:
        """The second input of a type-B splitter: spliced to its own feeder core; its ODF terminal
        and PON port come with the exchange's OLTs (`wire_protection`)."""
        in2 = f"{s1}#splitter_in#IN2"
        ex.unit_attr(in2, capacity=capacity)
        core = None
        if feeder is not None:
            core = f"{feeder}#core#{core_no:03d}"
            ex.conn("splice", in2, core)
            ex.unit_attr(core, capacity=capacity)
        self._protected.append(_Protected(s1, core, capacity, xgs))
        self._count("protected_splitters")

    def wire_protection(self, ex: Any, free_ports: dict[bool, list[str]]) -> None:
        """Each protected splitter's second input to a PON port on another card (or OLT) than
        its first input's; called before the exchange's ODFs are written (they count terminals)."""
        for p in self._protected:
            in1_pon = ex.pon_of[f"{p.s1}#splitter_in#IN1"]
            card = in1_pon.rsplit("/", 1)[0]
            free = free_ports[p.xgs]
            pick = next((i for i, port in enumerate(free) if port.rsplit("/", 1)[0] != card), None)
            if pick is None:
                free[:] = self._spare_olt(ex, p.xgs)
                pick = 0
            pon = free.pop(pick)
            if p.core is not None:
                term = ex._odf_term(p.capacity)
                ex.conn("fixed", p.core, term)
                ex.conn("patch", term, pon)
            else:
                ex.conn("patch", f"{p.s1}#splitter_in#IN2", pon)
        self._protected = []

    def _spare_olt(self, ex: Any, xgs: bool) -> list[str]:
        """An OLT for protection only, when the last one has no port on another card."""
        from resource_mgr.bulk.generator import LN_CODE, _olt_ports, _wkt_point
        tpl = "OLT-XGSPON-17x8" if xgs else "OLT-GPON-17x16"
        okey = f"{ex.E}-OLT{ex.next('olt')}"
        self.w.write("devices", {"key": okey, "local_network": LN_CODE, "name": f"{ex.name}-OLT{ex.seqs['olt']:02d}",
                                 "device_type": "olt", "site": ex.site, "template": tpl, "vendor": "华为",
                                 "model": "MA5800-X17", "technology": "XGS-PON" if xgs else "GPON",
                                 "management_ip": f"10.{75 + ex.idx // 250}.{ex.idx % 250}.{ex.seqs['olt']}",
                                 "location": _wkt_point(ex.site_ll)})
        ex.c.stats.olts += 1
        self.head(ex, okey, "olt", tpl)
        return [f"{okey}#pon_port#{p}" for p in _olt_ports(tpl)][::-1]

    # -- after each exchange: its aggregation nodes and the homing of its head equipment ------------

    def finish_exchange(self, ex: Any) -> None:
        from resource_mgr.bulk.generator import LN_CODE, _wkt_point
        area = _Area(ex)
        self.areas.append(area)
        c = ex.centre
        d = max(1, ex.n // 4) * ex.k
        spots = [(c[0] + d, c[1] + d)] + ([(c[0] - d, c[1] + d)] if self.city.p.exchanges == 1 else [])
        area.nodes.append(self._device(area, "aggregation_switch", "AGG-SWITCH-8x24", f"{ex.E}-AGG1", ex.site,
                                       ex.site_ll, c, f"{ex.name}-AGG01", ex.idx))
        for j, pt in enumerate(spots, 1):
            site = f"{ex.E}-HJ{j}"
            x, y = area.lat_xy(*pt)
            site_ll = area.ll(x + 8.0, y + 6.0)
            self.w.write("sites", {"key": site, "local_network": LN_CODE, "name": f"{ex.name}-汇聚机房{j}",
                                   "site_type": "machine_room", "area": ex.street_key,
                                   "location": _wkt_point(site_ll)})
            self._count("machine_rooms")
            area.nodes.append(self._device(area, "aggregation_switch", "AGG-SWITCH-8x24", f"{site}-AGG1", site,
                                           site_ll, pt, f"{ex.name}-汇聚机房{j}-AGG01", 1000 + 2 * ex.idx + j - 1))
        agg, room = area.nodes[0], area.nodes[1]
        remote = [h for h in self.heads if h[1] != "lan_switch"]
        cable, core = self.link(agg, room, extra=len(remote))
        for m, n in zip(area.nodes[1:], area.nodes[2:]):
            self.link(m, n)
        for key, dtype, template, building in self.heads:
            slots = uplink_slots(template)
            up1, up2 = (f"{key}#uplink_port#{s}/1" for s in slots[:2]) if len(slots) > 1 else \
                (f"{key}#uplink_port#{slots[0]}/1", f"{key}#uplink_port#{slots[0]}/2")
            if dtype == "lan_switch":  # in an office building: a fibre feeder to the exchange
                coords, segs = ex.route(ex.centre, building.entry)
                feeder = ex.cable(name=f"{ex.name}-GL{ex.next('gl'):04d}", medium="fibre", stage="feeder", count=12,
                                  a_end=ex.site, z_end=key, coords=[ex.site_ll] + coords + [building.point], segs=segs)
                self.conn(up1, f"{feeder}#core#001")
                self.conn(f"{feeder}#core#001", agg.ports.take())
                self._count("single_homed")
                continue
            small = template.startswith("DSLAM-VDSL")
            single = False
            if small:
                self._small_dslams += 1
                n = self._small_dslams
                single = math.ceil(n * SINGLE_HOMED_SMALL_DSLAMS) > math.ceil((n - 1) * SINGLE_HOMED_SMALL_DSLAMS)
            via = f"{cable}#core#{core:03d}"
            core += 1
            if single:  # the machine room only: a fault there takes it down
                self.conn(up1, via)
                self.conn(via, room.ports.take())
                self._count("single_homed")
                continue
            self.conn(up1, agg.ports.take())
            self.conn(up2, via)
            self.conn(via, room.ports.take())
            self._count("dual_homed")
        self.heads = []

    def _device(self, area: _Area, dtype: str, template: str, key: str, site: str, site_ll: tuple[float, float],
                pt: tuple[int, int], name: str, site_no: int) -> _Node:
        from resource_mgr.bulk.generator import LN_CODE, _wkt_point
        vendor, model = {"aggregation_switch": ("华为", "S9312"), "bras": ("华为", "ME60-X16"),
                         "core_router": ("华为", "NE5000E")}[dtype]
        self.w.write("devices", {"key": key, "local_network": LN_CODE, "name": name, "device_type": dtype,
                                 "site": site, "template": template, "vendor": vendor, "model": model,
                                 "technology": _SPECS[template]["technology"], "management_ip": self.ip(site_no),
                                 "location": _wkt_point(site_ll)})
        self._count(dtype)
        return _Node(key, _Ports(key, template), site, site_ll, area, pt)

    # -- at the end: the core and the rings ------------------------------------------------------

    def finish_city(self) -> dict[str, int]:
        main = self.areas[0]
        c = main.centre
        cr1 = self._device(main, "core_router", "CORE-ROUTER-8x16", "CORE-CR1", main.site, main.site_ll, c,
                           f"{main.name}-CR01", main.idx)
        cr2 = self._device(main, "core_router", "CORE-ROUTER-8x16", "CORE-CR2", main.site, main.site_ll, c,
                           f"{main.name}-CR02", main.idx)
        bras = self._device(main, "bras", "BRAS-4x8", "CORE-BRAS1", main.site, main.site_ll, c,
                            f"{main.name}-BRAS01", main.idx)
        self.conn(cr1.ports.take(1), cr2.ports.take(1))
        self.conn(bras.ports.take(1), cr1.ports.take(1))
        self.conn(bras.ports.take(2), cr2.ports.take(1))
        others = sorted(self.areas[1:], key=lambda a: (round(math.atan2(a.y0 - main.y0, a.x0 - main.x0), 6),
                                                      round(math.hypot(a.x0 - main.x0, a.y0 - main.y0)), a.idx))
        order = [main] + others
        rings = [order[i:i + RING_EXCHANGES] for i in range(0, len(order), RING_EXCHANGES)]
        for ring in rings:
            self._count("rings")
            self.link(cr1, ring[0].nodes[0])
            for a, b in zip(ring, ring[1:]):
                self.link(a.nodes[-1], b.nodes[0])
            self.link(ring[-1].nodes[-1], cr2)
        return dict(sorted(self.counts.items()))

    # -- links ---------------------------------------------------------------------------------

    def link(self, a: _Node, b: _Node, extra: int = 0) -> tuple[str | None, int]:
        """Join two transport devices: a patch at one site, else a trunk cable (core 1 for the
        link, `extra` more cores for homing). Returns the cable and its next free core."""
        pa, pb = a.ports.take(2), b.ports.take(1)
        if a.site == b.site:
            self.conn(pa, pb)
            return None, 0
        coords, segs = self._route(a, b)
        cable = self._trunk(a, b, coords, segs, _std(extra + 5))
        core = f"{cable}#core#001"
        self.conn(pa, core)
        self.conn(core, pb)
        return cable, 2

    def _route(self, a: _Node, b: _Node) -> tuple[list, list[str]]:
        if a.area is b.area:
            area = a.area
            if b.pt == area.centre:  # leave a machine room along its own road first: diverse arcs
                coords, segs = area.route(a.pt, b.pt)
            elif a.pt == area.centre:
                coords, segs = area.route(b.pt, a.pt)
                coords, segs = coords[::-1], segs[::-1]
            else:
                coords, segs = area.route(a.pt, b.pt)
            return [a.site_ll] + coords + [b.site_ll], segs
        A, B = a.area, b.area
        top_a, top_b = A.n * A.k, B.n * B.k
        dx, dy = B.x0 - A.x0, B.y0 - A.y0
        if abs(dx) >= abs(dy):
            exit_, entry = (top_a if dx > 0 else 0, a.pt[1]), (0 if dx > 0 else top_b, b.pt[1])
        else:
            exit_, entry = (a.pt[0], top_a if dy > 0 else 0), (b.pt[0], 0 if dy > 0 else top_b)
        ca, sa = A.route(a.pt, exit_)
        cb, sb = B.route(b.pt, entry)
        ci, si = self._inter_duct(A, exit_, B, entry)
        return [a.site_ll] + ca + ci + cb[::-1] + [b.site_ll], sa + si + sb[::-1]

    def _inter_duct(self, A: _Area, exit_: tuple[int, int], B: _Area, entry: tuple[int, int]) -> tuple[list, list[str]]:
        """A straight trunk duct from one area's edge manhole to another's (made once, both ways)."""
        from resource_mgr.bulk.generator import LN_CODE, _haversine, _wkt_line, _wkt_point
        key = (A.E, exit_, B.E, entry)
        back = (B.E, entry, A.E, exit_)
        if back in self._ducts:
            coords, segs = self._ducts[back]
            return coords[::-1], segs[::-1]
        if key in self._ducts:
            return self._ducts[key]
        p, q = A.lat_ll(*exit_), B.lat_ll(*entry)
        length = _haversine(*p, *q)
        if length < 1.0:
            self._ducts[key] = ([], [])
            return [], []
        n = self._next("duct")
        duct = f"TR-D{n}"
        self.w.write("ducts", {"key": duct, "local_network": LN_CODE, "name": f"中继管道{n:03d}", "holes": 6})
        parts = max(1, math.ceil(length / TRUNK_MANHOLE_M))
        pts = [(round(p[0] + (q[0] - p[0]) * j / parts, 7), round(p[1] + (q[1] - p[1]) * j / parts, 7))
               for j in range(parts + 1)]
        ends = [f"{A.E}-M{exit_[0]}_{exit_[1]}"] + [f"TR-D{n}-M{j}" for j in range(1, parts)] + \
            [f"{B.E}-M{entry[0]}_{entry[1]}"]
        for j in range(1, parts):
            self.w.write("manholes", {"key": ends[j], "local_network": LN_CODE, "name": f"中继管道{n:03d}-人井{j:02d}",
                                      "location": _wkt_point(pts[j])})
        segs = []
        for j in range(parts):
            seg = f"TR-D{n}-S{j + 1}"
            self.w.write("duct_segments", {
                "key": seg, "local_network": LN_CODE, "name": f"{j + 1:03d}", "duct": duct, "a_end": ends[j],
                "z_end": ends[j + 1], "length_m": round(_haversine(*pts[j], *pts[j + 1]), 1),
                "route": _wkt_line(pts[j:j + 2])})
            segs.append(seg)
        self._count("trunk_duct_segments", parts)
        self._ducts[key] = (pts, segs)
        return pts, segs

    def _trunk(self, a: _Node, b: _Node, coords: list, segs: list[str], cores: int) -> str:
        from resource_mgr.bulk.generator import LN_CODE, _dedupe, _line_len, _wkt_line
        n = self._next("trunk")
        key = f"TR-K{n}"
        coords = _dedupe(coords)
        length = round(_line_len(coords) * (1.0 + self.rng.uniform(0.01, 0.04)), 1)
        self.w.write("cables", {"key": key, "local_network": LN_CODE, "name": f"中继光缆{n:04d}", "medium": "fibre",
                                "stage": "trunk", "unit_count": cores, "length_m": length,
                                "a_end": a.site, "z_end": b.site, "route": _wkt_line(coords)})
        for seq, seg in enumerate(segs, 1):
            self.w.write("cable_spans", {"cable": key, "seq": seq, "duct_segment": seg})
        self.city.stats.cables += 1
        self._count("trunk_cables")
        return key
