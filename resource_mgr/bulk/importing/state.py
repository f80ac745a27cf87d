"""What one import knows as it goes: the shared state every phase reads and adds to, the
report, and the fast id maker. Rows are held as tuples per table, unit references as slots (small
ints) with their facts in parallel arrays."""
from __future__ import annotations

import os
import time
from array import array
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from resource_mgr.bulk.format import BundleReader, Problem
from resource_mgr.db import Database
from resource_mgr.inventory.templates import TemplateSpec
from resource_mgr.occupancy.derive import Derivation

if TYPE_CHECKING:
    from resource_mgr.bulk.importing.numbers import FastGrader
    from resource_mgr.bulk.importing.writer import Writer

ProgressFn = Callable[[int, int], None]
MAX_REPORTED = 10_000  # problems kept in the report (all are counted)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class IdMaker:
    """ULID-layout ids (same layout as resource_mgr.ids.new_id) made fast for millions of rows:
    the time part is fixed at the start of the import, the 80-bit random part is 40 random bits
    and a 40-bit counter that starts at a random value."""

    _T = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]

    def __init__(self) -> None:
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


class SlotIds:
    """The ids of referenced units, kept as counters."""

    def __init__(self, ids: IdMaker) -> None:
        self._ids = ids
        self._a = array("q")

    def append(self, counter: int) -> None:
        self._a.append(counter)

    def __getitem__(self, slot: int) -> str:
        return self._ids.text(self._a[slot])


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
class Owner:
    """What owns units: a device, frame or box (by template, or listed), a cable, a number pool."""

    id: str
    kind: str  # resource kind
    ln: str
    name: str
    mode: str  # template | listed | cable | pool
    tpl: Any = None  # Template for template owners
    medium: str = ""
    count: int = 0
    key: str = ""
    base: int = 0  # template and cable owners: the id counter of their first unit (the rest follow)
    derived: Any = None  # units.derived(), once known


@dataclass
class Template:
    id: str
    name: str
    resource_kind: str
    device_type: str
    vendor: str
    spec: TemplateSpec | None
    existing: bool


def _service_hops() -> array:
    return array("i")


@dataclass(eq=False)
class ImportState:
    """Everything one import has learnt so far; each phase module reads and adds to it."""

    db: Database
    path: str
    principal: str = "system:bulk-import"
    partial: bool = False
    progress: ProgressFn | None = None
    # the name shown in problems and the history row (an upload's own name, never a server path)
    display_name: str = ""
    job_id: str | None = None  # the job the import runs for: marked in the import's own transaction
    max_rows: int | None = None  # refuse a bundle with more data rows
    max_bytes: int | None = None  # refuse an archive that expands to more
    mute_while_writing: bool = False
    # called at the end of a phase whose objects stay to the end (Importer.run: gc.freeze)
    freeze: Callable[[], None] = field(default=lambda: None)
    writing: bool = False
    sqlite: bool = True
    report: ImportReport = field(default_factory=ImportReport)
    ids: IdMaker = field(default_factory=IdMaker)
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    now_stored: Any = None  # `now` as written: the rows made with it need no conversion
    done: int = 0
    total: int = 0
    last_tick: float = 0.0
    reader: BundleReader | None = None
    out: Writer | None = None  # the write side, once the transaction is open
    # what the bundle makes, as rows (tuples) per table, in insert order
    rows: dict[str, list[tuple]] = field(default_factory=lambda: defaultdict(list))
    cols: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ln: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # code -> (id, area_code, existing)
    rules: dict[str, dict[str, str]] = field(default_factory=dict)  # ln id -> kind -> pattern
    rule_updates: list[tuple[str, str, str]] = field(default_factory=list)
    tpl: dict[str, Template] = field(default_factory=dict)
    res: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # resource key -> (id, kind, ln id)
    scoped: set[tuple[str, str, str]] = field(default_factory=set)  # (kind, scope id, name)
    owners: dict[str, Owner] = field(default_factory=dict)
    device_types: dict[str, str] | None = None  # device id -> type, once number pools ask
    management_ips: dict[str, str] = field(default_factory=dict)  # address -> device key ("" in the database)
    cards: dict[str, list[tuple[int, str, int, str]]] = field(default_factory=lambda: defaultdict(list))
    existing_numbers: bool = False
    # first, last, width, segment id, pool key, line, id counter of the first number, ln id
    segments: list[tuple[int, int, int, str, str, int, int, str]] = field(default_factory=list)
    # per local network (numbers are unique in theirs): its segments sorted, and their firsts
    segments_by_ln: dict[str, list[tuple]] = field(default_factory=dict)
    segment_firsts: dict[str, list[int]] = field(default_factory=dict)
    pool_segments: dict[str, list[tuple[int, int, int, str, int]]] = field(default_factory=lambda: defaultdict(list))
    # unit references
    uref: dict[str, dict[tuple[str, str], int]] = field(default_factory=lambda: defaultdict(dict))
    slot_id: SlotIds = None  # type: ignore[assignment]  # made from ids in __post_init__
    slot_cap: array = field(default_factory=lambda: array("i"))  # -1: not (yet) known to exist
    slot_ln: list[str | None] = field(default_factory=list)
    ledger: Derivation = field(default_factory=Derivation)  # the occupancy rules of resource_mgr.occupancy, on slots
    slot_over: dict[int, dict[str, Any]] = field(default_factory=dict)
    listed: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(list))
    number_over: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (ln id, number) -> attrs
    customers: dict[tuple[str, str], str] = field(default_factory=dict)
    services: dict[str, tuple[str, str, str, int]] = field(default_factory=dict)  # key -> (id, ln, state, line)
    bearer_of: dict[str, str] = field(default_factory=dict)  # service key -> the key of the service it rides on
    unborne: set[str] = field(default_factory=set)  # riders whose bearer is wrong (reported)
    service_number: dict[str, tuple[int, int]] = field(default_factory=dict)  # service key -> (slot, line)
    paths: dict[str, array] = field(default_factory=lambda: defaultdict(_service_hops))  # key -> seq, slot, line, ...
    # kind, a, z, container, line
    connections: tuple = field(default_factory=lambda: (array("b"), array("i"), array("i"), [], array("i")))
    holds: list[tuple[int, str, datetime, int]] = field(default_factory=list)
    derived_cache: dict[tuple, tuple] = field(default_factory=dict)
    grader: FastGrader = None  # type: ignore[assignment]
    # results of the ledger derivation (ledger.occupy)
    bad_services: set[str] = field(default_factory=set)
    good_holds: list[tuple[int, str, datetime]] = field(default_factory=list)
    good_connections: array = field(default_factory=lambda: array("i"))
    units_sent: bool = False

    def __post_init__(self) -> None:
        from resource_mgr.bulk.importing.numbers import FastGrader
        from resource_mgr.bulk.importing.writer import stored_value

        self.sqlite = self.db.dialect != "postgresql"
        self.slot_id = SlotIds(self.ids)
        self.grader = FastGrader()
        self.now_stored = stored_value(self.now, self.sqlite)
        if not self.display_name:
            self.display_name = os.path.basename(str(self.path).rstrip("/"))

    # -- reporting -----------------------------------------------------------------------------

    def problem(self, file: str, line: int, column: str, reason: str) -> None:
        self.report.problem_count += 1
        if len(self.report.problems) < MAX_REPORTED:
            self.report.problems.append(Problem(file, line, column, reason))

    def tick(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        if self.progress is None or (self.mute_while_writing and self.writing):
            return
        now = time.monotonic()
        if force or now - self.last_tick > 0.2:
            self.last_tick = now
            self.progress(self.done, max(self.total, self.done))

    def streaming(self) -> bool:
        """Rows are being sent during phase 1: until the first problem (the import will not commit)."""
        return self.out is not None and self.out.pg is not None and not self.writing \
            and not self.report.problem_count and not self.reader.problems

    def stream(self, *tables: str) -> None:
        if self.streaming():
            for table in tables:
                self.out.send(table)
