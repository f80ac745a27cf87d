"""jobs: leases, heartbeats and the scheduler lease

Revision ID: b8e1a0c2d303
Revises: b8e1a0c2d302
Create Date: 2026-12-01 07:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision: str = 'b8e1a0c2d303'
down_revision: str | None = 'b8e1a0c2d302'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
