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
    pass


def downgrade() -> None:
    pass
