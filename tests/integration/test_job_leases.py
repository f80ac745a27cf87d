"""Job leases on a real database: the claim takes a lease and the heartbeat renews it; a lapsed
lease is taken over; the reaper queues again what a dead runner left, fails what may not run
again or has used its attempts, and sends what was never sent; the scheduler lease has one
holder; failed jobs carry clean problems (no SQL, no server paths)."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from resource_mgr.clock import utcnow
from resource_mgr.jobs import leases, reaper
from resource_mgr.jobs import services as jobs
from resource_mgr.jobs.leases import JobPolicy
from resource_mgr.jobs.models import Job
from resource_mgr.jobs.problems import clean_text
from resource_mgr.states import JobState
from tests.job_helpers import load, new_job

import job_kinds  # noqa: F401  (registers test_steps)

GONE = "another-host:4242:cafe"  # a runner elsewhere: only its lease's expiry tells whether it lives
FAST = JobPolicy(lease_seconds=2, max_attempts=3, send_grace_seconds=1, resend_seconds=60)

ran: list[str] = []


def _count(db, job_id, progress):
    ran.append(job_id)
    progress(1, 1)
    return {"ok": True}


def _unsafe(db, job_id, progress):
    ran.append(job_id)
    return {}


def _duplicate(db, job_id, progress):
    with db.unit_of_work() as uow:  # the same primary key twice: the database refuses it
        uow.session.execute(text("INSERT INTO scheduler_lease (name, owner, expires_at, acquired_at) "
                                 "VALUES ('dup', 'x', '2030-01-01', '2030-01-01')"))
        uow.session.execute(text("INSERT INTO scheduler_lease (name, owner, expires_at, acquired_at) "
                                 "VALUES ('dup', 'x', '2030-01-01', '2030-01-01')"))
        uow.commit()


def _missing_file(db, job_id, progress):
    open("/srv/rmgr/uploads/01ABC-bundle.zip", "rb")  # noqa: SIM115


jobs.register("test_count", _count, rerun="idempotent")
jobs.register("test_unsafe", _unsafe)  # the default: never run twice
jobs.register("test_duplicate", _duplicate, rerun="idempotent")
jobs.register("test_missing_file", _missing_file, rerun="idempotent")


def set_job(db, job_id: str, **values) -> None:
    with db.unit_of_work() as uow:
        uow.session.execute(update(Job).where(Job.id == job_id).values(**values))
        uow.commit()


def abandon(db, job_id: str, *, owner: str = GONE, seconds_ago: float = 5, attempts: int = 1) -> None:
    """The job as a runner that died left it: running, its lease lapsed."""
    now = utcnow()
    set_job(db, job_id, state=JobState.RUNNING, started_at=now - timedelta(seconds=30), attempts=attempts,
            lease_owner=owner, lease_expires_at=now - timedelta(seconds=seconds_ago))


def test_the_state_is_the_enum_and_the_database_refuses_others(db):
    job_id = new_job(db, "test_count")
    assert type(load(db, job_id).state) is JobState
    with pytest.raises(Exception) as err:
        with db.unit_of_work() as uow:
            uow.session.execute(text("UPDATE job SET state = 'lost' WHERE id = :id"), {"id": job_id})
            uow.commit()
    assert "check" in str(err.value).lower()


def test_a_claim_takes_a_lease_and_counts_the_attempt(db):
    job_id = new_job(db, "test_count")
    seen = {}

    def look(db_, jid, progress):
        seen["job"] = load(db, jid)
        return {}

    jobs.register("test_look", look, rerun="idempotent")
    job_id = new_job(db, "test_look")
    assert jobs.run_job(db, job_id, policy=FAST) == JobState.SUCCEEDED
    during = seen["job"]
    assert during.state == JobState.RUNNING and during.attempts == 1
    assert during.lease_owner.startswith(f"{leases.HOST}:") and during.lease_expires_at > utcnow() - timedelta(seconds=2)
    after = load(db, job_id)
    assert (after.state, after.lease_owner, after.lease_expires_at, after.attempts) == (JobState.SUCCEEDED, None, None, 1)


def test_the_heartbeat_renews_the_lease_while_the_handler_runs(db, tmp_path):
    job_id = new_job(db, job_kinds.STEPS, steps=1, step_seconds=4.5)  # no progress call for 4.5 s
    policy = JobPolicy(lease_seconds=3)
    thread = threading.Thread(target=jobs.run_job, args=(db, job_id), kwargs={"policy": policy})
    thread.start()
    expiries = []
    deadline = time.monotonic() + 4.2
    while time.monotonic() < deadline:
        job = load(db, job_id)
        if job.state == JobState.RUNNING:
            expiries.append(job.lease_expires_at)
            assert job.lease_expires_at > utcnow(), "the lease lapsed while its runner was alive"
        time.sleep(0.2)
    thread.join()
    assert len(set(expiries)) >= 3  # renewed several times, not only at the claim
    assert load(db, job_id).state == JobState.SUCCEEDED


def test_a_lapsed_lease_is_taken_over_and_a_live_one_is_not(db):
    job_id = new_job(db, "test_count")
    abandon(db, job_id, seconds_ago=-30)  # still valid for 30 s: its runner may be working
    assert jobs.run_job(db, job_id, policy=FAST) == JobState.RUNNING
    assert job_id not in ran
    abandon(db, job_id, seconds_ago=1)  # lapsed a second ago
    assert jobs.run_job(db, job_id, policy=FAST) == JobState.SUCCEEDED
    job = load(db, job_id)
    assert ran.count(job_id) == 1 and job.attempts == 2


def test_a_dead_process_of_this_host_is_known_dead_at_once(db):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{leases.HOST}:{int(proc.stdout)}:beef"
    assert leases.alive_here(dead) is False and leases.alive_here(leases.process_owner()) is True
    job_id = new_job(db, "test_count")
    abandon(db, job_id, owner=dead, seconds_ago=-60)  # its lease has a minute left, but its process is gone
    assert jobs.run_job(db, job_id, policy=FAST) == JobState.SUCCEEDED


def test_the_reaper_queues_again_fails_when_attempts_are_used_and_never_reruns_the_unsafe(db):
    again, used, unsafe, live = (new_job(db, k) for k in ("test_count", "test_count", "test_unsafe", "test_count"))
    abandon(db, again, attempts=1)
    abandon(db, used, attempts=3)
    abandon(db, unsafe, attempts=1)
    abandon(db, live, seconds_ago=-30)
    reaped = reaper.reap(db, FAST)
    assert reaped.requeued == [again] and reaped.send == [again] and sorted(reaped.failed) == sorted([used, unsafe])
    job = load(db, again)
    assert (job.state, job.lease_owner, job.attempts) == (JobState.QUEUED, None, 1)
    assert "attempt 2 of 3" in job.message and job.sent_at is not None
    job = load(db, used)
    assert job.state == JobState.FAILED and "3 time(s)" in job.message and job.errors[0]["code"] == "abandoned"
    job = load(db, unsafe)
    assert job.state == JobState.FAILED and "not safe to run twice" in job.message
    assert load(db, live).state == JobState.RUNNING
    # what the reaper queued again runs to its end; nothing is sent twice in a row
    assert jobs.run_job(db, again, policy=FAST) == JobState.SUCCEEDED
    assert load(db, again).attempts == 2
    assert reaper.reap(db, FAST).send == []
    assert unsafe not in ran


def test_a_runner_meeting_a_job_with_its_attempts_used_fails_it(db):
    job_id = new_job(db, "test_count")
    abandon(db, job_id, attempts=3)
    assert jobs.run_job(db, job_id, policy=FAST) == JobState.FAILED
    assert job_id not in ran and "not tried again" in load(db, job_id).message


def test_the_reaper_sends_jobs_committed_but_never_sent(db):
    fresh, old, sent, lost = (new_job(db, "test_count") for _ in range(4))
    now = utcnow()
    set_job(db, fresh, created_at=now)  # within the 1 s grace: its sender is sending it
    set_job(db, old, created_at=now - timedelta(seconds=5))  # past the grace, never sent
    set_job(db, sent, created_at=now - timedelta(seconds=5), sent_at=now - timedelta(seconds=5))  # sent: waiting
    set_job(db, lost, created_at=now - timedelta(seconds=90), sent_at=now - timedelta(seconds=90))  # a lost message
    assert sorted(reaper.reap(db, FAST, now=now).send) == sorted([old, lost])
    assert reaper.reap(db, FAST, now=now).send == []  # marked sent: not again before the resend period
    reaper.unsent(db, [old])  # the send failed: tried again after the grace
    assert reaper.reap(db, FAST, now=now).send == [old]
    assert fresh in reaper.reap(db, FAST, now=now + timedelta(seconds=2)).send


def test_a_runner_that_lost_its_lease_writes_nothing_and_stops(db, tmp_path):
    marker = tmp_path / "marks"
    job_id = new_job(db, job_kinds.STEPS, steps=20, step_seconds=0.1, marker=str(marker))
    thread = threading.Thread(target=jobs.run_job, args=(db, job_id), kwargs={"policy": FAST})
    thread.start()
    deadline = time.monotonic() + 20
    while load(db, job_id).done < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    set_job(db, job_id, lease_owner=GONE)  # another runner took it over
    thread.join(timeout=10)
    job = load(db, job_id)
    assert job.state == JobState.RUNNING and job.lease_owner == GONE and job.result is None
    assert job.done < 20 and job_kinds.marks(marker)[-1][0] == "start"  # stopped, never reached "done"


def test_failed_jobs_carry_clean_problems(db):
    job_id = new_job(db, "test_duplicate")
    assert jobs.run_job(db, job_id) == JobState.FAILED
    job = load(db, job_id)
    [entry] = job.errors
    assert entry["code"] == "conflict" and entry["field"] == "name", entry
    assert "scheduler_lease" in entry["detail"] and "already exists" in entry["detail"]
    for shown in (entry["detail"], job.message):
        assert "SQL" not in shown and "INSERT" not in shown and "sqlite3" not in shown and "psycopg" not in shown
    job_id = new_job(db, "test_missing_file")
    assert jobs.run_job(db, job_id) == JobState.FAILED
    job = load(db, job_id)
    assert job.errors[0]["code"] == "not_found" and "01ABC-bundle.zip" in job.message
    assert "/srv" not in job.message and "/srv" not in str(job.errors)


def test_domain_errors_keep_their_words_without_server_paths():
    assert clean_text("cannot read /tmp/rmgr-imports/01ABC-x.zip: bad header") == "cannot read 01ABC-x.zip: bad header"
    assert clean_text("see http://host/a/b and 3/4 and ./x") == "see http://host/a/b and 3/4 and ./x"
    raw = ("(sqlite3.IntegrityError) UNIQUE constraint failed: number.number\n[SQL: INSERT INTO number (id) "
           "VALUES (?)]\n[parameters: ('x',)]\n(Background on this error at: https://sqlalche.me/e/20/gkpj)")
    assert clean_text(raw) == "UNIQUE constraint failed: number.number"
    with pytest.raises(ValueError):
        jobs.register("x" * 41, _count)
    with pytest.raises(ValueError):
        jobs.register("test_count", _count, rerun="sometimes")


def test_the_scheduler_lease_has_one_holder(db):
    a, b = "another-host:1:aaaa", "another-host:2:bbbb"
    first = leases.hold(db, a, 2)
    assert first.held and first.acquired
    assert not leases.hold(db, b, 2).held  # a holds it
    assert leases.hold(db, a, 2).held  # renewed
    later = utcnow() + timedelta(seconds=3)  # a stopped renewing: lapsed
    taken = leases.hold(db, b, 2, now=later)
    assert taken.held and taken.acquired and taken.previous == a
    assert not leases.hold(db, a, 2, now=later).held
    leases.release(db, b)
    assert leases.hold(db, a, 2).held  # released: taken at once
