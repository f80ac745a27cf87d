"""Impact: down when every route is cut, degraded when one is left; containment (a manhole takes
its duct segments' cables, a site everything in it); riders follow their bearers; the answer's
shape; and on many random small networks with redundancy, the same answer as the brute force."""
from __future__ import annotations

import random

import pytest
from db_helpers import clear_all
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from topology_brute import Containment, brute_states, engine_states
from topology_world import TopoWorld, build, random_world  # noqa: F401 (build: a fixture)

from resource_mgr.errors import NotFound
from resource_mgr.topology import services as topo


def states(db, failed):
    with db.read_session() as s:
        return engine_states(s, set(failed))


def test_dual_homed_line_is_degraded_by_one_trunk_and_down_by_both_or_their_shared_duct(db, build):
    """
        box port ─ drop core ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1 @A]
        OLT1 up1 ─ T1 ─ AGG1 [@B] ─ CR1 [@D]      T1 and T2 both through duct segment SG1 (M1–M2)
        OLT1 up2 ─ T2 ─ AGG2 [@C] ─ CR1           (f1 runs through SG1 too)
    """
    n = build(dual_homed=True, shared_duct=True)
    line = {n.svc, n.iptv}
    assert states(db, [n.T1]) == {s: "degraded" for s in line}
    assert states(db, [n.AGG2]) == {s: "degraded" for s in line}
    assert states(db, [n.C]) == {s: "degraded" for s in line}  # the site of AGG2: everything in it
    assert states(db, [n.T1, n.T2]) == {s: "down" for s in line}
    assert states(db, [n.SG1]) == {s: "down" for s in line}
    assert states(db, [n.M2]) == {s: "down" for s in line}  # the manhole: SG1 and every cable through it
    assert states(db, [n.CR1p[0], n.AGG2u[1]]) == {s: "down" for s in line}
    assert states(db, [n.BP[1], n.S1out[3]]) == {}  # free units nothing uses
    assert states(db, [n.OLT1]) == {s: "down" for s in line}


def test_type_b_line_survives_its_olt_but_not_the_shared_aggregation(db, build):
    """
        box port ─ drop core ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1] up1 ─ T1 core1 ─ AGG1 ─ CR1
                                      ╲═ S1 in2 ─ f2 ─ PON2 [OLT2] up1 ─ T1 core2 ─ AGG1
    """
    n = build(type_b=True)
    line = {n.svc, n.iptv}
    assert states(db, [n.OLT1]) == {s: "degraded" for s in line}
    assert states(db, [n.Fc[0]]) == {s: "degraded" for s in line}
    assert states(db, [n.OLT1, n.OLT2]) == {s: "down" for s in line}
    assert states(db, [n.F]) == {s: "down" for s in line}  # both feeder cores in one cable
    assert states(db, [n.AGG1]) == {s: "down" for s in line}
    assert states(db, [n.T1c[0]]) == {s: "degraded" for s in line}


def test_answer_shape_counts_and_vips_first(db, build):
    """The plain world (see test_topology_routes) failing its OLT."""
    n = build()
    with db.read_session() as s:
        answer = topo.impact(s, [n.OLT1])
        assert set(answer) == {"down_count", "degraded_count", "by_product", "by_area", "services",
                               "degraded_services", "affected_resources_count"}
        assert answer["down_count"] == 2 and answer["degraded_count"] == 0
        assert answer["by_product"] == {"ftth_broadband": {"down": 1, "degraded": 0},
                                        "iptv": {"down": 1, "degraded": 0}}
        assert answer["by_area"] == {"TP-区": {"down": 2, "degraded": 0}}
        first = answer["services"][0]
        assert set(first) == {"id", "product", "customer", "vip", "number", "address_id"}
        assert first["id"] == n.svc and first["vip"] is True
        assert answer["affected_resources_count"] >= 1 + 1 + 2  # OLT, card, its PON and uplink ports in use
        assert topo.impact(s, [n.OLT1], limit=1, offset=1)["services"][0]["id"] == n.iptv
        assert topo.impact(s, [n.OLT1], local_network_ids=["elsewhere"])["down_count"] == 0
        assert topo.service_state(s, n.svc, {n.T1}) == "down"
        with pytest.raises(NotFound, match="NOPE"):
            topo.impact(s, [n.OLT1, "NOPE"])


# -- random small networks with redundancy ----------------------------------------------------------

@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.generate])  # a failure names its seed; shrinking a world is slow
@given(seed=st.integers(0, 10**6))
def test_impact_equals_the_brute_force_on_random_networks(database, seed):
    """See random_world's diagram: a random metro; failed sets of one to three random things."""
    clear_all(database)
    topo.forget_graphs()
    rng = random.Random(seed)
    with database.unit_of_work() as uow:
        ids = random_world(TopoWorld(uow.session), rng)
        uow.commit()
    with database.read_session() as s:
        containment = Containment(s)
        for _ in range(12):
            failed = set(rng.sample(ids, rng.randint(1, 3)))
            assert engine_states(s, failed) == brute_states(s, failed, containment), (seed, failed)
    topo.forget_graphs()
