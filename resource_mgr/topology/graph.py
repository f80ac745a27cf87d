"""The network as one networkx graph, per process and database (docs/topology.md).

Every node has a small integer (`NetworkGraph.ids` maps the opaque ids to them, `keys` back,
`kinds` and one byte in `flag` say what it is). Three sorts of node:

- in the networkx graph `g`: resources (sites, devices, cards, frames, cross boxes, boxes, cables,
  ducts, duct segments, manholes, poles) and the units that matter (on a live service's path, or on
  the network side: the second input of a type-B splitter and the wiring behind it, uplink ports,
  trunk cores);
- services, outside networkx: `services` holds each one's facts and its path (unit nodes, customer
  side first); `starts` maps a unit to the services whose route begins there, `riders` a bearer to
  the services riding on it;
- folded units, outside networkx: the customer-side units a single service uses alone before its
  first shared unit (box port, drop core, second-stage splitter output; the pairs of a copper line),
  which have one way on, the next unit of that path. They are the first `fold` units of the
  service's path; `folded_owner` gives each one's container and `folded_units` a container's folded
  units, so containment and impact read them as they would read the nodes they replace. A change
  that touches one (another service on it, a new wire to it) unfolds the service first.
Free units that no route can use are not nodes: they are most of the units and change no answer.

Every edge of `g` says "depends on" (u → v: u fails when v fails, or u may use v):
- containment (AND): unit → its owner (card, cable, box, frame, splitter), card → device,
  device / frame / cross box → site, cable → each duct segment it spans, duct segment → its duct
  and its end manholes / poles;
- route (OR, unit → unit, towards the core): the next unit of a stored path, a splitter output
  → every input of its splitter, wiring on the network side (type-B standby chains oriented away
  from the splitter, transport links both ways between transport devices, a transport device's
  internal switching between its uplink ports).
Which kind an edge is follows from the kinds of its ends (unit → unit is a route edge).
"""
from __future__ import annotations

import sys
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx

from resource_mgr.occupancy.models import UNIT_KINDS
from resource_mgr.states import CustomerGrade, ServiceState

RESOURCE_KINDS = ("site", "device", "card", "frame", "cross_box", "distribution_box", "cable", "duct",
                  "duct_segment", "manhole", "pole")
UNIT_KIND_SET = frozenset(UNIT_KINDS) | {"uplink_port"}
HEAD_PORTS = frozenset({"pon_port", "dsl_port", "line_port", "eth_port"})
TRANSPORT_DEVICES = frozenset({"aggregation_switch", "bras", "core_router"})
LIVE = (ServiceState.ACTIVE.value, ServiceState.SUSPENDED.value)
SERVICE = "service"
_NORMAL = CustomerGrade.NORMAL.value
CHUNK = 900
# what a node is, one byte per node (graph.flag): the hot loops test this instead of kind strings
RESOURCE, UNIT, TRANSPORT, SERVICE_NODE, FOLDED = 0, 1, 2, 3, 4
_NO_ATTRS: dict = {}


def _no_attrs() -> dict:
    return _NO_ATTRS


class LeanDiGraph(nx.DiGraph):
    """networkx's DiGraph with one shared empty attribute dict for every node and edge (the facts
    about nodes live beside the graph, in lists indexed by node): a dict fewer per node and per
    edge. networkx documents these factories for this use; never write node or edge attributes."""

    node_attr_dict_factory = staticmethod(_no_attrs)
    edge_attr_dict_factory = staticmethod(_no_attrs)


@dataclass(slots=True)
class ServiceInfo:
    id: str
    product: str
    customer: str | None
    grade: str
    number: str | None
    address_id: str | None
    area: str
    local_network_id: str
    path: tuple[int, ...]
    bearer: int | None = None
    fold: int = 0  # the first `fold` units of the path are folded into the service

    @property
    def vip(self) -> bool:
        return self.grade != _NORMAL

    @property
    def anchor(self) -> int | None:
        """The first unit of the path in the networkx graph: where the service's routes go on."""
        return self.path[self.fold] if self.path else None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "product": self.product, "customer": self.customer, "vip": self.vip,
                "number": self.number, "address_id": self.address_id}


def chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _add_to(table: dict[int, list[int]], key: int, value: int) -> None:
    hit = table.get(key)
    if hit is None:
        table[key] = [value]
    else:
        hit.append(value)


def _take_from(table: dict[int, list[int]], key: int | None, value: int) -> None:
    hit = table.get(key) if key is not None else None
    if hit is not None:
        try:
            hit.remove(value)
        except ValueError:
            pass
        if not hit:
            del table[key]


class NetworkGraph:
    """One process's graph of one database; `lock` guards every read and change of it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.RLock()
        self.position = 0
        self.mark: tuple | None = None  # the history row at `position` (a wiped feed has another)
        self.build_seconds = 0.0
        self.builds = 0
        self.applied = 0  # history rows applied incrementally since the last build
        self.reset()

    def reset(self) -> None:
        self.g = LeanDiGraph()
        self.ids: dict[str, int] = {}
        self.keys: list[str | None] = []
        self.kinds: list[str] = []
        self.flag = bytearray()
        self.device_type: dict[int, str] = {}
        self.cable_stage: dict[int, str] = {}
        self.local_network: dict[int, str] = {}  # devices: for the route's end (core router, else BRAS)
        self.terminal: dict[str | None, frozenset[str]] = {}  # local network → the route ends' device types
        self.services: dict[int, ServiceInfo] = {}
        self.starts: dict[int, list[int]] = {}  # unit → the services whose routes go on from it
        self.riders: dict[int, list[int]] = {}  # bearer → its riders
        self.folded_owner: dict[int, int] = {}  # folded unit → its container
        self.folded_by: dict[int, int] = {}  # folded unit → its service
        self.folded_units: dict[int, list[int]] = {}  # container → its folded units
        self.wired: dict[int, set[int]] = defaultdict(set)  # network-side route edges, by source
        self.transport_cache: dict[int, list[tuple[tuple[int, ...], frozenset[int]]]] = {}
        self.transport_index: dict[int, set[int]] | None = None
        self.bearer_keys: dict[str, str] = {}
        self.head_services: dict[int, list[int]] = {}  # impact's cache, emptied by every change
        self.homes: dict[int, int | None] = {}  # impact's: unit → the one device its routes end at, or MULTI
        self.homed: dict[int, tuple[list[int], list[int], list[int]]] = {}  # impact's: device → (its single-homed
        # services, the multi-homed units next to its single-homed ones), emptied by every change
        self.homed_answers: dict[int, tuple] = {}  # impact's: device → its single-homed services, sorted, counted
        self.version = 0

    def build(self, session: Any) -> None:
        from resource_mgr.topology.load import build

        build(self, session)

    def number_of_nodes(self) -> int:
        """Nodes in networkx plus services and folded units (the ids in use)."""
        return self.g.number_of_nodes() + len(self.services) + len(self.folded_owner)

    def number_of_edges(self) -> int:
        return self.g.number_of_edges()

    # -- nodes -----------------------------------------------------------------------------

    def new_id(self, key: str, kind: str, flag: int) -> int:
        """A new integer for an id, not (yet) a networkx node."""
        n = self.ids[key] = len(self.keys)
        self.keys.append(key)
        self.kinds.append(sys.intern(kind))
        self.flag.append(flag)
        return n

    def node(self, key: str, kind: str) -> int:
        n = self.ids.get(key)
        flag = SERVICE_NODE if kind == SERVICE else UNIT if kind in UNIT_KIND_SET else RESOURCE
        if n is None:
            n = self.new_id(key, kind, flag)
            if flag != SERVICE_NODE:
                self.g.add_node(n)
        else:
            if self.flag[n] == FOLDED:
                self.unfold(self.folded_by[n])
            self.kinds[n] = sys.intern(kind)
            if self.flag[n] != TRANSPORT or flag != UNIT:
                self.flag[n] = flag
            if flag != SERVICE_NODE and n not in self.g:
                self.g.add_node(n)
        return n

    def drop(self, n: int) -> None:
        if self.flag[n] == FOLDED:
            self.unfold(self.folded_by[n])
        if n in self.services:
            self.unfold(n)
            self.detach(n)
            self.riders.pop(n, None)
            del self.services[n]
        key = self.keys[n]
        if key is not None:
            self.ids.pop(key, None)
            self.keys[n] = None
        if n in self.g:
            self.g.remove_node(n)
        self.wired.pop(n, None)
        self.starts.pop(n, None)

    def is_unit(self, n: int) -> bool:
        return self.flag[n] in (UNIT, TRANSPORT, FOLDED)

    def is_resource(self, n: int) -> bool:
        return self.flag[n] == RESOURCE

    def route_next(self, n: int) -> list[int]:
        """The units a unit's routes may continue to (towards the core)."""
        flag = self.flag
        return [v for v in self.g._succ[n] if flag[v] == UNIT or flag[v] == TRANSPORT]

    def containers(self, n: int) -> list[int]:
        flag = self.flag
        if flag[n] == FOLDED:
            return [self.folded_owner[n]]
        return [v for v in self.g._succ[n] if flag[v] == RESOURCE]

    def root(self, unit: int) -> int | None:
        """The unit's device, cable, box or frame (its owner, or the owner's device for a card)."""
        for v in self.containers(unit):
            if self.kinds[v] == "card":
                return next(iter(self.containers(v)), v)
            return v
        return None

    def up_closure(self, n: int) -> set[int]:
        """The node and everything it is contained in (its card, device, site, cable, ducts...)."""
        out, todo = {n}, [n]
        while todo:
            x = todo.pop()
            for v in self.containers(x):
                if v not in out:
                    out.add(v)
                    todo.append(v)
        return out

    def is_transport_unit(self, n: int) -> bool:
        return self.flag[n] == TRANSPORT

    def mark_transport(self, n: int) -> None:
        """A unit of the transport layer: an uplink port, or a core of a trunk cable."""
        kind = self.kinds[n]
        transport = kind == "uplink_port"
        if kind == "core":
            r = self.root(n)
            transport = r is not None and self.cable_stage.get(r) == "trunk"
        self.flag[n] = TRANSPORT if transport else UNIT

    def terminal_types(self, local_network_id: str | None) -> frozenset[str]:
        """Where a route ends: a core router, or a BRAS where the city has no core router (kept
        until a device is read again)."""
        hit = self.terminal.get(local_network_id)
        if hit is None:
            types = {t for d, t in self.device_type.items() if t in ("core_router", "bras")
                     and self.local_network.get(d) == local_network_id}
            hit = self.terminal[local_network_id] = frozenset({"core_router"} if "core_router" in types else {"bras"})
        return hit

    def forget_answers(self) -> None:
        """Empty impact's caches of who uses which head device (a change may move a route)."""
        self.head_services.clear()
        self.homes.clear()
        self.homed.clear()
        self.homed_answers.clear()

    def changed_transport(self) -> None:
        self.transport_cache.clear()
        self.transport_index = None
        self.version += 1

    # -- services and their folded units ---------------------------------------------------------

    def attach(self, s: int) -> None:
        """Index a service by where its routes go on and by its bearer."""
        info = self.services[s]
        if info.path:
            _add_to(self.starts, info.path[info.fold], s)
        if info.bearer is not None:
            _add_to(self.riders, info.bearer, s)

    def detach(self, s: int) -> None:
        info = self.services[s]
        if info.path:
            _take_from(self.starts, info.path[info.fold], s)
        _take_from(self.riders, info.bearer, s)

    def unfold(self, s: int) -> None:
        """Make a service's folded units networkx nodes again, with their containment and route
        edges (a change is about to touch them)."""
        info = self.services.get(s)
        if info is None or not info.fold:
            return
        f, path, g = info.fold, info.path, self.g
        _take_from(self.starts, path[f], s)
        for u in path[:f]:
            owner = self.folded_owner.pop(u)
            del self.folded_by[u]
            _take_from(self.folded_units, owner, u)
            self.flag[u] = UNIT
            g.add_edge(u, owner)
        g.add_edges_from(zip(path[:f], path[1:f + 1]))
        info.fold = 0
        _add_to(self.starts, path[0], s)
        self.forget_answers()
        from resource_mgr.topology.load import splitter_passes

        splitter_passes(self, path[:f])

    def units_in(self, resource: int) -> list[int]:
        """The units of a device, cable, box or frame (directly or on its cards), folded ones too."""
        out = contents(self, resource)
        out += self.folded_units.get(resource, ())
        for p in self.g._pred[resource]:
            if self.kinds[p] == "card":
                out += self.folded_units.get(p, ())
        return out


def contents(graph: NetworkGraph, resource: int) -> list[int]:
    """The networkx unit nodes of a device, cable, box or frame (directly or on its cards)."""
    out = []
    kinds = graph.kinds
    for p in graph.g._pred[resource]:
        k = kinds[p]
        if k in UNIT_KIND_SET:
            out.append(p)
        elif k == "card":
            out += [q for q in graph.g._pred[p] if kinds[q] in UNIT_KIND_SET]
    return out


_contents = contents  # the name the callers know


def is_terminal_device(graph: NetworkGraph, device: int) -> bool:
    return graph.device_type.get(device) in graph.terminal_types(graph.local_network.get(device))
