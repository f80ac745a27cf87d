"""Rate limits per principal (Flask-Limiter).

- Key: the authenticated principal's name ("user:alice", "system:bss"); a request without a valid
  token is counted against its client address, so guessing tokens or passwords is limited too.
- One application-wide limit per key (settings.ratelimit_default, e.g. "600/minute"), shared by all
  endpoints; the password login (POST /api/v1/auth/token) has its own stricter limit per address,
  and every login answer (201, 401, 429 ...) carries that limit's X-RateLimit-Limit/-Remaining/
  -Reset, the others the app-wide limit's.
- Storage: settings.ratelimit_storage_url — memory:// for the embedded single process, redis://
  when several API processes must share the counts.
- A breach answers 429 problem+json (code `rate_limited`) with Retry-After in seconds.
- Health and the OpenAPI document are exempt (load balancers and scrapers poll them).

Request size: MAX_CONTENT_LENGTH (settings.max_request_bytes) makes Werkzeug refuse larger bodies;
errors.py answers 413 problem+json (code `too_large`).
"""
from __future__ import annotations

import math
import threading
import time

from apiflask import APIFlask
from flask import Response, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits.storage import MemoryStorage
from werkzeug.exceptions import RequestEntityTooLarge

from interfaces.http.errors import problem

LOGIN_LIMIT = "20/minute"
EXEMPT_ENDPOINTS = frozenset({"health.health", "openapi.spec", "openapi.docs", "openapi.swagger_ui_static",
                              "openapi.swagger_ui_oauth_redirect", "static"})


class ProcessMemoryStorage(MemoryStorage):
    """The in-process counts (memory://) without a thread per request: limits' MemoryStorage
    starts a 10 ms timer thread to drop old entries whenever none is running, i.e. at nearly
    every request of a busy server (a thread start is tens of microseconds of CPU, and under
    load milliseconds of waiting to be scheduled). Here the clean-up runs at most once a second.
    What is refused does not change: each hit counts only the entries inside its window."""

    STORAGE_SCHEME = ["rmgr-memory"]
    EXPIRY_INTERVAL_SECONDS = 1.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # the private hook MemoryStorage calls
        if not self.timer.is_alive():
            self.timer = threading.Timer(self.EXPIRY_INTERVAL_SECONDS, self._MemoryStorage__expire_events)
            self.timer.daemon = True
            self.timer.start()


def storage_uri(url: str) -> str:
    """settings.ratelimit_storage_url as Flask-Limiter is given it: memory:// → ProcessMemoryStorage."""
    return "rmgr-memory://" + url[len("memory://"):] if url.startswith("memory://") else url


def rate_limit_key() -> str:
    principal = g.get("principal")
    if principal is not None:
        return "p:" + principal.name
    return "a:" + (request.remote_addr or "unknown")


def limiter(app: APIFlask) -> Limiter:
    return app.extensions["rmgr_limiter"]


def install(app: APIFlask) -> None:
    settings = app.extensions["rmgr"].settings
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    lim = Limiter(
        rate_limit_key,
        application_limits=[settings.ratelimit_default],
        application_limits_exempt_when=lambda: request.endpoint in EXEMPT_ENDPOINTS or request.endpoint is None,
        storage_uri=storage_uri(settings.ratelimit_storage_url),
        strategy="moving-window",
        key_prefix="rmgr",
        # The storage being down must not take the API down: count in memory meanwhile.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
    )
    # Flask-Limiter adds Retry-After to every response, which on a success would tell clients to
    # back off for no reason. After-request hooks run in reverse order, so this one, registered
    # before the limiter's, runs after it.
    @app.after_request
    def _retry_after_only_when_refused(response):  # noqa: ANN001, ANN202
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        # A view with a limit of its own (the login) reports that limit, not the app-wide one.
        for name, value in (g.pop("rate_limit_headers", None) or {}).items():
            response.headers[name] = value
        return response

    lim.init_app(app)
    app.extensions["rmgr_limiter"] = lim

    def _refuse_large_body() -> None:
        """Refuse a declared oversized body at once, whether or not the endpoint reads a body
        (Werkzeug alone enforces MAX_CONTENT_LENGTH only when the body is read)."""
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if limit and request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge(f"the request body is {request.content_length} bytes; at most {limit} "
                                        f"are accepted")

    app.before_request(_refuse_large_body)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(error: RateLimitExceeded) -> Response:
        retry_after = 1
        current = lim.current_limit
        if current is not None:
            retry_after = max(1, math.ceil(current.reset_at - time.time()))
        return problem(429, "rate_limited",
                       f"rate limit {error.description} exceeded for {rate_limit_key()[2:]}; retry after "
                       f"{retry_after} s", headers={"Retry-After": str(retry_after)})


def login_limit(view):  # type: ignore[no-untyped-def]
    """Decorator for the password login: LOGIN_LIMIT per client address, on top of the default.
    The limiter is found at request time (one per app)."""
    from functools import wraps

    @wraps(view)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        from flask import current_app
        from limits import parse

        lim = current_app.extensions.get("rmgr_limiter")
        if lim is not None and lim.enabled:
            item = parse(LOGIN_LIMIT)
            key = ("rmgr", "login", request.remote_addr or "unknown")
            allowed = lim.limiter.hit(item, *key)
            reset, remaining = lim.limiter.get_window_stats(item, *key)
            # Every answer of the login, refused or not, carries the login limit's own figures.
            g.rate_limit_headers = {"X-RateLimit-Limit": str(item.amount), "X-RateLimit-Remaining": str(remaining),
                                    "X-RateLimit-Reset": str(int(reset) + 1)}
            if not allowed:
                retry_after = max(1, math.ceil(reset - time.time()))
                return problem(429, "rate_limited", f"too many logins from this address ({LOGIN_LIMIT}); retry "
                               f"after {retry_after} s", headers={"Retry-After": str(retry_after)})
        return view(*args, **kwargs)

    return wrapper


class WaitingGate:
    """A counting semaphore that waits a little for a slot: bounds the work an interactive read
    (the address search) puts on the database without refusing a burst of a counter's clients."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots) if slots else None

    def enter(self, wait_seconds: float) -> bool:
        return self._free is None or self._free.acquire(timeout=wait_seconds)

    def leave(self) -> None:
        if self._free is not None:
            self._free.release()
