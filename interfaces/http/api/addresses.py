"""GET /api/v1/addresses: the standard-address search of the sales counter (partial Chinese text,
house numbers, 1-2-301, traditional or full-width forms), best match first.

Who may call it: every reader role. Only addresses in the caller's local networks are found;
`local_network` narrows to one of them (another city's code finds nothing, as if it had none).
"""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Float, Nested, String
from apiflask.validators import Length

from resource_mgr.addresses import address_json, search_addresses

from interfaces.http.api.common import PageQuery
from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session, runtime

bp = APIBlueprint("addresses", __name__)


class AddressQuery(PageQuery):
    q = String(load_default="", validate=Length(max=200), metadata={
        "description": "what the customer said: part of the address, e.g. 丽日花园3栋2单元301, 汾江路88號, "
                       "1-2-301 (building 1, unit 2, room 301)"})
    local_network = String(validate=Length(1, 16), metadata={"description": "local network code"})


class LocationOut(Schema):
    lon = Float()
    lat = Float()


class AddressOut(Schema):
    id = String()
    text = String(metadata={"description": "the full standard address"})
    local_network = String(metadata={"description": "local network code"})
    location = Nested(LocationOut, allow_none=True)
    parent_id = String(allow_none=True, metadata={"description": "the address containing it (room → unit → building)"})
    level = String(metadata={"description": "building, unit, floor, room, or street (a road number)"})
    score = Float(metadata={"description": "how well it matches, higher first; only for ordering"})


@bp.get("/addresses")
@bp.doc(summary="Search standard addresses", description=(
    "Standard addresses of your local networks matching `q`, best first: every part of the query "
    "in the address (any order), else the closest by shared characters. Full-width digits, "
    "traditional characters (號, 棟, 單元), 幢/座 for 栋, 房 for 室, spaces and a missing city or "
    "district are all understood; `1-2-301` is building 1, unit 2, room 301. Nothing matching: an "
    "empty list. The total is in X-Total-Count."), responses=[200, 401, 422])
@bp.input(AddressQuery, location="query", arg_name="query")
@bp.output(AddressOut(many=True), headers={"X-Total-Count": {"description": "addresses matching",
                                                              "schema": {"type": "integer"}}})
@require(*READERS)
def list_addresses(query: dict[str, Any]):
    me = principal()
    hits, total = search_addresses(
        read_session(), query["q"], local_network_ids=set(me.local_network_ids) if me.local_network_ids is not None
        else None, local_network=query.get("local_network"), limit=query["limit"], offset=query["offset"],
        settings=runtime().settings)
    body = [{**address_json(h.address), "score": h.score} for h in hits]
    return body, 200, {"X-Total-Count": str(total)}
