"""Serving boxes and the address tree, until resource_mgr.addresses provides them (interfaces.md):
a minimal private reading of the coverage table, inherited down the address tree."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.config import Settings
from resource_mgr.inventory.models import Coverage, DistributionBox, Resource
from resource_mgr.states import ResourceStatus


@dataclass(frozen=True)
class ServingBox:
    box_id: str
    name: str
    distance_m: float | None
    via: str  # "coverage" | "nearby"


def ancestors(session: Session, address_id: str) -> list[str]:
    out: list[str] = []
    current: str | None = address_id
    while current is not None and current not in out:
        row = session.execute(select(Resource.kind, Resource.parent_id).where(Resource.id == current)).first()
        if row is None or row[0] != "address":
            break
        out.append(current)
        current = row[1]
    return out


def serving_boxes(session: Session, address_id: str, *, medium: str, settings: Settings,
                  limit: int = 10) -> list[ServingBox]:
    chain = ancestors(session, address_id)
    if not chain:
        return []
    rows = session.execute(
        select(Coverage.address_id, DistributionBox.id, DistributionBox.name, Coverage.distance_m)
        .join(DistributionBox, DistributionBox.id == Coverage.box_id)
        .where(Coverage.address_id.in_(chain), DistributionBox.medium == medium,
               DistributionBox.status == ResourceStatus.IN_SERVICE)).all()
    for addr in chain:  # the nearest address with coverage decides
        mine = [r for r in rows if r[0] == addr]
        if mine:
            mine.sort(key=lambda r: (r[3] is None, r[3] or 0.0, r[2]))
            return [ServingBox(r[1], r[2], r[3], "coverage") for r in mine[:limit]]
    return []
