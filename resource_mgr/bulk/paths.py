"""Path validator (資源核查 of service paths): are the occupied paths whole, and does the ledger
agree with them? Reusable by audits; works in bulk (a handful of streamed queries, no query per
service) on both backends.

A service's path (ServiceUnit rows in `seq` order) runs from the customer side to the head
equipment. Continuity rules:

- **Head**: the last unit is the head port of the technology — FTTH `pon_port` (OLT), ADSL / VDSL
  `dsl_port` (DSLAM), POTS `line_port` (PSTN switch or access gateway), LAN `eth_port` (LAN
  switch). The first unit is the customer side: a `box_port` (distribution box or fibre access
  terminal) or an `ont_port`, except for LAN where a path of the switch port alone is whole.
- **Media**: FTTH paths hold only fibre units (`box_port`, `ont_port`, `core`, `splitter_out`,
  `splitter_in`, `terminal` of an ODF, `pon_port`); copper paths (ADSL, VDSL, POTS) only copper
  units (`box_port`, `pair`, `terminal` of a cross box or MDF, `dsl_port` / `line_port`).
- **Each step** from one unit to the next is either a Connection between them (jumper, splice,
  patch or fixed wiring, in either direction) or a pass through one device: from a splitter's
  output to the same splitter's input. A cross box (distribution → feeder terminal) and an MDF
  (line → equipment terminal) are crossed by their jumpers, which are Connections.
- Numbers are not hops; a service's number is checked against the ledger below.
- A service that rides on a bearer (IPTV, VoIP over broadband) has no path of its own: its route
  is its bearer's, which must be live.

Ledger rules:

- every unit on the path of an active (or suspended) service is occupied: an exclusive unit
  (capacity 1) by that service and no other; a shared unit (capacity > 1) has `used` equal to the
  number of active services whose path runs through it;
- every occupied exclusive unit belongs to exactly one active service's path (or is that
  service's number).

Removed services occupy nothing and are not checked.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.inventory.models import Connection
from resource_mgr.occupancy.models import Unit
from resource_mgr.states import Occupancy, ServiceState

HEAD = {"FTTH": {"pon_port"}, "ADSL": {"dsl_port"}, "VDSL": {"dsl_port"}, "POTS": {"line_port"},
        "LAN": {"eth_port"}}
FIBRE = {"box_port", "ont_port", "core", "splitter_out", "splitter_in", "terminal", "pon_port"}
COPPER = {"box_port", "pair", "terminal", "dsl_port", "line_port"}
MEDIA = {"FTTH": FIBRE, "ADSL": COPPER, "VDSL": COPPER, "POTS": COPPER | {"eth_port"},
         "LAN": {"eth_port", "box_port", "pair", "terminal"}}
CUSTOMER_SIDE = {"box_port", "ont_port"}
LIVE = (ServiceState.ACTIVE.value, ServiceState.SUSPENDED.value)
STREAM = 20_000


@dataclass(frozen=True)
class Finding:
    subject: str  # "service" or "unit"
    id: str
    code: str  # empty_path, wrong_head, wrong_customer_side, wrong_medium, broken_path, repeated_unit,
    #            own_path, bearer_not_live,
    #            double_occupancy, not_occupied, occupied_by_other, orphan_occupied, used_mismatch
    message: str
    fix: str

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "id": self.id, "code": self.code, "message": self.message, "fix": self.fix}


def validate_paths(session: Session, *, local_network_id: str | None = None,
                   limit: int | None = None) -> list[Finding]:
    """Every finding about service paths and their occupancy (at most `limit`)."""
    findings: list[Finding] = []

    def add(*args: str) -> bool:
        findings.append(Finding(*args))
        return limit is not None and len(findings) >= limit

    ln_where = (lambda col: [col == local_network_id]) if local_network_id else (lambda col: [])
    services: dict[str, tuple[str, str, str | None]] = {}
    bearer_of: dict[str, str] = {}
    for sid, tech, product, number, bearer in session.execute(
            select(Service.id, Service.technology, Service.product, Service.number, Service.bearer_id)
            .where(Service.state.in_(LIVE), *ln_where(Service.local_network_id))):
        services[sid] = (tech, product, number)
        if bearer is not None:
            bearer_of[sid] = bearer

    # the paths, with what each unit is
    units: dict[str, tuple[str, str, str, int, str, str | None, int]] = {}
    paths: dict[str, list[str]] = defaultdict(list)
    stmt = (select(ServiceUnit.service_id, ServiceUnit.unit_id, Unit.kind, Unit.name, Unit.root_id, Unit.capacity,
                   Unit.occupancy, Unit.service_id, Unit.used)
            .join(Unit, Unit.id == ServiceUnit.unit_id).join(Service, Service.id == ServiceUnit.service_id)
            .where(Service.state.in_(LIVE), *ln_where(Service.local_network_id))
            .order_by(ServiceUnit.service_id, ServiceUnit.seq).execution_options(yield_per=STREAM))
    for sid, uid, kind, name, root, cap, occ, holder, used in session.execute(stmt):
        paths[sid].append(uid)
        if uid not in units:
            units[uid] = (kind, name, root, cap, occ, holder, used)

    # the connections touching path units
    linked: set[tuple[str, str]] = set()
    stmt = select(Connection.a_unit_id, Connection.z_unit_id).where(*ln_where(Connection.local_network_id))
    for a, z in session.execute(stmt.execution_options(yield_per=STREAM)):
        if a in units and z in units:
            linked.add((a, z))
            linked.add((z, a))

    # continuity per service
    through: dict[str, list[str]] = defaultdict(list)
    for sid, (tech, product, number) in services.items():
        path = paths.get(sid, [])
        bearer = bearer_of.get(sid)
        if bearer is not None:
            if path and add("service", sid, "own_path", f"{product} service rides on {bearer} but has a path "
                            "of its own", "remove its path: it uses its bearer's"):
                return findings
            if bearer not in services and add("service", sid, "bearer_not_live", f"{product} service rides on "
                                              f"{bearer}, which is not an active service",
                                              "move it to a live line or remove it"):
                return findings
            continue
        if not path:
            if add("service", sid, "empty_path", f"{product} service has no occupied path",
                   "design and occupy its path, give it the line it rides on, or remove the service"):
                return findings
            continue
        for uid in path:
            through[uid].append(sid)
        names = [f"{units[u][0]} {units[u][1]}" for u in path]
        if len(set(path)) != len(path):
            if add("service", sid, "repeated_unit", "a unit appears twice in the path",
                   "remove the repeated hop from the path"):
                return findings
        head = units[path[-1]][0]
        if tech in HEAD and head not in HEAD[tech]:
            if add("service", sid, "wrong_head", f"{tech} path ends at {names[-1]}, not at a "
                   f"{' / '.join(sorted(HEAD[tech]))}", "complete the path to the head equipment port"):
                return findings
        if len(path) > 1 and units[path[0]][0] not in CUSTOMER_SIDE:
            if add("service", sid, "wrong_customer_side", f"path starts at {names[0]}, not at a box or ONT port",
                   "order the path from the customer side (box port) to the head port"):
                return findings
        media = MEDIA.get(tech)
        if media:
            odd = [n for u, n in zip(path, names) if units[u][0] not in media]
            if odd and add("service", sid, "wrong_medium", f"{tech} path holds {', '.join(odd[:3])}",
                           f"replace them with {tech} units"):
                return findings
        for i, (u, v) in enumerate(zip(path, path[1:])):
            if (u, v) in linked:
                continue
            ku, kv = units[u], units[v]
            if ku[2] == kv[2] and ku[0] == "splitter_out" and kv[0] == "splitter_in":
                continue
            if add("service", sid, "broken_path",
                   f"hop {i + 1} → {i + 2}: {names[i]} and {names[i + 1]} are not connected",
                   "add the missing connection (jumper / splice / patch) or correct the path"):
                return findings

    # the ledger against the paths
    for uid, sids in through.items():
        kind, name, _root, cap, occ, holder, used = units[uid]
        if cap == 1:
            if len(sids) > 1:
                if add("unit", uid, "double_occupancy", f"exclusive {kind} {name} is on the paths of "
                       f"{len(sids)} services: {', '.join(sorted(sids)[:5])}",
                       "move all but one service to another free unit"):
                    return findings
            elif occ != Occupancy.OCCUPIED:
                if add("unit", uid, "not_occupied", f"{kind} {name} is on the path of service {sids[0]} but is {occ}",
                       "mark it occupied by the service"):
                    return findings
            elif holder != sids[0]:
                if add("unit", uid, "occupied_by_other", f"{kind} {name} is on the path of service {sids[0]} but "
                       f"occupied by {holder}", "set its holder to the service on whose path it is"):
                    return findings
        elif used != len(sids):
            if add("unit", uid, "used_mismatch", f"shared {kind} {name} has used={used} but {len(sids)} active "
                   "services run through it", f"set used to {len(sids)}"):
                return findings
    numbers = {number: sid for sid, (_t, _p, number) in services.items() if number}
    stmt = (select(Unit.id, Unit.kind, Unit.name, Unit.service_id, Unit.capacity, Unit.used)
            .where(Unit.occupancy == Occupancy.OCCUPIED, *ln_where(Unit.local_network_id))
            .execution_options(yield_per=STREAM))
    for uid, kind, name, holder, cap, used in session.execute(stmt):
        if uid in through:
            continue
        if kind == "number":
            if numbers.get(name) == holder and holder is not None:
                continue
            if add("unit", uid, "orphan_occupied", f"number {name} is occupied by {holder}, whose number it is not "
                   "(or which is not active)", "release the number or correct the service's number"):
                return findings
            continue
        if cap == 1:
            msg = f"{kind} {name} is occupied by {holder} but on no active service's path"
        else:
            msg = f"shared {kind} {name} has used={used} but no active service runs through it"
        if add("unit", uid, "orphan_occupied" if cap == 1 else "used_mismatch", msg,
               "release it, or add it to the service's path" if cap == 1 else "set used to 0"):
            return findings
    return findings
