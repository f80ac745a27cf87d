"""Jobs: the runner (claim once, failures recorded, never left running), the embedded
dispatcher (after commit, in a thread), and the expiry sweep on a real database."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory import services as inv
from resource_mgr.jobs import services as jobs
from resource_mgr.jobs.models import Job
from resource_mgr.occupancy import sweep as sweeper
from resource_mgr.occupancy.models import Change, History, SharedHold, Unit
from resource_mgr.states import JobState, Occupancy

from interfaces.tasks import dispatch
from tests.job_helpers import load, new_job

calls: list[str] = []


def _ok(db, job_id, progress):
    calls.append(job_id)
    progress(1, 2)
    with db.read_session() as s:
        assert s.get(Job, job_id).done == 1
    progress(2, 2)
    return {"answer": 42}


def _boom(db, job_id, progress):
    progress(1, 10)
    raise Invalid("row 3: bad number", field="number")


def _interrupted(db, job_id, progress):
    raise KeyboardInterrupt()


def _slow(db, job_id, progress):
    calls.append(job_id)
    time.sleep(0.5)
    return {}


for _kind, _handler in {"test_ok": _ok, "test_boom": _boom, "test_interrupt": _interrupted,
                        "test_slow": _slow}.items():
    jobs.register(_kind, _handler)


def test_a_job_runs_once_and_records_its_result(db):
    job_id = new_job(db, "test_ok")
    assert load(db, job_id).state == JobState.QUEUED
    assert jobs.run_job(db, job_id) == JobState.SUCCEEDED
    job = load(db, job_id)
    assert (job.state, job.result, job.done, job.total, job.progress) == (JobState.SUCCEEDED, {"answer": 42}, 2, 2, 1.0)
    assert job.started_at <= job.finished_at
    # a second delivery (Celery redelivers with acks_late) does nothing
    assert jobs.run_job(db, job_id) == JobState.SUCCEEDED
    assert calls.count(job_id) == 1


def test_two_runners_at_once_do_the_work_once(db):
    job_id = new_job(db, "test_slow")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(jobs.run_job(db, job_id))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls.count(job_id) == 1
    assert JobState.SUCCEEDED in results and load(db, job_id).state == JobState.SUCCEEDED


def test_a_failing_job_is_failed_with_its_error(db):
    job_id = new_job(db, "test_boom")
    assert jobs.run_job(db, job_id) == JobState.FAILED
    job = load(db, job_id)
    assert job.state == JobState.FAILED and job.finished_at is not None
    assert job.errors == [{"type": "Invalid", "detail": "row 3: bad number", "code": "invalid", "field": "number"}]
    assert "bad number" in job.message and job.done == 1


def test_an_interrupted_job_is_not_left_running(db):
    job_id = new_job(db, "test_interrupt")
    with pytest.raises(KeyboardInterrupt):
        jobs.run_job(db, job_id)
    assert load(db, job_id).state == JobState.FAILED


def test_unknown_kinds_and_jobs_are_refused(db):
    with db.unit_of_work() as uow:
        with pytest.raises(Invalid) as err:
            jobs.create_job(uow.session, "no_such_kind", {})
        assert err.value.field == "kind"
    with pytest.raises(NotFound):
        jobs.run_job(db, "01NOSUCHJOB00000000000000")
    with db.read_session() as s:
        assert s.scalars(select(Job)).all() == []


def wait(db, job_id: str, timeout: float = 20) -> Job:
    deadline = time.monotonic() + timeout
    while (job := load(db, job_id)) is None or job.state in (JobState.QUEUED, JobState.RUNNING):
        assert time.monotonic() < deadline, f"job {job_id} still {job and job.state}"
        time.sleep(0.05)
    return job


def test_embedded_dispatch_runs_after_commit_in_a_thread(db):
    settings = load_settings(environ={}, database_url=db.url)
    with db.unit_of_work() as uow:
        job = jobs.create_job(uow.session, "test_ok", {})
        dispatch.enqueue(uow, db, settings, job.id)
        time.sleep(0.2)
        assert job.id not in calls  # nothing runs before the commit
        uow.commit()
    assert wait(db, job.id).state == JobState.SUCCEEDED
    # rolled back: never sent, never run
    with db.unit_of_work() as uow:
        lost = jobs.create_job(uow.session, "test_ok", {})
        dispatch.enqueue(uow, db, settings, lost.id)
    time.sleep(0.3)
    assert lost.id not in calls and load(db, lost.id) is None


# -- the sweep ----------------------------------------------------------------------------------

@pytest.fixture
def box(db):
    """Two local networks, each with a FAT-8 (exclusive box ports) and a 1:8 splitter (shared input)."""
    out = {}
    with db.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        for code, area in (("GZ", "20"), ("FS", "757")):
            ln = inv.create_local_network(s, code=code, name=code, area_code=area)
            fat = inv.create_from_template(s, template="FAT-8", local_network_id=ln.id)
            spl = inv.create_from_template(s, template="SPLITTER-1:8", local_network_id=ln.id)
            out[code] = {"ln": ln.id, "ports": [u.id for u in sorted(inv.units_of(s, fat.id, "box_port"),
                                                                     key=lambda u: u.seq)],
                         "shared": inv.units_of(s, spl.id, "splitter_in")[0].id}
        uow.commit()
    return out


def hold(db, unit_id: str, who: str, reservation: str, hours: float, *, at_hours: float = -48) -> None:
    now = utcnow()
    with db.unit_of_work() as uow:
        unit = uow.session.get(Unit, unit_id)
        unit.preoccupy(Change(principal=who, reservation_id=reservation, at=now + timedelta(hours=at_hours)),
                       reservation_id=reservation, until=now + timedelta(hours=hours))
        uow.commit()


def test_sweep_frees_expired_units_and_counts_reservations_per_principal(db, box):
    gz = box["GZ"]
    hold(db, gz["ports"][0], "user:alice", "R1", -1)  # expired
    hold(db, gz["ports"][1], "user:alice", "R1", -1)  # same reservation: one expiry for alice
    hold(db, gz["ports"][2], "user:bob", "R2", -2)  # expired
    hold(db, gz["ports"][3], "user:bob", "R3", +5)  # live: untouched
    hold(db, gz["shared"], "user:carol", "R4", -1)  # expired shared hold
    hold(db, gz["shared"], "user:bob", "R3", +5)  # live shared hold: kept
    with db.unit_of_work() as uow:
        counts = sweeper.sweep_expired(uow.session, utcnow())
        uow.commit()
    assert counts == {"user:alice": 1, "user:bob": 1, "user:carol": 1}
    with db.read_session() as s:
        units = {u.id: u for u in s.scalars(select(Unit).where(Unit.id.in_(gz["ports"][:4] + [gz["shared"]])))}
        for uid in gz["ports"][:3]:
            assert (units[uid].occupancy, units[uid].reservation_id, units[uid].preoccupied_until) == \
                (Occupancy.FREE, None, None)
        assert units[gz["ports"][3]].occupancy == Occupancy.PREOCCUPIED
        shared = units[gz["shared"]]
        assert [h.holder for h in shared.holds] == ["R3"] and shared.occupancy == Occupancy.PREOCCUPIED
        rows = s.scalars(select(History).where(History.action == "expire").order_by(History.resource_id)).all()
        assert sorted((r.resource_id, r.reservation_id) for r in rows) == sorted(
            [(gz["ports"][0], "R1"), (gz["ports"][1], "R1"), (gz["ports"][2], "R2"), (gz["shared"], "R4")])
        assert {r.principal for r in rows} == {"system:sweeper"}
        assert all(r.before != r.after for r in rows)
    # nothing left to sweep: a second sweep is a no-op
    with db.unit_of_work() as uow:
        assert sweeper.sweep_expired(uow.session, utcnow()) == {}
        uow.commit()


def test_the_latest_preoccupier_is_the_one_counted(db, box):
    port = box["GZ"]["ports"][0]
    hold(db, port, "user:alice", "R1", +1, at_hours=-5)
    hold(db, port, "system:bss", "R1", -1, at_hours=-3)  # the same order re-held (extended) by BSS
    with db.unit_of_work() as uow:
        assert sweeper.sweep_expired(uow.session, utcnow()) == {"system:bss": 1}
        uow.commit()


def test_sweep_job_is_scoped_and_records_trust(db, box):
    from resource_mgr.security.models import PrincipalTrust

    hold(db, box["GZ"]["ports"][0], "user:alice", "R1", -1)
    hold(db, box["FS"]["ports"][0], "user:alice", "R9", -1)
    with db.unit_of_work() as uow:
        job = jobs.create_job(uow.session, sweeper.JOB_KIND, {"local_network_ids": [box["GZ"]["ln"]]})
        uow.commit()
    assert jobs.run_job(db, job.id) == JobState.SUCCEEDED
    result = load(db, job.id).result
    assert result["units"] == 1 and result["by_principal"] == {"user:alice": 1}
    with db.read_session() as s:
        assert s.get(Unit, box["FS"]["ports"][0]).occupancy == Occupancy.PREOCCUPIED
        assert result["trust_recorded"] is True
        trust = s.scalar(select(PrincipalTrust).where(PrincipalTrust.principal == "user:alice"))
        assert trust.expired == 1


def test_sweep_in_batches_counts_a_reservation_once(db, box, monkeypatch):
    monkeypatch.setattr(sweeper, "BATCH", 2)
    for port in box["GZ"]["ports"][:5]:
        hold(db, port, "user:alice", "R1", -1)
    job_id = new_job(db, sweeper.JOB_KIND)
    assert jobs.run_job(db, job_id) == JobState.SUCCEEDED
    job = load(db, job_id)
    assert job.result["units"] == 5 and job.result["reservations"] == 1
    assert job.result["by_principal"] == {"user:alice": 1}
    assert (job.done, job.total) == (5, 5)
    assert job.message == "freed 5 unit(s) of 1 expired pre-occupation(s)"
    with db.read_session() as s:
        assert s.scalar(select(SharedHold.id)) is None
        assert {u.occupancy for u in s.scalars(select(Unit).where(Unit.id.in_(box["GZ"]["ports"])))} == {"free"}


# -- the schedule ---------------------------------------------------------------------------------

def _sweep_jobs(db) -> list[Job]:
    with db.read_session() as s:
        return list(s.scalars(select(Job).where(Job.kind == sweeper.JOB_KIND)))


def test_celery_beat_sweeps_on_the_configured_schedule(db, box, database_url):
    from interfaces.tasks.celery_app import SWEEP_EXPIRED, make_celery
    from resource_mgr.config import load_settings

    settings = load_settings({}, database_url=database_url, sweep_interval_seconds=120)
    app = make_celery(settings)
    entry = app.conf.beat_schedule["sweep-expired-preoccupations"]
    assert (entry["task"], entry["schedule"]) == (SWEEP_EXPIRED, 120.0)
    hold(db, box["GZ"]["ports"][0], "user:alice", "R1", -1)
    app.tasks[SWEEP_EXPIRED]()  # what beat sends, run here
    [job] = _sweep_jobs(db)
    assert job.state == "succeeded" and job.created_by == "system:scheduler"
    with db.read_session() as s:
        assert s.get(Unit, box["GZ"]["ports"][0]).occupancy == Occupancy.FREE


def test_embedded_scheduler_sweeps_without_a_broker(db, box, database_url):
    from interfaces.tasks import dispatch
    from resource_mgr.config import load_settings

    hold(db, box["FS"]["ports"][0], "user:bob", "R9", -1)
    settings = load_settings({}, database_url=database_url, sweep_interval_seconds=1)
    assert dispatch.start_embedded_scheduler(db, settings.model_copy(update={"celery_broker_url": "redis://x"})) is None
    thread = dispatch.start_embedded_scheduler(db, settings)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(j.state == "succeeded" for j in _sweep_jobs(db)):
            time.sleep(0.2)
        with db.read_session() as s:
            assert s.get(Unit, box["FS"]["ports"][0]).occupancy == Occupancy.FREE
    finally:
        dispatch._stop.set()
        thread.join(timeout=10)
        dispatch._stop.clear()
    assert not thread.is_alive()
