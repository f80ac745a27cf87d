"""change feed: commit-ordered positions for every recorded change

Revision ID: b8e1a0c2d302
Revises: b8e1a0c2d301
Create Date: 2026-12-01 07:50:00
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
    pass


def downgrade() -> None:
    pass
