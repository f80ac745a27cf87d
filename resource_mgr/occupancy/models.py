"""The ledger of allocatable units: one occupancy mechanism for ports, pairs, cores, splitter
ports, box ports, terminals and numbers.

Two things are tracked apart: occupancy (free → preoccupied → occupied → free) and the
administrative state (in service / locked by a cutover / faulty / reserved). Transitions are
methods that check the lifecycle and write a history row in the same transaction; an illegal
one raises a domain error that says what and why.

Most units are exclusive (capacity 1): the holder sits on the row. A shared unit (a PON port,
the feeder core and first-stage splitter behind it) carries many services up to `capacity`:
each service on it has a `SharedUse` row (`used` counts them) and each pending order holds one
`SharedHold`.

Safe by construction: a transition on a stored unit first locks its row and reloads it
(`resource_mgr.occupancy.ledger.lock_units`: `SELECT … FOR UPDATE` on PostgreSQL, the unit of
work's `BEGIN IMMEDIATE` on SQLite), so it re-checks what is committed, not what was read
earlier. A version counter makes any write from a stale copy fail (a `Conflict`, see ledger.py), and CHECK
constraints keep the columns consistent whatever writes them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON, CheckConstraint, ColumnElement, ForeignKey, Index, Integer, String, UniqueConstraint, and_, case, func,
    or_, select, text, type_coerce,
)
from sqlalchemy.ext.hybrid import hybrid_method
from sqlalchemy.orm import Mapped, WriteOnlyMapped, attributes, mapped_column, relationship
from sqlalchemy.orm import object_session
from sqlalchemy.types import TypeDecorator

from resource_mgr.clock import aware, utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.errors import Expired, IllegalTransition, Invalid, Locked, NoCapacity, Quarantined
from resource_mgr.ids import new_id
from resource_mgr.states import AdminState, Occupancy

UNIT_KINDS = (
    "pon_port",  # OLT GPON / XGS-PON port (shared, capacity = ONTs)
    "dsl_port",  # DSLAM ADSL2+/VDSL2 port
    "line_port",  # PSTN / NGN access gateway subscriber line port (設備號)
    "eth_port",  # LAN switch port
    "ont_port",
    "splitter_in",
    "splitter_out",
    "pair",  # copper cable pair (線對)
    "core",  # fibre core (纖芯)
    "terminal",  # MDF / ODF / cross box terminal
    "box_port",  # distribution box / fibre access terminal port
    "number",  # telephone number
    "uplink_port",  # network-side port of head equipment and of aggregation / BRAS / core devices
)


class StatusType(TypeDecorator):
    """A status column stored as its text value and read back as the enum of states.py; a
    value outside the enum is refused before it reaches the database (which refuses it too)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int = 12) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Any) -> StrEnum | None:
        return None if value is None else self.enum(value)


def _one_of(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(m.value) for m in enum)})"


_FREE, _PRE, _OCC = (f"'{o.value}'" for o in (Occupancy.FREE, Occupancy.PREOCCUPIED, Occupancy.OCCUPIED))
# An exclusive unit's holder matches its occupancy; a shared unit keeps its holders in rows.
_EXCLUSIVE_HOLDER = (
    "capacity > 1 OR (used = 0 AND ("
    f"(occupancy = {_FREE} AND reservation_id IS NULL AND preoccupied_until IS NULL AND service_id IS NULL)"
    f" OR (occupancy = {_PRE} AND reservation_id IS NOT NULL AND preoccupied_until IS NOT NULL"
    " AND service_id IS NULL)"
    f" OR (occupancy = {_OCC} AND reservation_id IS NULL AND preoccupied_until IS NULL"
    " AND service_id IS NOT NULL)))"
)
_SHARED_HOLDER = (
    "capacity = 1 OR (reservation_id IS NULL AND preoccupied_until IS NULL AND service_id IS NULL AND ("
    f"(used > 0 AND occupancy = {_OCC}) OR (used = 0 AND occupancy IN ({_FREE}, {_PRE}))))"
)
UNIT_CHECKS = {
    "capacity_positive": "capacity >= 1",
    "used_within_capacity": "used >= 0 AND used <= capacity",
    "occupancy_known": _one_of("occupancy", Occupancy),
    "admin_state_known": _one_of("admin_state", AdminState),
    "locked_by_cutover": f"(admin_state = '{AdminState.LOCKED.value}') = (locked_by IS NOT NULL)",
    "exclusive_holder": _EXCLUSIVE_HOLDER,
    "shared_holder": _SHARED_HOLDER,
}


@dataclass(frozen=True)
class Change:
    """Who changes a unit and on whose behalf: written into every history row."""

    principal: str
    order_ref: str | None = None
    reservation_id: str | None = None
    service_id: str | None = None
    cutover_id: str | None = None
    reason: str | None = None
    at: datetime = field(default_factory=utcnow)


class History(Base):
    """One recorded change of state: who, when, which order or cutover, before and after.

    It is also the change feed: `position` is given as the transaction that wrote the row commits,
    in commit order (resource_mgr.changes.feed); `id` is only insertion order. Unstamped rows
    (NULL) are this transaction's own until it commits."""

    __tablename__ = "history"
    __table_args__ = (
        Index("ix_history_resource_id_at", "resource_id", "at"),
        Index("ix_history_order_ref", "order_ref"),
        Index("ix_history_service_id", "service_id"),
        Index("ix_history_cutover_id", "cutover_id"),
        Index("ix_history_principal_at", "principal", "at"),
        Index("ix_history_position", "position", unique=True),
        # the rows the committing transaction stamps: a handful at any time
        Index("ix_history_unstamped", "id", postgresql_where=text("position IS NULL"),
              sqlite_where=text("position IS NULL")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # as wide as id (one position per row); both widen together if ever needed
    position: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    principal: Mapped[str] = mapped_column(String(100))
    local_network_id: Mapped[str | None] = mapped_column(String(26))
    resource_id: Mapped[str] = mapped_column(String(26))
    resource_kind: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40))
    order_ref: Mapped[str | None] = mapped_column(String(100))
    reservation_id: Mapped[str | None] = mapped_column(String(26))
    service_id: Mapped[str | None] = mapped_column(String(26))
    cutover_id: Mapped[str | None] = mapped_column(String(26))
    reason: Mapped[str | None] = mapped_column(String(300))
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SharedHold(Base):
    """A pending order's claim on one place of a shared unit, until it expires."""

    __tablename__ = "shared_hold"
    __table_args__ = (UniqueConstraint("unit_id", "holder"),)
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    unit_id: Mapped[str] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"))
    holder: Mapped[str] = mapped_column(String(26))  # reservation id
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SharedUse(Base):
    """A service on a shared unit: one row per service, `Unit.used` counts them."""

    __tablename__ = "shared_use"
    __table_args__ = (Index("ix_shared_use_service_id", "service_id"),)
    unit_id: Mapped[str] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True)
    service_id: Mapped[str] = mapped_column(ForeignKey("service.id"), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def shared_occupancy(used: int, held: int) -> Occupancy:
    """A shared unit is occupied while it carries a service, pre-occupied while it is held."""
    return Occupancy.OCCUPIED if used else (Occupancy.PREOCCUPIED if held else Occupancy.FREE)


def shared_room(capacity: int, used: int, held: int) -> int:
    """Places a shared unit can still give."""
    return max(capacity - used - held, 0)


def _live_holds(unit: Any, now: datetime) -> Any:
    """SQL: the number of live holds on `unit` at `now`."""
    return (select(func.count()).select_from(SharedHold)
            .where(SharedHold.unit_id == unit.id, SharedHold.expires_at > now)
            .correlate_except(SharedHold).scalar_subquery())


class Unit(Base):
    __tablename__ = "unit"
    __table_args__ = (
        # also serves "the units of an owner" (a few hundred at most, sorted by seq in memory)
        UniqueConstraint("owner_id", "kind", "name"),
        Index("ix_unit_root_id", "root_id"),
        Index("ix_unit_local_network_kind_occupancy", "local_network_id", "kind", "occupancy"),
        # nearly every unit has none of these: index only those that do
        Index("ix_unit_reservation_id", "reservation_id", postgresql_where=text("reservation_id IS NOT NULL"),
              sqlite_where=text("reservation_id IS NOT NULL")),
        Index("ix_unit_service_id", "service_id"),
        Index("ix_unit_locked_by", "locked_by", postgresql_where=text("locked_by IS NOT NULL"),
              sqlite_where=text("locked_by IS NOT NULL")),
        *(CheckConstraint(sql, name=name) for name, sql in UNIT_CHECKS.items()),
    )
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int] = mapped_column(Integer, default=0)  # position within its owner (port 3, pair 125)
    local_network_id: Mapped[str] = mapped_column(ForeignKey("local_network.id"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))  # card, cable, box...
    root_id: Mapped[str] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))  # device, cable, box...
    side: Mapped[str] = mapped_column(String(20), default="")  # feeder / distribution / line / equipment
    technology: Mapped[str] = mapped_column(String(20), default="")

    occupancy: Mapped[Occupancy] = mapped_column(StatusType(Occupancy), default=Occupancy.FREE)
    reservation_id: Mapped[str | None] = mapped_column(String(26))
    preoccupied_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    service_id: Mapped[str | None] = mapped_column(ForeignKey("service.id", ondelete="SET NULL"))
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    used: Mapped[int] = mapped_column(Integer, default=0)

    admin_state: Mapped[AdminState] = mapped_column(StatusType(AdminState), default=AdminState.IN_SERVICE)
    locked_by: Mapped[str | None] = mapped_column(String(26))  # cutover id
    admin_reason: Mapped[str | None] = mapped_column(String(300))
    quarantine_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # numbers only
    # bumped by every write; a write from a stale copy of the row fails instead of undoing another
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))

    holds: Mapped[list[SharedHold]] = relationship(cascade="all, delete-orphan", lazy="select")
    uses: Mapped[list[SharedUse]] = relationship(cascade="all, delete-orphan", lazy="select")
    history: WriteOnlyMapped[History] = relationship(
        primaryjoin="foreign(History.resource_id) == Unit.id", lazy="write_only", viewonly=False,
    )

    __mapper_args__ = {"version_id_col": version}

    # -- reading state: one definition for Python and SQL -------------------------------------

    @hybrid_method
    def effective_occupancy(self, now: datetime | None = None) -> Occupancy:
        """What the unit is now: a pre-occupation past its expiry counts as free; a shared unit
        is occupied while it carries a service, pre-occupied while a live hold exists."""
        now = now or utcnow()
        if self.shared:
            return shared_occupancy(self.used, len(self.active_holds(now)))
        if self.occupancy == Occupancy.PREOCCUPIED and aware(self.preoccupied_until) <= now:
            return Occupancy.FREE
        return Occupancy(self.occupancy)

    @effective_occupancy.expression
    def effective_occupancy(cls, now: datetime | None = None) -> ColumnElement[Occupancy]:  # noqa: N805
        now = now or utcnow()
        return type_coerce(case(
            (and_(cls.capacity > 1, cls.used > 0), Occupancy.OCCUPIED.value),
            (and_(cls.capacity > 1, _live_holds(cls, now) > 0), Occupancy.PREOCCUPIED.value),
            (cls.capacity > 1, Occupancy.FREE.value),
            (and_(cls.occupancy == Occupancy.PREOCCUPIED, cls.preoccupied_until <= now), Occupancy.FREE.value),
            else_=cls.occupancy,
        ), StatusType(Occupancy))

    def spare(self, now: datetime | None = None) -> int:
        """How many more services it can take (0 or 1 for an exclusive unit)."""
        now = now or utcnow()
        if self.shared:
            return shared_room(self.capacity, self.used, len(self.active_holds(now)))
        return 1 if self.effective_occupancy(now) == Occupancy.FREE else 0

    @classmethod
    def choosable(cls, now: datetime) -> ColumnElement[bool]:
        """SQL filter for units a new order may take now: in service, not in quarantine, with a
        spare place (an expired pre-occupation or hold counts as free)."""
        return and_(
            cls.admin_state == AdminState.IN_SERVICE,
            or_(cls.quarantine_until.is_(None), cls.quarantine_until <= now),
            or_(
                and_(cls.capacity == 1, or_(
                    cls.occupancy == Occupancy.FREE,
                    and_(cls.occupancy == Occupancy.PREOCCUPIED, cls.preoccupied_until <= now),
                )),
                and_(cls.capacity > 1, cls.used + _live_holds(cls, now) < cls.capacity),
            ),
        )

    @property
    def shared(self) -> bool:
        return self.capacity > 1

    def active_holds(self, now: datetime) -> list[SharedHold]:
        return [h for h in self.holds if aware(h.expires_at) > now]

    def carries(self, service_id: str) -> bool:
        """Whether the service is on this unit."""
        if self.shared:
            return any(u.service_id == service_id for u in self.uses)
        return self.occupancy == Occupancy.OCCUPIED and self.service_id == service_id

    def is_quarantined(self, now: datetime) -> bool:
        return self.quarantine_until is not None and aware(self.quarantine_until) > now

    def _snapshot(self, now: datetime, held: int | None = None) -> dict[str, Any]:
        """The state a history row records; `held` (a shared unit's live holds, counted in SQL by
        the allocation path) spares loading the holds."""
        snap: dict[str, Any]
        if self.shared:
            held = len(self.active_holds(now)) if held is None else held
            snap = {"occupancy": shared_occupancy(self.used, held).value,
                    "admin_state": AdminState(self.admin_state).value, "used": self.used, "held": held}
        else:
            snap = {"occupancy": self.effective_occupancy(now).value,
                    "admin_state": AdminState(self.admin_state).value,
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
        """One history row; it names the reservation or service the transition was about."""
        row = History(
            at=change.at, principal=change.principal, local_network_id=self.local_network_id,
            resource_id=self.id, resource_kind=self.kind, action=action, order_ref=change.order_ref,
            reservation_id=reservation_id or change.reservation_id, service_id=service_id or change.service_id,
            cutover_id=change.cutover_id, reason=change.reason, before=before, after=self._snapshot(change.at),
        )
        state = attributes.instance_state(self)
        if state.persistent:
            # every transition writes the row, so its version moves and a stale copy cannot win
            attributes.flag_modified(self, "occupancy")
            # added to the session itself: the write-only collection would build its query first
            # (the row names the unit already)
            state.session.add(row)
        else:
            self.history.add(row)

    def _last_about(self, column: str, value: str) -> str | None:
        """The action of the latest history row of this unit naming `value` as its reservation
        or service: how a retried release knows it already happened."""
        pending = [h for h in attributes.instance_state(self).attrs.history.history.added
                   if getattr(h, column) == value]
        session = object_session(self)
        if session is not None:  # the rows of a stored unit are added to the session (see _record)
            pending += sorted((h for h in session.new if isinstance(h, History) and h.resource_id == self.id
                               and getattr(h, column) == value),
                              key=lambda h: attributes.instance_state(h).insert_order or 0)
        if pending:
            return pending[-1].action
        if session is None or not attributes.instance_state(self).persistent:
            return None
        return session.scalar(select(History.action).where(
            History.resource_id == self.id, getattr(History, column) == value,
            History.action.in_(("preoccupy", "release_preoccupation", "occupy", "release", "expire")))
            .order_by(History.id.desc()).limit(1))

    def _state_text(self, now: datetime, held: int | None = None) -> str:
        """The current state and holder, for refusals: "it is occupied by service S1"."""
        if self.shared:
            if held is None:
                held = len(self.active_holds(now))
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

    def _lock(self) -> None:
        """Lock and reload a stored unit before changing it (once per transaction)."""
        state = attributes.instance_state(self)
        if state.persistent:
            from resource_mgr.occupancy.ledger import lock_units

            lock_units(state.session, [self.id])

    # -- occupancy ----------------------------------------------------------------------------

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
            if holder and any(h.holder == holder for h in self.active_holds(now)):
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

    def preoccupy(self, change: Change, *, reservation_id: str, until: datetime) -> bool:
        """預占: hold for an order until `until`; the same order again extends its hold (the
        same `until` again changes nothing). Returns whether anything changed."""
        if until <= change.at:
            raise Invalid("a pre-occupation must end in the future", field="ttl_hours")
        self._lock()
        self._check_can_take("preoccupy", change, reservation_id)
        before = self._snapshot(change.at)
        if self.shared:
            hold = next((h for h in self.holds if h.holder == reservation_id), None)
            if hold is None:
                self.holds.append(SharedHold(unit_id=self.id, holder=reservation_id, expires_at=until))
            elif aware(hold.expires_at) == until:
                return False
            else:
                hold.expires_at = until
            self._settle_shared(change.at)
        else:
            if (self.occupancy == Occupancy.PREOCCUPIED and self.reservation_id == reservation_id
                    and aware(self.preoccupied_until) == until):
                return False
            self.occupancy = Occupancy.PREOCCUPIED
            self.reservation_id = reservation_id
            self.preoccupied_until = until
        self._record("preoccupy", change, before, reservation_id=reservation_id)
        return True

    def release_preoccupation(self, change: Change, *, reservation_id: str) -> bool:
        """Cancel an order's hold. Releasing a hold that already expired is harmless; releasing
        again one already released (or swept) changes nothing. Returns whether anything changed."""
        self._lock()
        before = self._snapshot(change.at)
        if self.shared:
            hold = next((h for h in self.holds if h.holder == reservation_id), None)
            if hold is None:
                if self._last_about("reservation_id", reservation_id) in ("release_preoccupation", "expire"):
                    return False
                self._refuse("release", f"reservation {reservation_id} holds no place on it; "
                                        + self._state_text(change.at))
            self.holds.remove(hold)
            self._settle_shared(change.at)
        else:
            if self.occupancy != Occupancy.PREOCCUPIED or self.reservation_id != reservation_id:
                if self._last_about("reservation_id", reservation_id) in ("release_preoccupation", "expire"):
                    return False
                self._refuse("release", f"it is not pre-occupied by reservation {reservation_id}; "
                                        + self._state_text(change.at))
            self.occupancy = Occupancy.FREE
            self.reservation_id = None
            self.preoccupied_until = None
        self._record("release_preoccupation", change, before, reservation_id=reservation_id)
        return True

    def occupy(self, change: Change, *, service_id: str, reservation_id: str | None = None) -> bool:
        """實占 on completion: the order's pre-occupation becomes occupation by the service.
        Without a reservation (bulk load, cutover apply) the unit must have room. A service
        already on the unit changes nothing (a retried commit). Returns whether anything changed."""
        if not service_id:
            raise Invalid("occupying a unit needs the service that occupies it", field="service_id")
        now = change.at
        self._lock()
        if self.carries(service_id):
            if reservation_id is not None and self._holds(reservation_id):
                self._refuse("occupy", f"service {service_id} is on it already; reservation {reservation_id} "
                                       "cannot occupy it again")
            return False
        if reservation_id is not None:
            if not self._holds(reservation_id):
                self._refuse("occupy", f"it is not pre-occupied by reservation {reservation_id}; "
                                       + self._state_text(now))
            live = (any(h.holder == reservation_id for h in self.active_holds(now)) if self.shared
                    else aware(self.preoccupied_until) > now)
            if not live:
                self._refuse("occupy", f"the pre-occupation of reservation {reservation_id} has expired", Expired)
            if self.admin_state == AdminState.LOCKED:
                self._refuse("occupy", f"it is locked by cutover {self.locked_by}", Locked)
        else:
            self._check_can_take("occupy", change, None)
        before = self._snapshot(now)
        if self.shared:
            self.holds[:] = [h for h in self.holds if h.holder != reservation_id]
            self.uses.append(SharedUse(unit_id=self.id, service_id=service_id, since=now))
            self.used = len(self.uses)
            self.occupancy = Occupancy.OCCUPIED
        else:
            self.occupancy = Occupancy.OCCUPIED
            self.service_id = service_id
            self.reservation_id = None
            self.preoccupied_until = None
        self._record("occupy", change, before, reservation_id=reservation_id, service_id=service_id)
        return True

    def _holds(self, reservation_id: str) -> bool:
        if self.shared:
            return any(h.holder == reservation_id for h in self.holds)
        return self.occupancy == Occupancy.PREOCCUPIED and self.reservation_id == reservation_id

    def release(self, change: Change, *, service_id: str, quarantine_days: int | None = None) -> bool:
        """Free a unit a service no longer uses (removal, move, cutover). A number enters
        quarantine for `quarantine_days` before anyone may choose it again. Releasing again a
        service already released changes nothing; a service that never was on it is refused.
        Returns whether anything changed."""
        self._lock()
        if not self.carries(service_id):
            if service_id and self._last_about("service_id", service_id) == "release":
                return False
            self._refuse("release", f"service {service_id} is not on it; " + self._state_text(change.at)
                         if self.shared else
                         f"it is not occupied by service {service_id}; " + self._state_text(change.at))
        before = self._snapshot(change.at)
        if self.shared:
            self.uses[:] = [u for u in self.uses if u.service_id != service_id]
            self.used = len(self.uses)
            self._settle_shared(change.at)
        else:
            self.occupancy = Occupancy.FREE
            self.service_id = None
        if self.kind == "number" and quarantine_days:
            self.quarantine_until = change.at + timedelta(days=quarantine_days)
        self._record("release", change, before, service_id=service_id)
        return True

    def _settle_shared(self, now: datetime) -> None:
        self.occupancy = shared_occupancy(self.used, len(self.active_holds(now)))

    def expire(self, change: Change) -> list[str]:
        """Clear what has expired by `change.at`: an exclusive unit's pre-occupation, or a shared
        unit's expired holds (the sweeper's cleaning; an expired hold already counts as free).
        One "expire" history row per reservation; returns their ids."""
        self._lock()
        now, expired = change.at, []
        if self.shared:
            for hold in [h for h in self.holds if aware(h.expires_at) <= now]:
                # the snapshot counts live holds only: name the expired one so before differs from after
                before = {**self._snapshot(now), "expired_hold": hold.holder,
                          "expired_at": aware(hold.expires_at).isoformat()}
                self.holds.remove(hold)
                self._settle_shared(now)
                self._record("expire", change, before, reservation_id=hold.holder)
                expired.append(hold.holder)
        elif self.occupancy == Occupancy.PREOCCUPIED and aware(self.preoccupied_until) <= now:
            before, holder = self._snapshot(now), self.reservation_id
            self.occupancy, self.reservation_id, self.preoccupied_until = Occupancy.FREE, None, None
            self._record("expire", change, before, reservation_id=holder)
            expired.append(holder)
        return expired

    def end_quarantine(self, change: Change) -> None:
        self._lock()
        if self.kind != "number" or self.quarantine_until is None:
            self._refuse("end quarantine of", "it is not in quarantine")
        before = self._snapshot(change.at)
        self.quarantine_until = None
        self._record("end_quarantine", change, before)

    # -- administrative state --------------------------------------------------------------

    def _set_admin(self, action: str, change: Change, allowed_from: set[AdminState], to: AdminState,
                   *, locked_by: str | None = None) -> None:
        if self.admin_state not in allowed_from:
            extra = f" by cutover {self.locked_by}" if self.admin_state == AdminState.LOCKED else ""
            self._refuse(action, f"it is {AdminState(self.admin_state).value}{extra}; allowed only from "
                                 f"{', '.join(sorted(s.value for s in allowed_from))}")
        before = self._snapshot(change.at)
        self.admin_state = to
        self.locked_by = locked_by
        self.admin_reason = change.reason
        self._record(action, change, before)

    def lock(self, change: Change) -> None:
        """封鎖 for a cutover: what is on it keeps working, nothing new may land on it."""
        if not change.cutover_id:
            raise Invalid("locking needs the cutover that locks", field="cutover_id")
        self._lock()
        if self.admin_state == AdminState.LOCKED and self.locked_by == change.cutover_id:
            return  # locking again for the same cutover is a no-op (retries)
        self._set_admin("lock", change, {AdminState.IN_SERVICE}, AdminState.LOCKED, locked_by=change.cutover_id)

    def unlock(self, change: Change) -> None:
        self._lock()
        if self.admin_state != AdminState.LOCKED or self.locked_by != change.cutover_id:
            self._refuse("unlock", f"it is not locked by cutover {change.cutover_id}"
                                   + (f" (locked by {self.locked_by})" if self.locked_by else ""))
        self._set_admin("unlock", change, {AdminState.LOCKED}, AdminState.IN_SERVICE)

    def mark_faulty(self, change: Change) -> None:
        if not change.reason:
            raise Invalid("marking a unit faulty needs a reason", field="reason")
        self._lock()
        self._set_admin("mark_faulty", change, {AdminState.IN_SERVICE, AdminState.RESERVED}, AdminState.FAULTY)

    def repair(self, change: Change) -> None:
        self._lock()
        self._set_admin("repair", change, {AdminState.FAULTY}, AdminState.IN_SERVICE)

    def reserve(self, change: Change) -> None:
        """預留 for planning: only a free unit, so no order is silently stranded."""
        self._lock()
        if self.effective_occupancy(change.at) != Occupancy.FREE:
            self._refuse("reserve", self._state_text(change.at))
        self._set_admin("reserve", change, {AdminState.IN_SERVICE}, AdminState.RESERVED)

    def unreserve(self, change: Change) -> None:
        self._lock()
        self._set_admin("unreserve", change, {AdminState.RESERVED}, AdminState.IN_SERVICE)


# the allocation path registers its session hooks (the stale-write check) with the model
from resource_mgr.occupancy import ledger as _ledger  # noqa: E402,F401
