"""GET /api/v1/numbers over a real HTTP server: filters, only choosable numbers, paging with
X-Total-Count, scope by local network, and every bad input answered 422 naming its field."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Site
from resource_mgr.numbers import services as numbers
from resource_mgr.numbers.models import Number
from resource_mgr.occupancy.models import Change, Unit

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def live_server(shared_live_server):
    """Every test here only reads: one server and one world (3000 numbers) for the module."""
    return shared_live_server


@pytest.fixture(scope="module")
def pools(live_server):
    db, now = live_server.db, utcnow()
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        gz, fs = live_server.networks["GZ"], live_server.networks["FS"]
        site = inv.add_resource(s, Site(name="GZ局", local_network_id=gz))
        switch = inv.create_from_template(s, template="PSTN-SWITCH-20x128", local_network_id=gz, site_id=site.id)
        p = numbers.create_pool(s, local_network_id=gz, name="GZ-PSTN", switch_id=switch.id)
        numbers.add_segment(s, pool_id=p.id, first="87650000", last="87651999")
        f = numbers.create_pool(s, local_network_id=fs, name="FS-PSTN")
        numbers.add_segment(s, pool_id=f.id, first="87650000", last="87650999")

        def unit(number: str) -> Unit:
            return s.scalar(select(Unit).join(Number, Number.id == Unit.id)
                            .where(Number.local_network_id == gz, Number.number == number))

        unit("87651122").preoccupy(Change("user:alice", at=now), reservation_id="R1", until=now + timedelta(hours=1))
        unit("87650011").preoccupy(Change("user:alice", at=now - timedelta(hours=2)), reservation_id="R2",
                                   until=now - timedelta(hours=1))  # expired: offered again
        unit("87651133").mark_faulty(Change("maint", at=now, reason="noise"))
        unit("87650022").reserve(Change("planner", at=now, reason="靓号预留"))
        uow.commit()
        return {"switch": switch.id, "pool": p.id, "fs_pool": f.id}


def test_search_by_pattern_tail_contains_grade_exchange(live_server, pools):
    r = live_server.get("/numbers", token="sales_gz", params={"pattern": "*AABB"})
    assert r.status_code == 200, r.text
    got = [n["number"] for n in r.json()]
    assert "87651122" not in got and "87651133" not in got and "87650022" not in got  # held, faulty, reserved
    assert "87650011" in got  # its hold expired
    assert int(r.headers["X-Total-Count"]) == len(got) == 2 * 9 - 3  # 8765 00yy, 11yy: y≠the first
    first = r.json()[0]
    assert set(first) >= {"number", "grade", "exchange", "local_network", "pool", "grade_level", "switch_id"}
    assert first["local_network"] == "GZ" and first["exchange"] == "8765" and first["pool"] == pools["pool"]
    assert first["switch_id"] == pools["switch"] and first["grade"] == "AABB"
    levels = [(-n["grade_level"], n["number"]) for n in r.json()]
    assert levels == sorted(levels)

    assert [n["number"] for n in live_server.get("/numbers", token="sales_gz",
                                                 params={"pattern": "*8888"}).json()] == []  # 8765 0000-1999
    assert [n["number"] for n in live_server.get("/numbers", token="sales_gz",
                                                 params={"pattern": "*1111"}).json()] == ["87651111"]
    r = live_server.get("/numbers", token="sales_gz", params={"tail": "999"})
    assert [n["number"] for n in r.json()] == ["87650999", "87651999"]  # both AAA: by number
    r = live_server.get("/numbers", token="sales_gz", params={"contains": "51234"})
    assert [n["number"] for n in r.json()] == ["87651234"] and r.json()[0]["grade"] == "ABCD"
    r = live_server.get("/numbers", token="sales_gz", params={"grade": "ABCD"})
    assert {n["number"] for n in r.json()} == {"87650123", "87651234"}
    r = live_server.get("/numbers", token="sales_gz", params={"grade": "golden", "limit": 1000})
    assert all(n["grade_level"] > 0 for n in r.json()) and int(r.headers["X-Total-Count"]) == len(r.json())
    r = live_server.get("/numbers", token="sales_gz", params={"exchange": pools["switch"], "tail": "0000"})
    assert [n["number"] for n in r.json()] == ["87650000"]
    r = live_server.get("/numbers", token="sales_gz", params={"exchange": "8766"})
    assert r.json() == [] and r.headers["X-Total-Count"] == "0"


def test_paging_and_limits(live_server, pools):
    r = live_server.get("/numbers", token="sales_gz")
    assert r.status_code == 200 and len(r.json()) == 50  # default limit
    total = int(r.headers["X-Total-Count"])
    assert total == 2000 - 3  # held, faulty, reserved
    seen = []
    for offset in range(0, total, 1000):
        page = live_server.get("/numbers", token="sales_gz", params={"limit": 1000, "offset": offset})
        assert page.headers["X-Total-Count"] == str(total)
        seen += [n["number"] for n in page.json()]
    assert len(seen) == len(set(seen)) == total


def test_scope_by_local_network(live_server, pools):
    gz = live_server.get("/numbers", token="sales_gz", params={"tail": "0001"}).json()
    assert [(n["number"], n["local_network"]) for n in gz] == [("87650001", "GZ")]
    fs = live_server.get("/numbers", token="sales_fs", params={"tail": "0001"}).json()
    assert [(n["number"], n["local_network"]) for n in fs] == [("87650001", "FS")]
    both = live_server.get("/numbers", token="admin", params={"tail": "0001"})
    assert both.headers["X-Total-Count"] == "2"
    only = live_server.get("/numbers", token="admin", params={"tail": "0001", "local_network": "FS"}).json()
    assert [n["local_network"] for n in only] == ["FS"]
    # another city's numbers: none, as if it had none
    r = live_server.get("/numbers", token="sales_gz", params={"local_network": "FS"})
    assert r.status_code == 200 and r.json() == [] and r.headers["X-Total-Count"] == "0"
    assert live_server.get("/numbers", token=None).status_code == 401


@pytest.mark.parametrize("params,field", [
    ({"pattern": "*AA?B"}, "pattern"), ({"pattern": "AB*"}, "pattern"), ({"pattern": "*" + "A" * 17}, "pattern"),
    ({"tail": "12x"}, "tail"), ({"contains": "--"}, "contains"), ({"grade": "shiny"}, "grade"),
    ({"local_network": "XX"}, "local_network"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"offset": "-1"}, "offset"), ({"limit": "many"}, "limit"),
])
def test_bad_input_is_422_naming_the_field(live_server, pools, params, field):
    r = live_server.get("/numbers", token="sales_gz", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["Content-Type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == "invalid" and body.get("field") == field, body
