"""The topology engine on the generator's S city (two exchanges, ~11,000 services; the transport
layer, dual homing and type-B lines where the generator builds them): impact equals the brute force
for leaf, mid and large faults and mixes of them; every route begins with the stored path.

    boxes ─ drop / riser cores ─ 2nd-stage splitters ─ distribution cores ─ 1st-stage splitters
      ─ feeder cores ─ ODF terminals ─ PON ports [OLTs] ─ uplinks ─ trunk cores ─ aggregation ring
      ─ core routers;   copper: box ─ pairs ─ cross box ─ primary pairs ─ MDF ─ DSLAM / switch
"""
from __future__ import annotations

import random

import pytest
from db_helpers import clear_all
from sqlalchemy import select, text
from topology_brute import BruteForce, engine_states

from resource_mgr.bulk.generator import generate
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.customers.models import ServiceUnit
from resource_mgr.topology import services as topo
from resource_mgr.topology.routes import service_routes


@pytest.fixture(scope="module")
def city(database, tmp_path_factory):
    clear_all(database)
    topo.forget_graphs()
    out = tmp_path_factory.mktemp("city") / "s"
    generate("S", 7, out)
    assert import_bundle(database, str(out)).written
    yield database
    topo.forget_graphs()
    clear_all(database)


def _one(s, sql: str) -> str:
    return s.execute(text(sql)).scalar()


def test_impact_equals_the_brute_force_on_the_generated_city(city):
    rng = random.Random(3)
    with city.read_session() as s:
        brute = BruteForce(s)
        faults = {
            "box": _one(s, "SELECT id FROM distribution_box ORDER BY id LIMIT 1"),
            "second-stage splitter": _one(s, "SELECT id FROM device WHERE split_stage = 2 ORDER BY id LIMIT 1"),
            "pon port": _one(s, "SELECT unit_id FROM service_unit su JOIN unit u ON u.id = su.unit_id "
                                "WHERE u.kind = 'pon_port' ORDER BY unit_id LIMIT 1"),
            "cross box": _one(s, "SELECT id FROM cross_box ORDER BY id LIMIT 1"),
            "olt": _one(s, "SELECT id FROM device WHERE device_type = 'olt' ORDER BY id LIMIT 1"),
            "site": _one(s, "SELECT id FROM site WHERE site_type = 'exchange' ORDER BY id LIMIT 1"),
            "feeder duct segment": _one(s, "SELECT cs.duct_segment_id FROM cable_span cs JOIN cable c ON "
                                           "c.id = cs.cable_id WHERE c.stage = 'feeder' ORDER BY 1 LIMIT 1"),
            "manhole": _one(s, "SELECT id FROM manhole ORDER BY id LIMIT 1"),
            "card": _one(s, "SELECT id FROM card ORDER BY id LIMIT 1"),
        }
        for kind in ("aggregation_switch", "core_router"):
            found = _one(s, f"SELECT id FROM device WHERE device_type = '{kind}' ORDER BY id LIMIT 1")
            if found:
                faults[kind] = found
        trunk = _one(s, "SELECT id FROM cable WHERE stage = 'trunk' ORDER BY id LIMIT 1")
        if trunk:
            faults["trunk"] = trunk
        units = list(s.scalars(select(ServiceUnit.unit_id).order_by(ServiceUnit.unit_id)))
        sets = [{v} for v in faults.values() if v] + [set(rng.sample(units, 3)) for _ in range(3)]
        sets.append({faults["box"], faults["olt"], faults["feeder duct segment"]})
        hit = 0
        for failed in sets:
            engine = engine_states(s, failed)
            assert engine == brute.states(failed), failed
            hit += bool(engine)
        assert hit >= len(sets) - 2  # the faults chosen do take services down


def test_every_route_begins_with_the_stored_path(city):
    with city.read_session() as s:
        graph = topo.get_graph(s)
        stored: dict[str, list[str]] = {}
        for sid, uid in s.execute(select(ServiceUnit.service_id, ServiceUnit.unit_id)
                                  .order_by(ServiceUnit.service_id, ServiceUnit.seq)):
            stored.setdefault(sid, []).append(uid)
        with graph.lock:
            checked = 0
            for n, info in graph.services.items():
                path = stored.get(info.id)
                if not path:
                    continue
                routes = service_routes(graph, n, 16)
                assert [graph.keys[u] for u in routes[0][:len(path)]] == path, info.id
                checked += 1
        assert checked > 5000
