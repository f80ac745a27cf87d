"""numbers: unique per local network, not province-wide

Revision ID: b8e1a0c2d304
Revises: b8e1a0c2d303
Create Date: 2026-12-01 07:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision: str = 'b8e1a0c2d304'
down_revision: str | None = 'b8e1a0c2d303'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A number's local network is its unit's: copied onto the number so that the database can
    # keep each local network's numbers unique (every area code has its own 8765 0000).
    with op.batch_alter_table("number") as batch:
        batch.add_column(sa.Column("local_network_id", sa.String(length=26), nullable=True))
    op.execute('UPDATE "number" SET local_network_id = '
               '(SELECT unit.local_network_id FROM unit WHERE unit.id = "number".id)')
    with op.batch_alter_table("number") as batch:
        batch.alter_column("local_network_id", existing_type=sa.String(length=26), nullable=False)
        batch.drop_constraint("uq_number_number", type_="unique")
        batch.create_unique_constraint("uq_number_local_network_id_number", ["local_network_id", "number"])
        batch.create_foreign_key("fk_number_local_network_id_local_network", "local_network",
                                 ["local_network_id"], ["id"], ondelete="CASCADE")


def downgrade() -> None:
    # Fails if two local networks hold the same number: province-wide uniqueness cannot hold them.
    with op.batch_alter_table("number") as batch:
        batch.drop_constraint("fk_number_local_network_id_local_network", type_="foreignkey")
        batch.drop_constraint("uq_number_local_network_id_number", type_="unique")
        batch.create_unique_constraint("uq_number_number", ["number"])
        batch.drop_column("local_network_id")
