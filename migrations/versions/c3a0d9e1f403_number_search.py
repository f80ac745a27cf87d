"""number search

Revision ID: c3a0d9e1f403
Revises: c3a0d9e1f402
Create Date: 2026-12-01 10:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision: str = 'c3a0d9e1f403'
down_revision: str | None = 'c3a0d9e1f402'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


BATCH = 5000


def _backfill() -> None:
    """rnumber and rshape of every existing number (as numbers.patterns.derived, copied here so
    the revision stays as it ran), in batches."""
    def derived(num: str) -> tuple[str, str]:
        r, names = num[::-1], {}
        return r, "".join(names.setdefault(ch, "ABCDEFGHIJK"[len(names)]) for ch in r)

    bind = op.get_bind()
    number = sa.table("number", sa.column("id", sa.String), sa.column("number", sa.String),
                      sa.column("rnumber", sa.String), sa.column("rshape", sa.String))
    update = (sa.update(number).where(number.c.id == sa.bindparam("b_id"))
              .values(rnumber=sa.bindparam("b_rnumber"), rshape=sa.bindparam("b_rshape")))
    last = ""
    while True:
        rows = bind.execute(sa.select(number.c.id, number.c.number).where(number.c.id > last)
                            .order_by(number.c.id).limit(BATCH)).all()
        if not rows:
            break
        values = []
        for id_, num in rows:
            r, s = derived(num)
            values.append({"b_id": id_, "b_rnumber": r, "b_rshape": s})
        bind.execute(update, values)
        last = rows[-1][0]


def upgrade() -> None:
    # Tails and letter patterns become prefix ranges on the reversed number and its shape
    # (resource_mgr/numbers/patterns.py); `contains` uses trigrams on PostgreSQL.
    with op.batch_alter_table("number") as batch:
        batch.add_column(sa.Column("rnumber", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("rshape", sa.String(length=16), nullable=True))
    _backfill()
    with op.batch_alter_table("number") as batch:
        batch.alter_column("rnumber", existing_type=sa.String(length=16), nullable=False)
        batch.alter_column("rshape", existing_type=sa.String(length=16), nullable=False)
    op.create_index("ix_number_local_network_id_rnumber", "number", ["local_network_id", "rnumber"])
    op.create_index("ix_number_local_network_id_rshape", "number", ["local_network_id", "rshape"])
    op.create_index("ix_number_local_network_id_grade", "number", ["local_network_id", "grade"])
    if _is_postgresql():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index("ix_number_number_trgm", "number", ["number"], postgresql_using="gin",
                        postgresql_ops={"number": "gin_trgm_ops"})


def downgrade() -> None:
    if _is_postgresql():
        op.drop_index("ix_number_number_trgm", table_name="number")  # pg_trgm stays: others may use it
    op.drop_index("ix_number_local_network_id_grade", table_name="number")
    op.drop_index("ix_number_local_network_id_rshape", table_name="number")
    op.drop_index("ix_number_local_network_id_rnumber", table_name="number")
    with op.batch_alter_table("number") as batch:
        batch.drop_column("rshape")
        batch.drop_column("rnumber")
