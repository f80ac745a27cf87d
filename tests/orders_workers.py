"""What the processes of the orders race tests run: each its own interpreter and engine, all
released at once by a barrier, each one order through the whole use case (with its retries)."""
from __future__ import annotations

from typing import Any

from resource_mgr.db import Database


def reserve(url: str, barrier: Any, results: Any, n: int, args: dict[str, Any]) -> None:
    from resource_mgr import models  # noqa: F401  (complete the mappers)
    from resource_mgr.clock import utcnow
    from resource_mgr.config import load_settings
    from resource_mgr.errors import DomainError
    from resource_mgr.orders import retry, services
    from resource_mgr.security.principal import Principal
    from resource_mgr.states import Role

    db = Database(url)
    settings = load_settings(environ={}, database_url=url)
    who = Principal(name=f"user:counter{n}", roles=frozenset({Role.SALES}), local_network_ids=None)
    order_ref = args.get("order_ref") or f"RACE-{n}"
    try:
        barrier.wait(timeout=60)

        def use_case(uow: Any) -> str:
            res, created = services.reserve(uow.session, principal=who, settings=settings, now=utcnow(),
                                            order_ref=order_ref, action="new", products=args["products"],
                                            address_id=args["address_id"])
            return f"{'created' if created else 'same'} {res.id}"

        outcome = retry.run(db, who.name, settings.orders_retry_attempts, use_case)
    except DomainError as exc:
        outcome = exc.code
    except Exception as exc:  # reported by the test
        outcome = f"error {type(exc).__name__}: {str(exc)[:300]}"
    finally:
        db.dispose()
    results.put(outcome)
