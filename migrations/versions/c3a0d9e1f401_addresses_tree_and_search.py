"""addresses tree and search

The address tree needs no new column: an address's parent is its Resource.parent_id and its
level follows from its parts (resource_mgr/inventory/models.py Address.level). What this
revision adds is the partial-text search (resource_mgr/addresses/search.py):

- every `search_key` recomputed with the one normal form (resource_mgr/addresses/normalise.py);
- PostgreSQL: the pg_trgm extension and a GIN trigram index on address.search_key;
- SQLite: the FTS5 trigram table `address_fts` (search_key, id), filled from the existing rows
  and kept in step with `address` by triggers (insert, delete, update of the key).

Revision ID: c3a0d9e1f401
Revises: b8e1a0c2d304
Create Date: 2026-12-01 10:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision: str = 'c3a0d9e1f401'
down_revision: str | None = 'b8e1a0c2d304'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000

# The id column is indexed too (trigrams of a 26-character id find exactly that row), so the
# triggers find an address's FTS row without relying on SQLite rowids, which VACUUM may renumber.
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE address_fts USING fts5(search_key, id, tokenize='trigram')",
    """CREATE TRIGGER address_fts_insert AFTER INSERT ON address BEGIN
         INSERT INTO address_fts (search_key, id) VALUES (new.search_key, new.id);
       END""",
    """CREATE TRIGGER address_fts_delete AFTER DELETE ON address BEGIN
         DELETE FROM address_fts WHERE address_fts MATCH 'id : "' || old.id || '"';
       END""",
    """CREATE TRIGGER address_fts_update AFTER UPDATE OF search_key, id ON address BEGIN
         DELETE FROM address_fts WHERE address_fts MATCH 'id : "' || old.id || '"';
         INSERT INTO address_fts (search_key, id) VALUES (new.search_key, new.id);
       END""",
]


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _recompute_keys() -> None:
    from resource_mgr.addresses.normalise import normalise

    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT a.id, r.name, a.search_key FROM address a JOIN resource r ON r.id = a.id"))
    todo = [{"i": i, "k": normalise(name)} for i, name, key in rows if normalise(name) != key]
    update = sa.text("UPDATE address SET search_key = :k WHERE id = :i")
    for start in range(0, len(todo), BATCH):
        conn.execute(update, todo[start:start + BATCH])


def upgrade() -> None:
    _recompute_keys()
    if _is_postgresql():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_address_search_key_trgm ON address USING gin (search_key gin_trgm_ops)")
        return
    for statement in SQLITE_FTS:
        op.execute(statement)
    op.execute("INSERT INTO address_fts (search_key, id) SELECT search_key, id FROM address")


def downgrade() -> None:
    # The recomputed keys stay: they are valid keys for the earlier code too.
    if _is_postgresql():
        op.execute("DROP INDEX IF EXISTS ix_address_search_key_trgm")
        return  # pg_trgm may serve others: left installed
    for name in ("address_fts_update", "address_fts_delete", "address_fts_insert"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS address_fts")
