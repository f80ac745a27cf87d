"""reservations

Revision ID: c3a0d9e1f402
Revises: c3a0d9e1f401
Create Date: 2026-12-01 10:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision: str = 'c3a0d9e1f402'
down_revision: str | None = 'c3a0d9e1f401'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    from resource_mgr.db import UTCDateTime

    op.create_table(
        "reservation",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("local_network_id", sa.String(length=26), nullable=False),
        sa.Column("order_ref", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("technology", sa.String(length=10), nullable=True),
        sa.Column("address_id", sa.String(length=26), nullable=True),
        sa.Column("number", sa.String(length=16), nullable=True),
        sa.Column("number_unit_id", sa.String(length=26), nullable=True),
        sa.Column("service_id", sa.String(length=26), nullable=True),
        sa.Column("bearer_id", sa.String(length=26), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("unit_ids", sa.JSON(), nullable=False),
        sa.Column("design", sa.JSON(), nullable=True),
        sa.Column("release", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=True),
        sa.Column("principal", sa.String(length=100), nullable=False),
        sa.Column("work_order_ref", sa.String(length=100), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("committed_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(["address_id"], ["address.id"], name=op.f("fk_reservation_address_id_address")),
        sa.ForeignKeyConstraint(["local_network_id"], ["local_network.id"],
                                name=op.f("fk_reservation_local_network_id_local_network")),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], name=op.f("fk_reservation_service_id_service")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservation")),
        sa.UniqueConstraint("local_network_id", "order_ref", name=op.f("uq_reservation_local_network_id_order_ref")),
    )
    op.create_index("ix_reservation_state_expires_at", "reservation", ["state", "expires_at"])
    op.create_index("ix_reservation_principal_state", "reservation", ["principal", "state"])
    op.create_index("ix_reservation_service_id", "reservation", ["service_id"])


def downgrade() -> None:
    op.drop_index("ix_reservation_service_id", table_name="reservation")
    op.drop_index("ix_reservation_principal_state", table_name="reservation")
    op.drop_index("ix_reservation_state_expires_at", table_name="reservation")
    op.drop_table("reservation")
