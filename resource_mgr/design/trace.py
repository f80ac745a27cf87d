"""Bulk reads for design: units with everything a design needs to judge them (state, live
holds, root resource, cable length and gauge, splitter ratio, OLT model), and their
connections, a whole frontier at a time (one query per level of the walk, never one per unit)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from datetime import datetime
from typing import Any

from sqlalchemy import String, any_, bindparam, case, func, or_, select, union_all
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from resource_mgr.clock import aware
from resource_mgr.config import Settings
from resource_mgr.db import UTCDateTime
from resource_mgr.inventory.models import Cable, Connection, CrossBox, Device, Frame, Resource
from resource_mgr.occupancy.models import SharedHold, Unit
from resource_mgr.states import AdminState, Occupancy, ResourceStatus

_res = Resource.__table__.alias("root")
_cab = Cable.__table__.alias("root_cable")
_dev = Device.__table__.alias("root_device")
_frm = Frame.__table__.alias("root_frame")
_cbx = CrossBox.__table__.alias("root_cross_box")
_CHUNK = 900


_u = Unit.__table__
_NOW = bindparam("now", type_=UTCDateTime)
_RES = bindparam("res")
_PG = {"postgresql"}


def _in(column: Any, name: str, dialect: str) -> Any:
    """`column IN (:name)`: on PostgreSQL `= ANY(:name)` with one array parameter, so the text of
    the statement never changes and the server prepares it once (planning costs more than running)."""
    if dialect in _PG:
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


def _columns() -> list[Any]:
    held = (select(func.count()).select_from(SharedHold.__table__)
            .where(SharedHold.__table__.c.unit_id == _u.c.id, SharedHold.__table__.c.expires_at > _NOW,
                   SharedHold.__table__.c.holder != _RES)
            .correlate(_u).scalar_subquery())
    return [_u.c.id, _u.c.kind, _u.c.name, _u.c.seq, _u.c.root_id, _u.c.owner_id, _u.c.side, _u.c.technology,
            _u.c.capacity, _u.c.used, _u.c.occupancy, _u.c.reservation_id, _u.c.preoccupied_until,
            _u.c.admin_state, case((_u.c.capacity > 1, held), else_=0).label("held"), _res.c.kind, _res.c.name,
            _res.c.status, _cab.c.length_m, _cab.c.conductor_mm, _dev.c.split_ratio, _dev.c.device_type,
            _dev.c.technology, _dev.c.model, func.coalesce(_dev.c.site_id, _frm.c.site_id, _cbx.c.site_id)]


def _select(*extra: Any, frm: Any = None) -> Any:
    frm = _u if frm is None else frm
    joined = (frm.join(_res, _res.c.id == _u.c.root_id).outerjoin(_cab, _cab.c.id == _u.c.root_id)
              .outerjoin(_dev, _dev.c.id == _u.c.root_id).outerjoin(_frm, _frm.c.id == _u.c.root_id)
              .outerjoin(_cbx, _cbx.c.id == _u.c.root_id))
    return select(*extra, *_columns()).select_from(joined)


def _free() -> Any:
    """SQL: an exclusive unit free now (an expired pre-occupation is free), or held by `res`."""
    return or_(_u.c.occupancy == Occupancy.FREE.value,
               (_u.c.occupancy == Occupancy.PREOCCUPIED.value) & (_u.c.preoccupied_until <= _NOW),
               _u.c.reservation_id == _RES)


@cache
def _statement(name: str, dialect: str) -> Any:
    """Built once per process: building a statement costs more than running it."""
    if name == "by_owner":
        return _select().where(_in(_u.c.owner_id, "ids", dialect), _u.c.kind == bindparam("kind")) \
            .order_by(_u.c.owner_id, _u.c.seq)
    if name == "by_root":
        return _select().where(_in(_u.c.root_id, "ids", dialect), _u.c.kind == bindparam("kind"))
    if name.startswith("pool"):
        where = [_in(_u.c.root_id, "ids", dialect), _u.c.kind == bindparam("kind"),
                 _u.c.admin_state == AdminState.IN_SERVICE.value, _free(),
                 ~_in(_u.c.id, "avoid", dialect)]
        if "_side" in name:
            where.append(_u.c.side == bindparam("side"))
        if "_techs" in name:
            where.append(_in(_u.c.technology, "techs", dialect))
        return _select().where(*where).order_by(_u.c.seq, _u.c.id).limit(bindparam("lim"))
    if name == "head_stats":
        devices = select(Device.__table__.c.id).where(Device.__table__.c.site_id == bindparam("site"))
        return (select(_u.c.root_id, func.count(),
                       func.sum(case((_u.c.occupancy == Occupancy.FREE.value, 0), else_=1)))
                .where(_u.c.root_id.in_(devices), _u.c.kind == bindparam("kind"),
                       _in(_u.c.technology, "techs", dialect))
                .group_by(_u.c.root_id))
    if name == "neighbours":
        c = Connection.__table__
        one = _select(c.c.a_unit_id.label("src"), c.c.kind.label("ckind"), c.c.container_id,
                      frm=c.join(_u, _u.c.id == c.c.z_unit_id)).where(_in(c.c.a_unit_id, "ids", dialect))
        two = _select(c.c.z_unit_id.label("src"), c.c.kind.label("ckind"), c.c.container_id,
                      frm=c.join(_u, _u.c.id == c.c.a_unit_id)).where(_in(c.c.z_unit_id, "ids", dialect))
        return union_all(one, two)
    raise KeyError(name)


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
    capacity: int
    used: int
    occupancy: str
    reservation_id: str | None
    preoccupied_until: datetime | None
    admin_state: str
    held: int  # live holds of others (shared units)
    root_kind: str
    root_name: str
    root_status: str
    length_m: float | None
    conductor_mm: float | None
    split_ratio: int | None
    device_type: str | None
    dev_technology: str | None
    model: str | None
    site_id: str | None

    @property
    def shared(self) -> bool:
        return self.capacity > 1


class Tracer:
    """One design's reads; remembers every unit and connection it has seen."""

    def __init__(self, session: Session, *, now: datetime, settings: Settings, avoid: Iterable[str] = (),
                 reservation_id: str | None = None) -> None:
        self.session, self.now, self.settings = session, now, settings
        self.dialect = session.get_bind().dialect.name
        self.avoid = frozenset(avoid)
        self.reservation_id = reservation_id
        self.units: dict[str, U] = {}
        # unit id -> [(neighbour id, connection kind, container id)]
        self.links: dict[str, list[tuple[str, str, str | None]]] = {}
        self.queries = 0
        self.device_fill: dict[str, float] = {}  # head device id -> share of its ports in use

    # -- reading -----------------------------------------------------------------------------

    def _run(self, name: str, **params: Any) -> Any:
        self.queries += 1
        return self.session.execute(_statement(name, self.dialect), {"now": self.now, "res": self.reservation_id or "", **params})

    def _row(self, row: Sequence[Any], offset: int = 0) -> U:
        u = U(*row[offset:])
        self.units.setdefault(u.id, u)
        return self.units[u.id]

    def by_owner(self, owner_ids: Sequence[str], kind: str) -> list[U]:
        """The units of a kind of these owners (boxes: their ports), by owner and seq."""
        return [self._row(r) for r in self._run("by_owner", ids=list(owner_ids), kind=kind)] if owner_ids else []

    def by_root(self, root_ids: Sequence[str], kind: str) -> list[U]:
        return [self._row(r) for r in self._run("by_root", ids=list(root_ids), kind=kind)] if root_ids else []

    def pool(self, root_ids: Sequence[str], kind: str, *, side: str | None = None, techs: Sequence[str] | None = None,
             limit: int) -> list[U]:
        """Free, in-service units of a kind of these roots (lowest seq first), not avoided."""
        params: dict[str, Any] = {"ids": list(root_ids), "kind": kind, "avoid": sorted(self.avoid), "lim": limit}
        name = "pool"
        if side is not None:
            name, params["side"] = name + "_side", side
        if techs is not None:
            name, params["techs"] = name + "_techs", list(techs)
        return [self._row(r) for r in self._run(name, **params)]

    def head_stats(self, site_id: str, kind: str, techs: Sequence[str]) -> list[tuple[str, int, int]]:
        """(device id, ports, ports not free) of the head devices at a site."""
        return [tuple(r) for r in self._run("head_stats", site=site_id, kind=kind, techs=list(techs))]

    def neighbours(self, ids: Iterable[str]) -> None:
        """Load the connections of these units and the units at their other ends."""
        todo = sorted({i for i in ids if i not in self.links})
        for i in range(0, len(todo), _CHUNK):
            chunk = todo[i:i + _CHUNK]
            for uid in chunk:
                self.links[uid] = []
            for row in self._run("neighbours", ids=chunk):
                src, kind, container = row[0], row[1], row[2]
                other = self._row(row, 3)
                self.links[src].append((other.id, kind, container))

    def next_of(self, uid: str, prev: str | None) -> list[tuple[str, str, str | None]]:
        return [link for link in self.links.get(uid, []) if link[0] != prev]

    # -- judging -----------------------------------------------------------------------------

    def room(self, u: U) -> int:
        """Places the unit can give this design now (0: none)."""
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
