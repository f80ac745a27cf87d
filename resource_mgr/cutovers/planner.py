"""The copper-to-fibre planner (光進銅退): for a cross box, a copper distribution box or an area,
propose a cutover mapping that moves every copper service (ADSL, VDSL, POTS, NGN phone over
copper) to an FTTH path at its address, number kept.

    plan_copper_to_fibre(session, *, scope_id, settings, now, local_network_ids, progress=None)
      -> {"rows": [{"old", "new", "keep_number"}...], "unmapped": [{"service_id", "reason_code",
          "reason", "reason_zh", ...}...], "notes": [...], "counts": {...}}

- **Which services**: those occupying a unit of the cross box or the distribution box; for an
  area, those at an address of the area or of any area below it (by `area_id`, and every
  address under such an address). Riders (a phone on the ADSL line, IPTV) occupy nothing of
  their own and move with their line: they are counted, not mapped.
- **A row per line service**: `old` is its head port (the DSLAM's dsl_port, the switch's or the
  access gateway's line_port), `new` the fibre box port the FTTH design at its address starts
  from (resource_mgr.design.design_path, the one design orders use), `keep_number` true.
- **One line per address** (`one_line_per_address`, by default as the cutover's validation
  accepts: `shared_lines()`): all the copper services of an address map to the same box port,
  one FTTH line, the POTS becoming an NGN phone riding on it; an address whose customer already
  has a live FTTH line maps to that line's box port (nothing new to build). Otherwise each
  copper service gets an FTTH line (a box port) of its own.
- **Capacity across the plan**: the design sees the database only, so the planner keeps what its
  earlier rows took: their exclusive units are avoided, and each shared unit (PON port,
  splitters, feeder cores) is given at most the room it had when the plan started.
- **Unmapped**, with a reason code and the design's sentence in English and Chinese:
  `no_fibre_coverage`, `no_pon_capacity`, `budget`, `box_full`, `splitter_full`, `fibre_full`,
  `not_wired`, `locked` (the path or the head port is locked by a cutover), `no_address`,
  `no_head_port`, ...

It reads only: nothing is held until a cutover made from the rows is locked.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.orm import Session, aliased

from resource_mgr.config import Settings
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.design import NoDesign, design_path
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory.models import Address, Area, CrossBox, DistributionBox, Resource
from resource_mgr.occupancy.models import Unit
from resource_mgr.states import AdminState, ServiceState

COPPER_TECHNOLOGIES = ("ADSL", "VDSL", "POTS")
HEAD_KINDS = ("dsl_port", "line_port")
# the design's reason codes as the planner names them; the others keep the design's name
DESIGN_REASONS = {"no_serving_box": "no_fibre_coverage", "pon_full": "no_pon_capacity", "box_locked": "locked"}
OWN_REASONS: dict[str, tuple[str, str]] = {
    "no_address": ("the service has no address: no FTTH path can be designed for it", "業務沒有地址，無法設計FTTH路由"),
    "no_head_port": ("the service occupies no DSLAM or switch line port to move from",
                     "業務沒有佔用DSLAM端口或交換機用戶端口，無從割接"),
    "locked": ("its head port is locked by another cutover", "其局端端口已被其他割接封鎖"),
}
_CHUNK = 500


def _scope(session: Session, scope_id: str, local_network_ids: set[str] | None) -> Resource:
    res = session.get(Resource, scope_id)
    if res is None or (local_network_ids is not None and res.local_network_id not in local_network_ids):
        raise NotFound(f"no cross box, distribution box or area {scope_id}", field="scope_id")
    if isinstance(res, DistributionBox) and res.medium != "copper":
        raise Invalid(f"{res.name} is a {res.medium} distribution box: the scope of a copper-to-fibre plan is a "
                      "cross box, a copper distribution box or an area", field="scope_id")
    if not isinstance(res, (CrossBox, DistributionBox, Area)):
        raise Invalid(f"{res.name} is a {res.kind}: the scope of a copper-to-fibre plan is a cross box, a copper "
                      "distribution box or an area", field="scope_id")
    return res


def _area_addresses(scope_id: str) -> Any:
    """SQL: the ids of the addresses in an area, the areas below it, and every address under those."""
    areas = select(Resource.id).where(Resource.id == scope_id).cte("areas", recursive=True)
    sub = aliased(Resource)
    areas = areas.union(select(sub.id).join(areas, sub.parent_id == areas.c.id).where(sub.kind == "area"))
    addrs = select(Address.id).where(Address.area_id.in_(select(areas.c.id))).cte("addrs", recursive=True)
    child = aliased(Resource)
    addrs = addrs.union(select(child.id).join(addrs, child.parent_id == addrs.c.id).where(child.kind == "address"))
    return select(addrs.c.id)


def _services_in_scope(session: Session, scope: Resource) -> list[Service]:
    live = (Service.state != ServiceState.REMOVED, Service.technology.in_(COPPER_TECHNOLOGIES),
            Service.local_network_id == scope.local_network_id)
    if isinstance(scope, Area):
        where = Service.address_id.in_(_area_addresses(scope.id))
    else:
        through = (select(ServiceUnit.service_id).join(Unit, Unit.id == ServiceUnit.unit_id)
                   .where(Unit.root_id == scope.id))
        owned = (select(ServiceUnit.service_id).join(Unit, Unit.id == ServiceUnit.unit_id)
                 .where(Unit.owner_id == scope.id))
        where = Service.id.in_(union(through, owned))
    return list(session.scalars(select(Service).where(where, *live).order_by(Service.address_id, Service.id)))


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]


def _head_ports(session: Session, service_ids: Sequence[str]) -> dict[str, Unit]:
    """Each line service's head port (the last dsl_port / line_port of its path)."""
    out: dict[str, tuple[int, Unit]] = {}
    for chunk in _chunks(service_ids):
        rows = session.execute(select(ServiceUnit.service_id, ServiceUnit.seq, Unit)
                               .join(Unit, Unit.id == ServiceUnit.unit_id)
                               .where(ServiceUnit.service_id.in_(chunk), Unit.kind.in_(HEAD_KINDS)))
        for sid, seq, unit in rows:
            if sid not in out or seq > out[sid][0]:
                out[sid] = (seq, unit)
    return {sid: unit for sid, (_seq, unit) in out.items()}


def _live_fibre_ports(session: Session, address_ids: Sequence[str], local_network_id: str) -> dict[str, str]:
    """address -> the box port of the live FTTH line already there (the newest)."""
    out: dict[str, tuple[Any, str]] = {}
    for chunk in _chunks(address_ids):
        rows = session.execute(
            select(Service.address_id, Service.created_at, Unit.id)
            .join(ServiceUnit, ServiceUnit.service_id == Service.id)
            .join(Unit, Unit.id == ServiceUnit.unit_id)
            .where(Service.address_id.in_(chunk), Service.local_network_id == local_network_id,
                   Service.state == ServiceState.ACTIVE, Service.technology == "FTTH", Service.bearer_id.is_(None),
                   Unit.kind == "box_port"))
        for addr, created, port in rows:
            if addr not in out or created > out[addr][0]:
                out[addr] = (created, port)
    return {a: port for a, (_c, port) in out.items()}


class _Capacity:
    """What this plan's rows have taken so far: exclusive units are avoided by later designs,
    shared units given at most the room they had when the plan started."""

    def __init__(self, session: Session, settings: Settings, now: datetime) -> None:
        self.session, self.settings, self.now = session, settings, now
        self.avoid: set[str] = set()
        self.left: dict[str, int] = {}
        self._frozen: frozenset[str] = frozenset()

    def frozen(self) -> frozenset[str]:
        if len(self._frozen) != len(self.avoid):
            self._frozen = frozenset(self.avoid)
        return self._frozen

    def _room(self, unit_id: str) -> int:
        u = self.session.get(Unit, unit_id)
        cap = u.capacity
        if u.kind == "pon_port":
            cap = min(cap, self.settings.design_max_onts_per_pon)
        return max(cap - u.used - len(u.active_holds(self.now)), 0)

    def take(self, hops: Iterable[Any]) -> None:
        for h in hops:
            if not h.shared:
                self.avoid.add(h.unit_id)
                continue
            if h.unit_id not in self.left:
                self.left[h.unit_id] = self._room(h.unit_id)
            self.left[h.unit_id] -= 1
            if self.left[h.unit_id] <= 0:
                self.avoid.add(h.unit_id)


def _unmapped(service: Service, code: str, en: str, zh: str) -> dict[str, Any]:
    return {"service_id": service.id, "product": service.product, "number": service.number,
            "address_id": service.address_id, "reason_code": code, "reason": en, "reason_zh": zh}


def _own(service: Service, code: str) -> dict[str, Any]:
    en, zh = OWN_REASONS[code]
    return _unmapped(service, code, en, zh)


def _order(services: list[Service]) -> list[Service]:
    """Broadband first at an address (its line is the FTTH line the phone rides on)."""
    return sorted(services, key=lambda s: (s.technology == "POTS", s.id))


def shared_lines() -> bool:
    """Whether cutover validation and apply take several copper-to-fibre rows onto one box port
    (the services of an address on one FTTH line): `SHARED_FIBRE_LINES` in
    resource_mgr.cutovers.validation says so. Until it does, every row has a box port of its own,
    so that the plan validates clean."""
    from resource_mgr.cutovers import validation

    return bool(getattr(validation, "SHARED_FIBRE_LINES", False))


def plan_copper_to_fibre(session: Session, *, scope_id: str, settings: Settings, now: datetime,
                         local_network_ids: set[str] | None,
                         progress: Callable[[int, int], None] | None = None,
                         one_line_per_address: bool | None = None) -> dict[str, Any]:
    """The proposed mapping of the scope's copper services (see the module docstring).
    `progress(done, total)` is called after each address. `one_line_per_address`: True, the
    services of an address share one FTTH line (one box port; an existing FTTH line's); False,
    a line of its own for each; None, as the cutover's validation accepts (shared_lines())."""
    if one_line_per_address is None:
        one_line_per_address = shared_lines()
    scope = _scope(session, scope_id, local_network_ids)
    found = _services_in_scope(session, scope)
    lines = [s for s in found if s.bearer_id is None]
    riders = len(found) - len(lines)
    heads = _head_ports(session, [s.id for s in lines])
    by_address: dict[str | None, list[Service]] = defaultdict(list)
    for s in lines:
        by_address[s.address_id].append(s)
    addresses = sorted(a for a in by_address if a is not None)
    names = {}
    for chunk in _chunks(addresses):
        names.update(session.execute(select(Address.id, Address.name).where(Address.id.in_(chunk))).all())
    addresses.sort(key=lambda a: (names.get(a, ""), a))
    existing = _live_fibre_ports(session, addresses, scope.local_network_id)

    rows: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    unmapped: list[dict[str, Any]] = [_own(s, "no_address") for s in by_address.get(None, [])]
    capacity = _Capacity(session, settings, now)
    box_names: dict[str, str] = {}

    def design(address_id: str, group: list[tuple[Service, Unit]]) -> None:
        """One FTTH line for these services of the address: a row each, all to its box port."""
        try:
            d = design_path(session, address_id=address_id, technology="FTTH", settings=settings, now=now,
                            avoid=capacity.frozen())
        except NoDesign as exc:
            code = DESIGN_REASONS.get(exc.reasons[0], exc.reasons[0])
            unmapped.extend(_unmapped(s, code, exc.detail, exc.reason_zh) for s, _h in group)
            return
        except NotFound:
            unmapped.extend(_own(s, "no_address") for s, _h in group)
            return
        capacity.take(d.hops)
        add(address_id, group, d.hops[0].unit_id, d.hops[0].device, "design")

    def add(address_id: str, group: list[tuple[Service, Unit]], new: str, box: str | None, via: str) -> None:
        for s, head in group:
            rows.append({"old": head.id, "new": new, "keep_number": True})
            notes.append({"service_id": s.id, "product": s.product, "number": s.number, "address_id": address_id,
                          "address": names.get(address_id, ""), "old_device": head.root_id, "old_port": head.name,
                          "new_box": box, "via": via})
            if box is None:
                box_names.setdefault(new, "")

    total = len(addresses)
    for done, address_id in enumerate(addresses, 1):
        movable = []
        for s in _order(by_address[address_id]):
            head = heads.get(s.id)
            if head is None:
                unmapped.append(_own(s, "no_head_port"))
            elif head.admin_state == AdminState.LOCKED:
                unmapped.append(_own(s, "locked"))
            else:
                movable.append((s, head))
        if movable and not one_line_per_address:
            for one in movable:
                design(address_id, [one])
        elif movable and address_id in existing:
            add(address_id, movable, existing[address_id], None, "existing_ftth")
        elif movable:
            design(address_id, movable)
        if progress is not None:
            progress(done, total)
    devices: dict[str, str] = {}
    for chunk in _chunks(sorted({n["old_device"] for n in notes})):
        devices.update(session.execute(select(Resource.id, Resource.name).where(Resource.id.in_(chunk))).all())
    for n in notes:
        n["old_device"] = devices.get(n["old_device"], "")
    if box_names:  # the names of the existing lines' boxes, for the notes
        for chunk in _chunks(sorted(box_names)):
            box_names.update(session.execute(select(Unit.id, Resource.name).join(Resource, Resource.id == Unit.root_id)
                                             .where(Unit.id.in_(chunk))).all())
        for n, r in zip(notes, rows):
            if n["new_box"] is None:
                n["new_box"] = box_names.get(r["new"], "")
    counts = {"services": len(found), "line_services": len(lines), "riders": riders, "rows": len(rows),
              "addresses": total, "box_ports": len({r["new"] for r in rows}), "unmapped": len(unmapped),
              "by_reason": dict(Counter(u["reason_code"] for u in unmapped))}
    return {"scope": {"id": scope.id, "kind": scope.kind, "name": scope.name}, "rows": rows, "notes": notes,
            "unmapped": unmapped, "counts": counts}


def download_rows(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's rows with their notes as extra columns (a mapping file reads only old, new and
    keep_number, so the download can be uploaded as it is)."""
    return [{**row, **note} for row, note in zip(plan["rows"], plan["notes"])]


__all__ = ["download_rows", "plan_copper_to_fibre", "shared_lines"]
