"""The per-process token cache (resource_mgr.security.services.TokenCache,
settings.auth_token_cache_seconds): a cached token costs no database read, and what the cache
keeps never outlives its bound — a revoked token is refused at once by the process that revoked
it, within the TTL by every other process (real `rmgr serve` workers, both backends), and a
cached token still expires on time."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import event

from resource_mgr.clock import utcnow
from resource_mgr.security import services as security
from security_helpers import bearer, build_world, issue, make_app

from tests.e2e.test_serve import free_port
from tests.job_helpers import stop

ROOT = Path(__file__).resolve().parents[2]


def _token_reads(db) -> tuple[list[str], callable]:
    seen: list[str] = []

    def listen(_conn, _cursor, statement, *_args) -> None:
        if "FROM api_token" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", listen)
    return seen, lambda: event.remove(db.engine, "before_cursor_execute", listen)


def test_a_cached_token_reads_nothing_and_revoking_it_refuses_it_at_once(db):
    build_world(db)
    _, admin = issue(db, ["admin"])
    token_id, secret = issue(db, ["auditor"])
    client = make_app(db, auth_token_cache_seconds=60).test_client()
    assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    reads, stop_listening = _token_reads(db)
    try:
        for _ in range(3):
            assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    finally:
        stop_listening()
    assert reads == []  # from the cache
    assert client.post(f"/api/v1/admin/tokens/{token_id}/revoke", headers=bearer(admin)).status_code == 200
    refused = client.get("/api/v1/history", headers=bearer(secret))
    assert refused.status_code == 401 and "revoked" in refused.json["detail"]


def test_a_cached_token_expires_on_time(db):
    build_world(db)
    _, secret = issue(db, ["auditor"], expires_at=utcnow() + timedelta(seconds=2))
    client = make_app(db, auth_token_cache_seconds=60).test_client()
    assert client.get("/api/v1/history", headers=bearer(secret)).status_code == 200
    time.sleep(2.2)
    refused = client.get("/api/v1/history", headers=bearer(secret))
    assert refused.status_code == 401 and "expired" in refused.json["detail"]


def test_unknown_tokens_are_not_kept(db):
    build_world(db)
    client = make_app(db, auth_token_cache_seconds=60).test_client()
    before = len(security.TOKENS._entries)
    for i in range(5):
        assert client.get("/api/v1/history", headers=bearer(f"rmgr_guess{i}")).status_code == 401
    assert len(security.TOKENS._entries) == before


def test_a_token_revoked_elsewhere_is_refused_by_every_worker_within_the_ttl(db, database_url, tmp_path):
    """Two gunicorn workers (separate OS processes) cache the token; it is revoked by another
    process (this one, as `rmgr token revoke` would); past the TTL no worker accepts it."""
    if platform.system() != "Linux":
        pytest.skip("several workers need gunicorn (Linux)")
    build_world(db)
    token_id, secret = issue(db, ["auditor"])
    ttl = 2.0
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMGR_")}
    env.update(RMGR_DATABASE_URL=database_url, RMGR_AUTH_TOKEN_CACHE_SECONDS=str(ttl), PYTHONPATH=str(ROOT))
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port), "--workers", "2",
             "--threads", "2"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/v1/history"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        for _ in range(12):  # new connections: they land on both workers, which cache the token
            r = requests.get(url, headers=bearer(secret), timeout=10)
            assert r.status_code == 200, r.text
        with db.unit_of_work() as uow:
            security.revoke_token(uow.session, token_id)
            uow.commit()
        time.sleep(ttl + 0.5)
        answers = [requests.get(url, headers=bearer(secret), timeout=10) for _ in range(12)]
        assert [a.status_code for a in answers] == [401] * 12, [a.text for a in answers if a.status_code != 401]
        assert all("revoked" in a.json()["detail"] for a in answers)
    finally:
        stop(proc)
