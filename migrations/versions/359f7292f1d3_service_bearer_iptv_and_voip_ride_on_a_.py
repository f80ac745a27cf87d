"""service bearer: IPTV and VoIP ride on a line

Revision ID: 359f7292f1d3
Revises: f62a2fc72cd2
Create Date: 2026-11-24 02:42:56.331075

IPTV and VoIP over broadband name the line service they ride on.
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op
import sqlalchemy as sa


revision: str = '359f7292f1d3'
down_revision: str | None = 'f62a2fc72cd2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch: SQLite adds a foreign key by copying the table
    with op.batch_alter_table("service") as batch:
        batch.add_column(sa.Column("bearer_id", sa.String(length=26), nullable=True))
        batch.create_index("ix_service_bearer_id", ["bearer_id"], unique=False)
        batch.create_foreign_key(op.f("fk_service_bearer_id_service"), "service", ["bearer_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("service") as batch:
        batch.drop_constraint(op.f("fk_service_bearer_id_service"), type_="foreignkey")
        batch.drop_index("ix_service_bearer_id")
        batch.drop_column("bearer_id")
