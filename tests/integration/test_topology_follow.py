"""The graph follows the change feed: a change committed through the normal services, by this
process or another OS process, is in the next answer, applied without building the graph again."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from topology_world import CHANGE, TopoWorld, access_world

from resource_mgr.customers.models import Service
from resource_mgr.inventory import services as inv
from resource_mgr.occupancy.models import Unit
from resource_mgr.states import ServiceState
from resource_mgr.topology import services as topo

@pytest.fixture
def world(db):
    topo.forget_graphs()
    with db.unit_of_work() as uow:
        n = access_world(TopoWorld(uow.session), dual_homed=True)
        uow.commit()
    # take the second homing away again: the test puts it back through the feed
    with db.unit_of_work() as uow:
        from resource_mgr.inventory.models import Connection
        uow.session.query(Connection).filter(Connection.a_unit_id.in_([n.UP2, n.AGG2u[1]])).delete()
        uow.commit()
    yield n
    topo.forget_graphs()


def wire_second_homing(session, n) -> None:
    inv.connect(session, n.UP2, n.T2c[0], "patch")
    inv.connect(session, n.AGG2u[1], n.CR1p[1], "patch")


def state_of(db, n, failed) -> str:
    with db.read_session() as s:
        return topo.service_state(s, n.svc, set(failed))


def test_changes_in_this_process_are_applied_without_a_rebuild(db, world):
    """
        box port 1 ─ drop core 1 ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1 @A]
        OLT1 up1 ─ T1 ─ AGG1 [@B] ─ CR1 [@D]
        OLT1 up2 ─ T2 ─ AGG2 [@C] ─ CR1        (wired by the change)
        box port 2 ─ drop core 2 ─ S1 out2 ═ S1 in1 ...   (a new line, then removed)
    """
    n = world
    assert state_of(db, n, [n.T1]) == "down"
    with db.read_session() as s:
        graph = topo.get_graph(s)
    builds = graph.builds
    with db.unit_of_work() as uow:
        wire_second_homing(uow.session, n)
        uow.commit()
    assert state_of(db, n, [n.T1]) == "degraded"
    with db.read_session() as s:  # the OLT's single-homed services are kept: the change below must empty that
        assert {x["id"] for x in topo.impact(s, [n.OLT1])["services"]} >= {n.svc}
    with db.unit_of_work() as uow:  # a new line on the second box port, through the ledger
        ln = uow.session.get(Unit, n.BP[1]).local_network_id
        other = Service(local_network_id=ln, product="ftth_broadband", technology="FTTH")
        uow.session.add(other)
        uow.session.flush()
        path = [n.BP[1], n.Dc[1], n.S1out[1], n.S1in[0], n.Fc[0], n.PON1]
        inv.connect(uow.session, n.BP[1], n.Dc[1], "splice")
        inv.connect(uow.session, n.Dc[1], n.S1out[1], "splice")
        from resource_mgr.customers.models import ServiceUnit
        uow.session.add_all(ServiceUnit(service_id=other.id, seq=i, unit_id=u) for i, u in enumerate(path, 1))
        uow.session.get(Unit, n.BP[1]).occupy(CHANGE, service_id=other.id)
        uow.commit()
    with db.read_session() as s:
        down = {x["id"] for x in topo.impact(s, [n.OLT1])["services"]}
        assert other.id in down and n.svc in down
        assert {h["unit_id"] for h in topo.routes_of_service(s, other.id)["hops"]} >= set(path)
    with db.unit_of_work() as uow:  # removed: it leaves the graph
        svc = uow.session.get(Service, other.id)
        svc.state = ServiceState.REMOVED
        uow.session.get(Unit, n.BP[1]).release(CHANGE, service_id=other.id)
        uow.commit()
    with db.read_session() as s:
        assert other.id not in {x["id"] for x in topo.impact(s, [n.OLT1])["services"]}
        graph = topo.get_graph(s)
    assert graph.builds == builds and graph.applied > 0


READER = textwrap.dedent("""
    import json, sys
    from resource_mgr.db import Database
    from resource_mgr.topology import services as topo
    url, svc, failed = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))
    db = Database(url)
    for line in sys.stdin:  # one answer per line asked
        with db.read_session() as s:
            state = topo.service_state(s, svc, failed)
            graph = topo.get_graph(s)
        print(json.dumps({"state": state, "builds": graph.builds}), flush=True)
""")

WRITER = textwrap.dedent("""
    import sys
    from resource_mgr.db import Database
    from resource_mgr.inventory import services as inv
    url, a, b, c = sys.argv[1:]
    db = Database(url)
    with db.unit_of_work() as uow:
        inv.connect(uow.session, a, b, "patch")
        inv.connect(uow.session, b, c, "patch")
        uow.commit()
""")


def test_a_change_committed_by_another_process_is_in_the_next_answer(db, world):
    """
        box port ─ drop core ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1 @A]
        OLT1 up1 ─ T1 core1 ─ AGG1 [@B] ─ CR1 [@D]
        OLT1 up2 ─ T2 core1 ─ AGG2 [@C] ─ CR1   (wired by this process, seen by the other)
        OLT1 up1 ─ T2 core2 ─ AGG1 u4           (wired by another process, seen by this one)
    """
    n = world
    assert state_of(db, n, [n.T1, n.UP2]) == "down"  # this process's graph, built now
    reader = subprocess.Popen([sys.executable, "-c", READER, db.url, n.svc, json.dumps([n.T1])],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        def ask() -> dict:
            reader.stdin.write("?\n")
            reader.stdin.flush()
            return json.loads(reader.stdout.readline())

        assert ask() == {"state": "down", "builds": 1}
        with db.unit_of_work() as uow:  # this process commits; the other process's next answer has it
            wire_second_homing(uow.session, n)
            uow.commit()
        assert ask() == {"state": "degraded", "builds": 1}
    finally:
        reader.stdin.close()
        reader.wait(timeout=60)
    subprocess.run([sys.executable, "-c", WRITER, db.url, n.UP1, n.T2c[1], n.AGG1u[3]], check=True, timeout=120)
    with db.read_session() as s:  # another process committed; this process's next answer has it
        assert topo.service_state(s, n.svc, {n.T1, n.UP2}) == "degraded"
        assert topo.get_graph(s).builds == 1


def test_a_folded_unit_a_change_shares_is_unfolded_and_answers_stay_right(db, world):
    """
        box port 1 ─ drop core 1 ─ S1 out1 ═ S1 in1 ─ f1 ─ PON1 [OLT1 @A]   (svc: the first three
                                                                            folded into it)
        box port 2 ─ drop core 1 ─ S1 out1 ...      (a second line made on svc's drop core and
                                                      splitter output: they are shared now)
    The answers after the change equal the brute force for every unit and resource alone.
    """
    from topology_brute import Containment, brute_states, engine_states

    from resource_mgr.customers.models import ServiceUnit
    from resource_mgr.topology.graph import FOLDED

    n = world
    with db.read_session() as s:
        graph = topo.get_graph(s)
        with graph.lock:
            assert [graph.flag[graph.ids[u]] == FOLDED for u in n.path] == [True] * 3 + [False] * 3
        builds = graph.builds
        assert topo.service_state(s, n.svc, {n.Dc[0]}) == "down"
    with db.unit_of_work() as uow:
        ln = uow.session.get(Unit, n.BP[1]).local_network_id
        other = Service(local_network_id=ln, product="ftth_broadband", technology="FTTH")
        uow.session.add(other)
        uow.session.flush()
        path = [n.BP[1], n.Dc[0], n.S1out[0], n.S1in[0], n.Fc[0], n.PON1]
        uow.session.add_all(ServiceUnit(service_id=other.id, seq=i, unit_id=u) for i, u in enumerate(path, 1))
        uow.session.get(Unit, n.BP[1]).occupy(CHANGE, service_id=other.id)
        uow.commit()
    with db.read_session() as s:
        assert {x["id"] for x in topo.impact(s, [n.Dc[0]], limit=10)["services"]} == {n.svc, n.iptv, other.id}
        assert {x["id"] for x in topo.impact(s, [n.BP[0]], limit=10)["services"]} == {n.svc, n.iptv}
        assert [h["unit_id"] for h in topo.routes_of_service(s, other.id)["hops"]][:len(path)] == path
        graph = topo.get_graph(s)
        with graph.lock:
            assert graph.flag[graph.ids[n.Dc[0]]] != FOLDED and graph.builds == builds
        containment = Containment(s)
        for target in [*n.path, n.BP[1], n.BOX, n.DROP, n.S1, n.F, n.OLT1, n.T1, n.SG1, n.A]:
            assert engine_states(s, {target}) == brute_states(s, {target}, containment), target
