"""Export → import into a fresh database → export gives the same bytes."""
from __future__ import annotations

import filecmp
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

from resource_mgr.bulk.exporter import export_bundle
from resource_mgr.bulk.format import FILES, MANIFEST
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.customers.models import Service
from resource_mgr.inventory.services import create_local_network
from resource_mgr.occupancy.models import Unit
from db_helpers import clear_all

EXAMPLE = Path(__file__).parents[1] / "data" / "bulk_example"


def same_files(a: Path, b: Path) -> list[str]:
    names = [f.filename for f in FILES] + [MANIFEST]
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return mismatch + errors


def test_example_round_trips_byte_identically(db, tmp_path):
    assert import_bundle(db, str(EXAMPLE)).written
    first = tmp_path / "first"
    report = export_bundle(db, first)
    assert report.counts["services"] == 5 and report.counts["connections"] == 22
    with db.read_session() as s:
        units_before = s.scalar(select(func.count()).select_from(Unit))
        occupied_before = sorted(s.execute(select(Unit.kind, Unit.name, Unit.occupancy, Unit.used)
                                           .where(Unit.occupancy != "free")).all())
    clear_all(db)
    result = import_bundle(db, str(first))
    assert result.written, result.problems
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Unit)) == units_before
        assert sorted(s.execute(select(Unit.kind, Unit.name, Unit.occupancy, Unit.used)
                                .where(Unit.occupancy != "free")).all()) == occupied_before
    second = tmp_path / "second"
    export_bundle(db, second)
    assert same_files(first, second) == []


def test_export_of_one_local_network(db, tmp_path):
    assert import_bundle(db, str(EXAMPLE)).written
    with db.unit_of_work() as uow:
        create_local_network(uow.session, code="SZ", name="深圳", area_code="755")
        uow.commit()
    export_bundle(db, tmp_path / "gz", local_network="GZ")
    export_bundle(db, tmp_path / "sz", local_network="SZ")
    assert (tmp_path / "gz" / "local_networks.csv").read_text().splitlines()[1].startswith("GZ,")
    sz = (tmp_path / "sz" / "services.csv").read_text().splitlines()
    assert len(sz) == 1  # the header only
    assert "GZ" not in (tmp_path / "sz" / "areas.csv").read_text()


def test_generated_network_round_trips(db, tmp_path):
    from resource_mgr.bulk.generator import generate
    src = tmp_path / "xs"
    generate("XS", 3, src, as_of=datetime.now(timezone.utc).replace(microsecond=0))
    assert import_bundle(db, str(src)).written
    with db.read_session() as s:
        services = s.scalar(select(func.count()).select_from(Service))
    first = tmp_path / "first"
    export_bundle(db, first)
    clear_all(db)
    assert import_bundle(db, str(first)).written
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == services
    second = tmp_path / "second"
    export_bundle(db, second)
    assert same_files(first, second) == []


def test_cli_import_and_export(db, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from interfaces.cli.bulk import export_cmd, import_cmd

    for key in [k for k in __import__("os").environ if k.startswith("RMGR_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("RMGR_DATABASE_URL", db.url)
    runner = CliRunner()
    bad = tmp_path / "bad"
    import shutil
    shutil.copytree(EXAMPLE, bad)
    (bad / "ducts.csv").write_text((bad / "ducts.csv").read_text().replace(",4,", ",four,"))
    result = runner.invoke(import_cmd, [str(bad)])
    assert result.exit_code == 1 and "ducts.csv:2 [holes]" in result.output and "nothing was written" in result.output
    result = runner.invoke(import_cmd, [str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output
    out = tmp_path / "out"
    result = runner.invoke(export_cmd, [str(out), "--local-network", "GZ"])
    assert result.exit_code == 0, result.output
    assert (out / "services.csv").read_text().count("\n") == 6
    result = runner.invoke(export_cmd, [str(out)])
    assert result.exit_code == 1 and "not empty" in result.output
    result = runner.invoke(export_cmd, [str(tmp_path / "x"), "--local-network", "XX"])
    assert result.exit_code == 1 and "no local network XX" in result.output


def test_docs_describe_every_file_and_column():
    docs = (Path(__file__).parents[2] / "docs" / "data-format.md").read_text()
    for spec in FILES:
        head = f"### `{spec.filename}`"
        assert head in docs, spec.filename
        section = docs.split(head, 1)[1].split("\n### ", 1)[0]
        for col in spec.columns:
            assert f"| `{col.name}` |" in section, (spec.filename, col.name)
