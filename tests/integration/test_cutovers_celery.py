"""Cutovers over HTTP (the app's WSGI stack, bearer tokens) with a REAL Celery worker on Redis
(RMGR_TEST_CELERY_BROKER_URL, db 5 for this suite): the full cycle create → lock → apply →
rollback, and a worker SIGKILLed in the middle of an apply, whose job another worker completes.
The network is tests/cutover_world.py (diagram there): the distribution cable D1 replaced by D2."""
from __future__ import annotations

import io
import os
import signal
import time
from datetime import timedelta

import pytest

from resource_mgr.clock import utcnow
from resource_mgr.jobs.models import Job
from resource_mgr.states import JobState

from cutover_world import build, diff, snapshot
from security_helpers import bearer, ensure_security_tables, issue, make_app
from tests.integration.test_celery_worker import (  # noqa: F401  (fixtures)
    BROKER, redis_db, start_celery, start_worker, wait_for,
)
from tests.job_helpers import stop


def _world(db):
    ensure_security_tables(db)
    with db.unit_of_work() as uow:
        n = build(uow.session)
        uow.commit()
    return n


def _snapshot(db):
    with db.read_session() as s:
        return snapshot(s)


def _window():
    now = utcnow()
    return {"window_start": now.isoformat(), "window_end": (now + timedelta(hours=6)).isoformat()}


def _mapping(n):
    return [{"old": n.c.pairs[k], "new": n.new_pairs[k]} for k in range(4)]


def _wait_state(client, token, cutover_id, state, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/v1/cutovers/{cutover_id}", headers=bearer(token)).json
        if body["state"] == state:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


@pytest.mark.celery_worker
def test_the_full_cycle_over_http_with_a_real_worker(db, database_url, redis_db, tmp_path):
    n = _world(db)
    before = _snapshot(db)
    app = make_app(db, celery_broker_url=BROKER)
    client = app.test_client()
    _, planner = issue(db, ["planner"], ["GZ"])
    _, auditor = issue(db, ["auditor"], ["GZ"])
    _, maintenance = issue(db, ["maintenance"])
    worker = start_worker(database_url, tmp_path / "w.log", "rmgr-cutover")
    try:
        # a mapping file (CSV) with an unknown row: 201, a draft with its report, and not lockable
        csv = "old,new,keep_number\n" + "\n".join(f"{r['old']},{r['new']},true" for r in _mapping(n)) + "\nNOPE,NOPE2,\n"
        r = client.post("/api/v1/cutovers", headers=bearer(planner), content_type="multipart/form-data",
                        data={"name": "D1 (file)", **_window(), "file": (io.BytesIO(csv.encode()), "map.csv")})
        assert r.status_code == 201, r.json
        assert r.json["rows"] == 5 and r.json["state"] == "draft"
        assert r.json["validation"] == {"valid": False, "errors": [
            {"row": 5, "old": "NOPE", "new": "NOPE2", "code": "unknown_unit",
             "reason": r.json["validation"]["errors"][0]["reason"]}]}
        r = client.post(f"/api/v1/cutovers/{r.json['id']}/lock", headers=bearer(planner))
        assert r.status_code == 409 and r.json["code"] == "conflict"

        r = client.post("/api/v1/cutovers", headers=bearer(planner), json={"name": "D1 → D2", **_window(),
                                                                           "mapping": _mapping(n)})
        assert r.status_code == 201 and r.json["validation"] == {"valid": True, "errors": []}, r.json
        cid = r.json["id"]
        assert client.post(f"/api/v1/cutovers/{cid}/lock", headers=bearer(maintenance)).status_code == 403
        assert client.post(f"/api/v1/cutovers/{cid}/apply", headers=bearer(planner)).json["code"] == "conflict"
        r = client.post(f"/api/v1/cutovers/{cid}/lock", headers=bearer(planner))
        assert r.status_code == 200 and r.json["state"] == "locked", r.json
        listed = client.get("/api/v1/cutovers", query_string={"state": "locked"}, headers=bearer(auditor))
        assert [c["id"] for c in listed.json] == [cid] and listed.headers["X-Total-Count"] == "1"
        impact = client.get(f"/api/v1/cutovers/{cid}/impact", headers=bearer(auditor)).json
        assert impact["down_count"] >= 3 and impact["services"][0]["vip"] is True

        r = client.post(f"/api/v1/cutovers/{cid}/apply", headers=bearer(planner))
        assert r.status_code == 202 and r.json["job_id"], r.json
        job = wait_for(db, r.json["job_id"], worker, tmp_path / "w.log")
        assert job.state == JobState.SUCCEEDED, (job.errors, (tmp_path / "w.log").read_text())
        body = client.get(f"/api/v1/cutovers/{cid}", headers=bearer(auditor)).json
        assert body["state"] == "applied" and body["progress"] == {"done": 4, "total": 4}
        assert body["job_id"] == job.id
        assert client.get(f"/api/v1/jobs/{job.id}", headers=bearer(planner)).json["state"] == "succeeded"
        history = client.get("/api/v1/history", query_string={"resource_id": n.new_pairs[0]},
                             headers=bearer(planner)).json
        assert {h["action"] for h in history if h["cutover_id"] == cid} >= {"preoccupy", "occupy"}

        assert client.post(f"/api/v1/cutovers/{cid}/unlock", headers=bearer(planner)).status_code == 409
        r = client.post(f"/api/v1/cutovers/{cid}/rollback", headers=bearer(planner))
        assert r.status_code == 202, r.json
        job = wait_for(db, r.json["job_id"], worker, tmp_path / "w.log")
        assert job.state == JobState.SUCCEEDED, job.errors
        assert _wait_state(client, auditor, cid, "rolled_back")["state"] == "rolled_back"
        assert diff(before, _snapshot(db)) == []
        assert client.post(f"/api/v1/cutovers/{cid}/rollback", headers=bearer(planner)).status_code == 409
    finally:
        stop(worker)


@pytest.mark.celery_worker
def test_a_worker_killed_mid_apply_leaves_nothing_and_another_completes_it(db, database_url, redis_db, tmp_path):
    n = _world(db)
    app = make_app(db, celery_broker_url=BROKER)
    client = app.test_client()
    _, planner = issue(db, ["planner"], ["GZ"])
    # one row per batch, a second between batches: the apply is under way for ~4 s
    slow = {"RMGR_CUTOVER_BATCH_ROWS": "1", "RMGR_CUTOVER_BATCH_PAUSE_SECONDS": "1",
            "RMGR_JOB_LEASE_SECONDS": "3", "RMGR_JOB_REAP_INTERVAL_SECONDS": "1", "RMGR_SWEEP_INTERVAL_SECONDS": "3600"}
    cid = client.post("/api/v1/cutovers", headers=bearer(planner),
                      json={"name": "D1 → D2", **_window(), "mapping": _mapping(n)}).json["id"]
    assert client.post(f"/api/v1/cutovers/{cid}/lock", headers=bearer(planner)).status_code == 200
    locked = _snapshot(db)
    first = start_worker(database_url, tmp_path / "w1.log", "rmgr-cut-first", **slow)
    procs = [first]
    try:
        job_id = client.post(f"/api/v1/cutovers/{cid}/apply", headers=bearer(planner)).json["job_id"]
        deadline = time.monotonic() + 60
        while "2 of 4 rows applied" not in (tmp_path / "w1.log").read_text():  # halfway
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "w1.log").read_text()
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        # nothing of the half-done apply is visible: every unit, service and connection as locked
        assert diff(locked, _snapshot(db)) == []
        body = client.get(f"/api/v1/cutovers/{cid}", headers=bearer(planner)).json
        assert body["state"] == "applying" and body["job_id"] == job_id
        with db.read_session() as s:
            assert s.get(Job, job_id).state == JobState.RUNNING

        second = start_worker(database_url, tmp_path / "w2.log", "rmgr-cut-second", **slow)
        beat = start_celery(database_url, tmp_path / "beat.log", "beat", "--loglevel=INFO",
                            "-s", str(tmp_path / "beat-schedule"), **slow)
        procs += [second, beat]
        job = wait_for(db, job_id, second, tmp_path / "w2.log", timeout=120)
        assert job.state == JobState.SUCCEEDED, (job.errors, (tmp_path / "w2.log").read_text())
        assert job.attempts == 2
        body = client.get(f"/api/v1/cutovers/{cid}", headers=bearer(planner)).json
        assert body["state"] == "applied" and body["progress"] == {"done": 4, "total": 4}
        with db.read_session() as s:
            from resource_mgr.customers.models import ServiceUnit
            from sqlalchemy import select

            for k, sid in enumerate(n.services):
                path = list(s.scalars(select(ServiceUnit.unit_id).where(ServiceUnit.service_id == sid)
                                      .order_by(ServiceUnit.seq)))
                assert path[1] == n.new_pairs[k]
    finally:
        for proc in procs:
            stop(proc)
