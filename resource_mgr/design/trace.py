"""Reads for design, kept per process and database in `_Topology` and brought up to date from the
change feed (resource_mgr.changes) at the start of every design, in one indexed query:

- **topology** (what a unit is, its root resource's facts — cable length and gauge, splitter
  ratio, OLT model, site — and its connections, which units a root or owner has, the chains a
  walk from a box port finds): read a whole frontier at a time on a miss; a new connection
  re-reads the links of its two ends, a changed resource the facts of its units (and which units
  its owners have); a change it cannot place (an import, a deletion, too many at once) starts a
  fresh topology.
- **state** (occupancy, holder, expiry, admin state, capacity, used, the holds on a shared
  unit, the root resource's status): every change of a unit's state writes a history row about
  the unit (STATE_ACTIONS), so the state kept is forgotten unit by unit as the feed names them,
  and read again (one query for all the misses of a design) when next needed. Expiry is judged
  by the design's `now`, never by what was read. At most `design_state_cache_units` states are
  kept (past that, all are forgotten and read again).
- **per address** (the address tree above it, its serving boxes, the LAN point): kept with the
  topology and forgotten with any change that is not a unit's state or a connection.

A design is thus as fresh as the feed when it began: every change committed before it is seen,
in this process or another. A transaction that has changed the plant itself (its own rows not
in the feed yet: a reservation of several products, a cutover plan) reads the state fresh and
keeps nothing it read. The ledger still locks and re-checks what an order takes."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from resource_mgr.changes.feed import _PENDING
from resource_mgr.clock import aware
from resource_mgr.config import Settings
from resource_mgr.design.reads import (
    DOWNSTREAM_KINDS, HEAD_KINDS, NOT_PLANT, NOT_TOPOLOGY, REACH_PG, STATE_ACTIONS, STATIC, statement,
)
from resource_mgr.inventory.models import Connection, Coverage, Resource
from resource_mgr.occupancy.models import SharedHold, SharedUse, Unit
from resource_mgr.states import AdminState, Occupancy, ResourceStatus

_CHUNK = 900
MAX_CHANGES = 500  # more topology changes than this since the last design: read it all again
FEED_PAGE = 2000  # feed rows read per query while catching up
FEED_PAGES = 20  # more than this many pages behind: start again from nothing
_N_STATIC = len(STATIC)
_UNIQUE = frozenset({0, 3, 10, 11, 12})  # id, seq, length, gauge, ratio: not worth sharing
_FREE, _PREOCCUPIED, _IN_SERVICE = Occupancy.FREE.value, Occupancy.PREOCCUPIED.value, AdminState.IN_SERVICE.value
_RS_IN_SERVICE = ResourceStatus.IN_SERVICE.value
_NO_PARALLEL = text("SET LOCAL max_parallel_workers_per_gather = 0")
_GONE = (1, 0, "", None, None, "", "", ())  # the state of a unit no longer there
_PLANT_TYPES = (Unit, SharedHold, SharedUse, Connection, Resource, Coverage)
_WROTE_PLANT = "design_wrote_plant"  # session.info: this transaction flushed plant rows

__all__ = ["DOWNSTREAM_KINDS", "HEAD_KINDS", "NOT_TOPOLOGY", "STATE_ACTIONS", "Tracer", "U", "clear_topology_cache"]


@event.listens_for(Session, "after_flush")
def _note_plant_writes(session: Session, _ctx: Any) -> None:
    """A transaction that flushed units, holds, connections, resources or coverage designs with
    fresh state (its changes are not in the feed until it commits), even if it logs no history."""
    if _WROTE_PLANT in session.info:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, _PLANT_TYPES):
            session.info[_WROTE_PLANT] = True
            return


@event.listens_for(Session, "after_transaction_end")
def _forget_plant_writes(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE_PLANT, None)


class _Topology:
    """What units are and how they connect, their state, and what is known per address, per
    process and database, following the change feed.

    Topology entries are only ever added or replaced, never removed, so a design running in
    another thread never finds a unit it has reached missing; a change that cannot be applied in
    place makes a new _Topology (designs already running keep the one they started with)."""

    def __init__(self, position: int | None = None, position_id: int | None = None) -> None:
        self.lock = threading.Lock()
        self.position = position
        # (position, history row id) where it began: the feed it follows is still the same one
        # while that row is
        self.base: tuple[int, int | None] = (position or 0, position_id)
        self.version = 0  # +1 at every topology change applied: what was derived before is stale
        self.static: dict[str, tuple] = {}  # unit id -> the STATIC row
        self.same: dict[Any, Any] = {}  # one copy of each value units repeat (keep)
        self.links: dict[str, list[tuple[str, str, str | None]]] = {}  # -> [(other id, kind, container)]
        self.owned: dict[tuple[str, str], list[str]] = {}  # (owner or root id, kind) -> unit ids by seq
        self.owned_by: dict[tuple[str, str], str] = {}  # -> the statement that read it (by_owner, by_root)
        self.site_names: dict[str, str] = {}
        self.extra: dict[str, Any] = {}  # other static things kept with it (lan.py: the LAN switches)
        self.state: dict[str, tuple] = {}  # unit id -> its state (U.set_state), as of `position`
        self.walks: dict[tuple[str, str], list] = {}  # (walk key, start unit) -> its chains (walk.py)
        self.pools: dict[tuple, list[str]] = {}  # (roots, kind, side, techs) -> unit ids in pool order
        self.per_address: dict[tuple, Any] = {}  # (what, address id, ...) -> ancestors, serving boxes

    # -- reading (the Tracer's misses, and the changes followed) -----------------------------

    def keep(self, row: Sequence[Any]) -> str:
        """Keep a unit's STATIC row; the values many units repeat (their kind, root and owner ids,
        the root's name and facts) are kept once (a third of the memory per unit)."""
        same = self.same
        static = tuple(v if i in _UNIQUE else same.setdefault(v, v) for i, v in enumerate(row[:_N_STATIC]))
        kept = self.static.get(static[0])
        if kept is not None:  # the same id object as the key and every link to it
            static = (kept[0], *static[1:])
        self.static[static[0]] = static
        return static[0]

    def read_owned(self, run: Any, name: str, ids: Sequence[str], kind: str) -> None:
        found: dict[str, list[tuple[int, str]]] = {i: [] for i in ids}
        col = 5 if name == "by_owner" else 4  # owner_id / root_id in STATIC
        for row in run(name, ids=list(ids), kind=kind):
            found[row[col]].append((row[3], self.keep(row)))
        for i, units in found.items():
            self.owned_by[(i, kind)] = name
            self.owned[(i, kind)] = [uid for _seq, uid in sorted(units)]

    def read_links(self, run: Any, ids: Sequence[str]) -> None:
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            found: dict[str, list[tuple[str, str, str | None]]] = {uid: [] for uid in chunk}
            same = self.same
            for row in run("neighbours", ids=chunk):
                found[row[0]].append((self.keep(row[3:]), same.setdefault(row[1], row[1]),
                                      same.setdefault(row[2], row[2])))
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
                self.state.pop(uid, None)  # its root's status may have changed
                new = self.static[uid]
                for facts in (old, new):
                    if facts is not None:
                        stale_keys.update({(facts[5], facts[1]), (facts[4], facts[1])})
            for key in sorted(stale_keys & self.owned.keys()):
                self.read_owned(run, self.owned_by[key], [key[0]], key[1])
            for i in ids:
                self.site_names.pop(i, None)
                self.state.pop(i, None)
            self.extra = {}
            self.per_address = {}  # an address, a box or its coverage may have changed
        cached_ends = sorted(i for i in ends if i in self.links)
        if cached_ends:
            self.read_links(run, cached_ends)
        if ends or touched:
            self.version += 1
            self.walks, self.pools = {}, {}
        return True

    def follow(self, session: Session, dialect: str, run: Any, max_units: int) -> tuple[_Topology, int]:
        """The topology to design with (this one brought up to date, or a new one: also when it
        keeps more than `max_units` units), and the position of the feed the design's own reads
        are at least as new as."""
        if self.position is None:
            head, head_id = session.execute(statement("feed_head", dialect)).one_or_none() or (0, None)
            with self.lock:
                if self.position is None:
                    self.position, self.base = head, (head, head_id)
            return self, head
        pos = start = self.position
        rows: list[Any] = []
        for _page in range(FEED_PAGES):
            got = session.execute(statement("feed", dialect),
                                  {"pos": pos, "base": self.base[0], "lim": FEED_PAGE}).all()
            # another row where it began, or a head below the position followed: the database
            # was made again (tests empty it; ids and positions may start again)
            if got[0][0] != self.base[1] or (got[0][7] or 0) < start:
                return _Topology().follow(session, dialect, run, max_units)
            got = [r for r in got if r[1] is not None]
            rows += got
            if len(got) < FEED_PAGE:
                break
            pos = got[-1][1]
        else:
            return _Topology().follow(session, dialect, run, max_units)
        if len(self.static) > max_units:
            return _Topology().follow(session, dialect, run, max_units)
        if not rows:
            return self, pos
        head = rows[-1][1]
        with self.lock:
            new = [r for r in rows if r[1] > self.position]  # another thread may have followed some
            if new:
                plant = [r[2:7] for r in new if r[4] not in STATE_ACTIONS and r[3] not in NOT_TOPOLOGY]
                if len(plant) > MAX_CHANGES or (plant and not self.apply(run, plant)):
                    return _Topology().follow(session, dialect, run, max_units)
                for r in new:
                    if r[4] in STATE_ACTIONS:
                        self.state.pop(r[2], None)
                self.position = max(self.position, head)
        return self, head

    def store_state(self, at: int, found: dict[str, tuple], cap: int) -> None:
        """Keep states read by a design whose reads are at least as new as position `at`: only
        if nothing after `at` has been followed yet (else a change it missed may have been
        applied before it stores, and would never be seen)."""
        if cap <= 0:
            return
        with self.lock:
            if self.position != at:
                return
            if len(self.state) + len(found) > cap:
                self.state = {}
            self.state.update(found)


_TOPOLOGIES: dict[str, _Topology] = {}
_HEAD_STATS: dict[tuple, tuple[float, list]] = {}


def clear_topology_cache() -> None:
    """Forget every cached topology and state (after writes that log no history, e.g. in tests)."""
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
    # state: `loaded` says it has been set (ensure_state)
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

    def set_state(self, state: tuple, now: datetime, reservation_id: str | None) -> None:
        """From a kept state: (capacity, used, occupancy, reservation id, pre-occupied until,
        admin state, root status, ((holder, expires at), …))."""
        (self.capacity, self.used, self.occupancy, self.reservation_id, self.preoccupied_until,
         self.admin_state, self.root_status, holds) = state
        self.held = sum(1 for holder, until in holds if until > now and holder != reservation_id) \
            if holds and self.capacity > 1 else 0
        self.loaded = True


def _states(rows: Iterable[Sequence[Any]]) -> dict[str, tuple]:
    """The state rows (one per unit, or per hold on a shared unit) as kept states."""
    out: dict[str, tuple] = {}
    holds: dict[str, list] = {}
    for uid, cap, used, occ, res, until, admin, status, holder, expires in rows:
        if uid not in out:
            out[uid] = (cap, used, occ, res, aware(until) if until is not None else None, admin, status, ())
        if holder is not None:
            holds.setdefault(uid, []).append((holder, aware(expires)))
    for uid, found in holds.items():
        out[uid] = out[uid][:7] + (tuple(found),)
    return out


class Tracer:
    """One design's reads: through the process cache, which follows the feed."""

    def __init__(self, session: Session, *, now: datetime, settings: Settings, avoid: Iterable[str] = (),
                 reservation_id: str | None = None) -> None:
        self.session, self.now, self.settings = session, aware(now), settings
        self.dialect = session.get_bind().dialect.name
        self.avoid = frozenset(avoid)
        self.reservation_id = reservation_id
        self.units: dict[str, U] = {}
        self.queries = 0
        self.device_fill: dict[str, float] = {}  # head device id -> share of its ports in use
        self._room: dict[str, int] = {}
        self._st: dict[str, tuple] = {}  # unit id -> its state, as this design sees it
        self._serial_done = False
        self.walked: dict[tuple, Any] = {}  # walks done in this design (walk.py), by key and starts
        key = str(session.get_bind().url)
        topo = _TOPOLOGIES.get(key) or _TOPOLOGIES.setdefault(key, _Topology())
        self.queries += 1
        self.topo, self.position = topo.follow(self.session, self.dialect, self._run,
                                               settings.design_topology_cache_units)
        if self.topo is not topo:
            _TOPOLOGIES[key] = self.topo
        self.version = self.topo.version
        # this transaction's own changes to the plant are not in the feed: read, keep nothing
        self.fresh = bool(session.info.get(_WROTE_PLANT))
        if not self.fresh and _PENDING in session.info:
            self.queries += 1
            self.fresh = session.execute(statement("own_plant_rows", self.dialect)).first() is not None

    # -- reading -----------------------------------------------------------------------------

    def _run(self, name: str, **params: Any) -> Any:
        self._serial()
        self.queries += 1
        return self.session.execute(statement(name, self.dialect), params)

    def _serial(self) -> None:
        """PostgreSQL, before the first read past the cache: no parallel plans in this
        transaction. The reads are small index look-ups; the server plans some of them parallel
        (the costs of the joins add up), and starting the workers costs several times the
        query (7 ms against 54 ms measured for a frontier's connections)."""
        if self._serial_done or self.dialect != "postgresql":
            return
        self._serial_done = True
        self.queries += 1
        self.session.execute(_NO_PARALLEL)

    def _unit(self, uid: str) -> U:
        u = self.units.get(uid)
        if u is None:
            u = self.units[uid] = U(*self.topo.static[uid])
            st = self._st.get(uid)
            if st is not None:  # its state, once this design has it, comes with it
                u.set_state(st, self.now, self.reservation_id)
        return u

    def remember(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """What is known per address (ancestors, serving boxes), kept with the topology."""
        if self.fresh or self.settings.design_state_cache_units <= 0:
            return compute()
        kept = self.topo.per_address
        if key in kept:
            return kept[key]
        value = compute()
        with self.topo.lock:
            if self.topo.version == self.version and self.topo.per_address is kept:
                if len(kept) > self.settings.design_state_cache_units:
                    kept.clear()
                kept[key] = value
        return value

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
        """Prefetch what a walk from these units will need (see REACH_PG): the inputs of the
        splitters reached, and the ids whose connections to read (these and those reached)."""
        from resource_mgr.design.walk import MAX_LEVELS

        self._serial()
        self.queries += 1
        rows = self.session.execute(REACH_PG, {"ids": ids, "levels": MAX_LEVELS}).all()
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
        """Set the state of every unit not set yet in this design (kept ones from the cache, the
        others read in one query, and kept)."""
        todo = [u.id for u in units if not u.loaded]
        if todo:
            self._states_of(todo)

    def _states_of(self, ids: list[str]) -> dict[str, tuple]:
        """The state of these units as this design sees it: once seen, a unit's state stays
        the same for the rest of the design; the kept ones from the cache, the rest read."""
        seen, out = self._st, {}
        missing: list[str] = []
        kept = self.topo.state if not self.fresh else {}
        units, now, res = self.units, self.now, self.reservation_id
        for uid in ids:
            st = seen.get(uid)
            if st is None:
                st = kept.get(uid)
                if st is None:
                    missing.append(uid)
                    continue
                seen[uid] = st
                u = units.get(uid)
                if u is not None and not u.loaded:
                    u.set_state(st, now, res)
            out[uid] = st
        if missing:
            missing = sorted(set(missing))
            found: dict[str, tuple] = {}
            for i in range(0, len(missing), _CHUNK):
                found.update(_states(self._run("state", ids=missing[i:i + _CHUNK])))
            gone = {uid: _GONE for uid in missing if uid not in found}  # deleted meanwhile: no room
            seen.update(found)
            seen.update(gone)
            out.update(found)
            out.update(gone)
            for uid, st in found.items():
                u = units.get(uid)
                if u is not None and not u.loaded:
                    u.set_state(st, now, res)
            if not self.fresh:
                self.topo.store_state(self.position, found, self.settings.design_state_cache_units)
        return out

    def pool(self, root_ids: Sequence[str], kind: str, *, side: str | None = None, techs: Sequence[str] | None = None,
             limit: int) -> list[U]:
        """Free, in-service units of a kind of these roots (lowest seq first), not avoided, with
        state: an expired pre-occupation is free, so is a unit this design's reservation holds."""
        roots = list(root_ids)
        key = (tuple(roots), kind, side, tuple(techs) if techs is not None else None)
        ids = self.topo.pools.get(key)
        if ids is None:
            todo = [i for i in roots if (i, kind) not in self.topo.owned]
            if todo:
                self.topo.read_owned(self._run, "by_root", todo, kind)
            static, owned = self.topo.static, self.topo.owned
            ids = [uid for r in roots for uid in owned.get((r, kind), [])]
            if len(roots) > 1:
                ids.sort(key=lambda i: (static[i][3], i))
            allowed = set(techs) if techs is not None else None
            ids = [uid for uid in ids if (side is None or static[uid][6] == side)
                   and (allowed is None or static[uid][7] in allowed)]
            if not self.fresh:
                with self.topo.lock:
                    if self.topo.version == self.version:
                        self.topo.pools[key] = ids
        out: list[U] = []
        step = max(limit * 2, 64)
        now, res, avoid = self.now, self.reservation_id, self.avoid
        for i in range(0, len(ids), step):
            chunk = [uid for uid in ids[i:i + step] if uid not in avoid]
            states = self._states_of(chunk)
            for uid in chunk:
                _cap, _used, occ, holder, until, admin, _status, _holds = states[uid]
                if admin != _IN_SERVICE:
                    continue
                if occ == _FREE or (occ == _PREOCCUPIED and until is not None and until <= now) \
                        or (res and holder == res):
                    u = self._unit(uid)
                    if not u.loaded:
                        u.set_state(states[uid], now, res)
                    out.append(u)
                    if len(out) >= limit:
                        return out
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

    def load_states(self, ids: Iterable[str]) -> None:
        """Make sure this design has the state of these units (one query for those not kept)."""
        seen = self._st
        todo = [i for i in ids if i not in seen]
        if todo:
            self._states_of(todo)

    def room(self, u: U) -> int:
        """Places the unit can give this design now (0: none)."""
        return self.room_of(u.id)

    def room_of(self, uid: str) -> int:
        got = self._room.get(uid)
        if got is None:
            st = self._st.get(uid)
            if st is None:
                st = self._states_of([uid])[uid]
            got = self._room[uid] = self._judge(uid, self.topo.static[uid][1], st)
        return got

    def _judge(self, uid: str, kind: str, st: tuple) -> int:
        cap, used, occ, holder, until, admin, status, holds = st
        if uid in self.avoid or admin != _IN_SERVICE or status != _RS_IN_SERVICE:
            return 0
        if cap > 1:
            if kind == "pon_port":
                cap = min(cap, self.settings.design_max_onts_per_pon)
            res, now = self.reservation_id, self.now
            held = sum(1 for who, end in holds if end > now and who != res) if holds else 0
            return max(cap - used - held, 0)
        if occ == _FREE:
            return 1
        if occ == _PREOCCUPIED:
            if self.reservation_id and holder == self.reservation_id:
                return 1
            if until is not None and until <= self.now:
                return 1  # an expired pre-occupation is free for everyone at once
        return 0

    def fill(self, u: U) -> float:
        """How full a shared unit is (0..1); an exclusive one is 0 when free."""
        cap = min(u.capacity, self.settings.design_max_onts_per_pon) if u.kind == "pon_port" else u.capacity
        return 1.0 - self.room(u) / cap if cap else 1.0
