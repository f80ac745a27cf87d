"""The cutover's apply and rollback re-point connections in bulk (apply.write_connection_moves)
instead of an ORM edit plus `audit.record` per connection: twin connections of the cutover world
(tests/cutover_world.py, its docstring has the diagram), one moved each way, leave the same
connection row and the same history row, stamped by the change feed.

    box port 1 ─ pair D1/1   →   box port 1 ─ pair D2/1   (ORM + audit.record)
    box port 2 ─ pair D1/2   →   box port 2 ─ pair D2/2   (write_connection_moves)
"""
from __future__ import annotations

from sqlalchemy import or_, select

from resource_mgr.clock import utcnow
from resource_mgr.cutovers.apply import write_connection_moves
from resource_mgr.inventory.models import Connection
from resource_mgr.occupancy.models import History
from resource_mgr.security import audit

from cutover_world import build


def _connection(s, a: str, z: str) -> Connection:
    return s.scalar(select(Connection).where(or_((Connection.a_unit_id == a) & (Connection.z_unit_id == z),
                                                 (Connection.a_unit_id == z) & (Connection.z_unit_id == a))))


def test_bulk_connection_moves_leave_the_rows_audit_record_leaves(db):
    with db.unit_of_work() as uow:
        n = build(uow.session)
        uow.commit()
    now = utcnow()
    twins = []
    with db.read_session() as s:
        for k in (0, 1):
            c = _connection(s, n.c.ports[k], n.c.pairs[k])
            twins.append((c.id, {"a_unit_id": c.a_unit_id, "z_unit_id": c.z_unit_id}))
    swap = [{key: (n.new_pairs[k] if v == n.c.pairs[k] else v) for key, v in ends.items()}
            for k, (_, ends) in enumerate(twins)]
    with db.unit_of_work(principal="job:cutover") as uow:  # the per-connection path the apply had
        c = uow.session.get(Connection, twins[0][0])
        c.a_unit_id, c.z_unit_id = swap[0]["a_unit_id"], swap[0]["z_unit_id"]
        audit.record(uow.session, "user:planner", resource_id=c.id, resource_kind="connection", action="move",
                     local_network_id=c.local_network_id, before=twins[0][1], after=swap[0], cutover_id="CUT1",
                     reason="cutover D1 → D2", at=now)
        uow.commit()
    with db.unit_of_work(principal="job:cutover") as uow:
        write_connection_moves(uow.session, "user:planner", [(twins[1][0], twins[1][1], swap[1])],
                               cutover_id="CUT1", reason="cutover D1 → D2", at=now)
        uow.commit()
    # the twin's ids translated to the first's: then every field must be equal
    same = {twins[1][0]: twins[0][0], n.c.ports[1]: n.c.ports[0], n.c.pairs[1]: n.c.pairs[0],
            n.new_pairs[1]: n.new_pairs[0]}

    def tr(v):
        return {k: same.get(x, x) for k, x in v.items()} if isinstance(v, dict) else same.get(v, v)

    cols = [c.key for c in History.__table__.columns if c.key not in ("id", "position")]
    with db.read_session() as s:
        rows = {}
        for cid, _ in twins:
            [h] = s.scalars(select(History).where(History.resource_id == cid,
                                              History.action == "move")).all()
            assert h.position is not None  # stamped at commit, in the change feed
            rows[cid] = {k: tr(getattr(h, k)) for k in cols}
            conn = s.get(Connection, cid)
            rows[cid]["ends"] = tr({"a_unit_id": conn.a_unit_id, "z_unit_id": conn.z_unit_id,
                                    "kind": conn.kind, "local_network_id": conn.local_network_id})
        assert rows[twins[1][0]] == rows[twins[0][0]]
        assert rows[twins[0][0]]["ends"]["a_unit_id"] in (n.new_pairs[0], n.c.ports[0])
        assert n.new_pairs[0] in rows[twins[0][0]]["ends"].values()
