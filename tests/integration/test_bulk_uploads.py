"""Uploads and archives: bad file names and media types are clear 4xx problems; uploads live in
the upload directory (a setting) and are removed when their job ends; no server path or SQL
reaches a client; archives with links, devices, climbing or duplicate names, or past the size and
row limits are refused naming the entry; the garbage collector is left alone in a shared process."""
from __future__ import annotations

import gc
import io
import shutil
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from resource_mgr.bulk.format import BundleReader, BundleRefused
from resource_mgr.bulk.importer import ImportLimits, import_bundle
from resource_mgr.customers.models import Service
from resource_mgr.inventory.services import create_local_network
from db_helpers import clear_all
from tests.security_helpers import bearer, ensure_security_tables, issue, make_app

EXAMPLE = Path(__file__).parents[1] / "data" / "bulk_example"


def zip_of(bundle: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(bundle.iterdir()):
            z.write(f, prefix + f.name)
    return archive


@pytest.fixture
def api(db, tmp_path, monkeypatch):
    uploads = tmp_path / "uploads"
    monkeypatch.setenv("RMGR_UPLOAD_DIR", str(uploads))  # the job handler reads the settings too
    ensure_security_tables(db)
    client = make_app(db, upload_dir=str(uploads)).test_client()
    _, secret = issue(db, ["planner"])
    return client, bearer(secret), uploads


def post(client, headers, fh, name: str, **kw):
    return client.post("/api/v1/imports", headers=headers, data={"file": (fh, name)},
                       content_type="multipart/form-data", **kw)


def wait(client, headers, job_id: str) -> dict:
    for _ in range(400):
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
        if body["state"] in ("succeeded", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(body)


@pytest.mark.parametrize("name,why", [("x" * 296 + ".zip", "at most 255"), ("bad\x00name.zip", "control character")])
def test_a_bad_file_name_is_a_problem_naming_the_field(api, tmp_path, name, why):
    client, headers, uploads = api
    archive = zip_of(EXAMPLE, tmp_path / "b.zip")
    with archive.open("rb") as fh:
        r = post(client, headers, fh, name)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["field"] == "file" and why in r.get_json()["detail"]
    assert not uploads.exists() or not any(uploads.iterdir())


def test_a_body_that_is_not_multipart_is_415(api):
    client, headers, _ = api
    r = client.post("/api/v1/imports", headers=headers, json={"file": "x"})
    assert r.status_code == 415
    assert r.get_json()["code"] == "unsupported_media_type" and r.mimetype == "application/problem+json"


def test_uploads_are_removed_when_their_job_ends_and_no_path_is_shown(api, tmp_path):
    client, headers, uploads = api
    with zip_of(EXAMPLE, tmp_path / "good.zip").open("rb") as fh:
        r = post(client, headers, fh, "good.zip")
    assert r.status_code == 202
    assert str(uploads) not in r.get_data(as_text=True) and str(tmp_path) not in r.get_data(as_text=True)
    assert r.get_json()["params"]["filename"] == "good.zip" and "path" not in r.get_json()["params"]
    job = wait(client, headers, r.get_json()["id"])
    assert job["state"] == "succeeded", job
    assert list(uploads.iterdir()) == []
    # the same bundle again: every name clashes; the job fails, the upload goes all the same
    with zip_of(EXAMPLE, tmp_path / "again.zip").open("rb") as fh:
        r = post(client, headers, fh, "again.zip")
    job = wait(client, headers, r.get_json()["id"])
    assert job["state"] == "failed" and job["result"]["problem_count"] > 0
    body = client.get(f"/api/v1/jobs/{job['id']}", headers=headers).get_data(as_text=True)
    assert str(uploads) not in body and str(tmp_path) not in body and "SQL" not in body
    assert list(uploads.iterdir()) == []


def test_a_database_refusal_is_a_problem_without_sql(db):
    """Someone makes local network GZ while the bundle that makes it is read: the database refuses
    the bundle's row; the report names the file, and holds no SQL."""
    made = []

    def meanwhile(done, total):
        if not made:
            made.append(1)
            with db.unit_of_work() as uow:
                create_local_network(uow.session, code="GZ", name="廣州", area_code="20")
                uow.commit()

    report = import_bundle(db, str(EXAMPLE), progress=meanwhile)
    assert made and not report.written
    [p] = report.problems
    assert p.file == "local_networks.csv" and "refused" in p.reason, str(p)
    assert "INSERT" not in p.reason and "SQL" not in p.reason
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == 0


# -- archives ------------------------------------------------------------------------------------

def refused(archive: Path, **limits) -> list:
    with pytest.raises(BundleRefused) as info:
        BundleReader(archive, **limits)
    return info.value.problems


def test_climbing_absolute_and_duplicate_names_are_refused(tmp_path):
    for entry in ("../../sites.csv", "/etc/sites.csv", "C:\\sites.csv"):
        archive = tmp_path / "a.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("local_networks.csv", "code,name,area_code\n")
            z.writestr(entry, "key\n")
        assert [p.file for p in refused(archive)] == [entry]
    archive = zip_of(EXAMPLE, tmp_path / "dup.zip", prefix="a/")
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("b/sites.csv", "key\n")
    [p] = refused(archive)
    assert p.file == "b/sites.csv" and "same file name" in p.reason


def test_links_and_devices_are_refused(tmp_path):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as t:
        t.add(EXAMPLE / "sites.csv", "sites.csv")
        for name, kind in (("areas.csv", tarfile.SYMTYPE), ("poles.csv", tarfile.LNKTYPE),
                           ("ducts.csv", tarfile.CHRTYPE), ("cards.csv", tarfile.FIFOTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "sites.csv" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            t.addfile(info)
    problems = refused(archive)
    assert {p.file: p.reason.split(":")[0] for p in problems} == {
        "areas.csv": "a link", "poles.csv": "a link", "ducts.csv": "a device, pipe or socket",
        "cards.csv": "a device, pipe or socket"}
    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("sites.csv")
        info.create_system = 3
        info.external_attr = (0o120777) << 16  # a symbolic link
        z.writestr(info, "/etc/passwd")
    assert [p.reason.split(":")[0] for p in refused(link)] == ["a link"]


def test_an_archive_bomb_is_refused(db, tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("sites.csv", "w") as fh:
            fh.write(b"key,local_network,name,site_type\n")
            chunk = b"x" * (1 << 20)
            for _ in range(200):
                fh.write(chunk)
    assert bomb.stat().st_size < 1_000_000
    report = import_bundle(db, str(bomb), limits=ImportLimits(max_ratio=100))
    assert not report.written and "archive bomb" in report.problems[0].reason
    report = import_bundle(db, str(bomb), limits=ImportLimits(max_bytes=100_000_000))
    assert not report.written and "more than the limit" in report.problems[0].reason


def test_bytes_are_counted_while_reading_as_declared_sizes_can_lie(tmp_path):
    archive = zip_of(EXAMPLE, tmp_path / "b.zip")
    reader = BundleReader(archive, max_bytes=10_000_000)  # the declared sizes pass
    reader.max_bytes = 2_000  # as if they had lied: the bytes read are what counts
    with pytest.raises(BundleRefused, match="counted while reading"):
        for name in ("local_networks", "areas", "sites", "addresses", "devices", "cables", "services"):
            list(reader.records(name))


def test_past_the_row_limit_the_bundle_is_refused(db, tmp_path):
    report = import_bundle(db, str(zip_of(EXAMPLE, tmp_path / "b.zip")), limits=ImportLimits(max_rows=50))
    assert not report.written and "more than the limit of 50" in report.problems[0].reason
    bundle = tmp_path / "no-manifest"
    shutil.copytree(EXAMPLE, bundle)
    (bundle / "manifest.json").unlink()
    reader = BundleReader(bundle, max_rows=10**6)
    reader.max_rows = 3  # as if the count had been wrong: the rows read are what counts
    with pytest.raises(BundleRefused, match="more than 3 data rows"):
        for name in ("local_networks", "areas", "sites", "addresses"):
            list(reader.records(name))


# -- the garbage collector -----------------------------------------------------------------------

def test_the_garbage_collector_stays_on_unless_the_process_is_the_imports(db):
    seen: list[bool] = []
    assert import_bundle(db, str(EXAMPLE), progress=lambda d, t: seen.append(gc.isenabled())).written
    assert seen and all(seen) and gc.isenabled() and gc.get_freeze_count() == 0
    seen.clear()
    clear_all(db)
    assert import_bundle(db, str(EXAMPLE), progress=lambda d, t: seen.append(gc.isenabled()), own_process=True).written
    assert seen and not any(seen) and gc.isenabled()


def test_an_upload_refused_for_its_entries_is_422_naming_them(api, tmp_path):
    client, headers, uploads = api
    archive = tmp_path / "climb.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../../x.csv", "a\n")
    with archive.open("rb") as fh:
        r = post(client, headers, fh, "climb.zip")
    assert r.status_code == 422 and r.get_json()["field"] == "file"
    assert r.get_json()["errors"][0]["file"] == "../../x.csv"
    assert list(uploads.iterdir()) == []
    with io.BytesIO(b"not an archive") as fh:
        assert post(client, headers, fh, "note.txt").status_code == 422
    assert list(uploads.iterdir()) == []


def test_a_damaged_or_undecodable_bundle_is_a_problem(db, tmp_path):
    bundle = tmp_path / "latin1"
    shutil.copytree(EXAMPLE, bundle)
    (bundle / "areas.csv").write_bytes("key,local_network,name,level\nGZ/area:x,GZ,caf\xe9,district\n".encode("latin-1"))
    report = import_bundle(db, str(bundle))
    assert not report.written and "cannot be read (UnicodeDecodeError" in report.problems[-1].reason
    damaged = zip_of(EXAMPLE, tmp_path / "d.zip")
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF  # in a member's compressed data (the directory is at the end)
    damaged.write_bytes(bytes(data))
    report = import_bundle(db, str(damaged))
    assert not report.written and report.problems  # a problem, not an exception


def test_a_job_run_again_after_its_import_committed_imports_nothing_twice(db):
    """The runner dies between the import's commit and the job's end; the next runner finds the
    mark the import's own transaction left on the job and only reports it."""
    from resource_mgr.bulk.importer import COMMITTED, import_job
    from resource_mgr.jobs import services as jobs
    from resource_mgr.jobs.models import Job

    with db.unit_of_work() as uow:
        job = jobs.create_job(uow.session, "import", {"path": str(EXAMPLE)})
        uow.commit()
    first = import_job(db, job.id, lambda done, total: None)
    with db.read_session() as s:
        assert s.get(Job, job.id).result[COMMITTED] is True  # written with the import's rows
        services = s.scalar(select(func.count()).select_from(Service))
    assert services > 0 and first["written"]

    again = import_job(db, job.id, lambda done, total: None)
    assert again[COMMITTED] and "nothing was imported again" in again["message"]
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == services
