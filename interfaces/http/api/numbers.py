"""GET /api/v1/numbers: choosable numbers for the sales counter (選號).

Only numbers an order may take now: free (an expired pre-occupation counts as free), in service
(never locked, faulty or reserved), out of quarantine. Filters as resource_mgr.numbers.search;
best grade first, then by number; the total in X-Total-Count. Any role may search, within its
local networks. (POST /numbers/{number}/preoccupy belongs to the orders work.)"""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Integer, String
from apiflask.validators import Length
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.numbers.models import NumberPool
from resource_mgr.numbers.search import grade_names, search_page

from interfaces.http.api.common import PageQuery
from interfaces.http.auth import READERS, require
from interfaces.http.context import principal, read_session, runtime

bp = APIBlueprint("numbers", __name__)


class NumberQuery(PageQuery):
    local_network = String(validate=Length(1, 26), metadata={
        "description": "local network code; an unknown one is 422, one outside your scope gives none"})
    exchange = String(validate=Length(1, 26), metadata={
        "description": "an exchange code (the leading digits: 8765) or the id of a switch (its pools' numbers)"})
    pattern = String(validate=Length(1, 40), metadata={
        "description": "digits and letters for repeated digits, a leading * for any prefix: *AABB, *8888, "
                       "*ABAB, *88AB; without * the whole number"})
    tail = String(validate=Length(1, 40), metadata={"description": "ends with these digits"})
    contains = String(validate=Length(1, 40), metadata={"description": "contains these digits"})
    grade = String(validate=Length(1, 40), metadata={
        "description": f"a grade name ({', '.join(grade_names())}); golden: any graded number"})


class NumberOut(Schema):
    id = String(required=True, metadata={"description": "the number's unit id"})
    number = String(required=True, metadata={"description": "local number"})
    grade = String(required=True, metadata={"description": "grade rule name, normal or unlucky"})
    grade_level = Integer(required=True, metadata={"description": "0 normal, higher more golden, negative unlucky"})
    exchange = String(required=True, metadata={"description": "exchange code (leading digits)"})
    switch_id = String(allow_none=True, metadata={"description": "the switch owning the number's pool"})
    pool = String(required=True, metadata={"description": "number pool id"})
    local_network = String(required=True, metadata={"description": "local network code"})


@bp.get("/numbers")
@bp.doc(summary="Search choosable numbers", description=(
    "Free, choosable numbers (never quarantined, locked, faulty, reserved or pre-occupied by an "
    "order) by pattern, tail, contains, grade and exchange; best grade first, then by number. The "
    "total is in X-Total-Count; past RMGR_NUMBER_SEARCH_COUNT_LIMIT matches it is that bound and "
    "X-Total-Count-Capped: true says so."), responses=[200, 401, 422])
@bp.input(NumberQuery, location="query", arg_name="query")
@bp.output(NumberOut(many=True), headers={"X-Total-Count": {"description": "numbers matching",
                                                               "schema": {"type": "integer"}},
                                             "X-Total-Count-Capped": {
                                                 "description": "true when more match than X-Total-Count (counted up to "
                                                                "the bound only); absent otherwise",
                                                 "schema": {"type": "string"}}})
@require(*READERS)
def list_numbers(query: dict[str, Any]):
    session = read_session()
    me = principal()
    page = search_page(
        session, local_network_ids=None if me.local_network_ids is None else set(me.local_network_ids),
        local_network=query.get("local_network"), exchange=query.get("exchange"), pattern=query.get("pattern"),
        tail=query.get("tail"), contains=query.get("contains"), grade=query.get("grade"),
        limit=query["limit"], offset=query["offset"], now=utcnow(),
        count_limit=runtime().settings.number_search_count_limit or None)
    rows = page.rows
    codes = dict(session.execute(select(LocalNetwork.id, LocalNetwork.code)
                                 .where(LocalNetwork.id.in_({r.local_network_id for r in rows}))).all()) if rows else {}
    switches = dict(session.execute(select(NumberPool.id, NumberPool.switch_id)
                                    .where(NumberPool.id.in_({r.pool_id for r in rows}))).all()) if rows else {}
    out = [{"id": r.id, "number": r.number, "grade": r.grade, "grade_level": r.grade_level,
            "exchange": r.exchange_code, "switch_id": switches.get(r.pool_id), "pool": r.pool_id,
            "local_network": codes.get(r.local_network_id, "")} for r in rows]
    headers = {"X-Total-Count": str(page.total)}
    if page.capped:  # at least that many: counting stopped at RMGR_NUMBER_SEARCH_COUNT_LIMIT
        headers["X-Total-Count-Capped"] = "true"
    return out, 200, headers
