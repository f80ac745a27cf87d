"""The bulk data format (a "bundle"): one CSV file per kind, declared here once.

A bundle is a directory (or a .zip / .tar / .tar.gz of one) holding `manifest.json` and the CSV
files declared in `FILES`, in this order. References point backwards: a row may only refer to rows of files before its
own, or to earlier rows of its own file (parents first; sorted keys do that). Resource keys are
one name space: a `resource` reference may name a resource of any earlier resource file.
docs/data-format.md describes every file and column for people; this module is what the code
(importer, exporter, generator) reads.

Conventions (see docs/data-format.md for the long version):

- CSV, UTF-8, comma separated, `\\n` line ends, a header row with the column names, quoting only
  where needed (Python `csv` minimal quoting). Columns may come in any order; unknown columns are
  an error; optional columns may be left out.
- An empty cell is "no value": the column's default, or NULL.
- References use stable external keys, never database ids:
  * local networks by `code`, templates by `name`, customers by their BSS `key` (external ref,
    unique within a local network), services by `key`;
  * resources (areas, sites, addresses, manholes, poles, ducts, duct segments, devices, frames,
    cables, cross boxes, distribution boxes, number pools, number segments) by `key`: any string,
    unique across ALL resource files of the bundle (exports write `<ln>/<kind>:<name>` for a
    top-level resource and `<parent key>/<kind>:<name>` for one with a parent);
  * units by `<root key>#<unit kind>#<unit name>` where the root is the device, frame, cross box,
    distribution box, cable or number pool the unit belongs to (a PON port `.../device:X-OLT01#pon_port#1/3`,
    a pair `<cable key>#pair#0001`, a number `<pool key>#number#87650000`). Unit names must be
    unique per (root, kind).
- Units are NOT listed one by one: a device / cross box / distribution box / frame with a
  `template` (and `units` = `template`) gets the template's cards and ports, named by the local
  network's naming rules; a cable gets pairs or cores 1..unit_count; a number segment gets every
  number first..last (graded by the default grade rules). `units.csv` lists only units whose
  attributes are not the derived default (capacity, admin state, ...) and the units of owners
  with `units` = `listed`. Occupancy is never written on a unit: it follows from the services'
  paths (occupied; a shared unit's `used` = number of active services through it) and from
  `preoccupations.csv` (pre-occupied).
- Geometry: WKT in lon/lat (SRID 4326), e.g. `POINT (113.26 23.13)`; exports round to 7 decimals.
- Times: ISO 8601 with offset (exports write UTC `+00:00`). Booleans `true` / `false`.
  JSON columns: compact JSON (exports sort keys).
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry.base import BaseGeometry

from resource_mgr.states import AdminState, CustomerGrade, Product, ResourceStatus, ServiceState, Technology

FORMAT_NAME = "rmgr-bulk"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# -- enumerations (kept in step with the domain modules) ------------------------------------------

LEVELS = ("province", "local_network", "district", "street")
SITE_TYPES = ("exchange", "machine_room", "outdoor")
STATUSES = tuple(s.value for s in ResourceStatus)
DEVICE_TYPES = ("pstn_switch", "ngn_softswitch", "access_gateway", "dslam", "olt", "splitter", "lan_switch", "ont",
                "aggregation_switch", "bras", "core_router")
# the transport layer: devices made only of uplink ports, passing traffic between any two of them
TRANSPORT_DEVICE_TYPES = ("aggregation_switch", "bras", "core_router")
TEMPLATE_KINDS = ("device", "cross_box", "distribution_box", "frame")
FRAME_TYPES = ("mdf", "odf")
MEDIA = ("copper", "fibre")
CABLE_STAGES = ("primary", "feeder", "distribution", "drop", "trunk")  # trunk: between two sites
UNIT_MODES = ("template", "listed")
UNIT_KINDS = ("pon_port", "dsl_port", "line_port", "eth_port", "ont_port", "splitter_in", "splitter_out",
              "pair", "core", "terminal", "box_port", "number", "uplink_port")
_UNIT_KIND_SET = frozenset(UNIT_KINDS)
LISTABLE_UNIT_KINDS = tuple(k for k in UNIT_KINDS if k != "number")
SIDES = ("", "feeder", "distribution", "line", "equipment", "network")
ADMIN_STATES = tuple(s.value for s in AdminState)
CONNECTION_KINDS = ("jumper", "splice", "patch", "fixed")
NAMING_KINDS = ("device", "card", "port", "device_port", "cross_box", "distribution_box", "fibre_access_terminal",
                "frame", "terminal", "pair", "core", "box_port")
CUSTOMER_GRADES = tuple(g.value for g in CustomerGrade)
PRODUCTS = tuple(p.value for p in Product)
TECHNOLOGIES = tuple(t.value for t in Technology)
SERVICE_STATES = tuple(s.value for s in ServiceState)


@dataclass(frozen=True)
class Column:
    """One CSV column. `type` is one of: str, int, float, bool, json, datetime, point, line
    (WKT geometry), ref. `ref` names what a reference points at: local_network, template,
    resource (any resource key) or one resource kind (site, area, ...), unit, customer, service."""

    name: str
    type: str = "str"
    required: bool = False
    enum: tuple[str, ...] | None = None
    ref: str | None = None
    default: Any = None
    min: float | None = None
    max: float | None = None
    doc: str = ""


@dataclass(frozen=True)
class FileSpec:
    name: str  # the kind; the file is f"{name}.csv"
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the columns that identify a row (unique in the bundle)
    doc: str = ""
    resource_kind: str | None = None  # for resource files: the `resource.kind` of its rows
    sort: tuple[str, ...] = field(default=())  # export order (defaults to key)

    @property
    def filename(self) -> str:
        return f"{self.name}.csv"

    @property
    def by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @property
    def order(self) -> tuple[str, ...]:
        return self.sort or self.key


def C(name: str, type: str = "str", required: bool = False, **kw: Any) -> Column:  # noqa: N802
    return Column(name, type, required, **kw)


KEY = C("key", required=True, doc="stable external key, unique across all resource files")
LN = C("local_network", "ref", True, ref="local_network", doc="local network code")
NAME = C("name", required=True)
STATUS = C("status", enum=STATUSES, default=ResourceStatus.IN_SERVICE.value)
POINT = C("location", "point", doc="WKT POINT (lon lat)")


def _resource(name: str, kind: str, *cols: Column, doc: str = "", parent: Column | None = None) -> FileSpec:
    head = (KEY, LN, NAME) + ((parent,) if parent else ())
    return FileSpec(name, head + tuple(cols) + (STATUS,), ("key",), doc, resource_kind=kind)


_TEMPLATE = C("template", "ref", ref="template", doc="template name; with units=template its cards and ports are made")
_UNITS = C("units", enum=UNIT_MODES, default="template",
           doc="template: cards and units come from the template; listed: from cards.csv / units.csv")
_SITE = C("site", "ref", ref="site")
_PARENT = C("parent", "ref", ref="resource", doc="containing resource (default: the site)")

FILES: tuple[FileSpec, ...] = (
    FileSpec("local_networks", (
        C("code", required=True, doc="letters and digits, e.g. GZ"), NAME,
        C("area_code", required=True, doc="2–4 digits without trunk prefix, e.g. 20"),
        C("province", default=""),
    ), ("code",), "本地網"),
    FileSpec("naming_rules", (
        LN, C("kind", required=True, enum=NAMING_KINDS), C("pattern", required=True),
    ), ("local_network", "kind"), "資源命名管理: overrides of the default naming rules"),
    FileSpec("templates", (
        NAME, C("resource_kind", required=True, enum=TEMPLATE_KINDS),
        C("device_type", enum=("",) + DEVICE_TYPES, default=""), C("vendor", default=""),
        C("spec", "json", True, doc="TemplateSpec JSON (cards, ports, split_ratio, ...)"),
        C("version", "int", default=1, min=1),
    ), ("name",), "資源模板: a template already in the database with the same name is reused"),
    _resource("areas", "area", C("level", required=True, enum=LEVELS), C("code", default=""),
              parent=C("parent", "ref", ref="area", doc="parent area key"), doc="area tree (parents first)"),
    _resource("sites", "site", C("site_type", enum=SITE_TYPES, default="exchange"), C("area", "ref", ref="area"),
              C("address_text", default=""), POINT, doc="局站 / 機房"),
    _resource("addresses", "address", C("area", "ref", ref="area"), C("district", default=""),
              C("road", default=""), C("number", default=""), C("building", default=""), C("unit", default=""),
              C("floor", default=""), C("room", default=""),
              C("search_key", doc="normalised text for the search; default: made from the name "
                                  "(resource_mgr/addresses/normalise.py); a given one is normalised too"), POINT,
              parent=C("parent", "ref", ref="address",
                       doc="the address containing it (building ⊃ unit ⊃ floor ⊃ room; parents first)"),
              doc="標準地址: name is the full text"),
    _resource("manholes", "manhole", C("location", "point", True), doc="人井"),
    _resource("poles", "pole", C("location", "point", True), doc="電杆"),
    _resource("ducts", "duct", C("holes", "int", default=4, min=0, max=1000), doc="管道"),
    _resource("duct_segments", "duct_segment",
              C("a_end", "ref", ref="resource"), C("z_end", "ref", ref="resource"),
              C("length_m", "float", min=0, doc="default: measured along the route"), C("route", "line"),
              parent=C("duct", "ref", True, ref="duct"), doc="管道段 (parent: its duct)"),
    _resource("frames", "frame", C("frame_type", required=True, enum=FRAME_TYPES), _SITE, _PARENT,
              _TEMPLATE, C("units", enum=UNIT_MODES, default="template"), doc="MDF / ODF"),
    _resource("cross_boxes", "cross_box", C("capacity_pairs", "int", True, min=0), _SITE, _PARENT, _TEMPLATE,
              _UNITS, POINT, doc="交接箱"),
    _resource("distribution_boxes", "distribution_box", C("medium", required=True, enum=MEDIA),
              C("capacity", "int", True, min=0), _SITE, _PARENT, _TEMPLATE, _UNITS, POINT,
              doc="分線盒 (copper) and 光分纖箱 fibre access terminals (fibre)"),
    _resource("devices", "device",
              C("device_type", required=True, enum=DEVICE_TYPES), _SITE, _PARENT, _TEMPLATE, _UNITS,
              C("vendor", default=""), C("model", default=""), C("technology", default=""),
              C("management_ip", default="", doc="the address the network management system names it by; "
                                                  "unique"), C("split_ratio", "int", min=2, max=128),
              C("split_stage", "int", min=1, max=2), POINT,
              doc="switches, DSLAMs, OLTs, splitters (ratio, stage), LAN switches, ONTs, aggregation switches, "
                  "BRAS, core routers"),
    _resource("cables", "cable", C("medium", required=True, enum=MEDIA),
              C("stage", enum=CABLE_STAGES, default="primary",
                doc="trunk: an inter-site fibre cable, a_end and z_end its two sites"),
              C("unit_count", "int", True, min=1, max=4800, doc="pairs or cores, made 1..unit_count"),
              C("conductor_mm", "float", min=0.3, max=1.0), C("length_m", "float", min=0),
              C("a_end", "ref", ref="resource"), C("z_end", "ref", ref="resource"), C("route", "line"),
              doc="copper / fibre cables, trunk cables between sites"),
    FileSpec("cable_spans", (
        C("cable", "ref", True, ref="cable"), C("seq", "int", True, min=1),
        C("duct_segment", "ref", True, ref="duct_segment"),
    ), ("cable", "seq"), "a cable through duct segments, in order"),
    _resource("number_pools", "number_pool", C("switch", "ref", ref="device"),
              C("quarantine_days", "int", default=90, min=0, max=3650), doc="number pools"),
    FileSpec("number_segments", (
        KEY, C("pool", "ref", True, ref="number_pool"),
        C("first", required=True, doc="7 or 8 digit local number"), C("last", required=True),
    ), ("key",), "號段: every number first..last is made (≤ 10,000)", resource_kind="number_segment"),
    FileSpec("cards", (
        C("device", "ref", True, ref="resource"), NAME, C("slot", "int", True, min=0, max=999),
        C("card_type", required=True),
    ), ("device", "name"), "cards of devices with units=listed"),
    FileSpec("units", (
        C("unit", "ref", True, ref="unit", doc="<root key>#<kind>#<name>"),
        C("card", doc="card name under the root (listed units on a card)"),
        C("seq", "int", min=0), C("side", enum=SIDES), C("technology"),
        C("capacity", "int", min=1, max=4096), C("admin_state", enum=ADMIN_STATES),
        C("admin_reason"), C("locked_by"),
    ), ("unit",), "units of listed owners, and derived units whose attributes are not the default"),
    FileSpec("numbers", (
        C("number", required=True, doc="local number made by a segment"),
        C("pool", "ref", ref="number_pool", doc="its number pool: needed when two local networks of the "
                                                "bundle have the number"),
        C("grade"), C("grade_level", "int", min=-99, max=99), C("admin_state", enum=ADMIN_STATES),
        C("admin_reason"), C("quarantine_until", "datetime"),
    ), ("pool", "number"), "numbers whose grade or state is not the default"),
    FileSpec("connections", (
        C("kind", required=True, enum=CONNECTION_KINDS), C("a", "ref", True, ref="unit"),
        C("z", "ref", True, ref="unit"), C("container", "ref", ref="resource"),
    ), ("a", "z"), "jumpers, splices, patches between units"),
    FileSpec("coverage", (
        C("box", "ref", True, ref="distribution_box"), C("address", "ref", True, ref="address"),
        C("distance_m", "float", min=0),
    ), ("box", "address"), "覆蓋: which boxes serve which addresses"),
    FileSpec("customers", (
        C("key", required=True, doc="BSS customer id (external ref), unique per local network"), LN, NAME,
        C("grade", enum=CUSTOMER_GRADES, default="normal"),
    ), ("local_network", "key"), "customers"),
    FileSpec("services", (
        C("key", required=True, doc="unique in the bundle"), LN,
        C("product", required=True, enum=PRODUCTS), C("technology", required=True, enum=TECHNOLOGIES),
        C("state", enum=SERVICE_STATES, default=ServiceState.ACTIVE.value),
        C("customer", "ref", ref="customer", doc="customer key in the same local network"),
        C("address", "ref", ref="address"), C("number", doc="local number; occupied by an active service"),
        C("order_ref"), C("created_at", "datetime"), C("removed_at", "datetime"),
        C("bearer", "ref", ref="service", doc="the line service an IPTV / VoIP service rides on (its path); "
                                              "no path of its own"),
    ), ("key",), "service instances"),
    FileSpec("service_paths", (
        C("service", "ref", True, ref="service"), C("seq", "int", True, min=1, max=1000),
        C("unit", "ref", True, ref="unit"),
    ), ("service", "seq"), "a service's occupied path, customer side first"),
    FileSpec("preoccupations", (
        C("unit", "ref", True, ref="unit"), C("reservation", required=True, doc="reservation id (≤ 26 chars)"),
        C("until", "datetime", True),
    ), ("unit", "reservation"), "預占 in flight: exclusive units are held, shared units get a hold"),
)

FILE_BY_NAME: dict[str, FileSpec] = {f.name: f for f in FILES}
RESOURCE_FILES = tuple(f.name for f in FILES if f.resource_kind)
# Files whose rows make devices-like owners with cards and ports.
OWNER_FILES = ("devices", "frames", "cross_boxes", "distribution_boxes")


# -- unit references ---------------------------------------------------------------------------

def unit_ref(root_key: str, kind: str, name: str) -> str:
    return f"{root_key}#{kind}#{name}"


def split_unit_ref(ref: str) -> tuple[str, str, str]:
    """`<root key>#<kind>#<name>` → (root key, kind, name). The kind is the last `#<kind>#` in
    the text, so root keys may contain `#`; unit names may too, unless followed by a kind."""
    parts = ref.rsplit("#", 2)
    if len(parts) == 3 and parts[1] in _UNIT_KIND_SET and parts[0] and parts[2] and "#" not in parts[0]:
        return parts[0], parts[1], parts[2]
    best, best_kind = -1, ""
    for kind in UNIT_KINDS:
        i = ref.rfind(f"#{kind}#")
        if i > best:
            best, best_kind = i, kind
    if best > 0:
        name = ref[best + len(best_kind) + 2:]
        if name:
            return ref[:best], best_kind, name
    raise ValueError(f"not a unit reference {ref!r}: expected <root key>#<unit kind>#<unit name>")


# -- values ------------------------------------------------------------------------------------

def format_value(col: Column, value: Any) -> str:
    """A Python value → its canonical cell text (deterministic: exports round-trip byte-exactly)."""
    if value is None:
        return ""
    t = col.type
    if t == "bool":
        return "true" if value else "false"
    if t == "int":
        return str(int(value))
    if t == "float":
        return repr(float(value))
    if t == "datetime":
        if isinstance(value, str):
            return value
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat()
    if t in ("point", "line"):
        if isinstance(value, str):
            return value
        return shapely.to_wkt(value, rounding_precision=7, trim=True)
    if t == "json":
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


_GEOM = {"point": "Point", "line": "LineString"}


def parse_value(col: Column, raw: str) -> Any:
    """Cell text → Python value (None for empty). Raises ValueError with a reason."""
    if raw == "":
        if col.required:
            raise ValueError("a value is required")
        return col.default
    t = col.type
    if t == "int":
        try:
            value: Any = int(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a whole number") from None
    elif t == "float":
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{raw!r} is not a finite number")
    elif t == "bool":
        if raw not in ("true", "false"):
            raise ValueError(f"{raw!r} is not true or false")
        return raw == "true"
    elif t == "datetime":
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an ISO 8601 time") from None
        if value.tzinfo is None:
            raise ValueError(f"{raw!r} has no UTC offset")
        return value.astimezone(timezone.utc)
    elif t in _GEOM:
        return parse_wkt(raw, _GEOM[t])
    elif t == "json":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    else:
        value = raw
    if col.enum is not None and value not in col.enum:
        raise ValueError(f"{raw!r} is not one of {', '.join(repr(e) for e in col.enum)}")
    if col.min is not None and value < col.min:
        raise ValueError(f"{raw} is below the minimum {col.min:g}")
    if col.max is not None and value > col.max:
        raise ValueError(f"{raw} is above the maximum {col.max:g}")
    return value


def compile_parser(col: Column) -> Callable[[str], Any]:
    """A fast cell parser for one column: plain text columns skip the general checks."""
    if col.type == "str" or col.type == "ref":
        default, required, enum = col.default, col.required, col.enum
        if enum is None:
            if required:
                def parse_text(raw: str) -> Any:
                    if raw == "":
                        raise ValueError("a value is required")
                    return raw
                return parse_text
            return lambda raw: raw if raw != "" else default
        allowed = frozenset(enum)

        def parse_enum(raw: str) -> Any:
            if raw in allowed and raw != "":
                return raw
            return parse_value(col, raw)
        return parse_enum
    if col.type == "int" and col.min is not None and col.max is not None:
        lo, hi = col.min, col.max

        def parse_int(raw: str) -> Any:
            if raw.isdigit():
                v = int(raw)
                if lo <= v <= hi:
                    return v
            return parse_value(col, raw)
        return parse_int
    return lambda raw: parse_value(col, raw)


def parse_wkt(raw: str, geom_type: str) -> BaseGeometry:
    try:
        geom = shapely.from_wkt(raw)
    except Exception as exc:  # shapely raises several kinds for malformed text
        raise ValueError(f"malformed WKT: {str(exc).splitlines()[0]}") from None
    if geom is None or geom.geom_type != geom_type:
        raise ValueError(f"expected a WKT {geom_type.upper()}, got {getattr(geom, 'geom_type', 'nothing')}")
    # A point or line is valid unless empty or, for a line, without two distinct points
    # (shapely.is_valid would say the same, slowly: it resets warning filters on every call).
    if geom.is_empty:
        raise ValueError("the geometry is empty")
    if geom_type == "LineString" and not geom.length > 0:
        raise ValueError(f"invalid geometry: {shapely.is_valid_reason(geom)}")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ValueError("outside lon/lat range (lon -180..180, lat -90..90)")
    return geom


# -- writer ------------------------------------------------------------------------------------

class BundleWriter:
    """Writes a bundle directory: one CSV per declared file (header always written, so an empty
    kind is an empty file with its header) and manifest.json. Rows are streamed in the order the
    caller gives them; the exporter gives them sorted, so the same data gives the same bytes.

        with BundleWriter(out_dir) as w:
            w.write("sites", {"key": "GZ/site:TH", "local_network": "GZ", "name": "TH", ...})
    """

    def __init__(self, directory: str | os.PathLike[str], *, files: tuple[FileSpec, ...] = FILES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files = files
        self._open: dict[str, tuple[io.TextIOWrapper, Any, FileSpec]] = {}
        self.counts: dict[str, int] = {f.name: 0 for f in files}

    def _handle(self, name: str) -> tuple[Any, Any, FileSpec]:
        if name not in self._open:
            spec = FILE_BY_NAME[name]
            fh = open(self.directory / spec.filename, "w", encoding="utf-8", newline="")
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow([c.name for c in spec.columns])
            self._open[name] = (fh, writer, spec)
        return self._open[name]

    def write(self, name: str, row: dict[str, Any]) -> None:
        _, writer, spec = self._handle(name)
        writer.writerow([format_value(c, row.get(c.name)) for c in spec.columns])
        self.counts[name] += 1

    def write_many(self, name: str, rows: Any) -> None:
        _, writer, spec = self._handle(name)
        cols = spec.columns
        n = 0
        for row in rows:
            writer.writerow([format_value(c, row.get(c.name)) for c in cols])
            n += 1
        self.counts[name] += n

    def close(self) -> None:
        for spec in self._files:
            self._handle(spec.name)
        for fh, _, _ in self._open.values():
            fh.close()
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                    "files": {f.filename: self.counts[f.name] for f in self._files}}
        (self.directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- reader ------------------------------------------------------------------------------------

@dataclass
class Problem:
    """One bad row (or file): where, and why."""

    file: str
    line: int  # 1 = the header line; 0 = the whole file
    column: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "column": self.column, "reason": self.reason}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} [{self.column or '-'}] {self.reason}"


# The reader of bundles (directories and archives) lives in bundle.py; it is part of the format.
from resource_mgr.bulk.bundle import BundleRefused, BundleReader  # noqa: E402  (it reads the specs above)
