"""Reading a file's rows (parsed, every bad cell reported) and resolving the references in them."""
from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any

import shapely

from resource_mgr.bulk import format as fmt
from resource_mgr.bulk.format import FILE_BY_NAME, BundleReader
from resource_mgr.bulk.importing.state import ImportState
from resource_mgr.bulk.importing.writer import Stored
from resource_mgr.geo.types import SRID

_POINT = re.compile(r"POINT ?\((-?\d+(?:\.\d+)?) (-?\d+(?:\.\d+)?)\)")
_EWKB_POINT = "0101000020E6100000"


def _pack_point(x: float, y: float, sqlite: bool) -> Any:
    if sqlite:
        return struct.pack("<BIdd", 1, 1, x, y)
    return _EWKB_POINT + struct.pack("<dd", x, y).hex().upper()


def _pack_geometry(geom: Any, sqlite: bool) -> Any:
    if sqlite:
        return shapely.to_wkb(geom)
    return shapely.to_wkb(shapely.set_srid(geom, SRID), hex=True, include_srid=True)


def point_parser(st: ImportState, col: fmt.Column) -> Any:
    """WKT points straight to what the database stores (WKB on SQLite, hex EWKB on PostGIS),
    without a shapely object per row; anything unusual goes through the full parser."""
    sqlite = st.sqlite
    match = _POINT.fullmatch

    def parse(raw: str) -> Any:
        m = match(raw)
        if m is not None:
            x, y = float(m.group(1)), float(m.group(2))
            if -180 <= x <= 180 and -90 <= y <= 90:
                return Stored(_pack_point(x, y, sqlite))
        value = fmt.parse_value(col, raw)
        return None if value is None else Stored(_pack_geometry(value, sqlite))
    return parse


def rows(st: ImportState, reader: BundleReader, name: str) -> Iterator[tuple[fmt.FileSpec, int, dict[str, Any]]]:
    """Parsed rows of a file; a row with a bad cell is reported (every bad cell) and skipped."""
    spec = FILE_BY_NAME[name]
    f = spec.filename
    plan: list[tuple[str, int, Any]] | None = None
    defaults: dict[str, Any] = {}
    problem, tick = st.problem, st.tick
    n = 0
    for line, record in reader.records(name):
        n += 1
        if not n & 1023:
            tick(1024)
        if plan is None:
            header = reader.headers[name]
            plan = []
            for c in spec.columns:
                parse = point_parser(st, c) if c.type == "point" else fmt.compile_parser(c)
                if c.name in header:
                    plan.append((c.name, header.index(c.name), parse))
                else:
                    defaults[c.name] = c.default
        out = dict(defaults)
        ok = True
        for cname, idx, parse in plan:
            try:
                out[cname] = parse(record[idx])
            except ValueError as exc:
                problem(f, line, cname, str(exc))
                ok = False
        if ok:
            yield spec, line, out
    tick(n & 1023)


def ref(st: ImportState, file: str, line: int, column: str, key: str | None, kinds: tuple[str, ...] | None = None,
        ln: str | None = None) -> tuple[str, str, str] | None | bool:
    """Resolve a resource key; None for no key, False (and a problem) for a bad one."""
    if key is None:
        return None
    found = st.res.get(key)
    if found is None:
        st.problem(file, line, column, f"unknown {' or '.join(kinds) if kinds else 'resource'} {key!r} "
                                       "(not defined earlier in the bundle)")
        return False
    if kinds and found[1] not in kinds:
        st.problem(file, line, column, f"{key!r} is a {found[1]}, expected {' or '.join(kinds)}")
        return False
    if ln is not None and found[2] != ln:
        st.problem(file, line, column, f"{key!r} belongs to another local network")
        return False
    return found


def ref_id(st: ImportState, f: str, line: int, col: str, key: str | None, kinds: tuple[str, ...] | None,
           ln: str) -> tuple[bool, str | None]:
    """(the reference is good, its id or None)."""
    r = ref(st, f, line, col, key, kinds, ln)
    return r is not False, (r[0] if r else None)


def local_network(st: ImportState, file: str, line: int, code: str) -> str | None:
    found = st.ln.get(code)
    if found is None:
        st.problem(file, line, "local_network", f"unknown local network {code!r}")
        return None
    return found[0]
