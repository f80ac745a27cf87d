"""The path validator: a correct network passes; a broken path, a unit on two services and a
wrong shared `used` count are found, with how to fix them."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import delete, select, update

from bulk_helpers import with_iptv
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.bulk.paths import validate_paths
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.inventory.models import Connection, Resource
from resource_mgr.occupancy.models import Unit

EXAMPLE = Path(__file__).parents[1] / "data" / "bulk_example"


def unit_id(session, root_name: str, kind: str, name: str) -> str:
    root = session.scalar(select(Resource.id).where(Resource.name == root_name))
    return session.scalar(select(Unit.id).where(Unit.root_id == root, Unit.kind == kind, Unit.name == name))


def service_of(session, order_ref: str) -> str:
    return session.scalar(select(Service.id).where(Service.order_ref == order_ref))


def codes(findings) -> set[tuple[str, str]]:
    return {(f.code, f.id) for f in findings}


def test_correct_network_passes(db):
    assert import_bundle(db, str(EXAMPLE)).written
    with db.read_session() as s:
        assert validate_paths(s) == []


def test_generated_network_passes(db, tmp_path):
    from resource_mgr.bulk.generator import generate
    generate("XS", 5, tmp_path / "xs", as_of=datetime.now(timezone.utc).replace(microsecond=0))
    assert import_bundle(db, str(tmp_path / "xs")).written
    with db.read_session() as s:
        assert [f.as_dict() for f in validate_paths(s)] == []


def test_broken_path_is_found(db):
    assert import_bundle(db, str(EXAMPLE)).written
    with db.unit_of_work() as uow:
        s = uow.session
        core = unit_id(s, "GZ-F-002", "core", "001")
        spl_in = unit_id(s, "TH-SPLITTER02", "splitter_in", "IN1")
        s.execute(delete(Connection).where(Connection.a_unit_id == core, Connection.z_unit_id == spl_in))
        uow.commit()
    with db.read_session() as s:
        found = validate_paths(s)
        s1, s2 = service_of(s, "BSS-GZ-S0001"), service_of(s, "BSS-GZ-S0002")
    broken = [f for f in found if f.code == "broken_path"]
    assert {f.id for f in broken} == {s1, s2}
    assert "splitter_in IN1" in broken[0].message and "001" in broken[0].message and broken[0].fix


def test_unit_on_two_services_is_found(db):
    assert import_bundle(db, str(EXAMPLE)).written
    with db.unit_of_work() as uow:
        s = uow.session
        lan_service = service_of(s, "BSS-GZ-S0005")
        dsl_port = unit_id(s, "TH-DSLAM01", "dsl_port", "1/1")
        s.add(ServiceUnit(service_id=lan_service, seq=2, unit_id=dsl_port))
        uow.commit()
    with db.read_session() as s:
        found = validate_paths(s)
    assert ("double_occupancy", dsl_port) in codes(found)
    assert ("wrong_head", lan_service) in codes(found)  # its path now ends at a DSLAM port


def test_wrong_shared_used_count_is_found(db):
    assert import_bundle(db, str(EXAMPLE)).written
    with db.unit_of_work() as uow:
        s = uow.session
        pon = unit_id(s, "TH-OLT01", "pon_port", "1/1")
        idle = unit_id(s, "TH-OLT01", "pon_port", "1/2")
        s.execute(update(Unit).where(Unit.id == pon).values(used=3))
        s.execute(update(Unit).where(Unit.id == idle).values(used=1, occupancy="occupied"))
        uow.commit()
    with db.read_session() as s:
        found = {f.id: f for f in validate_paths(s)}
    assert found[pon].code == "used_mismatch" and "set used to 2" == found[pon].fix
    assert found[idle].code == "used_mismatch" and found[idle].fix == "set used to 0"


def test_orphan_and_unoccupied_units_are_found(db):
    assert import_bundle(db, str(EXAMPLE)).written
    with db.unit_of_work() as uow:
        s = uow.session
        box = unit_id(s, "TH-GFX0001", "box_port", "01")
        stray = unit_id(s, "TH-GFX0001", "box_port", "05")
        s.execute(update(Unit).where(Unit.id == box).values(occupancy="free", service_id=None))
        s.execute(update(Unit).where(Unit.id == stray).values(occupancy="occupied",
                                                               service_id=service_of(s, "BSS-GZ-S0001")))
        uow.commit()
    with db.read_session() as s:
        found = codes(validate_paths(s))
    assert ("not_occupied", box) in found and ("orphan_occupied", stray) in found


def test_riders_use_their_bearers_path(db, tmp_path):
    """IPTV riding on GZ-S0001 (FTTH) passes; with a path of its own, or on a removed line, or
    with neither bearer nor path, it is found."""
    bundle = with_iptv(tmp_path, "GZ-S0001")
    assert import_bundle(db, str(bundle)).written
    with db.read_session() as s:
        assert validate_paths(s) == []
        iptv, line = service_of(s, "BSS-GZ-S0009"), service_of(s, "BSS-GZ-S0001")
        assert s.get(Service, iptv).bearer_id == line
        other = service_of(s, "BSS-GZ-S0002")
    with db.unit_of_work() as uow:
        path_unit = uow.session.scalar(select(ServiceUnit.unit_id).where(ServiceUnit.service_id == other))
        uow.session.add(ServiceUnit(service_id=iptv, seq=1, unit_id=path_unit))
        uow.commit()
    with db.read_session() as s:
        assert ("own_path", iptv) in codes(validate_paths(s))
    with db.unit_of_work() as uow:
        uow.session.execute(delete(ServiceUnit).where(ServiceUnit.service_id == iptv))
        uow.session.execute(update(Service).where(Service.id == line).values(state="removed"))
        uow.commit()
    with db.read_session() as s:
        assert ("bearer_not_live", iptv) in codes(validate_paths(s))
    with db.unit_of_work() as uow:
        uow.session.execute(update(Service).where(Service.id == iptv).values(bearer_id=None))
        uow.commit()
    with db.read_session() as s:
        assert ("empty_path", iptv) in codes(validate_paths(s))
