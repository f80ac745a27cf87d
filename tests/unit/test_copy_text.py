"""The importer's own COPY text formatting: byte for byte what COPY reads, or the batch handed
back for psycopg to format when a value needs escaping."""
from __future__ import annotations

import random
from datetime import datetime, timezone

from resource_mgr.bulk.importing.writer import copy_text


def reference(batch: list[tuple]) -> bytes:
    def cell(v):
        if v is None:
            return "\\N"
        if isinstance(v, str):
            return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        return str(v)
    return "".join("\t".join(cell(v) for v in row) + "\n" for row in batch).encode()


def test_plain_rows_are_formatted_here_with_every_null_in_place():
    rng = random.Random(7)
    pool = [None, "abc", "Non", "e", 0, 17, 2.5, True, "天河", datetime(2026, 1, 2, tzinfo=timezone.utc)]
    for ncols in (1, 2, 3, 7, 19):
        for _ in range(300):
            batch = [tuple(rng.choice(pool) for _ in range(ncols)) for _ in range(rng.randint(1, 6))]
            out = copy_text(batch, ncols)
            assert isinstance(out, bytes), batch
            assert out == reference(batch), batch


def test_all_null_rows():
    batch = [(None,) * 5, (None,) * 5]
    assert copy_text(batch, 5) == reference(batch)


def test_values_that_need_escaping_go_to_psycopg():
    for tricky in ("None", "Nonesuch", "a\tb", "a\nb", "back\\slash", "\\N", "cr\r"):
        batch = [("x", tricky, None), (None, "y", 1)]
        assert copy_text(batch, 3) is batch, tricky
