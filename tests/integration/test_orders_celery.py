"""Expiry with a real Celery worker on Redis (RMGR_TEST_CELERY_BROKER_URL): the sweep task marks
an expired reservation expired, frees its units and writes `reservation.expired`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.events.models import Event
from resource_mgr.jobs import services as jobs
from resource_mgr.occupancy.models import Unit
from resource_mgr.orders import services
from resource_mgr.orders.models import Reservation
from resource_mgr.security.principal import Principal
from resource_mgr.states import JobState, Role

from interfaces.tasks import dispatch
from tests.design_world import DesignWorld
from tests.integration.test_celery_worker import BROKER, redis_db, wait_for, worker  # noqa: F401  (fixtures)


@pytest.mark.celery_worker
def test_a_real_worker_expires_reservations(db, worker):
    proc, log = worker
    with db.unit_of_work() as uow:
        w = DesignWorld(uow.session)
        f = w.ftth(ports=2)
        w.cover(f.box, f.building)
        uow.commit()
    settings = load_settings(environ={}, database_url=db.url, celery_broker_url=BROKER)
    alice = Principal(name="user:alice", roles=frozenset({Role.SALES}), local_network_ids=None)
    with db.unit_of_work() as uow:
        res, _ = services.reserve(uow.session, principal=alice, settings=settings, now=utcnow() - timedelta(hours=2),
                                  order_ref="CEL-1", action="new", products=["ftth_broadband"], address_id=f.building,
                                  ttl_hours=1)
        uow.commit()
    with db.unit_of_work() as uow:
        job = jobs.create_job(uow.session, "sweep_expired", {}, created_by="user:test")
        dispatch.enqueue(uow, db, settings, job.id)  # sent only after this commit
        uow.commit()
    done = wait_for(db, job.id, proc, log)
    assert done.state == JobState.SUCCEEDED, (done.errors, log.read_text())
    assert done.result["by_principal"] == {"user:alice": 1}
    with db.read_session() as s:
        assert s.get(Reservation, res.id).state.value == "expired"
        assert s.get(Unit, res.unit_ids[0]).reservation_id is None
        assert s.scalar(select(Event.id).where(Event.reservation_id == res.id, Event.type == "reservation.expired"))
