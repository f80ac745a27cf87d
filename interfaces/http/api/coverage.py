"""Coverage check for sales counters: POST /api/v1/coverage/check.

Can this address get fibre or DSL, at what rate, a phone line, and which products; a pure read
(nothing is held: that is what a reservation does, with the same design)."""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from resource_mgr.clock import utcnow
from resource_mgr.coverage import services as coverage
from resource_mgr.states import Role

from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session, runtime

bp = APIBlueprint("coverage", __name__)


class LocationIn(Schema):
    lon = Float(required=True, validate=Range(-180, 180))
    lat = Float(required=True, validate=Range(-90, 90))


class CheckIn(Schema):
    address_id = String(validate=Length(1, 26), metadata={"description": "a standard address id"})
    address_text = String(validate=Length(1, 300), metadata={
        "description": "address text as typed; resolved to the best standard address if it is clearly the one"})
    location = Nested(LocationIn, metadata={"description": "a point; the nearest standard address within ~100 m"})
    products = List(String(validate=OneOf(coverage.PRODUCTS)), validate=Length(1, len(coverage.PRODUCTS)),
                    metadata={"description": "products to qualify (default all)"})


class AddressOut(Schema):
    id = String(required=True)
    text = String(required=True)
    local_network = String(required=True)
    location = Dict(allow_none=True, metadata={"description": '{"lon", "lat"}'})
    parent_id = String(allow_none=True)
    level = String(allow_none=True)


class TechnologyOut(Schema):
    technology = String(required=True, metadata={"enum": [t.value for t in coverage.TECHNOLOGIES]})
    available = Boolean(required=True)
    free_capacity = Integer(required=True, metadata={"description": "free places on the serving box / port"})
    serving_box = Dict(allow_none=True, metadata={"description": '{"id", "name", "distance_m", "via"}'})
    max_down_mbps = Float(allow_none=True)
    reason = String(required=True)
    reason_zh = String(required=True)
    reasons = List(String(), metadata={"description": "machine codes: no_serving_box, box_full, pon_full, "
                                                      "budget, loop_too_long, no_head_port ..."})
    alternatives = List(Dict())
    loop_m = Float(allow_none=True)
    loss_db = Float(allow_none=True)
    optic_class = String(allow_none=True)
    budget_db = Float(allow_none=True)


class ProductOut(Schema):
    product = String(required=True, metadata={"enum": list(coverage.PRODUCTS)})
    result = String(required=True, metadata={"enum": [coverage.QUALIFIED, coverage.UNQUALIFIED, coverage.ALTERNATE]})
    reason = String(required=True)
    reason_zh = String(required=True)
    reasons = List(String())
    alternatives = List(Dict(), metadata={"description": "another product/technology (kind product), "
                                                         "another rate (kind rate), a box with room (kind box)"})


class CheckOut(Schema):
    address = Nested(AddressOut, allow_none=True, metadata={
        "description": "the standard address checked; null for a location with no address near it"})
    location = Dict(metadata={"description": "the point checked, when no standard address is near it"})
    technologies = List(Nested(TechnologyOut), required=True)
    products = List(Nested(ProductOut), required=True)


@bp.post("/coverage/check")
@bp.doc(summary="Coverage check: technologies and products at an address", description=(
    "Exactly one of address_id, address_text, location. An address_text matching no standard address "
    "closely enough is 404 not_found with `suggestions` (addresses, best first) in the problem; a "
    "location outside every local network of the caller is 422 invalid (field location); an address "
    "outside them is 404."), responses=[200, 401, 403, 404, 422])
@bp.input(CheckIn, location="json", arg_name="body")
@bp.output(CheckOut)
@require(Role.SALES, *READERS)
def check(body: dict[str, Any]) -> dict[str, Any]:
    me = principal()
    return coverage.check(read_session(), local_network_ids=me.local_network_ids,
                          address_id=body.get("address_id"), address_text=body.get("address_text"),
                          location=body.get("location"), products=body.get("products"),
                          settings=runtime().settings, now=utcnow())
