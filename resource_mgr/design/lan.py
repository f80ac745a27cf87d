"""LAN: a free Ethernet port on a LAN switch of the address's building.

The generator (and practice) puts a building's LAN switch at the building's point, with no site:
the switches are those within `design_lan_switch_max_m` of the building address's point (the top
of the address tree; the address's own point when the building has none), nearest first."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.config import Settings
from resource_mgr.design.policy import Candidate
from resource_mgr.design.trace import Tracer
from resource_mgr.geo.spatial import spatial_for
from resource_mgr.inventory.models import Address, Device
from resource_mgr.states import ResourceStatus


def switches(session: Session, chain: list[str], settings: Settings) -> list[tuple[Any, float]]:
    rows = dict(session.execute(select(Address.id, Address.location).where(Address.id.in_(chain))).all())
    point = next((rows[a] for a in reversed(chain) if rows.get(a) is not None), None)
    if point is None:
        return []
    ln = session.scalar(select(Address.local_network_id).where(Address.id == chain[0]))
    spatial = spatial_for(session.get_bind().dialect.name)
    return spatial.nearest(session, Device.location, point, within_m=settings.design_lan_switch_max_m, limit=5,
                           where=[Device.device_type == "lan_switch", Device.local_network_id == ln,
                                  Device.status == ResourceStatus.IN_SERVICE])


def candidates(tr: Tracer, chain: list[str], settings: Settings, limit: int) -> tuple[list[Candidate], list[str]]:
    found = switches(tr.session, chain, settings)
    if not found:
        return [], ["no_lan_switch"]
    rank = {d.id: i for i, (d, _m) in enumerate(found)}
    ports = [u for u in tr.pool(list(rank), "eth_port", limit=limit) if tr.room(u) > 0]
    ports.sort(key=lambda u: (rank[u.root_id], u.seq))
    if not ports:
        return [], ["no_head_port"]
    out = [Candidate(units=[p], links=[], work=[], box_id=None, box_rank=rank[p.root_id]) for p in ports]
    return out, []
