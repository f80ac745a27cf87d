"""Design on the generator's XS city: every path designed for many addresses is whole by the
rules of resource_mgr.bulk.paths (head, media, each hop a connection, a pass through a splitter
or a jumper the design says to make), uses only units a new order may take, agrees with
qualify, and costs a handful of queries."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import event, or_, select

from resource_mgr.bulk.generator import generate
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.bulk.paths import CUSTOMER_SIDE, HEAD, MEDIA
from resource_mgr.config import Settings
from resource_mgr.design import NoDesign, design_path, qualify
from resource_mgr.inventory.models import Address, Connection
from resource_mgr.occupancy.models import Unit

NOW = datetime.now(timezone.utc).replace(microsecond=0)
S = Settings()
MAX_QUERIES = {"FTTH": 16, "ADSL": 20, "VDSL": 20, "POTS": 20, "LAN": 8}


def whole(session, design) -> list[str]:
    """What is wrong with a designed path (nothing: [])."""
    ids = design.unit_ids
    units = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(ids)))}
    tech, path = design.technology, [units[i] for i in ids]
    problems = []
    if path[-1].kind not in HEAD[tech]:
        problems.append(f"ends at {path[-1].kind}")
    if tech != "LAN" and path[0].kind not in CUSTOMER_SIDE:
        problems.append(f"starts at {path[0].kind}")
    problems += [f"{u.kind} is not {tech} medium" for u in path if u.kind not in MEDIA[tech]]
    if len(set(ids)) != len(ids):
        problems.append("a unit twice")
    linked = {(a, z) for a, z in session.execute(select(Connection.a_unit_id, Connection.z_unit_id).where(
        or_(Connection.a_unit_id.in_(ids), Connection.z_unit_id.in_(ids))))}
    to_make = {(w.a_unit_id, w.z_unit_id) for w in design.work if w.action == "make_jumper"}
    for u, v in zip(path, path[1:]):
        if (u.id, v.id) in linked or (v.id, u.id) in linked or (u.id, v.id) in to_make:
            continue
        if u.kind == "splitter_out" and v.kind == "splitter_in" and u.root_id == v.root_id:
            continue
        problems.append(f"{u.kind} {u.name} → {v.kind} {v.name} not connected")
    for u in path:
        if u.admin_state != "in_service":
            problems.append(f"{u.kind} {u.name} is {u.admin_state}")
        if u.spare(NOW) < 1:
            problems.append(f"{u.kind} {u.name} has no room")
    return problems


def test_designs_on_the_generated_city_are_whole(db, tmp_path):
    generate("XS", 5, tmp_path / "xs", as_of=NOW)
    assert import_bundle(db, str(tmp_path / "xs")).written
    queries = [0]

    @event.listens_for(db.engine, "before_cursor_execute")
    def _count(*_args):
        queries[0] += 1

    outcome: Counter = Counter()
    try:
        with db.read_session() as s:
            rooms = list(s.scalars(select(Address.id).where(Address.room != "").order_by(Address.id).limit(150)))
            offices = list(s.scalars(select(Address.id).where(Address.room != "", Address.building.like("%座"))
                                     .order_by(Address.id).limit(30)))
            for tech in ("FTTH", "ADSL", "VDSL", "POTS", "LAN"):
                for address in (offices if tech == "LAN" else rooms):
                    before = queries[0]
                    try:
                        d = design_path(s, address_id=address, technology=tech, settings=S, now=NOW)
                    except NoDesign as err:
                        outcome[tech, "no"] += 1
                        assert err.reasons and err.extra["reason_zh"]
                        d = None
                    used = queries[0] - before
                    assert used <= MAX_QUERIES[tech], (tech, used)
                    if d is not None:
                        outcome[tech, "ok"] += 1
                        assert whole(s, d) == [], (tech, address, whole(s, d))
                    if outcome[tech, "checked"] < 15:  # qualify agrees with design_path
                        outcome[tech, "checked"] += 1
                        answer = qualify(s, address_id=address, technology=tech, settings=S, now=NOW)
                        assert answer.available == (d is not None)
                        assert (answer.free_capacity >= 1) == answer.available
                        if d is not None:
                            assert answer.design.unit_ids == d.unit_ids
    finally:
        event.remove(db.engine, "before_cursor_execute", _count)
    # the city has fibre and copper areas: most rooms get FTTH, copper answers for many
    assert outcome["FTTH", "ok"] > 60 and outcome["POTS", "ok"] > 30 and outcome["ADSL", "ok"] > 30
    assert outcome["LAN", "ok"] > 5
