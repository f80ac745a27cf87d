"""Expiry through the sweep job (the one Celery beat and the embedded scheduler run): expired
reservations are marked, their units freed with history rows naming them, `reservation.expired`
sent, and the trust limits count one expiry per reservation, even when a unit of it was taken
over by a new order before the sweep ran."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from job_helpers import load, new_job
from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.events.models import Event
from resource_mgr.jobs import services as jobs
from resource_mgr.occupancy.models import History, Unit
from resource_mgr.occupancy.sweep import JOB_KIND
from resource_mgr.orders import services
from resource_mgr.orders.models import Reservation
from resource_mgr.security.models import PrincipalTrust
from resource_mgr.security.principal import Principal
from resource_mgr.states import JobState, Occupancy, Role
from tests.design_world import DesignWorld


def who(name: str) -> Principal:
    return Principal(name=name, roles=frozenset({Role.SALES}), local_network_ids=None)


def test_the_sweep_job_expires_reservations_and_counts_each_once(db):
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        f = w.ftth(ports=2)
        w.cover(f.box, f.building)
        uow.commit()
    settings = load_settings(environ={}, database_url=db.url)
    past = utcnow() - timedelta(hours=3)
    with db.unit_of_work() as uow:  # two orders of alice, made 3 h ago for 1 h
        a, _ = services.reserve(uow.session, principal=who("user:alice"), settings=settings, now=past,
                                order_ref="X-1", action="new", products=["ftth_broadband"], address_id=f.building,
                                ttl_hours=1)
        b, _ = services.reserve(uow.session, principal=who("user:alice"), settings=settings, now=past,
                                order_ref="X-2", action="new", products=["ftth_broadband"], address_id=f.building,
                                ttl_hours=1)
        uow.commit()
    a_port = a.unit_ids[0]
    with db.unit_of_work() as uow:  # bob's order takes X-1's box port before any sweep: it counts as free
        c, _ = services.reserve(uow.session, principal=who("user:bob"), settings=settings, now=utcnow(),
                                order_ref="Y-1", action="new", products=["ftth_broadband"], address_id=f.building)
        uow.commit()
    assert a_port in c.unit_ids or b.unit_ids[0] in c.unit_ids
    job_id = new_job(db, JOB_KIND)
    jobs.run_job(db, job_id)
    job = load(db, job_id)
    assert job.state == JobState.SUCCEEDED, job.errors
    assert job.result["by_principal"] == {"user:alice": 2}
    with db.read_session() as s:
        assert {r.order_ref: r.state.value for r in s.scalars(select(Reservation))} == {
            "X-1": "expired", "X-2": "expired", "Y-1": "preoccupied"}
        assert s.get(PrincipalTrust, "user:alice").expired == 2
        taken = s.get(Unit, c.unit_ids[0])
        assert taken.reservation_id == c.id and taken.occupancy == Occupancy.PREOCCUPIED
        other = (set(a.unit_ids) | set(b.unit_ids)) - set(c.unit_ids)
        assert all(s.get(Unit, u).spare(utcnow()) > 0 for u in other)
        expired_rows = s.scalars(select(History).where(History.action == "expire")).all()
        assert {h.reservation_id for h in expired_rows} == {a.id, b.id}
        assert {e.reservation_id for e in s.scalars(select(Event).where(Event.type == "reservation.expired"))} == {
            a.id, b.id}
    # a second sweep finds nothing left
    again = new_job(db, JOB_KIND)
    jobs.run_job(db, again)
    assert load(db, again).result["by_principal"] == {}


def test_the_trust_quota_is_checked_before_a_preoccupation(db):
    import pytest

    from resource_mgr.security.trust import QuotaExceeded

    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        f = w.ftth(ports=3)
        w.cover(f.box, f.building)
        uow.commit()
    settings = load_settings(environ={}, database_url=db.url, quota_preoccupations=1)
    alice = who("user:alice")
    with db.unit_of_work() as uow:
        services.reserve(uow.session, principal=alice, settings=settings, now=utcnow(), order_ref="Q-1",
                         action="new", products=["ftth_broadband"], address_id=f.building)
        uow.commit()
    with db.unit_of_work() as uow:
        with pytest.raises(QuotaExceeded) as refused:
            services.reserve(uow.session, principal=alice, settings=settings, now=utcnow(), order_ref="Q-2",
                             action="new", products=["ftth_broadband"], address_id=f.building)
        assert refused.value.code == "quota_exceeded"
        # the same order again is no new pre-occupation: answered, not refused
        res, created = services.reserve(uow.session, principal=alice, settings=settings, now=utcnow(),
                                        order_ref="Q-1", action="new", products=["ftth_broadband"],
                                        address_id=f.building)
        assert not created
