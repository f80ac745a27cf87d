"""Over HTTP (the app's WSGI stack, bearer tokens): the field work of a copper-to-fibre cutover
(`GET /cutovers/{id}/work`), and the lock's 409 naming the pending order that holds an old unit.
The network is tests/cutover_world.py (diagram there)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.orders import services as orders
from resource_mgr.security.principal import Principal
from resource_mgr.states import Role

from cutover_world import build
from security_helpers import bearer, issue, make_app


@pytest.fixture
def http(db):
    with db.unit_of_work() as uow:
        n = build(uow.session)
        uow.commit()
    app = make_app(db)
    return app.test_client(), issue(db, ["planner"], ["GZ"])[1], n


def _create(client, token, mapping):
    now = utcnow()
    r = client.post("/api/v1/cutovers", headers=bearer(token), json={
        "name": "http", "window_start": now.isoformat(), "window_end": (now + timedelta(hours=6)).isoformat(),
        "mapping": mapping})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def test_the_field_work_of_a_copper_to_fibre_row(http):
    client, token, n = http
    c = _create(client, token, [{"old": n.c.heads[0], "new": n.f.ports[1]}])
    assert c["validation"]["valid"], c
    r = client.get(f"/api/v1/cutovers/{c['id']}/work", headers=bearer(token))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["total"] == 1 and body["rows"][0]["row"] == 1 and body["rows"][0]["new"] == n.f.ports[1]
    assert [(w["action"], w["a_unit_id"]) for w in body["rows"][0]["work"]] == [("install_ont", n.f.ports[1])]
    assert client.get("/api/v1/cutovers/NOPE/work", headers=bearer(token)).status_code == 404


def test_a_lock_refused_for_a_pending_order_names_it(http, db):
    client, token, n = http
    c = _create(client, token, [{"old": n.c.pairs[k], "new": n.new_pairs[k]} for k in range(4)])
    sales = Principal(name="user:sales", roles=frozenset({Role.SALES}), local_network_ids=None)
    with db.unit_of_work(principal=sales.name) as uow:
        res, _ = orders.reserve(uow.session, principal=sales, settings=load_settings(environ={}, database_url=db.url),
                                now=utcnow(), order_ref="O-9", action="new", products=["adsl_broadband"],
                                address_id=n.c.building)
        uow.commit()
    r = client.post(f"/api/v1/cutovers/{c['id']}/lock", headers=bearer(token))
    assert r.status_code == 409 and r.content_type == "application/problem+json"
    body = r.get_json()
    assert body["code"] == "conflict" and body["field"] == "mapping" and body["pending_count"] == 1
    assert [(p["row"], p["order_ref"], p["reservation_id"]) for p in body["pending_orders"]] == [(4, "O-9", res.id)]
    assert client.get(f"/api/v1/cutovers/{c['id']}", headers=bearer(token)).get_json()["state"] == "draft"
