"""Positions for the change feed, handed out in commit order (docs/change-feed.md).

Every History row a transaction adds gets its `position` when the transaction commits, not when
the row is inserted: the committing transaction locks the one row of `change_counter`, advances it
by the number of its own unstamped rows and stamps them, and holds that lock until its COMMIT has
completed. The next transaction that wrote history waits for the lock, so it gets higher positions
and becomes visible after. Hence a follower that has read every change up to N never later finds a
committed change below N. Transactions that wrote no history take no lock.

This module is wired into every session of resource_mgr.db.Database (`install`); it knows the
tables by name so that db.py can import it without importing the models.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

HISTORY_TABLE = "history"
_PENDING = "change_feed_rows"  # session.info: the History objects flushed since the last commit

# One statement on PostgreSQL. `mine` sees this transaction's unstamped rows (other transactions'
# uncommitted rows are invisible, committed ones are stamped). The UPDATE joins them by primary key
# only: with `h.position IS NULL` there too the planner (estimating one unstamped row) scanned the
# partial index once per row of `mine`, n² for a transaction of n rows (13 s for 4,000). The counter UPDATE waits for the row
# lock of any transaction still committing and then re-reads `last` (READ COMMITTED), so
# the positions continue after the last committed ones.
_STAMP_PG = text("""
WITH mine AS (
    SELECT id, row_number() OVER (ORDER BY id) AS rn, count(*) OVER () AS n
    FROM history WHERE position IS NULL
), bump AS (
    UPDATE change_counter SET last = last + (SELECT count(*) FROM mine) WHERE id = 1 RETURNING last
), stamped AS (
    UPDATE history AS h SET position = bump.last - mine.n + mine.rn
    FROM mine, bump WHERE h.id = mine.id
    RETURNING h.id, h.position
)
SELECT (SELECT last FROM bump) AS last, stamped.id, stamped.position
FROM (SELECT 1) AS one LEFT JOIN stamped ON true
""")

# The counter's row is missing only if someone emptied the table (tests truncate everything):
# start again after the highest position there is (`WHERE true`: SQLite needs it before ON CONFLICT).
_ENSURE_COUNTER = text(
    "INSERT INTO change_counter (id, last) SELECT 1, coalesce(max(position), 0) FROM history WHERE true "
    "ON CONFLICT (id) DO NOTHING")


class CounterMissing(RuntimeError):
    pass


def mark_written(session: Session) -> None:
    """For writers that add History rows past the session (a Core insert on the connection, COPY):
    make the commit stamp them. Rows added as objects or by `session.execute(insert(History))`
    are noticed by themselves."""
    session.info.setdefault(_PENDING, [])


def stamp(connection: Connection) -> dict[int, int]:
    """Give this transaction's unstamped History rows their positions; the counter stays locked
    until the transaction ends. Returns {history id: position}. Call it last before COMMIT."""
    for attempt in (1, 2):
        try:
            if connection.dialect.name == "postgresql":
                return _stamp_pg(connection)
            return _stamp_sqlite(connection)
        except CounterMissing:
            if attempt == 2:
                raise
            connection.execute(_ENSURE_COUNTER)
    raise AssertionError("unreachable")


def _stamp_pg(connection: Connection) -> dict[int, int]:
    rows = connection.execute(_STAMP_PG).all()
    if rows[0].last is None:
        raise CounterMissing("change_counter has no row")
    return {r.id: r.position for r in rows if r.id is not None}


_STAMP_SQLITE = text("""
UPDATE history SET position = (SELECT last FROM change_counter WHERE id = 1) + mine.rn
FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM history WHERE position IS NULL) AS mine
WHERE history.id = mine.id
RETURNING history.id, history.position
""")
_ADVANCE_SQLITE = text("UPDATE change_counter SET last = :last WHERE id = 1")


def _stamp_sqlite(connection: Connection) -> dict[int, int]:
    # A writing transaction holds SQLite's one write lock from BEGIN IMMEDIATE to COMMIT:
    # writers are serialised already, the counter only has to be read and advanced.
    rows = connection.execute(_STAMP_SQLITE).all()
    if not rows:
        return {}
    if rows[0].position is None:
        raise CounterMissing("change_counter has no row")
    positions = {r.id: r.position for r in rows}
    connection.execute(_ADVANCE_SQLITE, {"last": max(positions.values())})
    return positions


# -- session wiring -------------------------------------------------------------------------------

def _after_flush(session: Session, _context: Any) -> None:
    rows = [o for o in session.new if getattr(type(o), "__tablename__", None) == HISTORY_TABLE]
    if rows:
        session.info.setdefault(_PENDING, []).extend(rows)


def _on_execute(state: Any) -> None:
    # session.execute(insert(History), rows): bulk inserts bypass the flush
    if state.is_insert and getattr(getattr(state.statement, "table", None), "name", None) == HISTORY_TABLE:
        mark_written(state.session)


# On PostgreSQL the stamp and the COMMIT go to the server as one simple query, in one round trip:
# the counter stays locked for the least time there is (every writer of history waits for it),
# and nothing else can come between. The counter is upserted (a row emptied away is created
# again after the highest position, as _ENSURE_COUNTER does), so the stamp cannot find it missing
# after the fact with the COMMIT already sent. An error in either statement ends the transaction
# and is raised here, before anything counts it as committed.
_STAMP_AND_COMMIT_PG = """
WITH mine AS (
    SELECT id, row_number() OVER (ORDER BY id) AS rn, count(*) OVER () AS n
    FROM history WHERE position IS NULL
), bump AS (
    INSERT INTO change_counter AS c (id, last)
    SELECT 1, coalesce((SELECT max(position) FROM history), 0) + (SELECT count(*) FROM mine)
    ON CONFLICT (id) DO UPDATE SET last = c.last + (SELECT count(*) FROM mine) RETURNING last
), stamped AS (
    UPDATE history AS h SET position = bump.last - mine.n + mine.rn
    FROM mine, bump WHERE h.id = mine.id
    RETURNING h.id, h.position
)
SELECT stamped.id, stamped.position FROM stamped;
COMMIT"""


def _stamp_and_commit_pg(connection: Connection) -> dict[int, int]:
    """`stamp` and COMMIT in one round trip on the session's psycopg connection; the DBAPI's own
    commit that follows finds the transaction ended and sends nothing."""
    dbapi = connection.dialect.loaded_dbapi
    try:
        cursor = connection.connection.dbapi_connection.execute(_STAMP_AND_COMMIT_PG)
        positions = dict(cursor.fetchall())
        cursor.nextset()
    except dbapi.Error as exc:
        raise DBAPIError.instance(_STAMP_AND_COMMIT_PG, None, exc, dbapi.Error) from exc
    return positions


def _before_commit(session: Session) -> None:
    session.flush()  # rows still pending must be inserted before they can be stamped
    if _PENDING not in session.info or session.in_nested_transaction():
        return
    rows = session.info.pop(_PENDING)
    connection = session.connection()
    if connection.dialect.name == "postgresql" and not connection.in_nested_transaction():
        positions = _stamp_and_commit_pg(connection)
    else:
        positions = stamp(connection)
    for row in rows:
        position = positions.get(row.id)
        if position is not None:
            set_committed_value(row, "position", position)


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # committed (stamped) or rolled back: start afresh
        session.info.pop(_PENDING, None)


def install(factory: sessionmaker) -> None:
    """Stamp the history of every transaction committed by sessions of `factory`."""
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "do_orm_execute", _on_execute)
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_transaction_end", _after_transaction_end)
