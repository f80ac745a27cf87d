"""Services (API.md, Dispatch): GET /services/{id}, GET /services?number=&address_id=&customer=,
GET /services/{id}/route. Every role reads, within its local networks."""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, List, Nested, String
from apiflask.validators import Length, OneOf
from sqlalchemy import or_, select

from resource_mgr.customers.models import Customer, Service
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.orders.completion import service_json
from resource_mgr.topology.services import routes_of_service
from resource_mgr.states import Product, ServiceState

from interfaces.http.api.common import PageQuery, paginate
from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session

bp = APIBlueprint("services", __name__)


class ServiceQuery(PageQuery):
    number = String(validate=Length(1, 16))
    address_id = String(validate=Length(1, 26))
    customer = String(validate=Length(1, 64), metadata={"description": "customer id or BSS customer ref"})
    product = String(validate=OneOf([p.value for p in Product]))
    state = String(validate=OneOf([s.value for s in ServiceState]))
    local_network = String(validate=Length(1, 16), metadata={"description": "local network code"})


class ServiceOut(Schema):
    id = String()
    product = String()
    technology = String()
    state = String()
    address_id = String(allow_none=True)
    number = String(allow_none=True)
    bearer_id = String(allow_none=True)
    order_ref = String(allow_none=True)
    local_network = String()
    customer = Dict(allow_none=True, metadata={"description": "id, external_ref, name, grade"})
    created_at = String(allow_none=True, metadata={"format": "date-time"})
    removed_at = String(allow_none=True, metadata={"format": "date-time"})


class HopOut(Schema):
    unit_id = String()
    kind = String()
    name = String()
    device = String(allow_none=True)
    site = String(allow_none=True)
    cable = String(allow_none=True)
    shared = Boolean()


class RouteOut(Schema):
    service_id = String()
    bearer_id = String(metadata={"description": "IPTV / VoIP: the service whose line they ride on"})
    hops = List(Nested(HopOut), metadata={"description": "the stored path, continued through the head "
                                                          "device's uplinks to the aggregation and core"})
    alternate_routes = List(List(Nested(HopOut)), metadata={
        "description": "every other route: a type-B splitter's second input, a second uplink, the other way "
                       "round a ring"})


def _service(session: Any, service_id: str) -> Service:
    service = session.get(Service, service_id)
    if service is None or not principal().sees(service.local_network_id):
        raise NotFound(f"no service with id {service_id}", field="id")
    return service


def _code(session: Any, local_network_id: str) -> str | None:
    return session.scalar(select(LocalNetwork.code).where(LocalNetwork.id == local_network_id))


@bp.get("/services")
@bp.input(ServiceQuery, location="query", arg_name="query")
@bp.output(ServiceOut(many=True))
@bp.doc(summary="Services by number, address or customer; total in X-Total-Count")
@require(*READERS)
def list_services(query: dict[str, Any]):
    session = read_session()
    stmt = select(Service).where(principal().scope_filter(Service.local_network_id))
    for name in ("number", "address_id", "product", "state"):
        if query.get(name):
            stmt = stmt.where(getattr(Service, name) == query[name])
    if query.get("customer"):
        stmt = stmt.where(Service.customer_id.in_(select(Customer.id).where(
            or_(Customer.id == query["customer"], Customer.external_ref == query["customer"]))))
    if query.get("local_network"):
        ln = session.scalar(select(LocalNetwork.id).where(LocalNetwork.code == query["local_network"]))
        if ln is None or not principal().sees(ln):
            raise Invalid(f"unknown local network {query['local_network']!r}", field="local_network")
        stmt = stmt.where(Service.local_network_id == ln)
    rows, headers = paginate(session, stmt.order_by(Service.created_at, Service.id), query["limit"], query["offset"])
    codes = dict(session.execute(select(LocalNetwork.id, LocalNetwork.code)).all())
    return [service_json(s, local_network=codes.get(s.local_network_id)) for s in rows], 200, headers


@bp.get("/services/<string:service_id>")
@bp.output(ServiceOut)
@bp.doc(summary="One service")
@require(*READERS)
def get_service(service_id: str):
    session = read_session()
    service = _service(session, service_id)
    return service_json(service, local_network=_code(session, service.local_network_id))


@bp.get("/services/<string:service_id>/route")
@bp.output(RouteOut)
@bp.doc(summary="The end-to-end route: hops from the customer side to the head equipment and on to the "
                "aggregation and core, with every alternate route")
@require(*READERS)
def get_route(service_id: str):
    session = read_session()
    return routes_of_service(session, _service(session, service_id).id)
