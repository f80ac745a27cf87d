"""GET /api/v1/addresses over real HTTP: shape, ranking, paging, scope, roles, errors."""
from __future__ import annotations

import pytest

from tests.address_world import build


@pytest.fixture(scope="module")
def live_server(shared_live_server):
    """Every test here only reads: one server and one world for the module."""
    return shared_live_server


@pytest.fixture(scope="module")
def world(live_server):
    return build(live_server.db, live_server.networks)


def test_search_finds_the_room_first_with_the_contract_shape(live_server, world):
    r = live_server.get("/addresses", token="sales_gz", params={"q": "麗日花園1棟2單元201房"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["X-Total-Count"] == str(len(body)) == "2"  # 201室 and 1201室
    top = body[0]
    assert top["id"] == world.r201 and top["text"].endswith("1栋2单元201室")
    assert top["local_network"] == "GZ" and top["level"] == "room" and top["parent_id"] == world.u2
    assert set(top["location"]) == {"lon", "lat"}
    assert body[0]["score"] > body[1]["score"]


def test_dashed_numbers_paging_and_total(live_server, world):
    r = live_server.get("/addresses", token="sales_gz", params={"q": "1-2-201"})
    assert [a["id"] for a in r.json()][:1] == [world.r201]
    r = live_server.get("/addresses", token="reader_gz", params={"q": "天河路88号", "limit": 2, "offset": 1})
    assert r.status_code == 200 and len(r.json()) == 2
    assert int(r.headers["X-Total-Count"]) == 9  # every GZ address on 天河路88号


def test_scope_and_local_network_filter(live_server, world):
    # FS's 丽日花园 is not seen by a GZ token, and GZ's not by an FS token
    gz = live_server.get("/addresses", token="sales_gz", params={"q": "丽日花园1栋"}).json()
    assert gz and all(a["local_network"] == "GZ" for a in gz)
    fs = live_server.get("/addresses", token="sales_fs", params={"q": "丽日花园1栋"}).json()
    assert [a["id"] for a in fs] == [world.fs_b1]
    admin = live_server.get("/addresses", params={"q": "丽日花园1栋", "local_network": "FS"}).json()
    assert [a["id"] for a in admin] == [world.fs_b1]
    other = live_server.get("/addresses", token="sales_gz", params={"q": "丽日花园1栋", "local_network": "FS"})
    assert other.status_code == 200 and other.json() == [] and other.headers["X-Total-Count"] == "0"


def test_unknown_text_is_an_empty_list(live_server, world):
    r = live_server.get("/addresses", token="sales_gz", params={"q": "火星路1号"})
    assert r.status_code == 200 and r.json() == [] and r.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}])
def test_empty_q_is_invalid(live_server, world, params):
    r = live_server.get("/addresses", token="sales_gz", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid" and r.json()["field"] == "q"


def test_bad_local_network_and_auth(live_server, world):
    r = live_server.get("/addresses", token="sales_gz", params={"q": "丽日", "local_network": "XX"})
    assert r.status_code == 422 and r.json()["field"] == "local_network"
    assert live_server.get("/addresses", token=None, params={"q": "丽日花园"}).status_code == 401
    for role in ("dispatch_gz", "reader_gz"):
        assert live_server.get("/addresses", token=role, params={"q": "丽日花园"}).status_code == 200
