"""cutovers: the cutover project and its mapping rows

Revision ID: d4b1e2f3a503
Revises: d4b1e2f3a502
Create Date: 2026-12-01 14:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op
import sqlalchemy as sa

from resource_mgr.db import UTCDateTime


revision: str = 'd4b1e2f3a503'
down_revision: str | None = 'd4b1e2f3a502'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "cutover",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("local_network_id", sa.String(length=26), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.String(length=26), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("locked_at", UTCDateTime(), nullable=True),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(["local_network_id"], ["local_network.id"],
                                name=op.f("fk_cutover_local_network_id_local_network")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cutover")),
    )
    op.create_index("ix_cutover_state_created_at", "cutover", ["state", "created_at"])
    op.create_index("ix_cutover_local_network_id", "cutover", ["local_network_id"])
    op.create_table(
        "cutover_row",
        sa.Column("cutover_id", sa.String(length=26), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("old_unit_id", sa.String(length=64), nullable=False),
        sa.Column("new_unit_id", sa.String(length=64), nullable=False),
        sa.Column("keep_number", sa.Boolean(), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("path", sa.JSON(), nullable=True),
        sa.Column("holders", sa.JSON(), nullable=True),
        sa.Column("moved", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["cutover_id"], ["cutover.id"], name=op.f("fk_cutover_row_cutover_id_cutover"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("cutover_id", "row", name=op.f("pk_cutover_row")),
    )
    op.create_index("ix_cutover_row_old_unit_id", "cutover_row", ["old_unit_id"])
    op.create_index("ix_cutover_row_new_unit_id", "cutover_row", ["new_unit_id"])


def downgrade() -> None:
    op.drop_index("ix_cutover_row_new_unit_id", table_name="cutover_row")
    op.drop_index("ix_cutover_row_old_unit_id", table_name="cutover_row")
    op.drop_table("cutover_row")
    op.drop_index("ix_cutover_local_network_id", table_name="cutover")
    op.drop_index("ix_cutover_state_created_at", table_name="cutover")
    op.drop_table("cutover")
