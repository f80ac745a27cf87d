"""The allocation path: every change of occupancy locks the units it changes, re-checks them
as committed, changes them, or refuses (NoCapacity and the other domain errors).

- `lock_units` locks rows in id order, so two transactions locking overlapping sets never
  deadlock: `SELECT … FOR UPDATE` on PostgreSQL; on SQLite the unit of work already holds the
  database write lock (`BEGIN IMMEDIATE`). Locked rows are reloaded (what another transaction
  committed meanwhile is seen) and remembered for the rest of the transaction.
- The `Unit` transitions call it themselves for a stored unit, so a caller cannot forget;
  the functions below lock a whole path in one statement first (one round trip, id order).
- `allocate` chooses free places among candidates: rows another transaction has locked are
  skipped (`SKIP LOCKED`); only when nothing unlocked is left does it wait for them, so
  `NoCapacity` means that nothing is left, not that a competitor was busy. On PostgreSQL the
  usual case (a free exclusive unit, a new hold on a shared one) is re-checked and written in
  one statement once the row is locked (`_preoccupy_new`); the rest goes through `Unit.preoccupy`.

Orders, cutovers, the sweep and the bulk importer (`resource_mgr.occupancy.derive`) all go
through here.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, String, all_, bindparam, event, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, attributes, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from resource_mgr.changes import feed
from resource_mgr.db import UTCDateTime
from resource_mgr.errors import Conflict, IllegalTransition, Locked, NoCapacity, NotFound, Quarantined
from resource_mgr.ids import new_id
from resource_mgr.occupancy.models import Change, SharedHold, SharedUse, Unit, shared_occupancy, shared_room
from resource_mgr.states import AdminState, Occupancy

_LOCKED = "rmgr.ledger.locked"
# the locked units themselves, held strongly for the rest of the transaction: the identity map
# holds clean objects weakly, and a unit dropped from it would be read again (one SELECT each)
# by the next `lock_units`, with its holds and uses
_UNITS = "rmgr.ledger.units"
_CHUNK = 500


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction: Any) -> None:
    # row locks end with the transaction (a savepoint rolled back releases its own, too); the
    # inner transaction of a flush is neither
    if transaction.parent is None or transaction.nested:
        session.info.pop(_LOCKED, None)
        session.info.pop(_UNITS, None)


@event.listens_for(Session, "before_flush")
def _refuse_stale_writes(session: Session, _context: Any, _instances: Any) -> None:
    """A unit written without going through a transition (an edit of its capacity, say) is
    locked here and its version compared with the copy's: a copy another transaction changed
    meanwhile is refused as a Conflict, before the write, so the version counter's
    StaleDataError cannot reach a client. Units the transitions locked are current already."""
    locked = session.info.get(_LOCKED, set())
    versions: dict[str, int] = {}
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, Unit) and obj.id not in locked and (obj in session.deleted or session.is_modified(obj)):
            state = attributes.instance_state(obj)
            version = state.committed_state.get("version", state.dict.get("version"))
            if version is not None:
                versions[obj.id] = version
    if not versions:
        return
    stmt = select(Unit.id, Unit.version).where(Unit.id.in_(sorted(versions))).order_by(Unit.id)
    if _postgres(session):
        stmt = stmt.with_for_update(of=Unit)
    current = {uid: v for uid, v in session.execute(stmt.execution_options(autoflush=False))}
    for unit_id, version in versions.items():
        if current.get(unit_id) != version:
            raise Conflict(f"unit {unit_id} was changed by another transaction since it was read: "
                           "read it again", field="unit_id", unit_id=unit_id)
    _locked(session).update(versions)


def _locked(session: Session) -> set[str]:
    return session.info.setdefault(_LOCKED, set())


def _held(session: Session) -> dict[str, Unit]:
    return session.info.setdefault(_UNITS, {})


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def is_locked(session: Session, unit_id: str) -> bool:
    return unit_id in session.info.get(_LOCKED, ())


def lock_query(session: Session, stmt: Select[tuple[Unit]], *, skip_locked: bool = False,
               params: dict[str, Any] | None = None) -> list[Unit]:
    """Run `select(Unit)…` locking the rows it returns (reloaded as committed)."""
    postgres = _postgres(session)
    if postgres:
        stmt = stmt.with_for_update(of=Unit, skip_locked=skip_locked)
    if session.autoflush:
        session.flush()
    # Core rows, adopted into the session by hand: loading them as ORM objects costs several
    # times more, and on a shared unit that time is spent holding its lock
    if postgres:
        rows = _select_pg(session, stmt, params or {})
    else:
        rows = [row._asdict() for row in session.connection().execute(stmt, params)]
    locked, held = _locked(session), _held(session)
    units = []
    for row in rows:
        unit = _adopt(session, row)
        locked.add(unit.id)
        held[unit.id] = unit
        units.append(unit)
    return units


_COMPILED: dict[Any, tuple[Any, list[tuple[str, Any]], list[tuple[str, Any]]]] = {}


def _select_pg(session: Session, stmt: Select[tuple[Unit]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a `select(Unit)` on the psycopg connection: compiled once per shape of statement (its
    cache key; the values in it are taken each time), bound and result values converted as
    SQLAlchemy would, with none of its execution machinery (several times the driver's cost)."""
    connection = session.connection()
    dialect = connection.dialect
    key = stmt._generate_cache_key()
    entry = _COMPILED.get(key.key) if key is not None else None
    if entry is None:
        compiled = dialect.statement_compiler(dialect, stmt, cache_key=key)
        if compiled.post_compile_params or compiled.literal_execute_params or key is None:
            return [row._asdict() for row in connection.execute(stmt, params)]
        binds = [(name, proc) for name, proc in compiled._bind_processors.items()]
        columns = [(col[0], col[3]._cached_result_processor(dialect, None)) for col in compiled._result_columns]
        entry = (compiled, binds, columns)
        if len(_COMPILED) < 200:
            _COMPILED[key.key] = entry
    compiled, binds, columns = entry
    values = compiled.construct_params(params=params, extracted_parameters=key.bindparams)
    for name, proc in binds:
        if name in values and values[name] is not None:
            values[name] = proc(values[name])
    rows = _driver(session, compiled.string, values).fetchall()
    return [{name: proc(value) if proc is not None else value for (name, proc), value in zip(columns, row)}
            for row in rows]


def _adopt(session: Session, values: dict[str, Any]) -> Unit:
    """The session's copy of a unit with these column values, as committed (what
    `populate_existing` does); its collections are read again when next used."""
    unit = session.identity_map.get(session.identity_key(Unit, values["id"]))
    if unit is None:
        unit = Unit(**values)
        make_transient_to_detached(unit)
        session.add(unit)
    else:
        for key, value in values.items():
            set_committed_value(unit, key, value)
        session.expire(unit, ["holds", "uses"])
    return unit


def lock_units(session: Session, unit_ids: Iterable[str]) -> list[Unit]:
    """Lock these units (in id order) and return them in id order; ids already locked in this
    transaction cost nothing. A missing id is NotFound."""
    wanted = sorted(set(unit_ids))
    locked = _locked(session)
    todo = [i for i in wanted if i not in locked]
    for i in range(0, len(todo), _CHUNK):
        lock_query(session, select(Unit).where(Unit.id.in_(todo[i:i + _CHUNK])).order_by(Unit.id))
    locked = _locked(session)
    missing = [i for i in todo if i not in locked]
    if missing:
        raise NotFound(f"no unit with id {missing[0]}", field="unit_id", unit_id=missing[0])
    held = _held(session)
    # locked by the stale-write check (no copy kept there): read from the identity map
    return [held.get(i) or session.get(Unit, i) for i in wanted]


def load_shared(session: Session, units: Iterable[Unit], *, uses: bool = True) -> None:
    """Load the holds (and with `uses` the services) of the shared units among `units` that do
    not have them loaded, in one query each: the transitions read them, and loading them unit by
    unit costs a query and an autoflush each (a PON port, its feeder core, the splitters ...)."""
    shared = [u for u in units if u.capacity > 1]
    if not shared:
        return
    for model, key in ((SharedHold, "holds"), (SharedUse, "uses")) if uses else ((SharedHold, "holds"),):
        todo = [u for u in shared if key not in u.__dict__]  # not loaded (or expired by the lock's reload)
        if not todo:
            continue
        found: dict[str, list[Any]] = {u.id: [] for u in todo}
        for i in range(0, len(todo), _CHUNK):
            chunk = [u.id for u in todo[i:i + _CHUNK]]
            stmt = select(model).where(model.unit_id.in_(chunk))
            for row in session.scalars(stmt):
                found[row.unit_id].append(row)
        for u in todo:
            set_committed_value(u, key, found[u.id])


# -- a path of units at once ---------------------------------------------------------------------

def _each(session: Session, unit_ids: Sequence[str], transition: Callable[[Unit], Any], *,
          uses: bool = True) -> list[Unit]:
    """Lock the units (in id order) and apply one transition to each, in the caller's
    transaction: all of them or, on the first refusal, none (the caller rolls back). The shared
    units' holds (and services) are read first, in one query each."""
    units = lock_units(session, unit_ids)
    load_shared(session, units, uses=uses)
    for unit in units:
        transition(unit)
    write_units(session, units)
    return units


# -- writing the changed units at once ----------------------------------------------------------

# what the transitions change; a unit with any other column changed (an edit) is left to the ORM
_STATE_COLUMNS = ("occupancy", "reservation_id", "preoccupied_until", "service_id", "used", "admin_state",
                  "locked_by", "admin_reason", "quarantine_until")
_STATE_KEYS = frozenset(_STATE_COLUMNS)
_COLUMN_KEYS = frozenset(c.key for c in Unit.__table__.columns)
_PG_TYPES = {"occupancy": "varchar", "reservation_id": "varchar", "preoccupied_until": "timestamptz",
             "service_id": "varchar", "used": "integer", "admin_state": "varchar", "locked_by": "varchar",
             "admin_reason": "varchar", "quarantine_until": "timestamptz"}
# One statement for every unit: each row's version must still be the one read (it is, under the
# row lock; a stale copy would match nothing and be refused), the CHECK constraints apply as to
# any write, and the new versions come back.
_WRITE_UNITS_PG = (
    "UPDATE unit AS u SET " + ", ".join(f"{c} = v.{c}" for c in _STATE_COLUMNS) + ", version = u.version + 1 "
    "FROM unnest(%(id)s::varchar[], %(version)s::integer[], "
    + ", ".join(f"%({c})s::{_PG_TYPES[c]}[]" for c in _STATE_COLUMNS)
    + ") AS v(id, version, " + ", ".join(_STATE_COLUMNS) + ") "
    "WHERE u.id = v.id AND u.version = v.version RETURNING u.id, u.version")


@cache
def _write_units_core() -> Any:
    t = Unit.__table__
    return (t.update().where(t.c.id == bindparam("b_id"), t.c.version == bindparam("b_version"))
            .values(**{c: bindparam(f"b_{c}", type_=t.c[c].type) for c in _STATE_COLUMNS},
                    version=t.c.version + 1))


def write_units(session: Session, units: Sequence[Unit]) -> None:
    """Write the units the transitions changed in one statement (what the ORM's flush would
    write, one UPDATE per unit), and take the written values as committed so the flush leaves
    them alone. The history rows, holds and uses they added are flushed by the ORM as usual (in
    one statement per table). A unit whose version moved meanwhile is refused (StaleDataError,
    as the ORM's version check; the use cases retry) and nothing is written."""
    todo = []
    for unit in units:
        state = attributes.instance_state(unit)
        if not state.persistent:
            continue
        changed = _COLUMN_KEYS.intersection(state.committed_state)
        if changed and changed <= _STATE_KEYS:
            todo.append(unit)
    if not todo:
        return
    todo.sort(key=lambda u: u.id)
    if _postgres(session):
        params: dict[str, Any] = {"id": [u.id for u in todo], "version": [u.version for u in todo]}
        for c in _STATE_COLUMNS:
            params[c] = [_plain(getattr(u, c)) for u in todo]
        versions = dict(_driver(session, _WRITE_UNITS_PG, params).fetchall())
    else:
        rows = [{"b_id": u.id, "b_version": u.version, **{f"b_{c}": getattr(u, c) for c in _STATE_COLUMNS}}
                for u in todo]
        result = session.connection().execute(_write_units_core(), rows)
        if result.rowcount != len(rows):
            raise StaleDataError(f"UPDATE statement on table 'unit' expected to update {len(rows)} row(s); "
                                 f"{result.rowcount} were matched")
        versions = {u.id: u.version + 1 for u in todo}
    if len(versions) != len(todo):
        raise StaleDataError(f"UPDATE statement on table 'unit' expected to update {len(todo)} row(s); "
                             f"{len(versions)} were matched")
    for unit in todo:
        for c in _STATE_COLUMNS:
            if c in attributes.instance_state(unit).committed_state:
                set_committed_value(unit, c, getattr(unit, c))
        set_committed_value(unit, "version", versions[unit.id])


def _plain(value: Any) -> Any:
    """A value as the driver takes it (a state as its text)."""
    return value.value if isinstance(value, StrEnum) else value


def preoccupy(session: Session, unit_ids: Sequence[str], change: Change, *, reservation_id: str,
              until: datetime) -> list[Unit]:
    """預占 every unit of a path for one reservation."""
    return _each(session, unit_ids, lambda u: u.preoccupy(change, reservation_id=reservation_id, until=until),
                 uses=False)


def occupy(session: Session, unit_ids: Sequence[str], change: Change, *, service_id: str,
           reservation_id: str | None = None) -> list[Unit]:
    return _each(session, unit_ids, lambda u: u.occupy(change, service_id=service_id, reservation_id=reservation_id))


def release(session: Session, unit_ids: Sequence[str], change: Change, *, service_id: str,
            quarantine_days: int | None = None) -> list[Unit]:
    return _each(session, unit_ids, lambda u: u.release(change, service_id=service_id, quarantine_days=quarantine_days))


def release_preoccupation(session: Session, unit_ids: Sequence[str], change: Change, *,
                          reservation_id: str) -> list[Unit]:
    return _each(session, unit_ids, lambda u: u.release_preoccupation(change, reservation_id=reservation_id),
                 uses=False)


# -- choosing free places ----------------------------------------------------------------------

@cache
def _choosable() -> ColumnElement[bool]:
    """`Unit.choosable` at a bound `ledger_now`, built once (building it costs more than running it)."""
    return Unit.choosable(bindparam("ledger_now", type_=UTCDateTime))


def allocate(session: Session, change: Change, *, among: Sequence[ColumnElement[bool]], reservation_id: str,
             until: datetime, count: int = 1, what: str = "unit") -> list[Unit]:
    """Pre-occupy `count` units chosen among those matching `among` (lowest seq first) that
    may be taken now, for one reservation; a shared unit gives one place. NoCapacity when
    fewer are left."""
    now = change.at
    taken: list[Unit] = []
    refused: set[str] = set()

    def candidates() -> Select[tuple[Unit]]:
        stmt = select(Unit).where(*among, _choosable())
        skip = {u.id for u in taken} | refused
        if skip and postgres:  # one bound array: the statement's shape stays the same (see _select_pg)
            stmt = stmt.where(Unit.id != all_(bindparam("ledger_skip", sorted(skip), type_=ARRAY(String))))
        elif skip:
            stmt = stmt.where(Unit.id.not_in(sorted(skip)))
        return stmt.order_by(Unit.seq, Unit.id).limit(count - len(taken))

    postgres = _postgres(session)
    take = _preoccupy_new if postgres else _preoccupy_orm
    while len(taken) < count:
        if postgres:
            # A row changed since the statement's snapshot is locked before PostgreSQL re-checks
            # it, and stays locked when it no longer qualifies. Waiting while holding such rows
            # (locked in seq order, in passing) can close a cycle with another waiter: the
            # savepoint lets us drop them before we wait. Flushed first, so that rolling back
            # to it undoes nothing of ours.
            if session.new or session.dirty or session.deleted:
                session.flush()
            _driver(session, "SAVEPOINT ledger_allocate")
            before = set(_locked(session))
        units = lock_query(session, candidates(), skip_locked=True, params={"ledger_now": now})
        if not units and postgres:
            _back_to_savepoint(session, before)
            # whatever is left is locked by others: wait for them (PostgreSQL re-checks each
            # row once its lock is released, and goes on to the next if it no longer qualifies)
            units = lock_query(session, candidates(), params={"ledger_now": now})
        if not units:
            raise NoCapacity(f"no {what} has a free place left: {len(taken)} of {count} found", field="unit")
        got = 0
        for unit in units:
            try:
                take(session, unit, change, reservation_id, until)
            except (NoCapacity, Locked, Quarantined, IllegalTransition):  # changed while we waited
                refused.add(unit.id)
                continue
            taken.append(unit)
            got += 1
            if len(taken) == count:
                break
        if postgres and not got:
            # nothing written since the savepoint: let the refused rows go at once (others wait
            # for them) rather than at the end of the transaction
            _back_to_savepoint(session, before)
    return taken


def _back_to_savepoint(session: Session, before: set[str]) -> None:
    """Roll back to `ledger_allocate`: the row locks taken since are released."""
    _driver(session, "ROLLBACK TO SAVEPOINT ledger_allocate")
    locked = _locked(session)
    locked.intersection_update(before)
    held = _held(session)
    for unit_id in [i for i in held if i not in before]:
        del held[unit_id]


def _driver(session: Session, sql: str, params: dict[str, Any] | None = None) -> Any:
    """Run driver SQL on the session's psycopg connection, in its transaction: the statements
    the allocation path sends while it holds a row lock skip SQLAlchemy's execution machinery
    (a few times the driver's own cost per statement). Errors are SQLAlchemy's, as elsewhere."""
    connection = session.connection()
    dbapi = connection.dialect.loaded_dbapi
    try:
        return connection.connection.dbapi_connection.execute(sql, params)
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, dbapi.Error) from exc


def _preoccupy_orm(_session: Session, unit: Unit, change: Change, reservation_id: str, until: datetime) -> None:
    unit.preoccupy(change, reservation_id=reservation_id, until=until)


# The common case of allocation on PostgreSQL in one statement once the row is locked (the
# fewer round trips the row lock is held for, the more allocations a shared unit takes per
# second): it counts a shared unit's live holds (its snapshot is taken after the lock, so it
# sees every committed one) and, if there is room, writes the unit, the hold and the history
# row. Anything else (a refusal other than "full", the same reservation again, a unit in
# quarantine) goes through the transition itself (`Unit.preoccupy`), which says what and why.
# Driver SQL (pyformat, see _driver): nothing is compiled while the lock is held.
_HISTORY_COLUMNS = ("at, principal, local_network_id, resource_id, resource_kind, action, order_ref, "
                    "reservation_id, service_id, cutover_id, reason, before, after")
_HISTORY_VALUES = ("%(at)s, %(principal)s, %(local_network_id)s, %(unit_id)s, %(kind)s, 'preoccupy', %(order_ref)s, "
                   "%(holder)s, %(service_id)s, %(cutover_id)s, %(reason)s")
_WRITE_EXCLUSIVE = (
    "WITH u AS (UPDATE unit SET occupancy = %(occupancy)s, reservation_id = %(holder)s, "
    "preoccupied_until = %(until)s, version = version + 1 WHERE id = %(unit_id)s AND version = %(version)s "
    "RETURNING version), "
    f"h AS (INSERT INTO history ({_HISTORY_COLUMNS}) SELECT {_HISTORY_VALUES}, "
    "CAST(%(before)s AS json), CAST(%(after)s AS json) FROM u) "
    "SELECT version FROM u")
# the snapshots as Unit._snapshot makes them for a shared unit in service, out of quarantine
_SHARED_SNAPSHOT = ("json_build_object('occupancy', {occupancy}, 'admin_state', CAST(%(admin_state)s AS text), "
                    "'used', CAST(%(used)s AS integer), 'held', {held})")
_WRITE_SHARED = (
    "WITH r AS (SELECT count(*) FILTER (WHERE expires_at > %(now)s) AS held, "
    "coalesce(bool_or(holder = %(holder)s), false) AS mine FROM shared_hold WHERE unit_id = %(unit_id)s), "
    "ok AS (SELECT held FROM r WHERE NOT mine AND CAST(%(used)s AS integer) + held < CAST(%(capacity)s AS integer)), "
    "u AS (UPDATE unit SET occupancy = %(occupancy)s, version = version + 1 FROM ok "
    "WHERE id = %(unit_id)s AND version = %(version)s RETURNING version), "
    "s AS (INSERT INTO shared_hold (id, unit_id, holder, expires_at) "
    "SELECT %(hold_id)s, %(unit_id)s, %(holder)s, %(until)s FROM u), "
    f"h AS (INSERT INTO history ({_HISTORY_COLUMNS}) SELECT {_HISTORY_VALUES}, "
    + _SHARED_SNAPSHOT.format(occupancy="CASE WHEN ok.held > 0 THEN CAST(%(held_before)s AS text) "
                                        "ELSE CAST(%(free_before)s AS text) END", held="ok.held")
    + ", " + _SHARED_SNAPSHOT.format(occupancy="CAST(%(occupancy)s AS text)", held="ok.held + 1")
    + " FROM u, ok) "
    "SELECT r.held, r.mine, (SELECT version FROM u) AS version FROM r")


def _preoccupy_new(session: Session, unit: Unit, change: Change, reservation_id: str, until: datetime) -> None:
    """`unit.preoccupy` for a unit locked by `lock_query` (PostgreSQL): the same checks, row and
    history, in one statement."""
    now = change.at
    if (until <= now or unit.admin_state != AdminState.IN_SERVICE or unit.quarantine_until is not None
            or (not unit.shared and unit.effective_occupancy(now) != Occupancy.FREE)):
        return _preoccupy_orm(session, unit, change, reservation_id, until)
    params: dict[str, Any] = {
        "unit_id": unit.id, "holder": reservation_id, "until": until, "version": unit.version, "at": now,
        "principal": change.principal, "local_network_id": unit.local_network_id, "kind": unit.kind,
        "order_ref": change.order_ref, "service_id": change.service_id, "cutover_id": change.cutover_id,
        "reason": change.reason,
    }
    if unit.shared:
        occupancy = shared_occupancy(unit.used, 1)  # the place it takes is held
        held, mine, version = _driver(session, _WRITE_SHARED, {
            **params, "now": now, "used": unit.used, "capacity": unit.capacity, "occupancy": occupancy.value,
            "admin_state": AdminState(unit.admin_state).value, "hold_id": new_id(),
            "held_before": occupancy.value, "free_before": shared_occupancy(unit.used, 0).value,
        }).fetchone()
        if version is None:
            if mine:  # the same reservation again: extended, or nothing
                return _preoccupy_orm(session, unit, change, reservation_id, until)
            if shared_room(unit.capacity, unit.used, held) == 0:
                unit._refuse("preoccupy", f"all {unit.capacity} places are taken; "
                             + unit._state_text(now, held=held), NoCapacity)
    else:
        before = unit._snapshot(now)
        occupancy = Occupancy.PREOCCUPIED
        # the copy takes the new values as written (a failed write ends the transaction, and its
        # rollback expires the copy)
        for key, value in (("occupancy", occupancy), ("reservation_id", reservation_id),
                           ("preoccupied_until", until)):
            set_committed_value(unit, key, value)
        row = _driver(session, _WRITE_EXCLUSIVE, {
            **params, "occupancy": occupancy.value, "before": json.dumps(before),
            "after": json.dumps(unit._snapshot(now)),
        }).fetchone()
        version = row[0] if row else None
    if version is None:  # cannot happen while the row is locked; refused rather than written blindly
        raise Conflict(f"unit {unit.id} was changed under its lock", field="unit_id", unit_id=unit.id)
    set_committed_value(unit, "occupancy", occupancy)
    set_committed_value(unit, "version", version)
    feed.mark_written(session)  # the history row was written past the ORM: stamped at commit
    return None
