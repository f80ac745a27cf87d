"""Validation (dry run) of a cutover mapping: every row that cannot be applied, and why.

Row codes (API.md): `unknown_unit` (no such unit, or one outside the caller's local networks),
`other_network` (not the cutover's local network), `kind_mismatch` (see KINDS), `duplicate`
(an old or new unit named by an earlier row), `locked_elsewhere` (locked by another cutover),
`new_not_free` (the new unit is taken, held, faulty, reserved or in quarantine; a shared one
without room for every service of the old one), `route_break` (a service's route would not run
through the new unit, or no FTTH path can be designed from the new box port).

Everything is read in bulk (a few statements per thousand rows, never one per row), so 20,000
rows validate in seconds; copper-to-fibre rows design one FTTH path each (the design's cost).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from resource_mgr.clock import aware
from resource_mgr.config import Settings
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.cutovers.models import COPPER_TO_FIBRE, SAME_KIND
from resource_mgr.errors import DomainError
from resource_mgr.inventory.models import Connection, DistributionBox
from resource_mgr.occupancy.models import SharedHold, SharedUse, Unit
from resource_mgr.states import AdminState, Occupancy

CHUNK = 900  # ids per IN (...): within SQLite's bound variables, few round trips on PostgreSQL

# like for like: the old unit's kind → the new unit's kind
SAME_KINDS = frozenset({"pair", "core", "box_port", "terminal", "pon_port", "dsl_port", "line_port", "eth_port"})
# a copper head port → the box port of a fibre access terminal: the service moves to FTTH
# (an NGN phone over copper, on an access gateway's line port, moves as a POTS line does: it is
# an NGN line already, its number stays on the softswitch)
COPPER_HEADS = {"dsl_port": ("adsl_broadband", "vdsl_broadband"), "line_port": ("pots", "ngn_phone")}
FIBRE_PRODUCT = {"adsl_broadband": "ftth_broadband", "vdsl_broadband": "ftth_broadband", "pots": "ngn_phone",
                 "ngn_phone": "ngn_phone"}
CODES = ("unknown_unit", "kind_mismatch", "new_not_free", "locked_elsewhere", "duplicate", "route_break",
         "other_network")


@dataclass(frozen=True)
class RowError:
    row: int
    old: str
    new: str
    code: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "old": self.old, "new": self.new, "code": self.code, "reason": self.reason}


@dataclass
class RowPlan:
    """What validation found for one row (used by lock and apply)."""
    row: int
    old: str
    new: str
    keep_number: bool
    mode: str = SAME_KIND
    services: list[str] = field(default_factory=list)  # on the old unit
    path: list[str] | None = None  # copper to fibre: the FTTH path designed from the new box port
    work: list[dict[str, Any]] | None = None  # copper to fibre: the field work of that design (ONT, jumpers)


@dataclass
class Validation:
    valid: bool
    errors: list[RowError]
    local_network_id: str | None = None
    rows: list[RowPlan] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "errors": [e.as_json() for e in self.errors]}


def chunks(ids: Sequence[str], size: int = CHUNK) -> Iterable[list[str]]:
    ids = list(ids)
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


ARRAY_CHUNK = 50_000  # ids per bound array on PostgreSQL


def among(session: Session, column: Any, ids: Iterable[str]) -> Iterable[ColumnElement[bool]]:
    """`column IN ids` as few statements need: on PostgreSQL one bound array per 50,000 ids
    (`= ANY(:ids)`: one statement, nothing expanded or compiled per id); on SQLite 900 ids a
    statement (its bound-variable limit). One condition per statement to run."""
    wanted = sorted(set(ids))
    if not wanted:
        return
    if session.get_bind().dialect.name == "postgresql":
        for i in range(0, len(wanted), ARRAY_CHUNK):
            yield column == any_(bindparam("ids", wanted[i:i + ARRAY_CHUNK], type_=ARRAY(String), unique=True))
    else:
        yield from (column.in_(part) for part in chunks(wanted))


_UNIT_COLUMNS = (Unit.id, Unit.kind, Unit.name, Unit.local_network_id, Unit.root_id, Unit.capacity, Unit.used,
                 Unit.occupancy, Unit.service_id, Unit.reservation_id, Unit.preoccupied_until, Unit.admin_state,
                 Unit.locked_by, Unit.quarantine_until)


def load_units(session: Session, ids: Iterable[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    wanted = {i for i in ids if isinstance(i, str) and 0 < len(i) <= 26}
    for cond in among(session, Unit.id, wanted):
        for row in session.execute(select(*_UNIT_COLUMNS).where(cond)):
            found[row.id] = row
    return found


def services_on(session: Session, units: dict[str, Any], ids: Iterable[str]) -> dict[str, list[str]]:
    """unit id → the services on it (an exclusive unit's holder; a shared one's uses)."""
    out: dict[str, list[str]] = defaultdict(list)
    shared = []
    for uid in ids:
        u = units[uid]
        if u.capacity > 1:
            shared.append(uid)
        elif u.occupancy == Occupancy.OCCUPIED and u.service_id:
            out[uid].append(u.service_id)
    for cond in among(session, SharedUse.unit_id, shared):
        for unit_id, service_id in session.execute(select(SharedUse.unit_id, SharedUse.service_id)
                                                   .where(cond)
                                                   .order_by(SharedUse.unit_id, SharedUse.service_id)):
            out[unit_id].append(service_id)
    return out


def live_holds(session: Session, ids: Iterable[str], now: datetime) -> dict[str, int]:
    out: dict[str, int] = {}
    for cond in among(session, SharedHold.unit_id, ids):
        out.update(session.execute(select(SharedHold.unit_id, func.count()).where(
            cond, SharedHold.expires_at > now).group_by(SharedHold.unit_id)).all())
    return out


def paths_of(session: Session, service_ids: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for cond in among(session, ServiceUnit.service_id, service_ids):
        for sid, uid in session.execute(select(ServiceUnit.service_id, ServiceUnit.unit_id)
                                        .where(cond)
                                        .order_by(ServiceUnit.service_id, ServiceUnit.seq)):
            out[sid].append(uid)
    return out


def connections_of(session: Session, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """connection id → (a, z) for every connection touching one of `ids`."""
    out: dict[str, tuple[str, str]] = {}
    wanted = set(ids)
    for column in (Connection.a_unit_id, Connection.z_unit_id):
        for cond in among(session, column, wanted):
            for cid, a, z in session.execute(select(Connection.id, Connection.a_unit_id, Connection.z_unit_id)
                                             .where(cond)):
                out[cid] = (a, z)
    return out


def places(u: Any, settings: Settings) -> int:
    """The places a shared unit gives, as the design counts them: a PON port no more than
    `design_max_onts_per_pon` ONTs whatever its capacity."""
    return min(u.capacity, settings.design_max_onts_per_pon) if u.kind == "pon_port" else u.capacity


def _taken_text(u: Any, now: datetime) -> str | None:
    """Why an exclusive new unit cannot take a service now (None: it can)."""
    if u.admin_state == AdminState.FAULTY:
        return "it is marked faulty"
    if u.admin_state == AdminState.RESERVED:
        return "it is reserved for planning"
    if u.quarantine_until is not None and aware(u.quarantine_until) > now:
        return f"it is in quarantine until {aware(u.quarantine_until).isoformat()}"
    if u.capacity > 1:
        return None
    if u.occupancy == Occupancy.OCCUPIED:
        return f"it is occupied by service {u.service_id}"
    if u.occupancy == Occupancy.PREOCCUPIED and aware(u.preoccupied_until) > now:
        return f"it is pre-occupied by reservation {u.reservation_id}"
    return None


def validate(session: Session, rows: Sequence[dict[str, Any]], *, settings: Settings, now: datetime,
             local_network_ids: Iterable[str] | None, cutover_id: str | None = None,
             holders: Iterable[str] = ()) -> Validation:
    """The report on `rows` ({"old", "new", "keep_number"?}, row numbers 1-based in input order).
    `cutover_id`: units locked or held by that cutover (`holders`: its pre-occupations) count
    as its own, not as taken (a cutover validated again while locked)."""
    scope = None if local_network_ids is None else frozenset(local_network_ids)
    own = {h for h in holders} | ({cutover_id} if cutover_id else set())
    plans = [RowPlan(row=i, old=str(r.get("old") or "").strip(), new=str(r.get("new") or "").strip(),
                     keep_number=r.get("keep_number", True) is not False) for i, r in enumerate(rows, 1)]
    units = load_units(session, [p.old for p in plans] + [p.new for p in plans])
    visible = {uid: u for uid, u in units.items() if scope is None or u.local_network_id in scope}
    errors: list[RowError] = []
    bad: set[int] = set()

    def refuse(p: RowPlan, code: str, reason: str) -> None:
        errors.append(RowError(p.row, p.old, p.new, code, reason))
        bad.add(p.row)

    local_network_id = next((visible[p.old].local_network_id for p in plans if p.old in visible), None)
    if local_network_id is None:
        local_network_id = next((visible[p.new].local_network_id for p in plans if p.new in visible), None)
    media = _box_media(session, [u.root_id for u in visible.values() if u.kind == "box_port"])

    # 1. units known, of the cutover's network, of kinds that fit; no unit named twice
    seen_old: dict[str, int] = {}
    seen_new: dict[str, int] = {}
    for p in plans:
        old, new = visible.get(p.old), visible.get(p.new)
        if old is None or new is None:
            missing = [x for x, u in ((p.old, old), (p.new, new)) if u is None]
            refuse(p, "unknown_unit", "no unit with id " + " nor ".join(repr(m) for m in missing))
            continue
        if old.local_network_id != local_network_id or new.local_network_id != local_network_id:
            refuse(p, "other_network", "the cutover's units are in one local network; "
                   + ("the old" if old.local_network_id != local_network_id else "the new")
                   + " unit is in another")
            continue
        if p.old == p.new:
            refuse(p, "duplicate", "the row maps a unit onto itself")
            continue
        if old.kind in SAME_KINDS and new.kind == old.kind and (
                old.kind != "box_port" or media.get(old.root_id) == media.get(new.root_id)):
            p.mode = SAME_KIND
        elif old.kind in COPPER_HEADS and new.kind == "box_port" and media.get(new.root_id) == "fibre":
            p.mode = COPPER_TO_FIBRE
        else:
            what = (f"{old.kind} ({media.get(old.root_id)}) → {new.kind} ({media.get(new.root_id)})"
                    if "box_port" in (old.kind, new.kind) else f"{old.kind} → {new.kind}")
            refuse(p, "kind_mismatch", f"{what} does not fit: like for like (pair → pair, core → core, box port → "
                   "box port of the same medium, ...), or a DSL or line port → a fibre access terminal's box port")
            continue
        first = seen_old.get(p.old) or seen_new.get(p.new) or seen_new.get(p.old) or seen_old.get(p.new)
        if first is not None:
            refuse(p, "duplicate", f"a unit of this row is already in row {first}")
            continue
        seen_old[p.old], seen_new[p.new] = p.row, p.row

    # 2. locked by another cutover; new units free
    for p in plans:
        if p.row in bad:
            continue
        old, new = visible[p.old], visible[p.new]
        other = next((u for u in (old, new) if u.admin_state == AdminState.LOCKED and u.locked_by != cutover_id),
                     None)
        if other is not None:
            refuse(p, "locked_elsewhere", f"{other.kind} {other.name} is locked by cutover {other.locked_by}")
            continue
        if new.capacity == 1 and new.occupancy == Occupancy.PREOCCUPIED and new.reservation_id in own:
            continue  # held by this very cutover
        why = _taken_text(new, now)
        if why is not None:
            refuse(p, "new_not_free", f"{new.kind} {new.name}: {why}")

    good = [p for p in plans if p.row not in bad]
    on_old = services_on(session, visible, [p.old for p in good])
    for p in good:
        p.services = list(on_old.get(p.old, []))
    shared_new = [p.new for p in good if visible[p.new].capacity > 1]
    held = live_holds(session, shared_new, now)
    own_held = _own_holds(session, shared_new, own) if own else {}
    for p in good:
        new = visible[p.new]
        if new.capacity > 1:
            room = places(new, settings) - new.used - held.get(p.new, 0) + own_held.get(p.new, 0)
            if room < max(1, len(p.services)):
                cap = places(new, settings)
                limit = (f" (a PON port takes at most {cap} ONTs: design_max_onts_per_pon)"
                         if cap < new.capacity else "")
                refuse(p, "new_not_free", f"{new.kind} {new.name} has room for {max(room, 0)} more{limit}; the old "
                       f"unit carries {len(p.services)} service(s)")
    good = [p for p in good if p.row not in bad]

    # 3. routes: like for like through the connections; copper to fibre by designing the path
    same = [p for p in good if p.mode == SAME_KIND]
    for p, reason in _route_breaks(session, same):
        refuse(p, "route_break", reason)
    fibre = [p for p in good if p.mode == COPPER_TO_FIBRE]
    for p, reason in _fibre_paths(session, fibre, visible, settings=settings, now=now):
        refuse(p, "route_break", reason)

    errors.sort(key=lambda e: e.row)
    return Validation(valid=not errors and bool(plans), errors=errors, local_network_id=local_network_id,
                      rows=plans)


def _box_media(session: Session, box_ids: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for cond in among(session, DistributionBox.id, box_ids):
        out.update(session.execute(select(DistributionBox.id, DistributionBox.medium).where(cond)).all())
    return out


def _own_holds(session: Session, ids: Iterable[str], own: set[str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for cond in among(session, SharedHold.unit_id, ids):
        for unit_id, holder in session.execute(select(SharedHold.unit_id, SharedHold.holder).where(cond)):
            if holder in own:
                out[unit_id] += 1
    return out


def connection_moves(plans: Sequence[RowPlan], connections: dict[str, tuple[str, str]]) -> dict[str, str]:
    """old → new for the rows whose new unit has no connection of its own: the old unit's
    connections are re-pointed to it (so the route runs through it)."""
    wired = {x for a, z in connections.values() for x in (a, z)}
    return {p.old: p.new for p in plans if p.mode == SAME_KIND and p.new not in wired}


def _route_breaks(session: Session, plans: Sequence[RowPlan]) -> list[tuple[RowPlan, str]]:
    """Rows whose move leaves a service's route broken: two hops joined by a connection before
    that are not joined after (the new unit is wired elsewhere)."""
    if not plans:
        return []
    by_old = {p.old: p for p in plans}
    subst = {p.old: p.new for p in plans}
    services = sorted({s for p in plans for s in p.services})
    paths = paths_of(session, services)
    # a hop the move changes has an old unit at one end, and after it a new one: the connections
    # of the old and new units are all that can decide it
    connections = connections_of(session, set(subst) | set(subst.values()))
    moves = connection_moves(plans, connections)
    before = {frozenset(c) for c in connections.values()}
    after = {frozenset((moves.get(a, a), moves.get(z, z))) for a, z in connections.values()}
    broken: dict[int, tuple[RowPlan, str]] = {}
    for sid in services:
        path = paths.get(sid, [])
        for x, y in zip(path, path[1:]):
            if frozenset((x, y)) not in before:
                continue  # joined inside a device (splitter in → out), not by a connection
            nx, ny = subst.get(x, x), subst.get(y, y)
            if (nx, ny) == (x, y) or frozenset((nx, ny)) in after:
                continue
            p = by_old.get(x) or by_old.get(y)
            if p is not None and p.row not in broken:
                broken[p.row] = (p, f"service {sid}: after the move {nx} and {ny} are not connected "
                                    "(the new unit is wired elsewhere)")
    return list(broken.values())


def _fibre_paths(session: Session, plans: Sequence[RowPlan], units: dict[str, Any], *, settings: Settings,
                 now: datetime) -> list[tuple[RowPlan, str]]:
    """Design each copper-to-fibre row's FTTH path from its box port, around what earlier rows
    take (their exclusive units, and shared ones once full)."""
    from resource_mgr.design.services import design_path

    if not plans:
        return []
    refused: list[tuple[RowPlan, str]] = []
    services = {s.id: s for cond in among(session, Service.id, {s for p in plans for s in p.services})
                for s in session.scalars(select(Service).where(cond))}
    avoid: set[str] = set()
    left: dict[str, int] = {}  # shared unit → places left for the rows still to design
    for p in plans:
        svc = services.get(p.services[0]) if p.services else None
        old = units[p.old]
        if svc is None:
            refused.append((p, f"{old.kind} {old.name} carries no service to move to fibre"))
            continue
        if svc.product not in COPPER_HEADS[old.kind]:
            refused.append((p, f"service {svc.id} is {svc.product}: a {old.kind} row moves "
                               f"{' or '.join(COPPER_HEADS[old.kind])} to fibre"))
            continue
        if not svc.address_id:
            refused.append((p, f"service {svc.id} has no address to design an FTTH path to"))
            continue
        try:
            design = design_path(session, address_id=svc.address_id, technology="FTTH", settings=settings, now=now,
                                 keep=[p.new], avoid=frozenset(avoid))
        except DomainError as exc:
            refused.append((p, f"no FTTH path from {units[p.new].name} for service {svc.id}: {exc.detail}"))
            continue
        if p.new not in design.unit_ids:
            refused.append((p, f"box port {units[p.new].name} gives no FTTH path to the address of service "
                               f"{svc.id} (it does not serve it, or nothing behind it is free)"))
            continue
        p.path = list(design.unit_ids)
        p.work = [w.as_json() for w in design.work]
        for hop in design.hops:
            if not hop.shared:
                avoid.add(hop.unit_id)
        shared = [h.unit_id for h in design.hops if h.shared and h.unit_id not in left]
        if shared:
            rows = load_units(session, shared)
            held = live_holds(session, shared, now)
            for uid in shared:
                u = rows[uid]
                left[uid] = places(u, settings) - u.used - held.get(uid, 0)
        for hop in design.hops:
            if hop.shared:
                left[hop.unit_id] -= 1
                if left[hop.unit_id] <= 0:
                    avoid.add(hop.unit_id)
    return refused
