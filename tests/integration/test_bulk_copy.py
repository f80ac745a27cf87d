"""PostgreSQL COPY as the importer sends it: rows formatted by the importer and rows handed to
psycopg (values that need escaping) arrive the same as they were made."""
from __future__ import annotations

import pytest

from resource_mgr.bulk.importing.writer import PgWriter, copy_text


def test_copy_sends_every_value_as_it_was(db):
    if db.dialect != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    rows = [("a", None, 1), (None, "None", 2), ("tab\there", "back\\slash", 3), ("\\N", "line\nbreak", 4),
            (None, None, 5), ("天河", "cr\rx", 6)]
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("CREATE TEMP TABLE copy_check (a text, b text, n int)")
        writer = PgWriter(raw)
        writer.copy("copy_check", ("a", "b", "n"), [copy_text(rows[:2], 3), copy_text(rows[2:], 3),
                                                    copy_text([("plain", None, 7)], 3)])
        writer.close()
        with raw.cursor() as cur:
            cur.execute("SELECT a, b, n FROM copy_check ORDER BY n")
            assert cur.fetchall() == rows + [("plain", None, 7)]
        conn.rollback()
