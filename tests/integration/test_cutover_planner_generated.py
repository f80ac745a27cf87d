"""The copper-to-fibre planner on the generator's S city: its output validates clean with the
cutover's validate(), each row moves a copper service's head port to a free fibre box port
serving its address, and each service is either in a row or listed with a known reason."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from db_helpers import clear_all, create_schema
from resource_mgr.bulk.generator import generate
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.config import Settings
from resource_mgr.db import Database
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.cutovers.planner import plan_copper_to_fibre
from resource_mgr.cutovers.validation import validate
from resource_mgr.inventory.models import Address, Coverage, CrossBox, DistributionBox
from resource_mgr.occupancy.models import Unit

NOW = datetime.now(timezone.utc).replace(microsecond=0)
S = Settings()
REASONS = {"no_fibre_coverage", "no_pon_capacity", "budget", "box_full", "splitter_full", "fibre_full", "not_wired",
           "locked", "no_address", "no_head_port", "unavailable_unit", "cable_full"}


@pytest.fixture(scope="module")
def city(request, database_url, tmp_path_factory):
    """S loaded once. On SQLite into a database file of its own (emptying S row by row would
    cost minutes); on PostgreSQL into the test database, emptied after (TRUNCATE)."""
    tmp = tmp_path_factory.mktemp("gen")
    if database_url.startswith("sqlite"):
        database = Database(f"sqlite:///{tmp / 'city.sqlite'}")
        create_schema(database)
    else:
        database = request.getfixturevalue("database")
        clear_all(database)
    generate("S", 5, tmp / "s", as_of=NOW)
    assert import_bundle(database, str(tmp / "s")).written
    yield database
    if database_url.startswith("sqlite"):
        database.dispose()
    else:
        clear_all(database)


def _cross_box_near_fibre(session) -> str:
    """The cross box carrying the most copper services at addresses a fibre box covers."""
    parent = aliased(Address)
    covered = (select(Coverage.address_id).join(DistributionBox, DistributionBox.id == Coverage.box_id)
               .where(DistributionBox.medium == "fibre"))
    n = func.count(func.distinct(Service.id))
    return session.execute(
        select(Unit.root_id, n).join(ServiceUnit, ServiceUnit.unit_id == Unit.id)
        .join(Service, Service.id == ServiceUnit.service_id).join(Address, Address.id == Service.address_id)
        .join(parent, parent.id == Address.parent_id, isouter=True)
        .where(Unit.root_id.in_(select(CrossBox.id)), Service.technology.in_(("ADSL", "VDSL", "POTS")),
               (Address.id.in_(covered)) | (parent.id.in_(covered)))
        .group_by(Unit.root_id).order_by(n.desc(), Unit.root_id).limit(1)).one()[0]


def test_plan_of_a_cross_box_validates_clean(city):
    with city.read_session() as s:
        cross = _cross_box_near_fibre(s)
        plan = plan_copper_to_fibre(s, scope_id=cross, settings=S, now=NOW, local_network_ids=None)
        assert plan["rows"], plan["counts"]
        v = validate(s, plan["rows"], settings=S, now=NOW, local_network_ids=None)
        assert v.valid, [e.as_json() for e in v.errors[:10]]
        # each row: a copper service's head port → a free box port of a fibre box
        olds = {u.id: u for u in s.scalars(select(Unit).where(Unit.id.in_([r["old"] for r in plan["rows"]])))}
        news = {u.id: u for u in s.scalars(select(Unit).where(Unit.id.in_([r["new"] for r in plan["rows"]])))}
        media = dict(s.execute(select(DistributionBox.id, DistributionBox.medium)
                               .where(DistributionBox.id.in_([u.root_id for u in news.values()]))).all())
        for row, note in zip(plan["rows"], plan["notes"]):
            old = olds[row["old"]]
            assert old.kind in ("dsl_port", "line_port") and old.service_id == note["service_id"]
            assert news[row["new"]].kind == "box_port" and media[news[row["new"]].root_id] == "fibre"
            assert row["keep_number"] is True
        through = set(s.scalars(select(ServiceUnit.service_id).join(Unit, Unit.id == ServiceUnit.unit_id)
                                .where(Unit.root_id == cross)))
    copper = {n["service_id"] for n in plan["notes"]} | {u["service_id"] for u in plan["unmapped"]}
    assert copper == through  # every copper service of the cross box is either mapped or listed
    assert {u["reason_code"] for u in plan["unmapped"]} <= REASONS
    assert all(u["reason"] and u["reason_zh"] for u in plan["unmapped"])
    assert plan["counts"]["rows"] == len(plan["rows"]) and plan["counts"]["unmapped"] == len(plan["unmapped"])
