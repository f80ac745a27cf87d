"""The transport layer in the data: what the generator builds (on its files and after import),
a hand-written metro bundle that loads and exports identically, and bad rows refused clearly.

The generated XS city (one exchange area; S repeats it per exchange and chains the areas):

    X000 exchange ─────────────── trunk ──────────────── 汇聚机房1 (machine room)
    CR01 ══ CR02   BRAS01 (to both)                        AGG01
     │       │                                               │ trunk
    AGG01    └──────────── trunk ─────── 汇聚机房2 AGG01 ─────┘
     │  ▲ ring: CR01 ─ X000 AGG01 ─ HJ1 AGG01 ─ HJ2 AGG01 ─ CR02 ─ CR01
     │  │
    OLT 18/1 ─patch─ X000 AGG01;  OLT 19/1 ─patch─ core of the X000–HJ1 trunk ─patch─ HJ1 AGG01
    ADSL DSLAM likewise; VDSL DSLAM: every other one only to HJ1 (single-homed)
    LAN switch (office building) 1/1 ─ core of a feeder cable ─ X000 AGG01
    type-B 1st-stage splitter: IN1 ─ feeder core ─ ODF ─ PON a/b;  IN2 ─ feeder core ─ ODF ─ PON c/d (c ≠ a)
"""
from __future__ import annotations

import ipaddress
import shutil
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import networkx as nx
import pytest
from sqlalchemy import func, select

from resource_mgr.bulk.exporter import export_bundle
from resource_mgr.bulk.format import FILES, MANIFEST, BundleReader, split_unit_ref
from resource_mgr.bulk.generator import generate
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.config import Settings
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.design import NoDesign, design_path
from resource_mgr.inventory.models import Address, Cable, CableSpan, Connection, Device
from resource_mgr.occupancy.models import Unit

NOW = datetime.now(timezone.utc).replace(microsecond=0)
METRO = Path(__file__).parents[1] / "data" / "metro_example"
MANAGED = {"olt", "dslam", "pstn_switch", "access_gateway", "lan_switch", "ngn_softswitch", "aggregation_switch",
           "bras", "core_router"}
TRANSPORT = {"aggregation_switch", "bras", "core_router"}


def rows(bundle: Path, name: str) -> list[dict[str, str]]:
    with BundleReader(bundle) as r:
        out = [row for _, row in r.rows(name)]
        assert not r.problems, r.problems
    return out


class Net:
    """The generated files as a small graph of unit references."""

    def __init__(self, bundle: Path) -> None:
        self.devices = {d["key"]: d for d in rows(bundle, "devices")}
        self.sites = {s["key"]: s for s in rows(bundle, "sites")}
        self.cables = {c["key"]: c for c in rows(bundle, "cables")}
        self.segments = {s["key"]: s for s in rows(bundle, "duct_segments")}
        self.spans: dict[str, list[str]] = defaultdict(list)
        for s in sorted(rows(bundle, "cable_spans"), key=lambda s: (s["cable"], int(s["seq"]))):
            self.spans[s["cable"]].append(s["duct_segment"])
        self.adj: dict[str, set[str]] = defaultdict(set)
        for c in rows(bundle, "connections"):
            self.adj[c["a"]].add(c["z"])
            self.adj[c["z"]].add(c["a"])
        self.paths: dict[str, list[str]] = defaultdict(list)
        for p in rows(bundle, "service_paths"):
            self.paths[p["service"]].append(p["unit"])

    def of_type(self, *types: str) -> list[dict[str, str]]:
        return [d for d in self.devices.values() if d["device_type"] in types]

    def uplinks(self, device: str) -> list[str]:
        return sorted(u for u in self.adj if u.startswith(device + "#uplink_port#"))

    def peers(self, uplink: str) -> set[str]:
        """The devices an uplink port reaches: patched directly or through one cable core."""
        out = set()
        for n in self.adj[uplink]:
            root, kind, _ = split_unit_ref(n)
            if kind == "uplink_port":
                out.add(root)
            elif kind == "core":
                out |= {split_unit_ref(m)[0] for m in self.adj[n] - {uplink} if "#uplink_port#" in m}
        return out

    def homes(self, device: str) -> list[set[str]]:
        return [self.peers(u) for u in self.uplinks(device)]

    def transport_graph(self) -> nx.Graph:
        g = nx.Graph()
        for d in self.of_type(*TRANSPORT):
            g.add_node(d["key"])
            for u in self.uplinks(d["key"]):
                for p in self.peers(u):
                    if self.devices[p]["device_type"] in TRANSPORT:
                        g.add_edge(d["key"], p)
        return g

    def pon_above(self, splitter_in: str) -> str | None:
        """Walk up from a splitter input (feeder core, ODF terminal) to its PON port."""
        seen, todo = {splitter_in}, [splitter_in]
        while todo:
            u = todo.pop()
            for n in self.adj[u] - seen:
                kind = split_unit_ref(n)[1]
                if kind == "pon_port":
                    return n
                if kind in ("core", "terminal"):
                    seen.add(n)
                    todo.append(n)
        return None


@pytest.fixture(scope="module")
def xs(tmp_path_factory) -> Net:
    out = tmp_path_factory.mktemp("tr") / "xs"
    generate("XS", 11, out, as_of=NOW)
    return Net(out)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Net:
    out = tmp_path_factory.mktemp("tr") / "s"
    generate("S", 5, out, as_of=NOW)
    return Net(out)


# -- the generated network ----------------------------------------------------------------------

@pytest.mark.parametrize("size", ["xs", "small"])
def test_olts_and_dslams_are_dual_homed_to_aggregation_nodes_at_two_sites(size, request):
    net: Net = request.getfixturevalue(size)
    singles = duals = 0
    for d in net.of_type("olt", "dslam"):
        homes = [h for h in net.homes(d["key"]) if h]
        nodes = set().union(*homes)
        assert all(net.devices[n]["device_type"] == "aggregation_switch" for n in nodes), d["key"]
        if d["template"].startswith("DSLAM-VDSL") and len(homes) == 1:
            singles += 1
            (node,) = nodes
            assert net.sites[net.devices[node]["site"]]["site_type"] == "machine_room"
            continue
        assert len(homes) == 2 and len(nodes) == 2, d["key"]
        assert len({net.devices[n]["site"] for n in nodes}) == 2, d["key"]
        uplink_cards = {u.rsplit("#", 1)[1].split("/")[0] for u in net.uplinks(d["key"])}
        assert len(uplink_cards) == 2  # on two uplink cards
        duals += 1
    assert duals >= 3
    assert singles >= (1 if size == "small" else 0)
    for lan in net.of_type("lan_switch"):
        homes = [h for h in net.homes(lan["key"]) if h]
        assert len(homes) == 1 and len(homes[0]) == 1, lan["key"]
        (node,) = homes[0]
        exchange = lan["key"].split("-")[0] + "-SITE"
        assert net.devices[node]["site"] == exchange


@pytest.mark.parametrize("size", ["xs", "small"])
def test_aggregation_nodes_form_rings_closing_on_the_core_pair(size, request):
    net: Net = request.getfixturevalue(size)
    g = net.transport_graph()
    aggs = [d["key"] for d in net.of_type("aggregation_switch")]
    routers = [d["key"] for d in net.of_type("core_router")]
    (bras,) = [d["key"] for d in net.of_type("bras")]
    assert len(routers) == 2 and g.has_edge(*routers)
    assert set(g[bras]) == set(routers)  # hung off both routers, on no ring
    ring = g.subgraph(aggs + routers)
    assert all(ring.degree(a) == 2 for a in aggs)  # each node has a neighbour either way round
    assert nx.is_biconnected(ring)  # no single node cuts an aggregation node off the core
    cycle = nx.find_cycle(ring, aggs[0])
    assert len(cycle) >= 4
    if size == "xs":  # one ring: every aggregation node on the one cycle through both routers
        assert len(cycle) == len(aggs) + 2
    assert len({net.devices[a]["site"] for a in aggs}) == len(aggs)


@pytest.mark.parametrize("size", ["xs", "small"])
def test_trunk_cables_join_two_sites_through_continuous_duct_segments(size, request):
    net: Net = request.getfixturevalue(size)
    trunks = [c for c in net.cables.values() if c["stage"] == "trunk"]
    assert len(trunks) >= 3
    for c in trunks:
        a, z = c["a_end"], c["z_end"]
        assert a in net.sites and z in net.sites and a != z and c["medium"] == "fibre"
        segs = net.spans[c["key"]]
        assert segs, c["key"]
        for s, t in zip(segs, segs[1:]):  # each span continues where the last ended
            assert {net.segments[s]["a_end"], net.segments[s]["z_end"]} & \
                   {net.segments[t]["a_end"], net.segments[t]["z_end"]}, (c["key"], s, t)
        # its cores join uplink ports of devices at its two ends
        for n in range(1, int(c["unit_count"]) + 1):
            core = f"{c['key']}#core#{n:03d}"
            ends = {net.devices[split_unit_ref(u)[0]]["site"] for u in net.adj.get(core, ())}
            assert ends <= {a, z} and len(ends) in (0, 2), core
    if size == "small":  # the two exchange areas are joined through an inter-area trunk duct
        assert any(s.startswith("TR-D") for c in trunks for s in net.spans[c["key"]])


@pytest.mark.parametrize("size", ["xs", "small"])
def test_type_b_splitters_have_both_inputs_on_pon_ports_of_different_cards(size, request):
    net: Net = request.getfixturevalue(size)
    protected = [d for d in net.of_type("splitter") if d["template"].startswith("SPLITTER-2:")]
    assert protected
    for d in protected:
        assert d["split_stage"] == "1"
        pons = [net.pon_above(f"{d['key']}#splitter_in#IN{i}") for i in (1, 2)]
        assert all(pons), d["key"]
        cards = {p.rsplit("/", 1)[0] for p in pons}  # <olt key>#pon_port#<slot>
        assert len(cards) == 2, pons
    in1 = {f"{d['key']}#splitter_in#IN1" for d in protected}
    in2 = {f"{d['key']}#splitter_in#IN2" for d in protected}
    on_primary = [s for s, p in net.paths.items() if in1 & set(p)]
    assert on_primary and not any(in2 & set(p) for p in net.paths.values())  # stored path: the primary


def test_every_managed_device_has_its_own_management_address(small):
    managed = [d for d in small.devices.values() if d["device_type"] in MANAGED]
    assert {d["device_type"] for d in managed} >= MANAGED - {"access_gateway"}
    ips = [d["management_ip"] for d in managed]
    assert all(ipaddress.ip_address(ip).is_private for ip in ips)
    assert len(set(ips)) == len(ips)
    assert not any(d["management_ip"] for d in small.of_type("splitter"))


def test_generated_transport_layer_after_import(db, tmp_path):
    out = tmp_path / "xs"
    generate("XS", 11, out, as_of=NOW)
    report = import_bundle(db, str(out))
    assert report.ok, [str(p) for p in report.problems[:10]]
    with db.read_session() as s:
        types = Counter(s.scalars(select(Device.device_type)))
        assert types["aggregation_switch"] == 3 and types["core_router"] == 2 and types["bras"] == 1
        sides = set(s.execute(select(Unit.side).where(Unit.kind == "uplink_port")).scalars())
        assert sides == {"network"}
        trunk = select(Cable.id).where(Cable.stage == "trunk")
        assert s.scalar(select(func.count()).select_from(CableSpan).where(CableSpan.cable_id.in_(trunk))) > 5
        uplinks = select(Unit.id).where(Unit.kind == "uplink_port")
        assert s.scalar(select(func.count()).select_from(Connection).where(
            Connection.a_unit_id.in_(uplinks) | Connection.z_unit_id.in_(uplinks))) > 10
        # no service rides on the transport layer's units
        assert not s.scalar(select(func.count()).select_from(Unit).where(
            Unit.kind == "uplink_port", Unit.occupancy != "free"))
        # designs stop at the head (the uplinks are never walked) and, on a type-B tree, take the
        # first input as the services there do
        protected = select(Unit.root_id).where(Unit.kind == "splitter_in", Unit.name == "IN2")
        homes = list(s.scalars(select(Service.address_id).join(ServiceUnit, ServiceUnit.service_id == Service.id)
                               .join(Unit, Unit.id == ServiceUnit.unit_id)
                               .where(Unit.kind == "splitter_in", Unit.root_id.in_(protected))
                               .order_by(Service.address_id).distinct().limit(12)))
        offices = list(s.scalars(select(Address.id).where(Address.room != "", Address.building.like("%座"))
                                 .order_by(Address.id).limit(10)))
        assert len(homes) >= 5
        through_b = 0
        for address, tech in [(h, "FTTH") for h in homes] + [(o, "LAN") for o in offices]:
            try:
                d = design_path(s, address_id=address, technology=tech, settings=Settings(), now=NOW)
            except NoDesign:
                continue
            units = s.scalars(select(Unit).where(Unit.id.in_(d.unit_ids))).all()
            assert not [u for u in units if u.kind == "uplink_port"], (address, tech)
            assert {u.kind for u in units if u.id == d.unit_ids[-1]} <= {"pon_port", "eth_port"}
            inputs = [u for u in units if u.kind == "splitter_in" and u.root_id in set(s.scalars(protected))]
            assert all(u.name == "IN1" for u in inputs), address
            through_b += bool(inputs)
        assert through_b >= 3


# -- a metro topology from files ------------------------------------------------------------------

def same_files(a: Path, b: Path) -> list[str]:
    import filecmp
    names = [f.filename for f in FILES] + [MANIFEST]
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return mismatch + errors


def test_metro_bundle_loads_and_exports_identically(db, tmp_path):
    """tests/data/metro_example, written by hand:

        CORE (exchange): CR01 ══ CR02, BRAS01 to both
          │ TR-CORE-A 3650 m (duct D1: CORE ─ MH1 ─ A)       TR-C-CORE 4100 m │
          A: AGG01 ── TR-A-B 2500 m ── B (machine room): AGG01 ── TR-B-C 1800 m ── C: AGG01
          A: OLT01 3/1 ─ A AGG01;  4/1 ─ TR-A-B core 2 ─ B AGG01  (dual-homed)
          A: SPL01 (2:4, type B) IN1 ─ OLT01 1/1, IN2 ─ OLT01 2/1
    """
    report = import_bundle(db, str(METRO))
    assert report.ok, [str(p) for p in report.problems]
    with db.read_session() as s:
        lengths = dict(s.execute(select(Cable.name, Cable.length_m).where(Cable.stage == "trunk")).all())
        assert lengths == {"TR-CORE-A": 3650.0, "TR-A-B": 2500.0, "TR-B-C": 1800.0, "TR-C-CORE": 4100.0}
        assert s.scalar(select(func.count()).select_from(Connection)) == 16
    out = tmp_path / "out"
    export_bundle(db, out)
    assert same_files(METRO, out) == []
    net = Net(out)
    ring = net.transport_graph()
    assert nx.is_biconnected(ring.subgraph([d["key"] for d in net.of_type("aggregation_switch", "core_router")]))
    olt = "MT/site:A/device:OLT01"
    assert [h for h in net.homes(olt)] == [{"MT/site:A/device:AGG01"}, {"MT/site:B/device:AGG01"}]
    assert net.pon_above("MT/site:A/device:SPL01#splitter_in#IN2") == f"{olt}#pon_port#2/1"


@pytest.mark.parametrize("file, old, new, column, reason", [
    ("cables", ",fibre,trunk,12,,2500.0,", ",fibre,metro,12,,2500.0,", "stage", "'metro' is not one of"),
    ("devices", "MT/site:C/device:AGG01,MT,AGG01,aggregation_switch,", "MT/site:C/device:AGG01,MT,AGG01,router,",
     "device_type", "'router' is not one of"),
    ("cables", "2500.0,MT/site:A,MT/site:B,", "2500.0,MT/site:A/device:OLT01,MT/site:B,", "a_end",
     "a trunk cable runs between two sites: 'MT/site:A/device:OLT01' is a device"),
    ("cables", "2500.0,MT/site:A,MT/site:B,", "2500.0,MT/site:A,MT/site:A,", "z_end", "two different sites"),
    ("cables", "2500.0,MT/site:A,MT/site:B,", "2500.0,,,", "a_end", "a_end and z_end name them"),
    ("cables", ",fibre,trunk,12,,2500.0,", ",copper,trunk,12,0.4,2500.0,", "medium", "a fibre cable"),
    ("devices", "10.0.3.1", "10.0.2.1", "management_ip", "'10.0.2.1' is already the device 'MT/site:B/device:AGG01'"),
    ("connections", "MT/site:A/device:OLT01#uplink_port#3/1", "MT/site:A/device:OLT01#uplink_port#5/1", "a",
     "uplink_port"),
])
def test_bad_transport_rows_are_refused_with_a_clear_reason(db, tmp_path, file, old, new, column, reason):
    bad = tmp_path / "bad"
    shutil.copytree(METRO, bad)
    path = bad / f"{file}.csv"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    report = import_bundle(db, str(bad))
    assert not report.ok and not report.written
    found = [p for p in report.problems if p.file == f"{file}.csv" and p.column == column]
    assert found and reason in found[0].reason, [str(p) for p in report.problems]
    with db.read_session() as s:
        assert not s.scalar(select(func.count()).select_from(Device))
