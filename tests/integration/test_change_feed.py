"""Every write records its change in the same transaction, at a commit-ordered position
(resource_mgr.changes): inventory edits, unit transitions, imports. A rolled-back write leaves
no entry and takes no position."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select, text

from resource_mgr.bulk.importer import import_bundle
from resource_mgr.changes.models import ChangeCounter
from resource_mgr.changes.services import changes_since, head
from resource_mgr.errors import Invalid
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Site
from resource_mgr.occupancy.models import Change, History, Unit
from resource_mgr.security import audit

from tests.bulk_helpers import EXAMPLE


def feed(db, after: int = 0) -> list[History]:
    with db.read_session() as s:
        return changes_since(s, after, 10_000).changes


def counter(db) -> int | None:
    with db.read_session() as s:
        return s.scalar(select(ChangeCounter.last))


@pytest.fixture
def gz(db):
    with db.unit_of_work(principal="user:planner") as uow:
        s = uow.session
        inv.seed_default_templates(s)
        ln = inv.create_local_network(s, code="GZ", name="廣州", area_code="20")
        site = inv.add_resource(s, Site(name="GZ-TH", local_network_id=ln.id))
        uow.commit()
    return ln.id, site.id


def test_each_inventory_edit_is_an_entry_of_its_own_transaction(db, gz):
    ln, site = gz
    start = head(db.read_session())
    edits = []
    with db.unit_of_work(principal="user:planner") as uow:
        box = inv.create_from_template(uow.session, template="CROSS-BOX-600", local_network_id=ln, site_id=site)
        uow.commit()
    edits.append(("create_from_template", box.id))
    with db.unit_of_work(principal="user:planner") as uow:
        cable = inv.create_cable(uow.session, local_network_id=ln, name="GZ-C01", medium="copper", unit_count=10,
                                 z_end_id=box.id)
        uow.commit()
    edits.append(("cable_create", cable.id))
    with db.unit_of_work(principal="user:planner") as uow:
        a, b = inv.units_of(uow.session, cable.id)[:2]
        conn = inv.connect(uow.session, a.id, b.id, "jumper", container_id=box.id)
        uow.commit()
    edits.append(("connect", conn.id))
    with db.unit_of_work(principal="user:planner") as uow:
        rule = inv.set_naming_rule(uow.session, ln, "cross_box", "{site}-X{seq:03d}")
        uow.commit()
    edits.append(("naming_rule_set", str(rule.id)))
    with db.unit_of_work(principal="user:planner") as uow:
        tpl = inv.add_template(uow.session, name="BOX-4", resource_kind="distribution_box",
                               spec={"medium": "copper", "capacity": 4, "ports": [{"port_kind": "box_port", "count": 4}]})
        uow.commit()
    edits.append(("template_create", tpl.id))
    with db.unit_of_work(principal="user:planner") as uow:
        inv.update_template(uow.session, "BOX-4", {"medium": "copper", "capacity": 8,
                                                    "ports": [{"port_kind": "box_port", "count": 8}]})
        uow.commit()
    edits.append(("template_update", tpl.id))

    entries = feed(db, start)
    assert [(h.action, h.resource_id) for h in entries] == edits
    assert all(h.principal == "user:planner" for h in entries)
    positions = [h.position for h in entries]
    assert positions == sorted(positions) and positions[0] > start
    by_action = {h.action: h for h in entries}
    assert by_action["create_from_template"].after["units"] == {"terminal": 900}  # 600 pairs in, 300 out
    assert by_action["cable_create"].after["unit_count"] == 10 and by_action["cable_create"].local_network_id == ln
    assert by_action["connect"].after == {"kind": "jumper", "a_unit_id": a.id, "z_unit_id": b.id,
                                          "container_id": box.id}
    assert by_action["naming_rule_set"].before["pattern"] != "{site}-X{seq:03d}"
    update = by_action["template_update"]
    assert (update.before["version"], update.after["version"]) == (1, 2)
    assert update.after["spec"]["capacity"] == 8


def test_local_network_and_resource_entries(db, gz):
    ln, site = gz
    actions = [(h.action, h.resource_id) for h in feed(db) if h.resource_kind != "device_template"]
    assert actions == [("local_network_create", ln), ("resource_create", site)]


def test_a_rolled_back_edit_leaves_no_entry_and_takes_no_position(db, gz):
    ln, site = gz
    before, last = feed(db), counter(db)
    with db.unit_of_work(principal="user:planner") as uow:
        inv.create_from_template(uow.session, template="DIST-BOX-10", local_network_id=ln, site_id=site)
        inv.set_naming_rule(uow.session, ln, "cross_box", "{site}-X{seq:03d}")
        assert uow.session.scalar(select(History.id).where(History.action == "naming_rule_set"))  # written...
        uow.rollback()  # ...and undone with the edit
    with db.unit_of_work(principal="user:planner") as uow:
        inv.create_cable(uow.session, local_network_id=ln, name="GZ-C09", medium="fibre", unit_count=12)
        # left without commit
    assert [h.id for h in feed(db)] == [h.id for h in before]
    assert counter(db) == last
    with db.unit_of_work(principal="user:planner") as uow:  # the next commit continues without a gap
        inv.create_cable(uow.session, local_network_id=ln, name="GZ-C09", medium="fibre", unit_count=12)
        uow.commit()
    assert [h.position for h in feed(db, last)] == [last + 1]


def test_unit_transitions_get_positions_at_commit(db, gz):
    ln, site = gz
    with db.unit_of_work(principal="user:planner") as uow:
        box = inv.create_from_template(uow.session, template="DIST-BOX-10", local_network_id=ln, site_id=site)
        uow.commit()
    start = counter(db)
    with db.unit_of_work(principal="bss") as uow:
        ports = inv.units_of(uow.session, box.id)[:3]
        change = Change(principal="bss", order_ref="ORD-1")
        for port in ports:
            port.preoccupy(change, reservation_id="R1", until=change.at + timedelta(hours=1))
        uow.session.flush()
        rows = uow.session.scalars(select(History).where(History.order_ref == "ORD-1")).all()
        assert [r.position for r in rows] == [None] * 3  # given only as the transaction commits
        uow.commit()
        # the objects in hand know their positions without a reload
        assert sorted(r.position for r in rows) == [start + 1, start + 2, start + 3]
    assert [(h.action, h.resource_id) for h in feed(db, start)] == [("preoccupy", p.id) for p in ports]


def test_a_savepoint_rolled_back_takes_its_rows_with_it(db, gz):
    start = counter(db)
    with db.unit_of_work(principal="user:x") as uow:
        s = uow.session
        audit.record(s, None, resource_id="kept", resource_kind="test", action="t", local_network_id=None,
                     before=None, after={})
        with s.begin_nested() as nested:
            audit.record(s, None, resource_id="undone", resource_kind="test", action="t", local_network_id=None,
                         before=None, after={})
            nested.rollback()
        with s.begin_nested():
            audit.record(s, None, resource_id="kept2", resource_kind="test", action="t", local_network_id=None,
                         before=None, after={})
        uow.commit()
    assert [(h.resource_id, h.position) for h in feed(db, start)] == [("kept", start + 1), ("kept2", start + 2)]


def test_an_emptied_counter_starts_again_after_the_highest_position(db, gz):
    last = counter(db)
    with db.engine.begin() as conn:
        conn.execute(delete(ChangeCounter))
    with db.unit_of_work(principal="user:x") as uow:
        audit.record(uow.session, None, resource_id="x", resource_kind="test", action="t", local_network_id=None,
                     before=None, after={})
        uow.commit()
    assert [h.position for h in feed(db, last)] == [last + 1]
    assert counter(db) == last + 1


def test_a_write_without_history_takes_no_lock(db, gz):
    ln, _ = gz
    statements: list[str] = []
    from sqlalchemy import event

    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        with db.unit_of_work(principal="user:x") as uow:
            uow.session.execute(text("UPDATE local_network SET name = 'x' WHERE id = :id"), {"id": ln})
            uow.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert not [s for s in statements if "change_counter" in s]


def test_changes_since_pages_and_says_where_to_resume(db, gz):
    everything = feed(db)
    assert len(everything) > 3
    with db.read_session() as s:
        first = changes_since(s, 0, 2)
        assert [h.id for h in first.changes] == [h.id for h in everything[:2]] and first.more
        assert first.last_position == everything[1].position
        rest = changes_since(s, first.last_position, 10_000)
        assert [h.id for h in rest.changes] == [h.id for h in everything[2:]] and not rest.more
        empty = changes_since(s, rest.last_position, 10)
        assert (empty.changes, empty.last_position, empty.more) == ([], rest.last_position, False)
        assert head(s) == rest.last_position
        for position, limit, field in ((-1, 10, "position"), (0, 0, "limit"), (0, 10_001, "limit"),
                                       ("3", 10, "position"), (0, True, "limit")):
            with pytest.raises(Invalid) as err:
                changes_since(s, position, limit)
            assert err.value.field == field


def test_an_import_is_one_entry_naming_what_it_touched(db):
    start = counter(db) or 0
    report = import_bundle(db, str(EXAMPLE))
    assert report.written
    entries = feed(db, start)
    imports = [h for h in entries if h.action == "import"]
    assert len(imports) == 1 and imports[0].position == max(h.position for h in entries)
    entry = imports[0]
    assert entry.resource_kind == "bulk_import" and entry.after["local_networks"] == ["GZ"]
    assert entry.after["local_network_ids"] == [entry.local_network_id]
    assert entry.after["counts"] == dict(report.counts)


def test_a_failed_import_leaves_no_entry(db, tmp_path):
    import shutil

    bundle = tmp_path / "bad"
    shutil.copytree(EXAMPLE, bundle)
    path = bundle / "services.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("active", "dormant", 1), encoding="utf-8")
    report = import_bundle(db, str(bundle))
    assert not report.written
    assert feed(db) == []


def test_rows_inserted_past_the_flush_are_stamped_too(db, gz):
    from sqlalchemy import insert

    from resource_mgr.changes import feed as change_feed

    start = counter(db)
    row = dict(principal="user:x", resource_kind="test", action="t", before={}, after={})
    with db.unit_of_work(principal="user:x") as uow:  # a bulk insert through the session
        uow.session.execute(insert(History), [dict(row, resource_id="bulk1"), dict(row, resource_id="bulk2")])
        uow.commit()
    with db.unit_of_work(principal="user:x") as uow:  # straight on the connection: say so
        uow.session.connection().execute(insert(History).values(**row, resource_id="core"))
        change_feed.mark_written(uow.session)
        uow.commit()
    assert [(h.resource_id, h.position) for h in feed(db, start)] == [
        ("bulk1", start + 1), ("bulk2", start + 2), ("core", start + 3)]
