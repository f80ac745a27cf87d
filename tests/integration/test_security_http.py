"""Identities over HTTP and the CLI: expired, revoked and disabled credentials (401 saying why),
login within the user's grants, token administration, and the operation log attributing each write."""
from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from resource_mgr.clock import utcnow
from resource_mgr.occupancy.models import History
from resource_mgr.security import services
from resource_mgr.security.models import ApiToken
from security_helpers import PASSWORD, bearer, build_world, issue, make_app, make_user

from interfaces.cli.security import COMMANDS


@pytest.fixture
def app(db):
    build_world(db)
    return make_app(db)


def history(db, **where):
    with db.read_session() as s:
        stmt = select(History).order_by(History.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(History, k) == v)
        return list(s.scalars(stmt))


def count_tokens(db) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(ApiToken))


def assert_401(response, says: str) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "unauthorized"
    assert says in response.json["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_401_saying_expired(db, app):
    token_id, secret = issue(db, ["auditor"])
    # The expiry is moved in the database behind the app's back (no operation does that: a token's
    # expiry is fixed when it is made), so without the token cache, which keeps the one it read.
    client = make_app(db, auth_token_cache_seconds=0).test_client()
    assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    with db.unit_of_work() as uow:
        uow.session.execute(update(ApiToken).where(ApiToken.id == token_id)
                            .values(expires_at=utcnow() - timedelta(seconds=1)))
        uow.commit()
    assert_401(client.get("/api/v1/history", headers=bearer(secret)), "expired")


def test_revoked_token_is_401_saying_revoked(db, app):
    _, admin = issue(db, ["admin"])
    token_id, secret = issue(db, ["auditor"])
    client = app.test_client()
    assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    response = client.post(f"/api/v1/admin/tokens/{token_id}/revoke", headers=bearer(admin))
    assert response.status_code == 200 and response.json["state"] == "revoked"
    assert_401(client.get("/api/v1/history", headers=bearer(secret)), "revoked")
    # revoking again is harmless; an unknown id is 404
    assert client.post(f"/api/v1/admin/tokens/{token_id}/revoke", headers=bearer(admin)).status_code == 200
    missing = client.post("/api/v1/admin/tokens/NOPE/revoke", headers=bearer(admin))
    assert missing.status_code == 404 and missing.json["code"] == "not_found"


def test_unknown_and_malformed_credentials(app):
    client = app.test_client()
    assert_401(client.get("/api/v1/history", headers=bearer("rmgr_not-a-token")), "unknown token")
    assert_401(client.get("/api/v1/history", headers={"Authorization": "Basic abc"}), "Bearer")


def test_disabled_user_token_and_login_refused(db, app):
    make_user(db, "dora", ["dispatch"], ["GZ"])
    _, secret = issue(db, ["dispatch"], ["GZ"], user="dora")
    client = app.test_client()
    assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    with db.unit_of_work() as uow:  # the operation `rmgr user disable` runs: refused at once in this process
        services.set_user_active(uow.session, "cli:test", "dora", False)
        uow.commit()
    assert_401(client.get("/api/v1/history", headers=bearer(secret)), "disabled")
    before = count_tokens(db)
    assert_401(client.post("/api/v1/auth/token", json={"username": "dora", "password": PASSWORD}), "disabled")
    # a wrong password does not say whether the account exists or is disabled
    assert_401(client.post("/api/v1/auth/token", json={"username": "dora", "password": "wrong-password"}),
               "unknown user or wrong password")
    assert count_tokens(db) == before


def test_login_gives_short_lived_token_within_grants(db, app):
    make_user(db, "alice", ["sales", "dispatch"], ["GZ"])
    client = app.test_client()
    response = client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 201, response.json
    body = response.json
    assert body["principal"] == "user:alice" and body["roles"] == ["dispatch", "sales"]
    assert body["local_networks"] == ["GZ"] and body["state"] == "active"
    assert body["token"].startswith("rmgr_")
    from datetime import datetime

    lifetime = datetime.fromisoformat(body["expires_at"]) - utcnow()
    assert timedelta(hours=7) < lifetime <= timedelta(hours=8)
    assert client.get("/api/v1/history", headers=bearer(body["token"])).status_code == 200
    # a subset is fine
    sub = client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD, "roles": ["sales"],
                                                  "expires_in_minutes": 5})
    assert sub.status_code == 201 and sub.json["roles"] == ["sales"]
    assert client.get("/api/v1/history", headers=bearer(sub.json["token"])).status_code == 403


@pytest.mark.parametrize("extra, field", [
    ({"roles": ["admin"]}, "roles"),
    ({"roles": ["sales", "planner"]}, "roles"),
    ({"local_networks": ["SZ"]}, "local_networks"),
    ({"local_networks": ["*"]}, "local_networks"),
])
def test_login_refused_beyond_the_users_grants(db, app, extra, field):
    make_user(db, "bob", ["sales"], ["GZ"])
    before = count_tokens(db), len(history(db))
    response = app.test_client().post("/api/v1/auth/token",
                                      json={"username": "bob", "password": PASSWORD, **extra})
    assert response.status_code == 403, response.json
    assert response.json["code"] == "forbidden" and response.json["field"] == field
    assert (count_tokens(db), len(history(db))) == before


@pytest.mark.parametrize("body, field", [
    ({}, "username"),
    ({"username": "bob"}, "password"),
    ({"username": "bob", "password": PASSWORD, "roles": ["king"]}, "roles.0"),
    ({"username": "bob", "password": PASSWORD, "expires_in_minutes": 0}, "expires_in_minutes"),
    ({"username": "bob", "password": PASSWORD, "expires_in_minutes": 100000}, "expires_in_minutes"),
    ({"username": ["bob"], "password": PASSWORD}, "username"),
])
def test_login_bad_input_is_422_naming_the_field(db, app, body, field):
    make_user(db, "bob", ["sales"], ["GZ"])
    before = count_tokens(db)
    response = app.test_client().post("/api/v1/auth/token", json=body)
    assert response.status_code == 422, response.json
    assert response.json["code"] == "invalid" and response.json["field"] == field
    assert count_tokens(db) == before


def test_token_admin_lists_without_secrets_and_scopes(db, app):
    _, admin = issue(db, ["admin"])
    _, gz_admin = issue(db, ["admin"], ["GZ"])
    gz_id, gz_secret = issue(db, ["sales"], ["GZ"], system="bss")
    sz_id, _ = issue(db, ["sales"], ["SZ"], system="iom")
    client = app.test_client()
    everything = client.get("/api/v1/admin/tokens", headers=bearer(admin))
    assert everything.status_code == 200
    ids = {t["id"] for t in everything.json}
    assert {gz_id, sz_id} <= ids and int(everything.headers["X-Total-Count"]) == len(ids)
    assert gz_secret not in everything.get_data(as_text=True)
    assert all("token_hash" not in t and "token" not in t for t in everything.json)
    scoped = client.get("/api/v1/admin/tokens", headers=bearer(gz_admin))
    scoped_ids = {t["id"] for t in scoped.json}
    assert gz_id in scoped_ids and sz_id not in scoped_ids
    assert client.get(f"/api/v1/admin/tokens/{sz_id}", headers=bearer(gz_admin)).status_code == 404
    assert client.post(f"/api/v1/admin/tokens/{sz_id}/revoke", headers=bearer(gz_admin)).status_code == 404
    filtered = client.get("/api/v1/admin/tokens", query_string={"principal": "system:iom"}, headers=bearer(admin))
    assert [t["id"] for t in filtered.json] == [sz_id]
    bad = client.get("/api/v1/admin/tokens", query_string={"state": "zombie"}, headers=bearer(admin))
    assert bad.status_code == 422 and bad.json["field"] == "state"


def test_every_http_write_is_attributed(db, app):
    """Login (a token created by user:carol) and revoke (by the admin's principal) over HTTP."""
    make_user(db, "carol", ["auditor"], ["*"])
    _, admin = issue(db, ["admin"], user=None)
    client = app.test_client()
    login = client.post("/api/v1/auth/token", json={"username": "carol", "password": PASSWORD})
    token_id = login.json["id"]
    rows = history(db, resource_id=token_id)
    assert [(r.action, r.principal) for r in rows] == [("token_create", "user:carol")]
    assert PASSWORD not in str(rows[0].after) and login.json["token"] not in str(rows[0].after)
    client.post(f"/api/v1/admin/tokens/{token_id}/revoke", headers=bearer(admin))
    rows = history(db, resource_id=token_id)
    assert [(r.action, r.principal) for r in rows] == [("token_create", "user:carol"),
                                                       ("token_revoke", "user:u-admin-all")]
    assert rows[1].before == {"state": "active"} and rows[1].after["state"] == "revoked"
    # and the operation log shows them, newest first, filtered by principal
    log = client.get("/api/v1/history", query_string={"resource_id": token_id}, headers=bearer(admin))
    assert [r["action"] for r in log.json] == ["token_revoke", "token_create"]
    by_carol = client.get("/api/v1/history", query_string={"principal": "user:carol"}, headers=bearer(admin))
    assert [r["resource_id"] for r in by_carol.json] == [token_id]


def test_history_filters_order_and_paging(db, app):
    _, auditor = issue(db, ["auditor"])
    client = app.test_client()
    # the unit transitions of build_world (its inventory edits are logged too)
    everything = client.get("/api/v1/history", query_string={"action": "preoccupy"}, headers=bearer(auditor))
    assert everything.status_code == 200 and everything.headers["X-Total-Count"] == "2"
    ats = [r["at"] for r in everything.json]
    assert ats == sorted(ats, reverse=True)
    gz = client.get("/api/v1/history", query_string={"order_ref": "ORD-GZ"}, headers=bearer(auditor)).json
    assert len(gz) == 1 and gz[0]["local_network"] == "GZ" and gz[0]["principal"] == "user:seed-gz"
    assert gz[0]["before"]["occupancy"] == "free" and gz[0]["after"]["occupancy"] == "preoccupied"
    page = client.get("/api/v1/history", query_string={"action": "preoccupy", "limit": 1, "offset": 1},
                      headers=bearer(auditor))
    assert len(page.json) == 1 and page.headers["X-Total-Count"] == "2" and page.json[0]["id"] == everything.json[1]["id"]
    future = client.get("/api/v1/history", query_string={"since": "2999-01-01T00:00:00Z"}, headers=bearer(auditor))
    assert future.json == [] and future.headers["X-Total-Count"] == "0"
    past = client.get("/api/v1/history", query_string={"until": "2000-01-01T00:00:00"}, headers=bearer(auditor))
    assert past.json == []
    for params, field in (({"since": "yesterday"}, "since"), ({"limit": 0}, "limit"), ({"offset": -1}, "offset"),
                          ({"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, "until")):
        bad = client.get("/api/v1/history", query_string=params, headers=bearer(auditor))
        assert bad.status_code == 422 and bad.json["field"] == field, (params, bad.json)


# -- the CLI ------------------------------------------------------------------------------------

@pytest.fixture
def cli(db, monkeypatch):
    build_world(db)
    # load_settings() refuses unknown RMGR_* variables: the test suite's own must not leak in.
    monkeypatch.delenv("RMGR_TEST_DATABASE_URL", raising=False)
    monkeypatch.setenv("RMGR_DATABASE_URL", db.url)
    commands = {c.name: c for c in COMMANDS}
    runner = CliRunner()

    def run(group: str, *args: str, input: str | None = None):
        return runner.invoke(commands[group], list(args), input=input, catch_exceptions=False)

    return run


def test_cli_user_and_token_lifecycle(db, cli):
    app = make_app(db)
    client = app.test_client()
    result = cli("user", "create", "erin", "--role", "dispatch", "--role", "sales", "--local-network", "GZ",
                 "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    login = client.post("/api/v1/auth/token", json={"username": "erin", "password": PASSWORD})
    assert login.status_code == 201 and login.json["roles"] == ["dispatch", "sales"]

    result = cli("token", "create", "--role", "dispatch", "--local-network", "GZ", "--user", "erin",
                 "--expires-in-days", "30", "--description", "field tablet")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("rmgr_")
    assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200

    result = cli("token", "create", "--role", "sales", "--local-network", "*", "--system", "bss")
    assert result.exit_code == 0, result.output
    bss_secret = result.stdout.strip().splitlines()[-1]

    listed = cli("token", "list", "--json")
    assert listed.exit_code == 0
    import json

    rows = json.loads(listed.stdout)
    assert {r["principal"] for r in rows} >= {"user:erin", "system:bss"}
    assert secret not in listed.stdout and bss_secret not in listed.stdout
    erin_id = next(r["id"] for r in rows if r["description"] == "field tablet")

    assert cli("token", "revoke", erin_id).exit_code == 0
    assert_401(client.get("/api/v1/history", headers=bearer(secret)), "revoked")
    assert "revoked" in cli("token", "list", "--state", "revoked").stdout

    actions = [(r.action, r.principal.split(":")[0]) for r in history(db) if r.resource_kind in ("user", "api_token")]
    assert ("user_create", "cli") in actions and ("token_revoke", "cli") in actions
    assert actions.count(("token_create", "cli")) == 2

    assert cli("user", "disable", "erin").exit_code == 0
    assert_401(client.post("/api/v1/auth/token", json={"username": "erin", "password": PASSWORD}), "disabled")


def test_cli_refusals_change_nothing(db, cli):
    make_user(db, "fred", ["sales"], ["GZ"])
    before = count_tokens(db), len(history(db))
    beyond = cli("token", "create", "--role", "admin", "--local-network", "GZ", "--user", "fred")
    assert beyond.exit_code == 1 and "roles" in beyond.output and "does not hold role admin" in beyond.output
    wide = cli("token", "create", "--role", "sales", "--local-network", "*", "--user", "fred")
    assert wide.exit_code == 1 and "local_networks" in wide.output
    both = cli("token", "create", "--role", "sales", "--local-network", "GZ", "--user", "fred", "--system", "bss")
    assert both.exit_code != 0
    past = cli("token", "create", "--role", "sales", "--local-network", "GZ", "--system", "bss",
               "--expires-at", "2001-01-01T00:00:00")
    assert past.exit_code == 1 and "expires_at" in past.output
    bad_role = cli("user", "create", "gina", "--role", "king", "--local-network", "GZ", "--password-stdin",
                   input=PASSWORD + "\n")
    assert bad_role.exit_code == 2
    short = cli("user", "create", "gina", "--role", "sales", "--local-network", "GZ", "--password-stdin",
                input="short\n")
    assert short.exit_code == 1 and "password" in short.output
    assert cli("token", "revoke", "NOPE").exit_code == 1
    assert (count_tokens(db), len(history(db))) == before
