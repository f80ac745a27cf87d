"""number search

Revision ID: c3a0d9e1f403
Revises: c3a0d9e1f402
Create Date: 2026-12-01 10:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from resource_mgr.db import UTCDateTime


revision: str = 'c3a0d9e1f403'
down_revision: str | None = 'c3a0d9e1f402'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


BATCH = 5000
EPOCH_PG = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
EPOCH_SQLITE = "'1970-01-01 00:00:00.000000'"  # as SQLAlchemy stores datetimes on SQLite


def _choosable_from_sql(u: str) -> str:
    """number.choosable_from from the unit row `u` (numbers.models.choosable_from in SQL): NULL
    while occupied or not in service, else the end of its live hold and of its quarantine."""
    never = f"{u}.admin_state <> 'in_service' OR {u}.occupancy = 'occupied'"
    hold = f"CASE WHEN {u}.occupancy = 'preoccupied' THEN {u}.preoccupied_until END"
    if _is_postgresql():
        return f"CASE WHEN {never} THEN NULL ELSE GREATEST({hold}, {u}.quarantine_until, {EPOCH_PG}) END"
    return (f"CASE WHEN {never} THEN NULL ELSE max(coalesce({hold}, {EPOCH_SQLITE}), "
            f"coalesce({u}.quarantine_until, {EPOCH_SQLITE})) END")


def _create_trigger() -> None:
    # Every change of a number's unit, whoever makes it (the ledger, a sweep, a cutover, plain
    # SQL), keeps number.choosable_from right in the same statement.
    if _is_postgresql():
        op.execute(f"""
            CREATE FUNCTION rmgr_number_choosable() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE "number" SET choosable_from = {_choosable_from_sql("NEW")} WHERE id = NEW.id;
                RETURN NULL;
            END $$""")
        op.execute("""
            CREATE TRIGGER tr_unit_number_choosable AFTER UPDATE ON unit FOR EACH ROW
            WHEN (NEW.kind = 'number') EXECUTE FUNCTION rmgr_number_choosable()""")
    else:
        op.execute(f"""
            CREATE TRIGGER tr_unit_number_choosable AFTER UPDATE ON unit FOR EACH ROW
            WHEN NEW.kind = 'number' BEGIN
                UPDATE "number" SET choosable_from = {_choosable_from_sql("NEW")} WHERE id = NEW.id;
            END""")


def _drop_trigger() -> None:
    op.execute("DROP TRIGGER IF EXISTS tr_unit_number_choosable" + (" ON unit" if _is_postgresql() else ""))
    if _is_postgresql():
        op.execute("DROP FUNCTION IF EXISTS rmgr_number_choosable()")


def _derived(num: str) -> tuple[str, str]:
    """(rnumber, rshape) as numbers.patterns.derived, copied here so the revision stays as it ran."""
    r, names = num[::-1], {}
    return r, "".join(names.setdefault(ch, "ABCDEFGHIJK"[len(names)]) for ch in r)


def _backfill() -> None:
    """rnumber and rshape of every existing number, in batches, and choosable_from from its unit
    (on PostgreSQL through a COPY into a temporary table and one joined UPDATE)."""
    bind = op.get_bind()
    number = sa.table("number", sa.column("id", sa.String), sa.column("number", sa.String),
                      sa.column("rnumber", sa.String), sa.column("rshape", sa.String))
    postgres = _is_postgresql()
    if postgres:
        op.execute("CREATE TEMPORARY TABLE number_derived (id varchar(26) PRIMARY KEY, rnumber varchar(16), "
                   "rshape varchar(16)) ON COMMIT DROP")
    update = (sa.update(number).where(number.c.id == sa.bindparam("b_id"))
              .values(rnumber=sa.bindparam("b_rnumber"), rshape=sa.bindparam("b_rshape")))
    last = ""
    while True:
        rows = bind.execute(sa.select(number.c.id, number.c.number).where(number.c.id > last)
                            .order_by(number.c.id).limit(BATCH)).all()
        if not rows:
            break
        if postgres:
            cursor = bind.connection.dbapi_connection.cursor()
            with cursor.copy("COPY number_derived (id, rnumber, rshape) FROM STDIN") as copy:
                for id_, num in rows:
                    copy.write_row((id_, *_derived(num)))
        else:
            bind.execute(update, [{"b_id": id_, "b_rnumber": r, "b_rshape": s}
                                  for id_, num in rows for r, s in [_derived(num)]])
        last = rows[-1][0]
    if postgres:  # one pass, joined (a correlated subquery per row takes many minutes on millions)
        op.execute("ANALYZE number_derived")
        op.execute(f'UPDATE "number" SET rnumber = d.rnumber, rshape = d.rshape, '
                   f'choosable_from = {_choosable_from_sql("u")} FROM number_derived d, unit u '
                   f'WHERE d.id = "number".id AND u.id = "number".id')
    else:
        op.execute(f'UPDATE "number" SET choosable_from = (SELECT {_choosable_from_sql("u")} FROM unit u '
                   f'WHERE u.id = "number".id)')


SEARCH_INDEXES = {
    "ix_number_search_rnumber": ["local_network_id", "rnumber", "choosable_from", "grade_level", "number", "id"],
    "ix_number_search_rshape": ["local_network_id", "rshape", "choosable_from", "grade_level", "number", "id"],
    "ix_number_search_grade": ["local_network_id", "grade", "choosable_from", "grade_level", "number", "id"],
    "ix_number_search_level": ["local_network_id", "grade_level", "choosable_from", "number", "id"],
}


def upgrade() -> None:
    # Tails and letter patterns become prefix ranges on the reversed number and its shape
    # (resource_mgr/numbers/patterns.py), choosing a comparison with choosable_from, kept by a
    # trigger from the unit; `contains` uses trigrams on PostgreSQL.
    with op.batch_alter_table("number") as batch:
        batch.add_column(sa.Column("rnumber", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("rshape", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("choosable_from", UTCDateTime(), nullable=True))
    _backfill()
    with op.batch_alter_table("number") as batch:
        batch.alter_column("rnumber", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("rshape", existing_type=sa.String(length=16), nullable=False)
    for name, columns in SEARCH_INDEXES.items():
        op.create_index(name, "number", columns)
    if _is_postgresql():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index("ix_number_number_trgm", "number", ["number"], postgresql_using="gin",
                        postgresql_ops={"number": "gin_trgm_ops"})
    _create_trigger()


def downgrade() -> None:
    _drop_trigger()
    if _is_postgresql():
        op.drop_index("ix_number_number_trgm", table_name="number")  # pg_trgm stays: others may use it
    for name in SEARCH_INDEXES:
        op.drop_index(name, table_name="number")
    with op.batch_alter_table("number") as batch:
        batch.drop_column("choosable_from")
        batch.drop_column("rshape")
        batch.drop_column("rnumber")
