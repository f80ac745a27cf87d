"""Bulk reads for design, in two kinds:

- **topology** (what a unit is, its root resource's facts — cable length and gauge, splitter
  ratio, OLT model, site — and its connections) changes rarely: it is kept per process and
  database in `_Topology`, read a whole frontier at a time on a miss, and brought up to date from
  the change feed (resource_mgr.changes) before every design: a new connection re-reads the links
  of its two ends, a changed resource the facts of its units (and which units its owners have);
  a change it cannot place (an import, a deletion, too many at once) starts a fresh topology.
- **state** (occupancy, holder, expiry, admin state, capacity, used, live holds of others, the
  root resource's status) is read fresh for every design, in one query for all the units the
  walk reached (`Tracer.ensure_state`).

So a design costs a handful of queries (the serving boxes, the feed check, the state; copper
adds its pools), whatever the length of the path."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import String, any_, bindparam, case, func, or_, select, text, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from resource_mgr.clock import aware
from resource_mgr.config import Settings
from resource_mgr.db import UTCDateTime
from resource_mgr.inventory.models import Cable, Connection, CrossBox, Device, Frame, Resource
from resource_mgr.occupancy.models import History, SharedHold, Unit
from resource_mgr.states import AdminState, Occupancy, ResourceStatus

_res = Resource.__table__.alias("root")
_cab = Cable.__table__.alias("root_cable")
_dev = Device.__table__.alias("root_device")
_frm = Frame.__table__.alias("root_frame")
_cbx = CrossBox.__table__.alias("root_cross_box")
_u = Unit.__table__
_CHUNK = 900
_NOW = bindparam("now", type_=UTCDateTime)
_RES = bindparam("res")
# History actions that change only a unit's state (read fresh anyway): any other committed
# change may touch the topology (`_Topology.follow`).
STATE_ACTIONS = ("preoccupy", "release_preoccupation", "occupy", "release", "expire", "end_quarantine", "lock",
                 "unlock", "mark_faulty", "repair", "reserve", "unreserve")
# rows about orders, services and identities never change what units are or how they connect
NOT_TOPOLOGY = ("reservation", "service", "user", "api_token", "fault", "cutover")
# kinds of history rows that are not about units, their resources or connections
NOT_PLANT = ("local_network", "naming_rule", "device_template")
MAX_CACHED_UNITS = 2_000_000
MAX_CHANGES = 500  # more topology changes than this since the last design: read it all again


HEAD_KINDS = ("pon_port", "dsl_port", "line_port", "eth_port")  # a walk ends there
DOWNSTREAM_KINDS = ("box_port", "ont_port")  # a walk starts there, never goes back into one
# PostgreSQL: every unit a walk from these units towards the head could reach, in one recursive
# query (along connections, never straight back, and from a splitter output to its inputs),
# instead of a query per level; the walk then finds them all cached.
_REACH_PG = text("""
WITH RECURSIVE reach(id, prev, depth) AS (
    SELECT x, CAST('' AS varchar), 0 FROM unnest(CAST(:ids AS varchar[])) AS x
    UNION
    SELECT e.dst, r.id, r.depth + 1
    FROM reach r
    JOIN unit u ON u.id = r.id
    CROSS JOIN LATERAL (  -- lateral: each step is three index lookups, never a join of the tables
        SELECT c.z_unit_id AS dst FROM connection c WHERE c.a_unit_id = r.id
        UNION ALL SELECT c.a_unit_id FROM connection c WHERE c.z_unit_id = r.id
        UNION ALL SELECT i.id FROM unit i
                  WHERE u.kind = 'splitter_out' AND i.root_id = u.root_id AND i.kind = 'splitter_in') e
    WHERE r.depth < :levels AND e.dst <> r.prev AND u.kind NOT IN :heads
      AND (r.depth = 0 OR u.kind NOT IN :downstream)
)
SELECT DISTINCT u.id, u.kind, u.root_id, r.depth = 0 FROM reach r JOIN unit u ON u.id = r.id
""").bindparams(bindparam("heads", value=HEAD_KINDS, expanding=True),
                bindparam("downstream", value=DOWNSTREAM_KINDS, expanding=True))


def _in(column: Any, name: str, dialect: str) -> Any:
    """`column IN (:name)`: on PostgreSQL `= ANY(:name)` with one array parameter, so the text of
    the statement never changes and the server prepares it once (planning costs more than running)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


_STATIC = [_u.c.id, _u.c.kind, _u.c.name, _u.c.seq, _u.c.root_id, _u.c.owner_id, _u.c.side, _u.c.technology,
           _res.c.kind, _res.c.name, _cab.c.length_m, _cab.c.conductor_mm, _dev.c.split_ratio, _dev.c.device_type,
           _dev.c.technology, _dev.c.model, func.coalesce(_dev.c.site_id, _frm.c.site_id, _cbx.c.site_id)]


def _state_columns() -> list[Any]:
    held = (select(func.count()).select_from(SharedHold.__table__)
            .where(SharedHold.__table__.c.unit_id == _u.c.id, SharedHold.__table__.c.expires_at > _NOW,
                   SharedHold.__table__.c.holder != _RES)
            .correlate(_u).scalar_subquery())
    return [_u.c.capacity, _u.c.used, _u.c.occupancy, _u.c.reservation_id, _u.c.preoccupied_until,
            _u.c.admin_state, case((_u.c.capacity > 1, held), else_=0).label("held"), _res.c.status]


def _select(*cols: Any, frm: Any = None) -> Any:
    frm = _u if frm is None else frm
    joined = (frm.join(_res, _res.c.id == _u.c.root_id).outerjoin(_cab, _cab.c.id == _u.c.root_id)
              .outerjoin(_dev, _dev.c.id == _u.c.root_id).outerjoin(_frm, _frm.c.id == _u.c.root_id)
              .outerjoin(_cbx, _cbx.c.id == _u.c.root_id))
    return select(*cols).select_from(joined)


def _free() -> Any:
    """SQL: an exclusive unit free now (an expired pre-occupation is free), or held by `res`."""
    return or_(_u.c.occupancy == Occupancy.FREE.value,
               (_u.c.occupancy == Occupancy.PREOCCUPIED.value) & (_u.c.preoccupied_until <= _NOW),
               _u.c.reservation_id == _RES)


@cache
def _statement(name: str, dialect: str) -> Any:
    """Built once per process: building a statement costs more than running it."""
    if name == "by_owner":
        return _select(*_STATIC).where(_in(_u.c.owner_id, "ids", dialect), _u.c.kind == bindparam("kind"))
    if name == "by_root":
        return _select(*_STATIC).where(_in(_u.c.root_id, "ids", dialect), _u.c.kind == bindparam("kind"))
    if name == "related":  # units that are, or belong to (root or owner), these ids
        return _select(*_STATIC).where(or_(_in(_u.c.id, "ids", dialect), _in(_u.c.root_id, "ids", dialect),
                                           _in(_u.c.owner_id, "ids", dialect)))
    if name == "state":
        return (select(_u.c.id, *_state_columns()).select_from(_u.join(_res, _res.c.id == _u.c.root_id))
                .where(_in(_u.c.id, "ids", dialect)))
    if name.startswith("pool"):
        where = [_in(_u.c.root_id, "ids", dialect), _u.c.kind == bindparam("kind"),
                 _u.c.admin_state == AdminState.IN_SERVICE.value, _free(), ~_in(_u.c.id, "avoid", dialect)]
        if "_side" in name:
            where.append(_u.c.side == bindparam("side"))
        if "_techs" in name:
            where.append(_in(_u.c.technology, "techs", dialect))
        # the few ids first (one table, its indexes), then their facts: joins for `lim` rows only
        inner = select(_u.c.id.label("pick")).where(*where).order_by(_u.c.seq, _u.c.id).limit(bindparam("lim")) \
            .subquery("picked")
        return _select(*_STATIC, *_state_columns(), frm=_u.join(inner, inner.c.pick == _u.c.id)) \
            .order_by(_u.c.seq, _u.c.id)
    if name == "head_stats":
        devices = select(Device.__table__.c.id).where(Device.__table__.c.site_id == bindparam("site"))
        return (select(_u.c.root_id, func.count(),
                       func.sum(case((_u.c.occupancy == Occupancy.FREE.value, 0), else_=1)))
                .where(_u.c.root_id.in_(devices), _u.c.kind == bindparam("kind"),
                       _in(_u.c.technology, "techs", dialect))
                .group_by(_u.c.root_id))
    if name == "neighbours":
        c = Connection.__table__
        one = _select(c.c.a_unit_id.label("src"), c.c.kind.label("ckind"), c.c.container_id, *_STATIC,
                      frm=c.join(_u, _u.c.id == c.c.z_unit_id)).where(_in(c.c.a_unit_id, "ids", dialect))
        two = _select(c.c.z_unit_id.label("src"), c.c.kind.label("ckind"), c.c.container_id, *_STATIC,
                      frm=c.join(_u, _u.c.id == c.c.a_unit_id)).where(_in(c.c.z_unit_id, "ids", dialect))
        return union_all(one, two)
    if name == "feed":
        h = History.__table__
        return select(
            select(func.max(h.c.position)).scalar_subquery(),
            select(func.count()).select_from(h).where(h.c.position > bindparam("pos"),
                                                      h.c.action.not_in(STATE_ACTIONS),
                                                      h.c.resource_kind.not_in(NOT_TOPOLOGY)).scalar_subquery(),
            # the row at the position the topology began at: another one (or none) means the
            # feed was emptied (a database made again)
            select(h.c.id).where(h.c.position == bindparam("base")).scalar_subquery(),
            select(h.c.id).where(h.c.position == select(func.max(h.c.position)).scalar_subquery())
            .scalar_subquery())
    if name == "feed_rows":
        h = History.__table__
        return (select(h.c.resource_id, h.c.resource_kind, h.c.action, h.c.before, h.c.after)
                .where(h.c.position > bindparam("pos"), h.c.position <= bindparam("head"),
                       h.c.action.not_in(STATE_ACTIONS), h.c.resource_kind.not_in(NOT_TOPOLOGY))
                .order_by(h.c.position).limit(MAX_CHANGES + 1))
    raise KeyError(name)


class _Topology:
    """What units are and how they connect, per process and database, following the change feed.

    Entries are only ever added or replaced, never removed, so a design running in another thread
    never finds a unit it has reached missing; a change that cannot be applied in place makes a
    new _Topology (designs already running keep the one they started with)."""

    def __init__(self, position: int | None = None, position_id: int | None = None) -> None:
        self.lock = threading.Lock()
        self.position = position
        # (position, history row id) where it began: the feed it follows is still the same one
        # while that row is
        self.base: tuple[int, int | None] = (position or 0, position_id)
        self.static: dict[str, tuple] = {}  # unit id -> the _STATIC row
        self.links: dict[str, list[tuple[str, str, str | None]]] = {}  # -> [(other id, kind, container)]
        self.owned: dict[tuple[str, str], list[str]] = {}  # (owner or root id, kind) -> unit ids by seq
        self.owned_by: dict[tuple[str, str], str] = {}  # -> the statement that read it (by_owner, by_root)
        self.site_names: dict[str, str] = {}
        self.extra: dict[str, Any] = {}  # other static things kept with it (lan.py: the LAN switches)

    # -- reading (the Tracer's misses, and the changes followed) -----------------------------

    def keep(self, row: Sequence[Any]) -> str:
        static = tuple(row[:len(_STATIC)])
        self.static[static[0]] = static
        return static[0]

    def read_owned(self, run: Any, name: str, ids: Sequence[str], kind: str) -> None:
        found: dict[str, list[tuple[int, str]]] = {i: [] for i in ids}
        col = 5 if name == "by_owner" else 4  # owner_id / root_id in _STATIC
        for row in run(name, ids=list(ids), kind=kind):
            found[row[col]].append((row[3], self.keep(row)))
        for i, units in found.items():
            self.owned_by[(i, kind)] = name
            self.owned[(i, kind)] = [uid for _seq, uid in sorted(units)]

    def read_links(self, run: Any, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            found: dict[str, list[tuple[str, str, str | None]]] = {uid: [] for uid in chunk}
            for row in run("neighbours", ids=chunk):
                found[row[0]].append((self.keep(row[3:]), row[1], row[2]))
            self.links.update(found)

    # -- following the change feed -----------------------------------------------------------

    def apply(self, run: Any, rows: Sequence[Any]) -> bool:
        """Bring the cached topology up to date with these history rows (no state changes among
        them); False when one cannot be applied in place (start again from nothing)."""
        ends: set[str] = set()  # units whose connections changed
        touched: set[str] = set()  # resources or units whose facts or units changed
        for resource_id, kind, action, before, after in rows:
            if kind in NOT_PLANT:
                continue
            if kind == "connection":
                found = [(d or {}).get(k) for d in (before, after) for k in ("a_unit_id", "z_unit_id")]
                if not any(found):
                    return False
                ends.update(i for i in found if i)
            elif kind == "bulk_import" or any(w in action for w in ("delete", "remove", "disconnect")):
                return False  # many things at once, or something gone: cached ids may be dangling
            else:
                touched.add(resource_id)
        if touched:
            ids = sorted(touched)
            stale_keys = {k for k in self.owned if k[0] in touched}
            for row in run("related", ids=ids):
                old = self.static.get(row[0])
                uid = self.keep(row)
                new = self.static[uid]
                for facts in (old, new):
                    if facts is not None:
                        stale_keys.update({(facts[5], facts[1]), (facts[4], facts[1])})
            for key in sorted(stale_keys & self.owned.keys()):
                self.read_owned(run, self.owned_by[key], [key[0]], key[1])
            for i in ids:
                self.site_names.pop(i, None)
            self.extra = {}
        cached_ends = sorted(i for i in ends if i in self.links)
        if cached_ends:
            self.read_links(run, cached_ends)
        return True

    def follow(self, session: Session, dialect: str, run: Any) -> _Topology:
        """The topology to design with: this one brought up to date, or a new one."""
        pos = self.position or 0
        head, changed, base_id, head_id = session.execute(
            _statement("feed", dialect), {"pos": pos, "base": self.base[0]}).one()
        head = head or 0
        if self.position is None:
            with self.lock:
                if self.position is None:
                    self.position, self.base = head, (head, head_id)
            return self
        if base_id != self.base[1]:
            return _Topology(head, head_id)
        if head < pos:
            return self  # a design whose snapshot predates the last one followed (threads race)
        if len(self.static) > MAX_CACHED_UNITS or changed > MAX_CHANGES:
            return _Topology(head, head_id)
        with self.lock:
            if self.position >= head:  # another thread has followed them meanwhile
                return self
            if changed:
                rows = run("feed_rows", pos=self.position, head=head).all()
                if len(rows) > MAX_CHANGES or not self.apply(run, rows):
                    return _Topology(head, head_id)
            self.position = head
            if self.base[1] is None:
                self.base = (head, head_id)
        return self


_TOPOLOGIES: dict[str, _Topology] = {}
_HEAD_STATS: dict[tuple, tuple[float, list]] = {}


def clear_topology_cache() -> None:
    """Forget every cached topology (after writes that log no history, e.g. in tests)."""
    _TOPOLOGIES.clear()
    _HEAD_STATS.clear()


@dataclass(slots=True)
class U:
    id: str
    kind: str
    name: str
    seq: int
    root_id: str
    owner_id: str
    side: str
    technology: str
    root_kind: str
    root_name: str
    length_m: float | None
    conductor_mm: float | None
    split_ratio: int | None
    device_type: str | None
    dev_technology: str | None
    model: str | None
    site_id: str | None
    # state: read fresh (ensure_state); `loaded` says it has been
    capacity: int = 1
    used: int = 0
    occupancy: str = ""
    reservation_id: str | None = None
    preoccupied_until: datetime | None = None
    admin_state: str = ""
    held: int = 0  # live holds of others (shared units)
    root_status: str = ""
    loaded: bool = False

    @property
    def shared(self) -> bool:
        return self.capacity > 1

    def set_state(self, row: Sequence[Any]) -> None:
        (self.capacity, self.used, self.occupancy, self.reservation_id, self.preoccupied_until,
         self.admin_state, self.held, self.root_status) = row
        self.loaded = True


class Tracer:
    """One design's reads: topology through the process cache, state fresh."""

    def __init__(self, session: Session, *, now: datetime, settings: Settings, avoid: Iterable[str] = (),
                 reservation_id: str | None = None) -> None:
        self.session, self.now, self.settings = session, now, settings
        self.dialect = session.get_bind().dialect.name
        self.avoid = frozenset(avoid)
        self.reservation_id = reservation_id
        self.units: dict[str, U] = {}
        self.queries = 0
        self.device_fill: dict[str, float] = {}  # head device id -> share of its ports in use
        key = str(session.get_bind().url)
        topo = _TOPOLOGIES.get(key) or _TOPOLOGIES.setdefault(key, _Topology())
        self.queries += 1
        self.topo = topo.follow(self.session, self.dialect, self._run)
        if self.topo is not topo:
            _TOPOLOGIES[key] = self.topo

    # -- reading -----------------------------------------------------------------------------

    def _run(self, name: str, **params: Any) -> Any:
        self.queries += 1
        return self.session.execute(_statement(name, self.dialect),
                                    {"now": self.now, "res": self.reservation_id or "", **params})

    def _unit(self, uid: str) -> U:
        u = self.units.get(uid)
        if u is None:
            u = self.units[uid] = U(*self.topo.static[uid])
        return u

    def _keep(self, row: Sequence[Any]) -> str:
        return self.topo.keep(row)

    def _owned(self, name: str, ids: Sequence[str], kind: str) -> list[U]:
        todo = [i for i in ids if (i, kind) not in self.topo.owned]
        if todo:
            self.topo.read_owned(self._run, name, todo, kind)
        return [self._unit(uid) for i in ids for uid in self.topo.owned.get((i, kind), [])]

    def by_owner(self, owner_ids: Sequence[str], kind: str) -> list[U]:
        """The units of a kind of these owners (boxes: their ports), by owner and seq."""
        return self._owned("by_owner", list(owner_ids), kind)

    def by_root(self, root_ids: Sequence[str], kind: str) -> list[U]:
        return self._owned("by_root", list(root_ids), kind)

    def neighbours(self, ids: Iterable[str]) -> None:
        """Make sure the connections of these units (and the units at their other ends) are known."""
        todo = sorted({i for i in ids if i not in self.topo.links})
        if todo and self.dialect == "postgresql":
            todo = self._reach(todo)
        if todo:
            self.topo.read_links(self._run, todo)

    def _reach(self, ids: list[str]) -> list[str]:
        """Prefetch what a walk from these units will need (see _REACH_PG): the inputs of the
        splitters reached, and the ids whose connections to read (these and those reached)."""
        from resource_mgr.design.walk import MAX_LEVELS

        self.queries += 1
        rows = self.session.execute(_REACH_PG, {"ids": ids, "levels": MAX_LEVELS}).all()
        roots = sorted({root for _id, kind, root, _seed in rows if kind == "splitter_out"}
                       - {k[0] for k in self.topo.owned if k[1] == "splitter_in"})
        if roots:
            self.by_root(roots, "splitter_in")
        want = {uid for uid, kind, _root, seed in rows
                if seed or (kind not in HEAD_KINDS and kind not in DOWNSTREAM_KINDS and kind != "splitter_out")}
        return sorted(i for i in want | set(ids) if i not in self.topo.links)

    def links(self, uid: str) -> list[tuple[str, str, str | None]]:
        return self.topo.links.get(uid, [])

    def next_of(self, uid: str, prev: str | None) -> list[tuple[str, str, str | None]]:
        return [link for link in self.links(uid) if link[0] != prev]

    def unit(self, uid: str) -> U:
        return self._unit(uid)

    def ensure_state(self, units: Iterable[U]) -> None:
        """Read the state of every unit not read yet in this design, in one query."""
        todo = sorted({u.id for u in units if not u.loaded})
        for i in range(0, len(todo), _CHUNK):
            for row in self._run("state", ids=todo[i:i + _CHUNK]):
                self.units[row[0]].set_state(row[1:])

    def pool(self, root_ids: Sequence[str], kind: str, *, side: str | None = None, techs: Sequence[str] | None = None,
             limit: int) -> list[U]:
        """Free, in-service units of a kind of these roots (lowest seq first), not avoided, with state."""
        params: dict[str, Any] = {"ids": list(root_ids), "kind": kind, "avoid": sorted(self.avoid), "lim": limit}
        name = "pool"
        if side is not None:
            name, params["side"] = name + "_side", side
        if techs is not None:
            name, params["techs"] = name + "_techs", list(techs)
        out = []
        for row in self._run(name, **params):
            u = self._unit(self._keep(row))
            u.set_state(row[len(_STATIC):])
            out.append(u)
        return out

    def head_stats(self, site_id: str, kind: str, techs: Sequence[str]) -> list[tuple[str, int, int]]:
        """(device id, ports, ports not free) of the head devices at a site, for the policy's
        order only: kept per process for `design_head_stats_seconds` (counting every port of an
        exchange for every design would cost more than the rest of the design)."""
        key = (str(self.session.get_bind().url), site_id, kind, tuple(techs))
        ttl = self.settings.design_head_stats_seconds
        hit = _HEAD_STATS.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        stats = [tuple(r) for r in self._run("head_stats", site=site_id, kind=kind, techs=list(techs))]
        if ttl > 0:
            if len(_HEAD_STATS) > 10_000:
                _HEAD_STATS.clear()
            _HEAD_STATS[key] = (time.monotonic() + ttl, stats)
        return stats

    # -- judging -----------------------------------------------------------------------------

    def room(self, u: U) -> int:
        """Places the unit can give this design now (0: none)."""
        if not u.loaded:
            self.ensure_state([u])
        if u.id in self.avoid or u.admin_state != AdminState.IN_SERVICE or u.root_status != ResourceStatus.IN_SERVICE:
            return 0
        if u.shared:
            cap = u.capacity
            if u.kind == "pon_port":
                cap = min(cap, self.settings.design_max_onts_per_pon)
            return max(cap - u.used - u.held, 0)
        if u.occupancy == Occupancy.FREE:
            return 1
        if u.occupancy == Occupancy.PREOCCUPIED:
            if self.reservation_id and u.reservation_id == self.reservation_id:
                return 1
            if u.preoccupied_until is not None and aware(u.preoccupied_until) <= self.now:
                return 1  # an expired pre-occupation is free for everyone at once
        return 0

    def fill(self, u: U) -> float:
        """How full a shared unit is (0..1); an exclusive one is 0 when free."""
        cap = min(u.capacity, self.settings.design_max_onts_per_pon) if u.kind == "pon_port" else u.capacity
        return 1.0 - self.room(u) / cap if cap else 1.0
