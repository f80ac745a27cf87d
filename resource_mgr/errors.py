"""Domain errors. Each carries the stable machine `code` of API.md and, where it applies, the
field or unit it is about; interfaces turn them into problem+json without knowing each one."""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "invalid"
    status = 400

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class Invalid(DomainError):
    code, status = "invalid", 422


class NotFound(DomainError):
    code, status = "not_found", 404


class Conflict(DomainError):
    code, status = "conflict", 409


class IllegalTransition(Conflict):
    """A state change the lifecycle does not allow: says what, from which state, and why."""


class NoCapacity(DomainError):
    code, status = "no_capacity", 409


class Locked(DomainError):
    code, status = "locked", 409


class Expired(DomainError):
    code, status = "expired", 409


class Quarantined(DomainError):
    code, status = "quarantined", 409


class Unauthorized(DomainError):
    code, status = "unauthorized", 401


class Forbidden(DomainError):
    code, status = "forbidden", 403


class Unavailable(DomainError):
    code, status = "unavailable", 503
