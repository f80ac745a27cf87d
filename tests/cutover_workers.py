"""What the processes of the cutover race test run (each its own interpreter and engine), released
together by a barrier: one locks the cutover, the others reserve (tests/orders_workers.py)."""
from __future__ import annotations

from typing import Any

from resource_mgr.db import Database


def lock(url: str, barrier: Any, results: Any, cutover_id: str) -> None:
    from resource_mgr import models  # noqa: F401  (complete the mappers)
    from resource_mgr.clock import utcnow
    from resource_mgr.config import load_settings
    from resource_mgr.cutovers import services
    from resource_mgr.errors import DomainError
    from resource_mgr.orders import retry
    from resource_mgr.security.principal import Principal
    from resource_mgr.states import Role

    db = Database(url)
    settings = load_settings(environ={}, database_url=url)
    who = Principal(name="user:planner", roles=frozenset({Role.PLANNER}), local_network_ids=None)
    try:
        barrier.wait(timeout=60)

        def use_case(uow: Any) -> str:
            c = services.lock_cutover(uow.session, principal=who, settings=settings, now=utcnow(),
                                      cutover_id=cutover_id)
            return c.state.value

        outcome = retry.run(db, who.name, settings.orders_retry_attempts, use_case)
    except DomainError as exc:
        outcome = f"lock {exc.code}"
    except Exception as exc:  # reported by the test
        outcome = f"error {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        db.dispose()
    results.put(outcome)
