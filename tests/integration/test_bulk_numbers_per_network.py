"""Local numbers are unique within a local network, not the province: every area code has its own
8765 0000. The model, add_segment and the importer all hold that, on both backends."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from resource_mgr.bulk.importer import import_bundle
from resource_mgr.errors import Conflict
from resource_mgr.inventory.services import create_local_network
from resource_mgr.numbers.models import Number
from resource_mgr.numbers.services import add_segment, create_pool
from resource_mgr.occupancy.models import Unit


def write(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def two_networks(tmp_path: Path, numbers: list[list[str]] | None = None, sz_first: str = "87650000") -> Path:
    """GZ and SZ, each with a pool and the segment 8765 0000–0099 (SZ's from `sz_first`)."""
    b = tmp_path / "bundle"
    b.mkdir()
    write(b / "local_networks.csv", [["code", "name", "area_code"], ["GZ", "廣州", "20"], ["SZ", "深圳", "755"]])
    write(b / "number_pools.csv", [["key", "local_network", "name"], ["GZ/pool", "GZ", "P1"], ["SZ/pool", "SZ", "P1"]])
    write(b / "number_segments.csv", [["key", "pool", "first", "last"], ["GZ/seg", "GZ/pool", "87650000", "87650099"],
                                      ["SZ/seg", "SZ/pool", sz_first, str(int(sz_first) + 99)]])
    write(b / "services.csv", [["key", "local_network", "product", "technology", "number"],
                               ["GZ-1", "GZ", "pots", "POTS", "87650001"], ["SZ-1", "SZ", "pots", "POTS", "87650001"]])
    if numbers is not None:
        write(b / "numbers.csv", [["number", "pool", "grade", "grade_level"]] + numbers)
    return b


def occupied(db) -> list[tuple[str, str]]:
    with db.read_session() as s:
        return sorted(s.execute(select(Unit.local_network_id, Number.number).join(Unit, Unit.id == Number.id)
                                .where(Unit.occupancy == "occupied")).all())


def test_two_local_networks_import_the_same_numbers(db, tmp_path):
    report = import_bundle(db, str(two_networks(tmp_path, [["87650088", "SZ/pool", "gold", "5"]])))
    assert report.written, [str(p) for p in report.problems]
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Number).where(Number.number == "87650001")) == 2
        grades = dict(s.execute(select(Number.local_network_id, Number.grade).where(Number.number == "87650088")).all())
        ln_of_number = dict(s.execute(select(Number.id, Unit.local_network_id).join(Unit, Unit.id == Number.id)).all())
        assert all(n.local_network_id == ln_of_number[n.id] for n in s.scalars(select(Number)))
    assert sorted(grades.values())[1] == "gold" and len(grades) == 2
    assert len({ln for ln, _ in occupied(db)}) == 2  # each service took its own network's 87650001


def test_a_number_of_two_networks_needs_its_pool(db, tmp_path):
    report = import_bundle(db, str(two_networks(tmp_path, [["87650088", "", "gold", "5"]])))
    assert not report.written
    assert any(p.file == "numbers.csv" and p.column == "number" and "name its pool" in p.reason
               for p in report.problems), [str(p) for p in report.problems]


def test_segments_overlap_only_within_a_network(db, tmp_path):
    bundle = two_networks(tmp_path, sz_first="87650050")
    with (bundle / "number_segments.csv").open("a", encoding="utf-8") as fh:
        fh.write("GZ/seg2,GZ/pool,87650090,87650120\n")
    report = import_bundle(db, str(bundle))
    # SZ's 87650050.. does not overlap GZ's 87650000..; GZ's second segment overlaps its first
    assert [(p.line, p.column) for p in report.problems if p.file == "number_segments.csv"] == [(4, "first")]


def test_a_second_import_clashes_only_in_its_own_network(db, tmp_path):
    assert import_bundle(db, str(two_networks(tmp_path))).written
    again = tmp_path / "again"
    again.mkdir()
    write(again / "number_pools.csv", [["key", "local_network", "name"], ["GZ/pool2", "GZ", "P2"]])
    write(again / "number_segments.csv", [["key", "pool", "first", "last"],
                                          ["GZ/seg2", "GZ/pool2", "87650050", "87650060"]])
    report = import_bundle(db, str(again))
    assert not report.written and any("already exists in this local network" in p.reason for p in report.problems)
    with db.unit_of_work() as uow:
        create_local_network(uow.session, code="FS", name="佛山", area_code="757")
        uow.commit()
    (again / "number_pools.csv").write_text("key,local_network,name\nGZ/pool2,FS,P2\n", encoding="utf-8")
    assert import_bundle(db, str(again)).written


def test_add_segment_checks_the_pools_network_only(db):
    with db.unit_of_work() as uow:
        s = uow.session
        gz = create_local_network(s, code="GZ", name="廣州", area_code="20")
        sz = create_local_network(s, code="SZ", name="深圳", area_code="755")
        gz_pool = create_pool(s, local_network_id=gz.id, name="P1")
        sz_pool = create_pool(s, local_network_id=sz.id, name="P1")
        add_segment(s, pool_id=gz_pool.id, first="87650000", last="87650099")
        add_segment(s, pool_id=sz_pool.id, first="87650000", last="87650099")
        with pytest.raises(Conflict, match="already exists in this local network"):
            add_segment(s, pool_id=gz_pool.id, first="87650050", last="87650150")
        uow.commit()
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Number).where(Number.number == "87650000")) == 2


def test_the_database_keeps_numbers_unique_per_network(db):
    with db.unit_of_work() as uow:
        s = uow.session
        gz = create_local_network(s, code="GZ", name="廣州", area_code="20")
        pool = create_pool(s, local_network_id=gz.id, name="P1")
        add_segment(s, pool_id=pool.id, first="87650000", last="87650000")
        uow.commit()
    with db.read_session() as s:
        n = s.scalars(select(Number)).one()
        row = {c: getattr(n, c) for c in ("local_network_id", "number", "pool_id", "segment_id", "exchange_code",
                                          "tail4", "grade", "grade_level")}
        u = s.get(Unit, n.id)
        unit_row = {c.name: getattr(u, c.name) for c in Unit.__table__.columns}
    with pytest.raises(IntegrityError):  # the same number again in GZ: refused by the database itself
        with db.unit_of_work() as uow:
            uow.session.execute(Unit.__table__.insert(), [dict(unit_row, id="X" * 26)])
            uow.session.execute(Number.__table__.insert(), [dict(row, id="X" * 26)])
            uow.commit()
