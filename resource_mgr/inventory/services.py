"""Inventory use cases. Each takes the unit of work's session and leaves committing to the
caller (one use case, one transaction).

Each edit writes one History row in that transaction (the change feed: the topology graph in every
process follows it), attributed to the unit of work's principal; before/after identify what
changed. A rolled-back edit leaves none."""
from __future__ import annotations

from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resource_mgr.errors import Conflict, Invalid, NotFound
from resource_mgr.geo.spatial import length_m
from resource_mgr.geo.types import check_geometry
from resource_mgr.ids import new_id
from resource_mgr.inventory import naming
from resource_mgr.inventory.models import (
    DEVICE_TYPES, Area, Cable, CableSpan, Card, Connection, CrossBox, Device, DeviceTemplate,
    DistributionBox, DuctSegment, Frame, LocalNetwork, NamingRule, Resource, Site,
)
from resource_mgr.inventory.templates import DEFAULT_TEMPLATES, RESOURCE_KINDS, PortGroup, parse_spec
from resource_mgr.occupancy.models import Unit
from resource_mgr.security import audit

# who edits when the unit of work names no one (scripts, tests)
UNNAMED = "system"


def get(session: Session, model: type, id_: str, field: str = "id") -> Any:
    obj = session.get(model, id_)
    if obj is None:
        raise NotFound(f"no {getattr(model, '__tablename__', model.__name__)} with id {id_}", field=field)
    return obj


def check_unique_name(session: Session, kind: str, scope_id: str, name: str) -> None:
    if not name or not name.strip():
        raise Invalid("name must not be empty", field="name")
    dup = session.scalar(select(Resource.id).where(
        Resource.kind == kind, Resource.scope_id == scope_id, Resource.name == name))
    if dup:
        raise Conflict(f"a {kind} named {name!r} already exists in this scope ({dup})", field="name")


def _log(session: Session, action: str, resource_id: str | int, resource_kind: str, local_network_id: str | None,
         before: dict[str, Any] | None, after: dict[str, Any]) -> None:
    audit.record(session, session.info.get("principal") or UNNAMED, resource_id=str(resource_id),
                 resource_kind=resource_kind, action=action, local_network_id=local_network_id,
                 before=before, after=after)


def _place(obj: Resource) -> dict[str, Any]:
    return {"name": obj.name, "kind": obj.__mapper__.polymorphic_identity, "parent_id": obj.parent_id}


def _add(session: Session, obj: Resource) -> Resource:
    obj.scope_id = obj.parent_id or obj.local_network_id
    check_unique_name(session, obj.__mapper__.polymorphic_identity, obj.scope_id, obj.name)
    session.add(obj)
    session.flush()
    return obj


def add_resource(session: Session, obj: Resource) -> Resource:
    """Add a resource after checking its name is unique within its scope."""
    _add(session, obj)
    _log(session, "resource_create", obj.id, obj.__mapper__.polymorphic_identity, obj.local_network_id,
         None, _place(obj))
    return obj


# -- local networks and naming ----------------------------------------------------------------

def create_local_network(session: Session, *, code: str, name: str, area_code: str, province: str = "") -> LocalNetwork:
    if not code or not code.isalnum():
        raise Invalid("code must be letters and digits, e.g. GZ", field="code")
    if not area_code.isdigit() or not 2 <= len(area_code) <= 4:
        raise Invalid("area_code must be 2–4 digits, e.g. 20 or 755", field="area_code")
    if session.scalar(select(LocalNetwork.id).where(LocalNetwork.code == code)):
        raise Conflict(f"local network {code} already exists", field="code")
    ln = LocalNetwork(id=new_id(), code=code, name=name, area_code=area_code, province=province)
    session.add(ln)
    session.add_all(NamingRule(local_network_id=ln.id, kind=k, pattern=p) for k, p in naming.DEFAULT_RULES.items())
    session.flush()
    area = _add(session, Area(name=name, local_network_id=ln.id, level="local_network", code=code))
    _log(session, "local_network_create", ln.id, "local_network", ln.id, None,
         {"code": code, "name": name, "area_code": area_code, "province": province, "area_id": area.id,
          "naming_rules": dict(naming.DEFAULT_RULES)})
    return ln


def set_naming_rule(session: Session, local_network_id: str, kind: str, pattern: str) -> NamingRule:
    naming.check_pattern(kind, pattern)
    rule = session.scalar(select(NamingRule).where(
        NamingRule.local_network_id == local_network_id, NamingRule.kind == kind))
    before = {"kind": kind, "pattern": rule.pattern if rule is not None else None}
    if rule is None:
        rule = NamingRule(local_network_id=local_network_id, kind=kind, pattern=pattern)
        session.add(rule)
    rule.pattern = pattern
    session.flush()
    _log(session, "naming_rule_set", rule.id, "naming_rule", local_network_id, before,
         {"kind": kind, "pattern": pattern})
    return rule


def naming_pattern(session: Session, local_network_id: str, kind: str) -> str:
    pattern = session.scalar(select(NamingRule.pattern).where(
        NamingRule.local_network_id == local_network_id, NamingRule.kind == kind))
    return pattern or naming.DEFAULT_RULES[kind]


# -- templates ----------------------------------------------------------------------------------

def add_template(session: Session, *, name: str, resource_kind: str, spec: dict[str, Any],
                 device_type: str = "", vendor: str = "") -> DeviceTemplate:
    if resource_kind not in RESOURCE_KINDS:
        raise Invalid(f"resource_kind must be one of {', '.join(RESOURCE_KINDS)}", field="resource_kind")
    if resource_kind == "device" and device_type not in DEVICE_TYPES:
        raise Invalid(f"device_type must be one of {', '.join(DEVICE_TYPES)}", field="device_type")
    parse_spec(spec)
    if session.scalar(select(DeviceTemplate.id).where(DeviceTemplate.name == name)):
        raise Conflict(f"template {name!r} already exists", field="name")
    template = DeviceTemplate(name=name, resource_kind=resource_kind, device_type=device_type, vendor=vendor, spec=spec)
    session.add(template)
    session.flush()
    _log(session, "template_create", template.id, "device_template", None, None, _template_view(template))
    return template


def _template_view(template: DeviceTemplate) -> dict[str, Any]:
    return {"name": template.name, "resource_kind": template.resource_kind, "device_type": template.device_type,
            "vendor": template.vendor, "version": template.version, "spec": template.spec}


def update_template(session: Session, name: str, spec: dict[str, Any]) -> DeviceTemplate:
    """A new version of the template; devices made from the old one keep what they have."""
    template = template_by_name(session, name)
    parse_spec(spec)
    before = _template_view(template)
    template.spec = spec
    template.version += 1
    session.flush()
    _log(session, "template_update", template.id, "device_template", None, before, _template_view(template))
    return template


def seed_default_templates(session: Session) -> int:
    existing = set(session.scalars(select(DeviceTemplate.name)))
    added = 0
    for name, kind, device_type, spec in DEFAULT_TEMPLATES:
        if name not in existing:
            add_template(session, name=name, resource_kind=kind, device_type=device_type, spec=spec)
            added += 1
    return added


def template_by_name(session: Session, name: str) -> DeviceTemplate:
    template = session.scalar(select(DeviceTemplate).where(DeviceTemplate.name == name))
    if template is None:
        raise Invalid(f"unknown template {name!r}", field="template")
    return template


def _next_seq(session: Session, model: type, local_network_id: str, site_id: str | None, **match: Any) -> int:
    stmt = select(func.count()).select_from(model).where(Resource.local_network_id == local_network_id)
    if site_id is not None and hasattr(model, "site_id"):
        stmt = stmt.where(model.site_id == site_id)
    for key, value in match.items():
        stmt = stmt.where(getattr(model, key) == value)
    return (session.scalar(stmt) or 0) + 1


def create_from_template(
    session: Session, *, template: str, local_network_id: str, site_id: str | None = None,
    parent_id: str | None = None, name: str | None = None, location: BaseGeometry | None = None,
    **attrs: Any,
) -> Resource:
    """Make a device, cross box, distribution box or frame with all its cards and ports, named
    by the local network's naming rules unless a name is given."""
    tpl = template_by_name(session, template)
    spec = parse_spec(tpl.spec)
    ln = get(session, LocalNetwork, local_network_id, "local_network")
    site = get(session, Site, site_id, "site_id") if site_id else None
    if site is not None and site.local_network_id != ln.id:
        raise Invalid("the site belongs to another local network", field="site_id")
    if location is not None:
        check_geometry(location, "POINT", "location")
    site_name = site.name if site else ln.code
    common = dict(local_network_id=ln.id, parent_id=parent_id or site_id, template_id=tpl.id, location=location)

    if tpl.resource_kind == "device":
        seq = _next_seq(session, Device, ln.id, site_id, device_type=tpl.device_type)
        name = name or naming.render(naming_pattern(session, ln.id, "device"), site=site_name,
                                     type=tpl.device_type.upper(), seq=seq, local_network=ln.code, template=tpl.name)
        obj: Resource = Device(name=name, device_type=tpl.device_type, site_id=site_id, vendor=tpl.vendor,
                               model=tpl.name, technology=spec.technology, split_ratio=spec.split_ratio, **common, **attrs)
    elif tpl.resource_kind == "cross_box":
        seq = _next_seq(session, CrossBox, ln.id, site_id)
        name = name or naming.render(naming_pattern(session, ln.id, "cross_box"), site=site_name, seq=seq,
                                     local_network=ln.code, template=tpl.name)
        obj = CrossBox(name=name, capacity_pairs=spec.capacity or 0, site_id=site_id, **common, **attrs)
    elif tpl.resource_kind == "distribution_box":
        kind = "fibre_access_terminal" if spec.medium == "fibre" else "distribution_box"
        seq = _next_seq(session, DistributionBox, ln.id, None, medium=spec.medium)
        name = name or naming.render(naming_pattern(session, ln.id, kind), site=site_name, seq=seq,
                                     local_network=ln.code, template=tpl.name)
        obj = DistributionBox(name=name, medium=spec.medium, capacity=spec.capacity or 0, **common, **attrs)
    else:
        common.pop("template_id"), common.pop("location")
        seq = _next_seq(session, Frame, ln.id, site_id, frame_type=spec.frame_type)
        name = name or naming.render(naming_pattern(session, ln.id, "frame"), site=site_name,
                                     type=spec.frame_type.upper(), seq=seq, local_network=ln.code)
        obj = Frame(name=name, frame_type=spec.frame_type, site_id=site_id, **common, **attrs)
    _add(session, obj)

    units: list[Unit] = []
    cards = 0
    port_rule = naming_pattern(session, ln.id, "port")
    for card_spec in spec.cards:
        for slot in card_spec.slots:
            card = Card(id=new_id(), name=naming.render(naming_pattern(session, ln.id, "card"), device=name,
                                                        slot=slot, card_type=card_spec.card_type),
                        local_network_id=ln.id, parent_id=obj.id, scope_id=obj.id, slot=slot,
                        card_type=card_spec.card_type)
            session.add(card)
            cards += 1
            for group in card_spec.ports:
                units += _units(group, ln.id, card.id, obj.id, lambda n: naming.render(
                    port_rule, device=name, slot=slot, port=n, card_type=card_spec.card_type))
    for group in spec.ports:
        kind = {"terminal": "terminal", "box_port": "box_port"}.get(group.port_kind, "device_port")
        rule = naming_pattern(session, ln.id, kind)
        units += _units(group, ln.id, obj.id, obj.id, lambda n, g=group: naming.render(
            rule, device=name, box=name, port=n, side=g.side or g.port_kind,
            label=naming.PORT_LABELS.get(g.port_kind, "")))
    session.add_all(units)
    session.flush()
    kinds: dict[str, int] = {}
    for unit in units:
        kinds[unit.kind] = kinds.get(unit.kind, 0) + 1
    _log(session, "create_from_template", obj.id, obj.__mapper__.polymorphic_identity, ln.id, None,
         {**_place(obj), "template": tpl.name, "template_version": tpl.version, "site_id": site_id,
          "cards": cards, "units": kinds})
    return obj


def _units(group: PortGroup, ln_id: str, owner_id: str, root_id: str, name_for: Any) -> list[Unit]:
    return [
        Unit(id=new_id(), kind=group.port_kind, name=name_for(n), seq=n, local_network_id=ln_id,
             owner_id=owner_id, root_id=root_id, capacity=group.capacity, technology=group.technology,
             side=group.side)
        for n in range(group.first, group.first + group.count)
    ]


# -- cables and connections -------------------------------------------------------------------

def create_cable(
    session: Session, *, local_network_id: str, name: str, medium: str, unit_count: int,
    a_end_id: str | None = None, z_end_id: str | None = None, route: BaseGeometry | None = None,
    length_m_: float | None = None, stage: str = "primary", conductor_mm: float | None = None,
    duct_segment_ids: list[str] = (),
) -> Cable:
    """A copper or fibre cable with its numbered pairs or cores, its ends, route and length.
    Without an explicit length it is measured along the route."""
    if medium not in ("copper", "fibre"):
        raise Invalid("medium must be copper or fibre", field="medium")
    if not 1 <= unit_count <= 4800:
        raise Invalid("unit_count must be between 1 and 4800", field="unit_count")
    for field, end in (("a_end_id", a_end_id), ("z_end_id", z_end_id)):
        if end:
            get(session, Resource, end, field)
    if route is not None:
        check_geometry(route, "LINESTRING", "route")
    length = length_m_ if length_m_ is not None else (length_m(route) if route is not None else 0.0)
    if length < 0:
        raise Invalid("length must not be negative", field="length_m")
    cable = Cable(name=name, local_network_id=local_network_id, medium=medium, unit_count=unit_count,
                  a_end_id=a_end_id, z_end_id=z_end_id, route=route, length_m=length, stage=stage,
                  conductor_mm=conductor_mm if medium == "copper" else None)
    _add(session, cable)
    for seq, segment_id in enumerate(duct_segment_ids, 1):
        get(session, DuctSegment, segment_id, "duct_segment_ids")
        cable.spans.append(CableSpan(cable_id=cable.id, seq=seq, duct_segment_id=segment_id))
    kind = "pair" if medium == "copper" else "core"
    rule = naming_pattern(session, local_network_id, kind)
    session.add_all(
        Unit(id=new_id(), kind=kind, name=naming.render(rule, cable=name, seq=n), seq=n,
             local_network_id=local_network_id, owner_id=cable.id, root_id=cable.id,
             technology=medium)
        for n in range(1, unit_count + 1)
    )
    session.flush()
    _log(session, "cable_create", cable.id, "cable", local_network_id, None,
         {"name": name, "medium": medium, "unit_count": unit_count, "unit_kind": kind, "a_end_id": a_end_id,
          "z_end_id": z_end_id, "length_m": length, "stage": stage, "duct_segment_ids": list(duct_segment_ids)})
    return cable


def connect(session: Session, a_unit_id: str, z_unit_id: str, kind: str, container_id: str | None = None) -> Connection:
    if kind not in ("jumper", "splice", "patch", "fixed"):
        raise Invalid("kind must be jumper, splice, patch or fixed", field="kind")
    if a_unit_id == z_unit_id:
        raise Invalid("a connection needs two different units", field="z_unit_id")
    a = get(session, Unit, a_unit_id, "a_unit_id")
    z = get(session, Unit, z_unit_id, "z_unit_id")
    if a.local_network_id != z.local_network_id:
        raise Invalid("both ends must be in the same local network", field="z_unit_id")
    existing = session.scalar(select(Connection.id).where(
        ((Connection.a_unit_id == a.id) & (Connection.z_unit_id == z.id))
        | ((Connection.a_unit_id == z.id) & (Connection.z_unit_id == a.id))))
    if existing:
        raise Conflict(f"{a.name} and {z.name} are already connected ({existing})")
    conn = Connection(kind=kind, a_unit_id=a.id, z_unit_id=z.id, local_network_id=a.local_network_id,
                      container_id=container_id)
    session.add(conn)
    session.flush()
    _log(session, "connect", conn.id, "connection", conn.local_network_id, None,
         {"kind": kind, "a_unit_id": a.id, "z_unit_id": z.id, "container_id": container_id})
    return conn


def units_of(session: Session, owner_id: str, kind: str | None = None) -> list[Unit]:
    stmt = select(Unit).where((Unit.owner_id == owner_id) | (Unit.root_id == owner_id))
    if kind:
        stmt = stmt.where(Unit.kind == kind)
    return list(session.scalars(stmt.order_by(Unit.owner_id, Unit.seq)))
