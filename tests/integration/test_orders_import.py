"""Imported pre-occupations (preoccupations.csv) become reservation rows: one per reservation
id, holding exactly the units the file names, cancellable, not committable here."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from resource_mgr.bulk.generator import generate
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.clock import utcnow
from resource_mgr.config import load_settings
from resource_mgr.errors import Conflict
from resource_mgr.occupancy.models import SharedHold, Unit
from resource_mgr.orders import completion, services
from resource_mgr.orders.models import Reservation
from resource_mgr.security.principal import SYSTEM


def test_imported_preoccupations_are_reservations(db, tmp_path):
    generate("XS", 5, tmp_path / "xs", as_of=datetime.now(timezone.utc).replace(microsecond=0))
    assert import_bundle(db, str(tmp_path / "xs")).written
    with db.read_session() as s:
        rows = s.scalars(select(Reservation).order_by(Reservation.id)).all()
        assert rows
        for res in rows:
            held = set(s.scalars(select(Unit.id).where(Unit.reservation_id == res.id))) | set(
                s.scalars(select(SharedHold.unit_id).where(SharedHold.holder == res.id)))
            assert set(res.unit_ids) == held and res.order_ref == res.id and res.state.value == "preoccupied"
        first = rows[0]
    with db.unit_of_work() as uow:
        with pytest.raises(Conflict):
            completion.commit(uow.session, principal=SYSTEM, settings=load_settings(environ={}), now=utcnow(),
                              reservation_id=first.id, work_order_ref="W")
    with db.unit_of_work() as uow:
        services.cancel(uow.session, principal=SYSTEM, now=utcnow(), reservation_id=first.id)
        uow.commit()
    with db.read_session() as s:
        assert not s.scalars(select(Unit.id).where(Unit.reservation_id == first.id)).all()
        assert not s.scalars(select(SharedHold.id).where(SharedHold.holder == first.id)).all()
