"""change feed: commit-ordered positions for every recorded change

Revision ID: b8e1a0c2d302
Revises: b8e1a0c2d301
Create Date: 2026-12-01 07:50:00

History rows get a `position` stamped at commit under the lock of the one-row `change_counter`
(resource_mgr.changes.feed, docs/change-feed.md). Rows already there are committed, so any order
is a valid feed: they get positions in id order, and the counter continues after them.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision: str = 'b8e1a0c2d302'
down_revision: str | None = 'b8e1a0c2d301'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_counter",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_change_counter_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_counter")),
    )
    with op.batch_alter_table("history") as batch:
        batch.add_column(sa.Column("position", sa.Integer(), nullable=True))
    op.execute("UPDATE history SET position = id")
    op.execute("INSERT INTO change_counter (id, last) SELECT 1, coalesce(max(position), 0) FROM history")
    op.create_index("ix_history_position", "history", ["position"], unique=True)
    op.create_index("ix_history_unstamped", "history", ["id"], postgresql_where=sa.text("position IS NULL"),
                    sqlite_where=sa.text("position IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_history_unstamped", table_name="history")
    op.drop_index("ix_history_position", table_name="history")
    with op.batch_alter_table("history") as batch:
        batch.drop_column("position")
    op.drop_table("change_counter")
