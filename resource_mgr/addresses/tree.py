"""The address tree (building ⊃ unit ⊃ floor ⊃ room, by Resource.parent_id) and the one JSON
shape of an address."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from resource_mgr.errors import NotFound
from resource_mgr.inventory.models import Address, Resource


def ancestors(session: Session, address_id: str) -> list[str]:
    """The address id first, then its parent, … up to the top address (a building, or a road
    number without buildings). One recursive query; the walk stops at the first parent that is
    not an address (an area) and never loops on a cycle."""
    top = (select(Resource.id, Resource.parent_id, Resource.id.label("depth_key"))
           .where(Resource.id == address_id, Resource.kind == "address")
           .cte("chain", recursive=True))
    up = aliased(Resource)
    chain = top.union(
        select(up.id, up.parent_id, up.id).join(top, top.c.parent_id == up.id).where(up.kind == "address"))
    rows = {r.id: r.parent_id for r in session.execute(select(chain.c.id, chain.c.parent_id))}
    if address_id not in rows:
        raise NotFound(f"no address {address_id}", field="address_id")
    out, cur = [], address_id
    while cur in rows and cur not in out:
        out.append(cur)
        cur = rows[cur]
    return out


def address_json(address: Address) -> dict[str, Any]:
    loc = address.location
    return {
        "id": address.id,
        "text": address.name,
        "local_network": address.local_network.code,
        "location": {"lon": round(loc.x, 7), "lat": round(loc.y, 7)} if loc is not None else None,
        "parent_id": address.parent_id,
        "level": address.level,
    }
