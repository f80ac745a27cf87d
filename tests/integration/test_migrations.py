"""The Alembic revisions build the schema the models describe, on the backend under test.

If a model changes without a revision (scripts/make_migration.py), test_no_drift fails and says
what differs."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Column, Index, Integer, MetaData, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from resource_mgr import migrate
from resource_mgr.models import Base


@pytest.fixture
def empty_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it (on PostgreSQL not even PostGIS), dropped afterwards."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    url = make_url(database_url)
    name = f"{url.database}_m{secrets.token_hex(4)}"[:63]
    admin = create_engine(url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return set(inspect(engine).get_table_names()) - migrate.POSTGIS_TABLES
    finally:
        engine.dispose()


def _copy_of_model_metadata() -> MetaData:
    copy = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(copy)
    # to_metadata() drops `.ddl_if()`; put the PostgreSQL-only conditions back.
    for table in Base.metadata.sorted_tables:
        for index in table.indexes:
            ddl_if = getattr(index, "_ddl_if", None)
            if ddl_if is not None:
                twin = next(i for i in copy.tables[table.name].indexes if i.name == index.name)
                twin.ddl_if(dialect=ddl_if.dialect, callable_=ddl_if.callable_)
    return copy


def test_head_exists_and_is_single() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1, f"several heads, merge them: {script.get_heads()}"
    assert migrate.head_revision() == script.get_current_head()


def _new_diffs(url: str, drifted: MetaData, baseline: MetaData) -> list[str]:
    """What `drifted` adds to the drift of `baseline`, so these tests check the detector even
    while the models are ahead of the revisions (test_no_drift reports that)."""
    before = set(migrate.describe(migrate.drift(url, baseline)))
    return [line for line in migrate.describe(migrate.drift(url, drifted)) if line not in before]


def test_upgrade_from_empty_reaches_head(empty_url: str) -> None:
    assert migrate.current_revision(empty_url) is None
    assert not migrate.is_at_head(empty_url)
    assert _tables(empty_url) == set()

    migrate.upgrade(empty_url)

    assert migrate.current_revision(empty_url) == migrate.head_revision()
    assert migrate.is_at_head(empty_url)
    assert {"resource", "unit", "history", "number", "local_network", "app_user"} <= _tables(empty_url)
    migrate.upgrade(empty_url)  # at head already: a no-op, not an error
    assert migrate.is_at_head(empty_url)


def test_upgrade_step_by_step(empty_url: str) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        migrate.upgrade(empty_url, revision)
        assert migrate.current_revision(empty_url) == revision
    assert migrate.is_at_head(empty_url)


def test_empty_database_drifts_from_models(empty_url: str) -> None:
    missing = {diff[1].name for diff in migrate.drift(empty_url) if diff[0] == "add_table"}
    assert missing == {t.name for t in Base.metadata.sorted_tables}


def test_downgrade_to_base_and_back(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    tables = _tables(empty_url)
    command.downgrade(migrate.alembic_config(empty_url), "base")
    assert _tables(empty_url) <= {"alembic_version"}
    assert migrate.current_revision(empty_url) is None
    migrate.upgrade(empty_url)
    assert _tables(empty_url) == tables


def test_test_database_is_at_head(database, database_url: str) -> None:
    assert migrate.is_at_head(database_url)


def test_no_drift(database, database_url: str) -> None:
    """The migrated schema equals the models."""
    diffs = migrate.describe(migrate.drift(database_url))
    assert diffs == [], (
        "the models and the migrations differ; write a revision with "
        "`scripts/make_migration.py \"what changed\"` and review it:\n  " + "\n  ".join(diffs)
    )


def test_drifted_metadata_is_reported(database, database_url: str) -> None:
    drifted = _copy_of_model_metadata()
    drifted.tables["unit"].append_column(Column("drift_probe", Integer, nullable=True))

    assert _new_diffs(database_url, drifted, _copy_of_model_metadata()) == ["add_column unit.drift_probe"]


def test_removed_model_column_is_reported(database, database_url: str) -> None:
    drifted = _copy_of_model_metadata()
    unit = drifted.tables["unit"]
    unit._columns.remove(unit.c.admin_reason)

    assert _new_diffs(database_url, drifted, _copy_of_model_metadata()) == ["remove_column unit.admin_reason"]


def test_new_index_is_reported(database, database_url: str) -> None:
    drifted = _copy_of_model_metadata()
    Index("ix_unit_admin_state", drifted.tables["unit"].c.admin_state)

    assert _new_diffs(database_url, drifted, _copy_of_model_metadata()) == ["add_index ix_unit_admin_state on unit"]


def test_partial_index_predicate_is_compared(database, database_url: str) -> None:
    drifted = _copy_of_model_metadata()
    unit = drifted.tables["unit"]
    unit.indexes.remove(next(i for i in unit.indexes if i.name == "ix_unit_locked_by"))
    Index("ix_unit_locked_by", unit.c.locked_by)  # the same index, on every row

    assert _new_diffs(database_url, drifted, _copy_of_model_metadata()) == ["modify_partial_index ix_unit_locked_by on unit"]


def test_geometry_type_change_is_reported_on_postgresql(database, database_url: str) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite stores every geometry as a WKB blob: nothing to compare")
    from resource_mgr.geo.types import Geometry

    drifted = _copy_of_model_metadata()
    drifted.tables["site"].c.location.type = Geometry("POLYGON")

    assert _new_diffs(database_url, drifted, _copy_of_model_metadata()) == ["modify_type site.location"]
