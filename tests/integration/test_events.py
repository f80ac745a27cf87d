"""The outbox and its delivery on the backend under test (SQLite file or PostgreSQL), with a real
webhook receiver: emit in the caller's transaction, the kick only after the commit, signed
bodies, order per order_ref, backoff, give-up, leases that keep two runners apart."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.events import delivery, services as events
from resource_mgr.events.delivery import DeliveryPolicy
from resource_mgr.events.models import Delivery, Event
from resource_mgr.jobs.models import Job
from resource_mgr.states import DeliveryState, JobState

from interfaces.tasks import dispatch
from tests.event_helpers import Receiver, make_networks, signed

FAST = DeliveryPolicy(timeout_seconds=2.0, retry_base_seconds=0.05, retry_max_delay_seconds=0.2, max_attempts=10,
                      give_up_seconds=60)


@pytest.fixture
def world(db):
    # An app made earlier in this process (a live server) installed its kick for this engine:
    # these tests run the deliveries themselves.
    events.install_kick(db.engine, None)
    return make_networks(db)


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def subscribe(db, url: str, *, events_=None, secret=None, networks=None, by="system:bss") -> str:
    with db.unit_of_work() as uow:
        sub = events.create_subscription(uow.session, url=url, events=events_, secret=secret, created_by=by,
                                         local_network_ids=networks)
        uow.commit()
    return sub.id


def emit(db, type_: str, ln: str, **kw) -> str:
    with db.unit_of_work(principal="user:test") as uow:
        ev = events.emit(uow.session, type_, local_network_id=ln, **kw)
        uow.commit()
    return ev.id


def rows(db) -> list[Delivery]:
    with db.read_session() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


def drain(db, policy: DeliveryPolicy = FAST, until: float = 20.0) -> None:
    """Run delivery passes (as a job would) until nothing is pending or time is up."""
    deadline = time.monotonic() + until
    while any(r.state == DeliveryState.PENDING for r in rows(db)):
        assert time.monotonic() < deadline, rows(db)
        delivery.deliver_due(db, policy)
        time.sleep(0.02)


def test_emit_writes_the_event_and_a_delivery_per_matching_subscription(db, world):
    everything = subscribe(db, "http://127.0.0.1:9/all")
    committed_only = subscribe(db, "http://127.0.0.1:9/c", events_=["reservation.committed"])
    fs_only = subscribe(db, "http://127.0.0.1:9/fs", networks={world["FS"]})
    event_id = emit(db, "reservation.preoccupied", world["GZ"], order_ref="ORD-1", reservation_id="R1",
                    data={"units": 3})
    with db.read_session() as s:
        ev = s.get(Event, event_id)
        assert (ev.type, ev.order_ref, ev.reservation_id, ev.data) == ("reservation.preoccupied", "ORD-1", "R1",
                                                                       {"units": 3})
    assert [(r.subscription_id, r.event_id, r.order_ref, r.state) for r in rows(db)] == \
        [(everything, event_id, "ORD-1", DeliveryState.PENDING)]
    emit(db, "reservation.committed", world["FS"], order_ref="ORD-2")
    assert sorted(r.subscription_id for r in rows(db)[1:]) == sorted([everything, committed_only, fs_only])


def test_an_emit_rolled_back_leaves_nothing_and_unknown_types_are_refused(db, world):
    subscribe(db, "http://127.0.0.1:9/all")
    with db.unit_of_work() as uow:
        events.emit(uow.session, "service.created", local_network_id=world["GZ"], service_id="S1")
        uow.rollback()
    with db.unit_of_work() as uow:
        with pytest.raises(ValueError):
            events.emit(uow.session, "service.exploded", local_network_id=world["GZ"])
    with db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0
        assert s.scalar(select(func.count()).select_from(Delivery)) == 0


def test_the_kick_comes_after_the_commit_never_before_and_not_after_a_rollback(db, world):
    subscribe(db, "http://127.0.0.1:9/all")
    seen: list[int] = []

    def kick() -> None:  # another session: the event must already be committed
        with db.read_session() as s:
            seen.append(s.scalar(select(func.count()).select_from(Event)))

    events.install_kick(db.engine, kick)
    try:
        with db.unit_of_work() as uow:
            events.emit(uow.session, "reservation.preoccupied", local_network_id=world["GZ"], order_ref="A")
            events.emit(uow.session, "reservation.committed", local_network_id=world["GZ"], order_ref="A")
            assert seen == []
            uow.commit()
        assert seen == [2]  # once per transaction, with both events visible
        with db.unit_of_work() as uow:
            events.emit(uow.session, "reservation.cancelled", local_network_id=world["GZ"], order_ref="B")
        # left without commit: rolled back
        with db.unit_of_work() as uow:
            uow.session.add(Job(kind="sweep_expired", state=JobState.SUCCEEDED, params={}, created_by="t"))
            uow.commit()  # a later transaction that emits nothing does not kick
        assert seen == [2]
    finally:
        events.install_kick(db.engine, None)


def test_a_delivery_posts_the_contract_body_signed_with_the_secret(db, world, receiver):
    subscribe(db, receiver.url + "/hook", secret="s3cret")
    subscribe(db, receiver.url + "/plain")
    event_id = emit(db, "service.created", world["GZ"], order_ref="ORD-9", reservation_id="R9", service_id="S9",
                    data={"technology": "FTTH", "名": "廣州"})
    drain(db)
    got = {r.path: r for r in receiver.wait_for(2)}
    hook = got["/hook"]
    assert hook.body == {"id": event_id, "type": "service.created", "occurred_at": hook.body["occurred_at"],
                         "local_network": "GZ", "order_ref": "ORD-9", "reservation_id": "R9", "service_id": "S9",
                         "cutover_id": None, "fault_id": None, "data": {"technology": "FTTH", "名": "廣州"}}
    assert hook.headers["X-Rmgr-Event"] == "service.created" and hook.headers["Content-Type"] == "application/json"
    assert signed(hook, "s3cret") and not signed(hook, "other")
    assert "X-Rmgr-Signature" not in got["/plain"].headers
    assert all(r.state == DeliveryState.DELIVERED and r.attempts == 1 and r.last_status == 204 for r in rows(db))


def test_failures_are_retried_with_exponential_backoff_then_delivered(db, world, receiver):
    receiver.fail_first = 3
    subscribe(db, receiver.url)
    emit(db, "fault.opened", world["GZ"], fault_id="F1")
    policy = DeliveryPolicy(timeout_seconds=2, retry_base_seconds=10, retry_max_delay_seconds=25, max_attempts=10,
                            give_up_seconds=3600)
    t0 = utcnow()
    gaps = []
    for n in range(1, 4):  # attempt n at t, due again base × 2^(n-1) later (at most the max delay)
        now = t0 + timedelta(seconds=100 * n)
        claimed = delivery.claim(db, "runner-a", policy, now=now)
        assert len(claimed) == 1
        out = delivery.post(claimed[0], policy)
        assert (out.ok, out.status) == (False, 503) and "503" in out.error
        delivery.record(db, "runner-a", [(claimed[0], out)], policy, now=now)
        row = rows(db)[0]
        assert (row.state, row.attempts, row.last_status) == (DeliveryState.PENDING, n, 503)
        gaps.append((row.next_attempt_at - now).total_seconds())
        assert delivery.claim(db, "runner-a", policy, now=row.next_attempt_at - timedelta(seconds=1)) == []
    assert gaps == [10, 20, 25]
    now = rows(db)[0].next_attempt_at
    claimed = delivery.claim(db, "runner-a", policy, now=now)
    delivery.record(db, "runner-a", [(claimed[0], delivery.post(claimed[0], policy))], policy, now=now)
    row = rows(db)[0]
    assert (row.state, row.attempts, row.last_status, row.last_error) == (DeliveryState.DELIVERED, 4, 204, None)
    assert [r.status for r in receiver.received] == [503, 503, 503, 204]


def test_events_of_one_order_go_out_in_order_others_do_not_wait(db, world, receiver):
    receiver.fail_first = 2
    subscribe(db, receiver.url)
    ids = {}
    for order, type_ in [("A", "reservation.preoccupied"), ("B", "reservation.preoccupied"),
                         ("A", "reservation.redesigned"), ("A", "reservation.committed"),
                         ("B", "reservation.cancelled")]:
        ids.setdefault(order, []).append(emit(db, type_, world["GZ"], order_ref=order))
    loose = [emit(db, "fault.opened", world["GZ"], fault_id=f"F{i}") for i in range(3)]  # no order_ref

    first = delivery.claim(db, "runner-a", FAST)  # only the head of each order, and every loose one
    assert sorted(c.event_id for c in first) == sorted([ids["A"][0], ids["B"][0], *loose])
    delivery.record(db, "runner-a", [(c, delivery.post(c, FAST)) for c in first], FAST)
    drain(db)
    got = receiver.accepted()
    assert len(got) == 8
    for order in ("A", "B"):
        assert [r.body["id"] for r in got if r.body["order_ref"] == order] == ids[order]


def test_two_runners_never_hold_the_same_delivery(db, world):
    subscribe(db, "http://127.0.0.1:9/a")
    subscribe(db, "http://127.0.0.1:9/b")
    for i in range(12):
        emit(db, "fault.opened", world["GZ"], fault_id=f"F{i}")
        emit(db, "reservation.preoccupied", world["GZ"], order_ref=f"O{i % 3}")
    claims: dict[str, list[int]] = {}
    barrier = threading.Barrier(3)

    def run(owner: str) -> None:
        barrier.wait()
        mine = []
        while True:
            got = delivery.claim(db, owner, FAST, limit=3)
            if not got:
                break
            mine += [c.id for c in got]
        claims[owner] = mine

    threads = [threading.Thread(target=run, args=(f"runner-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everyone = [i for mine in claims.values() for i in mine]
    assert len(everyone) == len(set(everyone))  # nobody claimed a row another holds
    # every loose event and the head of each order, per subscription: 2 × (12 + 3)
    assert len(everyone) == 30
    held = {r.id: r.lease_owner for r in rows(db) if r.lease_owner}
    assert all(held[i] == owner for owner, mine in claims.items() for i in mine)


def test_a_lapsed_lease_is_taken_over_and_the_old_runner_writes_nothing(db, world, receiver):
    subscribe(db, receiver.url)
    emit(db, "fault.cleared", world["GZ"], fault_id="F1")
    now = utcnow()
    stuck = delivery.claim(db, "runner-dead", FAST, now=now)
    assert delivery.claim(db, "runner-b", FAST, now=now) == []  # held
    later = now + timedelta(seconds=FAST.lease_seconds + 1)
    taken = delivery.claim(db, "runner-b", FAST, now=later)
    assert [c.id for c in taken] == [c.id for c in stuck]
    assert delivery.record(db, "runner-dead", [(stuck[0], delivery.Outcome(True, 200, None))], FAST)["delivered"] == 0
    assert rows(db)[0].state == DeliveryState.PENDING and rows(db)[0].attempts == 2
    delivery.record(db, "runner-b", [(taken[0], delivery.post(taken[0], FAST))], FAST)
    assert rows(db)[0].state == DeliveryState.DELIVERED


def test_a_delivery_is_given_up_after_its_attempts_and_its_order_goes_on(db, world, receiver):
    receiver.fail_first = 2
    receiver.fail_status = 500
    subscribe(db, receiver.url)
    first = emit(db, "reservation.preoccupied", world["GZ"], order_ref="A")
    second = emit(db, "reservation.committed", world["GZ"], order_ref="A")
    policy = DeliveryPolicy(timeout_seconds=2, retry_base_seconds=0.01, retry_max_delay_seconds=0.01, max_attempts=2,
                            give_up_seconds=3600)
    drain(db, policy)
    by_event = {r.event_id: r for r in rows(db)}
    assert (by_event[first].state, by_event[first].attempts, by_event[first].last_status) == \
        (DeliveryState.FAILED, 2, 500)
    assert "HTTP 500" in by_event[first].last_error
    assert by_event[second].state == DeliveryState.DELIVERED
    assert [r.body["id"] for r in receiver.accepted()] == [second]


def test_connection_errors_and_timeouts_are_failures_with_words(db, world):
    hanging = Receiver(fail_first=1, hang_seconds=1.5).start()
    try:
        subscribe(db, hanging.url)
        subscribe(db, "http://127.0.0.1:9/closed")  # discard port: nothing listens
        emit(db, "fault.opened", world["GZ"], fault_id="F1")
        policy = DeliveryPolicy(timeout_seconds=0.3, retry_base_seconds=30, retry_max_delay_seconds=30,
                                max_attempts=5, give_up_seconds=3600)
        delivery.deliver_due(db, policy)
        errors = sorted(r.last_error for r in rows(db))
        assert errors[0].startswith("could not connect") and errors[1] == "no answer within 0.3 s"
        assert all(r.state == DeliveryState.PENDING and r.last_status is None and r.attempts == 1 for r in rows(db))
    finally:
        hanging.stop()


def test_embedded_the_committed_events_start_a_job_that_delivers_them(db, world, receiver):
    """As the serving process does it: the kick after the commit makes a delivery job and runs it in
    the embedded pool (from the kicker's thread: the emitting unit of work does not wait for it)."""
    receiver.fail_first = 1
    settings = load_settings(environ={}, database_url=db.url, event_retry_base_seconds=0.05,
                             event_retry_max_delay_seconds=0.1)
    subscribe(db, receiver.url, secret="k")
    dispatch.install_event_delivery(db, settings)
    try:
        a = emit(db, "reservation.preoccupied", world["GZ"], order_ref="ORD-1")
        b = emit(db, "reservation.committed", world["GZ"], order_ref="ORD-1")
        receiver.wait_for(0)
        deadline = time.monotonic() + 20
        while len(receiver.accepted()) < 2:  # the retry: what the embedded scheduler's poll does
            assert time.monotonic() < deadline, (rows(db), receiver.received)
            dispatch.start_event_delivery(db, settings, only_if_due=True)
            time.sleep(0.1)
        assert [r.body["id"] for r in receiver.accepted()] == [a, b]
        assert all(signed(r, "k") for r in receiver.received)
        with db.read_session() as s:
            kinds = s.scalars(select(Job).where(Job.kind == delivery.JOB_KIND)).all()
        assert kinds and all(j.created_by == delivery.CREATED_BY for j in kinds)
    finally:
        events.install_kick(db.engine, None)


def test_finished_deliveries_and_their_events_are_forgotten_after_keep_days(db, world, receiver):
    subscribe(db, receiver.url)
    receiver.fail_first = 1
    emit(db, "fault.opened", world["GZ"], fault_id="F1")
    emit(db, "fault.opened", world["GZ"], fault_id="F2")
    no_subscriber_left = emit(db, "fault.cleared", world["FS"], fault_id="F3")
    give_up = DeliveryPolicy(timeout_seconds=2, retry_base_seconds=60, max_attempts=1, keep_days=1)
    delivery.deliver_due(db, give_up)  # one given up (the 503), the other delivered
    with db.unit_of_work() as uow:
        uow.session.query(Delivery).filter(Delivery.event_id == no_subscriber_left).delete()
        uow.commit()
    pending_one = emit(db, "fault.opened", world["GZ"], fault_id="F4")
    assert delivery.purge(db, give_up) == 0  # nothing is a day old yet
    assert delivery.purge(db, give_up, now=utcnow() + timedelta(days=2)) == 5
    with db.read_session() as s:
        assert s.scalars(select(Event.id)).all() == [pending_one]  # still wanted by its pending delivery
        assert [r.event_id for r in s.scalars(select(Delivery))] == [pending_one]


def test_two_delivery_jobs_at_once_post_each_event_once_and_in_order(db, world, receiver):
    subscribe(db, receiver.url, secret="k")
    ids: dict[str, list[str]] = {}
    for i in range(24):
        order = f"ORD-{i % 4}"
        ids.setdefault(order, []).append(emit(db, "reservation.preoccupied", world["GZ"], order_ref=order))
    barrier = threading.Barrier(2)

    def job() -> None:
        barrier.wait()
        delivery.deliver_due(db, FAST)

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    drain(db)  # whatever one runner found held by the other when it stopped
    got = receiver.accepted()
    assert sorted(r.body["id"] for r in got) == sorted(i for v in ids.values() for i in v)  # each once
    for order, expected in ids.items():
        assert [r.body["id"] for r in got if r.body["order_ref"] == order] == expected
    assert all(signed(r, "k") for r in got)


def test_a_queued_delivery_job_is_enough_and_the_poll_starts_one_only_when_something_is_due(db, world):
    from resource_mgr.jobs import services as jobs

    with db.unit_of_work() as uow:  # nothing due: the poll makes no job, a kick does
        assert delivery.new_job(uow.session, FAST, only_if_due=True) is None
        queued = delivery.new_job(uow.session, FAST, only_if_due=False)
        assert queued is not None
        uow.commit()
    subscribe(db, "http://127.0.0.1:9/a")
    emit(db, "fault.opened", world["GZ"], fault_id="F1")
    with db.unit_of_work() as uow:  # one queued (not started) will see everything committed
        assert delivery.new_job(uow.session, FAST, only_if_due=False) is None
        assert delivery.new_job(uow.session, FAST, only_if_due=True) is None
        job = uow.session.get(Job, queued)
        job.state = JobState.RUNNING  # once it runs, a kick makes another; the poll leaves it be
        assert delivery.new_job(uow.session, FAST, only_if_due=True) is None
        second = delivery.new_job(uow.session, FAST, only_if_due=False)
        assert second and jobs.get_job(uow.session, second).params["_policy"] == FAST.as_dict()


def test_rows_of_a_dead_runner_of_this_host_are_taken_at_once_a_live_ones_are_not(db, world, receiver):
    import subprocess
    import sys

    from resource_mgr.jobs.leases import HOST, new_owner

    subscribe(db, receiver.url)
    emit(db, "fault.opened", world["GZ"], fault_id="F1")
    emit(db, "fault.opened", world["GZ"], fault_id="F2")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead, alive = f"{HOST}:{gone.pid}:dead0000", new_owner()  # alive: this very process
    first, second = rows(db)
    assert [c.id for c in delivery.claim(db, dead, FAST, limit=1)] == [first.id]
    assert [c.id for c in delivery.claim(db, alive, FAST, limit=1)] == [second.id]
    # both leases run for another FAST.lease_seconds; the dead one's rows are free now
    taken = delivery.claim(db, new_owner(), FAST)
    assert [c.id for c in taken] == [first.id]
    assert {r.id: r.attempts for r in rows(db)} == {first.id: 2, second.id: 1}
