"""Run a use case as one unit of work, again from the start when the database says to retry.

Racing orders meet deadlocks, serialization failures, lock timeouts, a stale row (the version
counters of units and reservations) or two inserts of the same order_ref; none of them is the
client's business. The use case is run again in a fresh transaction (which sees what the winner
committed) after a short random pause; only when every attempt failed is it `503 unavailable`.
A unit taken between the design and its pre-occupation raises `Retry` for the same reason.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from resource_mgr.db import Database, UnitOfWork
from resource_mgr.errors import DomainError, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# deadlock, serialization failure, lock not available, unique violation (a concurrent insert)
_PG_RETRY = {"40P01", "40001", "55P03", "23505"}


class Retry(Exception):
    """Raised inside a use case: what it read changed under it; run it again."""

    def __init__(self, why: str, last_error: DomainError | None = None) -> None:
        super().__init__(why)
        self.last_error = last_error


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (StaleDataError, Retry)):
        return True
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
        if code in _PG_RETRY:
            return True
        if isinstance(exc, IntegrityError):
            return "UNIQUE constraint failed: reservation" in str(orig)
        return "database is locked" in str(orig)
    return False


def run(db: Database, principal: str, attempts: int, use_case: Callable[[UnitOfWork], T]) -> T:
    """`use_case(uow)` in a unit of work that is committed when it returns."""
    for attempt in range(1, attempts + 1):
        try:
            with db.unit_of_work(principal=principal) as uow:
                result = use_case(uow)
                uow.commit()
                return result
        except Exception as exc:  # noqa: BLE001 - sorted below
            if not _retryable(exc):
                raise
            if attempt == attempts:
                if isinstance(exc, Retry) and exc.last_error is not None:
                    raise exc.last_error from None
                raise Unavailable("the order could not be completed against concurrent changes; retry",
                                  retry_after=1) from exc
            log.info("retrying an order use case (attempt %d of %d): %s", attempt, attempts,
                     type(exc).__name__)
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))
    raise AssertionError("unreachable")
