"""Bulk import of a bundle: the example loads with its occupancy; every kind of bad row is
reported with file, line and column and nothing is written."""
from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from bulk_helpers import with_iptv
from resource_mgr.bulk.format import FILES
from resource_mgr.bulk.importer import FastGrader, import_bundle
from resource_mgr.customers.models import Customer, Service, ServiceUnit
from resource_mgr.inventory.models import Card, Connection, Device, LocalNetwork, Resource
from resource_mgr.inventory.services import create_local_network
from resource_mgr.models import Base
from resource_mgr.numbers.grades import Grader
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy.models import SharedHold, Unit

EXAMPLE = Path(__file__).parents[1] / "data" / "bulk_example"
OLT = "GZ/site:TH/device:TH-OLT01"
FAT = "GZ/site:TH/distribution_box:TH-GFX0001"


def unit(session, root_name: str, kind: str, name: str) -> Unit:
    root = session.scalar(select(Resource.id).where(Resource.name == root_name))
    return session.scalar(select(Unit).where(Unit.root_id == root, Unit.kind == kind, Unit.name == name))


def copy_example(tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(EXAMPLE, out)
    return out


def edit(bundle: Path, file: str, line: int, column: str, value: str) -> None:
    """Set one cell (line numbers count the header as line 1)."""
    path = bundle / file
    rows = list(csv.reader(path.open(encoding="utf-8", newline="")))
    rows[line - 1][rows[0].index(column)] = value
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def append(bundle: Path, file: str, row: dict[str, str]) -> int:
    path = bundle / file
    header = next(csv.reader(path.open(encoding="utf-8", newline="")))
    with path.open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow([row.get(h, "") for h in header])
    return sum(1 for _ in path.open(encoding="utf-8"))


def snapshot(db) -> dict[str, int]:
    with db.engine.connect() as c:
        return {t.name: c.execute(text(f'SELECT count(*) FROM "{t.name}"')).scalar() for t in Base.metadata.sorted_tables}


def test_example_bundle_imports_with_its_occupancy(db):
    progress = []
    report = import_bundle(db, str(EXAMPLE), progress=lambda d, t: progress.append((d, t)))
    assert report.ok and report.written, report.problems
    assert progress and progress[-1][0] == progress[-1][1] > 0
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 5
        assert s.scalar(select(func.count()).select_from(ServiceUnit)) == 35
        assert s.scalar(select(func.count()).select_from(Connection)) == 22
        assert s.scalar(select(func.count()).select_from(Number)) == 100
        # units derived from templates and cables: 4 PON ports, 1+4 and 1+8 splitter ports ...
        olt = s.scalar(select(Device).where(Device.name == "TH-OLT01"))
        assert olt.template_id and s.scalar(select(func.count()).select_from(Card).where(Card.id.in_(
            select(Resource.id).where(Resource.parent_id == olt.id)))) == 1
        assert s.scalar(select(func.count()).select_from(Unit).where(Unit.root_id == olt.id)) == 4
        pon = unit(s, "TH-OLT01", "pon_port", "1/1")
        assert (pon.capacity, pon.used, pon.occupancy) == (64, 2, "occupied")
        feeder = unit(s, "GZ-F-001", "core", "001")
        assert (feeder.capacity, feeder.used) == (64, 2)  # capacity from units.csv
        box1 = unit(s, "TH-GFX0001", "box_port", "01")
        svc = s.get(Service, box1.service_id)
        assert box1.occupancy == "occupied" and svc.product == "ftth_broadband" and svc.order_ref == "BSS-GZ-S0001"
        held = unit(s, "TH-GFX0001", "box_port", "03")
        assert (held.occupancy, held.reservation_id) == ("preoccupied", "R-EXAMPLE-0001")
        assert unit(s, "TH-GFX0001", "box_port", "04").occupancy == "free"
        faulty = unit(s, "GZ-C-001", "pair", "0010")
        assert (faulty.admin_state, faulty.admin_reason) == ("faulty", "water in joint")
        num = s.scalar(select(Number).where(Number.number == "87650001"))
        assert num.unit.occupancy == "occupied" and s.get(Service, num.unit.service_id).product == "pots"
        assert s.scalar(select(Number.grade).where(Number.number == "87650088")) == "AA"
        assert s.scalar(select(Number.grade).where(Number.number == "87650000")) == Grader().grade("87650000")[0]
        assert s.scalar(select(Unit.quarantine_until).join(Number, Number.id == Unit.id)
                        .where(Number.number == "87650099")).year == 2030
        assert s.scalar(select(Customer.grade).where(Customer.external_ref == "C0002")) == "vip"
        assert s.scalar(select(func.count()).select_from(SharedHold)) == 0


def test_zip_bundle_imports(db, tmp_path):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in EXAMPLE.iterdir():
            z.write(f, f"export/{f.name}")
    assert import_bundle(db, str(archive)).written


BAD_ROWS = [
    # (file, line, column, new value, words expected in the reason)
    ("devices.csv", 2, "site", "GZ/site:NOWHERE", "unknown"),  # missing reference
    ("service_paths.csv", 3, "unit", f"{OLT}#pon_port#9/9", "no pon_port"),  # missing unit
    ("devices.csv", 3, "key", "GZ/site:TH/device:TH-OLT01", "duplicate key"),  # duplicate key
    ("services.csv", 3, "product", "teleportation", "not one of"),  # bad enum
    ("sites.csv", 2, "location", "POINT (113.33", "malformed WKT"),  # bad geometry
    ("sites.csv", 2, "location", "POINT (213.33 23.1)", "lon/lat"),  # geometry out of range
    ("cables.csv", 2, "unit_count", "99999", "above the maximum"),  # out-of-range number
    ("ducts.csv", 2, "holes", "many", "not a whole number"),
    ("number_segments.csv", 2, "last", "87660099", "at most 10000"),
    ("preoccupations.csv", 2, "until", "2030-01-01T00:00:00", "no UTC offset"),
    # read after the units are written (on PostgreSQL already sent): rolled back all the same
    ("connections.csv", 3, "a", "GZ/cable:GZ-C-001#pair#9999", "no pair"),
    ("coverage.csv", 2, "distance_m", "-5", "below the minimum"),
    ("cable_spans.csv", 2, "duct_segment", "GZ/duct:TH-D01/duct_segment:TH-D01-9", "unknown"),
]


@pytest.mark.parametrize("file,line,column,value,reason", BAD_ROWS, ids=[f"{b[0]}:{b[2]}:{b[4]}" for b in BAD_ROWS])
def test_bad_row_is_reported_and_nothing_is_written(db, tmp_path, file, line, column, value, reason):
    with db.unit_of_work() as uow:
        create_local_network(uow.session, code="SZ", name="深圳", area_code="755")
        uow.commit()
    before = snapshot(db)
    bundle = copy_example(tmp_path)
    edit(bundle, file, line, column, value)
    report = import_bundle(db, str(bundle))
    assert not report.ok and not report.written
    assert any(p.file == file and p.line == line and p.column == column and reason in p.reason
               for p in report.problems), [str(p) for p in report.problems]
    assert snapshot(db) == before


def test_every_bad_row_is_reported_at_once(db, tmp_path):
    bundle = copy_example(tmp_path)
    edit(bundle, "sites.csv", 2, "site_type", "castle")
    edit(bundle, "addresses.csv", 3, "location", "LINESTRING (1 1, 2 2)")
    edit(bundle, "customers.csv", 3, "grade", "platinum")
    report = import_bundle(db, str(bundle))
    where = {(p.file, p.line, p.column) for p in report.problems}
    assert {("sites.csv", 2, "site_type"), ("addresses.csv", 3, "location"), ("customers.csv", 3, "grade")} <= where
    assert snapshot(db)["resource"] == 0


def test_capacity_and_double_occupation_are_refused(db, tmp_path):
    bundle = copy_example(tmp_path)
    # a third service on the same FAT port 01 as GZ-S0001 (exclusive)
    append(bundle, "services.csv", {"key": "GZ-S0009", "local_network": "GZ", "product": "ftth_broadband",
                                    "technology": "FTTH"})
    line = append(bundle, "service_paths.csv", {"service": "GZ-S0009", "seq": "1", "unit": f"{FAT}#box_port#01"})
    # and a shared unit squeezed below what runs through it
    line_units = append(bundle, "units.csv", {"unit": f"{OLT}#pon_port#1/1", "capacity": "2"})
    more = append(bundle, "services.csv", {"key": "GZ-S0010", "local_network": "GZ", "product": "ftth_broadband",
                                           "technology": "FTTH"})
    line2 = append(bundle, "service_paths.csv", {"service": "GZ-S0010", "seq": "1", "unit": f"{OLT}#pon_port#1/1"})
    report = import_bundle(db, str(bundle))
    assert not report.written
    reasons = {(p.file, p.line, p.column): p.reason for p in report.problems}
    assert "already occupied by service 'GZ-S0001'" in reasons[("service_paths.csv", line, "unit")]
    assert "capacity exceeded" in reasons[("service_paths.csv", line2, "unit")]
    assert line_units and more
    assert snapshot(db)["unit"] == 0


@pytest.mark.parametrize("bearer,reason", [("GZ-S0099", "unknown service"), ("GZ-S0009", "rides on a bearer itself")])
def test_a_rider_needs_a_line_to_ride_on(db, tmp_path, bearer, reason):
    before = snapshot(db)
    report = import_bundle(db, str(with_iptv(tmp_path, bearer)))
    assert not report.written
    assert any(p.file == "services.csv" and p.column == "bearer" and reason in p.reason for p in report.problems)
    assert snapshot(db) == before


def test_a_rider_has_no_path_of_its_own(db, tmp_path):
    bundle = with_iptv(tmp_path, "GZ-S0001")
    line = append(bundle, "service_paths.csv", {"service": "GZ-S0009", "seq": "1", "unit": f"{FAT}#box_port#02"})
    report = import_bundle(db, str(bundle))
    assert not report.written
    assert any(p.file == "service_paths.csv" and p.line == line and "no path of its own" in p.reason
               for p in report.problems), [str(p) for p in report.problems]


def test_allow_partial_skips_the_riders_of_a_bad_line(db, tmp_path):
    bundle = with_iptv(tmp_path, "GZ-S0001")
    edit(bundle, "service_paths.csv", 2, "unit", f"{OLT}#pon_port#9/9")  # GZ-S0001's path is broken
    report = import_bundle(db, str(bundle), allow_partial=True)
    assert report.written
    assert any(p.column == "bearer" and "not imported" in p.reason for p in report.problems)
    with db.read_session() as s:
        products = sorted(s.scalars(select(Service.product)))
    assert "iptv" not in products and len(products) == 4


def test_header_problems(db, tmp_path):
    bundle = copy_example(tmp_path)
    (bundle / "gizmos.csv").write_text("a,b\n")
    text_ = (bundle / "poles.csv").read_text().replace("location", "locaton", 1)
    (bundle / "poles.csv").write_text(text_)
    report = import_bundle(db, str(bundle))
    where = {(p.file, p.line, p.column) for p in report.problems}
    assert ("gizmos.csv", 0, "") in where
    assert ("poles.csv", 1, "locaton") in where and ("poles.csv", 1, "location") in where
    assert not report.written


def test_not_a_bundle(db, tmp_path):
    report = import_bundle(db, str(tmp_path / "missing"))
    assert not report.ok and "not a bundle" in report.problems[0].reason


def test_allow_partial_writes_the_good_rows(db, tmp_path):
    bundle = copy_example(tmp_path)
    edit(bundle, "services.csv", 6, "product", "teleportation")  # GZ-S0005, the LAN service
    report = import_bundle(db, str(bundle), allow_partial=True)
    assert report.written and report.problem_count >= 1
    # its path rows refer to an unknown service: reported, skipped
    assert any(p.file == "service_paths.csv" and "unknown service" in p.reason for p in report.problems)
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 4
        assert unit(s, "TH-LAN_SWITCH01", "eth_port", "GE1").occupancy == "free"
        assert unit(s, "TH-OLT01", "pon_port", "1/1").used == 2


def test_existing_local_network_and_names_clash(db, tmp_path):
    assert import_bundle(db, str(EXAMPLE)).written
    report = import_bundle(db, str(EXAMPLE))  # the same again: every top-level name is taken
    assert not report.written
    assert any(p.file == "sites.csv" and p.column == "name" and "already exists" in p.reason for p in report.problems)
    assert any(p.file == "number_pools.csv" and "already exists" in p.reason for p in report.problems)
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(LocalNetwork)) == 1


def test_fast_grader_agrees_with_the_grader():
    g, f = Grader(), FastGrader()
    for n in ["87650000", "88888888", "87651234", "87654321", "12344321", "56565656", "55667788", "20004444",
              *(f"2{i:07d}" for i in range(0, 10_000_000, 7919))]:
        assert f.grade(n) == g.grade(n), n


def test_files_are_declared_in_reference_order():
    names = [f.name for f in FILES]
    for before, after in [("sites", "devices"), ("distribution_boxes", "devices"), ("devices", "cables"),
                          ("devices", "number_pools"), ("customers", "services"), ("services", "service_paths")]:
        assert names.index(before) < names.index(after)


def _zip(bundle: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(bundle.iterdir()):
            z.write(f, f.name)
    return archive


def _wait(client, headers, job_id: str) -> dict:
    import time

    for _ in range(200):
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
        if body["state"] in ("succeeded", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {body}")


def test_http_import_runs_as_a_job(db, tmp_path):
    from tests.security_helpers import bearer, ensure_security_tables, issue, make_app

    ensure_security_tables(db)
    app = make_app(db)
    client = app.test_client()
    _, secret = issue(db, ["planner"])
    headers = bearer(secret)
    archive = _zip(EXAMPLE, tmp_path / "example.zip")
    with archive.open("rb") as fh:
        r = client.post("/api/v1/imports", headers=headers, data={"file": (fh, "example.zip")},
                        content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    job = _wait(client, headers, r.get_json()["id"])
    assert job["state"] == "succeeded", job
    assert job["result"]["written"] and job["done"] == job["total"] > 0
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 5
        # the import is attributed to the principal who uploaded it
        from resource_mgr.occupancy.models import History

        log = s.scalars(select(History).where(History.action == "import")).all()
        assert [h.principal for h in log] == [job["created_by"]] and job["created_by"].startswith("user:")

    bad = copy_example(tmp_path)
    edit(bad, "sites.csv", 2, "location", "POINT (1")
    with _zip(bad, tmp_path / "bad.zip").open("rb") as fh:
        r = client.post("/api/v1/imports", headers=headers, data={"file": (fh, "bad.zip")},
                        content_type="multipart/form-data")
    job = _wait(client, headers, r.get_json()["id"])
    assert job["state"] == "failed" and "bad row" in job["errors"][0]["detail"]
    assert any({"file": "sites.csv", "line": 2, "column": "location"}.items() <= p.items()
               for p in job["result"]["problems"])
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 5  # unchanged
    (tmp_path / "note.txt").write_text("not a bundle")
    with (tmp_path / "note.txt").open("rb") as fh:
        r = client.post("/api/v1/imports", headers=headers, data={"file": (fh, "note.txt")},
                        content_type="multipart/form-data")
    assert r.status_code == 422 and "zip" in r.get_json()["detail"]
    _, sales = issue(db, ["sales"])
    with archive.open("rb") as fh:
        r = client.post("/api/v1/imports", headers=bearer(sales), data={"file": (fh, "example.zip")},
                        content_type="multipart/form-data")
    assert r.status_code == 403


def test_indexes_are_the_same_after_an_import_into_empty_tables(db):
    from sqlalchemy import inspect

    def indexes():
        insp = inspect(db.engine)
        return sorted((t, i["name"], tuple(i["column_names"]),
                       sorted((k, str(v)) for k, v in (i.get("dialect_options") or {}).items()))
                      for t in insp.get_table_names() for i in insp.get_indexes(t))

    before = indexes()
    assert import_bundle(db, str(EXAMPLE)).written
    db.engine.dispose()
    assert indexes() == before
