"""The write side of an import: its one transaction, PostgreSQL COPY sent by a thread of its own
(`PgWriter`), SQLite executemany, and the secondary indexes dropped into empty big tables and
built once at the end."""
from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import shapely
from sqlalchemy import update

from resource_mgr.geo.types import SRID
from resource_mgr.models import DeviceTemplate, LocalNetwork, NamingRule

if TYPE_CHECKING:
    from resource_mgr.bulk.importing.state import ImportState

BATCH = 10_000
_CONVERT = {"created_at", "removed_at", "expires_at", "preoccupied_until", "quarantine_until", "location", "route"}
BIG_TABLES = ("unit", "number", "service_unit", "connection", "resource", "address", "coverage")
_FTS_TRIGGER = "address_fts_insert"  # made by migration c3a0d9e1f401 (resource_mgr/addresses/search.py)


class Stored:
    """A geometry already in the form the database stores."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def stored_value(value: Any, sqlite: bool) -> Any:
    """A value as the database stores it (WKB on SQLite, hex EWKB on PostGIS; datetimes as text)."""
    if isinstance(value, Stored):
        return value.value
    if isinstance(value, datetime):
        if sqlite:
            return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value.isoformat()
    if isinstance(value, shapely.Geometry):
        if sqlite:
            return shapely.to_wkb(value)
        return shapely.to_wkb(shapely.set_srid(value, SRID), hex=True, include_srid=True)
    return value


@functools.lru_cache(maxsize=None)
def _line_format(ncols: int) -> str:
    return "\t".join(["%s"] * ncols) + "\n"


def copy_text(batch: list[tuple], ncols: int) -> bytes | list[tuple]:
    """A batch of rows as COPY text, formatted here in C (`%` per row; much faster than row by
    row in psycopg). The importer's values are str, int, float (finite), bool, datetime or None,
    whose str() is what COPY reads, and None prints as the cell `None`, turned into the NULL
    marker here. Strings are sent as they are, so the result is checked: the only backslashes
    may be the NULL markers (as many as there are None values: a string holding `None` would
    make one more) and the tabs and newlines must be exactly the separators. A batch that fails the check
    is returned as rows, for psycopg's own formatting (`Copy.write_row`)."""
    nulls = 0
    for row in batch:
        nulls += row.count(None)
    line = _line_format(ncols)
    buf = "".join([line % r for r in batch])
    if nulls:
        # Every `None` in the text becomes the NULL marker: the None cells, and any text holding
        # the word, whose extra backslash then fails the check below.
        buf = buf.replace("None", "\\N")
    if buf.count("\\") == nulls and buf.count("\t") == len(batch) * (ncols - 1) \
            and buf.count("\n") == len(batch) and "\r" not in buf:
        return buf.encode()
    return batch


class PgWriter:
    """The PostgreSQL side of phase 2 in a thread of its own: COPY data and statements are
    queued in order and sent on the one connection (one transaction) while the importer goes on
    making the next rows, so Python's formatting overlaps the server's work (COPY, index builds).
    The queue is bounded, so memory is too. An error on the connection stops the writer; the
    importer sees it at its next put or at `close`, and the transaction is rolled back."""

    def __init__(self, raw: Any, depth: int = 256) -> None:
        self.raw = raw
        self.error: BaseException | None = None
        self.q: Any = queue.Queue(maxsize=depth)
        self.thread = threading.Thread(target=self._run, name="bulk-import-copy", daemon=True)
        self.thread.start()

    def put(self, item: tuple) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(item)

    def copy(self, table: str, cols: tuple[str, ...], chunks: Iterable[bytes | list[tuple]]) -> None:
        self.put(("copy", f'COPY "{table}" ({", ".join(cols)}) FROM STDIN'))
        for chunk in chunks:
            self.put(("data", chunk))
        self.put(("end",))

    def execute(self, sql: str) -> None:
        self.put(("sql", sql))

    def close(self) -> None:
        self.q.put(("stop",))
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        ctx = cp = cur = None
        while True:
            item = self.q.get()
            op = item[0]
            if op == "stop":
                if ctx is not None:  # the importer failed half way through a COPY
                    exc = RuntimeError("bulk import aborted")
                    try:
                        ctx.__exit__(RuntimeError, exc, None)
                    except BaseException:  # noqa: BLE001
                        pass
                return
            if self.error is not None:
                continue  # drain until stop
            try:
                if op == "data":
                    data = item[1]
                    if isinstance(data, list):
                        for row in data:
                            cp.write_row(row)
                    else:
                        cp.write(data)
                elif op == "copy":
                    cur = self.raw.cursor()
                    ctx = cur.copy(item[1])
                    cp = ctx.__enter__()
                elif op == "end":
                    ctx.__exit__(None, None, None)
                    cur.close()
                    ctx = cp = cur = None
                else:
                    with self.raw.cursor() as c:
                        c.execute(item[1])
            except BaseException as exc:  # noqa: BLE001 - handed to the importer
                self.error = exc
                if ctx is not None:
                    try:
                        ctx.__exit__(type(exc), exc, exc.__traceback__)
                    except BaseException:  # noqa: BLE001
                        pass
                ctx = cp = cur = None


class Writer:
    """The import's one transaction and how rows reach it."""

    def __init__(self, st: ImportState) -> None:
        self.st = st
        self.sqlite = st.sqlite
        self.uow: Any = None
        self.conn: Any = None
        self.pg: PgWriter | None = None
        self.sent: dict[str, int] = defaultdict(int)  # rows of st.rows[table] already sent
        self.no_fk_checks = False
        self.rebuild: dict[str, list[str]] = defaultdict(list)
        self.mwm = False

    def begin(self, stack: contextlib.ExitStack) -> None:
        """Open the import's one transaction (left without commit, it rolls back) and write
        the local networks, naming rules and templates every later row depends on."""
        st = self.st
        self.uow = stack.enter_context(st.db.unit_of_work(principal=st.principal))
        s = self.uow.session
        conn = self.conn = s.connection()
        self._fast_path(conn)
        if st.rows["local_network"]:
            self.core(LocalNetwork.__table__, "local_network")
        self._write_rules(s)
        if st.rows["device_template"]:
            self.core(DeviceTemplate.__table__, "device_template")
        if not self.sqlite:
            self.pg = PgWriter(conn.connection.driver_connection)
            stack.callback(self.close_pg)

    def close_pg(self) -> None:
        if self.pg is not None:
            self.pg, writer = None, self.pg
            writer.close()

    def _fast_path(self, conn: Any) -> None:
        """PostgreSQL: every reference was checked in phase 1, so the per-row foreign-key
        triggers are skipped for this transaction when the role may (SET LOCAL
        session_replication_role, as pg_restore --disable-triggers does). Without the right it
        just runs slower."""
        raw = conn.connection.driver_connection
        if self.sqlite:
            # SQLite: the same index rebuild for empty tables (DDL is transactional there too).
            cur = raw.cursor()
            for table in BIG_TABLES:
                if cur.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]:
                    continue
                for name, sql in cur.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                             "AND tbl_name = ? AND sql IS NOT NULL", (table,)).fetchall():
                    cur.execute(f'DROP INDEX "{name}"')
                    self.rebuild[table].append(sql)
            self._address_search_in_bulk(cur)
            cur.close()
            return
        with raw.cursor() as cur:
            # One commit at the end: waiting for its WAL flush adds nothing to durability
            # worth the wait for an import that can be rerun.
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute("SAVEPOINT bulk_fast_path")
            try:
                cur.execute("SET LOCAL session_replication_role = replica")
                cur.execute("RELEASE SAVEPOINT bulk_fast_path")
                self.no_fk_checks = True
            except Exception:  # noqa: BLE001 - not a superuser: keep the triggers
                cur.execute("ROLLBACK TO SAVEPOINT bulk_fast_path")
            # Into an empty big table, build its secondary indexes once at the end instead of row
            # by row (the drop is transactional: a failed import leaves them as they were).
            for table in BIG_TABLES:
                cur.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")')
                if cur.fetchone()[0]:
                    continue
                cur.execute("""SELECT i.indexname, i.indexdef FROM pg_indexes i
                               WHERE i.schemaname = current_schema() AND i.tablename = %s
                                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
                            (table,))
                for name, definition in cur.fetchall():
                    cur.execute(f'DROP INDEX "{name}"')
                    self.rebuild[table].append(definition)
                # Primary keys and unique constraints no foreign key depends on: checked in
                # phase 1, so added back (one sort) after the load rather than kept row by row.
                cur.execute("""SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
                               WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u')
                                 AND NOT EXISTS (SELECT 1 FROM pg_constraint f
                                                 WHERE f.contype = 'f' AND f.conindid = c.conindid)""",
                            (f'"{table}"',))
                for name, definition in cur.fetchall():
                    cur.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
                    self.rebuild[table].append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')

    def _address_search_in_bulk(self, cur: Any) -> None:
        """SQLite: the address search's FTS5 table is kept in step by a trigger per row, four
        times slower than one INSERT … SELECT of the new rows; so for the import the trigger is
        dropped and the new addresses (rowid above today's highest) go in with the indexes."""
        trigger = cur.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                              (_FTS_TRIGGER,)).fetchone()
        if trigger is None:
            return
        before = cur.execute("SELECT coalesce(max(rowid), 0) FROM address").fetchone()[0]
        cur.execute(f'DROP TRIGGER "{_FTS_TRIGGER}"')
        self.rebuild["address"] += [
            f"INSERT INTO address_fts (search_key, id) SELECT search_key, id FROM address WHERE rowid > {int(before)}",
            trigger[0]]

    def rebuild_indexes(self, tables: Iterable[str] = BIG_TABLES) -> None:
        todo = [d for t in tables for d in self.rebuild.pop(t, ())]
        if not todo:
            return
        if self.sqlite:
            cur = self.conn.connection.driver_connection.cursor()
            for definition in todo:
                cur.execute(definition)
            cur.close()
            return
        if not self.mwm:
            self.mwm = True
            self.pg.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for definition in todo:
            self.pg.execute(definition)

    def _write_rules(self, s: Any) -> None:
        st = self.st
        new_lns = {r[0] for r in st.rows["local_network"]}
        rows = []
        for ln in new_lns:
            for kind, pattern in st.rules[ln].items():
                rows.append({"local_network_id": ln, "kind": kind, "pattern": pattern})
        if rows:
            s.execute(NamingRule.__table__.insert(), rows)
            st.report.counts["naming_rule"] = len(rows)
        for ln, kind, pattern in st.rule_updates:
            if ln in new_lns:
                continue
            found = s.execute(update(NamingRule).where(NamingRule.local_network_id == ln, NamingRule.kind == kind)
                              .values(pattern=pattern))
            if not found.rowcount:
                s.execute(NamingRule.__table__.insert(), [{"local_network_id": ln, "kind": kind, "pattern": pattern}])

    def core(self, table: Any, name: str) -> None:
        st = self.st
        cols = st.cols[name]
        rows = [dict(zip(cols, r)) for r in st.rows[name]]
        for i in range(0, len(rows), BATCH):
            self.conn.execute(table.insert(), rows[i:i + BATCH])
        st.report.counts[name] = st.report.counts.get(name, 0) + len(rows)
        self.wrote(len(rows))

    def wrote(self, n: int) -> None:
        if self.st.writing:  # rows sent while reading were counted as read
            self.st.tick(n)

    def value(self, value: Any) -> Any:
        return stored_value(value, self.sqlite)

    def send(self, table: str, rows: Iterable[tuple] | None = None) -> None:
        """The rows of `table` not sent yet (or `rows` instead)."""
        st = self.st
        if rows is None:
            made = st.rows[table]
            rows, self.sent[table] = made[self.sent[table]:], len(made)
        # resource and customer rows hold nothing but text, numbers and st.now_stored
        self.fast(table, st.cols[table], rows, convert=table not in ("resource", "customer"))

    def fast(self, table: str, cols: tuple[str, ...], rows: Iterable[tuple], *, convert: bool = True) -> None:
        """Insert tuples: COPY on PostgreSQL, executemany on SQLite, in batches."""
        if isinstance(rows, list) and not rows:
            return
        count = 0
        conv = [i for i, c in enumerate(cols) if c in _CONVERT]
        if convert and conv:
            value = self.value

            def fix(row: tuple) -> tuple:
                row = list(row)
                for i in conv:
                    row[i] = value(row[i])
                return tuple(row)
        else:
            convert = False
        wrote = self.wrote
        if self.sqlite:
            sql = f'INSERT INTO "{table}" ({", ".join(cols)}) VALUES ({", ".join("?" * len(cols))})'
            cur = self.conn.connection.driver_connection.cursor()
            batch: list[tuple] = []
            for row in rows:
                batch.append(fix(row) if convert else row)
                if len(batch) >= BATCH:
                    cur.executemany(sql, batch)
                    count += len(batch)
                    wrote(len(batch))
                    batch = []
            if batch:
                cur.executemany(sql, batch)
                count += len(batch)
                wrote(len(batch))
            cur.close()
        else:
            ncols = len(cols)
            done = [0]

            def chunks() -> Iterator[bytes | list[tuple]]:
                batch = []
                for row in rows:
                    batch.append(fix(row) if convert else row)
                    if len(batch) >= BATCH:
                        yield copy_text(batch, ncols)
                        done[0] += len(batch)
                        wrote(len(batch))
                        batch = []
                if batch:
                    yield copy_text(batch, ncols)
                    done[0] += len(batch)
                    wrote(len(batch))

            self.pg.copy(table, cols, chunks())
            count = done[0]
        if count:
            self.st.report.counts[table] = self.st.report.counts.get(table, 0) + count
