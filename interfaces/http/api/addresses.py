"""GET /api/v1/addresses: the standard-address search of the sales counter (partial Chinese text,
house numbers, 1-2-301, traditional or full-width forms), best match first.

Who may call it: every reader role. Only addresses in the caller's local networks are found;
`local_network` narrows to one of them (another city's code finds nothing, as if it had none).
"""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Float, Integer, Nested, String
from apiflask.validators import Length, Range
from flask import current_app, g

from resource_mgr.addresses import address_json, search_addresses
from resource_mgr.errors import Unavailable

from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session, runtime
from interfaces.http.limits import WaitingGate

bp = APIBlueprint("addresses", __name__)


class AddressQuery(Schema):
    # Paged like a list read (common.PageQuery) but not one: the list-read bound (load.py) refuses
    # at once past two per process, which a counter's search, a few milliseconds each, must not be
    # under; it has its own bound (_search_gate).
    limit = Integer(load_default=50, validate=Range(1, 1000))
    offset = Integer(load_default=0, validate=Range(0, 10_000_000))
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
    settings = runtime().settings
    gate = _search_gate(settings.addresses_search_concurrency)
    if not gate.enter(settings.addresses_search_wait_ms / 1000.0):
        g.rate_limit_headers = {"Retry-After": "1"}  # not the rate limit's window (limits.py)
        raise Unavailable(f"the server is answering as many address searches as it may at once ({gate.slots}); "
                          f"retry in 1 s", retry_after=1)
    try:
        g.bounded_read = True  # bounded in time like a list read (cancelled: 503 `unavailable`; load.py)
        session = read_session()
        hits, total = search_addresses(
            session, query["q"], local_network_ids=set(me.local_network_ids)
            if me.local_network_ids is not None else None, local_network=query.get("local_network"),
            limit=query["limit"], offset=query["offset"], settings=settings)
    finally:
        gate.leave()
    body = [{**address_json(h.address), "score": h.score} for h in hits]
    return body, 200, {"X-Total-Count": str(total)}


def _search_gate(slots: int) -> WaitingGate:
    gate = current_app.extensions.get("rmgr_address_search_gate")
    if gate is None:
        gate = current_app.extensions.setdefault("rmgr_address_search_gate", WaitingGate(slots))
    return gate
