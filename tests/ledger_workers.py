"""What the processes of the ledger race tests run: each its own interpreter and engine."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from resource_mgr.clock import utcnow
from resource_mgr.db import Database
from resource_mgr.errors import NoCapacity

HOLD = 0.3  # seconds between reading the unit and changing it, and again before committing


def contend(url: str, barrier: Any, results: Any, n: int, op: str, args: dict[str, Any]) -> None:
    from resource_mgr import models  # noqa: F401  (complete the mappers)
    from resource_mgr.occupancy import ledger
    from resource_mgr.occupancy.models import Change, Unit
    from sqlalchemy import select

    db = Database(url)
    try:
        barrier.wait(timeout=60)
        now = utcnow()
        change = Change(f"counter{n}", order_ref=f"ORD-{n}", at=now)
        with db.unit_of_work() as uow:
            s = uow.session
            if op == "preoccupy":  # a plain transition on a unit read without any lock
                unit = s.get(Unit, args["unit_id"])
                time.sleep(HOLD)
                unit.preoccupy(change, reservation_id=f"R{n}", until=now + timedelta(hours=1))
            elif op == "occupy":
                unit = s.get(Unit, args["unit_id"])
                time.sleep(HOLD)
                unit.occupy(change, service_id=args["services"][n])
            elif op == "allocate":  # choosing among the free ports of a box
                s.scalars(select(Unit).where(Unit.owner_id == args["owner_id"])).all()
                time.sleep(HOLD)
                ledger.allocate(s, change, among=[Unit.owner_id == args["owner_id"]], reservation_id=f"R{n}",
                                until=now + timedelta(hours=1))
            # and commits a moment after changing it: without the lock, every contender has
            # re-read the unit as free by then
            time.sleep(HOLD)
            uow.commit()
        outcome = "won"
    except NoCapacity:
        outcome = "no_capacity"
    except Exception as exc:  # reported by the test
        outcome = f"error {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        db.dispose()
    results.put(outcome)
