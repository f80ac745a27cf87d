"""The SQL a design runs (trace.py), each statement built once per process and dialect: building
one costs more than running it, and on PostgreSQL the text never changes, so the server
prepares it once.

Every history row that changes only a unit's state has an action in STATE_ACTIONS; the change
feed (`feed`) gives those rows without their before/after (the unit id is enough to forget its
cached state) and the others whole (the topology applies them)."""
from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import JSON, String, and_, any_, bindparam, case, func, or_, select, text, union_all
from sqlalchemy.dialects.postgresql import ARRAY

from resource_mgr.inventory.models import Cable, Connection, CrossBox, Device, Frame, Resource
from resource_mgr.occupancy.models import History, SharedHold, Unit
from resource_mgr.states import Occupancy

_res = Resource.__table__.alias("root")
_cab = Cable.__table__.alias("root_cable")
_dev = Device.__table__.alias("root_device")
_frm = Frame.__table__.alias("root_frame")
_cbx = CrossBox.__table__.alias("root_cross_box")
_u = Unit.__table__
_sh = SharedHold.__table__
# History actions that change only a unit's state: any other committed change may touch the
# topology (`_Topology.follow`).
STATE_ACTIONS = ("preoccupy", "release_preoccupation", "occupy", "release", "expire", "end_quarantine", "lock",
                 "unlock", "mark_faulty", "repair", "reserve", "unreserve")
# rows about orders, services and identities never change what units are or how they connect
NOT_TOPOLOGY = ("reservation", "service", "user", "api_token", "fault", "cutover")
# kinds of history rows that are not about units, their resources or connections
NOT_PLANT = ("local_network", "naming_rule", "device_template")

HEAD_KINDS = ("pon_port", "dsl_port", "line_port", "eth_port")  # a walk ends there
DOWNSTREAM_KINDS = ("box_port", "ont_port")  # a walk starts there, never goes back into one
# PostgreSQL: every unit a walk from these units towards the head could reach, in one recursive
# query (along connections, never straight back, and from a splitter output to its inputs),
# instead of a query per level; the walk then finds them all cached.
REACH_PG = text("""
WITH RECURSIVE reach(id, prev, depth) AS (
    SELECT x, CAST('' AS varchar), 0 FROM unnest(CAST(:ids AS varchar[])) AS x
    UNION
    SELECT e.dst, r.id, r.depth + 1
    FROM reach r
    JOIN unit u ON u.id = r.id
    CROSS JOIN LATERAL (  -- lateral: each step is three index lookups, never a join of the tables
        SELECT c.z_unit_id AS dst FROM connection c WHERE c.a_unit_id = r.id
        UNION ALL SELECT c.a_unit_id FROM connection c WHERE c.z_unit_id = r.id
        UNION ALL SELECT i.id FROM unit i
                  WHERE u.kind = 'splitter_out' AND i.root_id = u.root_id AND i.kind = 'splitter_in') e
    WHERE r.depth < :levels AND e.dst <> r.prev AND u.kind NOT IN :heads
      AND (r.depth = 0 OR u.kind NOT IN :downstream)
)
SELECT DISTINCT u.id, u.kind, u.root_id, r.depth = 0 FROM reach r JOIN unit u ON u.id = r.id
""").bindparams(bindparam("heads", value=HEAD_KINDS, expanding=True),
                bindparam("downstream", value=DOWNSTREAM_KINDS, expanding=True))


def _in(column: Any, name: str, dialect: str) -> Any:
    """`column IN (:name)`: on PostgreSQL `= ANY(:name)` with one array parameter, so the text of
    the statement never changes and the server prepares it once (planning costs more than running)."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


STATIC = [_u.c.id, _u.c.kind, _u.c.name, _u.c.seq, _u.c.root_id, _u.c.owner_id, _u.c.side, _u.c.technology,
          _res.c.kind, _res.c.name, _cab.c.length_m, _cab.c.conductor_mm, _dev.c.split_ratio, _dev.c.device_type,
          _dev.c.technology, _dev.c.model, func.coalesce(_dev.c.site_id, _frm.c.site_id, _cbx.c.site_id)]
# the state of a unit (trace.U.set_state), and with a shared unit one row per hold on it
STATE = [_u.c.capacity, _u.c.used, _u.c.occupancy, _u.c.reservation_id, _u.c.preoccupied_until, _u.c.admin_state,
         _res.c.status, _sh.c.holder, _sh.c.expires_at]


def _select(*cols: Any, frm: Any = None) -> Any:
    frm = _u if frm is None else frm
    joined = (frm.join(_res, _res.c.id == _u.c.root_id).outerjoin(_cab, _cab.c.id == _u.c.root_id)
              .outerjoin(_dev, _dev.c.id == _u.c.root_id).outerjoin(_frm, _frm.c.id == _u.c.root_id)
              .outerjoin(_cbx, _cbx.c.id == _u.c.root_id))
    return select(*cols).select_from(joined)


def _feed_pg_or_sqlite() -> Any:
    """The rows after `pos` (at most `lim`), with the id of the row at `base` and the highest
    position on every row (and on one row of NULLs when there is nothing new): another id there,
    or none, or a highest position below the one followed means the feed was emptied (a
    database made again). One indexed query, the whole check of a warm design."""
    states = ", ".join(f"'{a}'" for a in STATE_ACTIONS)
    return text(f"""
SELECT b.base_id, r.position, r.resource_id, r.resource_kind, r.action, r.before, r.after, b.head
FROM (SELECT (SELECT h0.id FROM history h0 WHERE h0.position = :base) AS base_id,
             (SELECT max(h1.position) FROM history h1) AS head) b
LEFT JOIN (SELECT h.position, h.resource_id, h.resource_kind, h.action,
                  CASE WHEN h.action IN ({states}) THEN NULL ELSE h.before END AS before,
                  CASE WHEN h.action IN ({states}) THEN NULL ELSE h.after END AS after
           FROM history h WHERE h.position > :pos ORDER BY h.position LIMIT :lim) r ON 1 = 1
ORDER BY r.position
""").columns(base_id=History.id.type, position=History.position.type, resource_id=String, resource_kind=String,
             action=String, before=JSON, after=JSON, head=History.position.type)


@cache
def statement(name: str, dialect: str) -> Any:
    if name == "by_owner":
        return _select(*STATIC).where(_in(_u.c.owner_id, "ids", dialect), _u.c.kind == bindparam("kind"))
    if name == "by_root":
        return _select(*STATIC).where(_in(_u.c.root_id, "ids", dialect), _u.c.kind == bindparam("kind"))
    if name == "related":  # units that are, or belong to (root or owner), these ids
        return _select(*STATIC).where(or_(_in(_u.c.id, "ids", dialect), _in(_u.c.root_id, "ids", dialect),
                                           _in(_u.c.owner_id, "ids", dialect)))
    if name == "state":
        return (select(_u.c.id, *STATE)
                .select_from(_u.join(_res, _res.c.id == _u.c.root_id)
                             .outerjoin(_sh, and_(_sh.c.unit_id == _u.c.id, _u.c.capacity > 1)))
                .where(_in(_u.c.id, "ids", dialect)))
    if name == "head_stats":
        devices = select(Device.__table__.c.id).where(Device.__table__.c.site_id == bindparam("site"))
        return (select(_u.c.root_id, func.count(),
                       func.sum(case((_u.c.occupancy == Occupancy.FREE.value, 0), else_=1)))
                .where(_u.c.root_id.in_(devices), _u.c.kind == bindparam("kind"),
                       _in(_u.c.technology, "techs", dialect))
                .group_by(_u.c.root_id))
    if name == "neighbours":
        c = Connection.__table__
        one = _select(c.c.a_unit_id.label("src"), c.c.kind.label("ckind"), c.c.container_id, *STATIC,
                      frm=c.join(_u, _u.c.id == c.c.z_unit_id)).where(_in(c.c.a_unit_id, "ids", dialect))
        two = _select(c.c.z_unit_id.label("src"), c.c.kind.label("ckind"), c.c.container_id, *STATIC,
                      frm=c.join(_u, _u.c.id == c.c.a_unit_id)).where(_in(c.c.z_unit_id, "ids", dialect))
        return union_all(one, two)
    if name == "feed":
        return _feed_pg_or_sqlite()
    if name == "feed_head":  # where a new topology begins following: the last row and its id
        h = History.__table__
        return select(h.c.position, h.c.id).where(h.c.position.is_not(None)).order_by(h.c.position.desc()).limit(1)
    if name == "own_plant_rows":  # this transaction's own rows (not stamped yet) about the plant
        h = History.__table__
        return select(h.c.id).where(h.c.position.is_(None), h.c.resource_kind.not_in(NOT_TOPOLOGY)).limit(1)
    raise KeyError(name)

