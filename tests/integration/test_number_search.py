"""Number search on the database: every pattern form, only choosable numbers, the local network,
paging, one number's checks, quarantine and golden numbers held (runs on SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.config import Settings
from resource_mgr.customers.models import Service
from resource_mgr.errors import Conflict, Invalid, Locked, NoCapacity, NotFound, Quarantined
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Site
from resource_mgr.numbers import services as numbers
from resource_mgr.numbers.models import Number, NumberPool
from resource_mgr.numbers.patterns import parse_pattern
from resource_mgr.occupancy.models import Change, History, Unit
from resource_mgr.states import AdminState, Occupancy
from snapshot_helpers import cached_world

NOW = utcnow().replace(microsecond=0)
GZ_STATES = {  # every one of these is an AABB number
    "87651122": "locked", "87652233": "faulty", "87653344": "reserved", "87654455": "quarantined",
    "87655566": "quarantine_over", "87656677": "held", "87657788": "held_expired", "87658899": "occupied",
}
EXCLUDED = {n for n, s in GZ_STATES.items() if s not in ("quarantine_over", "held_expired")}


def _unit(s, ln_id, number) -> Unit:
    return s.scalar(select(Unit).join(Number, Number.id == Unit.id)
                    .where(Number.local_network_id == ln_id, Number.number == number))


@pytest.fixture
def world(db):
    """Built once per database, put back from a copy of its rows for each later test
    (tests/snapshot_helpers.py: cached_world)."""
    return cached_world(db, "number-search", _build_world)


def _build_world(db):
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        gz = inv.create_local_network(s, code="GZ", name="廣州", area_code="20")
        sz = inv.create_local_network(s, code="SZ", name="深圳", area_code="755")
        site = inv.add_resource(s, Site(name="GZ-TH", local_network_id=gz.id))
        switch = inv.create_from_template(s, template="PSTN-SWITCH-20x128", local_network_id=gz.id, site_id=site.id)
        soft = inv.create_from_template(s, template="NGN-SOFTSWITCH", local_network_id=gz.id, site_id=site.id)
        p1 = numbers.create_pool(s, local_network_id=gz.id, name="GZ-PSTN", switch_id=switch.id, quarantine_days=90)
        numbers.add_segment(s, pool_id=p1.id, first="87650000", last="87659999")
        p2 = numbers.create_pool(s, local_network_id=gz.id, name="GZ-NGN", switch_id=soft.id, quarantine_days=30)
        numbers.add_segment(s, pool_id=p2.id, first="6666000", last="6666999")  # 7 digits
        p3 = numbers.create_pool(s, local_network_id=sz.id, name="SZ-PSTN")
        numbers.add_segment(s, pool_id=p3.id, first="87650000", last="87650999")
        service = Service(local_network_id=gz.id, product="pots", technology="POTS")
        s.add(service)
        s.flush()
        u = {n: _unit(s, gz.id, n) for n in GZ_STATES}
        u["87651122"].lock(Change("planner", at=NOW, cutover_id="C1"))
        u["87652233"].mark_faulty(Change("maint", at=NOW, reason="line noise"))
        u["87653344"].reserve(Change("planner", at=NOW, reason="靓号预留"))
        for n, days_ago, days in (("87654455", 10, 90), ("87655566", 10, 5)):
            old = Service(local_network_id=gz.id, product="pots", technology="POTS")
            s.add(old)
            s.flush()
            then = Change("clerk", at=NOW - timedelta(days=days_ago))
            u[n].occupy(then, service_id=old.id)
            u[n].release(then, service_id=old.id, quarantine_days=days)
        u["87656677"].preoccupy(Change("user:alice", at=NOW), reservation_id="R1", until=NOW + timedelta(hours=2))
        u["87657788"].preoccupy(Change("user:alice", at=NOW - timedelta(hours=3)), reservation_id="R2",
                                until=NOW - timedelta(hours=1))
        u["87658899"].occupy(Change("clerk", at=NOW), service_id=service.id)
        uow.commit()
        return {"gz": gz.id, "sz": sz.id, "switch": switch.id, "soft": soft.id, "p1": p1.id, "p2": p2.id,
                "p3": p3.id, "service": service.id}


def search(db, ln_ids, **kw):
    with db.read_session() as s:
        rows, total = numbers.search_numbers(s, local_network_ids=ln_ids, now=kw.pop("now", NOW), **kw)
        return [r.number for r in rows], total, [(r.grade_level, r.number) for r in rows]


def expected(db, ln_id, test, now=NOW) -> list[str]:
    """Brute force: every number of the local network, its unit's state read in Python."""
    with db.read_session() as s:
        rows = s.execute(select(Number, Unit).join(Unit, Unit.id == Number.id)
                         .where(Number.local_network_id == ln_id)).all()
        ok = [(-n.grade_level, n.number) for n, u in rows
              if u.admin_state == AdminState.IN_SERVICE and not u.is_quarantined(now)
              and u.effective_occupancy(now) == Occupancy.FREE and test(n)]
    return [n for _, n in sorted(ok)]


@pytest.mark.parametrize("pattern", ["*AABB", "*8888", "*ABAB", "*ABBA", "*AAAA", "*AAA", "*88AB", "*A8B8",
                                     "*ABCDE", "8765AABB", "6666ABA", "*ABCD"])
def test_each_pattern_form_gives_exactly_the_choosable_matches(db, world, pattern):
    p = parse_pattern(pattern)
    want = expected(db, world["gz"], lambda n: p.matches(n.number))
    assert want, pattern  # the world holds some of each
    got, total, order = search(db, {world["gz"]}, pattern=pattern, limit=1000)
    assert total == len(want)
    assert got == want[:1000]
    assert order == sorted(order, key=lambda t: (-t[0], t[1]))  # best grade first, then number


def test_unchoosable_numbers_are_left_out_and_expired_ones_are_in(db, world):
    got, total, _ = search(db, {world["gz"]}, pattern="*AABB", limit=1000)
    assert not EXCLUDED & set(got)
    assert {"87655566", "87657788"} <= set(got)  # quarantine over; pre-occupation expired
    # an hour after the live hold ends it is offered; 90 days on the quarantine is over too
    later, _, _ = search(db, {world["gz"]}, pattern="*AABB", limit=1000, now=NOW + timedelta(days=91))
    assert {"87656677", "87654455"} <= set(later)
    assert not {"87651122", "87652233", "87653344", "87658899"} & set(later)


def test_other_local_network_is_left_out(db, world):
    gz, _, _ = search(db, {world["gz"]}, tail="0001")
    assert gz == ["87650001"]
    both, total, _ = search(db, None, tail="0001")
    assert both == ["87650001", "87650001"] and total == 2
    sz, _, _ = search(db, None, local_network="SZ", tail="0001")
    assert sz == ["87650001"]
    with db.read_session() as s:
        rows, _ = numbers.search_numbers(s, local_network_ids=None, local_network="SZ", tail="0001", now=NOW)
        assert rows[0].local_network_id == world["sz"]
    # a local network outside the principal's: nothing, as if it had no numbers
    assert search(db, {world["gz"]}, local_network="SZ", tail="0001")[:2] == ([], 0)
    assert search(db, set(), tail="0001")[:2] == ([], 0)


def test_tail_contains_grade_exchange(db, world):
    gz = world["gz"]
    for kw, test in [
        ({"tail": "99"}, lambda n: n.number.endswith("99")),
        ({"tail": "6666999"}, lambda n: n.number.endswith("6666999")),
        ({"contains": "666"}, lambda n: "666" in n.number),
        ({"contains": "5"}, lambda n: "5" in n.number),
        ({"grade": "AABB"}, lambda n: n.grade == "AABB"),
        ({"grade": "aaaa"}, lambda n: n.grade == "AAAA"),
        ({"grade": "golden"}, lambda n: n.grade_level > 0),
        ({"grade": "normal"}, lambda n: n.grade == "normal"),
        ({"exchange": "6666"}, lambda n: n.exchange_code == "6666"),
        ({"exchange": "666"}, lambda n: n.exchange_code == "666"),
        ({"exchange": world["soft"]}, lambda n: n.pool_id == world["p2"]),
        ({"exchange": world["switch"], "pattern": "*ABAB", "grade": "golden"},
         lambda n: n.pool_id == world["p1"] and parse_pattern("*ABAB").matches(n.number) and n.grade_level > 0),
        ({"tail": "88", "contains": "765"}, lambda n: n.number.endswith("88") and "765" in n.number),
    ]:
        want = expected(db, gz, test)
        got, total, _ = search(db, {gz}, limit=1000, **kw)
        assert (got, total) == (want[:1000], len(want)), kw
    assert search(db, {gz}, exchange="nosuchswitch")[:2] == ([], 0)


def test_paging_and_total(db, world):
    want = expected(db, world["gz"], lambda n: n.number.endswith("7"))
    assert len(want) > 1000
    pages = []
    for offset in range(0, len(want), 400):
        got, total, _ = search(db, {world["gz"]}, tail="7", limit=400, offset=offset)
        assert total == len(want)
        pages += got
    assert pages == want
    assert search(db, {world["gz"]}, tail="7", offset=len(want))[:2] == ([], len(want))
    small, total, _ = search(db, {world["gz"]}, pattern="*8888")
    assert small == ["87658888"] and total == 1  # SZ's numbers are apart


@pytest.mark.parametrize("kw,field", [
    ({"pattern": "*AA?B"}, "pattern"), ({"pattern": "AB*"}, "pattern"), ({"tail": "12a"}, "tail"),
    ({"contains": ""}, None), ({"contains": "x"}, "contains"), ({"grade": "shiny"}, "grade"),
    ({"local_network": "XX"}, "local_network"), ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
    ({"offset": -1}, "offset"),
])
def test_bad_input_names_the_field(db, world, kw, field):
    if field is None:  # an empty filter is no filter
        assert search(db, {world["gz"]}, **kw)[1] > 0
        return
    with pytest.raises(Invalid) as exc:
        search(db, {world["gz"]}, **kw)
    assert exc.value.field == field


def test_find_number_and_check_choosable(db, world):
    gz, sz = world["gz"], world["sz"]
    with db.read_session() as s:
        assert numbers.find_number(s, "87659013", local_network_ids={gz}).local_network_id == gz
        assert numbers.find_number(s, "87650001", local_network_ids=None, local_network_id=sz).local_network_id == sz
        with pytest.raises(NotFound) as exc:
            numbers.find_number(s, "87659013", local_network_ids={sz})  # SZ has only 8765 0000-0999
        assert exc.value.field == "number"
        with pytest.raises(NotFound):
            numbers.find_number(s, "87650001", local_network_ids={gz, sz}, local_network_id="nope")
        with pytest.raises(Invalid) as exc:  # in both of the principal's local networks
            numbers.find_number(s, "87650001", local_network_ids={gz, sz})
        assert exc.value.field == "local_network"
        with pytest.raises(NotFound):
            numbers.find_number(s, "abc", local_network_ids=None)

        def check(n, **kw):
            numbers.check_choosable(numbers.find_number(s, n, local_network_ids={gz}), NOW, **kw)

        for n, error in (("87651122", Locked), ("87652233", NoCapacity), ("87653344", NoCapacity),
                         ("87654455", Quarantined), ("87656677", Conflict), ("87658899", NoCapacity)):
            with pytest.raises(error) as exc:
                check(n)
            assert exc.value.field == "number", n
        check("87656677", reservation_id="R1")  # its own hold passes
        with pytest.raises(Conflict):
            check("87656677", reservation_id="R9")
        check("87655566")  # quarantine over
        check("87657788")  # hold expired
        check("87659013")
        num = numbers.find_number(s, "87659013", local_network_ids={gz})
        assert numbers.exchange_of(s, num) == world["switch"]
        assert [p.id for p in numbers.pools_for_switch(s, world["soft"])] == [world["p2"]]
        assert numbers.pools_for_switch(s, "nope") == []
        assert numbers.quarantine_days_for(s, num) == 90
        assert numbers.is_golden(numbers.find_number(s, "87658888", local_network_ids={gz}))
        assert not numbers.is_golden(num)  # 9013: normal
        assert not numbers.is_golden(numbers.find_number(s, "87659004", local_network_ids={gz}))  # unlucky


def test_golden_held_counts_live_golden_holds_of_the_principal(db, world):
    gz = world["gz"]
    with db.unit_of_work() as uow:
        s = uow.session
        hold = NOW + timedelta(hours=1)
        _unit(s, gz, "87650000").preoccupy(Change("user:bob", at=NOW), reservation_id="R3", until=hold)  # AAAA
        _unit(s, gz, "87651212").preoccupy(Change("user:bob", at=NOW), reservation_id="R3", until=hold)  # ABAB
        _unit(s, gz, "87659001").preoccupy(Change("user:bob", at=NOW), reservation_id="R3", until=hold)  # normal
        _unit(s, gz, "87652121").preoccupy(Change("user:carol", at=NOW), reservation_id="R4", until=hold)
        uow.commit()
    with db.read_session() as s:
        # alice: 87656677 (AABB) held now; her other hold (87657788) has expired
        assert numbers.golden_held(s, "user:alice", NOW) == 1
        assert numbers.golden_held(s, "user:bob", NOW) == 2
        assert numbers.golden_held(s, "user:carol", NOW) == 1
        assert numbers.golden_held(s, "user:nobody", NOW) == 0
        assert numbers.golden_held(s, "user:bob", NOW + timedelta(hours=2)) == 0  # expired
    with db.unit_of_work() as uow:  # carol's order taken over by dave: the latest pre-occupier holds it
        _unit(uow.session, gz, "87652121").preoccupy(Change("user:dave", at=NOW), reservation_id="R4",
                                                     until=NOW + timedelta(hours=3))
        uow.commit()
    with db.read_session() as s:
        assert numbers.golden_held(s, "user:carol", NOW) == 0
        assert numbers.golden_held(s, "user:dave", NOW) == 1


def test_quarantine_of_a_released_number_ends_by_itself_and_by_the_sweep(db, world):
    gz = world["gz"]
    with db.unit_of_work() as uow:
        s = uow.session
        num = numbers.find_number(s, "6666123", local_network_ids={gz})
        days = numbers.quarantine_days_for(s, num)  # the NGN pool's 30
        num.unit.occupy(Change("clerk", at=NOW), service_id=_service(s, gz))
        sid = num.unit.service_id
        num.unit.release(Change("clerk", at=NOW), service_id=sid, quarantine_days=days)
        uow.commit()
    assert days == 30
    assert search(db, {gz}, tail="6666123")[:2] == ([], 0)
    assert search(db, {gz}, tail="6666123", now=NOW + timedelta(days=29, hours=23))[:2] == ([], 0)
    assert search(db, {gz}, tail="6666123", now=NOW + timedelta(days=30))[:2] == (["6666123"], 1)
    with db.unit_of_work() as uow:  # the cleaning: the rows and the history say it is over
        assert numbers.end_quarantines(uow.session, NOW + timedelta(days=30)) == 2  # and 87655566
        uow.commit()
    with db.read_session() as s:
        n = numbers.find_number(s, "6666123", local_network_ids={gz})
        assert n.unit.quarantine_until is None
        assert s.scalar(select(History.principal).where(History.resource_id == n.id,
                                                        History.action == "end_quarantine")) == "system:sweeper"
        assert _unit(s, gz, "87654455").quarantine_until is not None  # still 50-odd days to go


def _service(s, ln_id) -> str:
    service = Service(local_network_id=ln_id, product="ngn_phone", technology="POTS")
    s.add(service)
    s.flush()
    return service.id


def test_pool_quarantine_defaults_to_the_setting(db, world):
    with db.unit_of_work() as uow:
        s = uow.session
        plain = numbers.create_pool(s, local_network_id=world["gz"], name="DEFAULT")
        custom = numbers.create_pool(s, local_network_id=world["gz"], name="CUSTOM",
                                     settings=Settings(number_quarantine_days=365))
        uow.commit()
        assert (plain.quarantine_days, custom.quarantine_days) == (90, 365)
        assert s.get(NumberPool, world["p3"]).quarantine_days == 90


def test_imported_numbers_carry_the_choosable_time_of_their_unit(db):
    """The importer writes number rows in bulk (no trigger on insert): their choosable_from must
    say what their units' states say (the example bundle holds an occupied, a pre-occupied and a
    quarantined number)."""
    from pathlib import Path

    from resource_mgr.bulk.importer import import_bundle

    assert import_bundle(db, str(Path(__file__).parents[1] / "data" / "bulk_example")).written
    now = utcnow()
    with db.read_session() as s:
        rows = s.execute(select(Number, Unit).join(Unit, Unit.id == Number.id)).all()
        states = set()
        for n, u in rows:
            want = (u.admin_state == AdminState.IN_SERVICE and not u.is_quarantined(now)
                    and u.effective_occupancy(now) == Occupancy.FREE)
            assert (n.choosable_from is not None and n.choosable_from <= now) == want, n.number
            states.add((u.occupancy, u.quarantine_until is not None))
        assert len(states) >= 3  # free, taken and quarantined ones were checked
        got, total = numbers.search_numbers(s, local_network_ids=None, tail="0099", now=now)
        assert total == 0  # 87650099 is in quarantine until 2030


def test_migration_backfills_the_search_columns(database_url, tmp_path):
    """Down to the revision before and up again: rnumber, rshape and choosable_from are computed
    for the numbers already there, and the trigger is back."""
    import secrets

    from sqlalchemy import create_engine, text as sql
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from resource_mgr import migrate
    from resource_mgr.db import Database
    from resource_mgr.numbers.patterns import derived

    if database_url.startswith("postgresql"):
        url = make_url(database_url)
        name = f"{url.database}_b{secrets.token_hex(4)}"[:63]
        admin = create_engine(url.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sql(f'CREATE DATABASE "{name}"'))
        target = url.set(database=name).render_as_string(hide_password=False)
        with create_engine(target, poolclass=NullPool).begin() as conn:
            conn.execute(sql("CREATE EXTENSION IF NOT EXISTS postgis"))
    else:
        admin, target = None, f"sqlite:///{tmp_path / 'backfill.sqlite'}"
    db = Database(target)
    try:
        migrate.upgrade(target)
        with db.unit_of_work() as uow:
            s = uow.session
            ln = inv.create_local_network(s, code="GZ", name="廣州", area_code="20")
            pool = numbers.create_pool(s, local_network_id=ln.id, name="P")
            numbers.add_segment(s, pool_id=pool.id, first="87650000", last="87650099")
            held = _unit(s, ln.id, "87650011")
            held.preoccupy(Change("user:a", at=NOW), reservation_id="R1", until=NOW + timedelta(hours=1))
            _unit(s, ln.id, "87650022").mark_faulty(Change("m", at=NOW, reason="noise"))
            uow.commit()
        db.dispose()
        from alembic import command
        command.downgrade(migrate.alembic_config(target), "c3a0d9e1f402")
        migrate.upgrade(target)
        with db.read_session() as s:
            rows = {n.number: n for n in s.scalars(select(Number))}
            assert len(rows) == 100
            assert all((n.rnumber, n.rshape) == derived(n.number) for n in rows.values())
            assert rows["87650022"].choosable_from is None
            assert rows["87650011"].choosable_from == NOW + timedelta(hours=1)
            assert rows["87650033"].choosable_from <= NOW
        with db.unit_of_work() as uow:  # the trigger again
            _unit(uow.session, rows["87650033"].local_network_id, "87650033").reserve(Change("p", at=NOW, reason="x"))
            uow.commit()
        with db.read_session() as s:
            assert s.scalar(select(Number.choosable_from).where(Number.number == "87650033")) is None
    finally:
        db.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@pytest.mark.parametrize("pattern", ["*88AB", "*8A", "*0AB", "*9A9", "*5A5B5", "*6AB"])
def test_a_pattern_read_as_tail_ranges_gives_the_numbers_of_its_shape_range(db, world, pattern):
    """`*88AB` is read as 72 short ranges of rnumber (0188, 0288, …): the same numbers, in the same
    order and with the same total, as the shape range with its digit filter, on every page."""
    from resource_mgr.numbers.search import pattern_ranges, search_page
    assert pattern_ranges(pattern) is not None  # the new path is the one taken
    p = parse_pattern(pattern)
    want = expected(db, world["gz"], lambda n: p.matches(n.number))
    assert want, pattern
    for limit, offset in ((1000, 0), (7, 0), (7, 5), (50, len(want) - 3)):
        with db.read_session() as s:
            kw = dict(local_network_ids={world["gz"]}, pattern=pattern, now=NOW, limit=limit, offset=offset)
            ranged = search_page(s, **kw)
            shaped = search_page(s, tail_ranges=False, **kw)
            assert [r.number for r in ranged.rows] == [r.number for r in shaped.rows] == want[offset:offset + limit]
            assert ranged.total == shaped.total == len(want) and not ranged.capped


def test_patterns_not_of_the_tail_range_form_keep_the_shape_range():
    from resource_mgr.numbers.search import pattern_ranges
    for pattern in ("*AABB", "*8888", "*ABAB", "*A8B8", "*ABCD8", "*8", "*9ABCDEFGHI",  # 9! ranges
                    "8765AABB", "6666ABA"):  # a whole number: its shape is narrow already
        assert pattern_ranges(pattern) is None, pattern
    assert parse_pattern("*88AB").tail_prefixes(1000)[:3] == ["0188", "0288", "0388"]
    assert len(parse_pattern("*88AB").tail_prefixes(1000)) == 72  # B, A: two different digits, neither 8


def test_a_count_limit_bounds_the_total_and_says_so(db, world):
    """Past count_limit the total is the bound (or the page's end) and capped; up to it, exact."""
    from resource_mgr.numbers.search import search_page
    want = expected(db, world["gz"], lambda n: n.number.endswith("7"))
    ranged_want = expected(db, world["gz"], lambda n: parse_pattern("*8A").matches(n.number))
    kw = dict(local_network_ids={world["gz"]}, now=NOW)
    with db.read_session() as s:
        exact = search_page(s, tail="7", limit=10, count_limit=len(want), **kw)
        assert (exact.total, exact.capped) == (len(want), False)
        capped = search_page(s, tail="7", limit=10, count_limit=len(want) - 1, **kw)
        assert (capped.total, capped.capped) == (len(want) - 1, True)
        assert [r.number for r in capped.rows] == want[:10]  # the page itself is whole
        far = search_page(s, tail="7", limit=10, offset=200, count_limit=100, **kw)
        assert (far.total, far.capped) == (210, True) and [r.number for r in far.rows] == want[200:210]
        small = search_page(s, pattern="*8888", count_limit=1, **kw)
        assert (small.total, small.capped) == (1, False)
        for limit in (len(ranged_want), len(ranged_want) - 1):  # tail ranges count in their read
            got = search_page(s, pattern="*8A", limit=10, count_limit=limit, **kw)
            assert (got.total, got.capped) == (limit, limit < len(ranged_want))
        assert search_page(s, tail="7", count=False, count_limit=5, **kw).total == -1
