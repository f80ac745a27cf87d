"""Delivering the outbox: claim due deliveries, POST them, record the answers.

- **Claim**: one transaction picks due pending rows whose lease is free or lapsed and that no
  earlier pending delivery of the same order_ref to the same subscription holds back (so at most
  the head of each order's queue), takes a lease on them (owner, expiry) and counts the attempt.
  PostgreSQL skips rows another runner is claiming (FOR UPDATE SKIP LOCKED); SQLite's write lock
  serialises claims. Two runners therefore never post the same row at once, and a runner that
  dies leaves rows whose lease lapses (at once when it was a process of this host that no longer
  exists, as for jobs) and another takes them (at least once).
- **Post**, outside any transaction: `POST url` with the JSON body, `X-Rmgr-Event`, and with a
  secret `X-Rmgr-Signature: sha256=<hex HMAC-SHA256 of the raw body>`. A 2xx acknowledges;
  another status (redirects are not followed), a connection error or a timeout is a failure.
- **Record**, only for rows this runner still holds: delivered, or due again after an
  exponential backoff (base × 2^(attempts−1), at most the max delay), or failed (given up) once
  the attempts or the give-up time are used. A given-up row no longer holds its order back.

The job kind `deliver_events` drains the outbox with these steps until nothing is due, for a
bounded time; it is idempotent (running it twice delivers nothing twice at once: the leases).
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from resource_mgr.clock import utcnow
from resource_mgr.db import Database
from resource_mgr.events.models import Delivery, Event, Subscription
from resource_mgr.events.services import event_body
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.jobs import leases
from resource_mgr.states import DeliveryState, JobState

log = logging.getLogger("rmgr.events")

JOB_KIND = "deliver_events"
CREATED_BY = "system:events"
BATCH = 10  # rows claimed per pass: each pass posts them (a few at once), then records them
POSTERS = 4  # posts of one pass in flight at once
# A job stops draining after this long (the next kick or poll starts another), so a steady
# stream of events never holds one pool thread or worker for ever.
RUN_SECONDS = 300
USER_AGENT = "rmgr-webhooks/1"


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_seconds: float = 10.0
    retry_base_seconds: float = 5.0
    retry_max_delay_seconds: float = 1800.0
    max_attempts: int = 50
    give_up_seconds: float = 24 * 3600.0
    keep_days: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> "DeliveryPolicy":
        return cls(timeout_seconds=settings.event_delivery_timeout_seconds,
                   retry_base_seconds=settings.event_retry_base_seconds,
                   retry_max_delay_seconds=settings.event_retry_max_delay_seconds,
                   max_attempts=settings.event_max_attempts,
                   give_up_seconds=settings.event_give_up_hours * 3600.0, keep_days=settings.event_keep_days)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "DeliveryPolicy":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (values or {}).items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def lease_seconds(self) -> float:
        """Long enough for a whole pass of posts that all time out."""
        return self.timeout_seconds * (BATCH // POSTERS + 1) + 30.0

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after `attempts` failed ones."""
        return min(self.retry_max_delay_seconds, self.retry_base_seconds * 2 ** max(attempts - 1, 0))


def encode(body: dict[str, Any]) -> bytes:
    """The exact bytes posted (and signed)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def sign(secret: str, raw: bytes) -> str:
    """The X-Rmgr-Signature value: sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def verify(secret: str, raw: bytes, header: str | None) -> bool:
    """What a receiver does (and the tests): compare in constant time."""
    return bool(header) and hmac.compare_digest(sign(secret, raw), header)


# -- claiming -------------------------------------------------------------------------------------

def eligible(now: datetime, *, leased_here: bool = False) -> Any:
    """Due pending rows not held back by an earlier one of their order, whose lease is free or
    expired (or, `leased_here`, still running but held by a process of this host: its owner is
    checked to be alive by the caller)."""
    earlier = aliased(Delivery)
    held_back = exists().where(earlier.subscription_id == Delivery.subscription_id,
                               earlier.order_ref == Delivery.order_ref,
                               earlier.state == DeliveryState.PENDING, earlier.id < Delivery.id)
    lease = and_(Delivery.lease_expires_at > now, leases.owned_here_clause(Delivery.lease_owner)) if leased_here \
        else or_(Delivery.lease_expires_at.is_(None), Delivery.lease_expires_at <= now)
    return select(Delivery).where(
        Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_at <= now, lease,
        or_(Delivery.order_ref.is_(None), ~held_back)).order_by(Delivery.id)


def due(session: Session, now: datetime | None = None) -> bool:
    """Is any delivery waiting to be attempted now?"""
    stmt = eligible(now or utcnow()).with_only_columns(Delivery.id).limit(1)
    return session.scalar(stmt) is not None


@dataclass(frozen=True)
class Claimed:
    id: int
    event_id: str
    type: str
    url: str
    secret: str | None
    body: bytes


def claim(db: Database, owner: str, policy: DeliveryPolicy, now: datetime | None = None,
          limit: int = BATCH) -> list[Claimed]:
    now = now or utcnow()
    with db.unit_of_work(principal=CREATED_BY) as uow:
        s = uow.session
        skip_locked = s.get_bind().dialect.name == "postgresql"

        def pick(stmt: Any) -> list[Delivery]:
            return list(s.scalars(stmt.with_for_update(skip_locked=True, of=Delivery) if skip_locked else stmt))

        rows = pick(eligible(now).limit(limit))
        if len(rows) < limit:  # a runner of this host that died (a killed worker) frees its rows at once
            rows += [r for r in pick(eligible(now, leased_here=True).limit(limit - len(rows)))
                     if leases.alive_here(r.lease_owner) is False][:limit - len(rows)]
        if not rows:
            return []
        events = {e.id: e for e in s.scalars(select(Event).where(Event.id.in_({r.event_id for r in rows})))}
        subs = {x.id: x for x in s.scalars(select(Subscription).where(
            Subscription.id.in_({r.subscription_id for r in rows})))}
        codes = dict(s.execute(select(LocalNetwork.id, LocalNetwork.code).where(
            LocalNetwork.id.in_({e.local_network_id for e in events.values()}))).all())
        expires = now + timedelta(seconds=policy.lease_seconds)
        out = []
        for row in rows:
            event, sub = events.get(row.event_id), subs.get(row.subscription_id)
            if event is None or sub is None:  # being deleted with its subscription
                continue
            row.lease_owner, row.lease_expires_at = owner, expires
            row.attempts, row.last_attempt_at = (row.attempts or 0) + 1, now
            out.append(Claimed(id=row.id, event_id=event.id, type=event.type, url=sub.url, secret=sub.secret,
                               body=encode(event_body(event, codes.get(event.local_network_id)))))
        uow.commit()
    return out


# -- posting --------------------------------------------------------------------------------------

class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answering 3xx has not acknowledged: the redirect is its answer (a failure)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None


def post(item: Claimed, policy: DeliveryPolicy) -> Outcome:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Rmgr-Event": item.type,
               "X-Rmgr-Event-Id": item.event_id, "X-Rmgr-Delivery": str(item.id)}
    if item.secret:
        headers["X-Rmgr-Signature"] = sign(item.secret, item.body)
    request = urllib.request.Request(item.url, data=item.body, method="POST", headers=headers)
    try:
        with _opener.open(request, timeout=policy.timeout_seconds) as answer:
            answer.read(65536)
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        snippet = _snippet(exc)
        return Outcome(False, status, f"answered HTTP {status}" + (f": {snippet}" if snippet else ""))
    except (TimeoutError, socket.timeout):
        return Outcome(False, None, f"no answer within {policy.timeout_seconds:g} s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return Outcome(False, None, f"no answer within {policy.timeout_seconds:g} s")
        return Outcome(False, None, f"could not connect: {_words(reason)}")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Outcome(False, None, f"the exchange failed: {_words(exc)}")
    if 200 <= status < 300:
        return Outcome(True, status, None)
    return Outcome(False, status, f"answered HTTP {status}")


def _snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(200).decode("utf-8", "replace")
    except Exception:
        return ""
    return " ".join(text.split())[:200]


def _words(exc: Any) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


# -- recording ------------------------------------------------------------------------------------

def record(db: Database, owner: str, results: list[tuple[Claimed, Outcome]], policy: DeliveryPolicy,
           now: datetime | None = None) -> dict[str, int]:
    """Write the outcomes of the rows this runner still holds (a row deleted with its
    subscription, or taken over after a lapsed lease, is left to whoever has it)."""
    counts = {"delivered": 0, "retry": 0, "given_up": 0}
    if not results:
        return counts
    now = now or utcnow()
    with db.unit_of_work(principal=CREATED_BY) as uow:
        s = uow.session
        rows = {r.id: r for r in s.scalars(select(Delivery).where(Delivery.id.in_([c.id for c, _ in results]))
                                           .with_for_update())}
        for item, outcome in results:
            row = rows.get(item.id)
            if row is None or row.lease_owner != owner or row.state != DeliveryState.PENDING:
                continue
            row.lease_owner = row.lease_expires_at = None
            row.last_status, row.last_error = outcome.status, (outcome.error or None) and outcome.error[:300]
            if outcome.ok:
                row.state, row.delivered_at = DeliveryState.DELIVERED, now
                counts["delivered"] += 1
            elif row.attempts >= policy.max_attempts or \
                    now >= row.created_at + timedelta(seconds=policy.give_up_seconds):
                row.state = DeliveryState.FAILED
                counts["given_up"] += 1
                log.warning("event %s to %s given up after %d attempt(s): %s", item.event_id, item.url,
                            row.attempts, outcome.error)
            else:
                row.next_attempt_at = now + timedelta(seconds=policy.backoff(row.attempts))
                counts["retry"] += 1
        uow.commit()
    return counts


def deliver_due(db: Database, policy: DeliveryPolicy, *, owner: str | None = None,
                progress: Any = None, run_seconds: float = RUN_SECONDS) -> dict[str, int]:
    """Claim, post and record until nothing is due (or `run_seconds` passed)."""
    import time

    owner = owner or leases.new_owner()
    totals = {"delivered": 0, "retry": 0, "given_up": 0, "attempts": 0}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=POSTERS, thread_name_prefix="rmgr-webhook") as pool:
        while time.monotonic() - started < run_seconds:
            claimed = claim(db, owner, policy)
            if not claimed:
                break
            outcomes = list(pool.map(lambda c: post(c, policy), claimed))
            counts = record(db, owner, list(zip(claimed, outcomes)), policy)
            totals["attempts"] += len(claimed)
            for key, value in counts.items():
                totals[key] += value
            if progress is not None:
                progress(totals["attempts"], totals["attempts"])
    return totals


# -- forgetting -----------------------------------------------------------------------------------

PURGE_BATCH = 1000


def purge(db: Database, policy: DeliveryPolicy, now: datetime | None = None) -> int:
    """Forget deliveries finished (delivered or given up) `keep_days` ago, and events of then
    that no delivery needs any more; a batch per call. Returns how many rows went."""
    from sqlalchemy import delete

    cutoff = (now or utcnow()) - timedelta(days=policy.keep_days)
    with db.unit_of_work(principal=CREATED_BY) as uow:
        s = uow.session
        done = list(s.scalars(select(Delivery.id).where(Delivery.state != DeliveryState.PENDING,
                                                        Delivery.created_at < cutoff).limit(PURGE_BATCH)))
        if done:
            s.execute(delete(Delivery).where(Delivery.id.in_(done)))
        unneeded = list(s.scalars(select(Event.id).where(
            Event.created_at < cutoff, ~exists().where(Delivery.event_id == Event.id)).limit(PURGE_BATCH)))
        if unneeded:
            s.execute(delete(Event).where(Event.id.in_(unneeded)))
        uow.commit()
    return len(done) + len(unneeded)


# -- the job kind ---------------------------------------------------------------------------------

def run_delivery_job(db: Database, job_id: str, progress: Any) -> dict[str, Any]:
    """Job handler. Params: `_policy` (the DeliveryPolicy of the process that made the job)."""
    from resource_mgr.jobs.models import Job

    with db.read_session() as session:
        params = session.get(Job, job_id).params or {}
    policy = DeliveryPolicy.from_dict(params.get("_policy"))
    totals = deliver_due(db, policy, progress=progress)
    totals["purged"] = purge(db, policy)
    message = (f"{totals['delivered']} delivered, {totals['retry']} to retry, {totals['given_up']} given up "
               f"in {totals['attempts']} attempt(s)")
    return {**totals, "message": message}


def waiting_job(session: Session, *, running_too: bool) -> str | None:
    """A delivery job that will still look at the outbox: a queued one (it has not started, so
    it will see everything committed before now), or with `running_too` one running."""
    from resource_mgr.jobs.models import Job

    states = [JobState.QUEUED, JobState.RUNNING] if running_too else [JobState.QUEUED]
    return session.scalar(select(Job.id).where(Job.kind == JOB_KIND, Job.state.in_(states)).limit(1))


def new_job(session: Session, policy: DeliveryPolicy, *, only_if_due: bool) -> str | None:
    """A delivery job to send after this transaction commits, or None when one queued (or, when
    polling, running) will do, or when polling and nothing is due."""
    from resource_mgr.jobs.services import create_job

    if only_if_due and not due(session):
        return None
    if waiting_job(session, running_too=only_if_due):
        return None
    return create_job(session, JOB_KIND, {"_policy": policy.as_dict()}, created_by=CREATED_BY).id


def _register() -> None:
    from resource_mgr.jobs.services import register

    register(JOB_KIND, run_delivery_job, rerun="idempotent")  # leased rows: a re-run posts nothing twice at once


_register()
