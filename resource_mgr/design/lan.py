"""LAN: a free Ethernet port on a LAN switch of the address's building.

The generator (and practice) puts a building's LAN switch at the building's point, with no site:
the switches are those within `design_lan_switch_max_m` of the building address's point (the top
of the address tree; the address's own point when the building has none), nearest first, in
service, in the address's local network. Their points are kept with the topology (trace.py) in
an STRtree, so finding them costs no query once read."""
from __future__ import annotations

from typing import Any

import shapely
from shapely import STRtree
from sqlalchemy import select

from resource_mgr.config import Settings
from resource_mgr.design.policy import Candidate
from resource_mgr.design.trace import Tracer
from resource_mgr.geo.spatial import _degrees_for, metres_between
from resource_mgr.inventory.models import Address, Device
from resource_mgr.states import ResourceStatus


def _index(tr: Tracer) -> tuple[list[tuple[str, str]], list, STRtree | None]:
    cached = tr.topo.extra.get("lan_switches")
    if cached is None:
        tr.queries += 1
        rows = tr.session.execute(select(Device.id, Device.local_network_id, Device.location).where(
            Device.device_type == "lan_switch", Device.status == ResourceStatus.IN_SERVICE,
            Device.location.is_not(None))).all()
        geoms = [r[2] for r in rows]
        cached = ([(r[0], r[1]) for r in rows], geoms, STRtree(geoms) if geoms else None)
        tr.topo.extra["lan_switches"] = cached
    return cached


def _point(tr: Tracer, chain: list[str]) -> tuple[Any, str | None]:
    """The point of the top address of the chain that has one, and the address's local network."""
    tr.queries += 1
    rows = {r[0]: (r[1], r[2]) for r in tr.session.execute(
        select(Address.id, Address.location, Address.local_network_id).where(Address.id.in_(chain)))}
    point = next((rows[a][0] for a in reversed(chain) if a in rows and rows[a][0] is not None), None)
    return point, (rows[chain[0]][1] if chain[0] in rows else None)


def switches(tr: Tracer, chain: list[str], settings: Settings) -> list[tuple[str, float]]:
    point, ln = tr.remember(("lan_point", tuple(chain)), lambda: _point(tr, chain))
    if point is None:
        return []
    ids, geoms, tree = _index(tr)
    if tree is None:
        return []
    d = _degrees_for(settings.design_lan_switch_max_m, point.y)
    near = []
    for i in tree.query(shapely.box(point.x - d, point.y - d, point.x + d, point.y + d)):
        dist = metres_between(point, geoms[i])
        if ids[i][1] == ln and dist <= settings.design_lan_switch_max_m:
            near.append((dist, ids[i][0]))
    return [(i, dist) for dist, i in sorted(near)[:5]]


def candidates(tr: Tracer, chain: list[str], settings: Settings, limit: int) -> tuple[list[Candidate], list[str]]:
    found = switches(tr, chain, settings)
    if not found:
        return [], ["no_lan_switch"]
    rank = {d: i for i, (d, _m) in enumerate(found)}
    ports = [u for u in tr.pool(list(rank), "eth_port", limit=limit) if tr.room(u) > 0]
    if not ports:
        return [], ["no_head_port"]
    ports.sort(key=lambda u: (rank[u.root_id], u.seq))
    return [Candidate(units=[p], links=[], work=[], box_id=None, box_rank=rank[p.root_id]) for p in ports], []
