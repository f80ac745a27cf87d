"""Reservations (sales counter and dispatch, API.md): POST/GET /reservations, cancel, redesign,
commit, and POST /numbers/{number}/preoccupy.

Roles: sales reserve, cancel and hold numbers; dispatch redesign and commit; every role reads,
within its local networks (another city's reservation is a 404). Each write is one use case of
resource_mgr.orders run by resource_mgr.orders.retry (deadlocks and the like never reach the
client). A replayed request under the same order_ref answers 200 with the same reservation
(201 when it was made now)."""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, String
from apiflask.validators import Length, OneOf, Range
from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.clock import aware, utcnow
from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.orders import completion, retry, services
from resource_mgr.orders.models import ACTIONS, Reservation
from resource_mgr.states import ReservationState, Role, Technology

from interfaces.http.api.common import PageQuery, paginate
from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session, runtime

bp = APIBlueprint("reservations", __name__)

SALES = (Role.SALES,)
DISPATCH = (Role.DISPATCH,)


class ReservationIn(Schema):
    order_ref = String(required=True, validate=Length(1, 100), metadata={"description": "BSS order id + item"})
    action = String(required=True, validate=OneOf(ACTIONS))
    products = List(String(validate=Length(1, 30)), validate=Length(max=8))
    address_id = String(validate=Length(1, 26))
    number = String(validate=Length(1, 16))
    service_id = String(validate=Length(1, 26), metadata={"description": "move / change / remove: the service"})
    technology = String(validate=OneOf([t.value for t in Technology]))
    ttl_hours = Integer(validate=Range(1, 24 * 365))


class ReservationOut(Schema):
    id = String()
    order_ref = String()
    action = String()
    state = String(metadata={"enum": [s.value for s in ReservationState]})
    local_network = String()
    products = List(String())
    technology = String(allow_none=True)
    address_id = String(allow_none=True)
    number = String(allow_none=True)
    service_id = String(allow_none=True)
    bearer_id = String(allow_none=True)
    expires_at = String(metadata={"format": "date-time"})
    design = Dict(allow_none=True, metadata={"description": "hops (customer side first), work, loop_m, loss_db ..."})
    release = Dict(metadata={"description": "what commit gives back: unit_ids, number"})
    unit_ids = List(String())
    principal = String()
    work_order_ref = String(allow_none=True)
    created_at = String(metadata={"format": "date-time"})
    committed_at = String(allow_none=True, metadata={"format": "date-time"})


class ReservationQuery(PageQuery):
    order_ref = String(validate=Length(1, 100))
    state = String(validate=OneOf([s.value for s in ReservationState]))
    local_network = String(validate=Length(1, 16), metadata={"description": "local network code"})
    action = String(validate=OneOf(ACTIONS))


class CancelIn(Schema):
    reason = String(validate=Length(1, 300))


class RedesignIn(Schema):
    replace = List(String(validate=Length(1, 26)), required=True, validate=Length(1, 50))
    reason = String(validate=Length(1, 300))
    mark_faulty = Boolean(load_default=False)


class CommitIn(Schema):
    work_order_ref = String(required=True, validate=Length(1, 100))
    completed_at = DateTime()


class PreoccupyNumberIn(Schema):
    order_ref = String(required=True, validate=Length(1, 100))
    ttl_hours = Integer(validate=Range(1, 24 * 365))
    local_network = String(validate=Length(1, 16), metadata={"description": "local network code, when the "
                                                                           "number exists in several of yours"})


def _iso(value: Any) -> str | None:
    return aware(value).isoformat() if value is not None else None


def reservation_json(session: Session, res: Reservation, code: str | None = None) -> dict[str, Any]:
    if code is None:
        code = session.scalar(select(LocalNetwork.code).where(LocalNetwork.id == res.local_network_id))
    return {
        "id": res.id, "order_ref": res.order_ref, "action": res.action, "state": res.state.value,
        "local_network": code, "products": list(res.products or []), "technology": res.technology,
        "address_id": res.address_id, "number": res.number, "service_id": res.service_id,
        "bearer_id": res.bearer_id, "expires_at": _iso(res.expires_at), "design": res.design,
        "release": res.release or {}, "unit_ids": list(res.unit_ids or []), "principal": res.principal,
        "work_order_ref": res.work_order_ref, "created_at": _iso(res.created_at),
        "committed_at": _iso(res.committed_at),
    }


def _run(use_case: Any) -> Any:
    rt = runtime()
    return retry.run(rt.db, principal().name, rt.settings.orders_retry_attempts, use_case)


@bp.post("/reservations")
@bp.input(ReservationIn, arg_name="body")
@bp.output(ReservationOut, status_code=201)
@bp.doc(summary="Design the path and pre-occupy every unit (201; 200 for a replayed order_ref)",
        responses={200: "The same request again: the same reservation",
                   404: "Unknown (or another city's) address_id, service_id or number",
                   409: "no_capacity (why, alternatives), conflict (order_ref names another request), "
                        "quota_exceeded, quarantined, locked"})
@require(*SALES)
def create_reservation(body: dict[str, Any]):
    settings = runtime().settings

    def use_case(uow: Any) -> tuple[dict[str, Any], bool]:
        res, created = services.reserve(uow.session, principal=principal(), settings=settings, now=utcnow(), **body)
        return reservation_json(uow.session, res), created

    out, created = _run(use_case)
    return out, 201 if created else 200


@bp.get("/reservations")
@bp.input(ReservationQuery, location="query", arg_name="query")
@bp.output(ReservationOut(many=True))
@bp.doc(summary="Reservations (the dispatch work queue: state=preoccupied); total in X-Total-Count")
@require(*READERS)
def list_reservations(query: dict[str, Any]):
    session = read_session()
    stmt = select(Reservation).where(principal().scope_filter(Reservation.local_network_id))
    for name in ("order_ref", "state", "action"):
        if query.get(name):
            stmt = stmt.where(getattr(Reservation, name) == query[name])
    if query.get("local_network"):
        ln = session.scalar(select(LocalNetwork.id).where(LocalNetwork.code == query["local_network"]))
        if ln is None or not principal().sees(ln):
            raise Invalid(f"unknown local network {query['local_network']!r}", field="local_network")
        stmt = stmt.where(Reservation.local_network_id == ln)
    stmt = stmt.order_by(Reservation.created_at, Reservation.id)
    rows, headers = paginate(session, stmt, query["limit"], query["offset"])
    codes = dict(session.execute(select(LocalNetwork.id, LocalNetwork.code)).all())
    return [reservation_json(session, r, codes.get(r.local_network_id)) for r in rows], 200, headers


@bp.get("/reservations/<string:reservation_id>")
@bp.output(ReservationOut)
@bp.doc(summary="One reservation")
@require(*READERS)
def get_reservation(reservation_id: str):
    session = read_session()
    return reservation_json(session, services.get_reservation(session, reservation_id, principal()))


@bp.post("/reservations/<string:reservation_id>/cancel")
@bp.input(CancelIn, arg_name="body")
@bp.output(ReservationOut)
@bp.doc(summary="Release everything the reservation holds", responses={409: "committed (conflict) or expired"})
@require(*SALES)
def cancel_reservation(reservation_id: str, body: dict[str, Any]):
    def use_case(uow: Any) -> dict[str, Any]:
        res = services.cancel(uow.session, principal=principal(), now=utcnow(), reservation_id=reservation_id,
                              reason=body.get("reason"))
        return reservation_json(uow.session, res)

    return _run(use_case)


@bp.post("/reservations/<string:reservation_id>/redesign")
@bp.input(RedesignIn, arg_name="body")
@bp.output(ReservationOut)
@bp.doc(summary="Swap the named units for equivalent free ones, keep the rest",
        responses={422: "a unit the reservation does not hold (field replace)", 409: "no_capacity, expired"})
@require(*DISPATCH)
def redesign_reservation(reservation_id: str, body: dict[str, Any]):
    settings = runtime().settings

    def use_case(uow: Any) -> dict[str, Any]:
        res = services.redesign(uow.session, principal=principal(), settings=settings, now=utcnow(),
                                reservation_id=reservation_id, replace=body["replace"], reason=body.get("reason"),
                                mark_faulty=body["mark_faulty"])
        return reservation_json(uow.session, res)

    return _run(use_case)


@bp.post("/reservations/<string:reservation_id>/commit")
@bp.input(CommitIn, arg_name="body")
@bp.output(ReservationOut)
@bp.doc(summary="Completion (竣工): pre-occupied units become occupied by the service",
        responses={409: "conflict (committed under another work order, cancelled), expired"})
@require(*DISPATCH)
def commit_reservation(reservation_id: str, body: dict[str, Any]):
    settings = runtime().settings
    completed_at = body.get("completed_at")

    def use_case(uow: Any) -> dict[str, Any]:
        res = completion.commit(uow.session, principal=principal(), settings=settings, now=utcnow(),
                                reservation_id=reservation_id, work_order_ref=body["work_order_ref"],
                                completed_at=aware(completed_at) if completed_at else None)
        return reservation_json(uow.session, res)

    return _run(use_case)


@bp.post("/numbers/<string:number>/preoccupy")
@bp.input(PreoccupyNumberIn, arg_name="body")
@bp.output(ReservationOut, status_code=201)
@bp.doc(summary="Hold the number for the order (creating, 201, or extending, 200, its reservation)",
        responses={200: "The order's reservation, extended", 409: "conflict (held by another order), quarantined, "
                   "locked, no_capacity, quota_exceeded"})
@require(*SALES)
def preoccupy_number(number: str, body: dict[str, Any]):
    settings = runtime().settings

    def use_case(uow: Any) -> tuple[dict[str, Any], bool]:
        res, created = services.preoccupy_number(uow.session, principal=principal(), settings=settings, now=utcnow(),
                                                 number=number, **body)
        return reservation_json(uow.session, res), created

    out, created = _run(use_case)
    return out, 201 if created else 200
