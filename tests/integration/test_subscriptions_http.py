"""Subscriptions over the app: who may manage them, their scope, every bad input answered with
its problem code and field, and the deliveries admins read (attempts, last answer, next attempt)."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from resource_mgr.events import delivery, services as events
from resource_mgr.events.delivery import DeliveryPolicy
from resource_mgr.events.models import Delivery, Subscription
from resource_mgr.inventory import services as inv

from security_helpers import bearer, ensure_security_tables, issue, make_app
from tests.event_helpers import Receiver

API = "/api/v1/subscriptions"


@pytest.fixture
def world(db):
    ensure_security_tables(db)
    with db.unit_of_work() as uow:
        gz = inv.create_local_network(uow.session, code="GZ", name="廣州", area_code="20").id
        fs = inv.create_local_network(uow.session, code="FS", name="佛山", area_code="757").id
        uow.commit()
    app = make_app(db)
    events.install_kick(db.engine, None)  # these tests run the deliveries themselves, with their own policy
    tokens = {
        "admin": issue(db, ["admin"], ["*"])[1],
        "admin_fs": issue(db, ["admin"], ["FS"])[1],
        "bss": issue(db, ["sales"], ["*"], system="bss")[1],
        "bss_gz": issue(db, ["sales"], ["GZ"], system="bss")[1],
        "iom": issue(db, ["dispatch"], ["*"], system="iom")[1],
        "clerk": issue(db, ["sales"], ["GZ"])[1],  # a user, not a client system
        "auditor": issue(db, ["auditor"], ["*"])[1],
    }
    yield app.test_client(), tokens, {"GZ": gz, "FS": fs}
    events.install_kick(db.engine, None)


def post(client, token, body):
    return client.post(API, json=body, headers=bearer(token))


def test_create_read_list_and_delete_a_subscription(world):
    client, tokens, _ = world
    r = post(client, tokens["bss_gz"], {"url": "https://bss.example/hooks/rmgr", "secret": "k",
                                        "events": ["reservation.committed", "reservation.preoccupied"]})
    assert r.status_code == 201, r.json
    sub = r.json
    assert r.headers["Location"] == f"{API}/{sub['id']}"
    assert sub["url"] == "https://bss.example/hooks/rmgr" and sub["has_secret"] is True and "secret" not in sub
    assert sub["events"] == ["reservation.preoccupied", "reservation.committed"]  # the contract's order
    assert sub["local_networks"] == ["GZ"] and sub["created_by"] == "system:bss"
    assert sub["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    r = post(client, tokens["admin"], {"url": "http://iom.example:8080/events"})
    assert r.status_code == 201 and r.json["events"] is None and r.json["local_networks"] is None
    assert r.json["has_secret"] is False

    assert client.get(f"{API}/{sub['id']}", headers=bearer(tokens["bss_gz"])).json["id"] == sub["id"]
    listed = client.get(API, headers=bearer(tokens["admin"]))
    assert listed.status_code == 200 and listed.headers["X-Total-Count"] == "2"
    assert [s["id"] for s in client.get(API, headers=bearer(tokens["bss_gz"])).json] == [sub["id"]]

    r = client.delete(f"{API}/{sub['id']}", headers=bearer(tokens["bss_gz"]))
    assert r.status_code == 204 and r.data == b""
    r = client.get(f"{API}/{sub['id']}", headers=bearer(tokens["bss_gz"]))
    assert r.status_code == 404 and r.json["code"] == "not_found"
    assert client.delete(f"{API}/{sub['id']}", headers=bearer(tokens["admin"])).status_code == 404


def test_admins_sales_and_dispatch_manage_subscriptions_other_roles_do_not(world):
    client, tokens, _ = world
    r = post(client, tokens["auditor"], {"url": "https://x.example/h"})
    assert r.status_code == 403 and r.json["code"] == "forbidden", r.json
    assert client.get(API, headers=bearer(tokens["auditor"])).status_code == 403
    assert post(client, tokens["iom"], {"url": "https://iom.example/h"}).status_code == 201
    mine = post(client, tokens["clerk"], {"url": "https://x.example/h"}).json["id"]  # a user's own
    assert [s["id"] for s in client.get(API, headers=bearer(tokens["clerk"])).json] == [mine]
    assert client.get(f"{API}/{mine}", headers=bearer(tokens["bss_gz"])).status_code == 404  # not system:bss's


def test_a_subscription_is_seen_by_its_owner_and_admins_of_its_networks_only(world):
    client, tokens, _ = world
    gz = post(client, tokens["bss_gz"], {"url": "https://bss.example/gz"}).json["id"]
    every = post(client, tokens["bss"], {"url": "https://bss.example/all"}).json["id"]
    fs = post(client, tokens["bss"], {"url": "https://bss.example/fs", "local_networks": ["FS"]}).json
    assert fs["local_networks"] == ["FS"]
    seen = {(who, what): client.get(f"{API}/{sid}", headers=bearer(tokens[who])).status_code
            for who in ("admin", "admin_fs", "bss", "bss_gz", "iom") for what, sid in
            {"gz": gz, "all": every, "fs": fs["id"]}.items()}
    assert seen == {
        ("admin", "gz"): 200, ("admin", "all"): 200, ("admin", "fs"): 200,
        ("admin_fs", "gz"): 404, ("admin_fs", "all"): 404, ("admin_fs", "fs"): 200,
        ("bss", "gz"): 200, ("bss", "all"): 200, ("bss", "fs"): 200,  # every system:bss token is one principal
        ("bss_gz", "gz"): 200, ("bss_gz", "all"): 404, ("bss_gz", "fs"): 404,
        ("iom", "gz"): 404, ("iom", "all"): 404, ("iom", "fs"): 404,  # another system's
    }
    assert client.delete(f"{API}/{gz}", headers=bearer(tokens["iom"])).status_code == 404
    assert client.delete(f"{API}/{every}", headers=bearer(tokens["admin_fs"])).status_code == 404


@pytest.mark.parametrize("body, field, words", [
    ({}, "url", "Missing data"),
    ({"url": ""}, "url", ""),
    ({"url": "ftp://bss.example/h"}, "url", "http:// or https://"),
    ({"url": "bss.example/h"}, "url", "http:// or https://"),
    ({"url": "https:///nohost"}, "url", "no host"),
    ({"url": "https://bss.example:99999/h"}, "url", "not a valid URL"),
    ({"url": "https://bss.example/a b"}, "url", "white space"),
    ({"url": "https://x.example/" + "a" * 2000}, "url", ""),
    ({"url": 42}, "url", ""),
    ({"url": "https://x.example/h", "events": ["reservation.exploded"]}, "events", "unknown event type"),
    ({"url": "https://x.example/h", "events": []}, "events", "at least one"),
    ({"url": "https://x.example/h", "events": "reservation.committed"}, "events", ""),
    ({"url": "https://x.example/h", "secret": ""}, "secret", ""),
    ({"url": "https://x.example/h", "secret": "x" * 257}, "secret", ""),
    ({"url": "https://x.example/h", "local_networks": ["XX"]}, "local_networks", "unknown local network"),
    ({"url": "https://x.example/h", "local_networks": ["FS"]}, "local_networks", "unknown local network"),
])
def test_bad_subscriptions_are_422_naming_the_field_and_nothing_is_stored(world, db, body, field, words):
    client, tokens, _ = world
    r = post(client, tokens["bss_gz"], body)
    assert r.status_code == 422, r.json
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json["code"] == "invalid" and r.json["field"] == field, r.json
    assert words in r.json["detail"]
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Subscription)) == 0


def test_a_body_that_is_not_json_is_refused(world):
    client, tokens, _ = world
    r = client.post(API, data="url=https://x", headers={**bearer(tokens["admin"]),
                                                        "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and r.json["code"] == "unsupported_media_type"
    r = client.post(API, data="{nope", headers={**bearer(tokens["admin"]), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["code"] == "invalid"
    r = client.get(f"{API}/NOPE/deliveries", headers=bearer(tokens["admin"]))
    assert r.status_code == 404 and r.json["code"] == "not_found"
    r = client.get(f"{API}/NOPE/deliveries?state=lost", headers=bearer(tokens["admin"]))
    assert r.status_code == 422 and r.json["field"] == "state"


def test_deliveries_show_attempts_answers_and_failures_and_can_be_retried(world, db):
    client, tokens, nets = world
    receiver = Receiver(fail_first=2, fail_status=500).start()
    try:
        sub = post(client, tokens["admin"], {"url": receiver.url + "/h"}).json["id"]
        with db.unit_of_work() as uow:
            first = events.emit(uow.session, "reservation.preoccupied", local_network_id=nets["GZ"],
                                order_ref="ORD-1").id
            second = events.emit(uow.session, "fault.opened", local_network_id=nets["FS"], fault_id="F1").id
            uow.commit()
        give_up = DeliveryPolicy(timeout_seconds=2, retry_base_seconds=60, retry_max_delay_seconds=60,
                                 max_attempts=1, give_up_seconds=3600)
        delivery.deliver_due(db, give_up)  # both fail once (500) and are given up at once
        r = client.get(f"{API}/{sub}/deliveries", headers=bearer(tokens["admin"]))
        assert r.status_code == 200 and r.headers["X-Total-Count"] == "2"
        by_event = {d["event_id"]: d for d in r.json}
        d = by_event[first]
        assert (d["type"], d["order_ref"], d["state"], d["attempts"], d["last_status"]) == \
            ("reservation.preoccupied", "ORD-1", "failed", 1, 500)
        assert d["last_error"].startswith("answered HTTP 500") and d["next_attempt_at"] is None
        assert client.get(f"{API}/{sub}", headers=bearer(tokens["admin"])).json["deliveries"] == \
            {"pending": 0, "delivered": 0, "failed": 2}
        assert client.get(f"{API}/{sub}/deliveries?state=delivered", headers=bearer(tokens["admin"])).json == []
        assert [d["event_id"] for d in client.get(f"{API}/{sub}/deliveries?order_ref=ORD-1",
                                                  headers=bearer(tokens["admin"])).json] == [first]

        r = client.post(f"{API}/{sub}/deliveries/retry", headers=bearer(tokens["admin"]))
        assert r.status_code == 200 and r.json == {"requeued": 2}
        # the retry's delivery job (the app's kick) may already have posted some of them
        listed = client.get(f"{API}/{sub}/deliveries", headers=bearer(tokens["admin"])).json
        assert len(listed) == 2 and all(d["state"] == "delivered" or (
            d["state"] == "pending" and d["next_attempt_at"] and d["attempts"] == 0) for d in listed), listed
        # the retry started a delivery job (the app's kick); whoever posts them, both arrive once
        deadline = time.monotonic() + 20
        while len(receiver.accepted()) < 2:
            assert time.monotonic() < deadline, receiver.received
            delivery.deliver_due(db, give_up)
            time.sleep(0.05)
        while len(delivered := client.get(f"{API}/{sub}/deliveries?state=delivered",
                                          headers=bearer(tokens["admin"])).json) < 2:  # recorded after the post
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert len(receiver.received) == 4
        assert sorted(d["event_id"] for d in delivered) == sorted([first, second])
        assert all(d["last_status"] == 204 and d["delivered_at"] for d in delivered)
        # deleting the subscription drops its deliveries
        assert client.delete(f"{API}/{sub}", headers=bearer(tokens["admin"])).status_code == 204
        with db.read_session() as s:
            assert s.scalar(select(func.count()).select_from(Delivery)) == 0
    finally:
        receiver.stop()
