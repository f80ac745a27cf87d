"""What the design cache tests run in another OS process (its own interpreter, engine and
per-process design cache): one change of unit state through the ledger, committed."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from resource_mgr.db import Database


def change_units(url: str, action: str, unit_ids: list[str], reservation_id: str, until: datetime | None,
                 results: Any) -> None:
    from resource_mgr import models  # noqa: F401  (complete the mappers)
    from resource_mgr.clock import utcnow
    from resource_mgr.occupancy import ledger
    from resource_mgr.occupancy.models import Change

    db = Database(url)
    try:
        with db.unit_of_work() as uow:
            change = Change(principal="test:other-process", at=utcnow(), reservation_id=reservation_id,
                            order_ref=reservation_id)
            if action == "preoccupy":
                ledger.preoccupy(uow.session, unit_ids, change, reservation_id=reservation_id, until=until)
            else:
                ledger.release_preoccupation(uow.session, unit_ids, change, reservation_id=reservation_id)
            uow.commit()
        results.put("ok")
    except Exception as exc:  # reported by the test
        results.put(f"error {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        db.dispose()
