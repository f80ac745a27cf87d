"""Limits and operations: request size (413), rate limits per principal on memory and on a real
Redis (429 + Retry-After), unexpected errors (500 without internals), request ids, JSON logs,
health and /metrics — all problem+json where they are errors."""
from __future__ import annotations

import io
import json
import logging

import pytest
import redis
from sqlalchemy import func, select

from resource_mgr.security.models import ApiToken
from parallel_helpers import ratelimit_redis_url
from security_helpers import PASSWORD, bearer, build_world, issue, make_app, make_user

from interfaces.http import observability
from interfaces.http.auth import public

REDIS_URL = ratelimit_redis_url()  # db 8 unless RMGR_TEST_CELERY_BROKER_URL moves it (parallel_helpers)


@pytest.fixture
def world(db):
    return build_world(db)


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["code"] == code and body["status"] == status and body["type"].endswith(code)
    assert body["request_id"] == response.headers["X-Request-ID"]
    return body


# -- request size ----------------------------------------------------------------------------

def test_oversized_body_is_413_and_changes_nothing(db, world):
    app = make_app(db, max_request_bytes=2048)
    make_user(db, "alice", ["sales"], ["GZ"])
    client = app.test_client()
    with db.read_session() as s:
        before = s.scalar(select(func.count()).select_from(ApiToken))
    big = {"username": "alice", "password": PASSWORD, "description": "x" * 5000}
    body = assert_problem(client.post("/api/v1/auth/token", json=big), 413, "too_large")
    assert "Traceback" not in body["detail"]
    _, admin = issue(db, ["admin"])
    assert_problem(client.post(f"/api/v1/admin/tokens/{'A' * 26}/revoke", data=b"{" + b" " * 4000 + b"}",
                               headers={**bearer(admin), "Content-Type": "application/json"}), 413, "too_large")
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(ApiToken)) == before + 1  # only the admin's token
    assert client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}).status_code == 201


# -- rate limits -----------------------------------------------------------------------------

def _exhaust(client, headers, limit: int):
    for _ in range(limit):
        ok = client.get("/api/v1/history", headers=headers)
        assert ok.status_code == 200 and "Retry-After" not in ok.headers  # no back-off asked on success
    return client.get("/api/v1/history", headers=headers)


def _assert_429(response):
    body = assert_problem(response, 429, "rate_limited")
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert "retry after" in body["detail"]


def test_rate_limit_per_principal_in_memory(db, world):
    app = make_app(db, ratelimit_default="3/minute")
    _, alice = issue(db, ["auditor"], user=None)
    _, bob = issue(db, ["admin"])
    client = app.test_client()
    _assert_429(_exhaust(client, bearer(alice), 3))
    # another principal has its own budget; health is exempt
    assert client.get("/api/v1/history", headers=bearer(bob)).status_code == 200
    assert client.get("/api/v1/health").status_code == 200
    # another token of the same principal shares the budget: the key is the principal, not the token
    _, alice2 = issue(db, ["auditor"], user="u-auditor-all")
    _assert_429(client.get("/api/v1/history", headers=bearer(alice2)))


def test_in_memory_counts_start_no_thread_per_request(db, world):
    """memory:// counts in ProcessMemoryStorage: its clean-up timer runs at most once a second,
    not a new 10 ms timer thread for nearly every request (limits' MemoryStorage)."""
    import time

    from interfaces.http.limits import ProcessMemoryStorage, limiter

    app = make_app(db, ratelimit_default="1000/minute")
    storage = limiter(app).storage
    assert isinstance(storage, ProcessMemoryStorage)
    _, secret = issue(db, ["auditor"])
    client = app.test_client()
    timers = set()
    for _ in range(15):
        assert client.get("/api/v1/jobs/NONE", headers=bearer(secret)).status_code == 404
        timers.add(id(storage.timer))
        time.sleep(0.03)  # longer than limits' own 10 ms timer
    assert len(timers) <= 2, len(timers)


def test_unauthenticated_requests_are_limited_by_address(db, world):
    app = make_app(db, ratelimit_default="2/minute")
    client = app.test_client()
    for _ in range(2):
        assert client.get("/api/v1/history", headers=bearer("rmgr_guess")).status_code == 401
    _assert_429(client.get("/api/v1/history", headers=bearer("rmgr_guess")))
    other = app.test_client()
    response = other.get("/api/v1/history", headers=bearer("rmgr_guess"), environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert response.status_code == 401


def test_login_has_its_own_limit_per_address(db, world):
    from interfaces.http import limits

    app = make_app(db)
    make_user(db, "alice", ["sales"], ["GZ"])
    client = app.test_client()
    n = int(limits.LOGIN_LIMIT.split("/")[0])
    for _ in range(n):
        assert client.post("/api/v1/auth/token", json={"username": "alice", "password": "wrong-password"}).status_code == 401
    _assert_429(client.post("/api/v1/auth/token", json={"username": "alice", "password": PASSWORD}))


@pytest.fixture
def redis_db8():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # the house has Redis; its absence is a failure, not a skip
        pytest.fail(f"Redis at {REDIS_URL} not reachable: {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_rate_limit_shared_through_redis(db, world, redis_db8):
    """Two API processes (two apps) on one Redis share each principal's budget."""
    one = make_app(db, ratelimit_default="4/minute", ratelimit_storage_url=REDIS_URL)
    two = make_app(db, ratelimit_default="4/minute", ratelimit_storage_url=REDIS_URL)
    _, secret = issue(db, ["auditor"])
    c1, c2 = one.test_client(), two.test_client()
    for client in (c1, c2, c1, c2):
        assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    assert redis_db8.dbsize() > 0  # the counts really are in Redis
    _assert_429(c1.get("/api/v1/history", headers=bearer(secret)))
    _assert_429(c2.get("/api/v1/history", headers=bearer(secret)))


# -- unexpected errors -----------------------------------------------------------------------

def test_unexpected_exception_is_500_problem_without_internals(db, world):
    app = make_app(db)

    @app.get("/api/v1/test-only/boom")
    @public
    def boom():
        raise RuntimeError("secret internals: password=hunter2 at /srv/app.py line 3")

    client = app.test_client()
    response = client.get("/api/v1/test-only/boom", headers={"X-Request-ID": "req-500-check"})
    body = assert_problem(response, 500, "internal")
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert body["request_id"] == "req-500-check"


# -- request ids and logs --------------------------------------------------------------------

def test_request_id_in_and_out(db, world):
    client = make_app(db).test_client()
    given = client.get("/api/v1/history", headers={"X-Request-ID": "bss-order-42.retry_1"})
    assert given.headers["X-Request-ID"] == "bss-order-42.retry_1"
    assert given.json["request_id"] == "bss-order-42.retry_1"  # the 401 problem carries it
    made = client.get("/api/v1/health", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["X-Request-ID"] != "bad id with spaces" and len(made.headers["X-Request-ID"]) == 26
    assert client.get("/nowhere").json["request_id"]


def test_json_logs_carry_request_id_and_principal(db, world):
    app = make_app(db, log_json=True)
    stream = io.StringIO()
    handler = observability.configure_logging("INFO", True, stream=stream)
    _, secret = issue(db, ["auditor"])
    try:
        app.test_client().get("/api/v1/history", headers={**bearer(secret), "X-Request-ID": "log-check-1"})
    finally:
        logging.getLogger("rmgr").removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "rmgr.access"]
    assert access, stream.getvalue()
    entry = access[-1]
    assert entry["request_id"] == "log-check-1" and entry["principal"] == "user:u-auditor-all"
    assert entry["status"] == 200 and entry["endpoint"] == "history.list_history" and entry["duration_ms"] >= 0


# -- health ----------------------------------------------------------------------------------

def test_health_reports_database_migrations_and_broker(db, world, redis_db8):
    ok = make_app(db, celery_broker_url=REDIS_URL).test_client().get("/api/v1/health")
    assert ok.status_code == 200, ok.json
    assert ok.json["checks"]["database"]["ok"] and ok.json["checks"]["migrations"]["ok"]
    assert ok.json["checks"]["broker"] == {"ok": True, "kind": "redis"}
    embedded = make_app(db).test_client().get("/api/v1/health")
    assert embedded.status_code == 200 and "broker" not in embedded.json["checks"]
    down = make_app(db, celery_broker_url="redis://127.0.0.1:1/0").test_client().get("/api/v1/health")
    assert down.status_code == 503 and down.json["status"] == "degraded"
    assert down.json["checks"]["broker"]["ok"] is False and "127.0.0.1:1" not in down.get_data(as_text=True)


# -- metrics ---------------------------------------------------------------------------------

def test_metrics_need_a_token_and_report_the_system(db, world):
    observability.GRAPH.reset()
    app = make_app(db)
    client = app.test_client()
    assert_problem(client.get("/metrics"), 401, "unauthorized")
    _, sales = issue(db, ["sales"])
    assert_problem(client.get("/metrics", headers=bearer(sales)), 403, "forbidden")
    _, ops = issue(db, ["maintenance"])
    client.get("/api/v1/history", headers=bearer(ops))  # one request to be measured
    text = client.get("/metrics", headers=bearer(ops)).get_data(as_text=True)
    assert 'rmgr_http_request_duration_seconds_count{endpoint="history.list_history",method="GET",status="200"} 1.0' in text
    # two boxes of 10 ports, one port of each pre-occupied
    assert 'rmgr_units{kind="box_port",occupancy="preoccupied"} 2.0' in text
    assert 'rmgr_units{kind="box_port",occupancy="free"} 18.0' in text
    assert 'rmgr_jobs{state="queued"} 2.0' in text and 'rmgr_jobs{state="running"} 0.0' in text
    assert "rmgr_graph_loaded 0.0" in text and "rmgr_graph_staleness_seconds" not in text
    observability.mark_graph_rebuilt()
    try:
        text = client.get("/metrics", headers=bearer(ops)).get_data(as_text=True)
        assert "rmgr_graph_loaded 1.0" in text
        line = next(x for x in text.splitlines() if x.startswith("rmgr_graph_staleness_seconds "))
        assert 0 <= float(line.split()[1]) < 60
    finally:
        observability.GRAPH.reset()
