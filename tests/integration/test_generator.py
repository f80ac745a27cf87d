"""The city network generator: deterministic, and the network it writes is consistent — on the
files themselves, and after the bulk importer has loaded them into the database."""
from __future__ import annotations

import filecmp
import math
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest
import shapely
from click.testing import CliRunner
from sqlalchemy import func, select

from resource_mgr.bulk.format import FILES, BundleReader, split_unit_ref
from resource_mgr.bulk.generator import DROP_LIMIT_M, generate, generate_demo
from resource_mgr.customers.models import Customer, Service, ServiceUnit
from resource_mgr.geo.spatial import length_m, metres_between
from resource_mgr.inventory.models import Cable, CableSpan, Connection, Coverage, Device, DistributionBox, \
    DuctSegment, Address
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy.models import SharedHold, Unit

SHARED_DEFAULT = {"pon_port", "splitter_in"}  # shared by their template (PON capacity, splitter ratio)


NOW = datetime.now(timezone.utc).replace(microsecond=0)  # pre-occupations live while we test


@pytest.fixture(scope="module")
def xs(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("gen") / "xs"
    return out, generate("XS", 11, out, as_of=NOW)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("gen") / "s"
    return out, generate("S", 5, out)


def rows(bundle: Path, name: str) -> list[dict[str, str]]:
    with BundleReader(bundle) as r:
        out = [row for _, row in r.rows(name)]
        assert not r.problems, r.problems
    return out


def same_bytes(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


# -- determinism -------------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, xs):
    first, _ = xs
    generate("XS", 11, tmp_path / "again", as_of=NOW)
    generate("XS", 12, tmp_path / "other", as_of=NOW)
    assert same_bytes(first, tmp_path / "again")
    assert not same_bytes(first, tmp_path / "other")
    assert (first / "services.csv").read_bytes() != (tmp_path / "other" / "services.csv").read_bytes()


def test_every_declared_file_is_written_and_sizes_are_what_they_say(small):
    bundle, stats = small
    for spec in FILES:
        assert (bundle / spec.filename).exists()
    assert 8_000 <= stats.services <= 13_000
    assert stats.services == len(rows(bundle, "services"))
    with pytest.raises(ValueError):
        generate("XXL", 1, bundle.parent / "nope")


# -- invariants on the files ------------------------------------------------------------------------

def test_realistic_mix(small):
    bundle, stats = small
    services = rows(bundle, "services")
    products = Counter(s["product"] for s in services)
    for product in ("ftth_broadband", "iptv", "voip", "pots", "adsl_broadband", "lan_broadband"):
        assert products[product] > 0, product
    assert products["ftth_broadband"] > products["pots"] > 0
    grades = Counter(c["grade"] for c in rows(bundle, "customers"))
    assert grades["vip"] > 0 and grades["major_account"] > 0 and grades["normal"] > 10 * grades["vip"]
    # every phone service has a local number of 8 digits, from a 10,000 block per exchange code
    numbers = [s["number"] for s in services if s["product"] in ("pots", "voip")]
    assert numbers and all(len(n) == 8 and n.isdigit() for n in numbers)
    assert len(set(numbers)) == len(numbers)
    segments = rows(bundle, "number_segments")
    assert all(int(s["last"]) - int(s["first"]) + 1 == 10_000 and s["first"].endswith("0000") for s in segments)
    # most PON trees 40–80 % full, a few nearly full, and some areas without fibre at all
    fill = stats.pon_fill
    assert sum(fill[4:8]) > 0.6 * sum(fill)
    assert sum(fill[9:]) > 0
    assert stats.preoccupied_orders > 0 and stats.faulty_units > 0
    assert any(r["admin_state"] == "faulty" for r in rows(bundle, "units"))
    assert any(n["admin_state"] == "reserved" for n in rows(bundle, "numbers"))
    assert any(n["quarantine_until"] for n in rows(bundle, "numbers"))


def test_iptv_and_voip_ride_on_the_ftth_line_of_the_same_home(small):
    bundle, _ = small
    services = {s["key"]: s for s in rows(bundle, "services")}
    with_path = {p["service"] for p in rows(bundle, "service_paths")}
    riders = [s for s in services.values() if s["product"] in ("iptv", "voip")]
    assert riders
    for rider in riders:
        line = services[rider["bearer"]]
        assert line["product"] == "ftth_broadband" and not line["bearer"]
        assert (line["customer"], line["address"]) == (rider["customer"], rider["address"])
        assert rider["key"] not in with_path and line["key"] in with_path
    assert not any(s["bearer"] for s in services.values() if s["product"] not in ("iptv", "voip"))


def _capacities(bundle: Path) -> dict[str, int]:
    """Unit ref → capacity, for units whose capacity is not 1."""
    cap: dict[str, int] = {}
    tpl = {t["name"]: t["spec"] for t in rows(bundle, "templates")}
    import json
    pon_cap = {}
    for d in rows(bundle, "devices"):
        spec = json.loads(tpl[d["template"]]) if d["template"] else {}
        if d["device_type"] == "olt":
            pon_cap[d["key"]] = spec["cards"][0]["ports"][0]["capacity"]
        if d["device_type"] == "splitter":
            pon_cap[d["key"]] = int(d["split_ratio"])
    for u in rows(bundle, "units"):
        if u["capacity"]:
            cap[u["unit"]] = int(u["capacity"])
    return cap, pon_cap


def test_capacity_never_exceeded_in_the_files(small):
    bundle, _ = small
    cap, root_cap = _capacities(bundle)
    load: Counter[str] = Counter()
    for p in rows(bundle, "service_paths"):
        load[p["unit"]] += 1
    by_res: dict[str, set[str]] = defaultdict(set)
    for p in rows(bundle, "preoccupations"):
        by_res[p["unit"]].add(p["reservation"])
    for unit, holders in by_res.items():
        load[unit] += len(holders)
    checked = 0
    for unit, n in load.items():
        root, kind, _ = split_unit_ref(unit)
        limit = cap.get(unit) or (root_cap[root] if kind in SHARED_DEFAULT else 1)
        assert n <= limit, f"{unit}: {n} > {limit}"
        checked += n > 1
    assert checked > 100  # shared units really are shared


def test_splitter_outputs_within_ratio(small):
    bundle, _ = small
    ratio = {d["key"]: int(d["split_ratio"]) for d in rows(bundle, "devices") if d["device_type"] == "splitter"}
    stages = Counter(d["split_stage"] for d in rows(bundle, "devices") if d["device_type"] == "splitter")
    assert stages["1"] and stages["2"] > stages["1"]
    outs: dict[str, set[str]] = defaultdict(set)
    for c in rows(bundle, "connections"):
        for end in (c["a"], c["z"]):
            root, kind, name = split_unit_ref(end)
            if kind == "splitter_out":
                outs[root].add(name)
                assert 1 <= int(name.removeprefix("OUT")) <= ratio[root], end
    assert all(len(o) <= ratio[k] for k, o in outs.items())
    # total split 1:64 along every FTTH path
    for p in _paths(bundle).values():
        if p and "#pon_port#" in p[-1]:
            splitters = {split_unit_ref(u)[0] for u in p if "#splitter_" in u}
            assert math.prod(ratio[s] for s in splitters) == 64


def _paths(bundle: Path) -> dict[str, list[str]]:
    paths: dict[str, list[str]] = defaultdict(list)
    for p in rows(bundle, "service_paths"):
        paths[p["service"]].append(p["unit"])
    return paths


def continuous(path: list[str], linked: set[frozenset[str]]) -> str | None:
    """None if every hop follows a connection or goes through one splitter (out → in)."""
    for a, b in zip(path, path[1:]):
        if frozenset((a, b)) in linked:
            continue
        ra, ka, _ = split_unit_ref(a)
        rb, kb, _ = split_unit_ref(b)
        if ra == rb and (ka, kb) == ("splitter_out", "splitter_in"):
            continue
        return f"{a} → {b}"
    return None


def test_every_service_path_is_continuous_in_the_files(small):
    bundle, _ = small
    linked = {frozenset((c["a"], c["z"])) for c in rows(bundle, "connections")}
    paths = _paths(bundle)
    ends = Counter()
    for key, path in paths.items():
        assert continuous(path, linked) is None, key
        ends[(split_unit_ref(path[0])[1], split_unit_ref(path[-1])[1])] += 1
    # customer side first, exchange side last
    assert set(ends) <= {("box_port", "pon_port"), ("box_port", "line_port"), ("box_port", "dsl_port"),
                         ("eth_port", "eth_port")}
    pending: dict[str, list[str]] = defaultdict(list)
    for p in rows(bundle, "preoccupations"):
        pending[p["reservation"]].append(p["unit"])
    for res, path in pending.items():
        units = [u for u in path if "#number#" not in u]
        assert continuous(units, linked) is None, res


def test_the_checks_catch_a_broken_network(small):
    bundle, _ = small
    conns = rows(bundle, "connections")
    linked = {frozenset((c["a"], c["z"])) for c in conns}
    path = next(p for p in _paths(bundle).values() if len(p) > 5)
    assert continuous(path, linked) is None
    assert continuous(path, linked - {frozenset(path[3:5])}) is not None  # a cut splice
    assert continuous(list(reversed(path)), linked) is not None  # splitter in → out is not a way
    assert continuous([path[0], path[-1]], linked) is not None


def test_coverage_within_drop_limit_and_cables_follow_their_routes(small):
    bundle, _ = small
    points = {a["key"]: shapely.from_wkt(a["location"]) for a in rows(bundle, "addresses")}
    boxes = {b["key"]: shapely.from_wkt(b["location"]) for b in rows(bundle, "distribution_boxes")}
    cov = rows(bundle, "coverage")
    assert cov
    for c in cov:
        d = metres_between(boxes[c["box"]], points[c["address"]])
        assert d <= DROP_LIMIT_M and abs(d - float(c["distance_m"])) < 1.0
    segs = {s["key"]: float(s["length_m"]) for s in rows(bundle, "duct_segments")}
    spans: dict[str, float] = defaultdict(float)
    for s in rows(bundle, "cable_spans"):
        spans[s["cable"]] += segs[s["duct_segment"]]
    for c in rows(bundle, "cables"):
        route = length_m(shapely.from_wkt(c["route"]))
        assert route > 0
        assert abs(float(c["length_m"]) / route - 1) <= 0.05, c["key"]
        if c["key"] in spans:  # the ducted part, plus short lead-ins at both ends
            assert spans[c["key"]] <= route + 1 <= spans[c["key"]] + 500, c["key"]
    # every building within ~3 km of its exchange (the OLT coverage radius)
    sites = {s["key"]: shapely.from_wkt(s["location"]) for s in rows(bundle, "sites") if s["site_type"] == "exchange"}
    for a in rows(bundle, "addresses"):
        ex = sites[a["key"].split("-")[0] + "-SITE"]
        assert metres_between(ex, points[a["key"]]) <= 3000


def test_addresses_have_search_keys_and_the_area_tree_is_complete(small):
    bundle, _ = small
    areas = {a["key"]: a for a in rows(bundle, "areas")}
    levels = Counter(a["level"] for a in areas.values())
    assert levels["local_network"] == 1 and levels["district"] >= 1 and levels["street"] >= 1
    for a in areas.values():
        assert not a["parent"] or a["parent"] in areas
    addrs = rows(bundle, "addresses")
    rooms = [a for a in addrs if a["room"]]
    assert rooms and all(a["search_key"] and " " not in a["search_key"] for a in addrs)
    assert all(a["road"] in a["name"] and a["room"] in a["name"] for a in rooms)
    assert len({a["name"] for a in addrs}) == len(addrs)


# -- after import ---------------------------------------------------------------------------------

def test_imported_network_keeps_every_invariant(db, xs):
    from resource_mgr.bulk.importer import import_bundle

    bundle, stats = xs
    report = import_bundle(db, str(bundle))
    assert report.ok, [str(p) for p in report.problems[:20]]
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Service)) == stats.services
        # shared units: used = active services through them, used + holds ≤ capacity
        through = dict(s.execute(select(ServiceUnit.unit_id, func.count()).group_by(ServiceUnit.unit_id)).all())
        holds = dict(s.execute(select(SharedHold.unit_id, func.count()).group_by(SharedHold.unit_id)).all())
        shared = s.execute(select(Unit.id, Unit.capacity, Unit.used).where(Unit.capacity > 1)).all()
        assert sum(1 for _, _, used in shared if used > 1) > 10
        for uid, capacity, used in shared:
            assert used == through.get(uid, 0)
            assert used + holds.get(uid, 0) <= capacity
        # exclusive units: held by at most one service, and that service's path holds them
        exclusive = {uid: (occ, svc) for uid, occ, svc in s.execute(
            select(Unit.id, Unit.occupancy, Unit.service_id).where(Unit.capacity == 1, Unit.id.in_(
                select(ServiceUnit.unit_id))))}
        assert exclusive
        for uid, (occ, svc) in exclusive.items():
            assert through[uid] == 1
            assert occ == "occupied" and svc is not None
        assert s.scalar(select(func.count()).select_from(Unit).where(
            Unit.capacity == 1, Unit.occupancy == "preoccupied", Unit.preoccupied_until > NOW)) > 0
        assert s.scalar(select(func.count()).select_from(SharedHold).where(SharedHold.expires_at > NOW)) > 0
        assert s.scalar(select(func.count()).select_from(Unit).where(Unit.admin_state == "faulty")) > 0
        # splitter outputs never beyond the ratio
        for dev_id, ratio in s.execute(select(Device.id, Device.split_ratio).where(Device.device_type == "splitter")):
            outs = s.scalar(select(func.count()).select_from(Unit).where(
                Unit.root_id == dev_id, Unit.kind == "splitter_out"))
            assert outs == ratio
        # continuous paths over the imported connections
        linked = {frozenset(p) for p in s.execute(select(Connection.a_unit_id, Connection.z_unit_id))}
        units = {u.id: u for u in s.scalars(select(Unit).where(Unit.id.in_(select(ServiceUnit.unit_id))))}
        paths: dict[str, list[str]] = defaultdict(list)
        for sid, uid in s.execute(select(ServiceUnit.service_id, ServiceUnit.unit_id).order_by(
                ServiceUnit.service_id, ServiceUnit.seq)):
            paths[sid].append(uid)
        assert paths
        for sid, path in paths.items():
            for a, b in zip(path, path[1:]):
                ua, ub = units[a], units[b]
                assert frozenset((a, b)) in linked or (
                    ua.root_id == ub.root_id and (ua.kind, ub.kind) == ("splitter_out", "splitter_in")), sid
        # and the format engineer's validator (continuity, heads, media, ledger) finds nothing
        from resource_mgr.bulk.paths import validate_paths
        findings = validate_paths(s, limit=20)
        assert findings == [], [f.message for f in findings]
        # numbers of phone services are occupied by them
        phone = s.execute(select(Service.id, Service.number).where(Service.number.is_not(None))).all()
        assert phone
        occupied = dict(s.execute(select(Number.number, Unit.service_id).join(Unit, Unit.id == Number.id).where(
            Number.number.in_([n for _, n in phone]))).all())
        assert all(occupied[n] == sid for sid, n in phone)
        # coverage within the drop limit, cable length along the route
        box_t, addr_t = DistributionBox.__table__, Address.__table__
        for box, addr in s.execute(select(box_t.c.location, addr_t.c.location)
                                   .join(Coverage, Coverage.box_id == box_t.c.id)
                                   .join(addr_t, addr_t.c.id == Coverage.address_id)):
            assert metres_between(box, addr) <= DROP_LIMIT_M
        for route, length in s.execute(select(Cable.route, Cable.length_m)):
            assert abs(length / length_m(route) - 1) <= 0.05
        assert s.scalar(select(func.count()).select_from(CableSpan)) > 0
        assert s.scalar(select(func.count()).select_from(DuctSegment)) > 0
        assert s.scalar(select(func.count()).select_from(Customer).where(Customer.grade != "normal")) > 0


def test_demo_and_cli(tmp_path):
    from interfaces.cli.bulk import generate_cmd

    stats = generate_demo(tmp_path / "demo")
    assert stats.services > 1000 and (tmp_path / "demo" / "manifest.json").exists()
    result = CliRunner().invoke(generate_cmd, ["--size", "XS", "--seed", "11", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert '"services"' in result.output
    bad = CliRunner().invoke(generate_cmd, ["--size", "XS", "--as-of", "yesterday", str(tmp_path / "x")])
    assert bad.exit_code != 0


def test_addresses_form_a_tree_and_coverage_is_kept_at_building_or_unit(small):
    """Rooms hang under their unit, units under their building; coverage is written where
    operators keep it (the unit, an office's building), never per room, and every service's box
    covers an address above its room."""
    bundle, _ = small
    addrs = {a["key"]: a for a in rows(bundle, "addresses")}
    for a in addrs.values():
        parent = addrs.get(a["parent"]) if a["parent"] else None
        if a["room"]:
            assert parent and not parent["room"] and parent["building"] == a["building"], a["key"]
            assert parent["unit"] == a["unit"]
        elif a["unit"]:
            assert parent and parent["building"] == a["building"] and not parent["unit"]
        else:
            assert parent is None  # buildings are the top addresses
    cov = rows(bundle, "coverage")
    covered: dict[str, set[str]] = defaultdict(set)
    for c in cov:
        assert not addrs[c["address"]]["room"], c
        covered[c["address"]].add(c["box"])
    rooms = sum(1 for a in addrs.values() if a["room"])
    assert len(cov) < rooms / 5  # was ~1.7 rows per room

    def chain(key: str):
        while key:
            yield key
            key = addrs[key]["parent"]

    address_of = {s["key"]: s["address"] for s in rows(bundle, "services")}
    checked = 0
    for service, path in _paths(bundle).items():
        box, kind, _ = split_unit_ref(path[0])
        if kind != "box_port":
            continue
        assert any(box in covered[k] for k in chain(address_of[service])), service
        checked += 1
    assert checked > 1000


def test_imported_rooms_are_served_by_the_box_of_their_service(db, xs):
    """After import, serving_boxes (coverage inherited down the tree) offers every FTTH and
    copper service's own box for its room."""
    from resource_mgr.addresses import serving_boxes
    from resource_mgr.bulk.importer import import_bundle
    from resource_mgr.config import Settings

    report = import_bundle(db, str(xs[0]))
    assert report.ok, [str(p) for p in report.problems[:20]]
    with db.read_session() as s:
        first = s.execute(
            select(Service.id, Service.address_id, Unit.root_id, DistributionBox.medium)
            .join(ServiceUnit, ServiceUnit.service_id == Service.id).join(Unit, Unit.id == ServiceUnit.unit_id)
            .join(DistributionBox, DistributionBox.id == Unit.root_id).where(Unit.kind == "box_port")).all()
        assert len(first) > 500
        for sid, address_id, box_id, medium in first[:400]:
            offered = serving_boxes(s, address_id, medium=medium, settings=Settings(), limit=50)
            assert box_id in {b.box_id for b in offered}, sid
            assert all(b.via == "coverage" for b in offered)
