"""Hops of a route: ordered units, customer side first, with their device, site and cable.
Helper `design` builds hops the same way for a design (`resource_mgr.design.Hop`); this reads
the names in three queries, whatever the route's length. The routes themselves come from the
topology engine (resource_mgr.topology)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, with_polymorphic

from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.inventory.models import Cable, CrossBox, Device, Frame, Resource, Site
from resource_mgr.occupancy.models import Unit


def hops(session: Session, unit_ids: list[str]) -> list[dict[str, Any]]:
    """[{"unit_id", "kind", "name", "device", "site", "cable", "shared"}...] in the given order."""
    if not unit_ids:
        return []
    units = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(unit_ids)))}
    kinds = with_polymorphic(Resource, [Device, Frame, CrossBox, Cable])
    roots = {r.id: r for r in session.scalars(select(kinds).where(kinds.id.in_({u.root_id for u in units.values()})))}
    site_ids = {getattr(r, "site_id", None) for r in roots.values()} - {None}
    sites = dict(session.execute(select(Site.id, Site.name).where(Site.id.in_(site_ids))).all()) if site_ids else {}
    out = []
    for uid in unit_ids:
        unit = units.get(uid)
        if unit is None:
            continue
        root = roots.get(unit.root_id)
        out.append({
            "unit_id": unit.id, "kind": unit.kind, "name": unit.name,
            "device": root.name if root is not None else None,
            "site": sites.get(getattr(root, "site_id", None)),
            "cable": root.name if root is not None and root.kind == "cable" else None,
            "shared": unit.capacity > 1,
        })
    return out


def service_route(session: Session, service: Service) -> dict[str, Any]:
    """The route of a service (its stored path continued to the core, and every alternate route);
    one riding on a bearer (IPTV, VoIP) shows its bearer's. The topology engine answers."""
    from resource_mgr.topology.services import routes_of_service

    return routes_of_service(session, service.id)
