"""Emitting events into the outbox, and the webhook subscriptions they are delivered to.

`emit(session, type, ...)` writes the event and one delivery row per matching subscription in the
caller's transaction: if it rolls back, nothing was emitted. Once that transaction has committed
(never before: a receiver must never hear of a change that did not happen), the delivery kick
installed for the session's engine is called (`install_kick`, done by the interfaces: the
serving process, the Celery worker) to make sure a delivery job runs. When none is installed, or
the process dies between the commit and the kick, the periodic poll (the embedded scheduler or
Celery beat, every `event_poll_seconds`) finds the due rows and starts a job."""
from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from resource_mgr.clock import utcnow
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.events.models import EVENT_TYPES, Delivery, Event, Subscription
from resource_mgr.ids import new_id
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.states import DeliveryState

log = logging.getLogger("rmgr.events")

# engine -> what to call after a transaction of it that emitted has committed
_kicks: "weakref.WeakKeyDictionary[Engine, Callable[[], None]]" = weakref.WeakKeyDictionary()
_PENDING = "rmgr_events_pending"
_HOOKED = "rmgr_events_hooked"
# the subscriptions, read once per transaction (a commit emits three events): forgotten when the
# transaction ends and when this session creates or deletes one
_SUBSCRIPTIONS = "rmgr_events_subscriptions"

MAX_URL = 2000
MAX_SECRET = 256


def install_kick(engine: Engine, kick: Callable[[], None] | None) -> None:
    """After a transaction on `engine` that emitted events commits, call `kick` (None: remove)."""
    if kick is None:
        _kicks.pop(engine, None)
    else:
        _kicks[engine] = kick


def _after_commit(session: Session) -> None:
    if not session.info.pop(_PENDING, False):
        return
    try:
        engine = session.get_bind()
    except Exception:  # an unbound session: nothing to kick
        return
    kick = _kicks.get(engine)
    if kick is None:
        return
    try:
        kick()
    except Exception as exc:  # the periodic poll delivers them; the change itself is committed
        log.warning("events committed, but no delivery job could be started now (%s): the poll will", exc)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def _hook(session: Session) -> None:
    session.info[_PENDING] = True
    if not session.info.get(_HOOKED):
        sa_event.listen(session, "after_commit", _after_commit)
        sa_event.listen(session, "after_rollback", _after_rollback)
        session.info[_HOOKED] = True


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_subscriptions(session: Session, transaction: Any) -> None:
    if transaction.parent is None or transaction.nested:
        session.info.pop(_SUBSCRIPTIONS, None)


def _subscriptions(session: Session) -> list[Subscription]:
    subs = session.info.get(_SUBSCRIPTIONS)
    if subs is None:
        with session.no_autoflush:  # the events written so far go with the rest of the transaction
            subs = session.info[_SUBSCRIPTIONS] = list(session.scalars(select(Subscription).order_by(Subscription.id)))
    return subs


def emit(session: Session, type: str, *, local_network_id: str, order_ref: str | None = None,  # noqa: A002
         reservation_id: str | None = None, service_id: str | None = None, cutover_id: str | None = None,
         fault_id: str | None = None, data: dict[str, Any] | None = None,
         occurred_at: datetime | None = None) -> Event:
    """Write an event to the outbox in the caller's transaction, with a delivery to each
    subscription that wants it (its types, its local networks). Delivered after the commit."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    if not local_network_id:
        raise ValueError("an event belongs to a local network")
    now = utcnow()
    event = Event(id=new_id(), type=type, occurred_at=occurred_at or now, local_network_id=local_network_id,
                  order_ref=order_ref, reservation_id=reservation_id, service_id=service_id,
                  cutover_id=cutover_id, fault_id=fault_id, data=dict(data or {}), created_at=now)
    session.add(event)
    subscriptions = [s for s in _subscriptions(session) if s.wants(type, local_network_id)]
    if subscriptions:  # (an event nobody subscribed to is written with the rest of the transaction)
        session.flush()  # the event before its deliveries: no relationship orders the two tables
        for sub in subscriptions:
            session.add(Delivery(event_id=event.id, subscription_id=sub.id, order_ref=order_ref,
                                 state=DeliveryState.PENDING, attempts=0, next_attempt_at=now, created_at=now))
        session.flush()  # in order: the delivery ids are the order events were written in
        _hook(session)
    return event


def event_body(event: Event, local_network_code: str | None) -> dict[str, Any]:
    """What a receiver gets (API.md, Events)."""
    return {"id": event.id, "type": event.type, "occurred_at": event.occurred_at.isoformat(),
            "local_network": local_network_code, "order_ref": event.order_ref,
            "reservation_id": event.reservation_id, "service_id": event.service_id,
            "cutover_id": event.cutover_id, "fault_id": event.fault_id, "data": event.data or {}}


# -- subscriptions --------------------------------------------------------------------------------

def check_url(url: str) -> str:
    url = (url or "").strip()
    if len(url) > MAX_URL:
        raise Invalid(f"the url is longer than {MAX_URL} characters", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise Invalid("the url is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise Invalid("the url must be http:// or https://", field="url")
    if not parts.hostname:
        raise Invalid("the url has no host", field="url")
    if any(c.isspace() for c in url):
        raise Invalid("the url holds white space", field="url")
    return url


def check_events(events: list[str] | None) -> list[str] | None:
    if events is None:
        return None
    if not events:
        raise Invalid("give at least one event type, or leave `events` out for all of them", field="events")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise Invalid(f"unknown event type(s) {', '.join(map(repr, unknown))}; known: {', '.join(EVENT_TYPES)}",
                      field="events")
    return sorted(set(events), key=EVENT_TYPES.index)


def create_subscription(session: Session, *, url: str, events: list[str] | None = None, secret: str | None = None,
                        created_by: str, local_network_ids: frozenset[str] | set[str] | None) -> Subscription:
    url, events = check_url(url), check_events(events)
    if secret is not None and not 1 <= len(secret) <= MAX_SECRET:
        raise Invalid(f"the secret is 1–{MAX_SECRET} characters", field="secret")
    sub = Subscription(id=new_id(), url=url, events=events, secret=secret or None, created_by=created_by,
                       local_network_ids=None if local_network_ids is None else sorted(local_network_ids),
                       created_at=utcnow())
    session.add(sub)
    session.flush()
    session.info.pop(_SUBSCRIPTIONS, None)
    return sub


def get_subscription(session: Session, subscription_id: str,
                     visible: Callable[[Subscription], bool] = lambda s: True) -> Subscription:
    sub = session.get(Subscription, subscription_id)
    if sub is None or not visible(sub):
        raise NotFound(f"no subscription with id {subscription_id}", field="id")
    return sub


def delete_subscription(session: Session, sub: Subscription) -> None:
    """Gone with its deliveries: nothing more is sent to it (a post under way may still land)."""
    session.execute(Delivery.__table__.delete().where(Delivery.subscription_id == sub.id))
    session.delete(sub)
    session.flush()
    session.info.pop(_SUBSCRIPTIONS, None)


def network_codes(session: Session, ids: list[str] | None) -> list[str] | None:
    if ids is None:
        return None
    return sorted(session.scalars(select(LocalNetwork.code).where(LocalNetwork.id.in_(ids))))


def subscription_view(session: Session, sub: Subscription) -> dict[str, Any]:
    return {"id": sub.id, "url": sub.url, "events": sub.events, "has_secret": bool(sub.secret),
            "local_networks": network_codes(session, sub.local_network_ids),
            "created_by": sub.created_by, "created_at": sub.created_at}


def delivery_view(delivery: Delivery, event: Event) -> dict[str, Any]:
    return {"id": str(delivery.id), "event_id": delivery.event_id, "type": event.type,
            "order_ref": delivery.order_ref, "state": str(delivery.state), "attempts": delivery.attempts,
            "last_status": delivery.last_status, "last_error": delivery.last_error,
            "last_attempt_at": delivery.last_attempt_at,
            "next_attempt_at": delivery.next_attempt_at if delivery.state == DeliveryState.PENDING else None,
            "delivered_at": delivery.delivered_at, "created_at": delivery.created_at,
            "occurred_at": event.occurred_at}


def redeliver_failed(session: Session, sub: Subscription, now: datetime) -> int:
    """Given-up deliveries of `sub` are pending again, due now, with their attempts counted anew."""
    from sqlalchemy import update

    return session.execute(update(Delivery).where(Delivery.subscription_id == sub.id,
                                                  Delivery.state == DeliveryState.FAILED)
                           .values(state=DeliveryState.PENDING, attempts=0, next_attempt_at=now, created_at=now,
                                   lease_owner=None, lease_expires_at=None)
                           .execution_options(synchronize_session=False)).rowcount
