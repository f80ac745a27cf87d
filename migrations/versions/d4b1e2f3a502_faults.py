"""faults

One table: fault (an alarm of the network management system resolved to a device or port, open
until cleared; `open_key` unique while open, so one alarm has one open fault).

Revision ID: d4b1e2f3a502
Revises: d4b1e2f3a501
Create Date: 2026-12-01 14:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from resource_mgr.db import UTCDateTime  # noqa: F401


revision: str = 'd4b1e2f3a502'
down_revision: str | None = 'd4b1e2f3a501'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "fault",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("local_network_id", sa.String(length=26), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("open_key", sa.String(length=140), nullable=True),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("device_ref", sa.String(length=200), nullable=False),
        sa.Column("port_ref", sa.String(length=100), nullable=True),
        sa.Column("device_id", sa.String(length=26), nullable=False),
        sa.Column("resource_id", sa.String(length=26), nullable=False),
        sa.Column("resource_kind", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.Column("last_raised_at", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("opened_by", sa.String(length=100), nullable=False),
        sa.Column("cleared_at", UTCDateTime(), nullable=True),
        sa.Column("cleared_by", sa.String(length=100), nullable=True),
        sa.Column("clear_reason", sa.String(length=300), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("state IN ('open', 'cleared')", name=op.f("ck_fault_state_known")),
        sa.CheckConstraint("(state = 'open') = (open_key IS NOT NULL AND cleared_at IS NULL)",
                           name=op.f("ck_fault_open_or_cleared")),
        sa.ForeignKeyConstraint(["device_id"], ["resource.id"], name=op.f("fk_fault_device_id_resource")),
        sa.ForeignKeyConstraint(["local_network_id"], ["local_network.id"],
                                name=op.f("fk_fault_local_network_id_local_network")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fault")),
        sa.UniqueConstraint("open_key", name=op.f("uq_fault_open_key")),
    )
    op.create_index("ix_fault_local_network_id_state", "fault", ["local_network_id", "state"], unique=False)
    op.create_index("ix_fault_resource_id", "fault", ["resource_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_fault_resource_id", table_name="fault")
    op.drop_index("ix_fault_local_network_id_state", table_name="fault")
    op.drop_table("fault")
