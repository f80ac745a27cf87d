"""Roles and local-network scope on EVERY endpoint, found by walking app.url_map: an endpoint added
later is covered without editing this file.

- Each role, with a token holding only that role: a role outside the view's `_rmgr_roles` gets
  403 problem+json `forbidden`; a role inside gets neither 401 nor 403 (nor a 5xx); a public
  endpoint refuses no role. Without a token every non-public endpoint is 401.
- A token scoped to local network A (GZ) reading by id anything of network B (SZ) — resource, unit,
  job, token — gets 404 where the same endpoint answers 2xx for A's twin; no list shows B's rows.
"""
from __future__ import annotations

import re
from typing import Any

import pytest

from resource_mgr.states import Role
from security_helpers import bearer, build_world, issue, make_app

from interfaces.http.auth import _is_public

SKIP_ENDPOINTS = {"static"}  # Flask's static files: no such folder here
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Path parameters that are not an entity of a local network: /admin/trust/{name} takes any principal name.
NON_ENTITY_PARAMS = {"name"}


def _param_values(world: dict[str, Any], key: str, name: str) -> list[str]:
    """Real ids of network `key` for a path parameter, by its name."""
    w = world[key]
    lowered = name.lower()
    if "token" in lowered:
        return [world["tokens"][key]]
    if "job" in lowered:
        return [w["job"]]
    if "unit" in lowered:
        return [w["unit"]]
    if lowered == "name":
        return ["system:bss"]
    if "number" in lowered:
        return ["02088880000"]
    # resource ids, and anything else: a site, a box, a unit (any resource or unit id space)
    return [w["site"], w["box"], w["unit"], w["job"]]


def _url(rule: Any, values: dict[str, str]) -> str:
    url = rule.rule
    for arg in rule.arguments:
        url = re.sub(r"<(?:[^:<>]+:)?" + re.escape(arg) + ">", values[arg], url)
    return url


def _endpoints(app: Any) -> list[tuple[Any, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_ENDPOINTS:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((rule, method))
    return out


@pytest.fixture
def setup(db):
    world = build_world(db)
    # Tokens confined to one network each, to be read (and revoked) by the admin endpoints.
    world["tokens"] = {"A": issue(db, ["sales"], ["GZ"], system="bss")[0],
                       "B": issue(db, ["sales"], ["SZ"], system="bss")[0]}
    app = make_app(db)
    return app, world


def _call(client: Any, method: str, url: str, secret: str | None) -> Any:
    headers = bearer(secret) if secret else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if method in WRITE_METHODS:
        kwargs["json"] = {}
    return client.open(url, method=method, **kwargs)


def test_every_endpoint_declares_who_may_call_it(setup):
    app, _ = setup
    endpoints = _endpoints(app)
    names = {rule.endpoint for rule, _ in endpoints}
    # The matrix below is not vacuous: it sees the endpoints of this issue at least.
    assert {"history.list_history", "security.login", "security.list_tokens", "security.revoke_token",
            "security.list_trust", "health.health", "metrics.metrics"} <= names
    for rule, _ in endpoints:
        view = app.view_functions[rule.endpoint]
        assert getattr(view, "_rmgr_roles", None) or _is_public(app, rule.endpoint), rule.endpoint


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_role_matrix(db, setup, role):
    app, world = setup
    _, secret = issue(db, [role])
    client = app.test_client()
    checked = 0
    for rule, method in _endpoints(app):
        url = _url(rule, {a: _param_values(world, "A", a)[0] for a in rule.arguments})
        view = app.view_functions[rule.endpoint]
        response = _call(client, method, url, secret)
        where = f"{method} {url} as {role.value}: {response.status_code} {response.get_data(as_text=True)[:300]}"
        if _is_public(app, rule.endpoint):
            assert response.status_code not in (401, 403), where
        elif role in view._rmgr_roles:
            assert response.status_code not in (401, 403), where
            assert response.status_code < 500, where
        else:
            assert response.status_code == 403, where
            assert response.mimetype == "application/problem+json", where
            assert response.json["code"] == "forbidden", where
        checked += 1
    assert checked >= 8


def test_no_token_is_401_everywhere_but_public(setup):
    app, world = setup
    client = app.test_client()
    for rule, method in _endpoints(app):
        url = _url(rule, {a: _param_values(world, "A", a)[0] for a in rule.arguments})
        response = _call(client, method, url, None)
        if _is_public(app, rule.endpoint):
            assert response.status_code != 401, f"{method} {url}"
        else:
            assert response.status_code == 401, f"{method} {url}: {response.status_code}"
            assert response.json["code"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_scope_by_id_is_404_outside_the_local_network(db, setup):
    app, world = setup
    _, secret = issue(db, list(Role), ["GZ"])
    client = app.test_client()
    compared = []
    for rule, method in _endpoints(app):
        if method != "GET" or not rule.arguments or _is_public(app, rule.endpoint):
            continue
        if set(rule.arguments) & NON_ENTITY_PARAMS:
            continue
        args = sorted(rule.arguments)
        a_values = [_param_values(world, "A", a) for a in args]
        b_values = [_param_values(world, "B", a) for a in args]
        for i in range(max(len(v) for v in a_values)):
            a_url = _url(rule, {a: vals[min(i, len(vals) - 1)] for a, vals in zip(args, a_values)})
            b_url = _url(rule, {a: vals[min(i, len(vals) - 1)] for a, vals in zip(args, b_values)})
            a_resp = client.get(a_url, headers=bearer(secret))
            assert a_resp.status_code < 500, f"{a_url}: {a_resp.status_code}"
            if not 200 <= a_resp.status_code < 300:
                continue  # this endpoint does not take that kind of id
            b_resp = client.get(b_url, headers=bearer(secret))
            assert b_resp.status_code == 404, f"{b_url} (network B) answered {b_resp.status_code}"
            assert b_resp.json["code"] == "not_found"
            compared.append(rule.endpoint)
    # Tokens (admin endpoint) are always there; other engineers' by-id endpoints join automatically.
    assert "security.get_token" in compared


def test_lists_never_show_another_networks_rows(db, setup):
    app, world = setup
    _, secret = issue(db, list(Role), ["GZ"])
    client = app.test_client()
    b_ids = {v for k, v in world["B"].items() if k in ("site", "box", "unit", "job", "ln")} | {world["tokens"]["B"]}
    a_ids = {world["A"]["unit"], world["tokens"]["A"]}
    seen_a: set[str] = set()
    lists = 0
    for rule, method in _endpoints(app):
        if method != "GET" or rule.arguments or _is_public(app, rule.endpoint) or rule.endpoint == "metrics.metrics":
            continue
        response = client.get(rule.rule, query_string={"limit": 1000}, headers=bearer(secret))
        assert response.status_code < 500, rule.rule
        if response.status_code != 200:
            continue
        lists += 1
        body = response.get_data(as_text=True)
        leaked = [i for i in b_ids if i in body]
        assert not leaked, f"{rule.rule} shows network B's {leaked}"
        seen_a |= {i for i in a_ids if i in body}
    # filtered by B's ids explicitly: still nothing
    for params in ({"resource_id": world["B"]["unit"]}, {"order_ref": world["B"]["order_ref"]}):
        response = client.get("/api/v1/history", query_string=params, headers=bearer(secret))
        assert response.status_code == 200 and response.json == [] and response.headers["X-Total-Count"] == "0"
    assert lists >= 3
    assert a_ids <= seen_a, "network A's own rows must be visible (else the check proves nothing)"
