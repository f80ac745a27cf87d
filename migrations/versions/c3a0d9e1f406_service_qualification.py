"""service qualification

service_qualification: each TMF645 checkServiceQualification asked, with its answer, for reads
by id and lists scoped to the principal who asked.

Revision ID: c3a0d9e1f406
Revises: c3a0d9e1f404
Create Date: 2026-12-01 10:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

from resource_mgr.db import UTCDateTime


revision: str = 'c3a0d9e1f406'
down_revision: str | None = 'c3a0d9e1f404'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "service_qualification",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("principal", sa.String(length=100), nullable=False),
        sa.Column("local_network_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["local_network_id"], ["local_network.id"],
                                name=op.f("fk_service_qualification_local_network_id_local_network")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_qualification")),
    )
    op.create_index("ix_service_qualification_principal_created_at", "service_qualification",
                    ["principal", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_service_qualification_principal_created_at", table_name="service_qualification")
    op.drop_table("service_qualification")
