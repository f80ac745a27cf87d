"""Webhook subscriptions for BSS and IOM, and what was delivered to them.

- POST /api/v1/subscriptions `{"url", "events"?, "secret"?, "local_networks"?}` → 201;
  GET /api/v1/subscriptions, GET and DELETE /api/v1/subscriptions/{id};
  GET /api/v1/subscriptions/{id}/deliveries?state= (attempts, last answer, next attempt) and
  POST /api/v1/subscriptions/{id}/deliveries/retry (given-up deliveries pending again).

Who: the roles admin, sales (BSS's) and dispatch (IOM's); the others are 403. An admin sees and
deletes every subscription within its local networks; anyone else only its own (every
`--system bss` token is the one principal system:bss), so one client system cannot read or drop
another's webhooks.
Scope: a subscription hears events of its creator's local networks (or of those it names, a
subset); one whose local networks are not all the caller's is 404, as another city's thing is."""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, String
from apiflask.validators import Length, OneOf
from sqlalchemy import func, select

from resource_mgr.clock import utcnow
from resource_mgr.errors import Invalid
from resource_mgr.events import services as outbox
from resource_mgr.events.models import EVENT_TYPES, Delivery, Event, Subscription
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.states import DeliveryState, Role

from interfaces.http.api.common import PageQuery
from interfaces.http.auth import require
from interfaces.http.context import principal, read_session, runtime, unit_of_work

bp = APIBlueprint("subscriptions", __name__)

MANAGERS = (Role.ADMIN, Role.SALES, Role.DISPATCH)
DELIVERY_STATES = [s.value for s in DeliveryState]


class SubscriptionIn(Schema):
    url = String(required=True, validate=Length(1, outbox.MAX_URL),
                 metadata={"description": "http:// or https://; each event is POSTed there"})
    events = List(String(validate=Length(1, 40)), validate=Length(max=len(EVENT_TYPES) * 2), allow_none=True,
                  metadata={"description": f"event types to receive (default: all): {', '.join(EVENT_TYPES)}"})
    secret = String(validate=Length(1, outbox.MAX_SECRET), allow_none=True,
                    metadata={"description": "signs each body: X-Rmgr-Signature: sha256=<hex HMAC-SHA256>"})
    local_networks = List(String(validate=Length(1, 16)), validate=Length(1, 500),
                          metadata={"description": "codes, a subset of the token's (default: all of the token's)"})


class SubscriptionOut(Schema):
    id = String(required=True)
    url = String(required=True)
    events = List(String(), allow_none=True, metadata={"description": "null: every type"})
    has_secret = Boolean(metadata={"description": "the secret itself is never shown"})
    local_networks = List(String(), allow_none=True, metadata={"description": "null: every local network"})
    created_by = String()
    created_at = DateTime()
    deliveries = Dict(metadata={"description": "how many deliveries are pending, delivered, failed"})


class DeliveryOut(Schema):
    id = String(required=True)
    event_id = String(required=True)
    type = String()
    order_ref = String(allow_none=True)
    state = String(metadata={"enum": DELIVERY_STATES})
    attempts = Integer()
    last_status = Integer(allow_none=True, metadata={"description": "HTTP status of the last answer"})
    last_error = String(allow_none=True)
    last_attempt_at = DateTime(allow_none=True)
    next_attempt_at = DateTime(allow_none=True, metadata={"description": "when pending: the next attempt"})
    delivered_at = DateTime(allow_none=True)
    occurred_at = DateTime()
    created_at = DateTime()


class DeliveryQuery(PageQuery):
    state = String(validate=OneOf(DELIVERY_STATES))
    order_ref = String(validate=Length(1, 100))


class RetryOut(Schema):
    requeued = Integer()


def init_app(app: Any) -> None:
    """Events emitted in this process start their delivery job after their commit."""
    from interfaces.tasks.dispatch import install_event_delivery

    rt = app.extensions["rmgr"]
    install_event_delivery(rt.db, rt.settings)


def _visible(sub: Subscription) -> bool:
    me = principal()
    if Role.ADMIN not in me.roles and sub.created_by != me.name:
        return False
    if me.local_network_ids is None:
        return True
    return sub.local_network_ids is not None and all(me.sees(ln) for ln in sub.local_network_ids)


def _networks(session: Any, codes: list[str] | None) -> frozenset[str] | None:
    """The subscription's local networks: the caller's, or the subset it names."""
    me = principal()
    if codes is None:
        return me.local_network_ids
    ids = dict(session.execute(select(LocalNetwork.code, LocalNetwork.id).where(LocalNetwork.code.in_(codes))).all())
    unknown = sorted(c for c in set(codes) if c not in ids or not me.sees(ids[c]))
    if unknown:  # another city's is as unknown as a made-up one
        raise Invalid(f"unknown local network(s) {', '.join(unknown)}", field="local_networks")
    return frozenset(ids[c] for c in codes)


def _counts(session: Any, ids: list[str]) -> dict[str, dict[str, int]]:
    out = {i: {s: 0 for s in DELIVERY_STATES} for i in ids}
    if ids:
        for sub_id, state, n in session.execute(
                select(Delivery.subscription_id, Delivery.state, func.count()).where(Delivery.subscription_id.in_(ids))
                .group_by(Delivery.subscription_id, Delivery.state)):
            out[sub_id][str(state)] = n
    return out


def _out(session: Any, sub: Subscription, counts: dict[str, int] | None = None) -> dict[str, Any]:
    return {**outbox.subscription_view(session, sub),
            "deliveries": counts if counts is not None else _counts(session, [sub.id])[sub.id]}


@bp.post("/subscriptions")
@bp.input(SubscriptionIn, arg_name="body")
@bp.output(SubscriptionOut, status_code=201)
@bp.doc(summary="Subscribe a webhook to events", responses=[201, 403, 422])
@require(*MANAGERS)
def create_subscription(body: dict[str, Any]):
    with unit_of_work() as uow:
        sub = outbox.create_subscription(uow.session, url=body["url"], events=body.get("events"),
                                         secret=body.get("secret"), created_by=principal().name,
                                         local_network_ids=_networks(uow.session, body.get("local_networks")))
        out = _out(uow.session, sub)
        uow.commit()
    return out, 201, {"Location": f"/api/v1/subscriptions/{out['id']}"}


@bp.get("/subscriptions")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(SubscriptionOut(many=True))
@bp.doc(summary="Webhook subscriptions, oldest first; total in X-Total-Count")
@require(*MANAGERS)
def list_subscriptions(query: dict[str, Any]):
    session = read_session()
    subs = [s for s in session.scalars(select(Subscription).order_by(Subscription.id)) if _visible(s)]
    page = subs[query["offset"]:query["offset"] + query["limit"]]
    counts = _counts(session, [s.id for s in page])
    return [_out(session, s, counts[s.id]) for s in page], 200, {"X-Total-Count": str(len(subs))}


@bp.get("/subscriptions/<string:subscription_id>")
@bp.output(SubscriptionOut)
@bp.doc(summary="One subscription, with counts of its deliveries", responses=[404])
@require(*MANAGERS)
def get_subscription(subscription_id: str):
    session = read_session()
    return _out(session, outbox.get_subscription(session, subscription_id, _visible))


@bp.delete("/subscriptions/<string:subscription_id>")
@bp.output({}, status_code=204)
@bp.doc(summary="Unsubscribe: nothing more is sent (its deliveries are dropped)", responses=[204, 404])
@require(*MANAGERS)
def delete_subscription(subscription_id: str):
    with unit_of_work() as uow:
        outbox.delete_subscription(uow.session, outbox.get_subscription(uow.session, subscription_id, _visible))
        uow.commit()
    return "", 204


@bp.get("/subscriptions/<string:subscription_id>/deliveries")
@bp.input(DeliveryQuery, location="query", arg_name="query")
@bp.output(DeliveryOut(many=True))
@bp.doc(summary="Deliveries of a subscription, newest first: attempts, last answer, next attempt",
        responses=[404])
@require(*MANAGERS)
def list_deliveries(subscription_id: str, query: dict[str, Any]):
    session = read_session()
    sub = outbox.get_subscription(session, subscription_id, _visible)
    stmt = select(Delivery, Event).join(Event, Event.id == Delivery.event_id).where(Delivery.subscription_id == sub.id)
    if query.get("state"):
        stmt = stmt.where(Delivery.state == DeliveryState(query["state"]))
    if query.get("order_ref"):
        stmt = stmt.where(Delivery.order_ref == query["order_ref"])
    total = session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = session.execute(stmt.order_by(Delivery.id.desc()).limit(query["limit"]).offset(query["offset"])).all()
    return [outbox.delivery_view(d, e) for d, e in rows], 200, {"X-Total-Count": str(total)}


@bp.post("/subscriptions/<string:subscription_id>/deliveries/retry")
@bp.output(RetryOut)
@bp.doc(summary="Try the given-up (failed) deliveries of a subscription again, from now",
        responses=[404])
@require(*MANAGERS)
def retry_deliveries(subscription_id: str):
    rt = runtime()
    with unit_of_work() as uow:
        sub = outbox.get_subscription(uow.session, subscription_id, _visible)
        count = outbox.redeliver_failed(uow.session, sub, utcnow())
        if count:
            from interfaces.tasks.dispatch import start_event_delivery

            uow.after_commit(lambda: _start(start_event_delivery, rt))
        uow.commit()
    return {"requeued": count}


def _start(start: Any, rt: Any) -> None:
    try:
        start(rt.db, rt.settings)
    except Exception:  # the broker is down: the periodic poll starts the job; the retry is recorded
        import logging

        logging.getLogger("rmgr.events").warning("deliveries requeued; no job started now (the poll will)")
