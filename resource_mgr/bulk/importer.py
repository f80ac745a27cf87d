"""Import a bundle (see format.py, docs/data-format.md) into an empty or existing database.

Two phases:

1. **Validate** — every row of every file is read and checked (types, enums, ranges, geometry,
   duplicate keys, references, names unique in their scope, template specs, segments, capacity
   and double occupation); every bad row is reported with file, line, column and reason.
   Local networks and templates are reused by code / name; names, customers and numbers must
   not clash with what the database has.
2. **Write** — in ONE transaction, committed only if there are no problems (or with
   `allow_partial`: the good rows, skipping the bad ones and those that refer to them): Core bulk
   inserts of precomputed rows (ids made in process), PostgreSQL COPY for every table but the
   three small ones. Units are generated from their owners (templates, cables, segments) with
   their final occupancy, so no row is written twice; a unit's id is its place in its owner's
   block of ids, known before the unit is written.

On PostgreSQL without `allow_partial` the phases overlap: each file's rows are sent as soon as
they are checked, the units right after the occupancy check, and the files that change no unit
(connections, coverage, cable spans) are read last, while the server builds the unit indexes. A
problem stops the sending and the transaction is rolled back. SQLite writes after validating.

Memory: rows are held as tuples, unit references only for the units a file names (paths,
connections, overrides, holds); derived units are streamed to the database.
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import os
import re
import struct
import sys
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import shapely
from sqlalchemy import select, text, update

from resource_mgr.bulk import format as fmt
from resource_mgr.bulk.format import FILE_BY_NAME, BundleReader, Problem, split_unit_ref
from resource_mgr.db import Database
from resource_mgr.errors import Invalid
from resource_mgr.geo.spatial import length_m
from resource_mgr.geo.types import SRID
from resource_mgr.inventory import naming
from resource_mgr.inventory.templates import TemplateSpec, parse_spec
from resource_mgr.models import (
    Customer, DeviceTemplate, LocalNetwork, NamingRule, Number, Resource,
)
from resource_mgr.numbers.grades import Grader
from resource_mgr.occupancy.derive import FIRST_VERSION, Derivation

ProgressFn = Callable[[int, int], None]
BATCH = 10_000
MAX_REPORTED = 10_000  # problems kept in the report (all are counted)
UNIT_COLS = ("id", "kind", "name", "seq", "local_network_id", "owner_id", "root_id", "side", "technology",
             "occupancy", "reservation_id", "preoccupied_until", "service_id", "capacity", "used",
             "admin_state", "locked_by", "admin_reason", "quarantine_until", "version")
RES_COLS = ("id", "kind", "name", "local_network_id", "parent_id", "scope_id", "status", "created_at")
_CONVERT = {"created_at", "removed_at", "expires_at", "preoccupied_until", "quarantine_until", "location", "route"}
_CONN_KINDS = fmt.CONNECTION_KINDS
_BIG_TABLES = ("unit", "number", "service_unit", "connection", "resource", "address", "coverage")
SWITCH_TYPES = ("pstn_switch", "ngn_softswitch", "access_gateway")
_B32 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_POINT = re.compile(r"POINT ?\((-?\d+(?:\.\d+)?) (-?\d+(?:\.\d+)?)\)")
_EWKB_POINT = "0101000020E6100000"


class _Stored:
    """A geometry already in the form the database stores."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _pack_point(x: float, y: float, sqlite: bool) -> Any:
    if sqlite:
        return struct.pack("<BIdd", 1, 1, x, y)
    return _EWKB_POINT + struct.pack("<dd", x, y).hex().upper()


def _pack_geometry(geom: Any, sqlite: bool) -> Any:
    if sqlite:
        return shapely.to_wkb(geom)
    return shapely.to_wkb(shapely.set_srid(geom, SRID), hex=True, include_srid=True)


@functools.lru_cache(maxsize=None)
def _line_formatter(ncols: int) -> Callable[[list[tuple], str], str]:
    """A function that formats a batch of `ncols`-tuples as COPY text lines with one f-string per
    row (about a third faster than joining each row's values)."""
    cells = "\\t".join(f"{{N if r[{i}] is None else r[{i}]}}" for i in range(ncols))
    return eval(f"lambda batch, N: ''.join([f'{cells}\\n' for r in batch])")  # noqa: S307 - fixed text


def _copy_text(batch: list[tuple], ncols: int, tx: Any) -> bytes | bytearray:
    """A batch of rows as COPY text, formatted here (much faster than row by row in psycopg).
    The importer's values are str, int, float (finite), bool, datetime or None, whose str() is
    what COPY reads. Strings are sent as they are, so the result is checked: the only
    backslashes may be the NULL markers and the tabs and newlines must be exactly the
    separators; a batch with a string that needs escaping goes through psycopg's formatter."""
    nulls = 0
    for row in batch:
        nulls += row.count(None)
    buf = _line_formatter(ncols)(batch, "\\N")
    if buf.count("\\") == nulls and buf.count("\t") == len(batch) * (ncols - 1) \
            and buf.count("\n") == len(batch) and "\r" not in buf:
        return buf.encode()
    from psycopg._copy_base import format_row_text

    out = bytearray()
    for row in batch:
        format_row_text(row, tx, out)
    return out


class _PgWriter:
    """The PostgreSQL side of phase 2 in a thread of its own: COPY data and statements are
    queued in order and sent on the one connection (one transaction) while the importer goes on
    making the next rows, so Python's formatting overlaps the server's work (COPY, index builds).
    The queue is bounded, so memory is too. An error on the connection stops the writer; the
    importer sees it at its next put or at `close`, and the transaction is rolled back."""

    def __init__(self, raw: Any, depth: int = 256) -> None:
        import queue
        import threading

        from psycopg.adapt import Transformer

        self.raw = raw
        self.tx = Transformer(raw)
        self.error: BaseException | None = None
        self.q: Any = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, name="bulk-import-copy", daemon=True)
        self.thread.start()

    def put(self, item: tuple) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def copy(self, table: str, cols: tuple[str, ...], chunks: Iterable[bytes | bytearray]) -> None:
        self.put(("copy", f'COPY "{table}" ({", ".join(cols)}) FROM STDIN'))
        for chunk in chunks:
            self.put(("data", chunk))
        self.put(("end",))

    def execute(self, sql: str) -> None:
        self.put(("sql", sql))

    def close(self) -> None:
        self.q.put(("stop",))
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        ctx = cp = cur = None
        while True:
            item = self.q.get()
            op = item[0]
            if op == "stop":
                if ctx is not None:  # the importer failed half way through a COPY
                    exc = RuntimeError("bulk import aborted")
                    try:
                        ctx.__exit__(RuntimeError, exc, None)
                    except BaseException:  # noqa: BLE001
                        pass
                return
            if self.error is not None:
                continue  # drain until stop
            try:
                if op == "data":
                    cp.write(item[1])
                elif op == "copy":
                    cur = self.raw.cursor()
                    ctx = cur.copy(item[1])
                    cp = ctx.__enter__()
                elif op == "end":
                    ctx.__exit__(None, None, None)
                    cur.close()
                    ctx = cp = cur = None
                else:
                    with self.raw.cursor() as c:
                        c.execute(item[1])
            except BaseException as exc:  # noqa: BLE001 - handed to the importer
                self.error = exc
                if ctx is not None:
                    try:
                        ctx.__exit__(type(exc), exc, exc.__traceback__)
                    except BaseException:  # noqa: BLE001
                        pass
                ctx = cp = cur = None


class IdMaker:
    """ULID-layout ids (same layout as resource_mgr.ids.new_id) made fast for millions of rows:
    the time part is fixed at the start of the import, the 80-bit random part is 40 random bits
    and a 40-bit counter that starts at a random value."""

    _T = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]

    def __init__(self) -> None:
        import os
        ms = int(time.time() * 1000)
        rnd = int.from_bytes(os.urandom(10), "big")
        high = rnd >> 40
        self._prefix = "".join(_ALPHABET[(ms >> (5 * i)) & 31] for i in reversed(range(10))) + \
            "".join(_ALPHABET[(high >> (5 * i)) & 31] for i in reversed(range(8)))
        self._next = rnd & ((1 << 39) - 1)
        self._high = -1
        self._high_text = ""

    def __call__(self) -> str:
        self._next += 1
        return self.text(self._next)

    def next_int(self) -> int:
        """A new id as its counter (8 bytes to keep instead of a string); `text` makes the id."""
        self._next += 1
        return self._next

    def reserve(self, n: int) -> int:
        """The first of `n` consecutive counters."""
        first = self._next + 1
        self._next += n
        return first

    def text(self, n: int) -> str:
        high = n >> 10
        if high != self._high:  # ids mostly come in order: the first 24 characters change every 1024
            t = self._T
            self._high = high
            self._high_text = self._prefix + t[(n >> 30) & 1023] + t[(n >> 20) & 1023] + t[high & 1023]
        return self._high_text + self._T[n & 1023]


class _SlotIds:
    """The ids of referenced units, kept as counters."""

    def __init__(self, ids: IdMaker) -> None:
        self._ids = ids
        self._a = array("q")

    def append(self, counter: int) -> None:
        self._a.append(counter)

    def __getitem__(self, slot: int) -> str:
        return self._ids.text(self._a[slot])


class FastGrader:
    """The default Grader's answers, with each rule's pattern compiled once and answers cached
    by the tail they depend on (a tail rule looks at its length of digits, a run at its length,
    the bonus at the last digit)."""

    def __init__(self, grader: Grader | None = None) -> None:
        import re

        from resource_mgr.numbers.grades import letter_pattern_regex
        self.g = grader or Grader()
        self.rules = [(r, None if r.run else re.compile(letter_pattern_regex("*" + r.tail).pattern))
                      for r in sorted(self.g.rules, key=lambda r: -r.level)]
        self.depth = max([len(r.tail) for r in self.g.rules] + [r.run for r in self.g.rules] + [1])
        self.cache: dict[str, tuple[str, int]] = {}

    def grade(self, number: str) -> tuple[str, int]:
        if len(number) <= self.depth:
            return self.g.grade(number)
        tail = number[-self.depth:]
        hit = self.cache.get(tail)
        if hit is None:
            hit = self.cache[tail] = self.compute(number)
        return hit

    def compute(self, number: str) -> tuple[str, int]:
        last = number[-1]
        bonus = self.g.lucky.get(last, 0) + self.g.unlucky.get(last, 0)
        for rule, rx in self.rules:
            if (rule.matches(number) if rx is None else rx.match(number) is not None):
                return rule.name, max(rule.level + bonus, 1)
        if bonus < 0:
            return "unlucky", bonus
        return "normal", 0


@dataclass
class ImportReport:
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    written: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # rows written per table
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds: read (validate), check, write

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def rows_written(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "written": self.written, "problem_count": self.problem_count,
                "problems": [p.as_dict() for p in self.problems], "counts": self.counts,
                "rows_written": self.rows_written, "seconds": round(self.seconds, 2),
                "phases": {k: round(v, 2) for k, v in self.phases.items()}}


@dataclass
class _Owner:
    id: str
    kind: str  # resource kind
    ln: str
    name: str
    mode: str  # template | listed | cable | pool
    tpl: Any = None  # _Tpl for template owners
    medium: str = ""
    count: int = 0
    key: str = ""
    base: int = 0  # template and cable owners: the id counter of their first unit (the rest follow)
    derived: Any = None  # Importer._derived, once known


@dataclass
class _Tpl:
    id: str
    name: str
    resource_kind: str
    device_type: str
    vendor: str
    spec: TemplateSpec | None
    existing: bool


def import_bundle(database: Database, path: str, *, allow_partial: bool = False,
                  progress: ProgressFn | None = None, principal: str = "system:bulk-import") -> ImportReport:
    """Validate and import the bundle at `path`. Returns the report; `written` says whether
    anything was committed. The import is one operation-log row attributed to `principal`."""
    return Importer(database, path, allow_partial=allow_partial, progress=progress, principal=principal).run()


class Importer:
    def __init__(self, database: Database, path: str, *, allow_partial: bool = False,
                 progress: ProgressFn | None = None, principal: str = "system:bulk-import") -> None:
        self.db = database
        self.principal = principal
        self.path = path
        self.partial = allow_partial
        self._progress = progress
        self.mute_while_writing = False
        self._writing = False
        self._sqlite = database.dialect != "postgresql"
        self._uow: Any = None
        self._pg: _PgWriter | None = None
        self._sent: dict[str, int] = defaultdict(int)  # rows of self.rows[table] already sent
        self._units_sent = False
        self.report = ImportReport()
        self.ids = IdMaker()
        self.now = datetime.now(timezone.utc)
        self._now = self._value(self.now)  # as written: the rows made with it need no conversion
        self.done = 0
        self.total = 0
        self._last_tick = 0.0
        # what the bundle makes, as rows (tuples) per table, in insert order
        self.rows: dict[str, list[tuple]] = defaultdict(list)
        self.cols: dict[str, tuple[str, ...]] = {}
        self.ln: dict[str, tuple[str, str, bool]] = {}  # code -> (id, area_code, existing)
        self.rules: dict[str, dict[str, str]] = {}  # ln id -> kind -> pattern
        self.rule_updates: list[tuple[str, str, str]] = []
        self.tpl: dict[str, _Tpl] = {}
        self.res: dict[str, tuple[str, str, str]] = {}  # resource key -> (id, kind, ln id)
        self.scoped: set[tuple[str, str, str]] = set()  # (kind, scope id, name)
        self.owners: dict[str, _Owner] = {}
        self.cards: dict[str, list[tuple[int, str, int, str]]] = defaultdict(list)  # listed owner key -> cards
        # first, last, width, segment id, pool key, line, id counter of the first number
        self.segments: list[tuple[int, int, int, str, str, int, int]] = []
        self.pool_segments: dict[str, list[tuple[int, int, int, str, int]]] = defaultdict(list)
        # unit references
        self.uref: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
        self.slot_id = _SlotIds(self.ids)
        self.slot_cap = array("i")  # -1: not (yet) known to exist
        self.slot_ln: list[str | None] = []
        self.ledger = Derivation()  # the occupancy rules of resource_mgr.occupancy, on slots
        self.slot_over: dict[int, dict[str, Any]] = {}
        self.listed: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        self.number_over: dict[str, dict[str, Any]] = {}
        self.customers: dict[tuple[str, str], str] = {}
        self.services: dict[str, tuple[str, str, str, int]] = {}  # key -> (id, ln, state, line)
        self.bearer_of: dict[str, str] = {}  # service key -> the key of the service it rides on
        self.unborne: set[str] = set()  # riders whose bearer is wrong (reported)
        self.service_number: dict[str, tuple[int, int]] = {}  # service key -> (slot, line)
        self.paths: dict[str, array] = defaultdict(lambda: array("i"))  # service key -> seq, slot, line, ...
        self.connections = (array("b"), array("i"), array("i"), [], array("i"))  # kind, a, z, container, line
        self.holds: list[tuple[int, str, datetime, int]] = []
        self._derived_cache: dict[tuple, tuple] = {}
        self.grader = FastGrader()

    # -- reporting -----------------------------------------------------------------------------

    def problem(self, file: str, line: int, column: str, reason: str) -> None:
        self.report.problem_count += 1
        if len(self.report.problems) < MAX_REPORTED:
            self.report.problems.append(Problem(file, line, column, reason))

    def tick(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        if self._progress is None or (self.mute_while_writing and self._writing):
            return
        now = time.monotonic()
        if force or now - self._last_tick > 0.2:
            self._last_tick = now
            self._progress(self.done, max(self.total, self.done))

    # -- the whole run -------------------------------------------------------------------------

    def run(self) -> ImportReport:
        # The import keeps millions of objects alive and makes no reference cycles: the cyclic
        # collector would only walk them again and again (a fifth of the run). It is off for
        # the whole process while the import runs.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if collecting:
                gc.enable()

    def _run(self) -> ImportReport:
        started = time.monotonic()
        try:
            reader = BundleReader(self.path)
        except (FileNotFoundError, OSError, ValueError) as exc:
            self.problem(str(self.path), 0, "", str(exc))
            self.report.seconds = time.monotonic() - started
            return self.report
        # On PostgreSQL (all or nothing), rows are sent as soon as their file is checked, so the
        # server loads them while the next files are read; the transaction commits only if every
        # row turns out good. SQLite would only hold its write lock longer.
        stream = not self._sqlite and not self.partial
        self._reader = reader
        with contextlib.ExitStack() as stack:
            with reader:
                self.total = sum(reader.count_rows(f.name) for f in fmt.FILES)
                self._load_existing()
                self._validate(reader, stack if stream else None)
                t1 = time.monotonic()
                self.report.phases["read"] = t1 - started
                self._occupy()
                if self._streaming():
                    # Nothing read later changes a unit: the units go now, and the server
                    # builds their indexes while the last files are read.
                    self._write_units()
                    self._send_paths()
                    self._rebuild_indexes(("unit", "number", "service_unit"))
                t2 = time.monotonic()
                self.report.phases["check"] = t2 - t1
                self._validate_late(reader)
                for p in reader.problems:
                    self.problem(p.file, p.line, p.column, p.reason)
            t3 = time.monotonic()
            self.report.phases["read late"] = t3 - t2
            if self.report.problem_count and not self.partial:
                self.report.seconds = time.monotonic() - started
                self.tick(0, force=True)
                return self.report  # leaving the stack rolls back what was sent
            self.total = self.done + self._rows_to_write()
            self.tick(0, force=True)
            self._writing = True
            if self._uow is None:
                self._begin(stack)
            self._write()
            self._writing = False
            self.report.phases["write"] = time.monotonic() - t3
        self.report.written = True
        self.report.seconds = time.monotonic() - started
        self.total = self.done
        self.tick(0, force=True)
        return self.report

    # -- what the database already has ---------------------------------------------------------

    def _load_existing(self) -> None:
        with self.db.read_session() as s:
            for id_, code, area_code in s.execute(select(LocalNetwork.id, LocalNetwork.code, LocalNetwork.area_code)):
                self.ln[code] = (id_, area_code, True)
                self.rules[id_] = dict(naming.DEFAULT_RULES)
            for ln_id, kind, pattern in s.execute(select(NamingRule.local_network_id, NamingRule.kind, NamingRule.pattern)):
                self.rules.setdefault(ln_id, dict(naming.DEFAULT_RULES))[kind] = pattern
            for t in s.scalars(select(DeviceTemplate)):
                try:
                    spec = parse_spec(t.spec)
                except Invalid:
                    spec = None
                self.tpl[t.name] = _Tpl(t.id, t.name, t.resource_kind, t.device_type, t.vendor, spec, True)
            self._existing_numbers = bool(s.scalar(select(Number.id).limit(1)))
            existing_ln = [v[0] for v in self.ln.values()]
            if existing_ln:
                for kind, scope, name in s.execute(select(Resource.kind, Resource.scope_id, Resource.name)
                                                   .where(Resource.parent_id.is_(None))):
                    self.scoped.add((kind, scope, name))
                for ln_id, ref in s.execute(select(Customer.local_network_id, Customer.external_ref)):
                    self.customers[(ln_id, ref)] = ""  # existing: a clash, not a reference target

    # -- phase 1: read and check every file ----------------------------------------------------

    def _point_parser(self, col: fmt.Column) -> Any:
        """WKT points straight to what the database stores (WKB on SQLite, hex EWKB on PostGIS),
        without a shapely object per row; anything unusual goes through the full parser."""
        sqlite = self.db.dialect != "postgresql"
        match = _POINT.fullmatch

        def parse(raw: str) -> Any:
            m = match(raw)
            if m is not None:
                x, y = float(m.group(1)), float(m.group(2))
                if -180 <= x <= 180 and -90 <= y <= 90:
                    return _Stored(_pack_point(x, y, sqlite))
            value = fmt.parse_value(col, raw)
            return None if value is None else _Stored(_pack_geometry(value, sqlite))
        return parse

    def _rows(self, reader: BundleReader, name: str) -> Iterator[tuple[fmt.FileSpec, int, dict[str, Any]]]:
        """Parsed rows of a file; a row with a bad cell is reported (every bad cell) and skipped."""
        spec = FILE_BY_NAME[name]
        f = spec.filename
        plan: list[tuple[str, int, Any]] | None = None
        defaults: dict[str, Any] = {}
        problem, tick = self.problem, self.tick
        n = 0
        for line, record in reader.records(name):
            n += 1
            if not n & 1023:
                tick(1024)
            if plan is None:
                header = reader.headers[name]
                plan = []
                for c in spec.columns:
                    parse = self._point_parser(c) if c.type == "point" else fmt.compile_parser(c)
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

    def _ref(self, file: str, line: int, column: str, key: str | None, kinds: tuple[str, ...] | None = None,
             ln: str | None = None) -> tuple[str, str, str] | None | bool:
        """Resolve a resource key; None for no key, False (and a problem) for a bad one."""
        if key is None:
            return None
        found = self.res.get(key)
        if found is None:
            self.problem(file, line, column, f"unknown {' or '.join(kinds) if kinds else 'resource'} {key!r} "
                                             "(not defined earlier in the bundle)")
            return False
        if kinds and found[1] not in kinds:
            self.problem(file, line, column, f"{key!r} is a {found[1]}, expected {' or '.join(kinds)}")
            return False
        if ln is not None and found[2] != ln:
            self.problem(file, line, column, f"{key!r} belongs to another local network")
            return False
        return found

    def _ln(self, file: str, line: int, code: str) -> str | None:
        found = self.ln.get(code)
        if found is None:
            self.problem(file, line, "local_network", f"unknown local network {code!r}")
            return None
        return found[0]

    def _validate(self, reader: BundleReader, stack: contextlib.ExitStack | None) -> None:
        self._local_networks(reader)
        self._naming_rules(reader)
        self._templates(reader)
        if stack is not None and not self.report.problem_count:
            self._begin(stack)
        for name in fmt.RESOURCE_FILES:
            self._resources(reader, name)
            self._stream("resource", FILE_BY_NAME[name].resource_kind)
        self._segment_overlaps()
        self._cards(reader)
        self._units(reader)
        self._numbers(reader)
        self._customers(reader)
        self._stream("customer")
        self._services(reader)
        self._stream("service")
        if self._streaming():
            self._rebuild_indexes(("resource", "address"))
        self._service_paths(reader)
        if self._streaming() and self._no_fk_checks:  # else after the units it refers to
            self._send_paths()
            self._rebuild_indexes(("service_unit",))
        self._preoccupations(reader)

    def _validate_late(self, reader: BundleReader) -> None:
        """The files that change no unit, read after the units are known (and on PostgreSQL
        already sent)."""
        self._connections(reader)
        self._check_connections()
        if self._streaming():
            self._send_connections()
            self._rebuild_indexes(("connection",))
        self._coverage(reader)
        self._stream("coverage")
        self._cable_spans(reader)
        self._stream("cable_span")

    def _streaming(self) -> bool:
        """Rows are being sent during phase 1: until the first problem (the import will not commit)."""
        return self._pg is not None and not self._writing and not self.report.problem_count \
            and not self._reader.problems

    def _stream(self, *tables: str) -> None:
        if self._streaming():
            for table in tables:
                self._send(table)

    def _local_networks(self, reader: BundleReader) -> None:
        self.cols["local_network"] = ("id", "code", "name", "province", "area_code", "created_at")
        seen: set[str] = set()
        for spec, line, v in self._rows(reader, "local_networks"):
            code = v["code"]
            if code in seen:
                self.problem(spec.filename, line, "code", f"duplicate local network {code!r}")
                continue
            seen.add(code)
            if not code.isalnum():
                self.problem(spec.filename, line, "code", "must be letters and digits, e.g. GZ")
                continue
            if not v["area_code"].isdigit() or not 2 <= len(v["area_code"]) <= 4:
                self.problem(spec.filename, line, "area_code", "must be 2–4 digits, e.g. 20 or 755")
                continue
            if code in self.ln:
                if self.ln[code][1] != v["area_code"]:
                    self.problem(spec.filename, line, "area_code",
                                 f"local network {code} exists with area code {self.ln[code][1]}")
                continue  # reused
            id_ = self.ids()
            self.ln[code] = (id_, v["area_code"], False)
            self.rules[id_] = dict(naming.DEFAULT_RULES)
            self.rows["local_network"].append((id_, code, v["name"], v["province"] or "", v["area_code"], self.now))

    def _naming_rules(self, reader: BundleReader) -> None:
        seen: set[tuple[str, str]] = set()
        for spec, line, v in self._rows(reader, "naming_rules"):
            ln = self._ln(spec.filename, line, v["local_network"])
            if ln is None:
                continue
            if (ln, v["kind"]) in seen:
                self.problem(spec.filename, line, "kind", f"duplicate naming rule for {v['kind']}")
                continue
            seen.add((ln, v["kind"]))
            try:
                naming.check_pattern(v["kind"], v["pattern"])
            except Invalid as exc:
                self.problem(spec.filename, line, "pattern", exc.detail)
                continue
            self.rules[ln][v["kind"]] = v["pattern"]
            self.rule_updates.append((ln, v["kind"], v["pattern"]))

    def _templates(self, reader: BundleReader) -> None:
        self.cols["device_template"] = ("id", "name", "resource_kind", "device_type", "vendor", "spec", "version")
        seen: set[str] = set()
        for spec, line, v in self._rows(reader, "templates"):
            name = v["name"]
            if name in seen:
                self.problem(spec.filename, line, "name", f"duplicate template {name!r}")
                continue
            seen.add(name)
            if v["resource_kind"] == "device" and not v["device_type"]:
                self.problem(spec.filename, line, "device_type", "a device template needs a device_type")
                continue
            try:
                tspec = parse_spec(v["spec"]) if isinstance(v["spec"], dict) else parse_spec({"x": v["spec"]})
            except Invalid as exc:
                self.problem(spec.filename, line, "spec", exc.detail)
                continue
            if name in self.tpl:
                old = self.tpl[name]
                if old.resource_kind != v["resource_kind"] or old.spec != tspec:
                    self.problem(spec.filename, line, "spec",
                                 f"template {name!r} exists in the database with a different kind or spec")
                continue
            id_ = self.ids()
            self.tpl[name] = _Tpl(id_, name, v["resource_kind"], v["device_type"] or "", v["vendor"] or "", tspec, False)
            self.rows["device_template"].append((id_, name, v["resource_kind"], v["device_type"] or "",
                                                 v["vendor"] or "", v["spec"], v["version"] or 1))

    # resources -------------------------------------------------------------------------------

    _PARENT_COL = {"areas": ("parent", ("area",)), "duct_segments": ("duct", ("duct",)),
                   "number_segments": ("pool", ("number_pool",))}
    _CHILD_COLS = {
        "area": ("id", "level", "code"),
        "site": ("id", "site_type", "area_id", "address_text", "location"),
        "address": ("id", "area_id", "district", "road", "number", "building", "unit", "floor", "room",
                    "search_key", "location"),
        "manhole": ("id", "location"),
        "pole": ("id", "location"),
        "duct": ("id", "holes"),
        "duct_segment": ("id", "a_end_id", "z_end_id", "length_m", "route"),
        "frame": ("id", "frame_type", "site_id"),
        "cross_box": ("id", "capacity_pairs", "site_id", "template_id", "location"),
        "distribution_box": ("id", "medium", "capacity", "template_id", "location"),
        "device": ("id", "device_type", "site_id", "template_id", "vendor", "model", "technology", "management_ip",
                   "split_ratio", "split_stage", "location"),
        "cable": ("id", "medium", "stage", "unit_count", "conductor_mm", "length_m", "a_end_id", "z_end_id", "route"),
        "number_pool": ("id", "switch_id", "area_code", "quarantine_days"),
        "number_segment": ("id", "exchange_code", "first", "last"),
    }

    def _resources(self, reader: BundleReader, name: str) -> None:
        fspec = FILE_BY_NAME[name]
        kind = fspec.resource_kind
        assert kind is not None
        f = fspec.filename
        self.cols["resource"] = RES_COLS
        self.cols[kind] = self._CHILD_COLS[kind]
        for _, line, v in self._rows(reader, name):
            key = v["key"]
            if key in self.res:
                self.problem(f, line, "key", f"duplicate key {key!r} (keys are unique across all resource files)")
                continue
            if name == "number_segments":
                pool = self._ref(f, line, "pool", v["pool"], ("number_pool",))
                if not pool:
                    continue
                ln = pool[2]
                v["name"] = f"{v['first']}-{v['last']}"
                v["status"] = "in_service"
            else:
                ln = self._ln(f, line, v["local_network"])
                if ln is None:
                    continue
            ok = True
            parent = None
            if name in self._PARENT_COL:
                col, kinds = self._PARENT_COL[name]
                parent = self._ref(f, line, col, v.get(col), kinds, ln)
                ok = parent is not False
            elif "parent" in v or "site" in v:
                site = self._ref(f, line, "site", v.get("site"), ("site",), ln)
                par = self._ref(f, line, "parent", v.get("parent"), None, ln)
                ok = site is not False and par is not False
                parent = par or site
                v["_site"] = site[0] if site else None
            if not ok:
                continue
            parent_id = parent[0] if parent else None
            scope = parent_id or ln
            if (kind, scope, v["name"]) in self.scoped:
                self.problem(f, line, "name", f"a {kind} named {v['name']!r} already exists in this scope "
                                              f"({'its parent' if parent_id else 'the local network'})")
                continue
            id_ = self.ids()
            child = getattr(self, f"_row_{kind}")(f, line, id_, ln, v)
            if child is None:
                continue
            self.scoped.add((kind, scope, v["name"]))
            self.res[key] = (id_, kind, ln)
            self.rows["resource"].append((id_, kind, v["name"], ln, parent_id, scope, v["status"], self._now))
            self.rows[kind].append(child)

    def _resource_or_none(self, f: str, line: int, col: str, key: str | None, kinds: tuple[str, ...] | None,
                          ln: str) -> tuple[bool, str | None]:
        r = self._ref(f, line, col, key, kinds, ln)
        return r is not False, (r[0] if r else None)

    def _row_area(self, f, line, id_, ln, v):
        return (id_, v["level"], v["code"] or "")

    def _row_site(self, f, line, id_, ln, v):
        ok, area = self._resource_or_none(f, line, "area", v["area"], ("area",), ln)
        return (id_, v["site_type"], area, v["address_text"] or "", v["location"]) if ok else None

    def _row_address(self, f, line, id_, ln, v):
        ok, area = self._resource_or_none(f, line, "area", v["area"], ("area",), ln)
        if not ok:
            return None
        search_key = v["search_key"] if v["search_key"] is not None else "".join(v["name"].split()).lower()
        return (id_, area, *(v[c] or "" for c in ("district", "road", "number", "building", "unit", "floor", "room")),
                search_key, v["location"])

    def _row_manhole(self, f, line, id_, ln, v):
        return (id_, v["location"])

    _row_pole = _row_manhole

    def _row_duct(self, f, line, id_, ln, v):
        return (id_, v["holes"])

    def _ends(self, f, line, ln, v):
        ok_a, a = self._resource_or_none(f, line, "a_end", v["a_end"], None, ln)
        ok_z, z = self._resource_or_none(f, line, "z_end", v["z_end"], None, ln)
        return ok_a and ok_z, a, z

    def _row_duct_segment(self, f, line, id_, ln, v):
        ok, a, z = self._ends(f, line, ln, v)
        if not ok:
            return None
        length = v["length_m"] if v["length_m"] is not None else (length_m(v["route"]) if v["route"] else 0.0)
        return (id_, a, z, length, v["route"])

    def _template_for(self, f, line, v, resource_kind):
        name = v.get("template")
        if name is None:
            return True, None
        tpl = self.tpl.get(name)
        if tpl is None:
            self.problem(f, line, "template", f"unknown template {name!r}")
            return False, None
        if tpl.resource_kind != resource_kind:
            self.problem(f, line, "template", f"template {name!r} is for {tpl.resource_kind}, not {resource_kind}")
            return False, None
        if tpl.spec is None:
            self.problem(f, line, "template", f"template {name!r} has an invalid spec")
            return False, None
        return True, tpl

    def _owner(self, kind, id_, ln, v, tpl):
        mode = v.get("units") or "template"
        if tpl is None:
            mode = "listed"
        owner = self.owners[v["key"]] = _Owner(id_, kind, ln, v["name"], mode, tpl, key=v["key"])
        if mode == "template":
            owner.base = self.ids.reserve(len(self._derived(owner)[1]))

    def _row_frame(self, f, line, id_, ln, v):
        ok, tpl = self._template_for(f, line, v, "frame")
        if not ok:
            return None
        self._owner("frame", id_, ln, v, tpl)
        return (id_, v["frame_type"], v["_site"])

    def _row_cross_box(self, f, line, id_, ln, v):
        ok, tpl = self._template_for(f, line, v, "cross_box")
        if not ok:
            return None
        self._owner("cross_box", id_, ln, v, tpl)
        return (id_, v["capacity_pairs"], v["_site"], tpl.id if tpl else None, v["location"])

    def _row_distribution_box(self, f, line, id_, ln, v):
        ok, tpl = self._template_for(f, line, v, "distribution_box")
        if not ok:
            return None
        self._owner("distribution_box", id_, ln, v, tpl)
        return (id_, v["medium"], v["capacity"], tpl.id if tpl else None, v["location"])

    def _row_device(self, f, line, id_, ln, v):
        ok, tpl = self._template_for(f, line, v, "device")
        if not ok:
            return None
        if tpl is not None and tpl.device_type and tpl.device_type != v["device_type"]:
            self.problem(f, line, "template", f"template {tpl.name!r} makes {tpl.device_type}, not {v['device_type']}")
            return None
        split_ratio = v["split_ratio"] if v["split_ratio"] is not None else (tpl.spec.split_ratio if tpl else None)
        self._owner("device", id_, ln, v, tpl)
        return (id_, v["device_type"], v["_site"], tpl.id if tpl else None, v["vendor"] or "", v["model"] or "",
                v["technology"] or "", v["management_ip"] or "", split_ratio, v["split_stage"], v["location"])

    def _row_cable(self, f, line, id_, ln, v):
        ok, a, z = self._ends(f, line, ln, v)
        if not ok:
            return None
        length = v["length_m"] if v["length_m"] is not None else (length_m(v["route"]) if v["route"] else 0.0)
        self.owners[v["key"]] = _Owner(id_, "cable", ln, v["name"], "cable", medium=v["medium"],
                                       count=v["unit_count"], key=v["key"], base=self.ids.reserve(v["unit_count"]))
        return (id_, v["medium"], v["stage"], v["unit_count"],
                v["conductor_mm"] if v["medium"] == "copper" else None, length, a, z, v["route"])

    def _row_number_pool(self, f, line, id_, ln, v):
        ok, switch = self._resource_or_none(f, line, "switch", v["switch"], ("device",), ln)
        if not ok:
            return None
        if switch and self._device_type.get(switch) not in SWITCH_TYPES:
            self.problem(f, line, "switch", "a number pool belongs to a PSTN switch, softswitch or access gateway")
            return None
        area_code = next(c[1] for c in self.ln.values() if c[0] == ln)
        self.owners[v["key"]] = _Owner(id_, "number_pool", ln, v["name"], "pool", key=v["key"])
        return (id_, switch, area_code, v["quarantine_days"])

    @property
    def _device_type(self) -> dict[str, str]:
        if not hasattr(self, "_dt_map"):
            self._dt_map = {r[0]: r[1] for r in self.rows["device"]}
        return self._dt_map

    def _row_number_segment(self, f, line, id_, ln, v):
        first, last = v["first"], v["last"]
        if not (first.isdigit() and last.isdigit() and len(first) == len(last) and len(first) in (7, 8)):
            self.problem(f, line, "first", "first and last must be local numbers of 7 or 8 digits")
            return None
        if first[0] in "01":
            self.problem(f, line, "first", "a local number cannot start with 0 or 1")
            return None
        lo, hi = int(first), int(last)
        if hi < lo:
            self.problem(f, line, "last", "last must not be below first")
            return None
        if hi - lo + 1 > 10_000:
            self.problem(f, line, "last", "a segment holds at most 10000 numbers")
            return None
        if self._existing_numbers:
            with self.db.read_session() as s:
                clash = s.scalar(select(Number.number).where(Number.number.between(first, last)).limit(1))
            if clash:
                self.problem(f, line, "first", f"number {clash} already exists in the database")
                return None
        pool_key = v["pool"]
        width = len(first)
        base = self.ids.reserve(hi - lo + 1)
        self.segments.append((lo, hi, width, id_, pool_key, line, base))
        self.pool_segments[pool_key].append((lo, hi, width, id_, base))
        return (id_, first[: width - 4], first, last)

    def _segment_overlaps(self) -> None:
        self.segments.sort()
        for prev, cur in zip(self.segments, self.segments[1:]):
            if cur[0] <= prev[1]:
                self.problem("number_segments.csv", cur[5], "first",
                             f"numbers {cur[0]}..{min(cur[1], prev[1])} overlap the segment on line {prev[5]}")
        self._seg_firsts = [s[0] for s in self.segments]

    def _segment_of(self, number: str) -> tuple | None:
        if not number.isdigit():
            return None
        n = int(number)
        i = bisect.bisect_right(self._seg_firsts, n) - 1
        if i >= 0:
            seg = self.segments[i]
            if seg[0] <= n <= seg[1] and len(number) == seg[2]:
                return seg
        return None

    # cards, spans, units, numbers ------------------------------------------------------------

    def _cards(self, reader: BundleReader) -> None:
        seen: set[tuple[str, str]] = set()
        for spec, line, v in self._rows(reader, "cards"):
            owner = self.owners.get(v["device"])
            if owner is None or owner.mode != "listed":
                self.problem(spec.filename, line, "device", f"{v['device']!r} is not a device, frame or box "
                             "with units=listed earlier in the bundle")
                continue
            if (v["device"], v["name"]) in seen:
                self.problem(spec.filename, line, "name", f"duplicate card {v['name']!r}")
                continue
            seen.add((v["device"], v["name"]))
            self.cards[v["device"]].append((v["slot"], v["name"], line, v["card_type"]))

    def _cable_spans(self, reader: BundleReader) -> None:
        self.cols["cable_span"] = ("cable_id", "seq", "duct_segment_id")
        seen: set[tuple[str, int]] = set()
        for spec, line, v in self._rows(reader, "cable_spans"):
            cable = self._ref(spec.filename, line, "cable", v["cable"], ("cable",))
            seg = self._ref(spec.filename, line, "duct_segment", v["duct_segment"], ("duct_segment",))
            if not cable or not seg:
                continue
            if (cable[0], v["seq"]) in seen:
                self.problem(spec.filename, line, "seq", f"duplicate seq {v['seq']} for this cable")
                continue
            seen.add((cable[0], v["seq"]))
            self.rows["cable_span"].append((cable[0], v["seq"], seg[0]))

    def _slot(self, file: str, line: int, column: str, ref: str, *, defining: bool = False) -> int | None:
        """The slot of a unit reference. A new one is checked here, once: its owner is defined
        earlier in the bundle and has the unit (`defining`: units.csv is defining it)."""
        try:
            root, kind, name = split_unit_ref(ref)
        except ValueError as exc:
            self.problem(file, line, column, str(exc))
            return None
        refs = self.uref[root]
        slot = refs.get((kind, name))
        if slot is None:
            slot = len(self.slot_ln)
            refs[(sys.intern(kind), name)] = slot
            self.slot_cap.append(-1)
            self.slot_ln.append(None)
            self.slot_id.append(self._resolve(file, line, column, root, kind, name, slot, defining))
        return slot

    def _resolve(self, file: str, line: int, column: str, root: str, kind: str, name: str, slot: int,
                 defining: bool) -> int:
        """Learn a new slot's capacity and local network (they stay -1 and None for a unit that
        does not exist) and return its id counter. A template or cable unit has the counter of
        its place in the owner's block and a number that of its place in the segment's, so
        every unit's id is known whether anything refers to it or not."""
        owner = self.owners.get(root)
        if owner is None:
            self.problem(file, line, column, f"unknown unit owner {root!r} (a device, frame, box, cable or "
                                             "number pool defined earlier in the bundle)")
        elif owner.mode == "pool":
            seg = self._segment_of(name) if kind == "number" else None
            if seg is not None and seg[4] == root:
                self.slot_cap[slot], self.slot_ln[slot] = 1, owner.ln
                return seg[6] + int(name) - seg[0]
            self.problem(file, line, column, f"no {kind} {name!r} in number pool {root!r}")
        elif owner.mode == "listed":
            if defining:
                self.slot_ln[slot] = owner.ln  # its capacity comes with the units.csv row
            else:
                self.problem(file, line, column, f"no {kind} {name!r} in {root!r} (units=listed: define it in "
                                                 "units.csv)")
        else:
            _, units, index = self._derived(owner)
            i = index.get((kind, name))
            if i is not None:
                self.slot_cap[slot], self.slot_ln[slot] = units[i][4], owner.ln
                return owner.base + i
            self.problem(file, line, column, f"no {kind} {name!r} in {root!r}")
        return self.ids.next_int()

    def _units(self, reader: BundleReader) -> None:
        seen: set[int] = set()
        for spec, line, v in self._rows(reader, "units"):
            try:
                root, kind, _ = split_unit_ref(v["unit"])
            except ValueError as exc:
                self.problem(spec.filename, line, "unit", str(exc))
                continue
            owner = self.owners.get(root)
            if owner is None:
                self.problem(spec.filename, line, "unit", f"unknown owner {root!r} (a device, frame, box or cable "
                                                          "defined earlier)")
                continue
            if kind == "number":
                self.problem(spec.filename, line, "unit", "numbers are listed in numbers.csv")
                continue
            slot = self._slot(spec.filename, line, "unit", v["unit"], defining=True)
            if slot is None:
                continue
            if slot in seen:
                self.problem(spec.filename, line, "unit", f"duplicate unit {v['unit']!r}")
                continue
            seen.add(slot)
            attrs = {k: v[k] for k in ("seq", "side", "technology", "capacity", "admin_state", "admin_reason",
                                       "locked_by", "card") if v[k] is not None}
            if attrs.get("admin_state") == "locked" and not attrs.get("locked_by"):
                self.problem(spec.filename, line, "locked_by", "a locked unit needs the cutover that locks it")
                continue
            if owner.mode == "listed":
                if v["card"] is not None and v["card"] not in {c[1] for c in self.cards.get(root, [])}:
                    self.problem(spec.filename, line, "card", f"no card {v['card']!r} in cards.csv for {root!r}")
                    continue
                self.listed[root].append((slot, attrs))
                self.slot_cap[slot] = attrs.get("capacity", 1)
            else:
                if v["card"] is not None:
                    self.problem(spec.filename, line, "card", "card is only for units of owners with units=listed")
                    continue
                self.slot_over[slot] = attrs
                if "capacity" in attrs and self.slot_cap[slot] >= 0:
                    self.slot_cap[slot] = attrs["capacity"]

    def _numbers(self, reader: BundleReader) -> None:
        for spec, line, v in self._rows(reader, "numbers"):
            number = v["number"]
            seg = self._segment_of(number)
            if seg is None:
                self.problem(spec.filename, line, "number", f"number {number!r} is in no segment of the bundle")
                continue
            if number in self.number_over:
                self.problem(spec.filename, line, "number", f"duplicate number {number}")
                continue
            if v["admin_state"] == "locked":
                self.problem(spec.filename, line, "admin_state", "numbers are locked by cutovers, not by import")
                continue
            self.number_over[number] = {k: v[k] for k in ("grade", "grade_level", "admin_state", "admin_reason",
                                                          "quarantine_until") if v[k] is not None}

    def _connections(self, reader: BundleReader) -> None:
        seen: set[tuple[int, int]] = set()
        for spec, line, v in self._rows(reader, "connections"):
            a = self._slot(spec.filename, line, "a", v["a"])
            z = self._slot(spec.filename, line, "z", v["z"])
            if a is None or z is None:
                continue
            if a == z:
                self.problem(spec.filename, line, "z", "a connection needs two different units")
                continue
            if (a, z) in seen or (z, a) in seen:
                self.problem(spec.filename, line, "z", "these two units are already connected")
                continue
            seen.add((a, z))
            container = self._ref(spec.filename, line, "container", v["container"])
            if container is False:
                continue
            ck, ca, cz, cc, cl = self.connections
            ck.append(_CONN_KINDS.index(v["kind"]))
            ca.append(a)
            cz.append(z)
            cc.append(container[0] if container else None)
            cl.append(line)

    def _coverage(self, reader: BundleReader) -> None:
        self.cols["coverage"] = ("box_id", "address_id", "distance_m")
        seen: set[tuple[str, str]] = set()
        for spec, line, v in self._rows(reader, "coverage"):
            box = self._ref(spec.filename, line, "box", v["box"], ("distribution_box",))
            addr = self._ref(spec.filename, line, "address", v["address"], ("address",))
            if not box or not addr:
                continue
            if (box[0], addr[0]) in seen:
                self.problem(spec.filename, line, "address", "duplicate coverage row")
                continue
            seen.add((box[0], addr[0]))
            self.rows["coverage"].append((box[0], addr[0], v["distance_m"]))

    def _customers(self, reader: BundleReader) -> None:
        self.cols["customer"] = ("id", "local_network_id", "external_ref", "name", "grade", "created_at")
        for spec, line, v in self._rows(reader, "customers"):
            ln = self._ln(spec.filename, line, v["local_network"])
            if ln is None:
                continue
            if (ln, v["key"]) in self.customers:
                self.problem(spec.filename, line, "key", f"duplicate customer {v['key']!r} in {v['local_network']}")
                continue
            id_ = self.ids()
            self.customers[(ln, v["key"])] = id_
            self.rows["customer"].append((id_, ln, v["key"], v["name"], v["grade"], self._now))

    def _services(self, reader: BundleReader) -> None:
        self.cols["service"] = ("id", "local_network_id", "product", "technology", "state", "customer_id",
                                "address_id", "number", "order_ref", "created_at", "removed_at", "bearer_id")
        riders: list[tuple[int, str, int]] = []  # row, service key, line
        for spec, line, v in self._rows(reader, "services"):
            f = spec.filename
            key = v["key"]
            if key in self.services:
                self.problem(f, line, "key", f"duplicate service {key!r}")
                continue
            ln = self._ln(f, line, v["local_network"])
            if ln is None:
                continue
            customer = None
            if v["customer"] is not None:
                customer = self.customers.get((ln, v["customer"]))
                if not customer:
                    self.problem(f, line, "customer", f"unknown customer {v['customer']!r} in {v['local_network']}")
                    continue
            addr = self._ref(f, line, "address", v["address"], ("address",), ln)
            if addr is False:
                continue
            number = v["number"]
            if number is not None:
                seg = self._segment_of(number)
                if seg is None:
                    self.problem(f, line, "number", f"number {number!r} is in no segment of the bundle")
                    continue
                if v["state"] != "removed":
                    slot = self._slot(f, line, "number", fmt.unit_ref(seg[4], "number", number))
                    self.service_number[key] = (slot, line)
            id_ = self.ids()
            self.services[key] = (id_, ln, v["state"], line)
            if v["bearer"] is not None:
                self.bearer_of[key] = v["bearer"]
                riders.append((len(self.rows["service"]), key, line))
            self.rows["service"].append((id_, ln, v["product"], v["technology"], v["state"], customer,
                                         addr[0] if addr else None, number, v["order_ref"],
                                         v["created_at"] or self.now, v["removed_at"], None))
        self._bearers(riders)

    def _bearers(self, riders: list[tuple[int, str, int]]) -> None:
        """A bearer (any order in the file) is a service of the bundle in the rider's local
        network that rides on nothing itself; a live rider needs a live bearer."""
        rows, f = self.rows["service"], "services.csv"
        for i, key, line in riders:
            bearer = self.bearer_of[key]
            found = self.services.get(bearer)
            if found is None:
                reason = f"unknown service {bearer!r}"
            elif found[1] != self.services[key][1]:
                reason = f"{bearer!r} is in another local network"
            elif bearer in self.bearer_of:
                reason = f"{bearer!r} rides on a bearer itself: name the line service"
            elif found[2] == "removed" and self.services[key][2] != "removed":
                reason = f"{bearer!r} is removed"
            else:
                rows[i] = rows[i][:-1] + (found[0],)
                continue
            self.problem(f, line, "bearer", reason)
            self.unborne.add(key)
        rows.sort(key=lambda r: r[-1] is not None)  # bearers before riders, for foreign-key checks

    def _service_paths(self, reader: BundleReader) -> None:
        seen: set[tuple[str, int]] = set()
        for spec, line, v in self._rows(reader, "service_paths"):
            if v["service"] not in self.services:
                self.problem(spec.filename, line, "service", f"unknown service {v['service']!r}")
                continue
            if (v["service"], v["seq"]) in seen:
                self.problem(spec.filename, line, "seq", f"duplicate seq {v['seq']} for service {v['service']}")
                continue
            seen.add((v["service"], v["seq"]))
            slot = self._slot(spec.filename, line, "unit", v["unit"])
            if slot is not None:
                self.paths[v["service"]].extend((v["seq"], slot, line))

    def _preoccupations(self, reader: BundleReader) -> None:
        for spec, line, v in self._rows(reader, "preoccupations"):
            if len(v["reservation"]) > 26:
                self.problem(spec.filename, line, "reservation", "at most 26 characters")
                continue
            slot = self._slot(spec.filename, line, "unit", v["unit"])
            if slot is not None:
                self.holds.append((slot, v["reservation"], v["until"], line))

    # -- units from their owners ---------------------------------------------------------------

    def _derived(self, owner: _Owner) -> tuple[list[tuple], list[tuple], dict[tuple[str, str], int]]:
        """(cards [(slot, name, card_type)], units [(card slot|None, kind, name, seq, capacity,
        technology, side)], index (kind, name) → position) for a template owner or a cable."""
        if owner.derived is None:
            owner.derived = self._derive(owner)
        return owner.derived

    def _derive(self, owner: _Owner) -> tuple[list[tuple], list[tuple], dict[tuple[str, str], int]]:
        rules = self.rules[owner.ln]
        if owner.mode == "cable":
            kind = "pair" if owner.medium == "copper" else "core"
            pattern = rules[kind]
            ck = ("cable", owner.ln, kind, owner.count, owner.name if "{cable" in pattern else None)
            hit = self._derived_cache.get(ck)
            if hit is None:
                units = [(None, kind, naming.render(pattern, cable=owner.name, seq=n), n, 1, owner.medium, "")
                         for n in range(1, owner.count + 1)]
                hit = ([], units, {(u[1], u[2]): i for i, u in enumerate(units)})
                self._derived_cache[ck] = hit
            return hit
        tpl = owner.tpl
        spec: TemplateSpec = tpl.spec
        pats = [rules[k] for k in ("card", "port", "device_port", "terminal", "box_port")]
        by_name = any("{device" in p or "{box" in p for p in pats)
        ck = ("tpl", owner.ln, tpl.name, owner.name if by_name else None)
        hit = self._derived_cache.get(ck)
        if hit is None:
            name = owner.name
            cards, units = [], []
            for cs in spec.cards:
                for slot in cs.slots:
                    cards.append((slot, naming.render(rules["card"], device=name, slot=slot, card_type=cs.card_type),
                                  cs.card_type))
                    for g in cs.ports:
                        for n in range(g.first, g.first + g.count):
                            units.append((slot, g.port_kind, naming.render(rules["port"], device=name, slot=slot, port=n,
                                                                           card_type=cs.card_type),
                                          n, g.capacity, g.technology, g.side))
            for g in spec.ports:
                rk = {"terminal": "terminal", "box_port": "box_port"}.get(g.port_kind, "device_port")
                for n in range(g.first, g.first + g.count):
                    units.append((None, g.port_kind, naming.render(rules[rk], device=name, box=name, port=n,
                                                                    side=g.side or g.port_kind,
                                                                    label=naming.PORT_LABELS.get(g.port_kind, "")),
                                  n, g.capacity, g.technology, g.side))
            hit = (cards, units, {(u[1], u[2]): i for i, u in enumerate(units)})
            self._derived_cache[ck] = hit
        return hit

    def _occupy(self) -> None:
        """Occupancy from the active services' paths and the holds; capacity and exclusivity."""
        cap, slot_ln = self.slot_cap, self.slot_ln
        self.bad_services: set[str] = set()
        ledger = self.ledger
        # riders last: one whose bearer is not imported (allow_partial) is not imported either
        for key, (sid, ln, state, sline) in sorted(self.services.items(), key=lambda kv: kv[0] in self.bearer_of):
            arr = self.paths.get(key)
            hops = sorted(zip(arr[0::3], arr[1::3], arr[2::3])) if arr else []
            bad = key in self.unborne
            if key in self.bearer_of:
                if hops:
                    self.problem("service_paths.csv", hops[0][2], "service",
                                 f"{key!r} rides on {self.bearer_of[key]!r}: it has no path of its own")
                    bad = True
                elif self.bearer_of[key] in self.bad_services and not bad:
                    self.problem("services.csv", sline, "bearer", f"its bearer {self.bearer_of[key]!r} is not imported")
                    bad = True
            if key in self.service_number:
                hops = hops + [(None, *self.service_number[key])]
            seen: set[int] = set()
            for _, slot, line in hops:
                f = "services.csv" if _ is None else "service_paths.csv"
                col = "number" if _ is None else "unit"
                if cap[slot] < 0:
                    bad = True  # already reported: unknown unit
                    continue
                if slot_ln[slot] != ln:
                    self.problem(f, line, col, "the unit belongs to another local network than the service")
                    bad = True
                if slot in seen:
                    self.problem(f, line, col, "the unit appears twice in this service's path")
                    bad = True
                seen.add(slot)
                if state == "removed":
                    continue
                refusal = ledger.refuse_occupy(slot, cap[slot])
                if refusal:
                    self.problem(f, line, col, refusal)
                    bad = True
            if bad:
                self.bad_services.add(key)
                continue
            if state != "removed":
                for _, slot, _line in hops:
                    ledger.occupy(slot, cap[slot], sid, key)
        seen_holds: set[tuple[int, str]] = set()
        self.good_holds: list[tuple[int, str, datetime]] = []
        for slot, reservation, until, line in self.holds:
            f = "preoccupations.csv"
            if cap[slot] < 0:
                continue
            if (slot, reservation) in seen_holds:
                self.problem(f, line, "reservation", "duplicate hold of this unit by this reservation")
                continue
            refusal = ledger.refuse_hold(slot, cap[slot])
            if refusal:
                self.problem(f, line, "unit", refusal)
                continue
            ledger.hold(slot, cap[slot], reservation, until)
            seen_holds.add((slot, reservation))
            self.good_holds.append((slot, reservation, until))

    def _check_connections(self) -> None:
        cap, slot_ln = self.slot_cap, self.slot_ln
        self.good_connections = array("i")
        ck, ca, cz, cc, cl = self.connections
        for i in range(len(ck)):
            a, z = ca[i], cz[i]
            if cap[a] < 0 or cap[z] < 0:
                continue
            if slot_ln[a] != slot_ln[z]:
                self.problem("connections.csv", cl[i], "z", "both ends must be in the same local network")
                continue
            self.good_connections.append(i)

    # -- phase 2: write ------------------------------------------------------------------------

    def _rows_to_write(self) -> int:
        """The rows phase 2 writes (for the progress total), less what is sent already."""
        units = 0
        for owner in () if self._units_sent else self.owners.values():
            if owner.mode == "cable":
                units += owner.count
            elif owner.mode == "template":
                units += len(self._derived(owner)[1])
            elif owner.mode == "listed":
                units += len(self.listed.get(owner.key, ()))
        if not self._units_sent:
            units += sum(s[1] - s[0] + 1 for s in self.segments) * 2
        rows = sum(len(r) for t, r in self.rows.items() if not (self._uow and t in ("local_network", "device_template")))
        paths = sum(len(p) // 3 for p in self.paths.values())
        return units + rows + paths + len(self.good_connections) + len(self.good_holds) - sum(self._sent.values())

    def _begin(self, stack: contextlib.ExitStack) -> None:
        """Open the import's one transaction (left without commit, it rolls back) and write
        the local networks, naming rules and templates every later row depends on."""
        self._uow = stack.enter_context(self.db.unit_of_work(principal=self.principal))
        s = self._uow.session
        conn = self._conn = s.connection()
        self._fast_path(conn)
        if self.rows["local_network"]:
            self._core(LocalNetwork.__table__, "local_network")
        self._write_rules(s)
        if self.rows["device_template"]:
            self._core(DeviceTemplate.__table__, "device_template")
        if not self._sqlite:
            self._pg = _PgWriter(conn.connection.driver_connection)
            stack.callback(self._close_writer)

    def _close_writer(self) -> None:
        if self._pg is not None:
            self._pg, writer = None, self._pg
            writer.close()

    def _write(self) -> None:
        if self._no_fk_checks:
            # Without foreign-key checks the order is free: units first, so that the server
            # builds their indexes (the longest) while the other rows are made.
            self._write_units()
            self._rebuild_indexes(("unit", "number"))
        self._write_big()
        self._close_writer()
        self._record(self._uow.session)
        self._uow.commit()

    def _send(self, table: str, rows: Iterable[tuple] | None = None) -> None:
        """The rows of `table` not sent yet (or `rows` instead)."""
        if rows is None:
            made = self.rows[table]
            rows, self._sent[table] = made[self._sent[table]:], len(made)
        # resource and customer rows hold nothing but text, numbers and self._now
        self._fast(table, self.cols[table], rows, convert=table not in ("resource", "customer"))

    def _send_paths(self) -> None:
        if self._sent["service_unit"]:
            return
        bad, sid = getattr(self, "bad_services", ()), self.slot_id
        self._sent["service_unit"] = sum(len(hops) // 3 for hops in self.paths.values())
        self._fast("service_unit", ("service_id", "seq", "unit_id"),
                   ((self.services[key][0], hops[j], sid[hops[j + 1]]) for key, hops in self.paths.items()
                    if key not in bad for j in range(0, len(hops), 3)))

    def _send_connections(self) -> None:
        if self._sent["connection"]:
            return
        self._sent["connection"] = len(self.good_connections)
        sid, slot_ln = self.slot_id, self.slot_ln
        ck, ca, cz, cc, _ = self.connections
        self._fast("connection", ("id", "kind", "a_unit_id", "z_unit_id", "local_network_id", "container_id",
                                  "created_at"),
                   ((self.ids(), _CONN_KINDS[ck[i]], sid[ca[i]], sid[cz[i]], slot_ln[ca[i]], cc[i], self._now)
                    for i in self.good_connections), convert=False)

    def _write_big(self) -> None:
        """What is not written yet, parents first (through the writer thread on PostgreSQL)."""
        self._send("resource")
        for name in fmt.RESOURCE_FILES:
            self._send(FILE_BY_NAME[name].resource_kind)
        self._send("cable_span")
        self._send("coverage")
        self._send("customer")
        if self.bad_services:
            bad_ids = {self.services[k][0] for k in self.bad_services}
            self._send("service", [r for r in self.rows["service"] if r[0] not in bad_ids])
        else:
            self._send("service")
        if not self._no_fk_checks:
            self._write_units()
        # the indexes of the tables complete by now are built while the paths and
        # connections are made
        self._rebuild_indexes(("unit", "number", "resource", "address", "coverage"))
        self._send_paths()
        self._send_connections()
        sid = self.slot_id
        self._fast("shared_hold", ("id", "unit_id", "holder", "expires_at"),
                   [(self.ids(), sid[slot], reservation, until) for slot, reservation, until in self.good_holds
                    if self.slot_cap[slot] != 1])
        since = self._dt(self._now)
        self._fast("shared_use", ("unit_id", "service_id", "since"),
                   [(sid[slot], service, since) for slot, service in self.ledger.shared_uses()], convert=False)
        self._rebuild_indexes()

    def _record(self, s: Any) -> None:
        """One operation-log row for the whole import (rows are not logged one by one). It is the
        import's change-feed entry too (stamped at commit like any history row): a follower
        reloads the local networks it names."""
        from resource_mgr.security import audit

        networks = sorted({ln_id for ln_id, _, _ in self.ln.values()})
        audit.record(s, self.principal, resource_id=networks[0] if len(networks) == 1 else "bulk",
                     resource_kind="bulk_import", action="import",
                     local_network_id=networks[0] if len(networks) == 1 else None, before=None,
                     after={"bundle": os.path.basename(str(self.path).rstrip("/")), "counts": dict(self.report.counts),
                            "local_networks": sorted(self.ln), "local_network_ids": networks})

    def _fast_path(self, conn: Any) -> None:
        """PostgreSQL: every reference was checked in phase 1, so the per-row foreign-key
        triggers are skipped for this transaction when the role may (SET LOCAL
        session_replication_role, as pg_restore --disable-triggers does). Without the right it
        just runs slower."""
        self._no_fk_checks = False
        self._rebuild: dict[str, list[str]] = defaultdict(list)
        self._mwm = False
        raw = conn.connection.driver_connection
        if self._sqlite:
            # SQLite: the same index rebuild for empty tables (DDL is transactional there too).
            cur = raw.cursor()
            for table in _BIG_TABLES:
                if cur.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]:
                    continue
                for name, sql in cur.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                             "AND tbl_name = ? AND sql IS NOT NULL", (table,)).fetchall():
                    cur.execute(f'DROP INDEX "{name}"')
                    self._rebuild[table].append(sql)
            cur.close()
            return
        with raw.cursor() as cur:
            # One commit at the end: waiting for its WAL flush adds nothing to durability
            # worth the wait for an import that can be rerun.
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute("SAVEPOINT bulk_fast_path")
            try:
                cur.execute("SET LOCAL session_replication_role = replica")
                cur.execute("RELEASE SAVEPOINT bulk_fast_path")
                self._no_fk_checks = True
            except Exception:  # noqa: BLE001 - not a superuser: keep the triggers
                cur.execute("ROLLBACK TO SAVEPOINT bulk_fast_path")
            # Into an empty big table, build its secondary indexes once at the end instead of row
            # by row (the drop is transactional: a failed import leaves them as they were).
            for table in _BIG_TABLES:
                cur.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")')
                if cur.fetchone()[0]:
                    continue
                cur.execute("""SELECT i.indexname, i.indexdef FROM pg_indexes i
                               WHERE i.schemaname = current_schema() AND i.tablename = %s
                                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
                            (table,))
                for name, definition in cur.fetchall():
                    cur.execute(f'DROP INDEX "{name}"')
                    self._rebuild[table].append(definition)
                # Primary keys and unique constraints no foreign key depends on: checked in
                # phase 1, so added back (one sort) after the load rather than kept row by row.
                cur.execute("""SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
                               WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u')
                                 AND NOT EXISTS (SELECT 1 FROM pg_constraint f
                                                 WHERE f.contype = 'f' AND f.conindid = c.conindid)""",
                            (f'"{table}"',))
                for name, definition in cur.fetchall():
                    cur.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
                    self._rebuild[table].append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')

    def _rebuild_indexes(self, tables: Iterable[str] = _BIG_TABLES) -> None:
        todo = [d for t in tables for d in self._rebuild.pop(t, ())]
        if not todo:
            return
        if self._sqlite:
            cur = self._conn.connection.driver_connection.cursor()
            for definition in todo:
                cur.execute(definition)
            cur.close()
            return
        if not self._mwm:
            self._mwm = True
            self._pg.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for definition in todo:
            self._pg.execute(definition)

    def _write_rules(self, s: Any) -> None:
        new_lns = {r[0] for r in self.rows["local_network"]}
        rows = []
        for ln in new_lns:
            for kind, pattern in self.rules[ln].items():
                rows.append({"local_network_id": ln, "kind": kind, "pattern": pattern})
        if rows:
            s.execute(NamingRule.__table__.insert(), rows)
            self.report.counts["naming_rule"] = len(rows)
        for ln, kind, pattern in self.rule_updates:
            if ln in new_lns:
                continue
            found = s.execute(update(NamingRule).where(NamingRule.local_network_id == ln, NamingRule.kind == kind)
                              .values(pattern=pattern))
            if not found.rowcount:
                s.execute(NamingRule.__table__.insert(), [{"local_network_id": ln, "kind": kind, "pattern": pattern}])

    def _core(self, table: Any, name: str) -> None:
        cols = self.cols[name]
        rows = [dict(zip(cols, r)) for r in self.rows[name]]
        for i in range(0, len(rows), BATCH):
            self._conn.execute(table.insert(), rows[i:i + BATCH])
        self.report.counts[name] = self.report.counts.get(name, 0) + len(rows)
        self._wrote(len(rows))

    def _wrote(self, n: int) -> None:
        if self._writing:  # rows sent while reading were counted as read
            self.tick(n)

    def _value(self, value: Any) -> Any:
        if isinstance(value, _Stored):
            return value.value
        if isinstance(value, datetime):
            if self._sqlite:
                return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
            return value.isoformat()
        if isinstance(value, shapely.Geometry):
            if self._sqlite:
                return shapely.to_wkb(value)
            return shapely.to_wkb(shapely.set_srid(value, SRID), hex=True, include_srid=True)
        return value

    def _fast(self, table: str, cols: tuple[str, ...], rows: Iterable[tuple], *,
              convert: bool = True) -> None:
        """Insert tuples: COPY on PostgreSQL, executemany on SQLite, in batches."""
        if isinstance(rows, list) and not rows:
            return
        count = 0
        conv = [i for i, c in enumerate(cols) if c in _CONVERT]
        if convert and conv:
            value = self._value

            def fix(row: tuple) -> tuple:
                row = list(row)
                for i in conv:
                    row[i] = value(row[i])
                return tuple(row)
        else:
            convert = False
        if self._sqlite:
            sql = f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
            cur = self._conn.connection.driver_connection.cursor()
            batch: list[tuple] = []
            for row in rows:
                batch.append(fix(row) if convert else row)
                if len(batch) >= BATCH:
                    cur.executemany(sql, batch)
                    count += len(batch)
                    self._wrote(len(batch))
                    batch = []
            if batch:
                cur.executemany(sql, batch)
                count += len(batch)
                self._wrote(len(batch))
            cur.close()
        else:
            writer, ncols = self._pg, len(cols)
            done = [0]

            def chunks() -> Iterator[bytes | bytearray]:
                batch = []
                for row in rows:
                    batch.append(fix(row) if convert else row)
                    if len(batch) >= BATCH:
                        yield _copy_text(batch, ncols, writer.tx)
                        done[0] += len(batch)
                        self._wrote(len(batch))
                        batch = []
                if batch:
                    yield _copy_text(batch, ncols, writer.tx)
                    done[0] += len(batch)
                    self._wrote(len(batch))

            writer.copy(table, cols, chunks())
            count = done[0]
        if count:
            self.report.counts[table] = self.report.counts.get(table, 0) + count

    def _dt(self, value: datetime | None) -> Any:
        return None if value is None else self._value(value)

    def _write_units(self) -> None:
        if self._units_sent:
            return
        self._units_sent = True
        ids, text = self.ids, self.ids.text
        card_rows: list[tuple] = []
        card_res: list[tuple] = []

        def unit_rows() -> Iterator[tuple]:
            slot_id = self.slot_id
            over_all = self.slot_over
            for key, owner in self.owners.items():
                ln, root_id = owner.ln, owner.id
                refs = self.uref.get(key, {})
                if owner.mode == "pool":
                    continue
                if owner.mode == "listed":
                    card_ids = {}
                    for slot_no, name, _line, card_type in self.cards.get(key, ()):
                        cid = ids()
                        card_ids[name] = cid
                        card_res.append((cid, "card", name, ln, root_id, root_id, "in_service", self._now))
                        card_rows.append((cid, slot_no, card_type))
                    slots_by = {s: k for k, s in refs.items()}
                    for slot, a in self.listed.get(key, ()):
                        kind, name = slots_by[slot]
                        owner_id = card_ids[a["card"]] if a.get("card") else root_id
                        yield self._unit_tuple(slot, slot_id[slot], kind, name, a.get("seq", 0), ln, owner_id, root_id,
                                               a.get("side", ""), a.get("technology", ""), a.get("capacity", 1), a)
                    continue
                cards, units, _ = self._derived(owner)
                card_ids = {}
                for slot_no, name, card_type in cards:
                    cid = ids()
                    card_ids[slot_no] = cid
                    card_res.append((cid, "card", name, ln, root_id, root_id, "in_service", self._now))
                    card_rows.append((cid, slot_no, card_type))
                base = owner.base
                for i, (card_slot, kind, name, seq, capacity, tech, side) in enumerate(units):
                    owner_id = root_id if card_slot is None else card_ids[card_slot]
                    slot = refs.get((kind, name)) if refs else None
                    if slot is None:
                        yield (text(base + i), kind, name, seq, ln, owner_id, root_id, side, tech, "free", None, None,
                               None, capacity, 0, "in_service", None, None, None, FIRST_VERSION)
                    else:
                        yield self._unit_tuple(slot, text(base + i), kind, name, seq, ln, owner_id, root_id, side,
                                               tech, capacity, over_all.get(slot))

        # A card must exist before its units: the generator records an owner's cards as it
        # starts the owner, and they are written before each batch of units.
        units_iter = unit_rows()
        pending: list[tuple] = []
        for row in units_iter:
            pending.append(row)
            if len(pending) >= 50_000:
                self._flush_cards(card_res, card_rows)
                self._fast("unit", UNIT_COLS, pending, convert=False)
                pending = []
        self._flush_cards(card_res, card_rows)
        self._fast("unit", UNIT_COLS, pending, convert=False)
        self._write_numbers()

    def _flush_cards(self, card_res: list[tuple], card_rows: list[tuple]) -> None:
        if card_res:
            self._fast("resource", RES_COLS, card_res, convert=False)
            self._fast("card", ("id", "slot", "card_type"), card_rows)
            card_res.clear()
            card_rows.clear()

    def _unit_tuple(self, slot: int, uid: str, kind: str, name: str, seq: int, ln: str, owner_id: str, root_id: str,
                    side: str, tech: str, capacity: int, over: dict[str, Any] | None) -> tuple:
        if over:
            seq = over.get("seq", seq)
            side = over.get("side", side)
            tech = over.get("technology", tech)
            capacity = over.get("capacity", capacity)
            admin, locked_by, reason = over.get("admin_state", "in_service"), over.get("locked_by"), over.get("admin_reason")
        else:
            admin, locked_by, reason = "in_service", None, None
        occ, reservation, until, service, used = self.ledger.unit_columns(slot, capacity)
        return (uid, kind, name, seq, ln, owner_id, root_id, side or "", tech or "", occ, reservation, self._dt(until),
                service, capacity, used, admin, locked_by if admin == "locked" else None, reason, None, FIRST_VERSION)

    def _write_numbers(self) -> None:
        text = self.ids.text
        number_rows: list[tuple] = []

        def units() -> Iterator[tuple]:
            for pool_key, segs in self.pool_segments.items():
                owner = self.owners.get(pool_key)
                if owner is None:
                    continue
                refs = self.uref.get(pool_key, {})
                for lo, hi, width, seg_id, base in segs:
                    exchange = str(lo).zfill(width)[: width - 4]
                    for n in range(lo, hi + 1):
                        number = str(n).zfill(width)
                        slot = refs.get(("number", number)) if refs else None
                        over = self.number_over.get(number)
                        grade, level = self.grader.grade(number)
                        admin, reason, q = "in_service", None, None
                        if over:
                            grade = over.get("grade", grade)
                            level = over.get("grade_level", level)
                            admin = over.get("admin_state", admin)
                            reason = over.get("admin_reason")
                            q = self._dt(over.get("quarantine_until"))
                        uid = text(base + n - lo)
                        occ, reservation, until, service, _used = self.ledger.unit_columns(slot, 1)
                        until = self._dt(until)
                        number_rows.append((uid, number, owner.id, seg_id, exchange, number[-4:], grade, level))
                        yield (uid, "number", number, n, owner.ln, seg_id, owner.id, "", "", occ, reservation, until,
                               service, 1, 0, admin, None, reason, q, FIRST_VERSION)

        pending: list[tuple] = []
        cols = ("id", "number", "pool_id", "segment_id", "exchange_code", "tail4", "grade", "grade_level")
        for row in units():
            pending.append(row)
            if len(pending) >= 50_000:
                self._fast("unit", UNIT_COLS, pending, convert=False)
                self._fast("number", cols, number_rows, convert=False)
                pending = []
                number_rows.clear()
        self._fast("unit", UNIT_COLS, pending, convert=False)
        self._fast("number", cols, number_rows, convert=False)


JOB_KIND = "import"


def import_job(database: Database, job_id: str, progress: ProgressFn) -> dict[str, Any]:
    """The `import` job (resource_mgr.jobs): params {"path", "allow_partial"}. Progress goes to
    Job.done/total. On SQLite the write phase does not report progress (the import holds the
    only write lock until it commits); on PostgreSQL it does. A bundle with bad rows fails the
    job: `errors` says how many and the first ones, `result` holds the whole report."""
    from resource_mgr.jobs.models import Job

    with database.read_session() as s:
        job = s.get(Job, job_id)
        params = dict(job.params or {}) if job is not None else {}
    path = params.get("path")
    if not path:
        raise Invalid("the import job has no bundle path", field="path")
    importer = Importer(database, path, allow_partial=bool(params.get("allow_partial")), progress=progress,
                        principal=job.created_by if job is not None else "system:bulk-import")
    importer.mute_while_writing = database.dialect != "postgresql"
    report = importer.run()
    if not report.written:
        with database.unit_of_work(principal=importer.principal) as uow:
            found = uow.session.get(Job, job_id)
            if found is not None:
                found.result = report.as_dict()
            uow.commit()
        first = "; ".join(str(p) for p in report.problems[:5])
        raise Invalid(f"{report.problem_count} bad row(s); nothing was written: {first}", field="file")
    return report.as_dict()


def _register_job() -> None:
    from resource_mgr.jobs.services import register

    register(JOB_KIND, import_job, rerun="idempotent")  # one transaction: a runner that died rolled it back


_register_job()
