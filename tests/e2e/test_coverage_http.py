"""POST /api/v1/coverage/check over real HTTP on the XS city: the answer's shape, each way of
naming the place, and every bad input answered as a 4xx naming the field."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from coverage_world import addresses, empty_spot, live_xs
from resource_mgr.inventory.models import Address, DistributionBox

PRODUCTS = ["ftth_broadband", "adsl_broadband", "vdsl_broadband", "lan_broadband", "pots", "ngn_phone", "iptv",
            "voip"]


@pytest.fixture
def live(db, tmp_path_factory):
    yield from live_xs(db, tmp_path_factory)


@pytest.fixture
def room(live):
    with live.db.read_session() as s:
        a = addresses(s, "room", 1)[0]
        return {"id": a.id, "text": a.name, "lon": a.location.x, "lat": a.location.y}


def test_check_by_id_answers_every_technology_and_product(live, room):
    r = live.check({"address_id": room["id"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["address"]["id"] == room["id"] and body["address"]["local_network"] == "FS"
    assert [t["technology"] for t in body["technologies"]] == ["FTTH", "ADSL", "VDSL", "POTS", "LAN"]
    assert [p["product"] for p in body["products"]] == PRODUCTS
    for t in body["technologies"]:
        assert isinstance(t["available"], bool) and t["reason"] and t["reason_zh"]
        if t["available"]:
            assert t["free_capacity"] >= 1 and t["serving_box"] or t["technology"] == "LAN"
    for p in body["products"]:
        assert p["result"] in ("qualified", "unqualified", "alternate") and p["reason"] and p["reason_zh"]
    ftth = body["technologies"][0]
    if ftth["available"]:
        assert ftth["optic_class"] and ftth["loss_db"] <= ftth["budget_db"]


def test_products_asked_are_answered_in_order(live, room):
    r = live.check({"address_id": room["id"], "products": ["iptv", "pots", "iptv"]})
    assert r.status_code == 200, r.text
    assert [p["product"] for p in r.json()["products"]] == ["iptv", "pots"]


def test_check_by_exact_text_and_by_location(live, room):
    r = live.check({"address_text": room["text"]})
    assert r.status_code == 200, r.text
    assert r.json()["address"]["id"] == room["id"]
    r = live.check({"location": {"lon": room["lon"], "lat": room["lat"]}})
    assert r.status_code == 200, r.text
    # a point says no room: the building or unit at that spot, above the room
    with live.db.read_session() as s:
        from resource_mgr.addresses import ancestors
        assert r.json()["address"]["id"] in ancestors(s, room["id"])


def test_text_that_is_not_clearly_one_address_is_404_with_suggestions(live, room):
    road = room["text"].split("区")[-1].split("号")[0]  # e.g. "塱宝九路32": a road number, many buildings
    r = live.check({"address_text": road})
    assert r.status_code == 404, r.text
    problem = r.json()
    assert problem["code"] == "not_found" and problem["field"] == "address_text"
    assert problem["suggestions"] and all({"id", "text", "local_network"} <= set(s) for s in problem["suggestions"])
    r = live.check({"address_text": "火星殖民地一号基地"})
    assert r.status_code == 404 and r.json()["suggestions"] == []


BAD = [
    ({}, "address_id"),
    ({"products": ["pots"]}, "address_id"),
    ({"address_id": "X", "address_text": "Y"}, "address_text"),
    ({"address_text": ""}, "address_text"),
    ({"address_text": "   "}, "address_text"),
    ({"address_text": "x" * 301}, "address_text"),
    ({"location": {"lon": 500, "lat": 23}}, "location.lon"),
    ({"location": {"lon": 113}}, "location.lat"),
    ({"location": "here"}, "location"),
    ({"address_id": "A", "products": ["fax"]}, "products.0"),
    ({"address_id": "A", "products": []}, "products"),
    ({"address_id": "A", "products": "pots"}, "products"),
    ({"address_id": 5}, "address_id"),
]


def test_bad_input_is_422_naming_the_field(live):
    wrong = []
    for body, field in BAD:  # one server for all of them (loading the city is the slow part)
        r = live.check(body)
        problem = r.json()
        # (a nested value of the wrong type is named by the schema layer as "<field>._schema")
        if r.status_code != 422 or not r.headers["Content-Type"].startswith("application/problem+json") \
                or problem["code"] != "invalid" or problem.get("field") not in (field, field + "._schema"):
            wrong.append((body, r.status_code, problem))
    assert not wrong, wrong


def test_unknown_or_other_citys_address_is_404(live, room):
    r = live.check({"address_id": "01NOSUCHADDRESS0000000000"})
    assert r.status_code == 404 and r.json()["field"] == "address_id"
    r = live.check({"address_id": room["id"]}, token="sales_gz")  # a GZ clerk: FS does not exist for them
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = live.check({"address_text": room["text"]}, token="sales_gz")
    assert r.status_code == 404 and r.json()["suggestions"] == []


def test_location_outside_the_callers_networks_is_422(live, room):
    r = live.check({"location": {"lon": room["lon"], "lat": room["lat"]}}, token="sales_gz")
    assert r.status_code == 422 and r.json()["field"] == "location", r.text
    r = live.check({"location": {"lon": -70.0, "lat": -33.0}})  # Santiago: no local network at all
    assert r.status_code == 422 and r.json()["field"] == "location", r.text


def test_location_with_no_address_near_says_so(live):
    # 300 m east of a fibre box, in the city but past every address's 100 m
    with live.db.read_session() as s:
        points = [a.location for a in s.scalars(select(Address))]
        box = s.scalars(select(DistributionBox).where(DistributionBox.medium == "fibre")).first()
    spot = empty_spot(points, box.location)
    r = live.check({"location": {"lon": spot[0], "lat": spot[1]}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["address"] is None and body["location"]["lon"] == pytest.approx(spot[0])
    assert all(not t["available"] and t["reasons"] == ["no_address"] for t in body["technologies"])
    assert all(p["result"] == "unqualified" for p in body["products"])


def test_roles_and_authentication(live, room):
    assert live.check({"address_id": room["id"]}, token=None).status_code == 401
    assert live.check({"address_id": room["id"]}, token="reader").status_code == 200  # any reader may check
    r = live.http.post(live.url + "/api/v1/coverage/check", data="address_id=1", headers={
        **live.headers(), "Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    assert r.status_code == 415
