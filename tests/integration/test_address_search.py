"""The address search ranks the intended address first for every way of typing it (both backends),
keeps to the scope, and its index (pg_trgm / FTS5) stays in step with the address rows."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, delete, text, update
from sqlalchemy.pool import NullPool

from resource_mgr import migrate
from resource_mgr.addresses import search_addresses
from resource_mgr.addresses.normalise import normalise
from resource_mgr.addresses.search import AddressHit
from resource_mgr.db import Database
from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import Address, Resource
from tests.address_world import at, build
from tests.integration.test_migrations import empty_url  # noqa: F401 - a fixture


@pytest.fixture
def w(db):
    world = build(db)
    with db.unit_of_work() as uow:  # a near miss for the house-number bonus
        uow.session.add(Address(name="广东省广州市越秀区中山路88号", local_network_id=world.gz, district="越秀区",
                                road="中山路", number="88", search_key=normalise("广东省广州市越秀区中山路88号"),
                                location=at(3100)))
        uow.commit()
    return world


def search(db, q, networks=None, **kw) -> tuple[list[AddressHit], int]:
    with db.read_session() as s:
        hits, total = search_addresses(s, q, local_network_ids=networks, **kw)
        for h in hits:
            _ = h.address.name, h.address.local_network.code  # loaded while the session is open
        return hits, total


def ids(hits) -> list[str]:
    return [h.address.id for h in hits]


@pytest.mark.parametrize("q, first, second", [
    # building, unit and room words; 幢 for 栋, 房 for 室
    ("丽日花园1幢2单元201房", "r201", "r1201"),
    # traditional characters (OpenCC t2s)
    ("天河路88號麗日花園1棟2單元201室", "r201", "r1201"),
    # full-width digits
    ("天河路８８号丽日花园１栋２单元２０１", "r201", "r1201"),
    # spaces, a bare room number
    ("丽日 花园 1栋 2单元 201", "r201", "r1201"),
    # 1-2-301 means building 1, unit 2, room 301
    ("1-2-201", "r201", "r1201"),
    ("1-1-101", "r101", None),
    # missing city and district; with them
    ("天河路88号丽日花园1栋1单元102", "r102", None),
    ("广州市天河区天河路88号丽日花园1栋1单元102室", "r102", None),
    # a building asked for: the building before its units and rooms
    ("丽日花园1栋", "b1", "u1"),
    ("天河路88号丽日花园2栋", "b2", "b2r"),
    # a unit asked for: the unit before its rooms
    ("丽日花园1栋2单元", "u2", "r201"),
    # house numbers: 8号 is not 88号
    ("中山路8号", "street", None),
    # a typo (花国): nothing contains it, the fuzzy stage still ranks the room first
    ("丽日花国1栋2单元201", "r201", "r1201"),
])
def test_ranking_per_variant(db, w, q, first, second):
    hits, total = search(db, q, networks={w.gz})
    assert hits, q
    assert hits[0].address.id == getattr(w, first), (q, [h.address.name for h in hits])
    if second:
        assert hits[1].address.id == getattr(w, second), (q, [h.address.name for h in hits])
    assert total >= len(hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_house_number_bonus(db, w):
    hits, _ = search(db, "中山路88号", networks={w.gz})
    assert hits[0].address.name.endswith("中山路88号")
    hits, total = search(db, "中山路8号", networks={w.gz})
    # both contain 8号; the exact number comes first
    assert total == 2 and hits[0].address.id == w.street


def test_partial_text_finds_every_address_containing_it(db, w):
    hits, total = search(db, "丽日花园", networks=None, limit=50)
    assert total == 10 == len(hits)  # 9 in GZ (buildings, units, rooms) and FS's building
    # the buildings (shortest keys) first
    assert {h.address.id for h in hits[:3]} == {w.b1, w.b2, w.fs_b1}


def test_paging_and_total(db, w):
    all_hits, total = search(db, "天河路88号", networks={w.gz}, limit=50)
    assert total == 9 == len(all_hits)
    page, total2 = search(db, "天河路88号", networks={w.gz}, limit=3, offset=3)
    assert total2 == 9 and ids(page) == ids(all_hits)[3:6]


def test_scope_and_local_network(db, w):
    hits, total = search(db, "丽日花园1栋", networks={w.fs})
    assert ids(hits) == [w.fs_b1] and total == 1
    hits, _ = search(db, "丽日花园1栋", networks=None, local_network="FS")
    assert ids(hits) == [w.fs_b1]
    hits, total = search(db, "丽日花园1栋", networks={w.gz}, local_network="FS")
    assert hits == [] and total == 0
    with pytest.raises(Invalid) as err:
        search(db, "丽日花园", networks=None, local_network="XX")
    assert err.value.field == "local_network"
    # fuzzy stage keeps to the scope too
    hits, _ = search(db, "广州丽日花园1栋", networks={w.fs})
    assert ids(hits) == [w.fs_b1]
    hits, _ = search(db, "广州丽日花园1栋", networks=None)
    assert hits[0].address.id == w.b1  # 广州 tells the two 丽日花园 apart


def test_unknown_short_and_empty(db, w):
    assert search(db, "火星路1号", networks=None) == ([], 0)
    assert search(db, "丽日", networks=None) == ([], 0)  # under three characters: no index answers it
    for q in ("", "   "):
        with pytest.raises(Invalid) as err:
            search(db, q, networks=None)
        assert err.value.field == "q"


def test_the_index_follows_inserts_updates_and_deletes(db, w):
    with db.unit_of_work() as uow:
        a = Address(name="广东省广州市天河区体育西路191号中石化大厦A座", local_network_id=w.gz, road="体育西路",
                    number="191", building="A座", search_key=normalise("广东省广州市天河区体育西路191号中石化大厦A座"))
        uow.session.add(a)
        uow.commit()
        new_id = a.id
    hits, _ = search(db, "中石化大厦Ａ座", networks={w.gz})
    assert ids(hits) == [new_id]
    with db.unit_of_work() as uow:
        uow.session.execute(update(Address).where(Address.id == new_id).values(
            search_key=normalise("广东省广州市天河区体育西路191号中信广场A座")))
        uow.commit()
    assert search(db, "中石化大厦", networks={w.gz}) == ([], 0)
    assert ids(search(db, "中信广场", networks={w.gz})[0]) == [new_id]
    with db.unit_of_work() as uow:
        uow.session.execute(delete(Resource).where(Resource.id == new_id))
        uow.commit()
    assert search(db, "中信广场", networks={w.gz}) == ([], 0)
    if db.dialect == "sqlite":
        with db.read_session() as s:
            assert s.execute(text("SELECT count(*) FROM address_fts")).scalar() == \
                s.execute(text("SELECT count(*) FROM address")).scalar()


def test_the_migration_indexes_existing_addresses(empty_url):  # noqa: F811
    """Addresses written before the search revision get the new key and are found."""
    migrate.upgrade(empty_url, "b8e1a0c2d304")
    engine = create_engine(migrate.normalise_url(empty_url), poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO local_network (id, code, name, province, area_code, created_at) "
                          "VALUES ('LN1', 'GZ', '广州', '', '20', '2026-01-01T00:00:00+00:00')"))
        conn.execute(text("INSERT INTO resource (id, kind, name, local_network_id, scope_id, status, created_at) "
                          "VALUES ('A1', 'address', '广东省广州市天河路88號麗日花園1棟', 'LN1', 'LN1', 'in_service', "
                          "'2026-01-01T00:00:00+00:00')"))
        conn.execute(text("INSERT INTO address (id, district, road, number, building, unit, floor, room, search_key) "
                          "VALUES ('A1', '', '天河路', '88', '1棟', '', '', '', '天河路88號麗日花園1棟')"))
    engine.dispose()
    migrate.upgrade(empty_url)
    database = Database(migrate.normalise_url(empty_url))
    try:
        with database.read_session() as s:
            assert s.get(Address, "A1").search_key == "广东省广州市天河路88号丽日花园1栋"
            hits, total = search_addresses(s, "丽日花园1栋", local_network_ids=None)
            assert ids(hits) == ["A1"] and total == 1
    finally:
        database.dispose()


def test_bundle_parent_and_search_key_round_trip(db, tmp_path):
    """addresses.csv `parent` is the tree; the importer normalises the key; export writes both."""
    import csv

    from sqlalchemy import select

    from resource_mgr.bulk.exporter import export_bundle
    from resource_mgr.bulk.importer import import_bundle
    from tests.bulk_helpers import EXAMPLE

    assert import_bundle(db, str(EXAMPLE)).ok
    with db.read_session() as s:
        unit = s.scalar(select(Address).where(Address.name == "天河路1號A棟1單元"))
        building = s.scalar(select(Address).where(Address.name == "天河路1號A棟"))
        assert unit.parent_id == building.id and unit.level == "unit" and building.parent_id is None
        assert building.search_key == "天河路1号a栋"  # the file's key, normalised
        assert unit.search_key == "天河路1号a栋1单元"  # none in the file: made from the name
        hits, _ = search_addresses(s, "天河路1号A座1单元", local_network_ids=None)
        assert hits[0].address.id == unit.id
    # the importer fills the SQLite search table in bulk and puts its trigger back
    with db.unit_of_work() as uow:
        ln = uow.session.scalar(select(Address.local_network_id).limit(1))
        uow.session.add(Address(name="天河路5號", local_network_id=ln, search_key=normalise("天河路5號")))
        uow.commit()
    with db.read_session() as s:
        assert [h.address.name for h in search_addresses(s, "天河路5号", local_network_ids=None)[0]] == ["天河路5號"]
        if db.dialect == "sqlite":
            assert s.execute(text("SELECT count(*) FROM address_fts")).scalar() == \
                s.execute(text("SELECT count(*) FROM address")).scalar() == 4
    export_bundle(db, tmp_path / "out")
    with (tmp_path / "out" / "addresses.csv").open(encoding="utf-8", newline="") as fh:
        exported = {r["name"]: r for r in csv.DictReader(fh)}
    assert exported["天河路1號A棟1單元"]["parent"] == exported["天河路1號A棟"]["key"]
    assert exported["天河路1號A棟"]["parent"] == ""
    # a second import into the non-empty table indexes its new addresses too
    assert import_bundle(db, str(EXAMPLE)).problem_count > 0  # the same keys again: refused, rolled back
    with db.read_session() as s:
        assert search_addresses(s, "天河路1号a栋1单元", local_network_ids=None)[1] == 1


def test_a_room_number_still_being_typed_finds_the_rooms_beginning_with_it(db, w):
    """丽日花园1栋2单元1 (no 室: the clerk may still be typing 1201): every address holding all the
    terms, the rooms beginning with 1 first — the exact stage, not the typo fallback."""
    hits, total = search(db, "丽日花园1栋2单元1", networks={w.gz})
    assert total == 3 and {h.address.id for h in hits} == {w.u2, w.r201, w.r1201}  # each contains every term
    assert hits[0].address.id == w.r1201
    hits, total = search(db, "丽日花园1栋2单元12", networks={w.gz})
    assert ids(hits) == [w.r1201] and total == 1
    # typed in full it is that room first, a room containing it after (2单元201 is in 2单元1201? no: 201 is)
    hits, _ = search(db, "丽日花园1栋2单元201", networks={w.gz})
    assert ids(hits)[:2] == [w.r201, w.r1201]


def test_the_region_of_a_query_must_match_too(db, w):
    """The index is asked for 天河路 without 广州市天河区, but the exact stage still requires the
    whole text: another district's name matches nothing exactly."""
    from sqlalchemy import func, select

    from resource_mgr.addresses.normalise import parse_query
    from resource_mgr.addresses.search import _contains_all

    def exact(q: str) -> int:
        with db.read_session() as s:
            where = _contains_all(parse_query(q), db.dialect == "postgresql")
            return s.scalar(select(func.count()).select_from(Address).where(*where))

    assert exact("广州市天河区天河路88号丽日花园1栋") == 7  # the building, its 2 units and 4 rooms
    assert exact("广州市越秀区天河路88号丽日花园1栋") == 0
    assert exact("佛山市禅城区汾江路88号丽日花园") == 1
