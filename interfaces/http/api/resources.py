"""Inventory reads: GET /api/v1/resources, /resources/{id}, /resources/{id}/units.

Resources (sites, devices, cards, cables, boxes, frames, pools ...) and units (ports, pairs,
cores, box ports, numbers) share one id space, so both are found here by id and both can be
listed. Every principal may read, within its local networks; another city's resource is a 404."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Dict, Float, Integer, Nested, String
from apiflask.validators import Length, OneOf
from shapely.geometry import mapping
from sqlalchemy import false, func, literal, or_, select, union, union_all
from sqlalchemy.orm import Session, with_polymorphic

import resource_mgr.models  # noqa: F401  (every resource kind mapped)
from resource_mgr.clock import aware, utcnow
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory.models import CrossBox, Device, Frame, LocalNetwork, Resource, Site
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy.models import UNIT_KINDS, Unit
from resource_mgr.states import AdminState, Occupancy, ResourceStatus

from interfaces.http.api.common import PageQuery
from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session

bp = APIBlueprint("resources", __name__)

RESOURCE_STATUSES = tuple(s.value for s in ResourceStatus)
def _no_units() -> dict[str, int]:
    return {"total": 0, **{o.value: 0 for o in Occupancy}}


STATES = sorted({*(o.value for o in Occupancy), *(a.value for a in AdminState), *RESOURCE_STATUSES})
CONTAINER_KINDS = {"device", "card", "frame", "cable", "cross_box", "distribution_box", "number_pool",
                   "number_segment"}


def resource_kinds() -> list[str]:
    return sorted(k for k in Resource.__mapper__.polymorphic_map if k != "resource")


# -- schemas -------------------------------------------------------------------------------------

class UnitCounts(Schema):
    total = Integer()
    free = Integer()
    preoccupied = Integer()
    occupied = Integer()


class ResourceQuery(PageQuery):
    kind = String(validate=OneOf([*resource_kinds(), *UNIT_KINDS]), metadata={"description": "a resource kind (site, device, cable ...) or a unit kind "
                                           "(pon_port, pair, core, box_port, number ...)"})
    site = String(validate=Length(1, 26), metadata={"description": "site id: what stands in that site"})
    state = String(validate=OneOf(STATES), metadata={
        "description": "units: occupancy (free/preoccupied/occupied, effective now) or admin_state; "
                       "resources: status (in_service/planned/retired)"})
    q = String(validate=Length(1, 200), metadata={"description": "name contains (case-insensitive)"})
    local_network = String(validate=Length(1, 16), metadata={"description": "local network code"})


class UnitQuery(PageQuery):
    kind = String(validate=OneOf(UNIT_KINDS))
    occupancy = String(validate=OneOf([o.value for o in Occupancy]))
    admin_state = String(validate=OneOf([a.value for a in AdminState]))


class ResourceOut(Schema):
    """A resource or a unit: the common fields, then those of its kind."""

    id = String(required=True)
    kind = String(required=True)
    name = String(required=True)
    local_network = String(required=True, metadata={"description": "local network code"})
    # resources
    status = String()
    parent_id = String(allow_none=True)
    created_at = DateTime()
    units = Nested(UnitCounts, metadata={"description": "containers: their units by occupancy now"})
    location = Dict(allow_none=True, metadata={"description": "GeoJSON Point"})
    route = Dict(allow_none=True, metadata={"description": "GeoJSON LineString"})
    site_id = String(allow_none=True)
    template_id = String(allow_none=True)
    device_type = String()
    vendor = String()
    model = String()
    technology = String()
    management_ip = String()
    split_ratio = Integer(allow_none=True)
    split_stage = Integer(allow_none=True)
    slot = Integer()
    card_type = String()
    frame_type = String()
    medium = String()
    stage = String()
    unit_count = Integer()
    conductor_mm = Float(allow_none=True)
    length_m = Float()
    a_end_id = String(allow_none=True)
    z_end_id = String(allow_none=True)
    capacity_pairs = Integer()
    fibre_access_terminal = Boolean()
    site_type = String()
    address_text = String()
    area_id = String(allow_none=True)
    text = String()
    district = String()
    road = String()
    house_number = String()
    building = String()
    unit = String()
    floor = String()
    room = String()
    level = String()
    code = String()
    holes = Integer()
    switch_id = String(allow_none=True)
    area_code = String()
    quarantine_days = Integer()
    exchange_code = String()
    first = String()
    last = String()
    # units
    occupancy = String(metadata={"enum": [o.value for o in Occupancy]})
    admin_state = String(metadata={"enum": [a.value for a in AdminState]})
    shared = Boolean()
    reservation_id = String(allow_none=True)
    service_id = String(allow_none=True)
    preoccupied_until = DateTime(allow_none=True)
    capacity = Integer()
    used = Integer()
    held = Integer()
    seq = Integer()
    side = String()
    owner_id = String()
    root_id = String()
    root_kind = String()
    root_name = String()
    locked_by = String(allow_none=True)
    admin_reason = String(allow_none=True)
    quarantine_until = DateTime(allow_none=True)
    number = String()
    grade = String()
    exchange = String()


# -- SQL helpers --------------------------------------------------------------------------------

def effective_occupancy_sql(now: datetime) -> Any:
    """Unit occupancy as it is now, in SQL: the one definition of the occupancy module."""
    return Unit.effective_occupancy(now)


def _unit_state_filter(state: str, now: datetime) -> Any:
    if state in {o.value for o in Occupancy}:
        return effective_occupancy_sql(now) == state
    if state in {a.value for a in AdminState}:
        return Unit.admin_state == state
    return false()


def _site_members(site_id: str) -> Any:
    """Ids of resources standing in the site: its children and devices/frames/cross boxes placed there."""
    return union(
        select(Resource.id).where(Resource.parent_id == site_id),
        select(Device.id).where(Device.site_id == site_id),
        select(Frame.id).where(Frame.site_id == site_id),
        select(CrossBox.id).where(CrossBox.site_id == site_id),
    )


def _local_network_id(session: Session, code: str) -> str:
    ln_id = session.scalar(select(LocalNetwork.id).where(LocalNetwork.code == code))
    if ln_id is None:
        raise Invalid(f"unknown local network {code!r}", field="local_network")
    return ln_id


def _check_site(session: Session, site_id: str) -> None:
    site = session.get(Site, site_id)
    if site is None or not principal().sees(site.local_network_id):
        raise Invalid(f"no site with id {site_id}", field="site")


# -- shaping ------------------------------------------------------------------------------------

def geojson(geom: Any) -> dict[str, Any] | None:
    if geom is None:
        return None
    def listify(value: Any) -> Any:
        return [listify(v) for v in value] if isinstance(value, (tuple, list)) else value
    out = mapping(geom)
    return {"type": out["type"], "coordinates": listify(out["coordinates"])}


class Shaper:
    """Turns a page of resources and units into dicts, loading what they refer to in a few
    queries (local network codes, unit counts, unit roots, numbers)."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.codes = dict(session.execute(select(LocalNetwork.id, LocalNetwork.code)).all())

    def unit_counts(self, ids: list[str]) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = defaultdict(_no_units)
        if not ids:
            return counts
        occ = effective_occupancy_sql(self.now).label("occ")
        by_root = select(Unit.root_id, occ, func.count()).where(Unit.root_id.in_(ids)).group_by(Unit.root_id, occ)
        by_owner = select(Unit.owner_id, occ, func.count()).where(
            Unit.owner_id.in_(ids), Unit.owner_id != Unit.root_id).group_by(Unit.owner_id, occ)
        for stmt in (by_root, by_owner):
            for owner, state, n in self.session.execute(stmt):
                counts[owner][state] = counts[owner].get(state, 0) + n
                counts[owner]["total"] += n
        return counts

    def resources(self, items: list[Resource]) -> list[dict[str, Any]]:
        counts = self.unit_counts([r.id for r in items if r.kind in CONTAINER_KINDS])
        return [self.resource(r, counts) for r in items]

    def resource(self, r: Resource, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
        out: dict[str, Any] = {"id": r.id, "kind": r.kind, "name": r.name,
                               "local_network": self.codes.get(r.local_network_id, ""), "status": r.status,
                               "parent_id": r.parent_id, "created_at": r.created_at}
        plain = {
            "area": ("level", "code"),
            "site": ("site_type", "area_id", "address_text"),
            "address": ("area_id", "district", "road", "building", "unit", "floor", "room"),
            "duct": ("holes",),
            "duct_segment": ("a_end_id", "z_end_id", "length_m"),
            "device": ("device_type", "site_id", "template_id", "vendor", "model", "technology", "management_ip",
                       "split_ratio", "split_stage"),
            "card": ("slot", "card_type"),
            "frame": ("frame_type", "site_id"),
            "cable": ("medium", "stage", "unit_count", "conductor_mm", "length_m", "a_end_id", "z_end_id"),
            "cross_box": ("capacity_pairs", "site_id", "template_id"),
            "distribution_box": ("medium", "capacity", "template_id"),
            "number_pool": ("switch_id", "area_code", "quarantine_days"),
            "number_segment": ("exchange_code", "first", "last"),
        }.get(r.kind, ())
        for name in plain:
            out[name] = getattr(r, name, None)
        if r.kind == "address":
            out["text"] = r.name
            out["house_number"] = r.number
        if r.kind == "distribution_box":
            out["fibre_access_terminal"] = r.medium == "fibre"
        if hasattr(r, "location"):
            out["location"] = geojson(r.location)
        if hasattr(r, "route"):
            out["route"] = geojson(r.route)
        if r.kind in CONTAINER_KINDS:
            out["units"] = dict(counts.get(r.id) or _no_units())
        return out

    def units(self, items: list[Unit]) -> list[dict[str, Any]]:
        root_ids = sorted({u.root_id for u in items})
        roots = {rid: (kind, name) for rid, kind, name in self.session.execute(
            select(Resource.id, Resource.kind, Resource.name).where(Resource.id.in_(root_ids)))} if root_ids else {}
        number_ids = [u.id for u in items if u.kind == "number"]
        numbers = {n.id: n for n in self.session.scalars(select(Number).where(Number.id.in_(number_ids)))} \
            if number_ids else {}
        return [self.unit(u, roots, numbers) for u in items]

    def unit(self, u: Unit, roots: dict[str, tuple[str, str]], numbers: dict[str, Number]) -> dict[str, Any]:
        occ = u.effective_occupancy(self.now)
        root_kind, root_name = roots.get(u.root_id, ("", ""))
        out: dict[str, Any] = {
            "id": u.id, "kind": u.kind, "name": u.name, "local_network": self.codes.get(u.local_network_id, ""),
            "occupancy": occ.value, "admin_state": u.admin_state, "shared": u.shared, "seq": u.seq,
            "side": u.side or "", "technology": u.technology or "", "owner_id": u.owner_id, "root_id": u.root_id,
            "root_kind": root_kind, "root_name": root_name, "locked_by": u.locked_by,
            "admin_reason": u.admin_reason,
        }
        if u.shared:
            out.update(capacity=u.capacity, used=u.used, held=len(u.active_holds(self.now)))
        else:
            out["reservation_id"] = u.reservation_id if occ == Occupancy.PREOCCUPIED else None
            out["service_id"] = u.service_id if occ == Occupancy.OCCUPIED else None
            out["preoccupied_until"] = aware(u.preoccupied_until) if occ == Occupancy.PREOCCUPIED else None
        if u.kind == "number":
            out["quarantine_until"] = aware(u.quarantine_until) if u.is_quarantined(self.now) else None
            number = numbers.get(u.id)
            if number is not None:
                out.update(number=number.number, grade=number.grade, exchange=number.exchange_code)
        return out


def _load_resources(session: Session, ids: list[str]) -> dict[str, Resource]:
    if not ids:
        return {}
    poly = with_polymorphic(Resource, "*")
    return {r.id: r for r in session.scalars(select(poly).where(poly.id.in_(ids)))}


def _load_units(session: Session, ids: list[str]) -> dict[str, Unit]:
    if not ids:
        return {}
    return {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(ids)))}


# -- endpoints ----------------------------------------------------------------------------------

@bp.get("/resources")
@bp.doc(summary="List resources and units", description=(
    "Resources of any kind and allocatable units (ports, pairs, cores, box ports, numbers) in your "
    "local networks, filtered by kind, site, state and name; ordered by id. The total is in "
    "X-Total-Count."), responses=[200, 401, 422])
@bp.input(ResourceQuery, location="query", arg_name="query")
@bp.output(ResourceOut(many=True), headers={"X-Total-Count": {"description": "rows matching",
                                                                 "schema": {"type": "integer"}}})
@require(*READERS)
def list_resources(query: dict[str, Any]):
    session = read_session()
    now = utcnow()
    me = principal()
    kind = query.get("kind")
    if kind is not None and kind not in UNIT_KINDS and kind not in resource_kinds():
        raise Invalid(f"unknown kind {kind!r}; resource kinds: {', '.join(resource_kinds())}; "
                      f"unit kinds: {', '.join(UNIT_KINDS)}", field="kind")
    ln_id = _local_network_id(session, query["local_network"]) if query.get("local_network") else None
    if query.get("site"):
        _check_site(session, query["site"])
    state = query.get("state")

    parts = []
    if kind is None or kind not in UNIT_KINDS:
        r = select(Resource.id.label("id"), literal("r").label("src")).where(
            me.scope_filter(Resource.local_network_id))
        if kind:
            r = r.where(Resource.kind == kind)
        if ln_id:
            r = r.where(Resource.local_network_id == ln_id)
        if query.get("q"):
            r = r.where(Resource.name.icontains(query["q"], autoescape=True))
        if query.get("site"):
            members = _site_members(query["site"])
            r = r.where(or_(Resource.id.in_(select(members.subquery().c.id)),
                            Resource.parent_id.in_(select(members.subquery().c.id))))
        if state:
            r = r.where(Resource.status == state) if state in RESOURCE_STATUSES else r.where(false())
        parts.append(r)
    if kind is None or kind in UNIT_KINDS:
        u = select(Unit.id.label("id"), literal("u").label("src")).where(me.scope_filter(Unit.local_network_id))
        if kind:
            u = u.where(Unit.kind == kind)
        if ln_id:
            u = u.where(Unit.local_network_id == ln_id)
        if query.get("q"):
            u = u.where(Unit.name.icontains(query["q"], autoescape=True))
        if query.get("site"):
            u = u.where(Unit.root_id.in_(select(_site_members(query["site"]).subquery().c.id)))
        if state:
            u = u.where(_unit_state_filter(state, now))
        parts.append(u)

    both = (union_all(*parts) if len(parts) > 1 else parts[0]).subquery()
    total = session.scalar(select(func.count()).select_from(both))
    page = session.execute(select(both.c.id, both.c.src).order_by(both.c.id)
                           .limit(query["limit"]).offset(query["offset"])).all()
    resources = _load_resources(session, [i for i, src in page if src == "r"])
    units = _load_units(session, [i for i, src in page if src == "u"])
    shaper = Shaper(session, now)
    shaped = {d["id"]: d for d in shaper.resources(list(resources.values()))}
    shaped.update({d["id"]: d for d in shaper.units(list(units.values()))})
    return [shaped[i] for i, _ in page if i in shaped], 200, {"X-Total-Count": str(total)}


def _find(session: Session, id_: str) -> Resource | Unit:
    found: Resource | Unit | None = _load_resources(session, [id_]).get(id_) or session.get(Unit, id_)
    if found is None:
        raise NotFound(f"no resource with id {id_}", field="id")
    principal().check_scope(found.local_network_id, "resource", id_)
    return found


@bp.get("/resources/<resource_id>")
@bp.doc(summary="One resource or unit by id", responses=[200, 401, 404])
@bp.output(ResourceOut)
@require(*READERS)
def get_resource(resource_id: str):
    session = read_session()
    found = _find(session, resource_id)
    shaper = Shaper(session, utcnow())
    if isinstance(found, Unit):
        return shaper.units([found])[0]
    return shaper.resources([found])[0]


@bp.get("/resources/<resource_id>/units")
@bp.doc(summary="The units of a device, card, cable, frame, box, pool or segment",
        description="Ordered by position; filters: unit kind, occupancy (effective now), admin_state.",
        responses=[200, 401, 404, 422])
@bp.input(UnitQuery, location="query", arg_name="query")
@bp.output(ResourceOut(many=True), headers={"X-Total-Count": {"description": "rows matching",
                                                                 "schema": {"type": "integer"}}})
@require(*READERS)
def list_units(resource_id: str, query: dict[str, Any]):
    session = read_session()
    now = utcnow()
    found = _find(session, resource_id)
    if isinstance(found, Unit):
        return [], 200, {"X-Total-Count": "0"}
    stmt = select(Unit).where(or_(Unit.owner_id == found.id, Unit.root_id == found.id))
    if query.get("kind"):
        stmt = stmt.where(Unit.kind == query["kind"])
    if query.get("occupancy"):
        stmt = stmt.where(effective_occupancy_sql(now) == query["occupancy"])
    if query.get("admin_state"):
        stmt = stmt.where(Unit.admin_state == query["admin_state"])
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = list(session.scalars(stmt.order_by(Unit.owner_id, Unit.kind, Unit.seq, Unit.id)
                                .limit(query["limit"]).offset(query["offset"])))
    return Shaper(session, now).units(rows), 200, {"X-Total-Count": str(total)}
