"""Single points of failure of VIP services, checked by failing each candidate alone."""
from __future__ import annotations

import random

import pytest
from db_helpers import clear_all
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from topology_brute import Containment
from topology_world import TopoWorld, access_world, random_world

from resource_mgr.errors import Invalid
from resource_mgr.topology import services as topo
from resource_mgr.topology.routes import service_routes


def check_against_each_alone(s, containment: Containment) -> int:
    """Every VIP service's report equals the candidates (anything on any of its routes) whose
    failure alone takes it down; returns how many services were checked."""
    report = {r["service_id"]: {x["id"] for x in r["resources"]}
              for r in topo.single_points_of_failure(s, limit=10**6)}
    graph = topo.get_graph(s)
    with graph.lock:
        candidates = {info.id: {c for r in service_routes(graph, n, 64) for u in r
                                for c in containment.closure(graph.keys[u])}
                      for n, info in graph.services.items() if info.vip}
    for sid, elements in candidates.items():
        alone = {e for e in elements if topo.service_state(s, sid, {e}) == "down"}
        assert report.get(sid, set()) == alone, sid
    return len(candidates)


def test_spof_of_a_dual_homed_vip_is_the_shared_duct_not_the_trunks(db):
    """
        box port ─ drop core ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1 @A]
        OLT1 up1 ─ T1 ─ AGG1 [@B] ─ CR1 [@D]      T1, T2 and f1 all through duct segment SG1 (M1–M2)
        OLT1 up2 ─ T2 ─ AGG2 [@C] ─ CR1
    """
    topo.forget_graphs()
    with db.unit_of_work() as uow:
        n = access_world(TopoWorld(uow.session), dual_homed=True, shared_duct=True)
        uow.commit()
    with db.read_session() as s:
        report = topo.single_points_of_failure(s)
        assert [r["service_id"] for r in report] == [n.svc]  # the VIP line; its rider has no VIP customer
        found = {x["id"] for x in report[0]["resources"]}
        assert {n.BP[0], n.BOX, n.Dc[0], n.S1, n.PON1, n.OLT1, n.A, n.SG1, n.M1, n.M2, n.CR1, n.D} <= found
        assert not found & {n.T1, n.T2, n.AGG1, n.AGG2, n.B, n.C, n.UP1, n.UP2}
        assert report[0]["resources"][0] == {"id": n.BP[0], "kind": "box_port", "name": "box_port-1"}
        assert check_against_each_alone(s, Containment(s)) == 1
        assert topo.single_points_of_failure(s, local_network_ids=["elsewhere"]) == []
        with pytest.raises(Invalid):
            topo.single_points_of_failure(s, grade="gold")
    topo.forget_graphs()


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.generate])
@given(seed=st.integers(0, 10**6))
def test_spof_equals_failing_each_candidate_alone_on_random_networks(database, seed):
    """The random metros of test_topology_impact.random_world (rings, dual homing, type-B)."""
    clear_all(database)
    topo.forget_graphs()
    with database.unit_of_work() as uow:
        random_world(TopoWorld(uow.session), random.Random(seed))
        uow.commit()
    with database.read_session() as s:
        check_against_each_alone(s, Containment(s))
    topo.forget_graphs()
