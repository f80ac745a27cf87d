"""A realistic city network, written as a bulk bundle (resource_mgr.bulk.format).

    generate("S", seed=7, out_dir=Path("city-s"))      # ~10,000 services
    generate_demo(out_dir)                               # what `rmgr demo` loads

One local network (佛山 Foshan, area code 0757, 8-digit local numbers). The city is a set of
exchange areas on a jittered grid; each exchange serves a square of roads (half side 2 km, so
every building is within ~2.9 km of its OLT) with manholes every ~100 m, one duct per road and
one duct segment per manhole span. Cells between the roads hold residential compounds, office
buildings, parks, and a few old quarters with no fibre yet. For every exchange the generator
builds, in this order, and streams straight to the BundleWriter (memory is one exchange):

- space: the exchange site, outdoor fibre cabinets (sites), standard addresses for every
  building, unit (單元) and room with points and normalised search keys, as a tree (a room's
  parent is its unit, a unit's its building; an office building has no units);
- fibre: GPON / XGS-PON OLTs (templates), ODFs, feeder cables, first-stage splitters (1:4 or 1:8,
  in a street cabinet or at the exchange), distribution cables to the buildings, second-stage
  splitters (1:16 or 1:8, total 1:64) at each building, in-building distribution cables to the
  fibre access terminals (FAT 8/16/24) on each unit, coverage FAT ↔ unit (an office: its
  building), which the unit's rooms inherit down the address tree;
- copper: MDFs, primary cables (100–1200 pairs) to cross boxes (300/600/1200), distribution
  cables to boxes (10/20/30) on each unit, equipment terminals pre-wired to DSLAM and switch
  ports, jumpers (cross box, MDF) for every working line;
- numbers: a 10,000 block per exchange on its PSTN switch and one per exchange on the city NGN
  softswitch (VoIP); golden numbers (靚號, by resource_mgr.numbers.grades.Grader) held back
  (reserved) for VIP customers, some numbers in quarantine;
- customers (some VIP and major accounts) and services with complete paths, customer side first:
  FTTH   box port → in-building core → 2nd-stage splitter out → in → distribution core →
         1st-stage splitter out → in → feeder core → ODF terminal → PON port
         (1st stage at the exchange: … → feeder core → ODF terminal → splitter out → in → PON port)
  ADSL/VDSL/POTS  box port → distribution pair → cross box distribution terminal –jumper–
         feeder terminal → primary pair → MDF line terminal –jumper– equipment terminal →
         DSLAM port / switch line port
  LAN    the LAN switch port in the office building
  IPTV and VoIP ride on an FTTH line and occupy no unit of their own (VoIP holds its number);
- pre-occupations in flight (new FTTH and POTS orders), faulty units, quarantined numbers.

Shared units carry the tree behind them (format: units.csv capacity): PON port, feeder core,
ODF terminal and first-stage splitter input up to 64; first-stage splitter output, distribution
core and second-stage input up to the second-stage ratio. Everything else is exclusive.

Deterministic: the same size, seed and `as_of` give byte-identical files (no clock, no hash
randomisation: every choice comes from random.Random seeded per exchange).

What the format cannot say yet: a bearer service for IPTV / VoIP riding on broadband, so their
paths are empty.
"""
from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from resource_mgr.addresses.normalise import normalise
from resource_mgr.bulk.format import BundleWriter
from resource_mgr.bulk.generator_transport import Transport
from resource_mgr.geo.spatial import EARTH_RADIUS_M, M_PER_DEG_LAT
from resource_mgr.inventory.templates import DEFAULT_TEMPLATES
from resource_mgr.numbers.grades import Grader
from resource_mgr.states import AdminState

# -- sizes and the city ------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    services: int  # target number of services (≈)
    exchanges: int
    segment_size: int = 10_000  # numbers opened per exchange block


SIZES: dict[str, Profile] = {
    "XS": Profile(2_000, 1, 2_000),
    "S": Profile(10_000, 2),
    "M": Profile(200_000, 20),
    "L": Profile(1_000_000, 100),
}

AS_OF = datetime(2026, 1, 1, tzinfo=timezone.utc)  # the generated network's "now"
LN_CODE, LN_NAME, AREA_CODE, PROVINCE, CITY = "FS", "佛山", "757", "广东", "佛山市"
CENTRE = (113.12, 23.02)
HALF_SIDE_M = 2000.0  # largest half side of an exchange area: corners at 2.83 km from the exchange
MAX_BLOCK_M = 450.0
EXCHANGE_SPACING_M = 4200.0
DROP_LIMIT_M = 300.0

DISTRICTS: list[tuple[str, tuple[float, float], list[str]]] = [
    ("禅城区", (113.11, 23.02), ["祖庙街道", "石湾镇街道", "张槎街道", "南庄镇"]),
    ("南海区", (113.15, 23.10), ["桂城街道", "大沥镇", "里水镇", "狮山镇", "丹灶镇", "西樵镇", "九江镇"]),
    ("顺德区", (113.25, 22.84), ["大良街道", "容桂街道", "伦教街道", "勒流街道", "陈村镇", "北滘镇", "乐从镇",
                                 "龙江镇", "杏坛镇", "均安镇"]),
    ("高明区", (112.88, 22.90), ["荷城街道", "杨和镇", "明城镇", "更合镇"]),
    ("三水区", (112.90, 23.16), ["西南街道", "云东海街道", "白坭镇", "乐平镇", "芦苞镇", "大塘镇", "南山镇"]),
]
ROAD_WORDS = (
    "季华 汾江 岭南 魁奇 绿景 文华 同济 江湾 亲仁 建新 朝安 惠景 桂澜 海八 灯湖 南桂 天佑 金融 宝石 澜石 "
    "环市 雾岗 轻工 湾华 东平 凤翔 新城 裕和 华远 锦华 福宁 普君 升平 莲花 镇安 塱宝 佛平 禅西 明珠 影荫 "
    "百花 丰宁 兴华 人民 卫国 体育 公正 市东 弼塘 石梁 沙岗 南浦 河宕 榴苑 泰安 安宁 和平 康宁 秀丽 "
    "碧桂 美的 怡乐 怡和 翠竹 紫荆 丹桂 青云 观澜 松岗 听音 龙珠 金沙 银河 玉带 锦绣 富华 德胜 聚龙"
).split()
ROAD_SUFFIXES = ("路", "大道", "街", "大街", "东路", "西路", "南路", "北路", "中路", "一路", "二路", "三路",
                 "四路", "五路", "六路", "七路", "八路", "九路", "一街", "二街", "三街", "四街", "新路",
                 "横路", "直街", "大路", "涌路", "沿江路", "环路", "支路")
COMPOUND_WORDS = ("保利", "万科", "碧桂园", "中海", "美的", "招商", "华侨城", "雅居乐", "时代", "金地", "富力",
                  "恒大", "绿地", "龙湖", "中旅", "金茂", "奥园", "星河", "佳兆业", "南海", "岭南", "东方",
                  "锦绣", "翠园", "君悦", "凯旋", "丽日", "嘉和", "金色", "城市")
COMPOUND_SUFFIXES = ("花园", "小区", "新村", "雅苑", "名苑", "豪庭", "华庭", "公馆", "山庄", "家园")
OLD_SUFFIXES = ("新村", "宿舍", "小区", "里", "坊")
OFFICE_SUFFIXES = ("大厦", "广场", "中心", "商务楼", "科技园")
SURNAMES = "陈李黄张梁何吴刘林罗郭关冯麦邓谢周苏叶区潘杨钟卢"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玲志健俊辉"
INDUSTRIES = ("陶瓷", "家电", "五金", "纺织", "物流", "科技", "贸易", "电子", "家具", "医药", "建材", "食品")
CN_NUM = "零一二三四五六七八九十"

STD_FIBRE = (12, 24, 48, 72, 96, 144, 288)
STD_PRIMARY = (100, 200, 300, 400, 600, 800, 1200)
FAULTS = ("线对不通", "纤芯断裂", "端口损坏", "接头受潮", "衰耗超标")


@dataclass
class Stats:
    size: str
    seed: int
    services: int = 0
    by_product: dict[str, int] = field(default_factory=dict)
    customers: int = 0
    addresses: int = 0
    exchanges: int = 0
    olts: int = 0
    pon_ports_used: int = 0
    fats: int = 0
    cross_boxes: int = 0
    copper_boxes: int = 0
    cables: int = 0
    numbers: int = 0
    preoccupied_orders: int = 0
    faulty_units: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    pon_fill: list[int] = field(default_factory=lambda: [0] * 11)  # histogram of used/capacity by tenths
    transport: dict[str, int] = field(default_factory=dict)  # what generator_transport added
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# -- small helpers -----------------------------------------------------------------------------



def search_key(text: str) -> str:
    """The address search's normal form (resource_mgr/addresses/normalise.py): what the importer
    would make from the name, written out so that the bundle says it."""
    return normalise(text)


def _std(sizes: tuple[int, ...], need: int) -> int:
    for s in sizes:
        if s >= need:
            return s
    return sizes[-1]


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat()


def _haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def _line_len(coords: list[tuple[float, float]]) -> float:
    return sum(_haversine(*a, *b) for a, b in zip(coords, coords[1:]))


def _wkt_point(p: tuple[float, float]) -> str:
    return f"POINT ({p[0]:.7f} {p[1]:.7f})"


def _wkt_line(coords: list[tuple[float, float]]) -> str:
    return "LINESTRING (" + ", ".join(f"{x:.7f} {y:.7f}" for x, y in coords) + ")"


def _dedupe(coords: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = [coords[0]]
    for c in coords[1:]:
        if c != out[-1]:
            out.append(c)
    return out


TEMPLATES = {name: (kind, dtype, spec) for name, kind, dtype, spec in DEFAULT_TEMPLATES}


def _olt_ports(template: str) -> list[str]:
    spec = TEMPLATES[template][2]
    card = spec["cards"][0]
    return [f"{slot}/{p}" for slot in card["slots"] for p in range(1, card["ports"][0]["count"] + 1)]


# -- the generator -----------------------------------------------------------------------------

class _City:
    """City-wide state: the writer, names handed out, the NGN softswitch and its pool."""

    def __init__(self, profile: Profile, seed: int, writer: BundleWriter, as_of: datetime) -> None:
        self.p = profile
        self.seed = seed
        self.w = writer
        self.as_of = as_of
        self.grader = Grader()
        self._grade_cache: dict[str, tuple[str, int]] = {}
        self.lookback = max(max(len(r.tail), r.run) for r in self.grader.rules)
        rng = random.Random(f"{seed}:city")
        words = [w + s for w in ROAD_WORDS for s in ROAD_SUFFIXES]
        rng.shuffle(words)
        self.road_names = words
        self.road_next = 0
        codes = [f"{a}{b:03d}" for a in (8, 2, 3) for b in range(100, 1000)]
        rng.shuffle(codes)
        self.pstn_codes = codes
        ngn = [f"6{b:03d}" for b in range(100, 1000)] + [f"7{b:03d}" for b in range(100, 1000)]
        rng.shuffle(ngn)
        self.ngn_codes = ngn
        self.street_count: dict[str, int] = {}
        self.stats: Stats | None = None

    def road(self) -> str:
        i = self.road_next
        self.road_next += 1
        name = self.road_names[i % len(self.road_names)]
        return name if i < len(self.road_names) else f"{name}{i // len(self.road_names) + 1}巷"

    def golden(self, number: str) -> bool:
        """Grade level ≥ 3 (AAA, AABB, ABAB, ABCD …, or a level-2 pattern raised by a lucky
        digit). A cheap test on the last four digits picks the candidates the Grader judges."""
        a, b, c, d = number[-4:]
        if not (b == c == d or (a == b and c == d) or (a == c and b == d) or (a == d and b == c)
                or int(b) - int(a) == int(c) - int(b) == int(d) - int(c) in (1, -1)):
            return False
        return self.grade(number)[1] >= 3

    def grade(self, number: str) -> tuple[str, int]:
        tail = number[-self.lookback:]
        g = self._grade_cache.get(tail)
        if g is None:
            g = self._grade_cache[tail] = self.grader.grade(number)
        return g


@dataclass
class _Room:
    address: str
    text: str
    floor: int
    customer: str = ""
    grade: str = "normal"
    products: list[str] = field(default_factory=list)
    pending: str = ""  # product of an order in flight


@dataclass
class _Unit:  # a building unit (單元): its point, address, rooms, boxes
    address: str
    point: tuple[float, float]
    rooms: list[_Room]
    address_point: tuple[float, float] = (0.0, 0.0)  # of `address` (an office's is its building's)
    fats: list[tuple[str, int, int, int]] = field(default_factory=list)  # (box key, size, floor lo, floor hi)
    cboxes: list[tuple[str, int, int, int]] = field(default_factory=list)


@dataclass
class _Building:
    point: tuple[float, float]
    entry: tuple[int, int]  # lattice manhole where the lead-in leaves the road
    units: list[_Unit]
    office: bool = False
    key: str = ""


@dataclass
class _Cell:
    ci: int
    cj: int
    kind: str  # fibre_new, mixed, copper, office, empty
    buildings: list[_Building] = field(default_factory=list)
    take_up: float = 0.6
    fill: float = 0.65  # planned PON fill: FTTH demand / splitter outputs


class _Exchange:
    def __init__(self, city: _City, idx: int, xy: tuple[float, float], district: str, street: str,
                 street_key: str, per_exchange: int) -> None:
        self.c = city
        self.w = city.w
        self.idx = idx
        self.E = f"X{idx:03d}"
        self.rng = random.Random(f"{city.seed}:exchange:{idx}")
        self.x0, self.y0 = xy
        self.district = district
        self.street = street
        self.street_key = street_key
        n = city.street_count.get(street, 0) + 1
        city.street_count[street] = n
        short = re.sub(r"(镇街道|街道|镇)$", "", street)
        self.name = f"{short}局" if n == 1 else f"{short}{CN_NUM[n] if n <= 10 else n}局"
        self.target = per_exchange
        self.seqs: dict[str, int] = {}
        self.cable_lengths: dict[str, float] = {}

    # -- geometry ---------------------------------------------------------------------------

    def ll(self, x: float, y: float) -> tuple[float, float]:
        """Local metres (relative to the exchange) → (lon, lat), rounded to 7 decimals."""
        gx, gy = self.x0 + x, self.y0 + y
        lat = CENTRE[1] + gy / M_PER_DEG_LAT
        lon = CENTRE[0] + gx / (M_PER_DEG_LAT * math.cos(math.radians(CENTRE[1])))
        return (round(lon, 7), round(lat, 7))

    def lat_xy(self, ix: int, iy: int) -> tuple[float, float]:
        return (-self.R + ix * self.g, -self.R + iy * self.g)

    def lat_ll(self, ix: int, iy: int) -> tuple[float, float]:
        return self.ll(*self.lat_xy(ix, iy))

    def next(self, what: str) -> int:
        n = self.seqs.get(what, 0) + 1
        self.seqs[what] = n
        return n

    def route(self, a: tuple[int, int], b: tuple[int, int]) -> tuple[list[tuple[float, float]], list[str]]:
        """Along the roads from lattice point `a` (on a vertical road) to `b` (on a horizontal
        road): first along a's vertical road to b's row, then along that row. Returns the corner
        coordinates and the duct segment keys in order."""
        (ax, ay), (bx, by) = a, b
        segs: list[str] = []
        c = ax // self.k
        step = 1 if by >= ay else -1
        for iy in range(ay, by, step):
            segs.append(f"{self.E}-SV{c}_{min(iy, iy + step)}")
        r = by // self.k
        step = 1 if bx >= ax else -1
        for ix in range(ax, bx, step):
            segs.append(f"{self.E}-SH{r}_{min(ix, ix + step)}")
        coords = _dedupe([self.lat_ll(ax, ay), self.lat_ll(ax, by), self.lat_ll(bx, by)])
        return coords, segs

    # -- writing ------------------------------------------------------------------------------

    def cable(self, *, name: str, medium: str, stage: str, count: int, a_end: str, z_end: str,
              coords: list[tuple[float, float]], segs: list[str], conductor: float | None = None) -> str:
        key = f"{self.E}-K{self.next('cable')}"
        coords = _dedupe(coords)
        if len(coords) < 2:  # never a zero-length line
            x, y = coords[0]
            coords = [coords[0], (round(x + 0.00002, 7), y)]
        slack = 1.0 + self.rng.uniform(0.01, 0.04)
        length = round(_line_len(coords) * slack, 1)
        if medium == "copper":
            self.cable_lengths[key] = length
        self.w.write("cables", {
            "key": key, "local_network": LN_CODE, "name": name, "medium": medium, "stage": stage,
            "unit_count": count, "conductor_mm": conductor, "length_m": length,
            "a_end": a_end, "z_end": z_end, "route": _wkt_line(coords)})
        for seq, seg in enumerate(segs, 1):
            self.w.write("cable_spans", {"cable": key, "seq": seq, "duct_segment": seg})
        self.c.stats.cables += 1
        return key

    def conn(self, kind: str, a: str, z: str, container: str | None = None) -> None:
        self.w.write("connections", {"kind": kind, "a": a, "z": z, "container": container})

    def unit_attr(self, ref: str, **attrs: Any) -> None:
        self.w.write("units", {"unit": ref, **attrs})

    # -- the plan ------------------------------------------------------------------------------

    def build(self) -> int:
        """Generate and write the whole exchange area; returns the services written."""
        self.layout()
        self.space()
        self.infrastructure()
        self.customers_and_demand()
        self.fibre()
        self.copper()
        self.lan()
        self.numbers_and_services()
        return self.services_written

    def layout(self) -> None:
        rng = self.rng
        households = self.target / 1.03  # ≈ services per household over the mix below
        cells = max(4, round(households / 150))
        n = max(2, 2 * math.ceil(math.sqrt(cells) / 2))  # even: the exchange sits on a crossing
        self.n = n
        self.G = min(2 * HALF_SIDE_M / n, MAX_BLOCK_M)  # road spacing: city blocks of ≤ 450 m
        self.R = n * self.G / 2
        self.k = max(1, round(self.G / 110))
        self.g = self.G / self.k
        self.centre = (n // 2 * self.k, n // 2 * self.k)
        kinds = []
        for cj in range(n):
            for ci in range(n):
                r = rng.random()
                near = abs(ci + 0.5 - n / 2) <= 1 and abs(cj + 0.5 - n / 2) <= 1
                if r < 0.07:
                    kind = "empty"
                elif r < 0.15 or (near and r < 0.30):
                    kind = "office"
                elif r < 0.23:
                    kind = "copper"  # old quarter, no fibre yet
                elif r < 0.50:
                    kind = "fibre_new"
                else:
                    kind = "mixed"
                kinds.append(_Cell(ci, cj, kind))
        self.cells = kinds
        live = [c for c in kinds if c.kind != "empty"] or kinds
        self.hh_per_cell = households / len(live)
        self.roads_v = [self.c.road() for _ in range(n + 1)]
        self.roads_h = [self.c.road() for _ in range(n + 1)]

    def space(self) -> None:
        w, rng = self.w, self.rng
        ex_ll = self.ll(6.0, 8.0)
        self.site = f"{self.E}-SITE"
        self.site_ll = ex_ll
        road = self.roads_h[self.n // 2]
        w.write("sites", {"key": self.site, "local_network": LN_CODE, "name": self.name, "site_type": "exchange",
                          "area": self.street_key, "location": _wkt_point(ex_ll),
                          "address_text": f"{CITY}{self.district}{road}{rng.randint(1, 99) * 2}号"})
        stats = self.c.stats
        for cell in self.cells:
            if cell.kind == "empty":
                continue
            x0, y0 = self.lat_xy(cell.ci * self.k, cell.cj * self.k)
            office = cell.kind == "office"
            road = self.roads_h[cell.cj]
            number = str(cell.ci * 10 + rng.randint(1, 9))
            if office:
                floors_rng, units_rng, rooms_rng = (10, 30), (1, 1), (6, 10)
                cname = rng.choice(COMPOUND_WORDS) + rng.choice(OFFICE_SUFFIXES)
            elif cell.kind == "fibre_new":
                floors_rng, units_rng, rooms_rng = (18, 32), (1, 2), (2, 4)
                cname = rng.choice(COMPOUND_WORDS) + rng.choice(COMPOUND_SUFFIXES)
            else:
                floors_rng, units_rng, rooms_rng = (6, 9), (2, 4), (2, 2)
                cname = rng.choice(ROAD_WORDS) + rng.choice(OLD_SUFFIXES)
            mean = sum(floors_rng) / 2 * sum(units_rng) / 2 * sum(rooms_rng) / 2
            nb = max(1, min(36, round(self.hh_per_cell / mean * (1.6 if office else 1.0))))
            cols = math.ceil(math.sqrt(nb))
            rows = math.ceil(nb / cols)
            inner = self.G - 80
            pre = f"{CITY}{self.district}{road}{number}号{cname}"
            cell.take_up = rng.uniform(0.45, 0.85)
            cell.fill = rng.uniform(0.93, 1.0) if rng.random() < 0.07 else rng.uniform(0.5, 0.82)
            for b in range(nb):
                bx = x0 + 40 + inner * ((b % cols) + 0.5) / cols
                by = y0 + 40 + inner * ((b // cols) + 0.5) / rows
                b_ll = self.ll(bx, by)
                ix = min(max(round((bx + self.R) / self.g), 0), self.n * self.k)
                row = cell.cj if by - y0 < self.G / 2 else cell.cj + 1  # enter from the nearer road
                label = f"{'ABCDEFGHJK'[b % 10]}座" if office else f"{b + 1}栋"
                btext = pre + label
                bkey = f"{self.E}-A{self.next('addr')}"
                self._address(bkey, btext, road, number, label, "", "", "", b_ll, None)
                nu = rng.randint(*units_rng)
                floors = rng.randint(*floors_rng)
                per_floor = rng.randint(*rooms_rng)
                units = []
                for u in range(1, nu + 1):
                    u_xy = (bx + (u - (nu + 1) / 2) * 14.0, by + 6.0)
                    u_ll = self.ll(*u_xy)
                    ulabel = f"{u}单元" if not office else ""
                    if office:
                        ukey = bkey
                    else:
                        ukey = f"{self.E}-A{self.next('addr')}"
                        self._address(ukey, btext + ulabel, road, number, label, ulabel, "", "", u_ll, bkey)
                    rooms = []
                    for f in range(1, floors + 1):
                        for r in range(1, per_floor + 1):
                            room = f"{f}{r:02d}室"
                            rkey = f"{self.E}-A{self.next('addr')}"
                            rtext = btext + ulabel + room
                            self._address(rkey, rtext, road, number, label, ulabel, str(f), room, u_ll, ukey)
                            rooms.append(_Room(rkey, rtext, f))
                    units.append(_Unit(ukey, u_ll, rooms, b_ll if office else u_ll))
                cell.buildings.append(_Building(b_ll, (ix, row * self.k), units, office, bkey))
        stats.addresses += self.seqs.get("addr", 0)

    def _address(self, key: str, text: str, road: str, number: str, building: str, unit: str, floor: str,
                 room: str, point: tuple[float, float], parent: str | None) -> None:
        self.w.write("addresses", {
            "key": key, "local_network": LN_CODE, "name": text, "parent": parent, "area": self.street_key,
            "district": self.district,
            "road": road, "number": number, "building": building, "unit": unit, "floor": floor, "room": room,
            "search_key": search_key(text), "location": _wkt_point(point)})

    def infrastructure(self) -> None:
        """Manholes on every road every ~110 m, one duct per road, one segment per span."""
        w, E, n, k = self.w, self.E, self.n, self.k
        top = n * k
        for iy in range(top + 1):
            for ix in range(top + 1):
                if ix % k and iy % k:
                    continue
                w.write("manholes", {"key": f"{E}-M{ix}_{iy}", "local_network": LN_CODE,
                                     "name": f"{self.name}-人井{ix:02d}{iy:02d}", "location": _wkt_point(self.lat_ll(ix, iy))})
        for c in range(n + 1):
            for vertical in (True, False):
                road = (self.roads_v if vertical else self.roads_h)[c]
                dkey = f"{E}-D{'V' if vertical else 'H'}{c}"
                w.write("ducts", {"key": dkey, "local_network": LN_CODE, "name": f"{self.name}-{road}管道",
                                  "holes": 6 if c == n // 2 else 4})
                for i in range(top):
                    a, b = ((c * k, i), (c * k, i + 1)) if vertical else ((i, c * k), (i + 1, c * k))
                    coords = [self.lat_ll(*a), self.lat_ll(*b)]
                    skey = f"{E}-S{'V' if vertical else 'H'}{c}_{i}"
                    length = _line_len(coords)
                    w.write("duct_segments", {
                        "key": skey, "local_network": LN_CODE, "name": f"{i + 1:03d}", "duct": dkey,
                        "a_end": f"{E}-M{a[0]}_{a[1]}", "z_end": f"{E}-M{b[0]}_{b[1]}",
                        "length_m": round(length, 1), "route": _wkt_line(coords)})

    # -- demand ---------------------------------------------------------------------------------

    def customers_and_demand(self) -> None:
        """Decide who has what (products per room) before the plant is sized."""
        rng = self.rng
        for cell in self.cells:
            fibre = cell.kind in ("fibre_new", "mixed", "office")
            copper = cell.kind != "fibre_new"
            for b in cell.buildings:
                for unit in b.units:
                    for room in unit.rooms:
                        r = rng.random()
                        prods: list[str] = []
                        if b.office:
                            if r < 0.30:
                                prods = ["lan_broadband"] + (["pots"] if rng.random() < 0.5 else [])
                            elif r < 0.55:
                                prods = ["ftth_broadband"] + (["voip"] if rng.random() < 0.4 else [])
                            elif r < 0.75:
                                prods = ["pots"]
                        elif cell.kind == "copper":
                            if r < 0.32:
                                prods = ["pots"]
                            elif r < 0.58:
                                prods = ["dsl"]
                            elif r < 0.68:
                                prods = ["pots", "dsl"]
                        else:
                            t = cell.take_up
                            if r < t:
                                prods = ["ftth_broadband"]
                                if rng.random() < 0.45:
                                    prods.append("iptv")
                                if rng.random() < 0.22:
                                    prods.append("voip")
                                if copper and rng.random() < 0.06:
                                    prods.append("pots")
                            elif copper and r < t + 0.06:
                                prods = ["pots"]
                            elif copper and r < t + 0.09:
                                prods = ["dsl"]
                            elif fibre and t + 0.09 <= r < t + 0.095:
                                room.pending = "ftth_broadband"  # a new install in flight
                        if prods:
                            room.products = prods
                            g = rng.random()
                            if b.office:
                                room.grade = "major_account" if g < 0.25 else ("vip" if g < 0.35 else "normal")
                            else:
                                room.grade = "vip" if g < 0.015 else "normal"
                        elif copper and not room.pending and rng.random() < 0.004:
                            room.pending = "pots"

    # -- fibre ------------------------------------------------------------------------------------

    def fibre(self) -> None:
        w, rng, E = self.w, self.rng, self.E
        # ODF and OLT rows are written once we know how many PON ports the area needs; first the
        # outside plant per cluster of cells (2×2 around a crossing).
        self.ftth_path: dict[str, list[str]] = {}  # room address key → path (customer first), up to the 1st stage
        self.pending_paths: dict[str, list[str]] = {}
        clusters: dict[tuple[int, int], list[_Cell]] = {}
        for cell in self.cells:
            if cell.kind in ("fibre_new", "mixed", "office") and cell.buildings:
                clusters.setdefault((cell.ci // 2, cell.cj // 2), []).append(cell)
        self.odf_terms = 0
        # deferred exchange-side links: (feeder | direct, feeder core, capacity, XGS-PON?, 1st-stage in, services)
        self.fibre_links: list[tuple[str, str, int, bool, str, str]] = []
        for (qi, qj), cells in sorted(clusters.items()):
            cross = (min((2 * qi + 1) * self.k, self.n * self.k), min((2 * qj + 1) * self.k, self.n * self.k))
            cx, cy = self.lat_xy(*cross)
            at_exchange = math.hypot(cx, cy) < 900
            r1, r2 = (4, 16) if rng.random() < 0.6 else (8, 8)
            xgs = any(c.kind == "fibre_new" for c in cells) and rng.random() < 0.5
            # second-stage splitters, per building
            s2s: list[tuple[str, _Building, list[tuple[str, _Room]]]] = []  # (s2 key, building, outputs used)
            for cell in cells:
                for b in cell.buildings:
                    self._fats_and_s2(b, r2, s2s, cell.fill)
            if not s2s:
                continue
            if at_exchange:
                cab_site, cab_ll = self.site, self.site_ll
            else:
                cab_site = f"{E}-GJ{self.next('cab')}"
                cab_ll = self.ll(cx + 5, cy + 5)
                w.write("sites", {"key": cab_site, "local_network": LN_CODE,
                                  "name": f"{self.name}-光交{self.seqs['cab']:03d}", "site_type": "outdoor",
                                  "area": self.street_key, "location": _wkt_point(cab_ll)})
            groups = [s2s[i:i + r1] for i in range(0, len(s2s), r1)]
            protect = self.c.transport.protected(self, groups)  # type-B: a second input for VIP trees
            s1_keys = []
            for gi, _ in enumerate(groups):
                s1 = f"{E}-S1-{self.next('s1')}"
                tpl = f"SPLITTER-{2 if gi in protect else 1}:{r1}"
                w.write("devices", {"key": s1, "local_network": LN_CODE, "name": f"OBD1-{self.seqs['s1']:04d}",
                                    "device_type": "splitter", "site": cab_site, "template": tpl,
                                    "model": tpl, "technology": "PON", "split_ratio": r1,
                                    "split_stage": 1, "location": _wkt_point(cab_ll)})
                s1_keys.append(s1)
                self.unit_attr(f"{s1}#splitter_in#IN1", capacity=r1 * r2)
            if not at_exchange:
                # feeder: ODF at the exchange → cabinet, one core per first-stage splitter
                coords, segs = self.route(self.centre, cross)
                feeder = self.cable(name=f"{self.name}-GL{self.next('gl'):04d}", medium="fibre", stage="feeder",
                                    count=_std(STD_FIBRE, len(groups) + len(protect) + 2), a_end=self.site, z_end=cab_site,
                                    coords=[self.site_ll] + coords + [cab_ll], segs=segs)
            for gi, group in enumerate(groups):
                s1 = s1_keys[gi]
                s1_in = f"{s1}#splitter_in#IN1"
                if not at_exchange:
                    core = f"{feeder}#core#{gi + 1:03d}"
                    self.conn("splice", s1_in, core)
                    self.unit_attr(core, capacity=r1 * r2)
                    # core ↔ ODF terminal ↔ PON port come later (ODF numbering)
                    tail_up = [s1_in, core]
                    self.fibre_links.append(("feeder", core, r1 * r2, xgs, s1_in, ""))
                else:
                    tail_up = [s1_in]
                    self.fibre_links.append(("direct", "", r1 * r2, xgs, s1_in, ""))
                if gi in protect:
                    self.c.transport.protect_input(self, s1, None if at_exchange else feeder,
                                                   len(groups) + 1 + sorted(protect).index(gi), r1 * r2, xgs)
                link_index = len(self.fibre_links) - 1
                used_total = 0
                for oi, (s2, b, outs) in enumerate(group, 1):
                    s1_out = f"{s1}#splitter_out#OUT{oi}"
                    s2_in = f"{s2}#splitter_in#IN1"
                    self.unit_attr(s1_out, capacity=r2)
                    b_lat = b.entry
                    if at_exchange:
                        # feeder straight from the ODF to the building; 1st stage sits at the exchange
                        coords, segs = self.route(self.centre, b_lat)
                        dist = self.cable(name=f"{self.name}-GL{self.next('gl'):04d}", medium="fibre", stage="feeder",
                                          count=12, a_end=self.site, z_end=s2, coords=[self.site_ll] + coords + [b.point],
                                          segs=segs)
                        core = f"{dist}#core#001"
                        self.unit_attr(core, capacity=r2)
                        self.conn("splice", s2_in, core)
                        term = self._odf_term(r2)
                        self.conn("fixed", core, term)
                        self.conn("patch", term, s1_out)
                        mid = [s2_in, core, term, s1_out]
                    else:
                        coords, segs = self.route(cross, b_lat)
                        dist = self.cable(name=f"{self.name}-GL{self.next('gl'):04d}", medium="fibre",
                                          stage="distribution", count=12, a_end=cab_site, z_end=s2,
                                          coords=[cab_ll] + coords + [b.point], segs=segs)
                        core = f"{dist}#core#001"
                        self.unit_attr(core, capacity=r2)
                        self.conn("splice", s2_in, core)
                        self.conn("splice", core, s1_out)
                        mid = [s2_in, core, s1_out]
                    for head, room in outs:
                        path = head + mid + tail_up
                        if room.products and "ftth_broadband" in room.products:
                            self.ftth_path[room.address] = path
                            used_total += 1
                        elif room.pending == "ftth_broadband":
                            self.pending_paths[room.address] = path
                            used_total += 1
                self.fibre_links[link_index] = self.fibre_links[link_index][:5] + (str(used_total),)
        self._olts_and_odf()

    def _fats_and_s2(self, b: _Building, r2: int, s2s: list, fill: float) -> None:
        """FATs on each unit (by floor band), second-stage splitters at the building entrance,
        in-building distribution cables s2 → FAT; appends (s2, building, [(path head, room)]).
        Splitters are sized as a planner would: the FTTH demand over a target fill, so only
        that many FAT ports are wired to a splitter output (the rest wait for expansion)."""
        w, E, rng = self.w, self.E, self.rng
        bands: list[tuple[_Unit, list[_Room], int]] = []
        for unit in b.units:
            rooms = unit.rooms
            for i in range(0, len(rooms), 24):
                band = rooms[i:i + 24]
                bands.append((unit, band, next(s for s in (8, 16, 24) if s >= len(band))))
        def wants(room: _Room) -> bool:
            return "ftth_broadband" in room.products or room.pending == "ftth_broadband"
        demand = sum(1 for _, band, _ in bands for r in band if wants(r))
        total = sum(size for _, _, size in bands)
        outputs = min(total, math.ceil(demand / fill)) if demand else 0
        s2_keys = [f"{E}-S2-{self.next('s2')}" for _ in range(math.ceil(outputs / r2))]
        for s2 in s2_keys:
            w.write("devices", {"key": s2, "local_network": LN_CODE, "name": f"{self.name}-OBD2-{s2.rsplit('-', 1)[1]:0>5}",
                                "device_type": "splitter", "template": f"SPLITTER-1:{r2}", "model": f"SPLITTER-1:{r2}",
                                "technology": "PON", "split_ratio": r2, "split_stage": 2,
                                "location": _wkt_point(b.point)})
        spare = len(s2_keys) * r2 - demand  # idle ports wired to an output, first come
        outs: list[list] = [[] for _ in s2_keys]
        g = 0  # next splitter output in the building
        for unit, band, size in bands:
            fat = f"{E}-B{self.next('fat')}"
            fat_ll = (unit.point[0], round(unit.point[1] + 0.00002 * len(unit.fats), 7))
            w.write("distribution_boxes", {
                "key": fat, "local_network": LN_CODE, "name": f"{self.name}-GFX{self.seqs['fat']:04d}",
                "medium": "fibre", "capacity": size, "template": f"FAT-{size}", "location": _wkt_point(fat_ll)})
            self.c.stats.fats += 1
            unit.fats.append((fat, size, band[0].floor, band[-1].floor))
            # Coverage at the unit (an office's: its building), as operators keep it; its rooms
            # inherit it down the address tree (resource_mgr/addresses/serving.py).
            w.write("coverage", {"box": fat, "address": unit.address,
                                 "distance_m": round(_haversine(*fat_ll, *unit.address_point), 1)})
            feed = s2_keys[min(g // r2, len(s2_keys) - 1)] if s2_keys else None
            riser = self.cable(name=f"{self.name}-GL{self.next('gl'):04d}", medium="fibre", stage="distribution",
                               count=size, a_end=feed, z_end=fat, coords=[b.point, fat_ll], segs=[])
            for p in range(1, size + 1):
                port = f"{fat}#box_port#{p:02d}"
                core = f"{riser}#core#{p:03d}"
                self.conn("fixed", port, core)
                room = band[p - 1] if p <= len(band) else None
                if room is not None and wants(room) or (spare > 0 and g < len(s2_keys) * r2):
                    if not (room is not None and wants(room)):
                        spare -= 1
                    out = f"{s2_keys[g // r2]}#splitter_out#OUT{g % r2 + 1}"
                    g += 1
                    self.conn("splice", core, out)
                    if room is not None and wants(room):
                        outs[(g - 1) // r2].append(([port, core, out], room))
                elif rng.random() < 0.01:
                    self.unit_attr(rng.choice((port, core)), admin_state=AdminState.FAULTY.value, admin_reason=rng.choice(FAULTS))
                    self.c.stats.faulty_units += 1
        for s2, o in zip(s2_keys, outs):
            s2s.append((s2, b, o))

    def _odf_term(self, capacity: int) -> str:
        self.odf_terms += 1
        t = self.odf_terms
        ref = f"{self.E}-ODF{(t - 1) // 576 + 1}#terminal#line-{(t - 1) % 576 + 1:04d}"
        if capacity > 1:
            self.unit_attr(ref, capacity=capacity)
        return ref

    def _olts_and_odf(self) -> None:
        """PON ports for every first-stage splitter; ODF terminals for every feeder core."""
        w, E = self.w, self.E
        stats = self.c.stats
        self.pon_of: dict[str, str] = {}
        self.feeder_term: dict[str, str] = {}
        olts: dict[bool, list[str]] = {False: [], True: []}
        free_ports: dict[bool, list[str]] = {False: [], True: []}
        for kind, core, cap, xgs, s1_in, used in self.fibre_links:
            if not free_ports[xgs]:
                tpl = "OLT-XGSPON-17x8" if xgs else "OLT-GPON-17x16"
                okey = f"{E}-OLT{self.next('olt')}"
                w.write("devices", {"key": okey, "local_network": LN_CODE, "name": f"{self.name}-OLT{self.seqs['olt']:02d}",
                                    "device_type": "olt", "site": self.site, "template": tpl, "vendor": "华为",
                                    "model": "MA5800-X17", "technology": "XGS-PON" if xgs else "GPON",
                                    "management_ip": f"10.{75 + self.idx // 250}.{self.idx % 250}.{self.seqs['olt']}",
                                    "location": _wkt_point(self.site_ll)})
                stats.olts += 1
                self.c.transport.head(self, okey, "olt", tpl)
                olts[xgs].append(okey)
                free_ports[xgs] = [f"{okey}#pon_port#{p}" for p in _olt_ports(tpl)][::-1]
            pon = free_ports[xgs].pop()
            self.pon_of[s1_in] = pon
            n = int(used or 0)
            stats.pon_ports_used += 1
            stats.pon_fill[min(10, n * 10 // 64)] += 1
            if kind == "feeder":
                term = self._odf_term(cap)
                self.conn("fixed", core, term)
                self.conn("patch", term, pon)
                self.feeder_term[core] = term
            else:
                self.conn("patch", s1_in, pon)
        self.c.transport.wire_protection(self, free_ports)
        for i in range(max(1, math.ceil(self.odf_terms / 576))):
            w.write("frames", {"key": f"{E}-ODF{i + 1}", "local_network": LN_CODE, "name": f"{self.name}-ODF{i + 1:02d}",
                               "frame_type": "odf", "site": self.site, "template": "ODF-576"})

    def ftth_full_path(self, path: list[str]) -> list[str]:
        """Complete a path that ends at the first-stage splitter side with the exchange hops."""
        last = path[-1]
        if "#splitter_in#" in last:  # 1st stage at the exchange: … s1 in → PON port
            return path + [self.pon_of[last]]
        s1_in = path[-2]
        return path + [self.feeder_term[last], self.pon_of[s1_in]]

    # -- copper -----------------------------------------------------------------------------------

    def copper(self) -> None:
        E = self.E
        self.copper_pending: dict[str, list[str]] = {}
        clusters: dict[tuple[int, int], list[_Cell]] = {}
        for cell in self.cells:
            if cell.kind != "fibre_new" and cell.buildings:
                clusters.setdefault((cell.ci // 2, cell.cj // 2), []).append(cell)
        self.line_terms = 0
        self.mdf_jumpers: list[tuple[str, str, str]] = []
        self.lines_by_tech: dict[str, list[tuple[str, list[str], _Room]]] = {"pots": [], "adsl": [], "vdsl": []}
        for (qi, qj), cells in sorted(clusters.items()):
            cross = (min((2 * qi + 1) * self.k, self.n * self.k), min((2 * qj + 1) * self.k, self.n * self.k))
            cx, cy = self.lat_xy(*cross)
            # copper boxes per unit, 10/20/30 pairs, for about half of the rooms
            boxes: list[tuple[str, int, _Unit, list[_Room], _Building]] = []
            for cell in cells:
                for b in cell.buildings:
                    for unit in b.units:
                        need = math.ceil(len(unit.rooms) * (0.6 if cell.kind == "copper" else 0.35))
                        rooms = unit.rooms
                        nbox = math.ceil(need / 30)
                        per = math.ceil(len(rooms) / nbox)
                        for i in range(nbox):
                            band = rooms[i * per:(i + 1) * per]
                            want = sum(1 for r in band if {"pots", "dsl"} & set(r.products) or r.pending == "pots")
                            want += sum(1 for r in band if r.products.count("dsl") and "pots" in r.products)
                            size = next(s for s in (10, 20, 30) if s >= min(30, max(want + 2, math.ceil(len(band) * 0.35))))
                            boxes.append((f"{E}-Q{self.next('cbox')}", size, unit, band, b))
            if not boxes:
                continue
            # cross boxes: ≤ 1200 distribution terminals and ≤ 550 working lines each
            chunks: list[list] = [[]]
            pairs = lines = 0
            for box in boxes:
                blines = sum(len([p for p in r.products if p in ("pots", "dsl")]) + (r.pending == "pots") for r in box[3])
                if chunks[-1] and (pairs + box[1] > 1200 or lines + blines > 550):
                    chunks.append([])
                    pairs = lines = 0
                chunks[-1].append(box)
                pairs += box[1]
                lines += blines
            for ci_, chunk in enumerate(chunks):
                self._cross_box(chunk, cross, (cx + 4 - 8 * ci_, cy - 5))

    def _cross_box(self, boxes: list, cross: tuple[int, int], xy: tuple[float, float]) -> None:
        w, rng, E = self.w, self.rng, self.E
        stats = self.c.stats
        dist_pairs = sum(b[1] for b in boxes)
        lines_needed = sum(len([p for p in r.products if p in ("pots", "dsl")]) + (r.pending == "pots")
                           for b in boxes for r in b[3])
        size = next((s for s in (300, 600, 1200) if s >= dist_pairs and s // 2 >= lines_needed), 1200)
        jkey = f"{E}-J{self.next('cb')}"
        cb_ll = self.ll(*xy)
        w.write("cross_boxes", {"key": jkey, "local_network": LN_CODE, "name": f"{self.name}-JJX{self.seqs['cb']:03d}",
                                "capacity_pairs": size, "template": f"CROSS-BOX-{size}", "location": _wkt_point(cb_ll)})
        stats.cross_boxes += 1
        feeder_terms = size // 2
        ppairs = min(feeder_terms, _std(STD_PRIMARY, math.ceil(lines_needed * 1.4) + 20))
        if ppairs < lines_needed:
            ppairs = feeder_terms
        coords, segs = self.route(self.centre, cross)
        primary = self.cable(name=f"{self.name}-DL{self.next('dl'):04d}", medium="copper", stage="primary",
                             count=ppairs, conductor=0.4, a_end=f"{E}-MDF{self.line_terms // 2000 + 1}", z_end=jkey,
                             coords=[self.site_ll] + coords + [cb_ll], segs=segs)
        feeder = []  # (feeder terminal, primary pair, MDF line terminal), the pairs this box can use
        for p in range(1, ppairs + 1):
            self.line_terms += 1
            t = self.line_terms
            lt = f"{E}-MDF{(t - 1) // 2000 + 1}#terminal#line-{(t - 1) % 2000 + 1:04d}"
            ft = f"{jkey}#terminal#feeder-{p:04d}"
            pr = f"{primary}#pair#{p:04d}"
            self.conn("fixed", ft, pr)
            self.conn("fixed", pr, lt)
            feeder.append((ft, pr, lt))
        # faulty primary pairs are never given to a line
        faulty = set()
        for i in range(len(feeder)):
            if rng.random() < 0.006:
                faulty.add(i)
                self.unit_attr(feeder[i][1], admin_state=AdminState.FAULTY.value, admin_reason=rng.choice(FAULTS))
                self.c.stats.faulty_units += 1
        free_feeder = [f for i, f in enumerate(feeder) if i not in faulty][::-1]
        dterm = 0
        for bkey, bsize, unit, band, b in boxes:
            box_ll = (round(unit.point[0] + 0.000015, 7), unit.point[1])
            w.write("distribution_boxes", {
                "key": bkey, "local_network": LN_CODE, "name": f"{self.name}-FXH{int(bkey.split('-Q')[1]):04d}",
                "medium": "copper", "capacity": bsize, "template": f"DIST-BOX-{bsize}", "location": _wkt_point(box_ll)})
            stats.copper_boxes += 1
            w.write("coverage", {"box": bkey, "address": unit.address,
                                 "distance_m": round(_haversine(*box_ll, *unit.address_point), 1)})
            coords, segs = self.route(cross, b.entry)
            dcab = self.cable(name=f"{self.name}-DL{self.next('dl'):04d}", medium="copper", stage="distribution",
                              count=bsize, conductor=0.4, a_end=jkey, z_end=bkey,
                              coords=[cb_ll] + coords + [b.point, box_ll], segs=segs)
            ports = []
            for p in range(1, bsize + 1):
                dterm += 1
                port = f"{bkey}#box_port#{p:02d}"
                pair = f"{dcab}#pair#{p:04d}"
                dt = f"{jkey}#terminal#distribution-{dterm:04d}"
                self.conn("fixed", port, pair)
                self.conn("fixed", pair, dt)
                ports.append((port, pair, dt))
            ports.reverse()
            for room in band:
                wanted = [p for p in room.products if p in ("pots", "dsl")]
                if room.pending == "pots":
                    wanted.append("pending")
                for prod in wanted:
                    if not ports or not free_feeder:
                        break
                    port, pair, dt = ports.pop()
                    ft, pr, lt = free_feeder.pop()
                    self.conn("jumper", dt, ft, jkey)
                    path = [port, pair, dt, ft, pr, lt]
                    if prod == "pending":
                        self.copper_pending[room.address] = path
                        continue
                    tech = "pots"
                    if prod == "dsl":
                        tech = "vdsl" if self._loop_m(primary, dcab) <= 1500 and rng.random() < 0.6 else "adsl"
                    self.lines_by_tech[tech].append((room.address, path, room))
            for port, pair, dt in ports:  # some idle ports and pairs are faulty
                if rng.random() < 0.01:
                    self.unit_attr(rng.choice((port, pair)), admin_state=AdminState.FAULTY.value, admin_reason=rng.choice(FAULTS))
                    stats.faulty_units += 1

    def _loop_m(self, primary: str, dist: str) -> float:
        return self.cable_lengths.get(primary, 0.0) + self.cable_lengths.get(dist, 0.0)

    def lan(self) -> None:
        """A LAN switch in every office building; LAN services take its ports."""
        w, E = self.w, self.E
        self.lan_ports: dict[str, str] = {}
        for cell in self.cells:
            for b in cell.buildings:
                if not b.office:
                    continue
                want = [r for u in b.units for r in u.rooms if "lan_broadband" in r.products]
                if not want:
                    continue
                for i in range(0, len(want), 44):
                    sw = f"{E}-LAN{self.next('lan')}"
                    w.write("devices", {"key": sw, "local_network": LN_CODE, "name": f"{self.name}-LAN{self.seqs['lan']:03d}",
                                        "device_type": "lan_switch", "template": "LAN-SWITCH-48", "vendor": "华为",
                                        "model": "S5735", "technology": "LAN", "location": _wkt_point(b.point),
                                        "management_ip": self.c.transport.ip(self.idx)})
                    self.c.transport.head(self, sw, "lan_switch", "LAN-SWITCH-48", b)
                    for p, room in enumerate(want[i:i + 44], 1):
                        self.lan_ports[room.address] = f"{sw}#eth_port#GE{p}"

    # -- equipment, numbers and services ---------------------------------------------------------------

    def numbers_and_services(self) -> None:
        w, rng, E, c = self.w, self.rng, self.E, self.c
        stats = c.stats
        seg = c.p.segment_size
        # equipment on the MDF equipment side: switch line ports, ADSL and VDSL ports
        equipment: dict[str, list[str]] = {}
        plan = (("pots", "PSTN-SWITCH-20x128", "pstn_switch", "SW", "line_port", 0.85),
                ("adsl", "DSLAM-ADSL-16x64", "dslam", "DSLAM", "dsl_port", 0.8),
                ("vdsl", "DSLAM-VDSL-8x48", "dslam", "VDSL", "dsl_port", 0.8))
        eq_terms = 0
        eq_term_of: dict[str, str] = {}
        for tech, tpl, dtype, label, ukind, fill in plan:
            need = len(self.lines_by_tech[tech])
            spec = TEMPLATES[tpl][2]["cards"][0]
            per = len(spec["slots"]) * spec["ports"][0]["count"]
            count = math.ceil(need / (per * fill)) if need else (1 if tech == "pots" else 0)
            ports: list[str] = []
            for i in range(count):
                dkey = f"{E}-{label}{i + 1}"
                w.write("devices", {"key": dkey, "local_network": LN_CODE, "name": f"{self.name}-{label}{i + 1:02d}",
                                    "device_type": dtype, "site": self.site, "template": tpl, "vendor": "中兴",
                                    "model": tpl, "technology": TEMPLATES[tpl][2]["technology"],
                                    "location": _wkt_point(self.site_ll), "management_ip": self.c.transport.ip(self.idx)})
                self.c.transport.head(self, dkey, dtype, tpl)
                for pname in [f"{s}/{p}" for s in spec["slots"] for p in range(1, spec["ports"][0]["count"] + 1)]:
                    eq_terms += 1
                    port = f"{dkey}#{ukind}#{pname}"
                    et = f"{E}-MDF{(eq_terms - 1) // 2000 + 1}#terminal#equipment-{(eq_terms - 1) % 2000 + 1:04d}"
                    self.conn("fixed", et, port)
                    eq_term_of[port] = et
                    ports.append(port)
            equipment[tech] = ports
        if tech_count := max(eq_terms, self.line_terms):
            for i in range(math.ceil(tech_count / 2000)):
                w.write("frames", {"key": f"{E}-MDF{i + 1}", "local_network": LN_CODE, "name": f"{self.name}-MDF{i + 1:02d}",
                                   "frame_type": "mdf", "site": self.site, "template": "MDF-2000"})
        # numbers: the exchange's PSTN block and its block on the city softswitch
        pstn = f"{E}-SW1"
        pool = f"{E}-NP"
        w.write("number_pools", {"key": pool, "local_network": LN_CODE, "name": f"{self.name}-PSTN号池", "switch": pstn,
                                 "quarantine_days": 90})
        blocks = {}
        for pkey, code in ((pool, c.pstn_codes[self.idx]), ("NGN-NP", c.ngn_codes[self.idx])):
            first = int(code + "0000")
            w.write("number_segments", {"key": f"{E}-NS{code}", "pool": pkey, "first": f"{first:08d}",
                                        "last": f"{first + seg - 1:08d}"})
            stats.numbers += seg
            nums = [f"{first + i:08d}" for i in range(seg)]
            blocks[pkey] = nums
        choosers = {p: self._number_chooser(p, nums) for p, nums in blocks.items()}
        # services
        self.services_written = 0
        svc_n = 0
        cust: dict[str, str] = {}

        def customer(room: _Room) -> str:
            key = cust.get(room.address)
            if key is None:
                key = f"C{self.idx:03d}{len(cust) + 1:06d}"
                cust[room.address] = key
                if room.grade == "major_account" or (room.grade != "normal" and "lan_broadband" in room.products):
                    name = f"佛山市{rng.choice(COMPOUND_WORDS)}{rng.choice(INDUSTRIES)}有限公司"
                else:
                    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
                w.write("customers", {"key": key, "local_network": LN_CODE, "name": name, "grade": room.grade})
                stats.customers += 1
            return key

        def service(room: _Room, product: str, tech: str, path: list[str], number: str | None = None,
                    bearer: str | None = None) -> str:
            nonlocal svc_n
            svc_n += 1
            key = f"SV{self.idx:03d}{svc_n:06d}"
            created = self.c.as_of - timedelta(days=rng.randint(20, 3650), minutes=rng.randint(0, 1439))
            w.write("services", {"key": key, "local_network": LN_CODE, "product": product, "technology": tech,
                                 "customer": customer(room), "address": room.address, "number": number,
                                 "order_ref": f"BSS{created:%Y%m%d}{self.idx:03d}{svc_n:06d}",
                                 "created_at": _iso(created), "bearer": bearer})
            for seq, unit in enumerate(path, 1):
                w.write("service_paths", {"service": key, "seq": seq, "unit": unit})
            stats.by_product[product] = stats.by_product.get(product, 0) + 1
            self.services_written += 1
            return key

        for cell in self.cells:
            for b in cell.buildings:
                for unit in b.units:
                    for room in unit.rooms:
                        if room.address in self.ftth_path:
                            path = self.ftth_full_path(self.ftth_path[room.address])
                            line = service(room, "ftth_broadband", "FTTH", path)
                            if "iptv" in room.products:
                                service(room, "iptv", "FTTH", [], bearer=line)
                            if "voip" in room.products:
                                service(room, "voip", "FTTH", [], choosers["NGN-NP"](room), bearer=line)
                        if room.address in self.lan_ports:
                            service(room, "lan_broadband", "LAN", [self.lan_ports[room.address]])
                        if room.address in self.pending_paths:
                            self._preoccupy(self.ftth_full_path(self.pending_paths[room.address]))
                        if room.address in self.copper_pending:
                            path = self.copper_pending[room.address]
                            et = self._mdf_take(equipment["pots"], path, eq_term_of)
                            if et:
                                self._preoccupy(path + et + [f"{pool}#number#{choosers[pool](room)}"])
        for tech, product, technology in (("pots", "pots", "POTS"), ("adsl", "adsl_broadband", "ADSL"),
                                          ("vdsl", "vdsl_broadband", "VDSL")):
            for address, path, room in self.lines_by_tech[tech]:
                tail = self._mdf_take(equipment[tech], path, eq_term_of)
                if not tail:
                    continue
                number = choosers[pool](room) if tech == "pots" else None
                service(room, product, technology, path + tail, number)
        for pkey, nums in blocks.items():
            self._number_states(pkey, nums)

    def _mdf_take(self, ports: list[str], path: list[str], eq_term_of: dict[str, str]) -> list[str]:
        """Jumper the line terminal to the next free equipment terminal; [equipment terminal, port]."""
        if not hasattr(self, "_eq_next"):
            self._eq_next: dict[int, int] = {}
        i = self._eq_next.get(id(ports), 0)
        if i >= len(ports):
            return []
        self._eq_next[id(ports)] = i + 1
        port = ports[i]
        et = eq_term_of[port]
        lt = path[-1]
        mdf = lt.split("#", 1)[0]
        self.conn("jumper", lt, et, mdf)
        return [et, port]

    def _preoccupy(self, path: list[str]) -> None:
        res = f"R{self.idx:03d}{self.next('res'):06d}"
        until = _iso(self.c.as_of + timedelta(hours=self.rng.randint(2, 72)))
        for unit in path:
            self.w.write("preoccupations", {"unit": unit, "reservation": res, "until": until})
        self.c.stats.preoccupied_orders += 1

    def _number_chooser(self, pool: str, nums: list[str]) -> Callable[[_Room], str]:
        """Numbers for new services: plain ones at random for normal customers, golden ones
        (grade level ≥ 3) for VIPs and major accounts. Remembers what it gave out."""
        rng = random.Random(f"{self.c.seed}:numbers:{pool}")
        order = list(range(len(nums)))
        rng.shuffle(order)
        taken: set[int] = set()
        self._taken = getattr(self, "_taken", {})
        self._taken[pool] = taken
        state = {"plain": 0, "gold": 0}
        gold = [i for i in order if self.c.golden(nums[i])]

        def choose(room: _Room) -> str:
            if room.grade != "normal" and state["gold"] < len(gold):
                while state["gold"] < len(gold):
                    i = gold[state["gold"]]
                    state["gold"] += 1
                    if i not in taken:
                        taken.add(i)
                        return nums[i]
            while True:
                i = order[state["plain"] % len(order)]
                state["plain"] += 1
                if i in taken:
                    continue
                if self.c.golden(nums[i]) and state["plain"] < len(order):
                    continue
                taken.add(i)
                return nums[i]
        return choose

    def _number_states(self, pool: str, nums: list[str]) -> None:
        """Golden numbers not yet sold are reserved; some free numbers are in quarantine."""
        rng = random.Random(f"{self.c.seed}:numstate:{pool}")
        taken = self._taken.get(pool, set())
        for i, n in enumerate(nums):
            if i in taken:
                continue
            if n[-4] == n[-3] == n[-2] == n[-1]:  # AAAA and better: held back by the business office
                g = self.c.grade(n)
                if g[1] >= 6:
                    self.w.write("numbers", {"number": n, "admin_state": AdminState.RESERVED.value, "admin_reason": "靓号预留"})
                    continue
            if rng.random() < 0.03:
                until = self.c.as_of + timedelta(days=rng.randint(1, 89))
                self.w.write("numbers", {"number": n, "quarantine_until": _iso(until)})


# -- entry points ------------------------------------------------------------------------------

def _exchange_positions(count: int, rng: random.Random) -> list[tuple[float, float]]:
    m = math.ceil(math.sqrt(count))
    pos = []
    for i in range(count):
        gx, gy = i % m, i // m
        pos.append(((gx - (m - 1) / 2) * EXCHANGE_SPACING_M + rng.uniform(-300, 300),
                    (gy - (m - 1) / 2) * EXCHANGE_SPACING_M + rng.uniform(-300, 300)))
    # the central exchanges first, so that a small city is the city centre
    return sorted(pos, key=lambda p: (round(math.hypot(*p)), p))


def _district_of(xy: tuple[float, float]) -> int:
    kx = M_PER_DEG_LAT * math.cos(math.radians(CENTRE[1]))
    best, best_d = 0, float("inf")
    for i, (_, (lon, lat), _) in enumerate(DISTRICTS):
        d = math.hypot((lon - CENTRE[0]) * kx - xy[0], (lat - CENTRE[1]) * M_PER_DEG_LAT - xy[1])
        if d < best_d:
            best, best_d = i, d
    return best


def generate(size: str, seed: int, out_dir: Path, progress: Callable[[int, int], None] | None = None,
             *, as_of: datetime = AS_OF) -> Stats:
    """Write a city network of the given size (XS, S, M, L) to `out_dir` as a bulk bundle.
    `progress(done, total)` is called with services written so far. Returns what was made."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    profile = SIZES[size]
    t0 = time.perf_counter()
    stats = Stats(size=size, seed=seed)
    out_dir = Path(out_dir)
    with BundleWriter(out_dir) as w:
        city = _City(profile, seed, w, as_of)
        city.stats = stats
        city.transport = Transport(city)
        w.write("local_networks", {"code": LN_CODE, "name": LN_NAME, "area_code": AREA_CODE, "province": PROVINCE})
        for name, kind, dtype, spec in DEFAULT_TEMPLATES:  # reused when the database has them
            w.write("templates", {"name": name, "resource_kind": kind, "device_type": dtype, "spec": spec})
        # area tree: city → districts → streets (only those with an exchange)
        rng = random.Random(f"{seed}:layout")
        positions = _exchange_positions(profile.exchanges, rng)
        w.write("areas", {"key": "AR-FS", "local_network": LN_CODE, "name": CITY, "level": "local_network",
                          "code": LN_CODE})
        plan = []
        districts_written: set[int] = set()
        street_next: dict[int, int] = {}
        street_keys: dict[str, str] = {}
        for i, xy in enumerate(positions):
            d = _district_of(xy)
            dname, _, streets = DISTRICTS[d]
            if d not in districts_written:
                w.write("areas", {"key": f"AR-D{d}", "local_network": LN_CODE, "name": dname, "level": "district",
                                  "code": f"4406{d + 4:02d}", "parent": "AR-FS"})
                districts_written.add(d)
            s = street_next.get(d, 0)
            street_next[d] = s + 1
            sname = streets[s % len(streets)]
            skey = f"AR-D{d}-S{s % len(streets)}"
            if skey not in street_keys:
                street_keys[skey] = sname
                w.write("areas", {"key": skey, "local_network": LN_CODE, "name": sname, "level": "street",
                                  "code": f"4406{d + 4:02d}{s % len(streets) + 1:03d}", "parent": f"AR-D{d}"})
            plan.append((i, xy, dname, sname, skey))
        # the city NGN softswitch (VoIP numbers) at the first exchange
        w.write("devices", {"key": "NGN-SS", "local_network": LN_CODE, "name": "佛山NGN软交换01",
                            "device_type": "ngn_softswitch", "site": "X000-SITE", "template": "NGN-SOFTSWITCH",
                            "vendor": "华为", "model": "SoftX3000", "technology": "NGN",
                            "management_ip": city.transport.ip(0)})
        w.write("number_pools", {"key": "NGN-NP", "local_network": LN_CODE, "name": "佛山NGN号池",
                                 "switch": "NGN-SS", "quarantine_days": 90})
        per = profile.services / profile.exchanges
        done = 0
        for i, xy, dname, sname, skey in plan:
            ex = _Exchange(city, i, xy, dname, sname, skey, per)
            done += ex.build()
            city.transport.finish_exchange(ex)  # aggregation nodes and homing (generator_transport.py)
            stats.exchanges += 1
            if progress:
                progress(done, profile.services)
        stats.services = done
        stats.transport = city.transport.finish_city()  # the core pair and the aggregation rings
        stats.rows = dict(w.counts)
    stats.seconds = round(time.perf_counter() - t0, 2)
    return stats


def generate_demo(out_dir: Path, *, seed: int = 1, as_of: datetime | None = None) -> Stats:
    """The demo network (`rmgr demo`): size S, pre-occupations live from `as_of` (default now)."""
    return generate("S", seed, out_dir, as_of=as_of or datetime.now(timezone.utc).replace(microsecond=0))
