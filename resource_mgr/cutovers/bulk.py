"""The cutover's unit transitions in bulk: the ledger's transitions (resource_mgr.occupancy.models,
`Unit.lock` … `Unit.release`) run on plain copies of the unit rows, and what they change is
written with a few Core statements per thousand units.

Why: an ORM transition costs about a millisecond of Python each (most of it building the
write-only `Unit.history` collection for its history row), and a 20,000-row cutover makes
40,000 to 80,000 of them. Here a transition is a few microseconds; the writes are

- the units: one executemany `UPDATE … WHERE id = ? AND version = ?` (the version bumped by
  one per write, as the ORM does; a miss under our row locks is a Conflict, never a blind write);
- their history rows: one multi-row INSERT per 2,000 (stamped by the change feed at commit);
- the shared units' holds and uses: what changed against the rows as read (inserted, deleted,
  or a new `expires_at` / `since`).

The copies are loaded with their row locks (`SELECT … FOR UPDATE` in id order on PostgreSQL;
on SQLite the unit of work holds the write lock). `UnitCopy` has the methods, arguments,
checks, refusals, snapshots and history rows of `Unit` (the subset a cutover uses), so the
cutover's code runs unchanged on either: `PerUnit` is the ORM path through the ledger itself,
kept as the reference the bulk path is tested against
(tests/integration/test_cutover_bulk_units.py: both leave exactly the same rows).

The CHECK constraints of the unit table hold for what is written: the copies change the
columns together as the transitions do (an exclusive unit's holder matches its occupancy; a
shared unit keeps its holders in rows and `used` counts its uses).
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from resource_mgr.changes import feed
from resource_mgr.clock import aware
from resource_mgr.cutovers.validation import among
from resource_mgr.errors import Conflict, Expired, IllegalTransition, Invalid, Locked, NoCapacity, Quarantined
from resource_mgr.ids import new_id
from resource_mgr.occupancy.models import Change, History, SharedHold, SharedUse, Unit, shared_occupancy, shared_room
from resource_mgr.states import AdminState, Occupancy

WRITE_BATCH = 2000

_COLUMNS = ("id", "kind", "name", "local_network_id", "capacity", "used", "occupancy", "reservation_id",
            "preoccupied_until", "service_id", "admin_state", "locked_by", "admin_reason", "quarantine_until",
            "version")
# what a transition may change (written back)
WRITTEN = ("occupancy", "reservation_id", "preoccupied_until", "service_id", "used", "admin_state", "locked_by",
           "admin_reason", "quarantine_until")


class UnitCopy:
    """A unit row as read under its lock, changed by the ledger's transitions in Python."""

    __slots__ = (*_COLUMNS, "holds", "uses", "_holds0", "_uses0", "_dirty", "_owner")

    def __init__(self, row: Any, owner: BulkUnits) -> None:
        for c in _COLUMNS:
            setattr(self, c, getattr(row, c))
        self.occupancy = Occupancy(self.occupancy)
        self.admin_state = AdminState(self.admin_state)
        self.holds: dict[str, datetime] = {}  # shared: holder → expires_at
        self.uses: dict[str, datetime] = {}  # shared: service → since
        self._holds0: dict[str, datetime] = {}
        self._uses0: dict[str, datetime] = {}
        self._dirty = False
        self._owner = owner

    # -- reading (as Unit) --------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        return self.capacity > 1

    def _live(self, now: datetime) -> int:
        return sum(1 for t in self.holds.values() if t > now)

    def effective_occupancy(self, now: datetime) -> Occupancy:
        if self.shared:
            return shared_occupancy(self.used, self._live(now))
        if self.occupancy == Occupancy.PREOCCUPIED and aware(self.preoccupied_until) <= now:
            return Occupancy.FREE
        return self.occupancy

    def spare(self, now: datetime) -> int:
        if self.shared:
            return shared_room(self.capacity, self.used, self._live(now))
        return 1 if self.effective_occupancy(now) == Occupancy.FREE else 0

    def carries(self, service_id: str) -> bool:
        if self.shared:
            return service_id in self.uses
        return self.occupancy == Occupancy.OCCUPIED and self.service_id == service_id

    def is_quarantined(self, now: datetime) -> bool:
        return self.quarantine_until is not None and aware(self.quarantine_until) > now

    def use_since(self, service_id: str) -> datetime:
        return self.uses[service_id]

    def set_use_since(self, service_id: str, since: datetime) -> None:
        self.uses[service_id] = since

    def _snapshot(self, now: datetime) -> dict[str, Any]:
        snap: dict[str, Any]
        if self.shared:
            held = self._live(now)
            snap = {"occupancy": shared_occupancy(self.used, held).value, "admin_state": self.admin_state.value,
                    "used": self.used, "held": held}
        else:
            snap = {"occupancy": self.effective_occupancy(now).value, "admin_state": self.admin_state.value,
                    "reservation_id": self.reservation_id, "service_id": self.service_id}
            if self.preoccupied_until:
                snap["preoccupied_until"] = aware(self.preoccupied_until).isoformat()
        if self.locked_by:
            snap["locked_by"] = self.locked_by
        if self.quarantine_until:
            snap["quarantine_until"] = aware(self.quarantine_until).isoformat()
        return snap

    def _record(self, action: str, change: Change, before: dict[str, Any], *, reservation_id: str | None = None,
                service_id: str | None = None) -> None:
        self._dirty = True
        self._owner.log.append({
            "at": change.at, "principal": change.principal, "local_network_id": self.local_network_id,
            "resource_id": self.id, "resource_kind": self.kind, "action": action, "order_ref": change.order_ref,
            "reservation_id": reservation_id or change.reservation_id,
            "service_id": service_id or change.service_id, "cutover_id": change.cutover_id, "reason": change.reason,
            "before": before, "after": self._snapshot(change.at)})

    def _state_text(self, now: datetime) -> str:
        if self.shared:
            held = self._live(now)
            return (f"it is {shared_occupancy(self.used, held).value}: {self.used} of {self.capacity} places used, "
                    f"{held} held")
        state = self.effective_occupancy(now)
        if state == Occupancy.OCCUPIED:
            return f"it is occupied by service {self.service_id}"
        if state == Occupancy.PREOCCUPIED:
            return f"it is preoccupied by reservation {self.reservation_id}"
        if self.occupancy == Occupancy.PREOCCUPIED:
            return f"it is free (the pre-occupation of reservation {self.reservation_id} has expired)"
        return "it is free"

    def _refuse(self, action: str, why: str, error: type[Exception] = IllegalTransition) -> None:
        raise error(f"cannot {action} {self.kind} {self.name} ({self.id}): {why}", unit_id=self.id)

    # -- occupancy (as Unit) ------------------------------------------------------------------

    def _check_can_take(self, action: str, change: Change, holder: str | None) -> None:
        now = change.at
        if self.admin_state == AdminState.LOCKED:
            self._refuse(action, f"it is locked by cutover {self.locked_by}", Locked)
        if self.admin_state == AdminState.FAULTY:
            self._refuse(action, "it is marked faulty")
        if self.admin_state == AdminState.RESERVED:
            self._refuse(action, "it is reserved for planning")
        if self.is_quarantined(now):
            self._refuse(action, f"it is in quarantine until {aware(self.quarantine_until).isoformat()}", Quarantined)
        if self.shared:
            if holder and self.holds.get(holder, now) > now:
                return
            if self.spare(now) == 0:
                self._refuse(action, f"all {self.capacity} places are taken; " + self._state_text(now), NoCapacity)
            return
        state = self.effective_occupancy(now)
        if state == Occupancy.PREOCCUPIED and holder is not None and self.reservation_id == holder:
            return
        if state != Occupancy.FREE:
            who = self.service_id if state == Occupancy.OCCUPIED else self.reservation_id
            self._refuse(action, f"it is {state.value} by {who}", NoCapacity)

    def _settle_shared(self, now: datetime) -> None:
        self.occupancy = shared_occupancy(self.used, self._live(now))

    def _holds_for(self, reservation_id: str) -> bool:
        if self.shared:
            return reservation_id in self.holds
        return self.occupancy == Occupancy.PREOCCUPIED and self.reservation_id == reservation_id

    def preoccupy(self, change: Change, *, reservation_id: str, until: datetime) -> bool:
        if until <= change.at:
            raise Invalid("a pre-occupation must end in the future", field="ttl_hours")
        self._check_can_take("preoccupy", change, reservation_id)
        before = self._snapshot(change.at)
        if self.shared:
            if self.holds.get(reservation_id) == until:
                return False
            self.holds[reservation_id] = until
            self._settle_shared(change.at)
        else:
            if (self.occupancy == Occupancy.PREOCCUPIED and self.reservation_id == reservation_id
                    and aware(self.preoccupied_until) == until):
                return False
            self.occupancy, self.reservation_id, self.preoccupied_until = Occupancy.PREOCCUPIED, reservation_id, until
        self._record("preoccupy", change, before, reservation_id=reservation_id)
        return True

    def release_preoccupation(self, change: Change, *, reservation_id: str) -> bool:
        before = self._snapshot(change.at)
        if not self._holds_for(reservation_id):
            if self._last_about("reservation_id", reservation_id) in ("release_preoccupation", "expire"):
                return False
            self._refuse("release", (f"reservation {reservation_id} holds no place on it; " if self.shared else
                                     f"it is not pre-occupied by reservation {reservation_id}; ")
                         + self._state_text(change.at))
        if self.shared:
            del self.holds[reservation_id]
            self._settle_shared(change.at)
        else:
            self.occupancy, self.reservation_id, self.preoccupied_until = Occupancy.FREE, None, None
        self._record("release_preoccupation", change, before, reservation_id=reservation_id)
        return True

    def occupy(self, change: Change, *, service_id: str, reservation_id: str | None = None) -> bool:
        if not service_id:
            raise Invalid("occupying a unit needs the service that occupies it", field="service_id")
        now = change.at
        if self.carries(service_id):
            if reservation_id is not None and self._holds_for(reservation_id):
                self._refuse("occupy", f"service {service_id} is on it already; reservation {reservation_id} "
                                       "cannot occupy it again")
            return False
        if reservation_id is not None:
            if not self._holds_for(reservation_id):
                self._refuse("occupy", f"it is not pre-occupied by reservation {reservation_id}; "
                                       + self._state_text(now))
            live = (self.holds[reservation_id] > now if self.shared else aware(self.preoccupied_until) > now)
            if not live:
                self._refuse("occupy", f"the pre-occupation of reservation {reservation_id} has expired", Expired)
            if self.admin_state == AdminState.LOCKED:
                self._refuse("occupy", f"it is locked by cutover {self.locked_by}", Locked)
        else:
            self._check_can_take("occupy", change, None)
        before = self._snapshot(now)
        if self.shared:
            if reservation_id is not None:
                self.holds.pop(reservation_id, None)
            self.uses[service_id] = now
            self.used = len(self.uses)
            self.occupancy = Occupancy.OCCUPIED
        else:
            self.occupancy, self.service_id = Occupancy.OCCUPIED, service_id
            self.reservation_id = self.preoccupied_until = None
        self._record("occupy", change, before, reservation_id=reservation_id, service_id=service_id)
        return True

    def release(self, change: Change, *, service_id: str, quarantine_days: int | None = None) -> bool:
        if not self.carries(service_id):
            if service_id and self._last_about("service_id", service_id) == "release":
                return False
            self._refuse("release", f"service {service_id} is not on it; " + self._state_text(change.at)
                         if self.shared else
                         f"it is not occupied by service {service_id}; " + self._state_text(change.at))
        before = self._snapshot(change.at)
        if self.shared:
            del self.uses[service_id]
            self.used = len(self.uses)
            self._settle_shared(change.at)
        else:
            self.occupancy, self.service_id = Occupancy.FREE, None
        if self.kind == "number" and quarantine_days:
            self.quarantine_until = change.at + timedelta(days=quarantine_days)
        self._record("release", change, before, service_id=service_id)
        return True

    # -- administrative state (as Unit) -------------------------------------------------------

    def _set_admin(self, action: str, change: Change, allowed_from: set[AdminState], to: AdminState,
                   *, locked_by: str | None = None) -> None:
        if self.admin_state not in allowed_from:
            extra = f" by cutover {self.locked_by}" if self.admin_state == AdminState.LOCKED else ""
            self._refuse(action, f"it is {self.admin_state.value}{extra}; allowed only from "
                                 f"{', '.join(sorted(s.value for s in allowed_from))}")
        before = self._snapshot(change.at)
        self.admin_state, self.locked_by, self.admin_reason = to, locked_by, change.reason
        self._record(action, change, before)

    def lock(self, change: Change) -> None:
        if not change.cutover_id:
            raise Invalid("locking needs the cutover that locks", field="cutover_id")
        if self.admin_state == AdminState.LOCKED and self.locked_by == change.cutover_id:
            return
        self._set_admin("lock", change, {AdminState.IN_SERVICE}, AdminState.LOCKED, locked_by=change.cutover_id)

    def unlock(self, change: Change) -> None:
        if self.admin_state != AdminState.LOCKED or self.locked_by != change.cutover_id:
            self._refuse("unlock", f"it is not locked by cutover {change.cutover_id}"
                                   + (f" (locked by {self.locked_by})" if self.locked_by else ""))
        self._set_admin("unlock", change, {AdminState.LOCKED}, AdminState.IN_SERVICE)

    def set_admin_reason(self, reason: str | None) -> None:
        if reason != self.admin_reason:
            self.admin_reason, self._dirty = reason, True

    def _last_about(self, column: str, value: str) -> str | None:
        """As Unit._last_about: the latest history row of this unit naming `value` (our rows not
        written yet first; then the table, which holds this transaction's written ones too)."""
        for h in reversed(self._owner.log):
            if h["resource_id"] == self.id and h[column] == value:
                return h["action"]
        return self._owner.session.scalar(select(History.action).where(
            History.resource_id == self.id, getattr(History, column) == value,
            History.action.in_(("preoccupy", "release_preoccupation", "occupy", "release", "expire")))
            .order_by(History.id.desc()).limit(1))


class BulkUnits:
    """The units of one cutover transaction, as copies: `take` locks and loads them, the
    transitions change the copies, `write` writes what changed (and may be called once per batch)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.units: dict[str, UnitCopy] = {}
        self.log: list[dict[str, Any]] = []  # history rows not written yet, in transition order

    def take(self, ids: Iterable[str]) -> dict[str, UnitCopy]:
        """Row-lock (id order) and load these units; the ones taken already cost nothing."""
        session = self.session
        postgres = session.get_bind().dialect.name == "postgresql"
        wanted = set(ids) - set(self.units)
        table, hold, use = Unit.__table__, SharedHold.__table__, SharedUse.__table__
        cols = [table.c[c] for c in _COLUMNS]
        found: list[UnitCopy] = []
        for cond in among(session, table.c.id, wanted):
            stmt = select(*cols).where(cond).order_by(table.c.id)
            if postgres:
                stmt = stmt.with_for_update(of=table)
            for row in session.connection().execute(stmt):
                u = UnitCopy(row, self)
                self.units[u.id] = u
                found.append(u)
        missing = sorted(i for i in wanted if i not in self.units)
        if missing:
            raise Conflict(f"unit {missing[0]} of the cutover no longer exists", field="mapping", unit_id=missing[0])
        shared = [u.id for u in found if u.shared]
        for cond in among(session, hold.c.unit_id, shared):
            for unit_id, holder, expires in session.connection().execute(
                    select(hold.c.unit_id, hold.c.holder, hold.c.expires_at).where(cond)):
                self.units[unit_id].holds[holder] = aware(expires)
        for cond in among(session, use.c.unit_id, shared):
            for unit_id, service_id, since in session.connection().execute(
                    select(use.c.unit_id, use.c.service_id, use.c.since).where(cond)
                    .order_by(use.c.unit_id, use.c.service_id)):
                self.units[unit_id].uses[service_id] = aware(since)
        for u in found:
            if u.shared:
                u._holds0, u._uses0 = dict(u.holds), dict(u.uses)
        return self.units

    def write(self) -> int:
        """Write every changed unit, its holds and uses, and the history rows, then forget the
        session's ORM copies of them (they are stale now)."""
        session = self.session
        dirty = [u for u in self.units.values() if u._dirty]
        postgres = session.get_bind().dialect.name == "postgresql"
        if dirty:
            written = _update_units_pg(session, dirty) if postgres else _update_units(session, dirty)
            if written != len(dirty):
                raise Conflict("units of the cutover were changed under their row locks", field="mapping")
        self._write_shared([u for u in dirty if u.shared])
        # an executemany (pipelined on PostgreSQL): measured faster at 20,000 rows than one INSERT …
        # SELECT FROM unnest(arrays) per 10,000 rows (26 s against 91 s at load 13: not understood yet)
        for i in range(0, len(self.log), WRITE_BATCH):
            session.connection().execute(insert(History.__table__), self.log[i:i + WRITE_BATCH])
        if self.log:
            feed.mark_written(session)  # stamped by the change feed at commit
        self.log.clear()
        for u in dirty:
            u.version += 1
            u._dirty = False
            orm = session.identity_map.get(session.identity_key(Unit, u.id))
            if orm is not None:
                session.expire(orm)
        return len(dirty)

    def _write_shared(self, units: list[UnitCopy]) -> None:
        hold, use = SharedHold.__table__, SharedUse.__table__
        gone_holds, new_holds, moved_holds = [], [], []
        gone_uses, new_uses, moved_uses = [], [], []
        for u in units:
            for holder, expires in u._holds0.items():
                if holder not in u.holds:
                    gone_holds.append((u.id, holder))
                elif u.holds[holder] != expires:
                    moved_holds.append({"b_unit": u.id, "b_holder": holder, "b_expires": u.holds[holder]})
            new_holds += [{"id": new_id(), "unit_id": u.id, "holder": holder, "expires_at": expires}
                          for holder, expires in u.holds.items() if holder not in u._holds0]
            for sid, since in u._uses0.items():
                if sid not in u.uses:
                    gone_uses.append((u.id, sid))
                elif u.uses[sid] != since:
                    moved_uses.append({"b_unit": u.id, "b_service": sid, "b_since": u.uses[sid]})
            new_uses += [{"unit_id": u.id, "service_id": sid, "since": since}
                         for sid, since in u.uses.items() if sid not in u._uses0]
            u._holds0, u._uses0 = dict(u.holds), dict(u.uses)
        connection = self.session.connection()
        for i in range(0, len(gone_holds), 400):
            connection.execute(delete(hold).where(tuple_(hold.c.unit_id, hold.c.holder).in_(gone_holds[i:i + 400])))
        for i in range(0, len(gone_uses), 400):
            connection.execute(delete(use).where(tuple_(use.c.unit_id, use.c.service_id).in_(gone_uses[i:i + 400])))
        if moved_holds:
            connection.execute(update(hold).where(hold.c.unit_id == bindparam("b_unit"),
                                                  hold.c.holder == bindparam("b_holder"))
                               .values(expires_at=bindparam("b_expires")), moved_holds)
        if moved_uses:
            connection.execute(update(use).where(use.c.unit_id == bindparam("b_unit"),
                                                 use.c.service_id == bindparam("b_service"))
                               .values(since=bindparam("b_since")), moved_uses)
        for rows, table in ((new_holds, hold), (new_uses, use)):
            for i in range(0, len(rows), WRITE_BATCH):
                connection.execute(insert(table), rows[i:i + WRITE_BATCH])


def _update_units(session: Session, dirty: list[UnitCopy]) -> int:
    """SQLite: one executemany UPDATE, each row checked against its version."""
    table = Unit.__table__
    stmt = (update(table).where(table.c.id == bindparam("w_id"), table.c.version == bindparam("w_version"))
            .values(version=table.c.version + 1, **{c: bindparam(f"w_{c}", type_=table.c[c].type) for c in WRITTEN}))
    values = [{"w_id": u.id, "w_version": u.version, **{f"w_{c}": getattr(u, c) for c in WRITTEN}} for u in dirty]
    written = 0
    for i in range(0, len(values), WRITE_BATCH):
        written += session.connection().execute(stmt, values[i:i + WRITE_BATCH]).rowcount
    return written


# PostgreSQL: one UPDATE per 10,000 units, the values bound as arrays and joined by unnest (an
# executemany is one statement per row even pipelined: 37 s against 27 s for 40,000 units at load 13)
PG_BATCH = 10_000
_UNIT_ARRAYS = (("id", "varchar"), ("version", "integer"), ("occupancy", "varchar"), ("reservation_id", "varchar"),
                ("preoccupied_until", "timestamptz"), ("service_id", "varchar"), ("used", "integer"),
                ("admin_state", "varchar"), ("locked_by", "varchar"), ("admin_reason", "varchar"),
                ("quarantine_until", "timestamptz"))
_UPDATE_UNITS_PG = text(
    "UPDATE unit AS u SET " + ", ".join(f"{c} = v.{c}" for c, _ in _UNIT_ARRAYS[2:]) + ", version = u.version + 1 "
    "FROM unnest(" + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in _UNIT_ARRAYS) + ") "
    "AS v(" + ", ".join(c for c, _ in _UNIT_ARRAYS) + ") WHERE u.id = v.id AND u.version = v.version")
def _value(v: Any) -> Any:
    return v.value if isinstance(v, (Occupancy, AdminState)) else v


def _update_units_pg(session: Session, dirty: list[UnitCopy]) -> int:
    written = 0
    for i in range(0, len(dirty), PG_BATCH):
        part = dirty[i:i + PG_BATCH]
        params = {c: [_value(getattr(u, c)) for u in part] for c, _ in _UNIT_ARRAYS}
        written += session.connection().execute(_UPDATE_UNITS_PG, params).rowcount
    return written


class PerUnit:
    """The same interface through the ORM and the ledger's own transitions, one unit at a time
    (the reference the bulk path is tested against)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.units: dict[str, Any] = {}

    def take(self, ids: Iterable[str]) -> dict[str, Any]:
        from resource_mgr.cutovers.services import lock_all

        todo = set(ids) - set(self.units)
        if todo:
            self.units.update(lock_all(self.session, todo))
        return self.units

    def write(self) -> int:
        from resource_mgr.cutovers.services import write_units

        written = write_units(self.session, self.units.values())
        self.session.flush()
        return written


def units_for(session: Session, *, per_unit: bool = False) -> BulkUnits | PerUnit:
    return PerUnit(session) if per_unit else BulkUnits(session)


# -- what Unit and UnitCopy spell differently --------------------------------------------------

def use_since(unit: Any, service_id: str) -> datetime:
    if isinstance(unit, UnitCopy):
        return unit.use_since(service_id)
    return aware(next(u for u in unit.uses if u.service_id == service_id).since)


def set_use_since(unit: Any, service_id: str, since: datetime) -> None:
    if isinstance(unit, UnitCopy):
        unit.set_use_since(service_id, since)
    else:
        next(u for u in unit.uses if u.service_id == service_id).since = since


def set_admin_reason(unit: Any, reason: str | None) -> None:
    if isinstance(unit, UnitCopy):
        unit.set_admin_reason(reason)
    else:
        unit.admin_reason = reason
