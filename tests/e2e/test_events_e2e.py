"""Webhooks end to end: a real receiver (http.server in a thread of this process) that fails its
first requests and then recovers, and the events delivered by a real `rmgr serve` process (its
embedded scheduler polls the outbox) and by a real Celery worker and beat on Redis. Every event
arrives, in order per order_ref, each signed with the subscription's secret."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import requests

from resource_mgr.config import load_settings
from resource_mgr.events import services as events
from resource_mgr.security import services as security

from interfaces.tasks import dispatch
from tests.event_helpers import Receiver, make_networks, signed
from tests.integration.test_celery_worker import BROKER, redis_db, start_celery, start_worker  # noqa: F401
from tests.job_helpers import stop

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-webhook-secret"
FAST = {"RMGR_EVENT_RETRY_BASE_SECONDS": "0.1", "RMGR_EVENT_RETRY_MAX_DELAY_SECONDS": "0.4",
        "RMGR_EVENT_POLL_SECONDS": "0.2", "RMGR_EVENT_DELIVERY_TIMEOUT_SECONDS": "2"}
# three orders interleaved, and two events of no order (they need not wait for anything)
SCRIPT = [("ORD-A", "reservation.preoccupied"), ("ORD-B", "reservation.preoccupied"),
          ("ORD-A", "reservation.redesigned"), (None, "fault.opened"), ("ORD-C", "reservation.preoccupied"),
          ("ORD-B", "reservation.cancelled"), ("ORD-A", "reservation.committed"), ("ORD-A", "service.created"),
          (None, "fault.cleared"), ("ORD-C", "reservation.expired")]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emit_script(db, ln: str) -> dict[str | None, list[str]]:
    """Each event in its own unit of work, as the orders' use cases will write them."""
    ids: dict[str | None, list[str]] = {}
    for n, (order, type_) in enumerate(SCRIPT):
        with db.unit_of_work(principal="system:bss") as uow:
            ev = events.emit(uow.session, type_, local_network_id=ln, order_ref=order,
                             reservation_id=order and f"R-{order}", fault_id=None if order else f"F{n}",
                             data={"n": n})
            uow.commit()
        ids.setdefault(order, []).append(ev.id)
    return ids


def check_received(receiver: Receiver, ids: dict[str | None, list[str]]) -> None:
    got = receiver.wait_for(len(SCRIPT), timeout=60)
    assert sorted(r.body["id"] for r in got) == sorted(i for v in ids.values() for i in v)  # all, once each
    assert all(signed(r, SECRET) for r in receiver.received)
    assert all(r.headers["X-Rmgr-Event"] == r.body["type"] for r in receiver.received)
    for order, expected in ids.items():
        if order is not None:  # first acceptance of each event, in the order they were written
            assert [r.body["id"] for r in got if r.body["order_ref"] == order] == expected, order
    assert sum(1 for r in receiver.received if r.status == 503) == receiver.fail_first


def test_rmgr_serve_delivers_every_event_in_order_to_a_receiver_that_fails_then_recovers(db, database_url,
                                                                                         tmp_path):
    events.install_kick(db.engine, None)  # delivered by the server process alone (its poll)
    networks = make_networks(db)
    with db.unit_of_work() as uow:
        _, token = security.create_token(uow.session, roles=["sales"], local_networks=["*"], system="bss")
        uow.commit()
    receiver = Receiver(fail_first=4).start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RMGR_")}
    env.update(RMGR_DATABASE_URL=database_url, PYTHONPATH=str(ROOT), **FAST)
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        import subprocess

        proc = subprocess.Popen([sys.executable, "-m", "interfaces.cli.main", "serve", "--port", str(port),
                                 "--workers", "1", "--threads", "2"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api/v1"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                requests.get(api + "/health", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        r = requests.post(api + "/subscriptions", json={"url": receiver.url + "/rmgr", "secret": SECRET},
                          headers=auth, timeout=10)
        assert r.status_code == 201, r.text
        sub = r.json()["id"]
        ids = emit_script(db, networks["GZ"])
        check_received(receiver, ids)

        deadline = time.monotonic() + 20
        while True:  # the last outcome is recorded just after its post
            r = requests.get(f"{api}/subscriptions/{sub}/deliveries", params={"limit": 100}, headers=auth, timeout=10)
            assert r.status_code == 200, r.text
            if all(d["state"] == "delivered" for d in r.json()):
                break
            assert time.monotonic() < deadline, r.json()
            time.sleep(0.1)
        shown = r.json()
        assert len(shown) == len(SCRIPT) and sum(d["attempts"] for d in shown) == len(receiver.received)
        assert all(d["last_status"] == 204 and d["next_attempt_at"] is None for d in shown)
        retried = [d for d in shown if d["attempts"] > 1]
        assert retried, shown  # the first four posts failed: some deliveries took more than one attempt
    finally:
        stop(proc)
        receiver.stop()


@pytest.mark.celery_worker
def test_a_celery_worker_and_beat_deliver_every_event_in_order(db, database_url, redis_db, tmp_path):  # noqa: F811
    """The kick after the commit sends a delivery job to Redis; the worker posts; the retries of
    the failed posts are found by beat's `rmgr.deliver_events` poll."""
    networks = make_networks(db)
    receiver = Receiver(fail_first=3).start()
    worker = start_worker(database_url, tmp_path / "worker.log", "rmgr-events", **FAST)
    beat = start_celery(database_url, tmp_path / "beat.log", "beat", "--loglevel=INFO",
                        "-s", str(tmp_path / "beat-schedule"), **FAST, RMGR_SWEEP_INTERVAL_SECONDS="3600")
    settings = load_settings(environ={}, database_url=db.url, celery_broker_url=BROKER)
    try:
        with db.unit_of_work() as uow:
            events.create_subscription(uow.session, url=receiver.url + "/iom", secret=SECRET, created_by="system:iom",
                                       local_network_ids=None)
            uow.commit()
        dispatch.install_event_delivery(db, settings)  # as a process with a broker does
        ids = emit_script(db, networks["FS"])
        try:
            check_received(receiver, ids)
        except AssertionError:
            raise AssertionError((tmp_path / "worker.log").read_text()[-4000:]) from None
        assert worker.poll() is None and beat.poll() is None
        assert "deliver_events" in (tmp_path / "worker.log").read_text()
    finally:
        events.install_kick(db.engine, None)
        stop(worker)
        stop(beat)
        receiver.stop()


@pytest.mark.celery_worker
def test_an_event_whose_worker_is_killed_mid_post_is_delivered_by_another(db, database_url, redis_db,  # noqa: F811
                                                                           tmp_path):
    """SIGKILL the worker while its POST waits for the receiver: the job's lease and the rows'
    lease belong to a dead process; beat's reaper queues the job again, a second worker takes the
    rows over at once and delivers them (at least once: the receiver saw the event twice)."""
    import os
    import signal

    from resource_mgr.events.models import Delivery
    from resource_mgr.states import DeliveryState

    networks = make_networks(db)
    receiver = Receiver(fail_first=1, hang_seconds=8).start()  # the first POST gets no answer for 8 s
    fast = {**FAST, "RMGR_EVENT_DELIVERY_TIMEOUT_SECONDS": "20", "RMGR_JOB_LEASE_SECONDS": "3",
            "RMGR_JOB_REAP_INTERVAL_SECONDS": "1", "RMGR_SWEEP_INTERVAL_SECONDS": "3600"}
    first = start_worker(database_url, tmp_path / "w1.log", "rmgr-events-1", **fast)
    procs = [first]
    settings = load_settings(environ={}, database_url=db.url, celery_broker_url=BROKER)
    try:
        with db.unit_of_work() as uow:
            events.create_subscription(uow.session, url=receiver.url, secret=SECRET, created_by="system:iom",
                                       local_network_ids=None)
            uow.commit()
        dispatch.install_event_delivery(db, settings)
        with db.unit_of_work() as uow:
            event_id = events.emit(uow.session, "cutover.applied", local_network_id=networks["GZ"],
                                   cutover_id="C1").id
            uow.commit()
        deadline = time.monotonic() + 60
        while not receiver.received:  # the first worker is waiting for the receiver's answer
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "w1.log").read_text()
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        second = start_worker(database_url, tmp_path / "w2.log", "rmgr-events-2", **fast)
        beat = start_celery(database_url, tmp_path / "beat.log", "beat", "--loglevel=INFO",
                            "-s", str(tmp_path / "beat-schedule"), **fast)
        procs += [second, beat]
        got = receiver.wait_for(1, timeout=60)
        assert [r.body["id"] for r in got] == [event_id] and len(receiver.received) == 2
        assert all(signed(r, SECRET) for r in receiver.received)
        deadline = time.monotonic() + 20
        while True:
            with db.read_session() as s:
                row = s.query(Delivery).one()
            if row.state == DeliveryState.DELIVERED:
                break
            assert time.monotonic() < deadline, (row.state, (tmp_path / "w2.log").read_text())
            time.sleep(0.1)
        assert row.attempts == 2 and row.last_status == 204
    finally:
        events.install_kick(db.engine, None)
        for proc in procs:
            stop(proc)
        receiver.stop()
