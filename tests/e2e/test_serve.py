"""`rmgr serve` as a real process: one waitress process, and several gunicorn workers."""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from resource_mgr.inventory.services import create_local_network
from resource_mgr.security import services as security

from tests.job_helpers import stop

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def admin_token(db) -> str:
    with db.unit_of_work() as uow:
        create_local_network(uow.session, code="GZ", name="廣州", area_code="20")
        _, secret = security.create_token(uow.session, roles=["admin"], local_networks=["*"], system="mss")
        uow.commit()
    return secret


@pytest.mark.parametrize("workers", [1, 2])
def test_rmgr_serve_answers_over_http(db, database_url, admin_token, tmp_path, workers):
    if workers > 1 and platform.system() != "Linux":
        pytest.skip("several workers need gunicorn (Linux)")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMGR_")}
    env.update(RMGR_DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port), "--workers", str(workers),
             "--threads", "2"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                r = requests.get(base + "/health", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or still booting under load
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        for _ in range(4):  # several requests: with gunicorn they land on several workers
            r = requests.get(base + "/resources", params={"kind": "area"},
                             headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
            assert r.status_code == 200, r.text
            assert [a["local_network"] for a in r.json()] == ["GZ"]
        r = requests.get(base + "/resources", timeout=10)
        assert r.status_code == 401 and r.headers["Content-Type"].startswith("application/problem+json")
    finally:
        stop(proc)


def test_health_answers_while_more_than_a_hundred_connections_are_open(db, database_url, admin_token, tmp_path):
    """waitress accepts at most `connection_limit` connections (its default 100); past it a new one,
    a load balancer's health probe too, waits unaccepted. `rmgr serve` takes it from the setting
    http_connection_limit (default 500): with 120 connections open, /health still answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMGR_")}
    env.update(RMGR_DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port),
                                 "--threads", "2"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                requests.get(base + "/health", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or still booting under load
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        for _ in range(120):  # a pooled integration's keep-alive connections, open and idle
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)  # let the server accept them
        r = requests.get(base + "/health", timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "ok"
    finally:
        for s in held:
            s.close()
        stop(proc)
