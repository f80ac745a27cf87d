"""The HTTP and security defects of issue 8 §4, each refused with a clear 4xx problem (or answered
correctly) and changing nothing: local-network scope of trust and metrics, out-of-range times,
hostile login bodies, media types, control characters in parameters, tokens' last use, and the
login limit's own headers."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, text, update

from resource_mgr.clock import utcnow
from resource_mgr.occupancy.models import History
from resource_mgr.security import trust
from resource_mgr.security.models import ApiToken
from security_helpers import PASSWORD, bearer, build_world, issue, make_app, make_user


@pytest.fixture
def world(db):
    return build_world(db)


@pytest.fixture
def app(db, world):
    return make_app(db)


def assert_problem(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["code"] == code and body["status"] == status
    if field is not None:
        assert body.get("field") == field, body
    return body


def token_count(db) -> int:
    with db.read_session() as s:
        return s.scalar(select(func.count()).select_from(ApiToken))


# -- 1. local-network scope of /admin/trust and /metrics ----------------------------------------

def test_trust_of_a_scoped_admin_shows_only_principals_confined_to_its_networks(db, app):
    make_user(db, "gina", ["sales"], ["GZ"])
    make_user(db, "sam", ["sales"], ["SZ"])
    make_user(db, "gwen", ["sales"], ["GZ"])
    issue(db, ["sales"], ["GZ"], user="gina")
    issue(db, ["sales"], ["GZ"], system="iom")  # system:iom: GZ tokens only
    issue(db, ["sales"], ["GZ"], system="bss")  # system:bss: a GZ token and an SZ token
    issue(db, ["sales"], ["SZ"], system="bss")
    with db.unit_of_work() as uow:
        trust.record_expirations(uow.session, {"user:gina": 2, "user:sam": 1, "system:bss": 3, "system:iom": 1,
                                               "user:gwen": 1, "cli:root": 1})
        uow.commit()
    with db.unit_of_work() as uow:  # gwen's grants widen to SZ: her counters no longer only GZ's
        from resource_mgr.security.models import User

        uow.session.execute(update(User).where(User.username == "gwen").values(local_networks=["GZ", "SZ"]))
        uow.commit()
    _, gz_admin = issue(db, ["admin"], ["GZ"])
    _, gz_sz_auditor = issue(db, ["auditor"], ["GZ", "SZ"])
    _, everything = issue(db, ["admin"])
    client = app.test_client()

    scoped = client.get("/api/v1/admin/trust", headers=bearer(gz_admin))
    assert scoped.status_code == 200
    assert {r["principal"] for r in scoped.json} == {"user:gina", "system:iom"}
    assert scoped.headers["X-Total-Count"] == "2"
    wider = client.get("/api/v1/admin/trust", headers=bearer(gz_sz_auditor))
    assert {r["principal"] for r in wider.json} == {"user:gina", "user:sam", "user:gwen", "system:bss", "system:iom"}
    full = client.get("/api/v1/admin/trust", headers=bearer(everything))
    assert {r["principal"] for r in full.json} >= {"user:gina", "user:sam", "system:bss", "cli:root"}

    assert client.get("/api/v1/admin/trust/user:gina", headers=bearer(gz_admin)).json["expired"] == 2
    for name in ("user:sam", "system:bss", "user:gwen", "cli:root", "user:nobody"):
        assert_problem(client.get(f"/api/v1/admin/trust/{name}", headers=bearer(gz_admin)), 404, "not_found", "name")
    assert client.get("/api/v1/admin/trust/system:bss", headers=bearer(everything)).json["expired"] == 3
    assert client.get("/api/v1/admin/trust/user:nobody", headers=bearer(everything)).json["expired"] == 0


def test_metrics_refuse_a_token_for_some_local_networks(db, app):
    _, gz_ops = issue(db, ["maintenance"], ["GZ"])
    _, all_ops = issue(db, ["maintenance"])
    client = app.test_client()
    assert_problem(client.get("/metrics", headers=bearer(gz_ops)), 403, "forbidden", "local_networks")
    assert client.get("/metrics", headers=bearer(all_ops)).status_code == 200


# -- 2. /history with times out of the UTC range ---------------------------------------------------

@pytest.mark.parametrize("params, rows", [
    ({"since": "0001-01-01T00:00:00+01:00"}, "all"),
    ({"until": "9999-12-31T23:59:59-01:00"}, "all"),
    ({"since": "9999-12-31T23:59:59-01:00"}, 0),
    ({"until": "0001-01-01T00:00:00+01:00"}, 0),
    ({"since": "0001-01-01T00:00:00+01:00", "until": "9999-12-31T23:59:59-01:00"}, "all"),
])
def test_history_times_beyond_utc_are_clamped(db, app, params, rows):
    _, auditor = issue(db, ["auditor"])
    client = app.test_client()
    if rows == "all":  # every row the auditor sees (the fixtures' own writes are logged too)
        rows = int(client.get("/api/v1/history", headers=bearer(auditor)).headers["X-Total-Count"])
        assert rows > 0
    response = client.get("/api/v1/history", query_string=params, headers=bearer(auditor))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(response.json) == rows and response.headers["X-Total-Count"] == str(rows)


def test_history_until_before_since_compared_without_overflow(db, app):
    _, auditor = issue(db, ["auditor"])
    client = app.test_client()
    bad = client.get("/api/v1/history", headers=bearer(auditor), query_string={
        "since": "0001-01-01T00:30:00+01:00", "until": "0001-01-01T00:10:00+01:00"})
    assert_problem(bad, 422, "invalid", "until")
    ok = client.get("/api/v1/history", headers=bearer(auditor), query_string={
        "since": "0001-01-01T00:10:00+01:00", "until": "0001-01-01T00:30:00+01:00"})
    assert ok.status_code == 200 and ok.json == []


# -- 3. hostile login bodies ---------------------------------------------------------------------

@pytest.mark.parametrize("raw, status, field", [
    ('{"username": "x\\ud800", "password": "correct horse battery"}', 422, "username"),
    ('{"username": "bob", "password": "x\\ud800"}', 422, "password"),
    ('{"username": "bob", "password": "x\\udfff\\ud800"}', 422, "password"),
    ('{"username": "bo\\u0000b", "password": "correct horse battery"}', 422, "username"),
    ('{"username": "bob", "password": "pw", "description": "\\u0000"}', 422, "description"),
    ("[" * 100_000 + "]" * 100_000, 400, None),
    ('{"username": "bob", "password": "pw", "roles": ' + "[" * 40 + "]" * 40 + "}", 400, None),
    ('{"username": "bob", "password": "pw", "expires_in_minutes": ' + "9" * 5000 + "}", 422, "expires_in_minutes"),
    ('{"username": "bob", "password": "pw", "expires_in_minutes": -' + "9" * 5000 + "}", 422, "expires_in_minutes"),
    ('{"username": "bob", "password": "pw", "expires_in_minutes": 1e999}', 422, "expires_in_minutes"),
    ('{"username": "bob", "password": "pw", "expires_in_minutes": NaN}', 422, "expires_in_minutes"),
    ('{"username": "bob", "password": "pw", "expires_in_minutes": 9223372036854775808}', 422, "expires_in_minutes"),
    ('{"username": "bob", "password": ', 400, None),
    (b'{"username": "b\xff", "password": "pw"}', 400, None),
])
def test_hostile_login_bodies_are_4xx_and_create_nothing(db, app, raw, status, field):
    make_user(db, "bob", ["sales"], ["GZ"])
    before = token_count(db)
    response = app.test_client().post("/api/v1/auth/token", data=raw, content_type="application/json")
    assert_problem(response, status, "invalid", field)
    assert token_count(db) == before


def test_login_body_within_bounds_still_works(db, app):
    make_user(db, "bob", ["sales"], ["GZ"])
    client = app.test_client()
    ok = client.post("/api/v1/auth/token", content_type="application/json; charset=utf-8",
                     data='{"username": "bob", "password": "%s", "description": "caf\\u00e9 \\ud83d\\ude00 tab\\t"}'
                     % PASSWORD)
    assert ok.status_code == 201, ok.json
    assert ok.json["description"] == "café \U0001F600 tab\t"  # a valid surrogate pair is one character


# -- 5. media types ------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/xml", "text/json"])
def test_login_with_a_wrong_content_type_is_415(db, app, content_type):
    make_user(db, "bob", ["sales"], ["GZ"])
    before = token_count(db)
    body = '{"username": "bob", "password": "%s"}' % PASSWORD
    response = app.test_client().post("/api/v1/auth/token", data=body, headers={"Content-Type": content_type})
    problem = assert_problem(response, 415, "unsupported_media_type")
    assert "application/json" in problem["detail"]
    assert token_count(db) == before


def test_login_body_without_content_type_is_415_and_empty_body_names_the_field(db, app):
    client = app.test_client()
    raw = client.post("/api/v1/auth/token", data=b'{"username": "bob", "password": "x"}')
    assert_problem(raw, 415, "unsupported_media_type")
    empty = client.post("/api/v1/auth/token")
    assert_problem(empty, 422, "invalid", "username")
    vendor = client.post("/api/v1/auth/token", data='{"username": "nobody", "password": "x"}',
                         content_type="application/vnd.rmgr+json")
    assert_problem(vendor, 401, "unauthorized")  # a +json type is JSON: read, and refused for its content


def test_a_form_endpoint_refuses_json_with_415(db, app):
    """The check is generic: POST /imports (multipart) sent as JSON is 415 too."""
    _, admin = issue(db, ["admin"])
    response = app.test_client().post("/api/v1/imports", json={"file": "x"}, headers=bearer(admin))
    assert_problem(response, 415, "unsupported_media_type")


# -- 6. control characters in parameters ----------------------------------------------------------

@pytest.mark.parametrize("path, field", [
    ("/api/v1/resources?q=%00", "q"),
    ("/api/v1/resources?q=GZ%00", "q"),
    ("/api/v1/resources?q=a%0Ab", "q"),
    ("/api/v1/resources?q=%1F", "q"),
    ("/api/v1/resources?local_network=%00", "local_network"),
    ("/api/v1/history?principal=%00", "principal"),
    ("/api/v1/history?action=x%7F", "action"),
    ("/api/v1/admin/tokens?principal=%00", "principal"),
    ("/api/v1/resources?x%00y=1", "x\\x00y"),
])
def test_control_characters_in_a_query_are_422_not_a_match_all(db, app, path, field):
    _, admin = issue(db, ["admin", "auditor"])
    assert_problem(app.test_client().get(path, headers=bearer(admin)), 422, "invalid", field)


def test_plain_q_still_filters(db, app, world):
    _, admin = issue(db, ["admin"])
    client = app.test_client()
    none = client.get("/api/v1/resources", query_string={"q": "no-such-name"}, headers=bearer(admin))
    assert none.status_code == 200 and none.json == []
    some = client.get("/api/v1/resources", query_string={"q": "GZ-TH"}, headers=bearer(admin))
    assert some.status_code == 200 and some.json and all("GZ-TH" in r["name"] for r in some.json)


@pytest.mark.parametrize("path, field", [
    ("/api/v1/resources/%00", "resource_id"),
    ("/api/v1/resources/A%00B/units", "resource_id"),
    ("/api/v1/admin/tokens/%00", "token_id"),
    ("/api/v1/admin/trust/user:%00", "name"),
])
def test_control_characters_in_a_path_are_404(db, app, path, field):
    _, admin = issue(db, ["admin"])
    assert_problem(app.test_client().get(path, headers=bearer(admin)), 404, "not_found", field)


# -- 7. last_used_at ------------------------------------------------------------------------------

def _last_used(db, token_id):
    with db.read_session() as s:
        return s.scalar(select(ApiToken.last_used_at).where(ApiToken.id == token_id))


def _token_updates(db):
    """Count UPDATEs of api_token sent to the database."""
    seen: list[str] = []

    def listener(conn, cursor, statement, *args):  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE API_TOKEN"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    return seen, lambda: event.remove(db.engine, "before_cursor_execute", listener)


def test_last_used_at_is_written_at_most_once_a_minute(db, app):
    token_id, secret = issue(db, ["auditor"])
    assert _last_used(db, token_id) is None
    client = app.test_client()
    updates, stop = _token_updates(db)
    try:
        for _ in range(5):
            assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    finally:
        stop()
    first = _last_used(db, token_id)
    assert first is not None and utcnow() - first < timedelta(seconds=30)
    assert len(updates) == 1, updates  # one write for five requests: not a write per request
    # The recorded use is moved back in the database below, behind the token cache's back (which
    # keeps the time it recorded): from here without the cache, so each request reads it.
    client = make_app(db, auth_token_cache_seconds=0).test_client()
    # 59 s later: still within the minute, not written again
    with db.unit_of_work() as uow:
        uow.session.execute(update(ApiToken).where(ApiToken.id == token_id)
                            .values(last_used_at=utcnow() - timedelta(seconds=59)))
        uow.commit()
    recent = _last_used(db, token_id)
    client.get("/api/v1/history", headers=bearer(secret))
    assert _last_used(db, token_id) == recent
    # a minute and more: written again
    with db.unit_of_work() as uow:
        uow.session.execute(update(ApiToken).where(ApiToken.id == token_id)
                            .values(last_used_at=utcnow() - timedelta(seconds=61)))
        uow.commit()
    client.get("/api/v1/history", headers=bearer(secret))
    assert utcnow() - _last_used(db, token_id) < timedelta(seconds=30)
    # and shown to admins
    _, admin = issue(db, ["admin"])
    shown = client.get(f"/api/v1/admin/tokens/{token_id}", headers=bearer(admin)).json
    assert shown["last_used_at"] is not None


def test_a_busy_write_lock_does_not_hold_up_a_request(db, app):
    """While another transaction holds the write lock (SQLite) or the token's row (PostgreSQL), a
    request with a token due for recording answers at once and the write is skipped; the next
    request after the lock is gone records it."""
    token_id, secret = issue(db, ["auditor"])
    client = app.test_client()
    holder = db.engine.connect()
    try:
        if db.dialect == "sqlite":
            holder.connection.driver_connection.execute("BEGIN IMMEDIATE")  # the write lock, held
        else:
            holder.begin()
            holder.execute(text("SELECT id FROM api_token WHERE id = :id FOR UPDATE"), {"id": token_id})
        answered: list[int] = []
        worker = threading.Thread(target=lambda: answered.append(
            client.get("/api/v1/history", headers=bearer(secret)).status_code))
        worker.start()
        worker.join(timeout=10)  # the busy timeout is 30 s: waiting for the lock would not finish
        assert answered == [200]
    finally:
        if db.dialect == "sqlite":
            holder.connection.driver_connection.execute("ROLLBACK")
        holder.rollback()
        holder.close()
    assert _last_used(db, token_id) is None
    assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    assert _last_used(db, token_id) is not None


# -- 8. the login limit's own headers ------------------------------------------------------------

def test_login_answers_carry_the_login_limit_headers(db, world, monkeypatch):
    from argon2 import PasswordHasher

    from interfaces.http import limits
    from resource_mgr.security import services as security

    # a cheap hash: the limit's window is a minute, and 21 logins at the real cost on a loaded
    # machine can outlast it (the test is about the limit's headers, not the hash)
    monkeypatch.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    app = make_app(db, ratelimit_default="1000/minute")
    make_user(db, "alice", ["sales"], ["GZ"])
    client = app.test_client()
    n = int(limits.LOGIN_LIMIT.split("/")[0])
    first = client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert first.status_code == 201
    assert first.headers.getlist("X-RateLimit-Limit") == [str(n)]
    assert first.headers.getlist("X-RateLimit-Remaining") == [str(n - 1)]
    for _ in range(n - 1):
        client.post("/api/v1/auth/token", json={"username": "alice", "password": "wrong-password"})
    refused = client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert_problem(refused, 429, "rate_limited")
    assert refused.headers.getlist("X-RateLimit-Limit") == [str(n)]
    assert refused.headers.getlist("X-RateLimit-Remaining") == ["0"]
    assert len(refused.headers.getlist("X-RateLimit-Reset")) == 1
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # other endpoints still report the app-wide limit
    _, secret = issue(db, ["auditor"])
    other = client.get("/api/v1/history", headers=bearer(secret))
    assert other.headers.getlist("X-RateLimit-Limit") == ["1000"]
    with db.read_session() as s:  # refused logins wrote nothing
        assert s.scalar(select(func.count()).select_from(History).where(History.principal == "user:alice")) == 1


# -- 4. a bounded cost for list reads ---------------------------------------------------------------

def test_list_reads_beyond_the_bound_are_503_with_retry_after_and_health_is_not_held(db, world):
    app = make_app(db, list_read_concurrency=1, list_read_retry_after_seconds=2)
    gate = app.extensions["rmgr_list_read_gate"]
    _, admin = issue(db, ["admin", "auditor"])
    client = app.test_client()
    assert client.get("/api/v1/resources", headers=bearer(admin)).status_code == 200
    assert gate.try_enter()  # a list read in progress holds the only slot
    try:
        for path in ("/api/v1/resources?kind=number&state=free&limit=1000", "/api/v1/history?limit=1000",
                     f"/api/v1/resources/{world['A']['box']}/units", "/api/v1/admin/tokens", "/api/v1/admin/trust"):
            busy = client.get(path, headers=bearer(admin))
            body = assert_problem(busy, 503, "unavailable")
            assert busy.headers["Retry-After"] == "2" and "retry_after" not in body
        assert client.get("/api/v1/health").status_code == 200  # not a list read: never refused
        assert client.get(f"/api/v1/resources/{world['A']['box']}", headers=bearer(admin)).status_code == 200
    finally:
        gate.leave()
    assert client.get("/api/v1/history?limit=1000", headers=bearer(admin)).status_code == 200


def test_a_list_read_slot_is_given_back_whatever_the_answer(db, world):
    app = make_app(db, list_read_concurrency=1)
    _, admin = issue(db, ["admin", "auditor"])
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/v1/resources?q=%00", headers=bearer(admin)).status_code == 422
        assert client.get("/api/v1/resources", headers=bearer("rmgr_wrong")).status_code == 401
        assert client.get("/api/v1/history?limit=0", headers=bearer(admin)).status_code == 422
    assert client.get("/api/v1/resources", headers=bearer(admin)).status_code == 200


def test_no_bound_when_the_setting_is_0(db, world):
    app = make_app(db, list_read_concurrency=0)
    gate = app.extensions["rmgr_list_read_gate"]
    assert all(gate.try_enter() for _ in range(100))
    _, admin = issue(db, ["auditor"])
    assert app.test_client().get("/api/v1/history", headers=bearer(admin)).status_code == 200


def test_a_list_read_on_postgresql_has_a_statement_timeout(db, world):
    if db.dialect != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's; SQLite reads are bounded by the concurrency alone")
    app = make_app(db, list_read_statement_timeout_ms=1234)
    _, admin = issue(db, ["admin"])
    seen: list[str] = []

    def listener(conn, cursor, statement, *args):  # noqa: ANN001
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert app.test_client().get("/api/v1/resources", headers=bearer(admin)).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    # jit = off per connection (set when the app's engine makes it) or, for a connection made
    # before, in the same statement as the timeout
    bound = next(i for i, s in enumerate(seen) if "SET LOCAL statement_timeout = 1234" in s)
    first_read = next(i for i, s in enumerate(seen) if "FROM resource" in s or "FROM unit" in s)
    assert bound < first_read
    # a statement past the timeout is a 503 `unavailable` with Retry-After, not a 500
    short = make_app(db, list_read_statement_timeout_ms=1)
    with db.unit_of_work() as uow:  # enough rows that counting them takes over a millisecond
        uow.session.execute(text("INSERT INTO history (at, principal, resource_id, resource_kind, action, before, after) "
                                 "SELECT now(), 'x', 'r', 'unit', 'bulk', '{}', '{}' FROM generate_series(1, 300000)"))
        uow.commit()
    _, auditor = issue(db, ["auditor"])
    slow = short.test_client().get("/api/v1/history", headers=bearer(auditor))
    assert_problem(slow, 503, "unavailable")
    assert slow.headers["Retry-After"]


def test_the_api_engine_reads_without_jit(db, world):
    """JIT compilation off for every read of an app's own engine (set once per connection, not
    sent with every request)."""
    if db.dialect != "postgresql":
        pytest.skip("JIT is PostgreSQL's")
    from resource_mgr.config import Settings

    from interfaces.http.app import create_app
    from interfaces.http.context import read_session

    app = create_app(Settings(database_url=db.url, testing=True))
    try:
        with app.test_request_context("/api/v1/resources"):
            assert read_session().execute(text("SHOW jit")).scalar() == "off"
            assert read_session().execute(text("SELECT current_setting('jit')")).scalar() == "off"
            assert read_session().connection().connection.info.get("rmgr_jit_off")  # set when it was made
    finally:
        app.extensions["rmgr"].db.dispose()
